""" "Check your work": what is right and what is missing, in plain words.

:func:`check` compares the kernel with a stage (or ``stage:step``). Each
difference becomes one sentence saying what is wrong and the command that
fixes it (taken from the same ops :mod:`labkit.kernel.apply` would run, so
the advice is exactly what labkit would do). When nothing differs, real
packets confirm the stage works (a ping, an HTTP request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit.core import stages
from labkit.core.model import HOST
from labkit.kernel import apply, observe, sandbox
from labkit.kernel.apply import Op


def _where(ns: str) -> str:
    return "the host" if ns == HOST else ns


def describe(op: Op) -> str:
    """One plain sentence for what an op would fix.

    Examples
    --------
    >>> from labkit.kernel.apply import make_op
    >>> describe(make_op("link_up", "red", "veth-red", True))
    'veth-red in red is down.'
    """
    a = op.args
    if op.kind == "netns_add":
        return f"Namespace {a[0]} does not exist."
    if op.kind == "netns_del":
        return f"Namespace {a[0]} should not be there at this stage."
    if op.kind == "link_del":
        return f"{a[1]} in {_where(a[0])} should not be there (or is not wired as it should be)."
    if op.kind == "bridge_add":
        return f"The bridge {a[1]} is missing in {_where(a[0])}."
    if op.kind == "veth_add":
        return f"The cable {a[1]} ({_where(a[0])}) <-> {a[3]} ({_where(a[2])}) is missing."
    if op.kind == "master":
        if a[2]:
            return f"{a[1]} in {_where(a[0])} is not plugged into the bridge {a[2]}."
        return f"{a[1]} in {_where(a[0])} should not be plugged into a bridge."
    if op.kind == "addr_add":
        return f"{a[1]} in {_where(a[0])} does not have the address {a[2]}."
    if op.kind == "addr_del":
        return f"{a[1]} in {_where(a[0])} has an address it should not have: {a[2]}."
    if op.kind == "link_up":
        state = "down" if a[2] else "up"
        return f"{a[1]} in {_where(a[0])} is {state}."
    if op.kind == "route_add":
        r = a[0]
        return f"{_where(r.ns)} has no route to {r.dst} via {r.via}."
    if op.kind == "route_del":
        r = a[0]
        return f"{_where(r.ns)} has a route it should not have: {r.dst} via {r.via}."
    if op.kind == "sysctl":
        ns, key, value = a
        does = "does not forward" if value == "1" else "forwards"
        return f"{_where(ns).capitalize()} {does} packets ({key} is not {value})."
    if op.kind == "rule_add":
        return (
            f"{_where(a[0].ns).capitalize()} lacks the {a[0].table} rule {a[0].chain} {a[0].spec}."
        )
    if op.kind == "rule_del":
        rule = a[0]
        where = _where(rule.ns).capitalize()
        return f"{where} has a rule it should not have: {rule.chain} {rule.spec}."
    if op.kind == "service_start":
        return f"No web app listens on port {a[0].port} in {_where(a[0].ns)}."
    if op.kind == "service_stop":
        return f"A web app on port {a[0].port} in {_where(a[0].ns)} should not be running."
    return f"Something differs: {op.kind} {a}."  # pragma: no cover


@dataclass
class Report:
    """The outcome of :func:`check`: problems (with fixes) and confirmations.

    Examples
    --------
    >>> fix = "ip -n red link set veth-red up"
    >>> r = Report("veth", problems=[("veth-red in red is down.", fix)])
    >>> r.ok
    False
    >>> print(r)
    Not yet: 1 thing differs from the veth stage.
      - veth-red in red is down.
        fix: ip -n red link set veth-red up
    """

    target: str
    problems: list[tuple[str, str]] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing differs and every packet test passed.

        Examples
        --------
        >>> Report("veth", confirmed=["red reaches blue"]).ok
        True
        """
        return not self.problems and not self.failed

    def __str__(self) -> str:
        name = self.target.replace(":", ", step ")
        if self.ok:
            lines = [f"All good: the kernel has everything the {name} stage needs."]
            lines += [f"  + {c}" for c in self.confirmed]
            return "\n".join(lines)
        lines = []
        if self.problems:
            n = len(self.problems)
            things = "thing differs" if n == 1 else "things differ"
            lines.append(f"Not yet: {n} {things} from the {name} stage.")
            for sentence, fix in self.problems:
                lines.append(f"  - {sentence}")
                if fix:
                    lines.append(f"    fix: {fix}")
        else:
            lines.append(f"The kernel has what the {name} stage needs, but packets say otherwise:")
        lines += [f"  - {f}" for f in self.failed]
        lines += [f"  + {c}" for c in self.confirmed]
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def _probes(target: str) -> list[tuple[str, str, str, str]]:
    """(kind, src, dst, sentence) packet tests that show ``target`` works."""
    name = target.partition(":")[0]
    if (
        ":" in target
        and target != f"{name}:{stages.stages(2)[stages.find(name)[0]].steps[-1].name}"
    ):
        return []  # intermediate steps may not work yet, by design
    probes = {
        "veth": [("ping", "red", "192.168.15.2", "red reaches blue over the cable")],
        "bridge": [("ping", "red", "192.168.15.2", "red reaches blue over the bridge")],
        "host": [("ping", HOST, "192.168.15.1", "the host reaches red")],
        "nat": [("ping", "red", stages.LAN_PC_IP, "red reaches the LAN PC 192.168.1.3")],
        "internet": [("ping", "red", stages.SERVER_IP, "red reaches the internet (203.0.113.8)")],
        "portforward": [
            ("http", "lan-pc", f"http://{stages.HOST_LAN_IP}/", "the LAN PC gets the web app"),
            ("http", HOST, f"http://{stages.HOST_LAN_IP}/", "the host gets the web app"),
        ],
    }
    return probes.get(name, [])


def check(target: str, lab: Any = None, probe: bool = True) -> Report:
    """Compare the kernel with ``target`` and say what is right or missing.

    Parameters
    ----------
    target
        A stage, or ``stage:step``.
    lab
        The :class:`labkit.Lab` to use (default: a new one).
    probe
        Also send real packets when nothing differs.

    Examples
    --------
    >>> from labkit.checks import check
    >>> print(check("veth"))  # doctest: +SKIP
    All good: the kernel has everything the veth stage needs.
      + red reaches blue over the cable
    """
    from labkit.lab import Lab

    lab = lab or Lab()
    stages.find(target, lab.count)
    sandbox.require()
    state = observe.to_state(observe.snapshot())
    own = stages.owned(max(lab.count, stages.count_from(state.namespaces)))
    want = stages.desired(target, lab.count)
    report = Report(target)
    try:
        ops = apply.diff(state, want, own, set(own.routes))
    except apply.ConflictError as err:
        report.problems.append((str(err), ""))
        return report
    for op in ops:
        report.problems.append((describe(op), "; ".join(op.commands)))
    if report.problems or not probe:
        return report
    for kind, src, dst, sentence in _probes(target):
        if kind == "ping":
            result = lab.ping(src, dst, count=2)  # the first may wait on ARP
            ok = result.received > 0
        else:
            ok = lab.http(src, dst).ok
        (report.confirmed if ok else report.failed).append(
            sentence if ok else f"{sentence}: no ({kind} from {src} to {dst} failed)"
        )
    return report
