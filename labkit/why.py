""" "Why can't I ping?": follow a packet through the live kernel state.

:func:`why` reads the sandbox (interfaces, addresses, routes, forwarding,
firewall and NAT rules, listening sockets: :mod:`labkit.kernel.observe` plus
``iptables -S`` and ``/proc/net/tcp`` of each namespace on the way) and
walks the way a packet from a node to an address (and a TCP port) would
go: the route its source picks, the cables and bridges to the next hop,
forwarding and the FORWARD chain at each router, NAT on the way out and
DNAT on the way in, something listening at the end, and the way back for
the reply. It names the first thing that stops the packet, at its root (an
interface that is down, not the routes the kernel removed with it), in
plain words. Then it works out the fix: it applies each fixing command to
its own copy of the state and walks again, until the packet gets through,
so that when one command is not enough it lists them all, in the order to
run them. It never prints a command that would fail or that it cannot
predict. Then a real packet checks the verdict (``confirm=True``).

Where a fix needs what the course had (an address, a route), it is taken
from the course's last stage (:func:`labkit.core.stages.desired`).

The module is larger because the walk, the causes and their fixes share
one private copy of the kernel's state, which each fix changes; apart, each
part would reach into the others' internals.

It models what the course uses (IPv4, the main routing table, veth pairs,
bridges, iptables rules written as the course writes them); something it
cannot judge is said, not guessed.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from labkit.core import names, stages
from labkit.core.model import FORWARDING, HOST, MARK, Rule
from labkit.errors import ConfigError
from labkit.kernel import netns, observe, preflight, services

_MAX_HOPS = 12
#: at most this many fixes in a row (the course's faults need at most four)
_MAX_STEPS = 8


@dataclass
class Problem:
    """What stops the packet: a short id, a sentence and the fixing command.

    ``fix`` is empty when labkit knows no command that surely fixes it.
    ``change`` is what the fix does, for labkit's own copy of the state.

    Examples
    --------
    >>> Problem("forwarding", "the host does not forward", "sysctl -w net.ipv4.ip_forward=1").cause
    'forwarding'
    """

    cause: str
    sentence: str
    fix: str = ""
    node: str = ""
    change: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)


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
    """The verdict: the hops there (and back), the problem, and the steps that fix it.

    ``problem`` is the root cause (the first of ``steps``); ``steps`` are the
    problems in the order their fixes must run, the last one without a fix
    when labkit knows none; :attr:`fixes` are their commands.

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
    steps: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing stops the packet.

        Examples
        --------
        >>> Diagnosis("red", "192.168.15.2", None).ok
        True
        """
        return self.problem is None

    @property
    def fixes(self) -> list[str]:
        """The shell commands that fix the path, in the order to run them.

        Empty when the path is fine or labkit knows no fix for the first step.

        Examples
        --------
        >>> up = Problem("down", "veth-red in red is down", "ip -n red link set veth-red up")
        >>> Diagnosis("red", "192.168.15.2", None, problem=up, steps=[up]).fixes
        ['ip -n red link set veth-red up']
        """
        out = []
        for step in self.steps or ([self.problem] if self.problem else []):
            if not step.fix:
                break
            out.append(step.fix)
        return out

    def __str__(self) -> str:
        what = f"TCP port {self.port}" if self.port else "ping"
        head = f"{self.src} -> {self.dst} ({what}): "
        lines = []
        if self.problem:
            lines.append(head + self.problem.sentence)
            lines += self._fix_lines()
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

    def _fix_lines(self) -> list[str]:
        steps = self.steps or ([self.problem] if self.problem else [])
        if not steps or not steps[0].fix:
            return []
        if len(steps) == 1:
            return [f"  fix: {steps[0].fix}"]
        lines = ["  fix, in this order:", f"    1. {steps[0].fix}"]
        for n, step in enumerate(steps[1:], start=2):
            if step.fix:
                lines.append(f"    {n}. {step.fix}")
                lines.append(f"       (after step {n - 1}: {step.sentence})")
            else:
                lines.append(
                    f"  after step {n - 1}: {step.sentence}; labkit knows no command that "
                    "surely fixes that"
                )
        return lines

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
        self._marked: set[tuple[str, str, str, str]] = set()  # (ns, table, chain, spec)
        self._listen: dict[str, set[int]] = {}
        self._plan: tuple[dict[Any, Any], dict[Any, Any], dict[Any, Any]] | None = None
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
            self._marked |= {(ns, r["table"], r["chain"], r["spec"]) for r in found if r["marked"]}
            self._rules[ns] = (rules, dict(policies))
        return self._rules[ns]

    def rule_command(self, ns: str, verb: str, table: str, chain: str, spec: str) -> str:
        """The iptables command that adds or deletes a rule, with labkit's mark if it has it."""
        mark = MARK if (ns, table, chain, spec) in self._marked else None
        return Rule(ns, table, chain, spec).command(verb, mark=mark)

    def listening(self, ns: str) -> set[int]:
        if ns not in self._listen:

            def read() -> set[int]:
                return services.listening_ports("/proc/thread-self/net")

            self._listen[ns] = self.nl.call(self.nl.inside, ns, read)
        return self._listen[ns]

    @property
    def count(self) -> int:
        return stages.count_from(self.nodes)

    def planned_addrs(self, ns: str, name: str) -> list[ipaddress.IPv4Interface]:
        """The addresses the course gives interface ``name`` of ``ns`` (its last stage)."""
        return self._planned()[0].get((ns, name), [])

    def planned_owner(self, ip: ipaddress.IPv4Address) -> tuple[str, str] | None:
        """The interface that has ``ip`` in the course (its last stage), if it exists now."""
        for key, cidrs in self._planned()[0].items():
            if key in self.ifaces and any(c.ip == ip for c in cidrs):
                return key
        return None

    def planned_master(self, ns: str, name: str) -> str | None:
        """The bridge the course plugs interface ``name`` of ``ns`` into (its last stage)."""
        return self._planned()[2].get((ns, name))

    def planned_routes(self, ns: str) -> list[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]]:
        """The static routes the course gives ``ns`` (its last stage): (network, gateway)."""
        return self._planned()[1].get(ns, [])

    def _planned(self) -> tuple[dict[Any, Any], dict[Any, Any], dict[Any, Any]]:
        if self._plan is None:
            want = stages.desired(stages.STAGE_NAMES[-1], self.count)
            addrs = {
                key: sorted(ipaddress.IPv4Interface(a) for a in iface.addrs)
                for key, iface in want.ifaces.items()
            }
            routes: dict[str, list[Any]] = {}
            for r in sorted(want.routes):
                net = ipaddress.IPv4Network("0.0.0.0/0" if r.dst == "default" else r.dst)
                routes.setdefault(r.ns, []).append((net, ipaddress.IPv4Address(r.via)))
            masters = {key: i.master for key, i in want.ifaces.items() if i.master}
            self._plan = (addrs, routes, masters)
        return self._plan

    # -- what a fix does, to this copy of the state (never to the kernel) --

    def change(self, change: tuple[Any, ...]) -> None:
        """Apply a fix's ``change`` (see :data:`_CHANGES`) to this snapshot."""
        _CHANGES[change[0]](self, *change[1:])

    def _connect(self, iface: _Iface) -> None:
        """The routes the kernel adds for an interface that is up with addresses."""
        for a in iface.addrs:
            net = str(a.network)
            routes = self.routes.setdefault(iface.ns, [])
            if not any(r["dst"] == net and r["dev"] == iface.name for r in routes):
                routes.append({"dst": net, "via": None, "proto": "kernel", "dev": iface.name})

    def _up(self, ns: str, name: str) -> None:
        iface = self.ifaces[(ns, name)]
        iface.up = True
        self._connect(iface)

    def _addr(self, ns: str, name: str, cidr: str) -> None:
        iface = self.ifaces[(ns, name)]
        iface.addrs.append(ipaddress.IPv4Interface(cidr))
        if iface.up:
            self._connect(iface)

    def _route_add(self, ns: str, dst: str, via: str | None, dev: str) -> None:
        self.routes.setdefault(ns, []).append({"dst": dst, "via": via, "dev": dev})

    def _forward(self, ns: str) -> None:
        self.forwarding[ns] = True

    def _policy(self, ns: str, chain: str, policy: str) -> None:
        self.rules(ns)[1][("filter", chain)] = policy

    def _rule_add(self, ns: str, table: str, chain: str, spec: str) -> None:
        self.rules(ns)[0].append((table, chain, spec))

    def _rule_del(self, ns: str, table: str, chain: str, spec: str) -> None:
        self.rules(ns)[0].remove((table, chain, spec))

    def _master(self, ns: str, name: str, bridge: str) -> None:
        self.ifaces[(ns, name)].master = bridge

    def _listen_on(self, ns: str, port: int) -> None:
        self.listening(ns).add(port)


#: what each kind of fix does to labkit's copy of the state: (kind, arguments...)
_CHANGES = {
    "up": _Kernel._up,  # (ns, name): the link comes up, with its connected routes
    "addr": _Kernel._addr,  # (ns, name, cidr)
    "route": _Kernel._route_add,  # (ns, dst, via or None, dev)
    "forward": _Kernel._forward,  # (ns,)
    "policy": _Kernel._policy,  # (ns, chain, policy) of the filter table
    "rule": _Kernel._rule_add,  # (ns, table, chain, spec), appended
    "unrule": _Kernel._rule_del,  # (ns, table, chain, spec)
    "master": _Kernel._master,  # (ns, name, bridge)
    "listen": _Kernel._listen_on,  # (ns, port)
}


# -- matching the course's iptables rules -----------------------------------------


@dataclass
class _Packet:
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    port: int | None  # TCP destination port; None for ping


def _matches(spec: str, pkt: _Packet, into: str | None, out: str | None) -> bool | None:
    """Whether a rule's matches fit the packet; None when labkit cannot judge one."""
    try:
        words = shlex.split(spec)  # a comment may be quoted
    except ValueError:
        return None
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


def _filter_verdict(
    k: _Kernel, ns: str, chain: str, pkt: _Packet, into: str | None, out: str | None
) -> tuple[str, str | None]:
    """What ``chain`` of the filter table does with the packet, and the deciding rule
    (None: the policy). A rule labkit cannot judge that would accept gets the benefit of
    the doubt: no fix is better than a wrong one."""
    rules, policies = k.rules(ns)
    for table, ch, spec in rules:
        if table != "filter" or ch != chain:
            continue
        target = _target(spec)[0]
        fits = _matches(spec, pkt, into, out)
        if fits is None and target == "ACCEPT":
            return "ACCEPT", spec
        if fits and target in ("ACCEPT", "DROP", "REJECT"):
            return target, spec
    return policies.get(("filter", chain), "ACCEPT"), None


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
                    blocked = _down(
                        other,
                        f"{other.name} in {names.where(other.ns)} is down: {role}, "
                        "so frames stop there",
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
            if into is None:  # to itself: out and in again by lo
                verdict, rule = _filter_verdict(k, node, "OUTPUT", pkt, None, "lo")
                if verdict != "ACCEPT":
                    return node, pkt, _filter_drop(k, node, "OUTPUT", verdict, rule)
            verdict, rule = _filter_verdict(k, node, "INPUT", pkt, into or "lo", None)
            if verdict != "ACCEPT":
                return node, pkt, _filter_drop(k, node, "INPUT", verdict, rule)
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
                        ("forward", node),
                    ),
                )
        route = _route(k, node, pkt.dst)
        wrong = _no_route(k, node, pkt, into, route)
        if wrong is not None or route is None:
            return node, pkt, wrong
        out = route["dev"]
        iface = k.ifaces.get((node, out))
        if iface is None:
            return node, pkt, Problem("down", f"{out} in {names.where(node)} is gone", "", node)
        if not iface.up:
            return node, pkt, _down(iface, f"{out} in {names.where(node)} is down")
        chain = "OUTPUT" if into is None else "FORWARD"
        verdict, rule = _filter_verdict(k, node, chain, pkt, into, out)
        if verdict != "ACCEPT":
            return node, pkt, _filter_drop(k, node, chain, verdict, rule)
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


def _down(iface: _Iface, sentence: str) -> Problem:
    """An interface that is down: bringing it up always works."""
    return Problem(
        "down",
        sentence,
        f"{names.ip(iface.ns)} link set {iface.name} up",
        iface.ns,
        ("up", iface.ns, iface.name),
    )


#: what each chain of the filter table holds, for a sentence, and the cause's id
_CHAINS = {
    "FORWARD": ("forwarded packets", "forward-drop"),
    "INPUT": ("packets for {node} itself", "input-drop"),
    "OUTPUT": ("packets {node} sends", "output-drop"),
}


def _filter_drop(k: _Kernel, node: str, chain: str, verdict: str, rule: str | None) -> Problem:
    where = names.where(node)
    what, cause = _CHAINS[chain]
    if rule is None:
        return Problem(
            cause,
            f"the firewall of {where} drops {what.format(node=where)} ({chain} chain: {verdict})",
            names.in_ns(node, f"iptables -P {chain} ACCEPT"),
            node,
            ("policy", node, chain, "ACCEPT"),
        )
    return Problem(
        cause,
        f"the firewall of {where} drops this packet: the {chain} rule `{rule}` says {verdict}",
        k.rule_command(node, "-D", "filter", chain, rule),
        node,
        ("unrule", node, "filter", chain, rule),
    )


def _route_fix(node: str, dst: str, via: str | None, dev: str) -> tuple[str, tuple[Any, ...]]:
    """The command that adds a route, and its change."""
    where = f"via {via}" if via else f"dev {dev}"
    return names.in_ns(node, f"ip route add {dst} {where}"), ("route", node, dst, via, dev)


def _on_link(k: _Kernel, ns: str, ip: ipaddress.IPv4Address) -> _Iface | None:
    """The interface of ``ns`` that is up and has a connected route to ``ip``, if any."""
    for r in k.routes.get(ns, []):
        if r.get("via") or r["dst"] == "default":
            continue
        iface = k.ifaces.get((ns, r["dev"]))
        if iface and iface.up and ip in ipaddress.IPv4Network(r["dst"]):
            return iface
    return None


def _unresolved(
    k: _Kernel, node: str, out: str, hop_ip: ipaddress.IPv4Address, reached: list[_Iface]
) -> Problem:
    """ARP for ``hop_ip`` gets no answer: say where that address is, if anywhere."""
    sentence = (
        f"nobody on the network of {out} ({names.where(node)}) has {hop_ip}: ARP gets no "
        "answer, so the packet never leaves"
    )
    owner = k.owner(hop_ip)
    # the far side: who has the address, or else who has it in the course
    side = owner or k.planned_owner(hop_ip)
    far = _segment(k, side)[0] if side else []
    theirs = [k.ifaces[side], *far] if side else []
    has = ""
    if owner:
        has = f"{owner[1]} in {names.where(owner[0])} has it, but "
    elif side:
        has = f"In the course {side[1]} in {names.where(side[0])} has it; "
    bridges = {(i.ns, i.name) for i in [*reached, *far] if i.kind == "bridge"}
    # first a cable end out of its bridge, on either side
    for end in [*theirs, k.ifaces[(node, out)], *reached]:
        if end.kind != "veth" or end.master:
            continue
        # the bridge the course plugs it into, or else the one on the way in its namespace
        planned = k.planned_master(end.ns, end.name)
        here = sorted(b for ns, b in bridges if ns == end.ns)
        bridge = planned if planned and (end.ns, planned) in k.ifaces else next(iter(here), None)
        if bridge:
            whose = "its" if end in theirs else "the"
            lead = f"{has}{whose}" if has else whose.capitalize()
            return Problem(
                "arp",
                f"{sentence}. {lead} cable end {end.name} ({names.where(end.ns)}) "
                f"is not plugged into {bridge}",
                f"{names.ip(end.ns)} link set {end.name} master {bridge}",
                end.ns,
                ("master", end.ns, end.name, bridge),
            )
    if owner is None:  # then the address the course gives an end on the way
        for iface in [*reached, k.ifaces[(node, out)], *theirs]:
            if iface.kind == "bridge" or not iface.master:  # an end that holds addresses
                for cidr in k.planned_addrs(iface.ns, iface.name):
                    if cidr.ip == hop_ip:
                        now = ", ".join(str(a) for a in iface.addrs) or "no address"
                        return Problem(
                            "arp",
                            f"{sentence}. In the course {iface.name} in "
                            f"{names.where(iface.ns)} has {cidr}; it has {now}",
                            f"{names.ip(iface.ns)} addr add {cidr} dev {iface.name}",
                            iface.ns,
                            ("addr", iface.ns, iface.name, str(cidr)),
                        )
        return Problem("arp", sentence + f"; no namespace here has {hop_ip}", "", node)
    return Problem("arp", f"{sentence}. {has}no cable or bridge joins it to {out}", "", node)


@dataclass
class _Way:
    """A way the course has from a node to an address: an interface, and a gateway or not."""

    iface: _Iface
    net: ipaddress.IPv4Network  # the route's destination (the connected network without via)
    via: ipaddress.IPv4Address | None
    cidr: ipaddress.IPv4Interface  # the interface's address this way needs


def _ways(k: _Kernel, node: str, dst: ipaddress.IPv4Address) -> list[_Way]:
    """The course's ways from ``node`` to ``dst``, the most specific first."""
    ifaces = [i for i in k.of(node) if i.kind != "loopback" and not i.master]
    ways = []
    for iface in ifaces:
        for cidr in [*iface.addrs, *k.planned_addrs(node, iface.name)]:
            if dst in cidr.network:
                ways.append(_Way(iface, cidr.network, None, cidr))
    for net, via in k.planned_routes(node):
        if dst not in net:
            continue
        for iface in ifaces:
            cidrs = [*iface.addrs, *k.planned_addrs(node, iface.name)]
            cidr = next((c for c in cidrs if via in c.network), None)
            if cidr is not None:
                ways.append(_Way(iface, net, via, cidr))
                break
    return sorted(ways, key=lambda w: -w.net.prefixlen)


def _no_route(
    k: _Kernel, node: str, pkt: _Packet, into: str | None, route: dict[str, Any] | None
) -> Problem | None:
    """No route to ``pkt.dst``, or only a less specific ``route`` that leads elsewhere than
    the course's way: the root of it, from the interface to the route. None when ``route``
    is right."""
    where = names.where(node)
    unreachable = f"{where} has no route to {pkt.dst}"
    nothing = not any(i.addrs for i in k.of(node) if i.kind != "loopback")
    ways = _ways(k, node, pkt.dst)
    if route is not None:
        net = ipaddress.IPv4Network("0.0.0.0/0" if route["dst"] == "default" else route["dst"])
        ways = [
            w
            for w in ways
            if w.net.prefixlen > net.prefixlen
            and (w.iface.name != route["dev"] or str(w.via or "") != (route.get("via") or ""))
        ]
        if not ways:
            return None
        name = "default route" if route["dst"] == "default" else f"route to {route['dst']}"
        unreachable += f" but its {name} out {route['dev']}, which leads elsewhere"
    if not ways:
        if nothing and into is None:
            return Problem("no-address", f"{where} has no IPv4 address at all", "", node)
        return Problem("no-route", f"{unreachable}: {_unreachable(into)}", "", node)
    way = ways[0]
    iface = way.iface
    if not iface.up:
        return _down(
            iface,
            f"{iface.name} in {where} is down, so {unreachable}: the kernel takes away an "
            "interface's routes when it goes down",
        )
    if way.cidr not in iface.addrs and not any(
        (way.via or pkt.dst) in a.network for a in iface.addrs
    ):
        sentence = (
            f"{where} has no IPv4 address at all"
            if nothing and into is None
            else f"{iface.name} in {where} has no address on {way.cidr.network}, so {unreachable}"
        )
        return Problem(
            "no-address",
            sentence,
            f"{names.ip(node)} addr add {way.cidr} dev {iface.name}",
            node,
            ("addr", node, iface.name, str(way.cidr)),
        )
    if way.via is None or _on_link(k, node, way.via) is None:
        # the connected route is gone, though the interface is up with its address
        net = next(a.network for a in iface.addrs if (way.via or pkt.dst) in a.network)
        fix, change = _route_fix(node, str(net), None, iface.name)
        return Problem(
            "no-route",
            f"{unreachable}: the route to {net} that comes with {iface.name}'s address is gone",
            fix,
            node,
            change,
        )
    dst = "default" if way.net.prefixlen == 0 else str(way.net)
    fix, change = _route_fix(node, dst, str(way.via), iface.name)
    if route is None:
        unreachable += f": {_unreachable(into)}"
    return Problem("no-route", unreachable, fix, node, change)


def _unreachable(into: str | None) -> str:
    """What the sender sees when a machine has no route: an error at home, an ICMP on the way.

    Examples
    --------
    >>> _unreachable(None)
    "the kernel answers 'Network is unreachable'"
    >>> _unreachable("veth-red-br")
    "it drops the packet and sends back an ICMP 'Destination Net Unreachable'"
    """
    if into is None:
        return "the kernel answers 'Network is unreachable'"
    return "it drops the packet and sends back an ICMP 'Destination Net Unreachable'"


def _start(k: _Kernel, src: str, target: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
    """The source address the kernel picks for a packet from ``src`` to ``target``."""
    mine = [a.ip for i in k.of(src) for a in i.addrs]
    owner = k.owner(target)
    if owner and owner[0] == src:
        return target
    route = _route(k, src, target)
    if route and route.get("dev"):
        out = k.ifaces.get((src, route["dev"]))
        if out and out.addrs:
            return out.addrs[0].ip
    return mine[0] if mine else ipaddress.IPv4Address("0.0.0.0")


def _once(
    k: _Kernel, src: str, target: ipaddress.IPv4Address, port: int | None, result: Diagnosis
) -> Problem | None:
    """One walk there and back over ``k``: the first problem, or None."""
    flow = _Flow()
    pkt0 = _Packet(_start(k, src, target), target, port)
    end, pkt, problem = _walk(k, src, pkt0, flow, False, result.there)
    if problem:
        return problem
    if pkt.port and pkt.port not in k.listening(end):
        return _nothing_listens(k, src, end, pkt, str(target), flow)
    reply = _Packet(pkt.dst, pkt.src, None)
    back_end, _, problem = _walk(k, end, reply, flow, True, result.back)
    if problem:
        return _lost_reply(k, end, reply, pkt0.src, flow, problem, result.back)
    if back_end != src:
        result.notes.append(f"the reply ends in {names.where(back_end)}, not {names.where(src)}")
    return None


def diagnose(src: str, dst: str, port: int | None = None) -> Diagnosis:
    """Walk the way from node ``src`` to address ``dst`` (and TCP ``port``) and back.

    The result names the root cause and, in ``steps``, every fix needed, in order.

    Examples
    --------
    >>> print(diagnose("red", "203.0.113.8"))  # doctest: +SKIP
    red -> 203.0.113.8 (ping): veth-red in red is down, so red has no route to 203.0.113.8: the
    kernel takes away an interface's routes when it goes down
      fix, in this order:
        1. ip -n red link set veth-red up
        2. ip netns exec red ip route add default via 192.168.15.5
           (after step 1: red has no route to 203.0.113.8: the kernel answers 'Network is ...
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
    problem = _once(k, src, target, port, result)
    fixes: set[str] = set()
    while problem is not None and len(result.steps) < _MAX_STEPS:
        if problem.fix in fixes:  # the fix changed nothing labkit can see: say no more
            problem = Problem(problem.cause, problem.sentence, "", problem.node)
        result.steps.append(problem)
        if not problem.fix or problem.change is None:
            break
        fixes.add(problem.fix)
        k.change(problem.change)  # labkit's copy only; then walk again
        problem = _once(k, src, target, port, Diagnosis(src, dst, port))
    result.problem = result.steps[0] if result.steps else None
    return result


def _lost_reply(
    k: _Kernel,
    end: str,
    reply: _Packet,
    origin: ipaddress.IPv4Address,
    flow: _Flow,
    problem: Problem,
    back: list[Hop],
) -> Problem:
    """Why a reply (to ``origin``, once NAT is undone) gets lost, said from the learner's side."""
    if problem.cause == "no-route" and problem.node == end and not back:
        return Problem(
            "no-route-back",
            f"the packet arrives, but {names.where(end)} has no route back to {reply.dst}, so "
            "the reply is never sent",
            problem.fix,
            end,
            problem.change,
        )
    lab_net = stages.network(k.count)
    if HOST not in flow.snat and origin in lab_net:
        rule = f"-s {lab_net} -j MASQUERADE"
        return Problem(
            "no-nat",
            f"the packet arrives, but the reply to {origin} gets lost in "
            f"{names.where(problem.node)}: outside the host nobody knows {lab_net}, and nothing "
            "translated the source address on the way out. NAT on the host fixes it",
            f"iptables -t nat -A POSTROUTING {rule}",
            HOST,
            ("rule", HOST, "nat", "POSTROUTING", rule),
        )
    return Problem(
        problem.cause,
        f"the packet arrives, but the reply gets lost: {problem.sentence}",
        problem.fix,
        problem.node,
        problem.change,
    )


def _nothing_listens(
    k: _Kernel, src: str, end: str, pkt: _Packet, asked: str, flow: _Flow
) -> Problem:
    port = pkt.port
    at = pkt.dst
    rules, _ = k.rules(end)
    forwards = [spec for t, ch, spec in rules if t == "nat" and f"--dport {port} " in spec + " "]
    to = f"{stages.APP_IP}:{port}"
    dnat = f"-d {asked}/32 -p tcp -m tcp --dport {port} -j DNAT --to-destination {to}"
    if end == HOST and src == HOST and not flow.dnat and forwards:
        return Problem(
            "no-output-dnat",
            f"the host's own requests to {asked}:{port} skip PREROUTING, where the port "
            "forward is; nothing listens on the host itself",
            f"iptables -t nat -A OUTPUT {dnat}",
            HOST,
            ("rule", HOST, "nat", "OUTPUT", dnat),
        )
    if end == HOST and not flow.dnat:
        return Problem(
            "no-dnat",
            f"nothing listens on the host's port {port}, and no DNAT rule forwards it to a "
            "namespace (the tutorial's rule fails without `-p tcp`)",
            f"iptables -t nat -A PREROUTING {dnat}",
            HOST,
            ("rule", HOST, "nat", "PREROUTING", dnat),
        )
    return Problem(
        "not-listening",
        f"the packet reaches {names.where(end)} ({at}), "
        f"but nothing listens on TCP port {port} there",
        names.in_ns(end, f"python3 -m labkit.webapp --name {end} {port} &"),
        end,
        ("listen", end, port),
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
