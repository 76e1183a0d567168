"""The :class:`Lab`: build, reset and inspect the course's topology.

A lab is a number of namespaces (red, blue and optionally ``ns10``,
``ns11``, ...) inside the current sandbox. It has no memory of its own:
every call reads the kernel, works out what differs from the requested
stage (:mod:`labkit.kernel.apply`) and changes only that. So ``goto`` works
from any state, forward or backward, twice in a row, and after a learner
changed things by hand.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import subprocess
from dataclasses import dataclass
from typing import Any

import networkx as nx

from labkit.core import stages
from labkit.core.model import HOST, Rule, Service, State
from labkit.errors import ConfigError
from labkit.kernel import apply, netns, observe, probe, rtnl, sandbox
from labkit.ui import progress as progress_mod

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
IFNAMSIZ = 15


def check_netns_name(name: str) -> str:
    """Return ``name`` if it is a usable namespace name, else raise ConfigError.

    Examples
    --------
    >>> check_netns_name("red")
    'red'
    >>> check_netns_name("red; rm -rf /")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labkit.errors.ConfigError: 'red; rm -rf /' is not a valid namespace name: use letters, ...
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > 64:
        raise ConfigError(
            f"{name!r} is not a valid namespace name: use letters, digits, '_', '-' "
            "and '.', at most 64 characters, not starting with '-' or '.'"
        )
    return name


def check_ifname(name: str) -> str:
    """Return ``name`` if the kernel accepts it as an interface name.

    Examples
    --------
    >>> check_ifname("veth-red")
    'veth-red'
    >>> check_ifname("veth-very-long-name")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labkit.errors.ConfigError: interface name 'veth-very-long-name' has 19 characters; ...
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or "/" in name:
        raise ConfigError(
            f"{name!r} is not a valid interface name: use letters, digits, '_', '-' and '.'"
        )
    if len(name) > IFNAMSIZ:
        raise ConfigError(
            f"interface name {name!r} has {len(name)} characters; the kernel allows "
            f"at most {IFNAMSIZ}"
        )
    return name


def _check_seconds(value: object) -> None:
    """Raise ConfigError unless ``value`` is a number of seconds above 0."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:  # type: ignore[arg-type]
        raise ConfigError(
            f"timeout must be a number of seconds above 0, like 1 or 0.5, not {value!r}"
        )


@dataclass(frozen=True)
class Plan:
    """The steps of a stage and the exact shell commands they equal.

    Examples
    --------
    >>> print(Lab().plan("netns"))
    # netns: Two network namespaces, red and blue
    ## Create the namespaces
    ip netns add red
    ip netns add blue
    """

    stage: stages.Stage

    @property
    def commands(self) -> list[str]:
        """The commands, in order.

        Examples
        --------
        >>> Lab().plan("host").commands
        ['ip addr add 192.168.15.5/24 dev v-net-0']
        """
        return self.stage.commands

    def __str__(self) -> str:
        lines = [f"# {self.stage.name}: {self.stage.title}"]
        for step in self.stage.steps:
            if not step.commands:
                continue
            lines.append(f"## {step.title}")
            lines.extend(step.commands)
            if step.note:
                lines.append(f"# {step.note}")
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


@dataclass(frozen=True)
class PingResult:
    """What ``ping`` reported: packets sent and received, and its output.

    Examples
    --------
    >>> PingResult("red", "192.168.15.2", 3, 3, "").loss
    0.0
    """

    src: str
    dst: str
    sent: int
    received: int
    output: str

    @property
    def loss(self) -> float:
        """Packet loss in percent (100 when nothing was sent).

        Examples
        --------
        >>> PingResult("red", "192.168.15.2", 4, 1, "").loss
        75.0
        """
        return 100.0 if not self.sent else 100.0 * (self.sent - self.received) / self.sent

    @property
    def ok(self) -> bool:
        """True when every packet came back.

        Examples
        --------
        >>> PingResult("red", "192.168.15.2", 3, 3, "").ok
        True
        """
        return self.sent > 0 and self.received == self.sent

    def __str__(self) -> str:
        return (
            f"{self.src} -> {self.dst}: {self.received}/{self.sent} replies, {self.loss:.0f}% loss"
        )


@dataclass(frozen=True)
class HttpResult:
    """What an HTTP GET got: the status (0 when no answer) and the body.

    Examples
    --------
    >>> HttpResult("lan-pc", "http://192.168.1.2/", 200, "Hello").ok
    True
    """

    src: str
    url: str
    status: int
    body: str
    error: str = ""

    @property
    def ok(self) -> bool:
        """True for a 2xx answer.

        Examples
        --------
        >>> HttpResult("red", "http://203.0.113.8/", 0, "", "timed out").ok
        False
        """
        return 200 <= self.status < 300

    def __str__(self) -> str:
        if not self.status:
            return f"{self.src} -> {self.url}: no answer ({self.error})"
        return f"{self.src} -> {self.url}: HTTP {self.status}: {self.body.strip()}"


@dataclass(frozen=True)
class Reachability:
    """Who reaches whom, by ping: ``table[src][target]`` is True or False.

    Examples
    --------
    >>> r = Reachability({"red": {"blue": True}}, {"blue": "192.168.15.2"})
    >>> print(r)  # doctest: +NORMALIZE_WHITESPACE
    from \\ to  blue
    red          yes
    """

    table: dict[str, dict[str, bool]]
    targets: dict[str, str]

    def __str__(self) -> str:
        names = list(self.targets)
        width = max([len("from \\ to"), *(len(n) for n in self.table)])
        lines = ["from \\ to".ljust(width) + "  " + "  ".join(n.rjust(4) for n in names)]
        for src, row in self.table.items():
            cells = ["yes" if row.get(n) else ("-" if n == src else "no") for n in names]
            lines.append(
                src.ljust(width)
                + "  "
                + "  ".join(c.rjust(max(4, len(n))) for c, n in zip(cells, names, strict=True))
            )
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


class Lab:
    """The course's topology in the current sandbox.

    Parameters
    ----------
    namespaces
        How many namespaces join the bridge (at least 2: red and blue;
        further ones are ``ns10``, ``ns11``, ...). ``None`` reads the
        number from the kernel (what is there already, or 2).

    Examples
    --------
    >>> from labkit import Lab
    >>> lab = Lab()
    >>> lab.stages
    ['netns', 'veth', 'bridge', 'host', 'nat', 'internet', 'portforward']
    >>> lab.goto("veth")  # doctest: +SKIP
    >>> lab.ping("red", "192.168.15.2").ok  # doctest: +SKIP
    True
    """

    def __init__(self, namespaces: int | None = None) -> None:
        if namespaces is not None:
            stages.check_count(namespaces)
        self._count = namespaces

    @property
    def count(self) -> int:
        """How many namespaces join the bridge.

        Examples
        --------
        >>> Lab(5).count
        5
        """
        if self._count is not None:
            return self._count
        if not sandbox.inside():
            return 2
        return stages.count_from(self._netns())

    @property
    def namespaces(self) -> list[str]:
        """The lab's namespaces that exist now (red, blue, ns10, ...), not the world's.

        Examples
        --------
        >>> Lab().namespaces  # doctest: +SKIP
        ['red', 'blue']
        """
        present = set(self._netns())
        return [name for name, _ in stages.namespaces(self.count) if name in present]

    @property
    def stages(self) -> list[str]:
        """The stage names, in the tutorial's order.

        Examples
        --------
        >>> Lab().stages[0]
        'netns'
        """
        return list(stages.STAGE_NAMES)

    def steps(self, stage: str | None = None) -> list[str]:
        """Every ``stage:step`` name (of one stage, or of all).

        Examples
        --------
        >>> Lab().steps("veth")
        ['veth:cable', 'veth:address', 'veth:up']
        """
        all_stages = stages.stages(self.count)[1:]  # not the world
        if stage is not None:
            i, _ = stages.find(stage, self.count)
            all_stages = stages.stages(self.count)[i : i + 1]
        return [s.id for st in all_stages for s in st.steps if s.commands]

    def plan(self, stage: str) -> Plan:
        """The steps of ``stage`` and the exact shell commands they equal.

        Examples
        --------
        >>> Lab().plan("veth").commands[0]
        'ip link add veth-red type veth peer name veth-blue'
        """
        i, _ = stages.find(stage, self.count)
        return Plan(stages.stages(self.count)[i])

    # -- reading the kernel ------------------------------------------------

    def _netns(self) -> list[str]:
        nl = netns.get()
        return nl.call(nl.netns_list)

    def state(self) -> State:
        """The kernel's state, as labkit compares it.

        Examples
        --------
        >>> sorted(Lab().state().namespaces)  # doctest: +SKIP
        ['blue', 'red']
        """
        sandbox.require()
        return observe.to_state(observe.snapshot())

    def observe(self) -> nx.Graph:
        """The live topology as a networkx graph (see :mod:`labkit.kernel.observe`).

        Examples
        --------
        >>> g = Lab().observe()  # doctest: +SKIP
        >>> "ns:red" in g  # doctest: +SKIP
        True
        """
        sandbox.require()
        return observe.observe()

    def draw(self, **kwargs: Any) -> Any:
        """Draw the live topology; returns a matplotlib Figure.

        Examples
        --------
        >>> Lab().draw()  # doctest: +SKIP
        <Figure size 900x700 with 1 Axes>
        """
        from labkit import draw

        return draw.draw(self.observe(), **kwargs)

    def stage(self) -> str | None:
        """Which stage (or ``stage:step``) the kernel is at now.

        ``"reset"`` when the lab has nothing; ``None`` when the state
        matches no step (for example after a change made by hand).

        Examples
        --------
        >>> Lab().stage()  # doctest: +SKIP
        'veth'
        """
        sandbox.require()
        state = self.state()
        own = stages.owned(self.count)
        mine = state.project(set(own.namespaces), set(own.ifaces), own.routes)
        for st in reversed(stages.stages(self.count)):
            for j in range(len(st.steps) - 1, -1, -1):
                step = st.steps[j]
                if mine == stages.desired(step.id, self.count):
                    if st.name == "world":
                        return "reset" if j == len(st.steps) - 1 else None
                    return st.name if j == len(st.steps) - 1 else step.id
        return None

    # -- changing the kernel -------------------------------------------------

    def goto(self, target: str, progress: bool | progress_mod.Callback = False) -> list[str]:
        """Bring the kernel to ``target`` (``stage`` or ``stage:step``).

        Works from any state, forward or backward; changes only what
        differs. Returns the shell commands that the changes equal.
        ``"reset"`` removes everything. ``progress=True`` shows a progress
        bar (a widget in a notebook, a line on a terminal); a callable gets
        ``(done, total)`` instead.

        Examples
        --------
        >>> lab = Lab()
        >>> lab.goto("veth")  # doctest: +SKIP
        ['ip netns add blue', 'ip netns add red', 'ip link add veth-red type veth ...', ...]
        >>> lab.goto("veth")  # doctest: +SKIP
        []
        """
        if target == "reset":
            return self.reset(progress)
        count = self.count  # read from the kernel once
        stages.find(target, count)  # a clear error before anything else
        sandbox.require()
        want = stages.desired(target, count)
        before = self.state()
        own = stages.owned(max(count, stages.count_from(before.namespaces)))
        ops = apply.diff(before, want, own, set(own.routes))
        bar = progress_mod.bar(f"{target}:", progress) if ops else None
        try:
            apply.run(ops, bar)
        except Exception:
            self._restore(before, own)
            raise
        finally:
            progress_mod.close(bar)
        return [c for op in ops for c in op.commands]

    def _restore(self, before: State, own: stages.Ownership) -> None:
        """After a failed goto, put back what the lab owned before."""
        target = before.project(set(own.namespaces), set(own.ifaces), own.routes)
        try:
            ops = apply.diff(self.state(), target, own, set(own.routes))
            apply.run(ops)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass

    def reset(self, progress: bool | progress_mod.Callback = False) -> list[str]:
        """Back to a fresh sandbox: only the outside world is left.

        Removes every namespace, link, route, firewall rule and web app
        that is not the world's, hand-made ones included, ends the
        processes in removed namespaces, and repairs the world. Safe to
        call twice. ``progress`` as in :meth:`goto`.

        Examples
        --------
        >>> Lab().reset()  # doctest: +SKIP
        ['ip netns delete blue', 'ip netns delete red', 'ip link delete v-net-0']
        """
        sandbox.require()
        # Every namespace but the world's goes: delete them before reading
        # the rest (the kernel frees them in one batch; nothing to read).
        nl = netns.get()
        doomed = sorted(set(self._netns()) - set(stages.WORLD))
        bar = progress_mod.bar("reset:", progress) if doomed else None
        try:
            if bar:
                bar(0, len(doomed))
            # Bridges in the host first: with their ports gone, the kernel
            # frees the namespaces faster (measured: 0.35 s instead of 0.8
            # for 1000, the bridge taking 0.3 s itself).
            bridges = nl.call(nl.delete_bridges, HOST) if doomed else []
            # The kernel frees them on another CPU while we repair the rest.
            cables = nl.call(nl.netns_del_many, doomed, 10.0, False)
            snap = observe.snapshot()
            for ns, indexes in cables.items():  # going already: not the diff's business
                snap.links[ns] = [lk for lk in snap.links[ns] if lk["index"] not in indexes]
            state = observe.to_state(snap)
            # processes left in namespaces deleted by hand, without a name now
            keep = {os.stat("/proc/self/ns/net").st_ino}
            for name in stages.WORLD:
                try:
                    keep.add(os.stat(os.path.join(sandbox.NETNS_DIR, name)).st_ino)
                except FileNotFoundError:
                    continue
            netns.kill_strays(keep)
            world = stages.owned(2)
            # Here the lab owns everything the sandbox has.
            own = stages.Ownership(
                frozenset(state.namespaces | world.namespaces),
                frozenset(set(state.ifaces) | world.ifaces),
                frozenset({r for r in state.routes if r.ns == HOST} | world.routes),
            )
            want = stages.desired("reset", 2)
            ops = apply.diff(state, want, own, set(own.routes), sweep=True)
            apply.run(ops)
            nl.call(nl.wait_for_cables, cables)
            if bar:
                bar(len(doomed), len(doomed))
        finally:
            progress_mod.close(bar)
        lo = [lk for lk in snap.links.get(HOST, []) if lk["name"] == "lo" and not lk["up"]]
        if lo:  # a fresh sandbox's host has its loopback up
            nl.call(lambda: nl.sock(HOST).request([rtnl.set_link(lo[0]["index"], up=True)]))
        opened = ["ip link set lo up"] if lo else []
        # a chain a learner closed (iptables -P FORWARD DROP) opens again
        for ns, policies in sorted(snap.policies.items()):
            for (table, chain), policy in sorted(policies.items()):
                if policy != "ACCEPT":
                    cmd = ["iptables", "-w", "-t", table, "-P", chain, "ACCEPT"]
                    nl.call(nl.run_in, ns, cmd)
                    prefix = "" if ns == HOST else f"ip netns exec {ns} "
                    opened.append(f"{prefix}iptables -t {table} -P {chain} ACCEPT")
        return (
            [f"ip link delete {name}" for name in bridges]
            + [f"ip netns delete {name}" for name in doomed]
            + [c for op in ops for c in op.commands]
            + opened
        )

    def down(self) -> list[str]:
        """Go back one stage (to ``reset`` from the first).

        Examples
        --------
        >>> Lab().down()  # doctest: +SKIP
        ['ip addr del 192.168.15.5/24 dev v-net-0']
        """
        current = self.stage()
        if current in (None, "reset"):
            return self.reset()
        i = self.stages.index(current.partition(":")[0])
        if i == 0:
            return self.reset()
        return self.goto(self.stages[i - 1])

    def check(self, target: str, probe: bool = True) -> Any:
        """Say in plain words what is right or missing for ``target``.

        Returns a :class:`labkit.checks.Report` (print it). Each problem
        comes with the command that fixes it; when nothing is missing, real
        packets confirm it works.

        Examples
        --------
        >>> print(Lab().check("veth"))  # doctest: +SKIP
        Not yet: 1 thing differs from the veth stage.
          - veth-blue in blue is down.
            fix: ip -n blue link set veth-blue up
        """
        from labkit import checks

        return checks.check(target, self, probe)

    # -- checks from real packets -------------------------------------------

    def _in(self, node: str) -> list[str]:
        if node == HOST:
            return []
        check_netns_name(node)
        if node not in self._netns():
            raise ConfigError(
                f"namespace {node!r} does not exist here: the namespaces are "
                f"{', '.join(self._netns()) or 'none yet'} (and 'host'); build a "
                f"stage first: lab.goto('veth') or `labkit up veth`"
            )
        return ["ip", "netns", "exec", node]

    def ping(self, src: str, dst: str, count: int = 3, timeout: float = 1.0) -> PingResult:
        """Ping ``dst`` from namespace ``src`` (``"host"`` for the host).

        Examples
        --------
        >>> r = Lab().ping("red", "192.168.15.2")  # doctest: +SKIP
        >>> r.loss  # doctest: +SKIP
        0.0
        """
        sandbox.require()
        try:
            ipaddress.ip_address(dst)
        except ValueError:
            raise ConfigError(
                f"{dst!r} is not an IP address: ping takes one like 192.168.15.2"
            ) from None
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100:
            raise ConfigError(f"count must be a whole number between 1 and 100, not {count!r}")
        _check_seconds(timeout)
        argv = [
            *self._in(src),
            "ping",
            "-n",
            "-c",
            str(count),
            "-i",
            "0.2",
            "-W",
            str(timeout),
            dst,
        ]
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=count * (timeout + 1) + 5
        )
        text = proc.stdout + proc.stderr
        m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", text)
        sent, got = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        return PingResult(src, dst, sent, got, text.strip())

    def exec(self, node: str, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command on a node: a namespace, ``"host"`` or a world machine.

        Examples
        --------
        >>> Lab().exec("lan-pc", ["hostname", "-I"]).stdout  # doctest: +SKIP
        '192.168.1.3 \\n'
        """
        sandbox.require()
        if (
            not isinstance(argv, list | tuple)
            or not argv
            or not all(isinstance(a, str) for a in argv)
            or not argv[0]
        ):
            raise ConfigError(
                f"a command is a non-empty list of strings, like ['ip', 'addr'], not {argv!r}"
            )
        return subprocess.run(
            [*self._in(node), *argv], capture_output=True, text=True, timeout=timeout
        )

    def http(self, src: str, url: str, timeout: float = 3.0) -> HttpResult:
        """HTTP GET ``url`` from node ``src`` (with curl, a real TCP connection).

        Examples
        --------
        >>> print(Lab().http("lan-pc", "http://192.168.1.2/"))  # doctest: +SKIP
        lan-pc -> http://192.168.1.2/: HTTP 200: Hello from blue! You came from 192.168.1.3.
        """
        sandbox.require()
        _check_seconds(timeout)
        if not isinstance(url, str) or not re.fullmatch(
            r"https?://[A-Za-z0-9.:\[\]-]+(/[^\s]*)?", url
        ):
            raise ConfigError(f"{url!r} is not an http:// URL like http://203.0.113.8/")
        argv = [
            "curl",
            "-sS",
            "--globoff",  # [1-3] in a URL is not a range of requests
            "--noproxy",
            "*",
            "-m",
            str(timeout),
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
        ]
        proc = subprocess.run(
            [*self._in(src), *argv], capture_output=True, text=True, timeout=timeout + 5
        )
        body, _, code = proc.stdout.rpartition("\n")
        status = int(code) if code.isdigit() else 0
        return HttpResult(src, url, status, body, proc.stderr.strip())

    def nat_counters(self, node: str = HOST) -> list[dict[str, Any]]:
        """The NAT rules of the host (or the router) with their packet counters.

        Examples
        --------
        >>> Lab().nat_counters()  # doctest: +SKIP
        [{'table': 'nat', 'chain': 'POSTROUTING', 'spec': '-s 192.168.15.0/24 -j MASQUERADE', ...}]
        """
        sandbox.require()
        self._in(node)
        return [r for r in observe.snapshot().rules.get(node, []) if r["table"] == "nat"]

    def reachability(
        self, nodes: list[str] | None = None, targets: dict[str, str] | None = None
    ) -> Reachability:
        """Ping every target from every node at once: who reaches whom.

        By default the nodes are the host, the lab's namespaces and the
        world's machines, and the targets their addresses. One real echo
        request per pair, sent in-process (:mod:`labkit.kernel.probe`), a second
        at most to answer. In large labs the probes go in waves that stay
        within the kernel's neighbour-table limit, and the ARP entries they
        made are removed after each wave.

        Examples
        --------
        >>> print(Lab().reachability())  # doctest: +SKIP
        from \\ to  red  blue  host  lan-pc  router  internet
        ...
        """
        sandbox.require()
        if nodes is not None and not isinstance(nodes, list | tuple):
            raise ConfigError(f"nodes is a list of names, like ['red', 'blue'], not {nodes!r}")
        if targets is not None and not isinstance(targets, dict):
            raise ConfigError(
                "targets maps names to addresses like 192.168.15.2, as in "
                f"{{'blue': '192.168.15.2'}}, not {targets!r}"
            )
        present = set(self._netns())
        if targets is None:
            targets = {name: ip for name, ip in stages.namespaces(self.count) if name in present}
            targets.update(
                {
                    "host": stages.HOST_LAN_IP,
                    "lan-pc": stages.LAN_PC_IP,
                    "router": stages.ROUTER_IP,
                    "internet": stages.SERVER_IP,
                }
            )
        if nodes is None:
            nodes = [n for n in targets if n == HOST or n in present]
        for node in nodes:  # each name checked once, before anything is sent
            self._in(node)
        for dst, ip in targets.items():
            try:
                if not isinstance(ip, str):
                    raise ValueError(ip)
                ipaddress.IPv4Address(ip)
            except ValueError:
                raise ConfigError(
                    f"target {dst!r}: {ip!r} is not an IPv4 address (like 192.168.15.2)"
                ) from None
        pairs = [(src, ip) for src in nodes for dst, ip in targets.items() if dst != src]
        nl = netns.get()
        answered = nl.call(probe.ping_many, nl, pairs)
        table = {
            src: {dst: answered[(src, ip)] for dst, ip in targets.items() if dst != src}
            for src in nodes
        }
        return Reachability(table, dict(targets))

    def publish(self, host_port: int, ns: str, port: int = 80) -> list[str]:
        """Start a web app in ``ns`` and forward the host's ``host_port`` to it.

        Like the ``portforward`` stage, for any namespace on the bridge and
        any port: DNAT in PREROUTING (from the LAN and the bridge) and in
        OUTPUT (from the host itself). It needs forwarding and the
        namespace's way back, so the lab must be at ``internet`` or
        later. The next ``goto`` removes it. Returns the commands run.

        Examples
        --------
        >>> lab = Lab()
        >>> lab.goto("internet")  # doctest: +SKIP
        >>> lab.publish(8080, "red")  # doctest: +SKIP
        ['iptables -t nat -A OUTPUT -d 192.168.1.2/32 -p tcp -m tcp --dport 8080 ...', ...]
        """
        sandbox.require()
        for what, value in (("host port", host_port), ("port", port)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
                raise ConfigError(f"{what} must be a whole number from 1 to 65535, not {value!r}")
        self._in(ns)
        if ns == HOST or ns in stages.WORLD:
            raise ConfigError(f"publish a web app in a lab namespace (red, blue, ...), not {ns!r}")
        g = observe.observe()
        back = [r for r in g.nodes[f"ns:{ns}"]["routes"] if r["via"] == stages.HOST_IP]
        if not g.nodes[f"ns:{HOST}"]["forwarding"] or not back:
            raise ConfigError(
                f"publishing needs the host to forward and {ns} to have its way back (a "
                f"route via {stages.HOST_IP}): go to the internet stage first "
                "(lab.goto('internet') or `labkit up internet`)"
            )
        ips = [
            a.split("/")[0]
            for n, d in g.nodes(data=True)
            if d.get("ns") == ns
            for a in d.get("addrs", [])
            if ipaddress.ip_interface(a).ip in stages.network(self.count)
        ]
        if not ips:
            raise ConfigError(f"namespace {ns!r} has no address on {stages.network(self.count)}")
        for rule in g.nodes[f"ns:{HOST}"]["rules"]:
            if (
                rule["table"] == "nat"
                and rule["chain"] == "PREROUTING"
                and f"--dport {host_port} " in rule["spec"] + " "
            ):
                raise ConfigError(
                    f"the host's port {host_port} is already forwarded ({rule['spec']}): "
                    "pick another port, or remove that rule with "
                    f"`iptables -t nat -D PREROUTING {rule['spec']}`"
                )
        running = port in g.nodes[f"ns:{ns}"]["services"]
        spec = (
            f"-d {stages.HOST_LAN_IP}/32 -p tcp -m tcp --dport {host_port} "
            f"-j DNAT --to-destination {ips[0]}:{port}"
        )
        ops = [] if running else [apply.make_op("service_start", Service(ns, port))]
        ops += [
            apply.make_op("rule_add", Rule(HOST, "nat", chain, spec), True)
            for chain in ("PREROUTING", "OUTPUT")
        ]
        apply.run(ops)
        return [c for op in ops for c in op.commands]

    def neighbours(self, node: str) -> dict[str, str]:
        """The ARP table of a namespace: address -> MAC (resolved entries only).

        Examples
        --------
        >>> Lab().neighbours("red")  # doctest: +SKIP
        {'192.168.15.2': '32:bf:7a:e0:4b:cc'}
        """
        sandbox.require()
        self._in(node)
        g = observe.observe()
        return {
            n["ip"]: n["mac"]
            for n in g.nodes[f"ns:{node}"]["neigh"]
            if n["mac"] and n["state"] not in ("FAILED", "INCOMPLETE", "NOARP")
        }

    def routes(self, node: str) -> list[dict[str, Any]]:
        """The IPv4 main routing table of a namespace.

        Examples
        --------
        >>> Lab().routes("red")  # doctest: +SKIP
        [{'dst': '192.168.15.0/24', 'via': None, 'dev': 'veth-red', 'proto': 'kernel'}]
        """
        sandbox.require()
        self._in(node)
        return observe.observe().nodes[f"ns:{node}"]["routes"]
