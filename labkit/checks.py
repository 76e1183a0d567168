""" "Check your work": what is right and what is missing, in plain words.

:func:`compare` compares the kernel with a stage (or ``stage:step``). Each
difference becomes one sentence saying what is wrong and the command that
fixes it (taken from the same ops :meth:`labkit.Lab.goto` would run, so
the advice is exactly what labkit would do). When nothing differs, real
packets confirm the stage works (a ping, an HTTP request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from labkit.core import stages
from labkit.core.model import HOST
from labkit.core.ops import Op
from labkit.errors import ConflictError
from labkit.kernel.probe import http_get


@runtime_checkable
class Checked(Protocol):
    """What :func:`compare` needs of a lab (a :class:`labkit.Lab` has it all).

    Examples
    --------
    >>> from labkit import Lab
    >>> isinstance(Lab(), Checked)
    True
    """

    count: int

    def changes(self, target: str) -> list[Op]:
        """The ops that would bring the kernel to ``target``."""

    def ping(self, src: str, dst: str, count: int = 3) -> Any:
        """Ping ``dst`` from ``src``."""

    def http(self, src: str, url: str) -> Any:
        """HTTP GET ``url`` from ``src``."""


@dataclass
class Report:
    """The outcome of :func:`compare`: problems (with fixes) and confirmations.

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
        and target != f"{name}:{stages.course(2)[stages.find(name)[0]].steps[-1].name}"
    ):
        return []  # intermediate steps may not work yet, by design
    (red, red_ip), (blue, blue_ip) = stages.namespaces(2)
    lan, web = stages.LAN_PC_IP, f"http://{stages.HOST_LAN_IP}/"
    probes = {
        "veth": [("ping", red, blue_ip, f"{red} reaches {blue} over the cable")],
        "bridge": [("ping", red, blue_ip, f"{red} reaches {blue} over the bridge")],
        "host": [("ping", HOST, red_ip, f"the host reaches {red}")],
        "nat": [("ping", red, lan, f"{red} reaches the LAN PC {lan}")],
        "internet": [
            ("ping", red, stages.SERVER_IP, f"{red} reaches the internet ({stages.SERVER_IP})")
        ],
        "portforward": [
            ("http", "lan-pc", web, "the LAN PC gets the web app"),
            ("http", HOST, web, "the host gets the web app"),
        ],
    }
    return probes.get(name, [])


def compare(target: str, lab: Checked, probe: bool = True) -> Report:
    """Compare the kernel with ``target`` and say what is right or missing.

    Parameters
    ----------
    target
        A stage, or ``stage:step``.
    lab
        The :class:`labkit.Lab` to use (:meth:`labkit.Lab.check` passes itself).
    probe
        Also send real packets when nothing differs.

    Examples
    --------
    >>> from labkit import Lab
    >>> print(compare("veth", Lab()))  # doctest: +SKIP
    All good: the kernel has everything the veth stage needs.
      + red reaches blue over the cable
    """
    report = Report(target)
    try:
        ops = lab.changes(target)
    except ConflictError as err:
        report.problems.append((str(err), ""))
        return report
    for op in ops:
        report.problems.append((op.describe(), "; ".join(op.commands)))
    if report.problems or not probe:
        return report
    for kind, src, dst, sentence in _probes(target):
        if kind == "ping":
            result = lab.ping(src, dst, count=2)  # the first may wait on ARP
            ok = result.received > 0
        else:  # in-process: no ip or curl process per probe (see http_get)
            where = urlsplit(dst)
            status = http_get(src, where.hostname or "", where.port or 80, where.path or "/")
            ok = 200 <= status < 300
        (report.confirmed if ok else report.failed).append(
            sentence if ok else f"{sentence}: no ({kind} from {src} to {dst} failed)"
        )
    return report
