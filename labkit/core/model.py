"""Plain data for a network state, and a simulator of the commands that change it.

A :class:`State` is what labkit compares: namespaces, interfaces (kind,
veth peer, bridge master, up or down, IPv4 addresses) and static routes.
It is built two ways: by :mod:`labkit.kernel.observe` from the live kernel, and
by :func:`simulate` from a list of shell commands (the tutorial's). No
netlink here: this module is pure and fast to test.

The sandbox's own network namespace is called ``host`` throughout.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field, replace

from labkit.core import names

HOST = names.HOST

IfKey = tuple[str, str]


@dataclass(frozen=True)
class Iface:
    """One network interface as labkit compares it.

    Examples
    --------
    >>> Iface("red", "veth-red", "veth", peer=("blue", "veth-blue")).peer
    ('blue', 'veth-blue')
    """

    ns: str
    name: str
    kind: str
    peer: IfKey | None = None
    master: str | None = None
    up: bool = False
    addrs: frozenset[str] = frozenset()

    @property
    def key(self) -> IfKey:
        """``(namespace, name)``.

        Examples
        --------
        >>> Iface("host", "v-net-0", "bridge").key
        ('host', 'v-net-0')
        """
        return (self.ns, self.name)


@dataclass(frozen=True, order=True)
class Route:
    """A static route: ``ip -n NS route add DST via VIA``.

    Examples
    --------
    >>> Route("red", "192.168.1.0/24", "192.168.15.5").dst
    '192.168.1.0/24'
    """

    ns: str
    dst: str
    via: str


@dataclass(frozen=True, order=True)
class Rule:
    """A firewall rule as ``iptables -t TABLE -S`` prints it, without its mark.

    Examples
    --------
    >>> Rule("host", "nat", "POSTROUTING", "-s 192.168.15.0/24 -j MASQUERADE").command()
    'iptables -t nat -A POSTROUTING -s 192.168.15.0/24 -j MASQUERADE'
    """

    ns: str
    table: str
    chain: str
    spec: str

    def command(self, verb: str = "-A", mark: str | None = None) -> str:
        """The shell command that adds (or with ``verb="-D"`` deletes) it.

        With ``mark``, a ``-m comment --comment MARK`` goes before ``-j``.

        Examples
        --------
        >>> Rule("host", "nat", "POSTROUTING", "-o eth0 -j MASQUERADE").command(mark="labkit")
        'iptables -t nat -A POSTROUTING -o eth0 -m comment --comment labkit -j MASQUERADE'
        """
        words = self.spec.split()
        if mark:
            at = words.index("-j") if "-j" in words else len(words)
            words[at:at] = ["-m", "comment", "--comment", mark]
        return names.in_ns(
            self.ns, f"iptables -t {self.table} {verb} {self.chain} {' '.join(words)}"
        )


@dataclass(frozen=True, order=True)
class Service:
    """labkit's small web app, listening on ``port`` in namespace ``ns``.

    Examples
    --------
    >>> Service("blue", 80).command()
    'ip netns exec blue python3 -m labkit.webapp --name blue 80 &'
    """

    ns: str
    port: int

    def command(self) -> str:
        """The shell command that starts it.

        Examples
        --------
        >>> Service("host", 8080).command()
        'python3 -m labkit.webapp --name host 8080 &'
        """
        return names.in_ns(self.ns, f"python3 -m labkit.webapp --name {self.ns} {self.port} &")


FORWARDING = "net.ipv4.ip_forward"
#: the namespaces that route in the course (the host, and the world's home
#: router): the only ones whose sysctls (forwarding) a State holds. Any other
#: namespace's forwarding is whatever the machine gave it: a namespace made
#: with ``ip netns add`` copies the machine's, which is 1 where Docker runs.
ROUTERS = (HOST, "router")
#: the comment that marks labkit's own firewall rules
MARK = "labkit"
#: a built-in chain's policy unless set otherwise (not stored in a State)
ACCEPT = "ACCEPT"
#: the built-in chains (only these have a policy) of the tables labkit reads
CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}
PolicyKey = tuple[str, str, str]


def _default_sysctls(ns: str) -> dict[tuple[str, str], str]:
    return {(ns, FORWARDING): "0"} if ns in ROUTERS else {}


@dataclass
class State:
    """Namespaces, interfaces, static routes, sysctls, rules, services, chain policies.

    ``sysctls`` maps ``(namespace, key)`` to a value, for the namespaces in
    :data:`ROUTERS` only (forwarding starts at ``"0"`` there). ``policies``
    maps ``(namespace, table, chain)`` to a built-in chain's policy, and
    holds only those that are not ``ACCEPT`` (the default): a state where no
    chain was closed has none.

    Examples
    --------
    >>> s = simulate(["ip netns add red"])
    >>> sorted(s.namespaces)
    ['red']
    """

    namespaces: set[str] = field(default_factory=set)
    ifaces: dict[IfKey, Iface] = field(default_factory=dict)
    routes: set[Route] = field(default_factory=set)
    sysctls: dict[tuple[str, str], str] = field(default_factory=lambda: _default_sysctls(HOST))
    rules: set[Rule] = field(default_factory=set)
    services: set[Service] = field(default_factory=set)
    #: the rules that carry labkit's mark (observed states only)
    marked: set[Rule] = field(default_factory=set, compare=False)
    #: (namespace, table, chain) -> policy, for the chains whose policy is not ACCEPT
    policies: dict[PolicyKey, str] = field(default_factory=dict)

    def copy(self) -> State:
        """A copy that can change without changing this one.

        Examples
        --------
        >>> s = simulate(["iptables -P FORWARD DROP"])
        >>> s.copy() == s, s.copy() == State()
        (True, False)
        """
        return State(
            namespaces=set(self.namespaces),
            ifaces=dict(self.ifaces),
            routes=set(self.routes),
            sysctls=dict(self.sysctls),
            rules=set(self.rules),
            services=set(self.services),
            marked=set(self.marked),
            policies=dict(self.policies),
        )

    def project(
        self, namespaces: set[str], ifaces: set[IfKey], host_routes: frozenset[Route] = frozenset()
    ) -> State:
        """Keep only the given namespaces and interfaces (and their routes).

        Routes of the host are kept only when in ``host_routes``.

        Examples
        --------
        >>> s = simulate(["ip netns add red", "ip netns add green"])
        >>> sorted(s.project({"red"}, set()).namespaces)
        ['red']
        """
        keep_ns = self.namespaces & namespaces
        live = keep_ns | {HOST}
        kept = {k: v for k, v in self.ifaces.items() if k in ifaces and k[0] in live}
        return State(
            namespaces=keep_ns,
            ifaces=kept,
            routes={r for r in self.routes if r.ns in keep_ns or r in host_routes},
            sysctls={k: v for k, v in self.sysctls.items() if k[0] in live},
            rules={r for r in self.rules if r.ns in live},
            services={s for s in self.services if s.ns in live},
            marked={r for r in self.marked if r.ns in live},
            policies={k: v for k, v in self.policies.items() if k[0] in live},
        )


class CommandError(ValueError):
    """A command the simulator does not understand or that cannot apply."""


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_interface(text))
    except ValueError:
        raise CommandError(f"not an address with prefix: {text!r}") from None


def _ip(state: State, ns: str, args: list[str], cmd: str) -> None:
    def need(key: IfKey) -> Iface:
        if key not in state.ifaces:
            raise CommandError(f"{cmd}: no interface {key[1]} in {key[0]}")
        return state.ifaces[key]

    obj, verb, rest = args[0], args[1] if len(args) > 1 else "", args[2:]
    if obj == "netns":
        if verb == "add":
            state.namespaces.add(rest[0])
            state.sysctls.update(_default_sysctls(rest[0]))
        elif verb in ("delete", "del"):
            name = rest[0]
            state.namespaces.discard(name)
            for key, iface in list(state.ifaces.items()):
                if key[0] == name:
                    _drop(state, iface)
            state.routes = {r for r in state.routes if r.ns != name}
            state.rules = {r for r in state.rules if r.ns != name}
            state.services = {v for v in state.services if v.ns != name}
            state.sysctls = {k: v for k, v in state.sysctls.items() if k[0] != name}
            state.policies = {k: v for k, v in state.policies.items() if k[0] != name}
        else:
            raise CommandError(f"unsupported: {cmd}")
    elif obj == "link" and verb == "add":
        name = rest[0]
        kind = rest[rest.index("type") + 1]
        if kind == "bridge":
            state.ifaces[(ns, name)] = Iface(ns, name, "bridge")
        elif kind == "veth":
            at = rest.index("name")
            peer = rest[at + 1]
            peer_ns = rest[at + 3] if rest[at + 2 : at + 3] == ["netns"] else ns
            own_ns = rest[rest.index("netns") + 1] if rest.index("type") > 1 else ns
            state.ifaces[(own_ns, name)] = Iface(own_ns, name, "veth", peer=(peer_ns, peer))
            state.ifaces[(peer_ns, peer)] = Iface(peer_ns, peer, "veth", peer=(own_ns, name))
        else:
            raise CommandError(f"unsupported link type: {cmd}")
    elif obj == "link" and verb in ("delete", "del"):
        name = rest[1] if rest[0] == "dev" else rest[0]
        _drop(state, need((ns, name)))
    elif obj == "link" and verb == "set":
        if rest[0] == "dev":
            rest = rest[1:]
        iface = need((ns, rest[0]))
        opts = rest[1:]
        while opts:
            word = opts.pop(0)
            if word in ("up", "down"):
                iface = replace(iface, up=word == "up")
            elif word == "master":
                iface = replace(iface, master=opts.pop(0))
            elif word == "nomaster":
                iface = replace(iface, master=None)
            elif word == "netns":
                target = opts.pop(0)
                _move(state, iface, target)
                iface = state.ifaces[(target, iface.name)]
            else:
                raise CommandError(f"unsupported: {cmd}")
        state.ifaces[iface.key] = iface
    elif obj in ("addr", "address", "a") and verb in ("add", "del"):
        cidr = _cidr(rest[0])
        iface = need((ns, rest[rest.index("dev") + 1]))
        addrs = iface.addrs | {cidr} if verb == "add" else iface.addrs - {cidr}
        state.ifaces[iface.key] = replace(iface, addrs=addrs)
    elif obj == "route" and verb in ("add", "del"):
        dst = "default" if rest[0] == "default" else str(ipaddress.ip_network(rest[0]))
        route = Route(ns, dst, rest[rest.index("via") + 1])
        if verb == "add":
            state.routes.add(route)
        else:
            state.routes.discard(route)
    else:
        raise CommandError(f"unsupported: {cmd}")


def routes_through(state: State, key: IfKey) -> set[Route]:
    """The routes that go when the link ``key`` is deleted (a veth's peer too).

    A route goes with the link its gateway is reached through: a gateway in
    the network of one of the link's addresses (or of its veth peer's, for
    routes of the peer's namespace). Deleting a link takes these routes out
    of the kernel, though nothing asked for them to go.

    Examples
    --------
    >>> s = simulate([
    ...     "ip netns add router", "ip netns add internet",
    ...     "ip -n internet link add eth0 type veth peer name wan0 netns router",
    ...     "ip -n router addr add 198.51.100.2/24 dev wan0",
    ...     "ip -n router route add default via 198.51.100.1",
    ... ])
    >>> sorted(routes_through(s, ("internet", "eth0")))
    [Route(ns='router', dst='default', via='198.51.100.1')]
    """
    iface = state.ifaces.get(key)
    if iface is None:
        return set()
    ends = [iface]
    if iface.peer and iface.peer in state.ifaces:
        ends.append(state.ifaces[iface.peer])
    out = set()
    for end in ends:
        nets = [ipaddress.ip_interface(cidr).network for cidr in end.addrs]
        for route in state.routes:
            if route.ns == end.ns and any(ipaddress.ip_address(route.via) in n for n in nets):
                out.add(route)
    return out


def _drop(state: State, iface: Iface) -> None:
    state.routes -= routes_through(state, iface.key)
    state.ifaces.pop(iface.key, None)
    if iface.peer:
        state.ifaces.pop(iface.peer, None)
    for key, other in list(state.ifaces.items()):
        if other.master == iface.name and other.ns == iface.ns:
            state.ifaces[key] = replace(other, master=None)


def _move(state: State, iface: Iface, target: str) -> None:
    del state.ifaces[iface.key]
    moved = replace(iface, ns=target, master=None, up=False, addrs=frozenset())
    state.ifaces[moved.key] = moved
    if iface.peer and iface.peer in state.ifaces:
        peer = state.ifaces[iface.peer]
        state.ifaces[peer.key] = replace(peer, peer=moved.key)


def _iptables(state: State, ns: str, args: list[str], cmd: str) -> None:
    table = "filter"
    while args[:1] in (["-w"], ["-t"]):
        if args[0] == "-t" and len(args) > 1:
            table, args = args[1], args[2:]
        elif args[0] == "-w":
            args = args[1:]
        else:
            raise CommandError(f"unsupported: {cmd}")
    if len(args) < 2:
        raise CommandError(f"unsupported: {cmd}")
    verb, chain, rest = args[0], args[1], args[2:]
    if verb == "-P":
        if table not in CHAINS:
            raise CommandError(f"unsupported table: {cmd}")
        if len(rest) != 1 or rest[0] not in (ACCEPT, "DROP"):
            raise CommandError(f"{cmd}: a policy is ACCEPT or DROP")
        if chain not in CHAINS[table]:
            raise CommandError(f"{cmd}: only a built-in chain of {table} has a policy")
        if table == "nat" and rest[0] != ACCEPT:  # as iptables says
            raise CommandError(f"{cmd}: the nat table is not intended for filtering")
        if rest[0] == ACCEPT:
            state.policies.pop((ns, table, chain), None)
        else:
            state.policies[(ns, table, chain)] = rest[0]
        return
    for i in range(len(rest) - 3):  # labkit's mark is not part of the rule
        if rest[i : i + 3] == ["-m", "comment", "--comment"] and rest[i + 3] == MARK:
            del rest[i : i + 4]
            break
    rule = Rule(ns, table, chain, " ".join(rest))
    if verb == "-A":
        state.rules.add(rule)
    elif verb == "-D":
        state.rules.discard(rule)
    else:
        raise CommandError(f"unsupported: {cmd}")


def apply(state: State, command: str) -> None:
    """Apply one shell command (iproute2 subset) to ``state`` in place.

    Understands ``ip [-n NS] netns|link|addr|route ...``, ``sysctl -w``,
    ``iptables [-w] [-t TABLE] -A|-D CHAIN ...`` (written as ``iptables -S``
    prints it), ``iptables [-w] [-t TABLE] -P CHAIN POLICY``, ``python3 -m
    labkit.webapp ... PORT &``, each optionally after ``ip netns exec NS``,
    and a leading ``sudo``.

    Examples
    --------
    >>> s = State()
    >>> apply(s, "sudo ip link add v-net-0 type bridge")
    >>> s.ifaces[("host", "v-net-0")].kind
    'bridge'
    >>> apply(s, "ip netns add red")
    >>> apply(s, "ip netns exec red sysctl -w net.ipv4.ip_forward=1")  # red does not route
    >>> s.sysctls
    {('host', 'net.ipv4.ip_forward'): '0'}
    >>> apply(s, "ip netns exec router iptables -w -P FORWARD DROP")
    >>> s.policies
    {('router', 'filter', 'FORWARD'): 'DROP'}
    """
    # shlex is slow; most commands have nothing for it to do
    words = shlex.split(command) if any(c in command for c in "'\"\\#") else command.split()
    if words and words[0] == "sudo":
        words = words[1:]
    ns = HOST
    if words[:3] == ["ip", "netns", "exec"]:
        ns, words = words[3], words[4:]
    if words[:1] == ["sysctl"] and len(words) == 3 and words[1] == "-w":
        key, _, value = words[2].partition("=")
        if ns in ROUTERS:  # elsewhere not part of a State (see ROUTERS)
            state.sysctls[(ns, key)] = value
        return
    if words[:1] == ["iptables"]:
        _iptables(state, ns, words[1:], command)
        return
    if words[:3] == ["python3", "-m", "labkit.webapp"] and words[-1] == "&":
        state.services.add(Service(ns, int(words[-2])))
        return
    if not words or words[0] != "ip":
        raise CommandError(f"unsupported: {command}")
    words = words[1:]
    if words[:1] == ["-n"]:
        ns, words = words[1], words[2:]
    _ip(state, ns, words, command)


def simulate(commands: list[str] | tuple[str, ...], start: State | None = None) -> State:
    """The state that running ``commands`` in order gives.

    Examples
    --------
    >>> s = simulate([
    ...     "ip netns add red", "ip netns add blue",
    ...     "ip link add veth-red type veth peer name veth-blue",
    ...     "ip link set veth-red netns red", "ip link set veth-blue netns blue",
    ... ])
    >>> s.ifaces[("red", "veth-red")].peer
    ('blue', 'veth-blue')
    """
    state = start.copy() if start else State()
    for command in commands:
        apply(state, command)
    return state
