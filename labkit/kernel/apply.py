"""From the state the kernel has to the state a stage wants.

:func:`diff` is pure: it compares an observed :class:`~labkit.core.model.State`
with a desired one and returns the :class:`Op` list that turns the first
into the second, each with the shell command it stands for. It only
touches what the lab owns (:func:`labkit.core.stages.owned`); something made by
hand that stands in the way raises :class:`~labkit.errors.ConflictError`
before anything changes. :func:`run` carries the ops out over netlink,
treating "already there" and "already gone" as success, so every op can
run twice.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labkit.core.model import HOST, MARK, Iface, IfKey, Route, Rule, Service, State
from labkit.core.stages import Ownership
from labkit.errors import ConflictError, KernelError
from labkit.kernel import netns, rtnl, services


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


def _ip(ns: str) -> str:
    return "ip" if ns == HOST else f"ip -n {ns}"


def make_op(kind: str, *args: Any) -> Op:
    """An :class:`Op` of ``kind`` with its arguments and its shell commands.

    Examples
    --------
    >>> make_op("link_up", "red", "veth-red", True).commands
    ('ip -n red link set veth-red up',)
    """
    if kind == "netns_add":
        cmds = [f"ip netns add {args[0]}"]
    elif kind == "netns_del":
        cmds = [f"ip netns delete {args[0]}"]
    elif kind == "link_del":
        cmds = [f"{_ip(args[0])} link delete {args[1]}"]
    elif kind == "bridge_add":
        cmds = [f"{_ip(args[0])} link add {args[1]} type bridge"]
    elif kind == "veth_add":
        ns_a, a, ns_b, b, in_place = args
        if not in_place:
            cmds = [f"ip link add {a} type veth peer name {b}"]
            cmds += [f"ip link set {n} netns {s}" for s, n in ((ns_a, a), (ns_b, b)) if s != HOST]
        else:  # made in place: the names are taken in the host
            cmds = [f"ip link add {a} netns {ns_a} type veth peer name {b} netns {ns_b}"]
    elif kind == "master":
        ns, name, master = args
        tail = f"master {master}" if master else "nomaster"
        cmds = [f"{_ip(ns)} link set {name} {tail}"]
    elif kind in ("addr_add", "addr_del"):
        ns, name, cidr = args
        cmds = [f"{_ip(ns)} addr {kind[5:]} {cidr} dev {name}"]
    elif kind == "link_up":
        ns, name, up = args
        cmds = [f"{_ip(ns)} link set {name} {'up' if up else 'down'}"]
    elif kind in ("route_add", "route_del"):
        route: Route = args[0]
        cmds = [f"{_ip(route.ns)} route {kind[6:]} {route.dst} via {route.via}"]
    elif kind == "sysctl":
        ns, key, value = args
        prefix = "" if ns == HOST else f"ip netns exec {ns} "
        cmds = [f"{prefix}sysctl -w {key}={value}"]
    elif kind in ("rule_add", "rule_del"):
        rule, marked = args
        cmds = [rule.command("-A" if kind == "rule_add" else "-D", MARK if marked else None)]
    elif kind == "service_start":
        cmds = [args[0].command()]
    elif kind == "service_stop":
        svc: Service = args[0]
        # [x]yz: the pattern does not match the shell that runs pkill
        cmds = [f"pkill -f 'labkit.webapp --name [{svc.ns[0]}]{svc.ns[1:]} {svc.port}'"]
    else:  # pragma: no cover - programming error
        raise ValueError(kind)
    return Op(kind, tuple(args), tuple(cmds))


def conflicts(observed: State, want: State, own: Ownership) -> list[str]:
    """What, made by hand, blocks ``want``: one sentence per problem.

    Examples
    --------
    >>> from labkit.core.stages import desired, owned
    >>> obs = State({"red"}, {("red", "dummy0"): Iface("red", "dummy0", "dummy",
    ...     addrs=frozenset({"192.168.15.2/24"}))})
    >>> conflicts(obs, desired("veth"), owned(2))[0].split(":")[0]
    'address 192.168.15.2 is on dummy0 in namespace red, which labkit did not make'
    """
    needed = {cidr.split("/")[0]: iface for iface in want.ifaces.values() for cidr in iface.addrs}
    problems = []
    for key, iface in sorted(observed.ifaces.items()):
        if key in own.ifaces:
            continue
        for cidr in sorted(iface.addrs):
            ip = cidr.split("/")[0]
            if ip in needed:
                where = "the host" if iface.ns == HOST else f"namespace {iface.ns}"
                other = needed[ip]
                problems.append(
                    f"address {ip} is on {iface.name} in {where}, which labkit did not "
                    f"make: {other.name} in {other.ns} needs it. Remove it with "
                    f"`{_ip(iface.ns)} addr del {cidr} dev {iface.name}`, or start "
                    f"over with lab.reset() (`labkit reset`)."
                )
    return problems


def diff(
    observed: State, want: State, own: Ownership, owned_routes: set[Route], sweep: bool = False
) -> list[Op]:
    """The ops that take ``observed`` to ``want``, touching only what is owned.

    Raises :class:`ConflictError` when something not owned is in the way.
    With ``sweep``, firewall rules that labkit did not mark go too (reset).

    Examples
    --------
    >>> from labkit.core.stages import desired, owned
    >>> own = owned(2)
    >>> ops = diff(desired("reset"), desired("netns"), own, set(own.routes))
    >>> [c for op in ops for c in op.commands]
    ['ip netns add blue', 'ip netns add red']
    """
    problems = conflicts(observed, want, own)
    if problems:
        raise ConflictError(" ".join(problems))
    ops: list[Op] = []
    cur: dict[IfKey, Iface] = {k: v for k, v in observed.ifaces.items() if k in own.ifaces}
    alive = (observed.namespaces | {HOST}) - (
        observed.namespaces & own.namespaces - want.namespaces
    )

    def forget(key: IfKey) -> None:
        iface = cur.pop(key, None) or observed.ifaces.get(key)
        if iface and iface.peer:
            cur.pop(iface.peer, None)

    # 1. Namespaces the stage does not have (their links go with them).
    doomed = observed.namespaces & own.namespaces - want.namespaces
    for name in sorted(doomed):
        ops.append(make_op("netns_del", name))
    for key in [k for k in observed.ifaces if k[0] in doomed]:
        forget(key)
    # 2. Links that should not exist, or are not what they should be.
    for key in sorted(cur):
        iface = cur.get(key)
        if iface is None or key[0] not in alive:
            continue
        w = want.ifaces.get(key)
        if w is None or w.kind != iface.kind or (w.kind == "veth" and w.peer != iface.peer):
            ops.append(make_op("link_del", *key))
            forget(key)
    # 3. Web apps and labkit's firewall rules that the stage does not have.
    for svc in sorted(observed.services - want.services):
        if svc.ns in alive and (svc.ns == HOST or svc.ns in own.namespaces):
            ops.append(make_op("service_stop", svc))
    unwanted = (observed.rules if sweep else observed.marked) - want.rules
    for rule in sorted(unwanted):
        if rule.ns in alive:
            ops.append(make_op("rule_del", rule, rule in observed.marked))
    # Routes that should not exist (before addresses change under them).
    managed = {r for r in observed.routes if r.ns in own.namespaces and r.ns in alive}
    managed |= {r for r in observed.routes if r in owned_routes}
    for route in sorted(managed - want.routes):
        ops.append(make_op("route_del", route))
    # 4. Namespaces, bridges, veth pairs that are missing.
    for name in sorted(want.namespaces - observed.namespaces):
        ops.append(make_op("netns_add", name))
    done: set[IfKey] = set()
    host_names = {k[1] for k in (*want.ifaces, *observed.ifaces) if k[0] == HOST}
    for key, w in want.ifaces.items():
        if key in cur or key in done:
            continue
        if w.kind == "bridge":
            ops.append(make_op("bridge_add", *key))
        elif w.kind == "veth" and w.peer:
            # Name the namespace end first, as the tutorial does.
            first, second = (w.peer, key) if key[0] == HOST else (key, w.peer)
            in_place = HOST not in (key[0], w.peer[0]) and bool({key[1], w.peer[1]} & host_names)
            ops.append(make_op("veth_add", *first, *second, in_place))
            done.add(w.peer)
        cur[key] = Iface(key[0], key[1], w.kind, peer=w.peer)
        if w.peer:
            cur[w.peer] = Iface(w.peer[0], w.peer[1], w.kind, peer=key)
        done.add(key)
    # 5. Masters, addresses, up/down, in the desired order.
    for key, w in want.ifaces.items():
        if cur[key].master != w.master:
            ops.append(make_op("master", *key, w.master))
    for key, w in want.ifaces.items():
        for cidr in sorted(cur[key].addrs - w.addrs):
            ops.append(make_op("addr_del", *key, cidr))
    for key, w in want.ifaces.items():
        for cidr in sorted(w.addrs - cur[key].addrs):
            ops.append(make_op("addr_add", *key, cidr))
    for key, w in want.ifaces.items():
        if cur[key].up != w.up:
            ops.append(make_op("link_up", *key, w.up))
    # 6. Routes, forwarding, rules and web apps that are missing.
    for route in sorted(want.routes - (observed.routes & managed)):
        ops.append(make_op("route_add", route))
    for (ns, key), value in sorted(want.sysctls.items()):
        if observed.sysctls.get((ns, key), "0") != value:
            ops.append(make_op("sysctl", ns, key, value))
    for rule in sorted(want.rules - observed.rules):
        ops.append(make_op("rule_add", rule, True))
    for svc in sorted(want.services - observed.services):
        ops.append(make_op("service_start", svc))
    return ops


_GONE = {errno.ENOENT, errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL}
#: ops carried out as rtnetlink requests, many per ``sendmsg``
_NETLINK = {
    "bridge_add",
    "veth_add",
    "link_del",
    "master",
    "addr_add",
    "addr_del",
    "link_up",
    "route_add",
    "route_del",
}


def _apply(nl: netns.Netlink, op: Op) -> None:
    kind, args = op.kind, op.args
    if kind == "sysctl":
        nl.write_sysctl(*args)
    elif kind in ("rule_add", "rule_del"):
        _iptables(nl, args[0], "-A" if kind == "rule_add" else "-D", args[1], op)
    elif kind == "service_start":
        services.start(nl, args[0])
    elif kind == "service_stop":
        services.stop(args[0])
    else:  # pragma: no cover - programming error
        raise ValueError(kind)


class _Indexes(dict):
    """Interface name -> ifindex per namespace, read once (one dump) and kept
    until links are added or deleted."""

    def __init__(self, nl: netns.Netlink) -> None:
        super().__init__()
        self.nl = nl

    def __missing__(self, ns: str) -> dict[str, int]:
        self[ns] = self.nl.indexes(ns)
        return self[ns]

    def need(self, ns: str, name: str) -> int:
        try:
            return self[ns][name]
        except KeyError:
            where = "the host" if ns == HOST else f"namespace {ns}"
            raise KernelError(f"no interface {name!r} in {where}") from None


def _encode(nl: netns.Netlink, op: Op, idx: _Indexes, fds: dict[str, int]) -> bytes | None:
    """The rtnetlink request for ``op`` (None: nothing to do)."""
    kind, args = op.kind, op.args
    if kind in ("route_add", "route_del"):
        route: Route = args[0]
        return rtnl.route(kind == "route_add", route.dst, route.via)
    ns, name = args[0], args[1]
    if kind == "bridge_add":
        return rtnl.new_bridge(name)
    if kind == "veth_add":
        ns_b, peer = args[2], args[3]  # args[4]: how the shell would do it
        if ns_b == ns:
            return rtnl.new_veth(name, peer)
        if ns_b not in fds:
            fds[ns_b] = nl.ns_fd(ns_b)
        return rtnl.new_veth(name, peer, fds[ns_b])
    if kind in ("link_del", "link_up") and name not in idx[ns]:
        return None  # gone already
    index = idx.need(ns, name)
    if kind == "link_del":
        return rtnl.del_link(index)
    if kind == "master":
        return rtnl.set_link(index, master=idx.need(ns, args[2]) if args[2] else 0)
    if kind in ("addr_add", "addr_del"):
        return rtnl.address(kind == "addr_add", index, args[2])
    if kind == "link_up":
        return rtnl.set_link(index, up=args[2])
    raise ValueError(kind)  # pragma: no cover - programming error


def _requests(
    nl: netns.Netlink, ops: list[Op], idx: _Indexes, tick: Callable[[int], None] | None = None
) -> None:
    """Carry out netlink ops of one kind: one batch of requests per namespace.

    ``tick(n)`` is called after each batch with the number of ops it did.
    """
    batches: dict[str, list[tuple[Op, bytes]]] = {}
    fds: dict[str, int] = {}
    try:
        for op in ops:
            msg = _encode(nl, op, idx, fds)
            if msg is not None:
                ns = op.args[0].ns if op.kind.startswith("route") else op.args[0]
                batches.setdefault(ns, []).append((op, msg))
        for ns, items in batches.items():
            results = nl.sock(ns).request([msg for _, msg in items])
            again = []
            for (op, _), (code, detail) in zip(items, results, strict=True):
                adding = op.kind.endswith("_add") or op.kind == "master"
                if code == errno.EEXIST and op.kind == "addr_add":
                    again.append(op)  # there, but without its connected route
                    continue
                if not code or (code == errno.EEXIST and adding):
                    continue
                if code in _GONE and not adding:
                    continue
                err = rtnl.NetlinkError(code, detail)
                raise netns.translate(err, "; ".join(op.commands))
            if again:
                # deleting and adding an address again makes the kernel
                # restore the route to its network
                index = idx[ns]
                fixes = []
                for op in again:
                    fixes += [
                        rtnl.address(False, index[op.args[1]], op.args[2]),
                        rtnl.address(True, index[op.args[1]], op.args[2]),
                    ]
                rtnl.check(nl.sock(ns).request(fixes))
            if tick:
                tick(len(items))
    finally:
        for fd in fds.values():
            os.close(fd)


def _run_all(
    nl: netns.Netlink, ops: list[Op], progress: Callable[[int, int], None] | None = None
) -> None:
    idx = _Indexes(nl)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, len(ops))

    at = 0
    while at < len(ops):
        kind = ops[at].kind
        end = at
        while end < len(ops) and ops[end].kind == kind:
            end += 1
        group, at = ops[at:end], end
        if kind in _NETLINK:
            before = done
            _requests(nl, group, idx, tick)
            tick(len(group) - (done - before))  # ops with nothing to do
            if kind in ("bridge_add", "veth_add", "link_del"):
                idx.clear()
        elif kind == "netns_add":
            present = set(nl.netns_list())
            for op in group:
                if op.args[0] not in present:
                    nl.netns_add(op.args[0])
                tick(1)
        elif kind == "netns_del":
            nl.netns_del_many([op.args[0] for op in group])
            idx.clear()
            tick(len(group))
        else:
            for op in group:
                _apply(nl, op)
                tick(1)


def _iptables(nl: netns.Netlink, rule: Rule, verb: str, marked: bool, op: Op) -> None:
    words = rule.command(verb, MARK if marked else None).split()
    argv = ["iptables", "-w", *words[words.index("iptables") + 1 :]]
    proc = nl.run_in(rule.ns, argv)
    if proc.returncode == 0:
        if verb == "-D":  # the same rule may be there twice (iptables -A run twice)
            for _ in range(100):
                if nl.run_in(rule.ns, argv).returncode != 0:
                    break
        return
    if verb == "-D" and ("does a matching rule exist" in proc.stderr or "No chain" in proc.stderr):
        return  # already gone
    raise KernelError(f"{op.commands[0]}: {proc.stderr.strip() or 'failed'}")


def run(ops: list[Op], progress: Callable[[int, int], None] | None = None) -> None:
    """Carry out ``ops`` in order, on the netlink thread.

    ``progress(done, total)`` is called as ops complete (from the netlink
    thread).

    Examples
    --------
    >>> from labkit.kernel.apply import run, make_op
    >>> run([make_op("netns_add", "red")])  # doctest: +SKIP
    """
    nl = netns.get()
    nl.call(_run_all, nl, ops, progress)
