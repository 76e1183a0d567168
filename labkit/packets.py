"""Real packets and real commands in a lab: ping, HTTP, who reaches whom.

:class:`PacketTests` is the part of :class:`labkit.Lab` that sends packets
and runs commands on a node (a namespace, the host or a world machine);
its results are plain records (:class:`PingResult`, :class:`HttpResult`,
:class:`Reachability`) that print as one line or a table.

Examples
--------
>>> PingResult("red", "192.168.15.2", 3, 3, "").ok
True
"""

from __future__ import annotations

import ipaddress
import math
import re
import subprocess
from dataclasses import dataclass
from typing import Any

from labkit.core import stages
from labkit.core.model import HOST
from labkit.core.names import check_netns_name
from labkit.errors import ConfigError
from labkit.kernel import netns, observe, preflight, probe


def _check_seconds(value: object) -> None:
    """Raise ConfigError unless ``value`` is a number of seconds above 0."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:  # type: ignore[arg-type]
        raise ConfigError(
            f"timeout must be a number of seconds above 0, like 1 or 0.5, not {value!r}"
        )


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


class PacketTests:
    """Ping, HTTP, commands and tables of a node (mixed into :class:`labkit.Lab`).

    Examples
    --------
    >>> from labkit import Lab
    >>> Lab().ping("red", "192.168.15.2").ok  # doctest: +SKIP
    True
    """

    count: int

    def netns_names(self) -> list[str]:
        """Every namespace name in the sandbox (``ip netns``), sorted.

        Examples
        --------
        >>> from labkit import Lab
        >>> Lab().netns_names()  # doctest: +SKIP
        ['blue', 'internet', 'lan-pc', 'red', 'router']
        """
        nl = netns.get()
        return nl.call(nl.netns_list)

    def argv_in(self, node: str) -> list[str]:
        """The words that run a command in ``node``: none for the host.

        Raises :class:`ConfigError` for a namespace that does not exist.

        Examples
        --------
        >>> Lab().argv_in("red")  # doctest: +SKIP
        ['ip', 'netns', 'exec', 'red']
        """
        if node == HOST:
            return []
        check_netns_name(node)
        if node not in self.netns_names():
            raise ConfigError(
                f"namespace {node!r} does not exist here: the namespaces are "
                f"{', '.join(self.netns_names()) or 'none yet'} (and 'host'); build a "
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
        preflight.require()
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
            *self.argv_in(src),
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
        preflight.require()
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
            [*self.argv_in(node), *argv], capture_output=True, text=True, timeout=timeout
        )

    def http(self, src: str, url: str, timeout: float = 3.0) -> HttpResult:
        """HTTP GET ``url`` from node ``src`` (with curl, a real TCP connection).

        Examples
        --------
        >>> print(Lab().http("lan-pc", "http://192.168.1.2/"))  # doctest: +SKIP
        lan-pc -> http://192.168.1.2/: HTTP 200: Hello from blue! You came from 192.168.1.3.
        """
        preflight.require()
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
            [*self.argv_in(src), *argv], capture_output=True, text=True, timeout=timeout + 5
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
        preflight.require()
        self.argv_in(node)
        return [r for r in observe.snapshot().rules.get(node, []) if r["table"] == "nat"]

    def reachability(
        self, nodes: list[str] | None = None, targets: dict[str, str] | None = None
    ) -> Reachability:
        """Ping every target from every node at once: who reaches whom.

        By default the nodes are the host, the lab's namespaces and the
        world's machines, and the targets their addresses: for the host
        and the router, those on the LAN (192.168.1.2 and 192.168.1.1),
        so ``red`` reaches ``host`` only once it has a route to the LAN.
        One real echo request per pair, sent in-process
        (:mod:`labkit.kernel.probe`), with a second to answer; a pair that
        got no answer is tried once more. In large labs the probes go in
        waves that stay within the kernel's neighbour-table limit, and the
        ARP entries they made are removed after each wave.

        Examples
        --------
        >>> print(Lab().reachability())  # doctest: +SKIP
        from \\ to  red  blue  host  lan-pc  router  internet
        ...
        """
        preflight.require()
        if nodes is not None and not isinstance(nodes, list | tuple):
            raise ConfigError(f"nodes is a list of names, like ['red', 'blue'], not {nodes!r}")
        if targets is not None and not isinstance(targets, dict):
            raise ConfigError(
                "targets maps names to addresses like 192.168.15.2, as in "
                f"{{'blue': '192.168.15.2'}}, not {targets!r}"
            )
        present = set(self.netns_names())
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
            self.argv_in(node)
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

    def neighbours(self, node: str) -> dict[str, str]:
        """The ARP table of a namespace: address -> MAC (resolved entries only).

        Examples
        --------
        >>> Lab().neighbours("red")  # doctest: +SKIP
        {'192.168.15.2': '32:bf:7a:e0:4b:cc'}
        """
        preflight.require()
        self.argv_in(node)
        g = observe.graph()
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
        preflight.require()
        self.argv_in(node)
        return observe.graph().nodes[f"ns:{node}"]["routes"]
