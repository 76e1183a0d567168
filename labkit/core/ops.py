"""Every kind of change labkit makes to the kernel, in one table.

An :class:`Op` is one change (add a namespace, plug a cable into a bridge,
add a firewall rule, ...) with the shell commands it equals. Each kind of
op is one :class:`Kind` entry in :data:`KINDS`, which says everything
about it:

* its ``fields`` (the op's arguments, in order);
* ``commands``: the iproute2 / iptables / sysctl commands it equals;
* ``describe``: one plain sentence for a learner, when a check finds the
  op would be needed;
* ``via``: which executor of :mod:`labkit.kernel.apply` carries it out,
  and for rtnetlink ops ``encode``, the request, built with the message
  builders the kernel layer passes in (:class:`Messages`);
* ``ns``: the namespace it acts in, and flags for how the kernel's
  answers are read.

Adding a kind of change is one entry here (plus, for a new executor, one
function in :mod:`labkit.kernel.apply`). This module is pure: no kernel.

Examples
--------
>>> op = make_op("link_up", "red", "veth-red", True)
>>> op.commands
('ip -n red link set veth-red up',)
>>> op.describe()
'veth-red in red is down.'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from labkit.core import names
from labkit.core.model import HOST, MARK, Route, Rule, Service


class Messages(Protocol):
    """The rtnetlink message builders an ``encode`` uses (:mod:`labkit.kernel.rtnl`).

    Examples
    --------
    >>> from labkit.kernel import rtnl
    >>> isinstance(rtnl.new_bridge("br0"), bytes)
    True
    """

    def new_bridge(self, name: str) -> bytes: ...  # noqa: D102 - see labkit.kernel.rtnl
    def new_veth(self, name: str, peer: str, peer_ns_fd: int | None = None) -> bytes: ...  # noqa: D102
    def set_link(  # noqa: D102
        self, index: int, up: bool | None = None, master: int | None = None
    ) -> bytes: ...
    def del_link(self, index: int) -> bytes: ...  # noqa: D102
    def address(self, add: bool, index: int, cidr: str) -> bytes: ...  # noqa: D102
    def route(self, add: bool, dst: str, gateway: str) -> bytes: ...  # noqa: D102


class Resolver(Protocol):
    """What an ``encode`` may ask the kernel layer: interface indexes, namespace fds.

    Examples
    --------
    >>> class Fake:
    ...     def index(self, ns, name): return 7
    ...     def need(self, ns, name): return 7
    ...     def ns_fd(self, ns): return 3
    >>> KINDS["link_up"].encode(_Msgs(), Fake(), ("red", "veth-red", True))
    ('set_link', 7, True)
    """

    def index(self, ns: str, name: str) -> int | None:
        """The interface's index, or None when it does not exist."""

    def need(self, ns: str, name: str) -> int:
        """The interface's index; a clear error when it does not exist."""

    def ns_fd(self, ns: str) -> int:
        """An fd of the namespace, kept open until the batch is sent."""


Encode = Callable[[Messages, Resolver, tuple[Any, ...]], Any]


@dataclass(frozen=True)
class Kind:
    """One kind of change: its fields, commands, sentence and how it is carried out.

    Examples
    --------
    >>> KINDS["netns_add"].fields
    ('name',)
    >>> KINDS["route_add"].via
    'netlink'
    """

    name: str
    fields: tuple[str, ...]
    commands: Callable[..., list[str]]
    describe: Callable[..., str]
    #: the executor: netlink, netns_add, netns_del, sysctl, iptables, service
    via: str
    #: rtnetlink ops: the request (None: nothing to do, e.g. gone already)
    encode: Encode | None = None
    #: the namespace it acts in (default: the first field)
    ns: Callable[..., str] = lambda *a: a[0]  # noqa: E731
    #: it creates something: "exists already" is success, "not found" is not
    adds: bool = False
    #: it adds or removes links: interface indexes must be read again after
    relinks: bool = False
    #: "exists already" means there but incomplete: delete and add again
    readd: bool = False


def _veth(ns_a: str, a: str, ns_b: str, b: str, in_place: bool) -> list[str]:
    if in_place:  # made in place: the names are taken in the host
        return [f"ip link add {a} netns {ns_a} type veth peer name {b} netns {ns_b}"]
    cmds = [f"ip link add {a} type veth peer name {b}"]
    return cmds + [f"ip link set {n} netns {s}" for s, n in ((ns_a, a), (ns_b, b)) if s != HOST]


def _encode_veth(m: Messages, r: Resolver, a: tuple[Any, ...]) -> bytes:
    ns, name, ns_b, peer = a[:4]  # a[4]: how the shell would do it
    return m.new_veth(name, peer) if ns_b == ns else m.new_veth(name, peer, r.ns_fd(ns_b))


def _if_there(build: Callable[[int], bytes]) -> Encode:
    """An encode for a link that may be gone already (nothing to do then)."""

    def encode(m: Messages, r: Resolver, a: tuple[Any, ...]) -> bytes | None:
        index = r.index(a[0], a[1])
        return None if index is None else build(m, index, *a[2:])  # type: ignore[call-arg]

    return encode


def _rule(verb: str) -> Callable[[Rule, bool], list[str]]:
    return lambda rule, marked: [rule.command(verb, MARK if marked else None)]


def _stop(svc: Service) -> list[str]:
    # [x]yz: the pattern does not match the shell that runs pkill
    return [f"pkill -f 'labkit.webapp --name [{svc.ns[0]}]{svc.ns[1:]} {svc.port}'"]


def _sysctl_sentence(ns: str, key: str, value: str) -> str:
    does = "does not forward" if value == "1" else "forwards"
    return f"{names.where(ns).capitalize()} {does} packets ({key} is not {value})."


def _master_sentence(ns: str, name: str, master: str | None) -> str:
    if master:
        return f"{name} in {names.where(ns)} is not plugged into the bridge {master}."
    return f"{name} in {names.where(ns)} should not be plugged into a bridge."


_KINDS = [
    Kind(
        "netns_add",
        ("name",),
        lambda name: [f"ip netns add {name}"],
        lambda name: f"Namespace {name} does not exist.",
        via="netns_add",
        adds=True,
    ),
    Kind(
        "netns_del",
        ("name",),
        lambda name: [f"ip netns delete {name}"],
        lambda name: f"Namespace {name} should not be there at this stage.",
        via="netns_del",
    ),
    Kind(
        "link_del",
        ("ns", "name"),
        lambda ns, name: [f"{names.ip(ns)} link delete {name}"],
        lambda ns, name: (
            f"{name} in {names.where(ns)} should not be there (or is not wired as it should be)."
        ),
        via="netlink",
        encode=_if_there(lambda m, index: m.del_link(index)),
        relinks=True,
    ),
    Kind(
        "bridge_add",
        ("ns", "name"),
        lambda ns, name: [f"{names.ip(ns)} link add {name} type bridge"],
        lambda ns, name: f"The bridge {name} is missing in {names.where(ns)}.",
        via="netlink",
        encode=lambda m, r, a: m.new_bridge(a[1]),
        adds=True,
        relinks=True,
    ),
    Kind(
        "veth_add",
        ("ns", "name", "peer_ns", "peer", "in_place"),
        _veth,
        lambda ns, name, peer_ns, peer, _: (
            f"The cable {name} ({names.where(ns)}) <-> {peer} ({names.where(peer_ns)}) is missing."
        ),
        via="netlink",
        encode=_encode_veth,
        adds=True,
        relinks=True,
    ),
    Kind(
        "master",
        ("ns", "name", "master"),
        lambda ns, name, master: [
            f"{names.ip(ns)} link set {name} {f'master {master}' if master else 'nomaster'}"
        ],
        _master_sentence,
        via="netlink",
        encode=lambda m, r, a: m.set_link(
            r.need(a[0], a[1]), master=r.need(a[0], a[2]) if a[2] else 0
        ),
        adds=True,
    ),
    Kind(
        "addr_add",
        ("ns", "name", "cidr"),
        lambda ns, name, cidr: [f"{names.ip(ns)} addr add {cidr} dev {name}"],
        lambda ns, name, cidr: f"{name} in {names.where(ns)} does not have the address {cidr}.",
        via="netlink",
        encode=lambda m, r, a: m.address(True, r.need(a[0], a[1]), a[2]),
        adds=True,
        readd=True,  # there, but without its connected route
    ),
    Kind(
        "addr_del",
        ("ns", "name", "cidr"),
        lambda ns, name, cidr: [f"{names.ip(ns)} addr del {cidr} dev {name}"],
        lambda ns, name, cidr: (
            f"{name} in {names.where(ns)} has an address it should not have: {cidr}."
        ),
        via="netlink",
        encode=lambda m, r, a: m.address(False, r.need(a[0], a[1]), a[2]),
    ),
    Kind(
        "link_up",
        ("ns", "name", "up"),
        lambda ns, name, up: [f"{names.ip(ns)} link set {name} {'up' if up else 'down'}"],
        lambda ns, name, up: f"{name} in {names.where(ns)} is {'down' if up else 'up'}.",
        via="netlink",
        encode=_if_there(lambda m, index, up: m.set_link(index, up=up)),
    ),
    Kind(
        "route_add",
        ("route",),
        lambda r: [f"{names.ip(r.ns)} route add {r.dst} via {r.via}"],
        lambda r: f"{names.where(r.ns)} has no route to {r.dst} via {r.via}.",
        via="netlink",
        encode=lambda m, res, a: m.route(True, a[0].dst, a[0].via),
        ns=lambda r: r.ns,
        adds=True,
    ),
    Kind(
        "route_del",
        ("route",),
        lambda r: [f"{names.ip(r.ns)} route del {r.dst} via {r.via}"],
        lambda r: f"{names.where(r.ns)} has a route it should not have: {r.dst} via {r.via}.",
        via="netlink",
        encode=lambda m, res, a: m.route(False, a[0].dst, a[0].via),
        ns=lambda r: r.ns,
    ),
    Kind(
        "sysctl",
        ("ns", "key", "value"),
        lambda ns, key, value: [names.in_ns(ns, f"sysctl -w {key}={value}")],
        _sysctl_sentence,
        via="sysctl",
    ),
    Kind(
        "rule_add",
        ("rule", "marked"),
        _rule("-A"),
        lambda rule, _: (
            f"{names.where(rule.ns).capitalize()} lacks the {rule.table} rule "
            f"{rule.chain} {rule.spec}."
        ),
        via="iptables",
        ns=lambda rule, _: rule.ns,
        adds=True,
    ),
    Kind(
        "rule_del",
        ("rule", "marked"),
        _rule("-D"),
        lambda rule, _: (
            f"{names.where(rule.ns).capitalize()} has a rule it should not have: "
            f"{rule.chain} {rule.spec}."
        ),
        via="iptables",
        ns=lambda rule, _: rule.ns,
    ),
    Kind(
        "policy",
        ("ns", "table", "chain", "policy"),
        lambda ns, table, chain, policy: [
            names.in_ns(ns, f"iptables -t {table} -P {chain} {policy}")
        ],
        lambda ns, table, chain, policy: (
            f"The {table} chain {chain} in {names.where(ns)} should have the policy {policy}."
        ),
        via="iptables",
        adds=True,
    ),
    Kind(
        "service_start",
        ("service",),
        lambda svc: [svc.command()],
        lambda svc: f"No web app listens on port {svc.port} in {names.where(svc.ns)}.",
        via="service",
        ns=lambda svc: svc.ns,
        adds=True,
    ),
    Kind(
        "service_stop",
        ("service",),
        _stop,
        lambda svc: f"A web app on port {svc.port} in {names.where(svc.ns)} should not be running.",
        via="service",
        ns=lambda svc: svc.ns,
    ),
]

#: kind name -> :class:`Kind`
KINDS: dict[str, Kind] = {k.name: k for k in _KINDS}


@dataclass(frozen=True)
class Op:
    """One change to the kernel and the shell commands it equals.

    Examples
    --------
    >>> Op("netns_add", ("red",), ("ip netns add red",)).commands
    ('ip netns add red',)
    """

    kind: str
    args: tuple[Any, ...]
    commands: tuple[str, ...]

    @property
    def spec(self) -> Kind:
        """Its entry in :data:`KINDS`.

        Examples
        --------
        >>> make_op("netns_add", "red").spec.via
        'netns_add'
        """
        return KINDS[self.kind]

    @property
    def ns(self) -> str:
        """The namespace it acts in.

        Examples
        --------
        >>> make_op("route_add", Route("red", "10.0.0.0/8", "192.168.15.5")).ns
        'red'
        """
        return self.spec.ns(*self.args)

    def arg(self, field: str) -> Any:
        """One argument, by its field name.

        Examples
        --------
        >>> make_op("addr_add", "red", "veth-red", "192.168.15.1/24").arg("cidr")
        '192.168.15.1/24'
        """
        return self.args[self.spec.fields.index(field)]

    def describe(self) -> str:
        """One plain sentence for what this op would fix.

        Examples
        --------
        >>> make_op("netns_add", "red").describe()
        'Namespace red does not exist.'
        """
        return self.spec.describe(*self.args)


def make_op(kind: str, *args: Any) -> Op:
    """An :class:`Op` of ``kind`` with its arguments and its shell commands.

    Examples
    --------
    >>> make_op("link_up", "red", "veth-red", True).commands
    ('ip -n red link set veth-red up',)
    >>> make_op("nonsense")
    Traceback (most recent call last):
    ...
    ValueError: unknown kind of change: 'nonsense'
    """
    spec = KINDS.get(kind)
    if spec is None:
        raise ValueError(f"unknown kind of change: {kind!r}")
    if len(args) != len(spec.fields):
        raise ValueError(f"{kind} takes {', '.join(spec.fields)}; got {len(args)} arguments")
    return Op(kind, tuple(args), tuple(spec.commands(*args)))


class _Msgs:
    """A stand-in for the message builders, for the examples."""

    def __getattr__(self, name: str) -> Callable[..., tuple[Any, ...]]:
        return lambda *a, **kw: (name, *a, *kw.values())


__all__ = ["KINDS", "Kind", "Messages", "Op", "Resolver", "Route", "make_op"]
