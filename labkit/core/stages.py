"""The course's stages, as the shell commands of the tutorial.

Each :class:`Stage` is a list of :class:`Step`; each step is a list of
iproute2 commands, in the tutorial's order, with the tutorial's errata
fixed (and the fix in a step of its own, so the failure can be shown
first). The state a stage should reach is *derived* from these commands by
:func:`labkit.core.model.simulate`, so the plan a learner reads and what labkit
builds cannot drift apart.

Names and addresses:

* ``red`` 192.168.15.1 and ``blue`` 192.168.15.2, as in the tutorial;
* further namespaces on the bridge are ``ns10``, ``ns11``, ... up to
  ``ns254``, and their number is the last byte of their address (``ns10``
  is 192.168.15.10);
* the host is 192.168.15.5 on the bridge ``v-net-0``.

A lab of more than 247 namespaces does not fit the tutorial's /24: it uses
192.168.12.0/22 instead (the same addresses as above, with prefix /22) and
gives ``ns255``, ``ns256``, ... the addresses 192.168.12.1, 192.168.12.2,
... in order, up to 1014 namespaces.

Every sandbox also has an outside world, the stage ``world`` that every
other stage starts from (and ``reset`` returns to): the host's uplink
``eth0`` 192.168.1.2/24 on a LAN with a PC (``lan-pc``, 192.168.1.3) and a
home router (``router``, 192.168.1.1) that forwards, with its own NAT, to
a simulated internet (``internet``) whose server answers ping and HTTP at
203.0.113.8. These are namespaces too, with documentation addresses
(198.51.100.0/24 between router and internet, 203.0.113.8 for the server),
and nothing links them to the machine's own network.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice

from labkit.core.model import (
    FORWARDING,
    HOST,
    Iface,
    IfKey,
    Route,
    Rule,
    Service,
    State,
    apply,
    simulate,
)
from labkit.errors import ConfigError

SUBNET = "192.168.15"
PREFIX = 24
BRIDGE = "v-net-0"
HOST_IP = f"{SUBNET}.5"
FIRST_EXTRA = 10
#: the most namespaces that fit the tutorial's 192.168.15.0/24
TUTORIAL_MAX = 2 + (254 - FIRST_EXTRA + 1)
#: beyond, the lab's network is 192.168.12.0/22 (192.168.15.x keep their place)
WIDE_NETWORK = ipaddress.IPv4Network("192.168.12.0/22")
MAX_NAMESPACES = TUTORIAL_MAX + (255 * 3 + 2)  # 192.168.12.1 ... 192.168.14.255
LAN = "192.168.1"
HOST_LAN_IP = f"{LAN}.2"
LAN_PC_IP = f"{LAN}.3"
ROUTER_IP = f"{LAN}.1"
SERVER_IP = "203.0.113.8"
WORLD = ("router", "lan-pc", "internet")
APP_NS = "blue"
APP_IP = f"{SUBNET}.2"
WEB_PORT = 80
EXTRA_RE = re.compile(r"ns(\d+)")


@dataclass(frozen=True)
class Step:
    """One step of a stage: a title, why it matters, and its commands.

    Examples
    --------
    >>> Step("veth", "up", "Bring both ends up", ("ip -n red link set veth-red up",)).id
    'veth:up'
    """

    stage: str
    name: str
    title: str
    commands: tuple[str, ...]
    note: str = ""

    @property
    def id(self) -> str:
        """``stage:step``, the name :meth:`labkit.Lab.goto` accepts.

        Examples
        --------
        >>> Step("bridge", "fix", "", ()).id
        'bridge:fix'
        """
        return f"{self.stage}:{self.name}"


@dataclass(frozen=True)
class Stage:
    """A stage of the course: its name, one line on what it builds, its steps.

    Examples
    --------
    >>> stage = course(2)[2]
    >>> stage.name, [s.name for s in stage.steps]
    ('veth', ['cable', 'address', 'up'])
    """

    name: str
    title: str
    steps: tuple[Step, ...]

    @property
    def commands(self) -> list[str]:
        """Every command of the stage, in order.

        Examples
        --------
        >>> course(2)[1].commands
        ['ip netns add red', 'ip netns add blue']
        """
        return [c for step in self.steps for c in step.commands]


def namespaces(count: int) -> list[tuple[str, str]]:
    """The lab's namespaces and their addresses, for ``count`` namespaces.

    Examples
    --------
    >>> namespaces(3)
    [('red', '192.168.15.1'), ('blue', '192.168.15.2'), ('ns10', '192.168.15.10')]
    """
    check_count(count)
    extra = [(f"ns{n}", _address(n)) for n in range(FIRST_EXTRA, FIRST_EXTRA + count - 2)]
    return [("red", f"{SUBNET}.1"), ("blue", f"{SUBNET}.2"), *extra]


def _address(n: int) -> str:
    if n <= 254:
        return f"{SUBNET}.{n}"
    return str(WIDE_NETWORK.network_address + 1 + (n - 255))


def prefix(count: int) -> int:
    """The prefix length of the lab's network: 24 as in the tutorial, 22 beyond 247.

    Examples
    --------
    >>> prefix(2), prefix(247), prefix(248)
    (24, 24, 22)
    """
    return PREFIX if count <= TUTORIAL_MAX else WIDE_NETWORK.prefixlen


def network(count: int) -> ipaddress.IPv4Network:
    """The lab's network for ``count`` namespaces.

    Examples
    --------
    >>> str(network(2)), str(network(1000))
    ('192.168.15.0/24', '192.168.12.0/22')
    """
    if prefix(count) == PREFIX:
        return ipaddress.IPv4Network(f"{SUBNET}.0/{PREFIX}")
    return WIDE_NETWORK


def check_count(count: int) -> None:
    """Raise :class:`ConfigError` unless ``count`` namespaces fit the subnet.

    Examples
    --------
    >>> check_count(1)
    Traceback (most recent call last):
    ...
    labkit.errors.ConfigError: a lab has at least 2 namespaces (red and blue), not 1
    """
    if not isinstance(count, int) or isinstance(count, bool):
        raise ConfigError(f"the number of namespaces must be a whole number, not {count!r}")
    if count < 2:
        raise ConfigError(f"a lab has at least 2 namespaces (red and blue), not {count}")
    if count > MAX_NAMESPACES:
        raise ConfigError(
            f"{count} namespaces do not fit in {WIDE_NETWORK}: use at most {MAX_NAMESPACES}"
        )


def count_from(names: set[str] | list[str]) -> int:
    """How many namespaces a lab has, judged from the namespaces that exist.

    Examples
    --------
    >>> count_from({"red", "blue", "ns10", "ns11", "green"})
    4
    """
    extra = 0
    while f"ns{FIRST_EXTRA + extra}" in names and 2 + extra < MAX_NAMESPACES:
        extra += 1
    return 2 + extra


@lru_cache(maxsize=64)
def course(count: int = 2) -> tuple[Stage, ...]:
    """The stages of a lab with ``count`` namespaces on the bridge.

    Examples
    --------
    >>> [s.name for s in course()]
    ['world', 'netns', 'veth', 'bridge', 'host', 'nat', 'internet', 'portforward']
    """
    ns = namespaces(count)
    extra = ns[2:]
    cidr = f"/{prefix(count)}"

    def stage(name: str, title: str, *steps: tuple[str, str, list[str], str]) -> Stage:
        return Stage(
            name, title, tuple(Step(name, n, t, tuple(c), note) for n, t, c, note in steps)
        )

    lab = [name for name, _ in ns]
    return (
        stage(
            "world",
            "The outside world: a LAN with a PC, a home router, the internet",
            (
                "machines",
                "The world's machines are namespaces too",
                ["ip netns add router", "ip netns add lan-pc", "ip netns add internet"],
                "",
            ),
            (
                "lan",
                "The LAN: a switch in the router, cables to the host's eth0 and the PC",
                [
                    "ip -n router link add br-lan type bridge",
                    f"ip -n router addr add {ROUTER_IP}/24 dev br-lan",
                    "ip -n router link set br-lan up",
                    "ip link add eth0 type veth peer name lan-host",
                    "ip link set lan-host netns router",
                    "ip -n router link set lan-host master br-lan",
                    "ip -n router link set lan-host up",
                    f"ip addr add {HOST_LAN_IP}/24 dev eth0",
                    "ip link set eth0 up",
                    f"ip route add default via {ROUTER_IP}",
                    "ip -n lan-pc link add eth0 type veth peer name lan-pc",
                    "ip -n lan-pc link set lan-pc netns router",
                    "ip -n router link set lan-pc master br-lan",
                    "ip -n router link set lan-pc up",
                    f"ip -n lan-pc addr add {LAN_PC_IP}/24 dev eth0",
                    "ip -n lan-pc link set eth0 up",
                    f"ip -n lan-pc route add default via {ROUTER_IP}",
                ],
                "",
            ),
            (
                "internet",
                "The router's uplink to the internet, with NAT, and a web server there",
                [
                    "ip -n internet link add eth0 type veth peer name wan0",
                    "ip -n internet link set wan0 netns router",
                    "ip -n internet addr add 198.51.100.1/24 dev eth0",
                    f"ip -n internet addr add {SERVER_IP}/24 dev eth0",
                    "ip -n internet link set eth0 up",
                    "ip -n router addr add 198.51.100.2/24 dev wan0",
                    "ip -n router link set wan0 up",
                    "ip -n router route add default via 198.51.100.1",
                    f"ip netns exec router sysctl -w {FORWARDING}=1",
                    "ip netns exec router iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE",
                    f"ip netns exec internet python3 -m labkit.webapp --name internet {WEB_PORT} &",
                ],
                "",
            ),
        ),
        stage(
            "netns",
            "Two network namespaces, red and blue",
            ("create", "Create the namespaces", ["ip netns add red", "ip netns add blue"], ""),
        ),
        stage(
            "veth",
            "A virtual cable (veth pair) between red and blue",
            (
                "cable",
                "Create the cable and plug each end into its namespace",
                [
                    "ip link add veth-red type veth peer name veth-blue",
                    "ip link set veth-red netns red",
                    "ip link set veth-blue netns blue",
                ],
                "",
            ),
            (
                "address",
                "Give each end an address",
                [
                    f"ip -n red addr add {SUBNET}.1{cidr} dev veth-red",
                    f"ip -n blue addr add {SUBNET}.2{cidr} dev veth-blue",
                ],
                "",
            ),
            (
                "up",
                "Bring both ends up",
                ["ip -n red link set veth-red up", "ip -n blue link set veth-blue up"],
                "",
            ),
        ),
        stage(
            "bridge",
            f"A virtual switch (bridge {BRIDGE}) joining all namespaces",
            (
                "switch",
                "Create the bridge and bring it up",
                [f"ip link add {BRIDGE} type bridge", f"ip link set dev {BRIDGE} up"],
                "",
            ),
            (
                "unplug",
                "Remove the direct cable (deleting one end deletes both)",
                ["ip netns exec red ip link delete veth-red"],
                "",
            ),
            (
                "cables",
                "One new cable per namespace, from the namespace to the bridge",
                [
                    "ip link add veth-red type veth peer name veth-red-br",
                    "ip link add veth-blue type veth peer name veth-blue-br",
                    "ip link set veth-red netns red",
                    f"ip link set veth-red-br master {BRIDGE}",
                    "ip link set veth-blue netns blue",
                    f"ip link set veth-blue-br master {BRIDGE}",
                ],
                "",
            ),
            (
                "as-written",
                "Addresses, and the namespace ends up, as the tutorial writes it",
                [
                    f"ip -n red addr add {SUBNET}.1{cidr} dev veth-red",
                    f"ip -n blue addr add {SUBNET}.2{cidr} dev veth-blue",
                    "ip -n red link set dev veth-red up",
                    "ip -n blue link set dev veth-blue up",
                ],
                "The tutorial stops here, but the bridge ends of the cables are "
                "still down, so red cannot ping blue yet (100% loss).",
            ),
            (
                "fix",
                "Bring up the bridge ends of the cables (the tutorial forgets this)",
                ["ip link set veth-red-br up", "ip link set veth-blue-br up"],
                "",
            ),
            (
                "more",
                "Connect further namespaces the same way",
                [
                    cmd
                    for name, ip in extra
                    for cmd in (
                        f"ip netns add {name}",
                        f"ip link add veth-{name} type veth peer name veth-{name}-br",
                        f"ip link set veth-{name} netns {name}",
                        f"ip link set veth-{name}-br master {BRIDGE}",
                        f"ip -n {name} addr add {ip}{cidr} dev veth-{name}",
                        f"ip -n {name} link set dev veth-{name} up",
                        f"ip link set veth-{name}-br up",
                    )
                ],
                "",
            ),
        ),
        stage(
            "host",
            "The host joins the bridge network with an address",
            (
                "address",
                f"Give the bridge an address: the host is now on {network(count)}",
                [f"ip addr add {HOST_IP}{cidr} dev {BRIDGE}"],
                "",
            ),
        ),
        stage(
            "nat",
            f"The namespaces reach the LAN ({LAN}.0/24) through the host",
            (
                "route",
                "A route to the LAN via the host: no more 'Network is unreachable'",
                [f"ip netns exec {n} ip route add {LAN}.0/24 via {HOST_IP}" for n in lab],
                "Packets now go to the host, but it does not forward them yet: no reply.",
            ),
            (
                "masquerade",
                "NAT on the host: packets to the LAN leave with the host's address",
                [f"iptables -t nat -A POSTROUTING -s {network(count)} -j MASQUERADE"],
                "The tutorial says this is enough. It is not: the host does not "
                "forward packets between its interfaces yet, so still no reply.",
            ),
            (
                "forward",
                "Let the host forward packets (the tutorial never says so)",
                [f"sysctl -w {FORWARDING}=1"],
                "",
            ),
        ),
        stage(
            "internet",
            "The namespaces reach the internet with a default route",
            (
                "default",
                "A default route via the host",
                [f"ip netns exec {n} ip route add default via {HOST_IP}" for n in lab],
                f"The server {SERVER_IP} (the tutorial's 8.8.8.8) now answers ping and HTTP.",
            ),
        ),
        stage(
            "portforward",
            f"A web app in {APP_NS}, published on the host's port {WEB_PORT}",
            (
                "app",
                f"Start a small web app in {APP_NS} ({APP_IP}), on port {WEB_PORT}",
                [Service(APP_NS, WEB_PORT).command()],
                "The tutorial says the app is in red but forwards to 192.168.15.2, which "
                "is blue; here the app is in blue. Its way back to the LAN is the "
                "route from the nat stage (the tutorial gives that route to red only).",
            ),
            (
                "dnat",
                f"Forward the host's port {WEB_PORT} to the app",
                [
                    Rule(
                        HOST,
                        "nat",
                        "PREROUTING",
                        f"-d {HOST_LAN_IP}/32 -p tcp -m tcp --dport {WEB_PORT} "
                        f"-j DNAT --to-destination {APP_IP}:{WEB_PORT}",
                    ).command()
                ],
                "The tutorial's form, `iptables -t nat -A PREROUTING --dport 80 "
                "--to-destination 192.168.15.2:80 -j DNAT`, fails: iptables "
                "answers 'unknown option \"--dport\"' because a port needs a protocol "
                "(-p tcp). '-d 192.168.1.2' keeps other traffic to port 80 (red "
                "browsing the internet) from being sent to the app.",
            ),
            (
                "local",
                "Forward it for the host's own requests too",
                [
                    Rule(
                        HOST,
                        "nat",
                        "OUTPUT",
                        f"-d {HOST_LAN_IP}/32 -p tcp -m tcp --dport {WEB_PORT} "
                        f"-j DNAT --to-destination {APP_IP}:{WEB_PORT}",
                    ).command()
                ],
                "Packets the host sends itself skip PREROUTING; the OUTPUT chain catches them.",
            ),
        ),
    )


STAGE_NAMES = tuple(s.name for s in course(2) if s.name != "world")


def find(target: str, count: int = 2) -> tuple[int, int]:
    """Locate ``stage`` or ``stage:step``; return (stage index, step index).

    A bare stage name means its last step. Raises :class:`ConfigError`
    for names that do not exist.

    Examples
    --------
    >>> find("bridge:fix")
    (3, 4)
    >>> find("veth")
    (2, 2)
    >>> find("reset")
    (0, 2)
    """
    if not isinstance(target, str):
        raise ConfigError(f"a stage is named by a string, not {target!r}")
    if target == "reset":
        target = "world"
    name, _, step = target.partition(":")
    all_stages = course(count)
    for i, stage in enumerate(all_stages):
        if stage.name != name:
            continue
        if not step:
            return i, len(stage.steps) - 1
        for j, s in enumerate(stage.steps):
            if s.name == step:
                return i, j
        names = ", ".join(s.name for s in stage.steps)
        raise ConfigError(f"stage {name!r} has no step {step!r}: its steps are {names}")
    known = ", ".join(STAGE_NAMES)
    raise ConfigError(f"unknown stage {target!r}: the stages are {known} (or 'reset')")


def steps_upto(target: str, count: int = 2) -> list[Step]:
    """Every step from the start up to and including ``target``.

    Examples
    --------
    >>> [s.id for s in steps_upto("veth:address")][-3:]
    ['netns:create', 'veth:cable', 'veth:address']
    """
    i, j = find(target, count)
    all_stages = course(count)
    out = [s for stage in all_stages[:i] for s in stage.steps]
    return out + list(all_stages[i].steps[: j + 1])


def desired(target: str, count: int = 2) -> State:
    """The state that ``target`` (``stage`` or ``stage:step``) should have.

    Examples
    --------
    >>> d = desired("host")
    >>> sorted(d.ifaces[("host", "v-net-0")].addrs)
    ['192.168.15.5/24']
    """
    return _desired(target, count).copy()


@lru_cache(maxsize=256)
def _desired(target: str, count: int) -> State:
    # each step starts from the state of the step before (cached): linear
    steps = steps_upto(target, count)
    start = _desired(steps[-2].id, count) if len(steps) > 1 else None
    return simulate(steps[-1].commands, start)


@dataclass(frozen=True)
class Ownership:
    """What a lab owns: the namespaces and interfaces its stages make.

    Examples
    --------
    >>> own = owned(2)
    >>> "red" in own.namespaces and ("host", "v-net-0") in own.ifaces
    True
    """

    namespaces: frozenset[str]
    ifaces: frozenset[IfKey]
    routes: frozenset[Route] = frozenset()
    #: the host's interfaces of the world (its uplink ``eth0``), with the
    #: addresses the stages give them: any other address there is the learner's
    uplinks: frozenset[tuple[IfKey, frozenset[str]]] = frozenset()

    def learners(self, iface: Iface) -> frozenset[str]:
        """The addresses on ``iface`` that are the learner's, not the lab's.

        All of them on an interface the lab does not make; on the host's
        uplink, those no stage puts there; none on the lab's own links.

        Examples
        --------
        >>> own = owned(2)
        >>> eth0 = Iface("host", "eth0", "veth", addrs=frozenset({"192.168.1.2/24", "10.9.0.2/24"}))
        >>> sorted(own.learners(eth0))
        ['10.9.0.2/24']
        >>> own.learners(Iface("host", "v-net-0", "bridge", addrs=frozenset({"10.9.0.2/24"})))
        frozenset()
        """
        if iface.key not in self.ifaces:
            return iface.addrs
        for key, addrs in self.uplinks:
            if key == iface.key:
                return iface.addrs - addrs
        return frozenset()


@lru_cache(maxsize=64)
def owned(count: int = 2) -> Ownership:
    """Everything any step of any stage creates, for ``count`` namespaces.

    Examples
    --------
    >>> ("host", "veth-red") in owned(2).ifaces  # before it moves into red
    True
    """
    state = State()
    ns: set[str] = set()
    ifs: set[IfKey] = set()
    routes: set[Route] = set()
    uplinks: dict[IfKey, set[str]] = {}
    for stage in course(count):
        for command in stage.commands:
            apply(state, command)
            if "netns add" in command:
                ns |= state.namespaces
            # A command adds at most two interfaces (a veth pair), and the
            # model appends new and moved ones to the end of ``ifaces``.
            ifs.update(islice(reversed(state.ifaces), 2))
            if command.startswith("ip route"):
                routes |= {r for r in state.routes if r.ns == HOST}
            for key in uplinks:
                uplinks[key] |= state.ifaces[key].addrs if key in state.ifaces else set()
        if stage.name == "world":
            uplinks = {key: set(i.addrs) for key, i in state.ifaces.items() if key[0] == HOST}
    return Ownership(
        frozenset(ns - {HOST}),
        frozenset(ifs),
        frozenset(routes),
        frozenset((key, frozenset(addrs)) for key, addrs in uplinks.items()),
    )
