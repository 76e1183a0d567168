"""From the state the kernel has to the state a stage wants: the ops, in order.

:func:`diff` is pure: it compares an observed :class:`~labkit.core.model.State`
with a desired one and returns the :class:`~labkit.core.ops.Op` list that
turns the first into the second, each with the shell command it stands
for. It only touches what the lab owns (:func:`labkit.core.stages.owned`);
something made by hand that stands in the way raises
:class:`~labkit.errors.ConflictError` before anything changes
(:func:`conflicts`). :mod:`labkit.kernel.apply` carries the ops out.

The order is the one a person would follow: remove what must go (whole
namespaces first, their links go with them), then create what is missing,
then configure it (masters, addresses, up), then routes, forwarding,
firewall and web apps.

Examples
--------
>>> from labkit.core.stages import desired, owned
>>> own = owned(2)
>>> [c for op in diff(desired("reset"), desired("netns"), own, set(own.routes))
...  for c in op.commands]
['ip netns add blue', 'ip netns add red']
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from labkit.core import names, stages
from labkit.core.model import (
    ACCEPT,
    FORWARDING,
    HOST,
    Iface,
    IfKey,
    Route,
    Rule,
    Service,
    State,
    routes_through,
)
from labkit.core.ops import Op, make_op
from labkit.errors import ConfigError, ConflictError


def conflicts(observed: State, want: State, own: stages.Ownership) -> list[str]:
    """What, made by hand, blocks ``want``: one sentence per problem.

    The learner's addresses (:meth:`~labkit.core.stages.Ownership.learners`:
    on links labkit did not make, and their own on the host's uplink) are in
    the way when an address ``want`` needs is among them, or when one of
    their networks lies inside a network ``want`` puts on another link of
    the same namespace: the kernel would then send that network's packets
    out of the learner's link.

    Examples
    --------
    >>> from labkit.core.stages import desired, owned
    >>> obs = State({"red"}, {("red", "dummy0"): Iface("red", "dummy0", "dummy",
    ...     addrs=frozenset({"192.168.15.2/24"}))})
    >>> conflicts(obs, desired("veth"), owned(2))[0].split(":")[0]
    'address 192.168.15.2 is on dummy0 in namespace red, which labkit did not make'
    >>> eth0 = Iface("host", "eth0", "veth", addrs=frozenset({"192.168.1.2/24", "192.168.15.9/28"}))
    >>> print(conflicts(State(set(), {eth0.key: eth0}), desired("host"), owned(2))[0])
    ... # doctest: +NORMALIZE_WHITESPACE
    192.168.15.9/28 on eth0, the host's uplink, where it was added by hand,
    lies in 192.168.15.0/24, which v-net-0 in the host needs: the host would send packets
    for 192.168.15.9/28 out of eth0. Remove it with `ip addr del 192.168.15.9/28 dev eth0`,
    or start over with lab.reset() (`labkit reset`), which removes it too.
    """
    needed = {cidr.split("/")[0]: iface for iface in want.ifaces.values() for cidr in iface.addrs}
    problems = []
    for key, iface in sorted(observed.ifaces.items()):
        theirs = own.learners(iface)
        if not theirs:
            continue
        if key in own.ifaces:
            whose = f"{iface.name}, the host's uplink, where it was added by hand"
        else:
            whose = f"{iface.name} in {names.place(iface.ns)}, which labkit did not make"
        for cidr in sorted(theirs):
            ip = cidr.split("/")[0]
            fix = (
                f"Remove it with `{names.ip(iface.ns)} addr del {cidr} dev {iface.name}`, or "
                "start over with lab.reset() (`labkit reset`)"
                + (", which removes it too." if key in own.ifaces else ".")
            )
            if ip in needed:
                other = needed[ip]
                problems.append(
                    f"address {ip} is on {whose}: {other.name} in "
                    f"{names.where(other.ns)} needs it. {fix}"
                )
                continue
            inside = _inside(cidr, iface, want)
            if inside:
                net, other = inside
                problems.append(
                    f"{cidr} on {whose}, lies in {net}, which {other.name} in "
                    f"{names.where(other.ns)} needs: {names.where(iface.ns)} would send "
                    f"packets for {cidr} out of {iface.name}. {fix}"
                )
    return problems


def _inside(cidr: str, iface: Iface, want: State) -> tuple[str, Iface] | None:
    """A network ``want`` puts on another link of ``iface``'s namespace that holds ``cidr``.

    Examples
    --------
    >>> from labkit.core.stages import desired
    >>> _inside("192.168.15.9/28", Iface("host", "eth0", "veth"), desired("host"))[0]
    '192.168.15.0/24'
    >>> _inside("192.168.0.0/16", Iface("host", "eth0", "veth"), desired("host")) is None
    True
    """
    mine = ipaddress.ip_interface(cidr).network
    for other in want.ifaces.values():
        if other.ns != iface.ns or other.name == iface.name:
            continue
        for theirs in sorted(other.addrs):
            net = ipaddress.ip_interface(theirs).network
            if mine.version == net.version and mine.subnet_of(net):  # type: ignore[arg-type]
                return str(net), other
    return None


@dataclass
class _Diff:
    """The work of one :func:`diff`: what exists (as the ops go) and what stays."""

    observed: State
    want: State
    own: stages.Ownership
    owned_routes: set[Route]
    sweep: bool
    #: the lab's links as they will be after the ops so far
    cur: dict[IfKey, Iface] = field(default_factory=dict)
    #: namespaces that stay (the host included)
    alive: set[str] = field(default_factory=set)
    #: routes labkit manages (it may delete them)
    managed: set[Route] = field(default_factory=set)
    #: routes the kernel takes away with the links the ops delete
    lost: set[Route] = field(default_factory=set)
    #: the observed routes, by namespace
    by_ns: dict[str, set[Route]] = field(default_factory=dict)
    #: namespaces that stay and have static routes
    routed: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        obs = self.observed
        self.cur = {k: v for k, v in obs.ifaces.items() if k in self.own.ifaces}
        self.alive = (obs.namespaces | {HOST}) - self.doomed()
        for r in obs.routes:
            self.by_ns.setdefault(r.ns, set()).add(r)
        self.routed = set(self.by_ns) & self.alive
        self.managed = {
            r for r in obs.routes if r.ns in self.own.namespaces and r.ns in self.alive
        } | {r for r in obs.routes if r in self.owned_routes}

    def doomed(self) -> set[str]:
        return self.observed.namespaces & self.own.namespaces - self.want.namespaces

    def forget(self, key: IfKey) -> None:
        iface = self.cur.pop(key, None) or self.observed.ifaces.get(key)
        ends = {key[0], iface.peer[0]} if iface and iface.peer else {key[0]}
        if ends & self.routed:  # routes of namespaces that stay may go with the link
            near = set().union(*(self.by_ns.get(ns, ()) for ns in ends))
            self.lost |= routes_through(State(ifaces=self.observed.ifaces, routes=near), key)
        if iface and iface.peer:
            self.cur.pop(iface.peer, None)

    def remove_namespaces(self) -> list[Op]:
        """Namespaces the stage does not have (their links go with them)."""
        doomed = self.doomed()
        for key in [k for k in self.observed.ifaces if k[0] in doomed]:
            self.forget(key)
        return [make_op("netns_del", name) for name in sorted(doomed)]

    def remove_links(self) -> list[Op]:
        """Links that should not exist, or are not what they should be."""
        ops = []
        for key in sorted(self.cur):
            iface = self.cur.get(key)
            if iface is None or key[0] not in self.alive:
                continue
            w = self.want.ifaces.get(key)
            if w is None or w.kind != iface.kind or (w.kind == "veth" and w.peer != iface.peer):
                ops.append(make_op("link_del", *key))
                self.forget(key)
        return ops

    def remove_extras(self) -> list[Op]:
        """Web apps, firewall rules and routes the stage does not have.

        Routes go before addresses change under them. With ``sweep``,
        firewall rules that labkit did not mark go too.
        """
        obs, want = self.observed, self.want
        ops = [
            make_op("service_stop", svc)
            for svc in sorted(obs.services - want.services)
            if svc.ns in self.alive and (svc.ns == HOST or svc.ns in self.own.namespaces)
        ]
        unwanted = (obs.rules if self.sweep else obs.marked) - want.rules
        ops += [
            make_op("rule_del", rule, rule in obs.marked)
            for rule in sorted(unwanted)
            if rule.ns in self.alive
        ]
        ops += [make_op("route_del", route) for route in sorted(self.managed - want.routes)]
        return ops

    def add_namespaces_and_links(self) -> list[Op]:
        """Namespaces, bridges and veth pairs that are missing."""
        want = self.want
        ops = [
            make_op("netns_add", name)
            for name in sorted(want.namespaces - self.observed.namespaces)
        ]
        done: set[IfKey] = set()
        host_names = {k[1] for k in (*want.ifaces, *self.observed.ifaces) if k[0] == HOST}
        for key, w in want.ifaces.items():
            if key in self.cur or key in done:
                continue
            if w.kind == "bridge":
                ops.append(make_op("bridge_add", *key))
            elif w.kind == "veth" and w.peer:
                # Name the namespace end first, as the tutorial does.
                first, second = (w.peer, key) if key[0] == HOST else (key, w.peer)
                in_place = HOST not in (key[0], w.peer[0]) and bool(
                    {key[1], w.peer[1]} & host_names
                )
                ops.append(make_op("veth_add", *first, *second, in_place))
                done.add(w.peer)
            self.cur[key] = Iface(key[0], key[1], w.kind, peer=w.peer)
            if w.peer:
                self.cur[w.peer] = Iface(w.peer[0], w.peer[1], w.kind, peer=key)
            done.add(key)
        return ops

    def configure_links(self) -> list[Op]:
        """Masters, addresses and up/down, in the desired order."""
        want, cur = self.want.ifaces, self.cur
        ops = [
            make_op("master", *k, w.master) for k, w in want.items() if cur[k].master != w.master
        ]
        for key, w in want.items():
            gone = cur[key].addrs - w.addrs - self.own.learners(cur[key])
            ops += [make_op("addr_del", *key, c) for c in sorted(gone)]
        for key, w in want.items():
            ops += [make_op("addr_add", *key, c) for c in sorted(w.addrs - cur[key].addrs)]
        ops += [make_op("link_up", *k, w.up) for k, w in want.items() if cur[k].up != w.up]
        return ops

    def add_extras(self) -> list[Op]:
        """Routes, forwarding, chain policies, rules and web apps that are missing."""
        obs, want = self.observed, self.want
        there = (obs.routes - self.lost) & self.managed
        ops = [make_op("route_add", r) for r in sorted(want.routes - there)]
        ops += [
            make_op("sysctl", ns, key, value)
            for (ns, key), value in sorted(want.sysctls.items())
            if obs.sysctls.get((ns, key), "0") != value
        ]
        have, need = obs.policies, want.policies
        for key in sorted(set(have) | set(need)):
            value = need.get(key, ACCEPT)
            if key[0] in self.alive and have.get(key, ACCEPT) != value:
                ops.append(make_op("policy", *key, value))
        ops += [make_op("rule_add", rule, True) for rule in sorted(want.rules - obs.rules)]
        ops += [make_op("service_start", svc) for svc in sorted(want.services - obs.services)]
        return ops


def diff(
    observed: State,
    want: State,
    own: stages.Ownership,
    owned_routes: set[Route],
    sweep: bool = False,
) -> list[Op]:
    """The ops that take ``observed`` to ``want``, touching only what is owned.

    Raises :class:`ConflictError` when something not owned is in the way.
    With ``sweep``, firewall rules that labkit did not mark go too (reset).

    Examples
    --------
    >>> from labkit.core.stages import desired, owned
    >>> own = owned(2)
    >>> ops = diff(desired("netns"), desired("veth"), own, set(own.routes))
    >>> ops[0].commands
    ('ip link add veth-red type veth peer name veth-blue', 'ip link set veth-red netns red', \
'ip link set veth-blue netns blue')
    """
    problems = conflicts(observed, want, own)
    if problems:
        raise ConflictError(" ".join(problems))
    d = _Diff(observed, want, own, owned_routes, sweep)
    return [
        *d.remove_namespaces(),
        *d.remove_links(),
        *d.remove_extras(),
        *d.add_namespaces_and_links(),
        *d.configure_links(),
        *d.add_extras(),
    ]


def stage_of(state: State, count: int) -> str | None:
    """Which stage (or ``stage:step``) ``state`` is at: ``"reset"``, or None (no step).

    Only what the lab owns counts; the world must be complete.

    Examples
    --------
    >>> from labkit.core.stages import desired
    >>> stage_of(desired("veth"), 2), stage_of(desired("bridge:cables"), 2)
    ('veth', 'bridge:cables')
    """
    own = stages.owned(count)
    mine = state.project(set(own.namespaces), set(own.ifaces), own.routes)
    for key, iface in mine.ifaces.items():  # the learner's addresses on the uplink
        if own.learners(iface):
            mine.ifaces[key] = replace(iface, addrs=iface.addrs - own.learners(iface))
    for st in reversed(stages.course(count)):
        for j in range(len(st.steps) - 1, -1, -1):
            step = st.steps[j]
            if mine == stages.desired(step.id, count):
                if st.name == "world":
                    return "reset" if j == len(st.steps) - 1 else None
                return st.name if j == len(st.steps) - 1 else step.id
    return None


def _option(spec: str, name: str) -> str | None:
    """The value after ``name`` in an iptables rule spec, or None."""
    words = spec.split()
    return words[words.index(name) + 1] if name in words[:-1] else None


def publish(state: State, host_port: int, ns: str, port: int, count: int) -> list[Op]:
    """The ops that publish a web app of ``ns`` on the host's ``host_port``.

    DNAT in PREROUTING (from the LAN and the bridge) and OUTPUT (from the
    host itself) to the namespace's address on the bridge, and the web
    app unless it runs already. :class:`ConfigError` says what is missing.

    Examples
    --------
    >>> from labkit.core.stages import desired
    >>> [op.kind for op in publish(desired("internet"), 8080, "red", 80, 2)]
    ['service_start', 'rule_add', 'rule_add']
    >>> publish(desired("bridge"), 8080, "red", 80, 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labkit.errors.ConfigError: publishing needs the host to forward and red to have its way back...
    """
    if ns == HOST or ns in stages.WORLD:
        raise ConfigError(f"publish a web app in a lab namespace (red, blue, ...), not {ns!r}")
    back = [r for r in state.routes if r.ns == ns and r.via == stages.HOST_IP]
    if state.sysctls.get((HOST, FORWARDING)) != "1" or not back:
        raise ConfigError(
            f"publishing needs the host to forward and {ns} to have its way back (a "
            f"route via {stages.HOST_IP}): go to the nat stage first "
            "(lab.goto('nat') or `labkit up nat`)"
        )
    ips = [
        cidr.split("/")[0]
        for iface in state.ifaces.values()
        if iface.ns == ns
        for cidr in sorted(iface.addrs)
        if ipaddress.ip_interface(cidr).ip in stages.network(count)
    ]
    if not ips:
        raise ConfigError(f"namespace {ns!r} has no address on {stages.network(count)}")
    for rule in sorted(state.rules):
        if (rule.ns, rule.table, rule.chain) == (HOST, "nat", "PREROUTING") and (
            _option(rule.spec, "--dport") == str(host_port)
        ):
            raise ConfigError(
                f"the host's port {host_port} is already forwarded ({rule.spec}): "
                "pick another port, or remove that rule with "
                f"`iptables -t nat -D PREROUTING {rule.spec}`"
            )
    spec = (
        f"-d {stages.HOST_LAN_IP}/32 -p tcp -m tcp --dport {host_port} "
        f"-j DNAT --to-destination {ips[0]}:{port}"
    )
    ops = (
        [] if Service(ns, port) in state.services else [make_op("service_start", Service(ns, port))]
    )
    ops += [
        make_op("rule_add", Rule(HOST, "nat", chain, spec), True)
        for chain in ("PREROUTING", "OUTPUT")
    ]
    return ops
