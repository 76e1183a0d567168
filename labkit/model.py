"""Plain data for a network state, and a simulator of the commands that change it.

A :class:`State` is what labkit compares: namespaces, interfaces (kind,
veth peer, bridge master, up or down, IPv4 addresses) and static routes.
It is built two ways: by :mod:`labkit.observe` from the live kernel, and
by :func:`simulate` from a list of shell commands (the tutorial's). No
netlink here: this module is pure and fast to test.

The sandbox's own network namespace is called ``host`` throughout.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field, replace

HOST = "host"

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


@dataclass
class State:
    """Namespaces, interfaces and static routes.

    Examples
    --------
    >>> s = simulate(["ip netns add red"])
    >>> sorted(s.namespaces)
    ['red']
    """

    namespaces: set[str] = field(default_factory=set)
    ifaces: dict[IfKey, Iface] = field(default_factory=dict)
    routes: set[Route] = field(default_factory=set)

    def copy(self) -> State:
        """A copy that can change without changing this one.

        Examples
        --------
        >>> State().copy() == State()
        True
        """
        return State(set(self.namespaces), dict(self.ifaces), set(self.routes))

    def project(self, namespaces: set[str], ifaces: set[IfKey]) -> State:
        """Keep only the given namespaces and interfaces (and their routes).

        Examples
        --------
        >>> s = simulate(["ip netns add red", "ip netns add green"])
        >>> sorted(s.project({"red"}, set()).namespaces)
        ['red']
        """
        keep_ns = self.namespaces & namespaces
        live = keep_ns | {HOST}
        kept = {k: v for k, v in self.ifaces.items() if k in ifaces and k[0] in live}
        routes = {r for r in self.routes if r.ns in keep_ns}
        return State(keep_ns, kept, routes)


class CommandError(ValueError):
    """A command the simulator does not understand or that cannot apply."""


def _net(ns: str | None) -> str:
    return ns or HOST


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
        elif verb in ("delete", "del"):
            name = rest[0]
            state.namespaces.discard(name)
            for key, iface in list(state.ifaces.items()):
                if key[0] == name:
                    _drop(state, iface)
            state.routes = {r for r in state.routes if r.ns != name}
        else:
            raise CommandError(f"unsupported: {cmd}")
    elif obj == "link" and verb == "add":
        name = rest[0]
        kind = rest[rest.index("type") + 1]
        if kind == "bridge":
            state.ifaces[(ns, name)] = Iface(ns, name, "bridge")
        elif kind == "veth":
            peer = rest[rest.index("name") + 1]
            state.ifaces[(ns, name)] = Iface(ns, name, "veth", peer=(ns, peer))
            state.ifaces[(ns, peer)] = Iface(ns, peer, "veth", peer=(ns, name))
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


def _drop(state: State, iface: Iface) -> None:
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


def apply(state: State, command: str) -> None:
    """Apply one shell command (iproute2 subset) to ``state`` in place.

    Understands ``ip [-n NS] netns|link|addr|route ...``, ``ip netns exec
    NS ip ...`` and a leading ``sudo``.

    Examples
    --------
    >>> s = State()
    >>> apply(s, "sudo ip link add v-net-0 type bridge")
    >>> s.ifaces[("host", "v-net-0")].kind
    'bridge'
    """
    words = shlex.split(command)
    if words and words[0] == "sudo":
        words = words[1:]
    ns = HOST
    if words[:3] == ["ip", "netns", "exec"]:
        ns, words = words[3], words[4:]
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
