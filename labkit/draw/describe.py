"""The picture in words: a text alternative for every figure labkit draws.

:func:`describe` says what :func:`labkit.draw.draw` shows, for a screen
reader and for the ``alt`` text of the picture in a notebook and its HTML
export. First a line that names the namespaces (the host, the lab's, the
outside world's); then what changed since the last picture and a packet
trace's hops in order, when there are some; then each namespace with its
interfaces, addresses, bridges and notes; then the cables. Pure (no
matplotlib) and deterministic: only what the picture shows, in the
picture's order, nothing that varies from run to run (no MAC address,
interface index, time or packet counter).

Above :data:`~labkit.draw.layout.MEDIUM_ABOVE` lab namespaces, the lab is
summed up in one line (its names, how many interfaces are down, its
addresses) and its cables are counted; a long list keeps its first
:data:`LIST_MAX` items and says how many there are.

Examples
--------
>>> import networkx as nx
>>> from labkit.draw.describe import describe
>>> g = nx.Graph()
>>> g.add_node("ns:red", kind="netns", name="red")
>>> g.add_node("if:red/eth0", kind="iface", ns="red", name="eth0", type="veth",
...            addrs=["10.0.0.1/24"])
>>> print(describe(g))
Network diagram of 1 namespace: red.
red: eth0 10.0.0.1/24.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any

import networkx as nx

from labkit.core import names as naming
from labkit.core.model import HOST
from labkit.draw import notes, style
from labkit.draw.graph import NodeId, edges, iface_ns, ifaces, is_up, natural, ns_order
from labkit.draw.layout import FIXED, MEDIUM_ABOVE, WORLD, place

__all__ = ["LIST_MAX", "describe", "describe_changes", "describe_trace", "trace_title"]

#: A list in the description keeps this many items, then says how many there are.
LIST_MAX = 8

#: Node attributes, as a sentence names them.
_DETAILS = {
    "addrs": "addresses",
    "up": "state",
    "oper": "state",
    "routes": "routes",
    "rules": "rules",
    "forwarding": "forwarding",
    "services": "web apps",
    "mac": "MAC address",
    "master": "bridge",
    "type": "type",
}


def _rank(ns: str) -> tuple[Any, ...]:
    """The order namespaces are described in: red, blue, the other lab
    namespaces (``ns10``, ``ns11``, ... then other names), the host, the world.

    Examples
    --------
    >>> sorted(["router", "host", "ns10", "blue", "red", "alpha"], key=_rank)
    ['red', 'blue', 'ns10', 'alpha', 'host', 'router']
    """
    if ns in FIXED:
        return (0, list(FIXED).index(ns), ())
    if ns == HOST:
        return (2, 0, ())
    if ns in WORLD:
        return (3, list(WORLD).index(ns), ())
    return (1, 0, ns_order(ns))


def _ends(u: str, v: str, attrs: Any) -> tuple[str, str]:
    """A cable's two ends, the one described first first (see :func:`_rank`)."""

    def key(node: str) -> tuple[Any, ...]:
        return (_rank(iface_ns(node, attrs(node))), natural(node))

    return (u, v) if key(u) <= key(v) else (v, u)


def _some(items: list[str], most: int = LIST_MAX, sep: str = ", ") -> str:
    """``a, b, c``, or the first ``most`` items, ``…`` and how many in all.

    Examples
    --------
    >>> _some(["a", "b"]), _some([str(i) for i in range(12)], 3)
    ('a, b', '0, 1, 2, … (12 in all)')
    """
    if len(items) <= most:
        return sep.join(items)
    return sep.join(items[:most]) + f"{sep}\u2026 ({len(items)} in all)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _address_key(cidr: str) -> tuple[Any, ...]:
    try:
        i = ipaddress.ip_interface(cidr)
    except ValueError:
        return (1, natural(cidr))
    return (0, i.version, int(i.ip), i.network.prefixlen)


def _where(node: str, attrs: dict[str, Any]) -> str:
    """``NS NAME`` for an interface (``host eth0``), ``namespace NAME`` for a namespace."""
    nid = NodeId.parse(node)
    if nid.kind == "ns":
        return f"namespace {nid.name}"
    if nid.kind == "if":
        return f"{iface_ns(node, attrs)} {attrs.get('name', nid.name)}"
    return node


def _iface(d: dict[str, Any], show_addresses: bool) -> str:
    """An interface in a few words: its name, its addresses, ``down`` when it is."""
    words = [str(d.get("name", ""))]
    if show_addresses:
        words += sorted((str(a) for a in d.get("addrs") or []), key=_address_key)
    text = " ".join(words[:1]) + (" " + ", ".join(words[1:]) if words[1:] else "")
    return text + (" (down)" if not is_up(d) else "")


def _namespace(
    name: str,
    graph: nx.Graph,
    drawn: dict[str, dict[str, Any]],
    ports: dict[str, list[str]],
    show_addresses: bool,
    show_routes: bool,
) -> str:
    """One line for one namespace: its bridges and ports, interfaces, notes, rules."""
    mine = sorted((n for n in drawn if iface_ns(n, drawn[n]) == name), key=natural)
    ported = {p for members in ports.values() for p in members}
    parts, plain = [], []
    for node in mine:
        d = drawn[node]
        if d.get("type") == "bridge":
            members = [_iface(drawn[p], False) for p in sorted(ports.get(node, []), key=natural)]
            text = "bridge " + _iface(d, show_addresses)
            parts.append(text + (f" with ports {_some(members)}" if members else ", no port"))
        elif node not in ported:
            plain.append(_iface(d, show_addresses))
    if plain:
        parts.insert(0, _some(plain, sep="; "))
    d = dict(graph.nodes.get(f"ns:{name}", {}))
    lines, rules, _ = notes.notes(d, short_rules=False, show_routes=show_routes, counters=False)
    parts += lines
    if rules:
        parts.append("NAT rules: " + "; ".join(rules))
    if not mine:
        parts.insert(0, "no interface but loopback")
    return f"{name}: {'; '.join(parts)}."


def _cable(u: str, v: str, drawn: dict[str, dict[str, Any]]) -> str:
    text = f"{_where(u, drawn[u])} to {_where(v, drawn[v])}"
    return text if is_up(drawn[u]) and is_up(drawn[v]) else text + " (an end down)"


def describe(
    graph: nx.Graph,
    *,
    changes: Any = None,
    trace: Any = None,
    upto: int | None = None,
    title: str | None = None,
    show_addresses: bool = True,
    show_routes: bool = True,
) -> str:
    """What :func:`labkit.draw.draw` draws for these arguments, in words.

    One line for the picture (its title, its namespaces); what changed
    (:func:`describe_changes`) and the trace's hops
    (:func:`describe_trace`), when given, come next; then one line per
    namespace (interfaces with their addresses, bridges with their ports,
    ``forwarding``, web apps, routes through a gateway, NAT rules without
    their counters) and one for the cables.
    The same text is the figure's ``labkit_alt``, its ``text/plain``
    and the ``alt`` of its picture in a notebook.

    Parameters
    ----------
    graph : networkx.Graph
        A graph from :func:`labkit.kernel.observe.to_graph`.
    changes, trace, upto, title, show_addresses, show_routes
        As for :func:`labkit.draw.draw`.

    Returns
    -------
    str
        A few lines of plain text.

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.Graph()
    >>> g.add_node("ns:host", kind="netns", name="host", forwarding=True)
    >>> for ns, name, peer in [("red", "veth-red", "veth-red-br"), ("host", "veth-red-br", "")]:
    ...     g.add_node(f"if:{ns}/{name}", kind="iface", ns=ns, name=name, type="veth",
    ...                addrs=["192.168.15.1/24"] if ns == "red" else [])
    >>> g.add_node("if:host/v-net-0", kind="iface", ns="host", name="v-net-0", type="bridge",
    ...            addrs=["192.168.15.5/24"])
    >>> g.add_edge("if:red/veth-red", "if:host/veth-red-br", kind="veth")
    >>> g.add_edge("if:host/veth-red-br", "if:host/v-net-0", kind="port")
    >>> print(describe(g, title="the bridge"))
    Network diagram, the bridge: the host and 1 lab namespace: red.
    host: bridge v-net-0 192.168.15.5/24 with ports veth-red-br; forwarding.
    red: veth-red 192.168.15.1/24.
    Cables: red veth-red to host veth-red-br.
    """
    drawn = ifaces(graph)
    veths = edges(graph, "veth", drawn)
    ports: dict[str, list[str]] = {}
    for u, v in edges(graph, "port", drawn):
        port, bridge = (u, v) if drawn[v].get("type") == "bridge" else (v, u)
        ports.setdefault(bridge, []).append(port)
    names = list(place(graph).boxes)
    world = [n for n in WORLD if n in names]
    lab = sorted((n for n in names if n != HOST and n not in WORLD), key=_rank)
    dense = len(lab) > MEDIUM_ABOVE
    if trace is not None and title == trace_title(trace, upto):
        title = None  # the trace's own line says it
    head = "Network diagram" + (f", {title}" if title else "")
    what = []
    if HOST in names:
        what.append("the host")
    if lab:
        what.append(f"{_plural(len(lab), 'lab namespace')}: {_some(lab)}")
    if world:
        what.append(f"the outside world: {', '.join(world)}")
    if not what:
        head += ": no namespace."
    elif HOST not in names and not world:
        head += f" of {_plural(len(lab), 'namespace')}: {_some(lab)}."
    else:
        head += ": " + (" and ".join(what) if len(what) < 3 else f"{what[0]}, {what[1]}; {what[2]}")
        head += "."
    lines = [head]
    if changes is not None and changes:
        lines.append(describe_changes(changes, graph))
    if trace is not None:
        lines.append(describe_trace(trace, upto))
    each = [HOST] * (HOST in names) + ([] if dense else lab) + world
    for name in each:
        lines.append(_namespace(name, graph, drawn, ports, show_addresses, show_routes))
    if dense:
        lines.append(_lab_summary(lab, drawn, show_addresses))
    cables = [_cable(u, v, drawn) for u, v in _cable_order(veths, drawn)]
    if dense:
        labbed = set(lab)
        inside = [
            (u, v) for u, v in veths if {iface_ns(u, drawn[u]), iface_ns(v, drawn[v])} & labbed
        ]
        cables = [
            _cable(u, v, drawn)
            for u, v in _cable_order(veths, drawn)
            if (u, v) not in inside and (v, u) not in inside
        ]
        cables.append(_lab_cables(inside, drawn, labbed))
    if cables:
        lines.append(f"Cables: {'; '.join(cables)}.")
    return "\n".join(lines)


def _cable_order(
    veths: list[tuple[str, str]], drawn: dict[str, dict[str, Any]]
) -> list[tuple[str, str]]:
    """Cables in the order of their namespaces (see :func:`_rank`), each from its first end."""
    pairs = [_ends(u, v, drawn.__getitem__) for u, v in veths]

    def key(pair: tuple[str, str]) -> tuple[Any, ...]:
        return tuple((_rank(iface_ns(n, drawn[n])), natural(n)) for n in pair)

    return sorted(pairs, key=key)


def _lab_summary(lab: list[str], drawn: dict[str, dict[str, Any]], show_addresses: bool) -> str:
    """The lab's namespaces in one line: names, interfaces down, addresses."""
    labbed = set(lab)
    mine = [d for n, d in drawn.items() if iface_ns(n, d) in labbed]
    down = sum(1 for d in mine if not is_up(d))
    text = f"The lab namespaces, {_some(lab, 4)}: {_plural(len(mine), 'interface')}"
    text += f", {down} down" if down else ", all up"
    addrs = sorted((str(a) for d in mine for a in d.get("addrs") or []), key=_address_key)
    if show_addresses and addrs:
        text += f"; addresses {addrs[0]} to {addrs[-1]}" if len(addrs) > 1 else f"; {addrs[0]}"
    return text + "."


def _lab_cables(
    inside: list[tuple[str, str]], drawn: dict[str, dict[str, Any]], labbed: set[str]
) -> str:
    """The lab's cables counted by where they go (``100 cables from the lab
    namespaces to the host``)."""
    where: Counter[str] = Counter()
    down = 0
    for u, v in inside:
        a, b = iface_ns(u, drawn[u]), iface_ns(v, drawn[v])
        far = {a, b} - labbed
        where["between them" if not far else f"to {naming.where(min(far))}"] += 1
        down += not (is_up(drawn[u]) and is_up(drawn[v]))
    counted = [
        f"{_plural(n, 'cable')} from the lab namespaces {w}" for w, n in sorted(where.items())
    ]
    text = ", ".join(counted)
    return text + (f" ({down} with an end down)" if down else "")


def describe_changes(changes: Any, graph: nx.Graph | None = None) -> str:
    """What changed since the last picture, with the marks the picture uses:
    ``+`` added, ``~`` changed, ``−`` removed (see :data:`labkit.draw.style.CHANGES`).

    Examples
    --------
    >>> from labkit.ui.live import Changes
    >>> describe_changes(Changes(added=frozenset({"ns:red"}),
    ...                          changed=frozenset({"if:host/eth0"}),
    ...                          details={"if:host/eth0": ("addrs",)}))
    'Since the last picture: + added namespace red; ~ changed host eth0 (addresses).'
    """
    old = getattr(changes, "old", None)

    def attrs(node: str) -> dict[str, Any]:
        for g in (graph, old):
            if g is not None and node in g:
                return dict(g.nodes[node])
        return {}

    def things(nodes: Any, edges_: Any) -> list[str]:
        items = sorted(nodes, key=lambda n: (not str(n).startswith("ns:"), natural(str(n))))
        out = [_where(n, attrs(n)) for n in items]
        for u, v in sorted(_ends(u, v, attrs) for u, v in edges_):
            bridge = [n for n in (u, v) if attrs(n).get("type") == "bridge"]
            if bridge:  # a bridge port
                port = v if bridge[0] == u else u
                name = attrs(bridge[0]).get("name", bridge[0])
                out.append(f"{_where(port, attrs(port))} as a port of {name}")
            else:
                out.append(f"cable {_where(u, attrs(u))} to {_where(v, attrs(v))}")
        return out

    parts = []
    details = getattr(changes, "details", {}) or {}
    for kind, nodes, edges_ in (
        ("added", changes.added, changes.added_edges),
        ("changed", changes.changed, ()),
        ("removed", changes.removed, changes.removed_edges),
    ):
        items = things(nodes, edges_)
        if kind == "changed":
            items = []
            for n in sorted(nodes, key=lambda n: natural(str(n))):
                what = sorted({_DETAILS.get(k, k) for k in details.get(n, ())})
                items.append(_where(n, attrs(n)) + (f" ({', '.join(what)})" if what else ""))
        if items:
            parts.append(f"{style.CHANGES[kind].mark} {kind} {_some(items)}")
    if not parts:
        return "Nothing changed since the last picture."
    return f"Since the last picture: {'; '.join(parts)}."


def trace_title(trace: Any, upto: int | None = None) -> str:
    """What a trace picture is of: the whole ping, or one hop of it.

    Examples
    --------
    >>> from labkit.trace import Sighting, Trace
    >>> t = Trace("red", "203.0.113.8", [
    ...     Sighting(0.0, "red", "veth-red", "out", "192.168.15.1", "203.0.113.8", "request")])
    >>> trace_title(t)
    'red pings 203.0.113.8: 1 hop, no reply came back'
    >>> trace_title(t, 1)
    'hop 1 of 1: red veth-red out, 192.168.15.1 → 203.0.113.8 (request)'
    """
    sightings = list(trace.sightings)
    n = len(sightings)
    if upto is not None:
        if not isinstance(upto, int) or isinstance(upto, bool) or not 0 <= upto <= n:
            raise ValueError(f"upto must be a hop number from 0 to {n}, not {upto!r}")
        if upto == 0:
            return f"{trace.src} pings {trace.dst}: before the first hop"
        s = sightings[upto - 1]
        return (
            f"hop {upto} of {n}: {s.ns} {s.iface} {s.direction}, {s.src} \u2192 {s.dst} ({s.kind})"
        )
    if not n:
        return f"{trace.src} pings {trace.dst}: no interface saw the packet"
    came = "the reply came back" if trace.answered else "no reply came back"
    return f"{trace.src} pings {trace.dst}: {n} hop{'s' if n != 1 else ''}, {came}"


def describe_trace(trace: Any, upto: int | None = None) -> str:
    """A packet trace's hops in order, as drawn: the request's (circles,
    solid arrows), then the reply's (squares, dashed arrows), the addresses
    where they change (NAT); with ``upto``, the hops drawn so far.

    Examples
    --------
    >>> from labkit.trace import Sighting, Trace
    >>> t = Trace("red", "10.0.0.9", [
    ...     Sighting(0.0, "red", "eth0", "out", "10.0.0.1", "10.0.0.9", "request"),
    ...     Sighting(0.1, "host", "eth1", "out", "10.0.0.5", "10.0.0.9", "request"),
    ...     Sighting(0.2, "red", "eth0", "in", "10.0.0.9", "10.0.0.1", "reply")], answered=True)
    >>> print(describe_trace(t))  # doctest: +NORMALIZE_WHITESPACE
    Packet trace, red pings 10.0.0.9: 3 hops, the reply came back.
    Request (circles, solid arrows): 1 red eth0 out, 10.0.0.1 → 10.0.0.9;
        2 host eth1 out, source now 10.0.0.5.
    Reply (squares, dashed arrows): 3 red eth0 in, 10.0.0.9 → 10.0.0.1.
    >>> describe_trace(t, upto=1).splitlines()[0]
    'Packet trace, hop 1 of 3: red eth0 out, 10.0.0.1 → 10.0.0.9 (request); hops 1 to 1 drawn.'
    """
    sightings = list(trace.sightings)
    last = len(sightings) if upto is None else upto
    head = f"Packet trace, {trace_title(trace, upto)}"
    if upto is not None and upto:
        head += f"; hops 1 to {upto} drawn"
    lines = [head + "."]
    shapes = {"request": "circles, solid arrows", "reply": "squares, dashed arrows"}
    for kind in ("request", "reply"):
        hops, before = [], None
        for n, s in enumerate(sightings[:last], 1):
            if s.kind != kind:
                continue
            text = f"{n} {s.ns} {s.iface} {s.direction}"
            if before is None:
                text += f", {s.src} \u2192 {s.dst}"
            else:
                if s.src != before.src:
                    text += f", source now {s.src}"
                if s.dst != before.dst:
                    text += f", destination now {s.dst}"
            hops.append(text)
            before = s
        if hops:
            lines.append(f"{kind.capitalize()} ({shapes[kind]}): {'; '.join(hops)}.")
    return "\n".join(lines)
