""" "Why can't I ping?": follow a packet through the live kernel state.

:func:`why` reads the sandbox (interfaces, addresses, routes, forwarding,
firewall and NAT rules, listening sockets: :mod:`labkit.kernel.observe` plus
``iptables -S`` and ``/proc/net/tcp`` of each namespace on the way) and
walks the way a packet from a node to an address (and a TCP port) would
go: the route its source picks, the cables and bridges to the next hop,
forwarding and the FORWARD chain at each router, NAT on the way out and
DNAT on the way in, something listening at the end, and the way back for
the reply. It stops at the first thing that stops the packet and says it
in plain words with the command that fixes it. Then a real packet checks
the verdict (``confirm=True``).

It models what the course uses (IPv4, the main routing table, veth pairs,
bridges, iptables rules written as the course writes them); something it
cannot judge is said, not guessed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from labkit.core import names, stages
from labkit.core.model import FORWARDING, HOST
from labkit.errors import ConfigError
from labkit.kernel import netns, observe, preflight, services

_MAX_HOPS = 12


@dataclass
class Problem:
    """What stops the packet: a short id, a sentence and the fixing command.

    Examples
    --------
    >>> Problem("forwarding", "the host does not forward", "sysctl -w net.ipv4.ip_forward=1").cause
    'forwarding'
    """

    cause: str
    sentence: str
    fix: str = ""
    node: str = ""


@dataclass
class Hop:
    """One node on the way: where the packet came in and left, and its addresses then.

    Examples
    --------
    >>> str(Hop("host", "v-net-0", "eth0", "192.168.1.2", "203.0.113.8", "source NAT"))
    'the host: in v-net-0, out eth0, 192.168.1.2 -> 203.0.113.8 (source NAT)'
    """

    node: str
    into: str | None
    out: str | None
    src: str
    dst: str
    note: str = ""

    def __str__(self) -> str:
        ways = [f"in {self.into}" if self.into else "", f"out {self.out}" if self.out else ""]
        parts = [w for w in ways if w] + [f"{self.src} -> {self.dst}"]
        tail = f" ({self.note})" if self.note else ""
        return f"{names.where(self.node)}: {', '.join(parts)}{tail}"


@dataclass
class Diagnosis:
    """The verdict: the hops there (and back), and the problem, if any.

    Examples
    --------
    >>> d = Diagnosis("red", "203.0.113.8", None)
    >>> d.ok, str(d).splitlines()[0]
    (True, 'red -> 203.0.113.8 (ping): the path is fine.')
    """

    src: str
    dst: str
    port: int | None
    there: list[Hop] = field(default_factory=list)
    back: list[Hop] = field(default_factory=list)
    problem: Problem | None = None
    confirmed: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing stops the packet.

        Examples
        --------
        >>> Diagnosis("red", "192.168.15.2", None).ok
        True
        """
        return self.problem is None

    def __str__(self) -> str:
        what = f"TCP port {self.port}" if self.port else "ping"
        head = f"{self.src} -> {self.dst} ({what}): "
        lines = []
        if self.problem:
            lines.append(head + self.problem.sentence)
            if self.problem.fix:
                lines.append(f"  fix: {self.problem.fix}")
        else:
            lines.append(head + "the path is fine.")
        if self.there:
            lines.append("  on the way: " + "; ".join(str(h) for h in self.there))
        if self.back:
            lines.append("  the reply: " + "; ".join(str(h) for h in self.back))
        lines += [f"  note: {n}" for n in self.notes]
        if self.confirmed is not None:
            real = "a real packet got through" if self.confirmed else "a real packet got no answer"
            agree = (self.confirmed == self.ok) or (not self.ok and not self.confirmed)
            lines.append(f"  checked: {real}" + ("" if agree else " (labkit's reading disagrees)"))
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


# -- the kernel's state, as the walk needs it ---------------------------------


@dataclass
class _Iface:
    ns: str
    name: str
    kind: str
    up: bool
    carrier: bool
    addrs: list[ipaddress.IPv4Interface]
    master: str | None
    peer: tuple[str, str] | None


class _Kernel:
    """A snapshot of the sandbox plus firewall rules and listeners, read on demand."""

    def __init__(self) -> None:
        self.nl = netns.get()
        snap = observe.snapshot()
        self.snap = snap
        self.ifaces: dict[tuple[str, str], _Iface] = {}
        self.routes: dict[str, list[dict[str, Any]]] = {}
        self.forwarding: dict[str, bool] = {}
        self._rules: dict[str, tuple[list[tuple[str, str, str]], dict[tuple[str, str], str]]] = {}
        self._listen: dict[str, set[int]] = {}
        for ns, links in snap.links.items():
            names = {lk["index"]: lk["name"] for lk in links}
            addrs: dict[int, list[ipaddress.IPv4Interface]] = {}
            for a in snap.addrs.get(ns, []):
                addrs.setdefault(a["index"], []).append(ipaddress.IPv4Interface(a["cidr"]))
            for lk in links:
                where = snap.peers.get((ns, lk["index"]))
                other = snap.link(*where) if where else None
                self.ifaces[(ns, lk["name"])] = _Iface(
                    ns,
                    lk["name"],
                    lk["kind"],
                    lk["up"],
                    lk["oper"] == "UP" or lk["kind"] == "loopback",
                    addrs.get(lk["index"], []),
                    names.get(lk["master"]) if lk["master"] else None,
                    (where[0], other["name"]) if where and other else None,
                )
            self.routes[ns] = snap.routes.get(ns, [])
            self.forwarding[ns] = snap.sysctls.get(ns, {}).get(FORWARDING) == "1"

    @property
    def nodes(self) -> list[str]:
        return list(self.snap.links)

    def of(self, ns: str) -> list[_Iface]:
        return [i for (n, _), i in self.ifaces.items() if n == ns]

    def owner(self, ip: ipaddress.IPv4Address) -> tuple[str, str] | None:
        for key, iface in self.ifaces.items():
            if any(a.ip == ip for a in iface.addrs):
                return key
        return None

    def rules(self, ns: str) -> tuple[list[tuple[str, str, str]], dict[tuple[str, str], str]]:
        """(table, chain, spec) rules and (table, chain) -> policy of ``ns``."""
        if ns not in self._rules:
            if ns in self.snap.rules:  # read with the snapshot already
                found, policies = self.snap.rules[ns], self.snap.policies.get(ns, {})
            else:
                found, policies = self.nl.call(observe.read_firewall, self.nl, ns)
            rules = [(r["table"], r["chain"], r["spec"]) for r in found]
            self._rules[ns] = (rules, policies)
        return self._rules[ns]

    def listening(self, ns: str) -> set[int]:
        if ns not in self._listen:

            def read() -> set[int]:
                return services.listening_ports("/proc/thread-self/net")

            self._listen[ns] = self.nl.call(self.nl.inside, ns, read)
        return self._listen[ns]


# -- matching the course's iptables rules -----------------------------------------


@dataclass
class _Packet:
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    port: int | None  # TCP destination port; None for ping


def _matches(spec: str, pkt: _Packet, into: str | None, out: str | None) -> bool | None:
    """Whether a rule's matches fit the packet; None when labkit cannot judge one."""
    words = spec.split()
    i = 0
    while i < len(words):
        w = words[i]
        arg = words[i + 1] if i + 1 < len(words) else ""
        if w == "-j":
            return True
        if w == "!":
            return None
        if w in ("-s", "-d"):
            net = ipaddress.IPv4Network(arg, strict=False)
            if (pkt.src if w == "-s" else pkt.dst) not in net:
                return False
        elif w == "-i":
            if into != arg:
                return False
        elif w == "-o":
            if out != arg:
                return False
        elif w == "-p":
            if arg != ("tcp" if pkt.port else "icmp") and arg != "all":
                return False
        elif w == "-m" and arg in ("tcp", "comment"):
            pass
        elif w == "--dport":
            if pkt.port != int(arg):
                return False
        elif w == "--comment":
            pass
        else:
            return None
        i += 2
    return True


def _target(spec: str) -> tuple[str, str]:
    m = re.search(r"-j (\S+)(?: --to-destination (\S+))?", spec)
    return (m.group(1), m.group(2) or "") if m else ("", "")


def _nat(
    k: _Kernel, ns: str, chain: str, pkt: _Packet, into: str | None, out: str | None
) -> tuple[str, str] | None:
    """The first NAT rule of ``chain`` that applies: (target, to)."""
    rules, _ = k.rules(ns)
    for table, ch, spec in rules:
        if table == "nat" and ch == chain and _matches(spec, pkt, into, out):
            target = _target(spec)
            if target[0] in ("DNAT", "MASQUERADE", "SNAT"):
                return target
    return None


def _forward_verdict(k: _Kernel, ns: str, pkt: _Packet, into: str, out: str) -> str:
    rules, policies = k.rules(ns)
    for table, chain, spec in rules:
        if table == "filter" and chain == "FORWARD" and _matches(spec, pkt, into, out):
            target = _target(spec)[0]
            if target in ("ACCEPT", "DROP", "REJECT"):
                return target
    return policies.get(("filter", "FORWARD"), "ACCEPT")


# -- the walk ------------------------------------------------------------------------


def _route(k: _Kernel, ns: str, dst: ipaddress.IPv4Address) -> dict[str, Any] | None:
    best = None
    for r in k.routes.get(ns, []):
        net = ipaddress.IPv4Network("0.0.0.0/0" if r["dst"] == "default" else r["dst"])
        if dst in net and (best is None or net.prefixlen > best[0].prefixlen):
            best = (net, r)
    return best[1] if best else None


def _segment(k: _Kernel, start: tuple[str, str]) -> tuple[list[_Iface], Problem | None]:
    """Interfaces a frame sent on ``start`` can reach (cables and bridges that
    are up), and the first thing that is down on the way."""
    seen = {start}
    todo = [start]
    found: list[_Iface] = []
    blocked: Problem | None = None
    while todo:
        iface = k.ifaces.get(todo.pop(0))
        if iface is None:
            continue
        nxt: list[tuple[str, str]] = []
        if iface.kind == "veth" and iface.peer:
            nxt.append(iface.peer)
        if iface.master:
            nxt.append((iface.ns, iface.master))
        if iface.kind == "bridge":
            nxt += [(p.ns, p.name) for p in k.of(iface.ns) if p.master == iface.name]
        for key in nxt:
            other = k.ifaces.get(key)
            if key in seen or other is None:
                continue
            seen.add(key)
            if not other.up:
                if blocked is None:
                    role = {
                        "bridge": "it is the switch the cable plugs into",
                        "veth": f"it is a cable end on the way from {start[1]}",
                    }.get(other.kind, "it is on the way")
                    blocked = Problem(
                        "down",
                        f"{other.name} in {names.where(other.ns)} is down: {role}, "
                        "so frames stop there",
                        f"{names.ip(other.ns)} link set {other.name} up",
                        other.ns,
                    )
                continue
            found.append(other)
            todo.append(key)
    return found, blocked


@dataclass
class _Flow:
    """What NAT did to a connection, so that its reply can be undone on the way back."""

    snat: dict[str, ipaddress.IPv4Address] = field(default_factory=dict)  # node -> old src
    dnat: dict[str, tuple[ipaddress.IPv4Address, int | None]] = field(default_factory=dict)


def _walk(
    k: _Kernel, node: str, pkt: _Packet, flow: _Flow, reply: bool, hops: list[Hop]
) -> tuple[str, _Packet, Problem | None]:
    """Follow ``pkt`` from ``node``; return (where it ends, as what, the problem)."""
    into: str | None = None
    for _ in range(_MAX_HOPS):
        local = k.owner(pkt.dst)
        # DNAT: OUTPUT for what this node sends, PREROUTING for what comes in.
        if pkt.port and not reply:
            chain = "OUTPUT" if into is None else "PREROUTING"
            nat = _nat(k, node, chain, pkt, into, None)
            if nat and nat[0] == "DNAT":
                ip, _, port = nat[1].partition(":")
                flow.dnat[node] = (pkt.dst, pkt.port)
                pkt = _Packet(pkt.src, ipaddress.IPv4Address(ip), int(port) if port else pkt.port)
                hops.append(Hop(node, into, None, str(pkt.src), str(pkt.dst), f"DNAT to {nat[1]}"))
                local = k.owner(pkt.dst)
        if reply and into is not None and node in flow.snat and local and local[0] == node:
            # the reply to a masqueraded connection: conntrack gives it back its address
            pkt = _Packet(pkt.src, flow.snat[node], pkt.port)
            hops.append(Hop(node, into, None, str(pkt.src), str(pkt.dst), "NAT undone"))
            local = k.owner(pkt.dst)
        if local and local[0] == node:
            hops.append(Hop(node, into, None, str(pkt.src), str(pkt.dst), "delivered"))
            return node, pkt, None
        if into is not None:
            if not k.forwarding.get(node):
                return (
                    node,
                    pkt,
                    Problem(
                        "forwarding",
                        f"{names.where(node)} receives the packet on {into} but does not forward "
                        f"packets ({FORWARDING} = 0), so it drops it",
                        names.in_ns(node, f"sysctl -w {FORWARDING}=1"),
                        node,
                    ),
                )
        route = _route(k, node, pkt.dst)
        if route is None:
            return node, pkt, _no_route(k, node, pkt, reply, into)
        out = route["dev"]
        iface = k.ifaces.get((node, out))
        if iface is None or not iface.up:
            return (
                node,
                pkt,
                Problem(
                    "down",
                    f"{out} in {names.where(node)} is down",
                    f"{names.ip(node)} link set {out} up",
                    node,
                ),
            )
        if into is not None:
            verdict = _forward_verdict(k, node, pkt, into, out)
            if verdict != "ACCEPT":
                return (
                    node,
                    pkt,
                    Problem(
                        "forward-drop",
                        f"the firewall of {names.where(node)} drops forwarded packets "
                        f"(FORWARD chain: {verdict})",
                        names.in_ns(node, "iptables -P FORWARD ACCEPT"),
                        node,
                    ),
                )
        note = ""
        nat = _nat(k, node, "POSTROUTING", pkt, into, out)
        if nat and nat[0] in ("MASQUERADE", "SNAT") and not reply:
            mine = [a.ip for a in iface.addrs]
            if mine and pkt.src != mine[0]:
                flow.snat[node] = pkt.src
                pkt = _Packet(mine[0], pkt.dst, pkt.port)
                note = f"source becomes {mine[0]}"
        hops.append(Hop(node, into, out, str(pkt.src), str(pkt.dst), note))
        hop_ip = ipaddress.IPv4Address(route["via"]) if route.get("via") else pkt.dst
        reached, blocked = _segment(k, (node, out))
        target = next((i for i in reached if any(a.ip == hop_ip for a in i.addrs)), None)
        if target is None:
            return node, pkt, blocked or _unresolved(k, node, out, hop_ip, reached)
        node, into = target.ns, target.name
    return node, pkt, Problem("loop", "the packet goes round in circles (a routing loop)", "", node)


def _unresolved(
    k: _Kernel, node: str, out: str, hop_ip: ipaddress.IPv4Address, reached: list[_Iface]
) -> Problem:
    """ARP for ``hop_ip`` gets no answer: say where that address is, if anywhere."""
    sentence = (
        f"nobody on the network of {out} ({names.where(node)}) has {hop_ip}: ARP gets no "
        "answer, so the packet never leaves"
    )
    owner = k.owner(hop_ip)
    if owner is None:
        return Problem("arp", sentence + f"; no namespace here has {hop_ip}", "", node)
    bridges = {(i.ns, i.name) for i in reached if i.kind == "bridge"}
    far, _ = _segment(k, owner)
    for end in [k.ifaces[owner], *far]:
        if end.kind == "veth" and not end.master and bridges:
            ns, bridge = sorted(bridges)[0]
            if end.ns == ns:
                return Problem(
                    "arp",
                    f"{sentence}. {owner[1]} in {names.where(owner[0])} has it, but its cable "
                    f"end {end.name} ({names.where(end.ns)}) is not plugged into {bridge}",
                    f"{names.ip(ns)} link set {end.name} master {bridge}",
                    ns,
                )
    return Problem(
        "arp",
        f"{sentence}. {owner[1]} in {names.where(owner[0])} has it, but no cable or bridge "
        f"joins it to {out}",
        "",
        node,
    )


def _no_route(k: _Kernel, node: str, pkt: _Packet, reply: bool, into: str | None) -> Problem:
    ifaces = [i for i in k.of(node) if i.kind != "loopback"]
    if not any(i.addrs for i in ifaces) and into is None:
        planned = dict(stages.namespaces(stages.MAX_NAMESPACES)).get(node)
        fix = ""
        if planned and (node, f"veth-{node}") in k.ifaces:
            fix = f"ip -n {node} addr add {planned}/24 dev veth-{node}"
        return Problem("no-address", f"{names.where(node)} has no IPv4 address at all", fix, node)
    for i in ifaces:
        if not i.up and i.addrs and any(pkt.dst in a.network for a in i.addrs):
            return Problem(
                "down",
                f"{i.name} in {names.where(node)} is down (its network {i.addrs[0].network} has "
                f"{pkt.dst})",
                f"{names.ip(node)} link set {i.name} up",
                node,
            )
    on_bridge = any(
        a.ip == ipaddress.IPv4Address(stages.HOST_IP) for i in k.of(HOST) for a in i.addrs
    )
    if node != HOST and node not in stages.WORLD and on_bridge:
        fix = f"ip netns exec {node} ip route add default via {stages.HOST_IP}"
    else:
        fix = f"{names.ip(node)} route add {pkt.dst} via <a router on a network you have>"
    return Problem(
        "no-route",
        f"{names.where(node)} has no route to {pkt.dst}: "
        "the kernel answers 'Network is unreachable'",
        fix,
        node,
    )


def diagnose(src: str, dst: str, port: int | None = None) -> Diagnosis:
    """Walk the way from node ``src`` to address ``dst`` (and TCP ``port``) and back.

    Examples
    --------
    >>> print(diagnose("red", "203.0.113.8"))  # doctest: +SKIP
    red -> 203.0.113.8 (ping): the host receives the packet on v-net-0 but does not
    forward packets (net.ipv4.ip_forward = 0), so it drops it
      fix: sysctl -w net.ipv4.ip_forward=1
    """
    preflight.require()
    try:
        if not isinstance(dst, str):
            raise ValueError(dst)
        target = ipaddress.IPv4Address(dst)
    except ValueError:
        raise ConfigError(f"{dst!r} is not an IPv4 address (like 192.168.15.2)") from None
    if port is not None and (
        not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535
    ):
        raise ConfigError(f"the port must be a whole number from 1 to 65535, not {port!r}")
    k = _Kernel()
    if src not in k.nodes:
        known = ", ".join(k.nodes)
        raise ConfigError(f"there is no node {src!r} here: the nodes are {known}")
    result = Diagnosis(src, dst, port)
    mine = [a.ip for i in k.of(src) for a in i.addrs]
    first = mine[0] if mine else ipaddress.IPv4Address("0.0.0.0")
    route = _route(k, src, target)
    owner = k.owner(target)
    if owner and owner[0] == src:
        first = target
    elif route and route.get("dev"):
        out = k.ifaces.get((src, route["dev"]))
        if out and out.addrs:
            first = out.addrs[0].ip
    flow = _Flow()
    end, pkt, problem = _walk(k, src, _Packet(first, target, port), flow, False, result.there)
    if problem:
        result.problem = problem
        return result
    if pkt.port and pkt.port not in k.listening(end):
        result.problem = _nothing_listens(k, src, end, pkt, dst, flow)
        return result
    reply = _Packet(pkt.dst, pkt.src, None)
    back_end, _, problem = _walk(k, end, reply, flow, True, result.back)
    if problem:
        result.problem = _lost_reply(end, reply, flow, problem, result.back)
    elif back_end != src:
        result.notes.append(f"the reply ends in {names.where(back_end)}, not {names.where(src)}")
    return result


def _lost_reply(
    end: str, reply: _Packet, flow: _Flow, problem: Problem, back: list[Hop]
) -> Problem:
    """Why a reply gets lost, said from the learner's side."""
    if problem.cause == "no-route" and problem.node == end and not back:
        fix = problem.fix
        if end != HOST and end not in stages.WORLD:
            fix = f"ip netns exec {end} ip route add {reply.dst} via {stages.HOST_IP}"
        return Problem(
            "no-route-back",
            f"the packet arrives, but {names.where(end)} has no route back to {reply.dst}, so "
            "the reply is never sent",
            fix,
            end,
        )
    lab_net = ipaddress.IPv4Network(f"{stages.SUBNET}.0/{stages.PREFIX}")
    if not flow.snat and reply.dst in lab_net:
        return Problem(
            "no-nat",
            f"the packet arrives, but the reply to {reply.dst} gets lost in "
            f"{names.where(problem.node)}: outside the host nobody knows {lab_net}, and nothing "
            "translated the source address on the way out. NAT on the host fixes it",
            f"iptables -t nat -A POSTROUTING -s {lab_net} -j MASQUERADE",
            HOST,
        )
    return Problem(
        problem.cause,
        f"the packet arrives, but the reply gets lost: {problem.sentence}",
        problem.fix,
        problem.node,
    )


def _nothing_listens(
    k: _Kernel, src: str, end: str, pkt: _Packet, asked: str, flow: _Flow
) -> Problem:
    port = pkt.port
    at = pkt.dst
    rules, _ = k.rules(end)
    forwards = [spec for t, ch, spec in rules if t == "nat" and f"--dport {port} " in spec + " "]
    if end == HOST and src == HOST and not flow.dnat and forwards:
        return Problem(
            "no-output-dnat",
            f"the host's own requests to {asked}:{port} skip PREROUTING, where the port "
            "forward is; nothing listens on the host itself",
            f"iptables -t nat -A OUTPUT -d {asked}/32 -p tcp -m tcp --dport {port} "
            f"-j DNAT --to-destination {stages.APP_IP}:{port}",
            HOST,
        )
    if end == HOST and not flow.dnat:
        return Problem(
            "no-dnat",
            f"nothing listens on the host's port {port}, and no DNAT rule forwards it to a "
            "namespace (the tutorial's rule fails without `-p tcp`)",
            f"iptables -t nat -A PREROUTING -d {asked}/32 -p tcp -m tcp --dport {port} "
            f"-j DNAT --to-destination {stages.APP_IP}:{port}",
            HOST,
        )
    return Problem(
        "not-listening",
        f"the packet reaches {names.where(end)} ({at}), "
        f"but nothing listens on TCP port {port} there",
        names.in_ns(end, f"python3 -m labkit.webapp --name {end} {port} &"),
        end,
    )


def why(src: str, dst: str, port: int | None = None, confirm: bool = True) -> Diagnosis:
    """Diagnose, then send a real packet (a ping, or an HTTP request) to check.

    Examples
    --------
    >>> print(why("lan-pc", "192.168.1.2", 80))  # doctest: +SKIP
    lan-pc -> 192.168.1.2 (TCP port 80): the path is fine.
    ...
      checked: a real packet got through
    """
    result = diagnose(src, dst, port)
    if confirm:
        from labkit.lab import Lab

        lab = Lab()
        if port:
            result.confirmed = lab.http(src, f"http://{dst}:{port}/", timeout=2).status > 0
        else:
            result.confirmed = lab.ping(src, dst, count=2).received > 0
    return result
