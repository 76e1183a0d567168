"""Draw the graph of a sandbox: namespaces as boxes, veth pairs as cables.

:func:`layout` places every drawn node of a graph from
:func:`labkit.kernel.observe.to_graph`; :func:`draw` renders it with matplotlib;
:func:`save` writes a PNG. Layout is pure and deterministic: a place
depends on names, never on the order in which the kernel listed things.

The picture follows the course, drawn as a home network. The host
namespace is a large grey box in the middle, with its bridges (switch
shapes) inside. Above it is the outside world every sandbox has (see
:mod:`labkit.core.stages`): the home ``router`` with its LAN switch ``br-lan``
inside, the ``lan-pc`` beside it on the LAN side and the ``internet`` (a
cloud) on the WAN side. Below the host, ``red`` is always on the left and
``blue`` on the right; every other namespace sits in rows below (``ns10``,
``ns11``, ... in natural order, other names after them). Every one of these
places is fixed, so nothing moves from stage to stage. An interface is a
point on its namespace's box, on the side facing the other end of its
cable; loopback interfaces are left out.

How much is written depends on how many lab namespaces there are (the
world's three do not count): up to :data:`MEDIUM_ABOVE`, every cable end is
labelled with its interface's name and addresses; up to
:data:`COMPACT_ABOVE`, the boxes are smaller and show their addresses
inside; up to :data:`DENSE_ABOVE`, boxes are compact and show only their
(shortened) names; above that (hundreds of namespaces), they are small
unnamed tiles in rows, each row labelled with its first and last name
(``ns10`` on the left, ``ns41`` on the right), and the host's ends of
their cables sit along the bottom of the host only. The world, and the
host's cable to it, are always labelled in full.

Small notes inside a box say what a namespace does besides its links:
``forwarding`` when it forwards IPv4, the labkit web apps listening there
(``web :80``), its routes through a gateway (``default via 192.168.1.1``)
and, in the host, its NAT rules with their packet counters (``PREROUTING
DNAT 192.168.1.2:80 → 192.168.15.2:80 [2 pkts]``); the router's NAT rule
is a short ``NAT:`` note. A rule labkit did not make (one added by hand)
starts with ``*``. The host and the world always have notes; lab
namespaces have them up to :data:`MEDIUM_ABOVE`.

Examples
--------
>>> import networkx as nx
>>> from labkit.draw import draw, layout
>>> g = nx.Graph(namespaces=["host", "red", "router"])
>>> g.add_node("ns:host", kind="netns", name="host")
>>> g.add_node("ns:red", kind="netns", name="red")
>>> g.add_node("ns:router", kind="netns", name="router", forwarding=True)
>>> pos = layout(g)
>>> pos["ns:red"][0] < pos["ns:host"][0]
True
>>> pos["ns:router"][1] > pos["ns:host"][1] > pos["ns:red"][1]
True
>>> draw(g)
<Figure size 900x700 with 1 Axes>
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from os import PathLike
from typing import Any

import networkx as nx
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, PathPatch
from matplotlib.path import Path

from labkit.core.model import HOST

__all__ = [
    "COMPACT_ABOVE",
    "DENSE_ABOVE",
    "FIGSIZE",
    "MEDIUM_ABOVE",
    "draw",
    "layout",
    "save",
    "step_through",
    "trace_steps",
]

#: Default figure size in inches (width, height): the same for every graph.
FIGSIZE = (9.0, 7.0)
#: Up to this many lab namespaces, every cable end gets its own label.
MEDIUM_ABOVE = 6
#: Above this many lab namespaces, boxes are compact and show only their names.
COMPACT_ABOVE = 24
#: Above this many lab namespaces, boxes are unnamed tiles and each row is
#: labelled with its first and last name (a name no longer fits in a tile).
DENSE_ABOVE = 128

Point = tuple[float, float]
_Rect = tuple[float, float, float, float]  # x0, y0, x1, y1

# The drawing, in data units: x from 0 to _W; the lab below y = _H, the world above.
_W, _H = 16.0, 10.0
_HOST_BOX = (8.0, 8.0, 7.6, 3.6)  # centre x, centre y, width, height
_FIXED = {"red": (2.3, 3.6), "blue": (_W - 2.3, 3.6)}
_FIXED_SIZE = (3.2, 1.6)
# The outside world (labkit.core.stages.WORLD), above the host: the router right
# above it, the PC on the LAN side (left), the internet on the WAN side (right).
_WORLD_Y = 12.3
_WORLD = {
    "router": (8.0, _WORLD_Y, 4.4, 2.6),
    "lan-pc": (1.9, _WORLD_Y, 2.8, 1.6),
    "internet": (14.3, _WORLD_Y, 3.2, 1.9),
}
_CLOUD = "internet"
# Namespaces whose name is written at the top left of their box, notes below
# it, and how far below their centre their bridges are (a fraction of the height).
_TITLED = {HOST: 0.27, "router": 0.2}
# The other namespaces fill rows in this rectangle (x0, x1, top, bottom):
# up to _ONE_ROW of them in one centred row, more in a grid.
_ROWS = (0.2, _W - 0.2, 2.4, -0.9)
_ONE_ROW = 5
# Dense rows leave this much room on either side for their labels.
_ROW_LABELS = 1.1
# The grids, by how many namespaces there are: (columns, rows). Within one
# grid a namespace's place depends only on its rank among them.
_GRIDS = [(7, 3), (10, 4), (12, 5), (14, 7), (16, 8)]
# The drawing always reaches down to red and blue, so that the host and the
# world keep their place in the picture too.
_FLOOR = _FIXED["red"][1] - _FIXED_SIZE[1] / 2 - 0.4
# At most this many routes and NAT rules are noted in one box.
_MAX_ROUTES = 3
_MAX_RULES = 4

_DOWN_OPER = {"DOWN", "LOWERLAYERDOWN", "NOTPRESENT", "DORMANT"}
_INK = "#263238"
_NOTE = "#37474f"
_CABLE = "#37474f"
_PORT = "#607d8b"
_HOST_FACE, _HOST_EDGE = "#eceff1", "#78909c"
_OTHER_FACE, _OTHER_EDGE = "#f1efe2", "#7d7a5c"
_WORLD_STYLE = {  # face, edge
    "router": ("#fff6e0", "#b07d12"),
    "lan-pc": ("#eef2e8", "#6f8a5e"),
    "internet": ("#e3f0fb", "#3f86c4"),
}
_BRIDGE_FACE, _BRIDGE_LIGHT = "#263238", "#80cbc4"
_DASH = (0, (3.5, 2.5))
# What changed since the last picture (see labkit.ui.live): added, removed, changed.
_ADDED, _REMOVED, _CHANGED = "#2e7d32", "#c62828", "#ef6c00"
# A packet trace (see labkit.trace): the request's hops, the reply's, NAT.
_HOP = {"request": "#1565c0", "reply": "#ad1457"}
_PPU = 34.0  # points per data unit in a default figure: font sizes are meant for it


@dataclass(frozen=True)
class _Box:
    """A namespace's rectangle: centre, width and height in data units."""

    x: float
    y: float
    w: float
    h: float

    @property
    def perimeter(self) -> float:
        return 2 * (self.w + self.h)

    def moved(self, x: float, y: float) -> _Box:
        return _Box(x, y, self.w, self.h)

    def toward(self, tx: float, ty: float) -> float:
        """Perimeter coordinate of the edge point facing ``(tx, ty)``."""
        dx, dy = tx - self.x, ty - self.y
        if abs(dx) < 1e-9 and abs(dy) < 1e-9:
            dy = -1.0
        t = min(
            (self.w / 2) / abs(dx) if abs(dx) > 1e-9 else math.inf,
            (self.h / 2) / abs(dy) if abs(dy) > 1e-9 else math.inf,
        )
        return self.coord(self.x + t * dx, self.y + t * dy)

    def coord(self, px: float, py: float) -> float:
        """Perimeter coordinate of an edge point: counter-clockwise from
        the bottom-left corner."""
        u = min(max(px - (self.x - self.w / 2), 0.0), self.w)
        v = min(max(py - (self.y - self.h / 2), 0.0), self.h)
        eps = 1e-6
        if v <= eps:
            return u
        if u >= self.w - eps:
            return self.w + v
        if v >= self.h - eps:
            return 2 * self.w + self.h - u
        return 2 * (self.w + self.h) - v

    def point(self, s: float) -> Point:
        """The edge point at perimeter coordinate ``s``."""
        s %= self.perimeter
        left, bottom = self.x - self.w / 2, self.y - self.h / 2
        if s <= self.w:
            return (left + s, bottom)
        if s <= self.w + self.h:
            return (left + self.w, bottom + s - self.w)
        if s <= 2 * self.w + self.h:
            return (left + 2 * self.w + self.h - s, bottom + self.h)
        return (left, bottom + self.perimeter - s)

    def normal(self, px: float, py: float) -> Point:
        """Outward unit normal of the side a point is on."""
        rx = (px - self.x) / (self.w / 2)
        ry = (py - self.y) / (self.h / 2)
        if abs(rx) >= abs(ry):
            return (math.copysign(1.0, rx), 0.0)
        return (0.0, math.copysign(1.0, ry))


# -- the graph -------------------------------------------------------------------


def _natural(name: str) -> tuple[Any, ...]:
    """Natural sort key: ``ns2`` before ``ns10``."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", name)
        if part
    )


def _ns_order(name: str) -> tuple[Any, ...]:
    """``ns10``, ``ns11``, ... first, then any other name; natural order."""
    return (0 if re.fullmatch(r"ns\d+", name) else 1, _natural(name), name)


def _iface_ns(node: str, d: dict[str, Any]) -> str:
    if "ns" in d:
        return str(d["ns"])
    return node[3:].rpartition("/")[0] or HOST


def _ifaces(graph: nx.Graph) -> dict[str, dict[str, Any]]:
    """Drawn interfaces (no loopback): node id to attributes."""
    return {
        str(n): d
        for n, d in graph.nodes(data=True)
        if d.get("kind") == "iface" and d.get("type") != "loopback"
    }


def _namespaces(graph: nx.Graph, ifaces: dict[str, dict[str, Any]]) -> list[str]:
    """Every namespace that has a node or a drawn interface, in layout order."""
    names = {
        str(d.get("name", str(n)[3:]))
        for n, d in graph.nodes(data=True)
        if d.get("kind") == "netns"
    }
    names |= {_iface_ns(n, d) for n, d in ifaces.items()}
    return sorted(names, key=_ns_order)


def _edges(graph: nx.Graph, kind: str, ifaces: dict[str, Any]) -> list[tuple[str, str]]:
    """Edges of ``kind`` between drawn interfaces, each pair and the list sorted."""
    pairs = {
        (min(str(u), str(v)), max(str(u), str(v)))
        for u, v, d in graph.edges(data=True)
        if d.get("kind") == kind and u in ifaces and v in ifaces and u != v
    }
    return sorted(pairs)


def _is_up(d: dict[str, Any]) -> bool:
    """Admin up and not reported down by the kernel (UNKNOWN counts as up)."""
    return bool(d.get("up", True)) and str(d.get("oper", "UNKNOWN")).upper() not in _DOWN_OPER


def _density(names: list[str]) -> str:
    """``"full"``, ``"medium"``, ``"compact"`` or ``"dense"``, from the number
    of lab namespaces."""
    n = sum(1 for name in names if name != HOST and name not in _WORLD)
    if n > DENSE_ABOVE:
        return "dense"
    if n > COMPACT_ABOVE:
        return "compact"
    return "medium" if n > MEDIUM_ABOVE else "full"


# -- notes -----------------------------------------------------------------------


def _counter(packets: Any) -> str:
    n = int(packets or 0)
    return f"[{n} pkt]" if n == 1 else f"[{n} pkts]"


def _rule_text(rule: dict[str, Any], short: bool = False) -> str:
    """A firewall rule in a few words: chain, target, matches, counter.

    ``-m`` module names are dropped, ``/32`` is left out of addresses, a
    DNAT by destination and port reads ``ADDR:PORT → TO``, and a rule that
    labkit did not make starts with ``*``. ``short`` writes ``NAT:``
    instead of the chain (for the router).

    Examples
    --------
    >>> spec = "-d 192.168.1.2/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:80"
    >>> _rule_text({"chain": "PREROUTING", "spec": spec, "marked": True, "packets": 2})
    'PREROUTING DNAT 192.168.1.2:80 → 10.0.0.2:80 [2 pkts]'
    >>> _rule_text({"chain": "POSTROUTING", "spec": "-o wan0 -j MASQUERADE", "marked": False,
    ...             "packets": 1}, short=True)
    '* NAT: MASQUERADE -o wan0 [1 pkt]'
    """
    words = str(rule.get("spec", "")).split()
    target, to, matches, rest = "", "", [], []
    opts: dict[str, str] = {}
    i = 0
    while i < len(words):
        word, value = words[i], words[i + 1] if i + 1 < len(words) else ""
        if target:  # the target's own options
            if word.startswith("--to") and value:
                to, i = value, i + 2
            else:
                rest.append(word)
                i += 1
        elif word in ("-j", "-g") and value:
            target, i = value, i + 2
        elif word == "-m" and value:
            i += 2
        elif word.startswith("-") and value and not value.startswith("-"):
            opts[word] = value.removesuffix("/32")
            matches += [word, opts[word]]
            i += 2
        else:
            matches.append(word)
            i += 1
    if (
        target == "DNAT"
        and "--dport" in opts
        and "!" not in matches
        and set(opts)
        <= {
            "-d",
            "-p",
            "--dport",
        }
    ):
        where = f"{opts.get('-d', '')}:{opts['--dport']}"
        if opts.get("-p", "tcp") != "tcp":
            where = f"{opts['-p']} {where}"
        body = [where]
    else:
        body = matches
    if to:
        body += ["\u2192", to]
    head = "NAT:" if short else str(rule.get("chain", ""))
    text = " ".join([head, target or "-", *body, *rest, _counter(rule.get("packets"))])
    return text if rule.get("marked", True) else "* " + text


def _notes(
    d: dict[str, Any], short_rules: bool, show_routes: bool = True
) -> tuple[list[str], list[str], bool]:
    """The notes of a namespace node: general ones, firewall rules, and
    whether a rule made by hand is among them.

    The general notes are the web apps, ``forwarding`` and the routes
    through a gateway (the default one first). The rules are the NAT rules
    (see :func:`_rule_text`) and the number of rules in other tables.
    """
    lines: list[str] = []
    ports = sorted({int(p) for p in d.get("services") or []})
    if ports:
        lines.append("web " + " ".join(f":{p}" for p in ports))
    if d.get("forwarding"):
        lines.append("forwarding")
    routes = sorted(
        (r for r in (d.get("routes") or [] if show_routes else []) if r.get("via")),
        key=lambda r: (r.get("dst") != "default", _natural(str(r.get("dst"))), str(r["via"])),
    )
    lines += [f"{r.get('dst')} via {r['via']}" for r in routes[:_MAX_ROUTES]]
    if len(routes) > _MAX_ROUTES:
        lines.append(f"+ {len(routes) - _MAX_ROUTES} more routes")
    rules = list(d.get("rules") or [])
    nat = [r for r in rules if r.get("table") == "nat"]
    shown = nat if len(nat) <= _MAX_RULES else nat[: _MAX_RULES - 1]
    notes = [_rule_text(r, short_rules) for r in shown]
    if len(shown) < len(nat):
        notes.append(f"+ {len(nat) - len(shown)} more NAT rules")
    others: dict[str, int] = {}
    for r in rules:
        if r.get("table") != "nat":
            others[str(r.get("table"))] = others.get(str(r.get("table")), 0) + 1
    notes += [f"+ {n} {table} rule{'s' if n > 1 else ''}" for table, n in sorted(others.items())]
    by_hand = any(not r.get("marked", True) for r in rules if r in shown or r not in nat)
    return lines, notes, by_hand


# -- layout ----------------------------------------------------------------------


def _rows_area(dense: bool) -> tuple[float, float, float, float]:
    """The rectangle the rows fill: narrower when dense, for the row labels."""
    x0, x1, top, bottom = _ROWS
    if dense:
        x0, x1 = x0 + _ROW_LABELS, x1 - _ROW_LABELS
    return x0, x1, top, bottom


def _grid(m: int, dense: bool = False) -> tuple[int, int]:
    if m <= _ONE_ROW:
        return max(m, 1), 1
    for cols, rows in _GRIDS:
        if m <= cols * rows:
            return cols, rows
    x0, x1, top, bottom = _rows_area(dense)
    cols = math.ceil(math.sqrt(m * (x1 - x0) / (top - bottom) / 2))
    return cols, math.ceil(m / cols)


def _boxes(names: list[str]) -> dict[str, _Box]:
    """The rectangle of every namespace."""
    dense = _density(names) == "dense"
    boxes: dict[str, _Box] = {}
    for name in names:
        if name == HOST:
            boxes[name] = _Box(*_HOST_BOX)
        elif name in _WORLD:
            boxes[name] = _Box(*_WORLD[name])
        elif name in _FIXED:
            boxes[name] = _Box(*_FIXED[name], *_FIXED_SIZE)
    others = [n for n in names if n not in boxes]
    cols, rows = _grid(len(others), dense)
    x0, x1, top, bottom = _rows_area(dense)
    cell_w = min((x1 - x0) / cols, 3.2)
    cell_h = min((top - bottom) / rows, 1.9)
    w, h = cell_w * 0.8, min(cell_h * 0.7, cell_w * 0.45)
    for rank, name in enumerate(others):
        row, col = divmod(rank, cols)
        x = (x0 + x1) / 2 + (col - (cols - 1) / 2) * cell_w
        y = top - (row + 0.5) * cell_h
        boxes[name] = _Box(round(x, 6), round(y, 6), w, h)
    return boxes


def _spread(wanted: list[float], gap: float, length: float) -> list[float]:
    """Move sorted coordinates at least ``gap`` apart, as little as possible.

    Isotonic regression (pool adjacent violators) of ``wanted[i] - i * gap``,
    clipped so that everything stays within ``[gap / 2, length - gap / 2]``.
    """
    n = len(wanted)
    if n == 0:
        return []
    gap = min(gap, length / n)
    blocks: list[tuple[float, int]] = []  # (mean, count)
    for i, s in enumerate(wanted):
        blocks.append((s - i * gap, 1))
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m2, c2), (m1, c1) = blocks.pop(), blocks.pop()
            blocks.append(((m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2))
    ys = [m for m, c in blocks for _ in range(c)]
    lo, hi = gap / 2, max(gap / 2, length - gap / 2 - (n - 1) * gap)
    return [min(max(y, lo), hi) + i * gap for i, y in enumerate(ys)]


def _place(graph: nx.Graph) -> tuple[dict[str, _Box], dict[str, Point]]:
    """Boxes of the namespaces and positions of every drawn node."""
    ifaces = _ifaces(graph)
    names = _namespaces(graph, ifaces)
    boxes = _boxes(names)
    density = _density(names)
    lab_gap = {"full": 0.6, "medium": 0.3, "compact": 0.06, "dense": 0.06}[density]
    pos: dict[str, Point] = {f"ns:{n}": (b.x, b.y) for n, b in boxes.items()}

    by_ns: dict[str, list[str]] = {}
    for node, d in ifaces.items():
        by_ns.setdefault(_iface_ns(node, d), []).append(node)
    peers: dict[str, list[str]] = {}
    for u, v in _edges(graph, "veth", ifaces):
        peers.setdefault(u, []).append(v)
        peers.setdefault(v, []).append(u)

    for ns in sorted(by_ns, key=_ns_order):
        box = boxes[ns]
        nodes = sorted(by_ns[ns], key=_natural)
        bridges = [n for n in nodes if ifaces[n].get("type") == "bridge"]
        drop = _TITLED.get(ns, 0.12)
        for i, node in enumerate(bridges):  # inside the box, side by side
            x = box.x - box.w / 2 + box.w * (i + 1) / (len(bridges) + 1)
            pos[node] = (x, round(box.y - drop * box.h, 6))
        wanted: list[tuple[float, str]] = []
        below: list[tuple[float, str]] = []  # dense: the host's ends of the lab's cables
        for node in nodes:
            if node in bridges:
                continue
            far = [boxes[_iface_ns(p, ifaces[p])] for p in peers.get(node, [])]
            far = [b for b in far if b is not box]
            if density == "dense" and ns == HOST and far and max(b.y for b in far) < box.y:
                below.append((_bottom_x(box, far), node))
                continue
            if far:
                tx, ty = sum(b.x for b in far) / len(far), sum(b.y for b in far) / len(far)
            else:  # no cable to another namespace: the side away from the host
                tx, ty = box.x, box.y + (1.0 if ns == HOST else -1.0)
            wanted.append((box.toward(tx, ty), node))
        if below:
            _along_bottom(box, below, lab_gap, pos)
        if not wanted:
            continue
        # Cut the perimeter open in the middle of the widest stretch with no interface.
        at = sorted(s for s, _ in wanted)
        gaps = [(b - a, a) for a, b in zip(at, [*at[1:], at[0] + box.perimeter], strict=True)]
        widest, start = max(gaps, key=lambda g: g[0])  # the first of equals
        cut = start + widest / 2
        rel = sorted(((s - cut) % box.perimeter, _natural(node), node) for s, node in wanted)
        gap = 0.6 if ns in _WORLD else lab_gap
        spread = _spread([r[0] for r in rel], gap, box.perimeter)
        for s, (_, _, node) in zip(spread, rel, strict=True):
            x, y = box.point(s + cut)
            pos[node] = (round(x, 6), round(y, 6))
    return boxes, pos


def _bottom_x(box: _Box, far: list[_Box]) -> float:
    """Where the bottom side of ``box`` meets the line from its centre to ``far``'s."""
    tx = sum(b.x for b in far) / len(far)
    ty = sum(b.y for b in far) / len(far)
    t = (box.h / 2) / max(box.y - ty, 1e-9)
    return box.x + t * (tx - box.x)


def _along_bottom(
    box: _Box, wanted: list[tuple[float, str]], gap: float, pos: dict[str, Point]
) -> None:
    """Place points on the bottom side of ``box``, in the order of their wanted x,
    at least ``gap`` apart (closer when they do not fit), as near as possible
    to where they want to be."""
    left, margin = box.x - box.w / 2, 0.3
    length = box.w - 2 * margin
    rel = sorted(
        (min(max(x - left - margin, 0.0), length), _natural(node), node) for x, node in wanted
    )
    gap = min(gap, length / max(len(rel) - 1, 1))
    spread = _spread([r[0] for r in rel], gap, length + gap)
    for s, (_, _, node) in zip(spread, rel, strict=True):
        pos[node] = (round(left + margin - gap / 2 + s, 6), round(box.y - box.h / 2, 6))


def layout(graph: nx.Graph) -> dict[str, Point]:
    """Place every node that :func:`draw` draws, from names alone.

    Namespaces get the centre of their box: the host in the middle; the
    outside world above it (``router`` right above, ``lan-pc`` on its left,
    ``internet`` on its right); ``red`` below on the left, ``blue`` below on
    the right, every other namespace in rows further below (``ns10``,
    ``ns11``, ... in natural order, then other names in natural order).
    These places never depend on what else the graph holds. Interfaces get
    a point on their namespace's box, on the side facing the other end of
    their veth cable; interfaces without a cable to another namespace sit
    on the bottom side (the top side in the host). Bridges sit inside their
    box. Loopback interfaces are left out. The result is deterministic and
    the graph is not changed.

    Parameters
    ----------
    graph : networkx.Graph
        A graph from :func:`labkit.kernel.observe.to_graph` (nodes ``ns:NAME`` and
        ``if:NS/NAME``; see :mod:`labkit.kernel.observe`).

    Returns
    -------
    dict of str to (float, float)
        Node id to ``(x, y)`` in data units (x from 0 to 16; the lab below
        y = 10, the world above).

    Examples
    --------
    >>> import networkx as nx
    >>> from labkit.draw import layout
    >>> g = nx.Graph()
    >>> for ns in ("red", "blue"):
    ...     g.add_node(f"ns:{ns}", kind="netns", name=ns)
    ...     g.add_node(f"if:{ns}/veth-{ns}", kind="iface", ns=ns, name=f"veth-{ns}",
    ...                type="veth", up=True, oper="UP", addrs=[], master=None)
    >>> g.add_edge("if:red/veth-red", "if:blue/veth-blue", kind="veth")
    >>> pos = layout(g)
    >>> pos["ns:red"], pos["ns:blue"]
    ((2.3, 3.6), (13.7, 3.6))
    >>> pos["if:red/veth-red"]  # on the right side of red's box, facing blue
    (3.9, 3.6)
    >>> g.add_node("ns:router", kind="netns", name="router")
    >>> layout(g)["ns:router"]  # the world is above, wherever the lab is
    (8.0, 12.3)
    """
    return _place(graph)[1]


# -- drawing ---------------------------------------------------------------------


def _cloud(box: _Box) -> Path:
    """A cloud around ``box``: bumps on an ellipse, one dent at the middle of
    the left side (where the cable to the router arrives)."""
    n = 10
    a, b = box.w / 2, box.h / 2 - 0.2
    dents = [
        (
            box.x + a * math.cos(math.pi + 2 * math.pi * k / n),
            box.y + b * math.sin(math.pi + 2 * math.pi * k / n),
        )
        for k in range(n)
    ]
    verts: list[Point] = [dents[0]]
    codes = [Path.MOVETO]
    for k in range(n):
        (x0, y0), (x1, y1) = dents[k], dents[(k + 1) % n]
        chord = math.hypot(x1 - x0, y1 - y0)
        bump = (0.36, 0.46, 0.4, 0.5, 0.38)[k % 5] * chord * 4 / 3
        ox, oy = (y1 - y0) / chord, -(x1 - x0) / chord  # outward: the dents go counter-clockwise
        verts += [(x0 + ox * bump, y0 + oy * bump), (x1 + ox * bump, y1 + oy * bump), (x1, y1)]
        codes += [Path.CURVE4] * 3
    return Path(verts, codes)


class _Painter:
    """Draws one graph into one Axes."""

    def __init__(
        self,
        graph: nx.Graph,
        pos: dict[str, Point] | None,
        ax: Axes,
        show_addresses: bool,
        show_macs: bool,
        show_routes: bool = True,
        changes: Any = None,
        trace: Any = None,
        upto: int | None = None,
    ) -> None:
        self.ax = ax
        self.changes = changes
        self.trace = trace
        self.upto = upto
        self.ifaces = _ifaces(graph)
        self.veths = _edges(graph, "veth", self.ifaces)
        self.ports = _edges(graph, "port", self.ifaces)
        self.show_addresses = show_addresses
        self.show_macs = show_macs
        boxes, auto = _place(graph)
        self.names = list(boxes)
        self.density = _density(self.names)
        self.pos = self._merge(boxes, auto, pos or {})
        self.boxes = {n: b.moved(*self.pos[f"ns:{n}"]) for n, b in boxes.items()}
        self.ppu = _PPU  # points per data unit, known once the limits are set
        self.k = 1.0  # how much text and marks shrink in a small Axes
        self.notes: dict[str, list[str]] = {}  # general notes, and rules but the host's
        self.rules: list[str] = []  # the host's rules, in a panel of their own
        self.by_hand = False
        for name in self.names:
            if name in _TITLED or name in _WORLD or self.density == "full":
                d = dict(graph.nodes.get(f"ns:{name}", {}))
                lines, rules, by_hand = _notes(d, name != HOST, show_routes)
                self.notes[name] = lines if name == HOST else lines + rules
                if name == HOST:
                    self.rules = rules
                self.by_hand |= by_hand
        # Where removed things were: the last picture's layout.
        self.ghost_boxes: dict[str, _Box] = {}
        self.ghost_pos: dict[str, Point] = {}
        old = getattr(changes, "old", None)
        if changes is not None and old is not None and changes.removed | changes.removed_edges:
            self.ghost_boxes, self.ghost_pos = _place(old)
            self.old_ifaces = _ifaces(old)

    def _merge(
        self, boxes: dict[str, _Box], auto: dict[str, Point], given: dict[str, Any]
    ) -> dict[str, Point]:
        """Given positions win; the rest of a moved namespace moves with it."""
        out = {k: (float(v[0]), float(v[1])) for k, v in given.items()}
        for node, (x, y) in auto.items():
            if node in out:
                continue
            if node.startswith("if:"):
                ns = _iface_ns(node, self.ifaces.get(node, {}))
                if f"ns:{ns}" in out and ns in boxes:
                    gx, gy = out[f"ns:{ns}"]
                    x, y = x + gx - boxes[ns].x, y + gy - boxes[ns].y
            out[node] = (x, y)
        return out

    # -- sizes

    def dens(self, ns: str | None) -> str:
        """The density a namespace is drawn with: the world's is always full."""
        return "full" if ns in _WORLD else self.density

    def size(
        self,
        full: float,
        medium: float,
        compact: float,
        ns: str | None = None,
        dense: float | None = None,
    ) -> float:
        """The value for the density ``ns`` is drawn with (dense: as compact unless given)."""
        values = {"full": full, "medium": medium, "compact": compact}
        values["dense"] = compact if dense is None else dense
        return values[self.dens(ns)]

    def pt(self, size: float) -> float:
        """A font or marker size, in points, shrunk with a small Axes."""
        return size * self.k

    def fit(self, text: str, width: float, fontsize: float, smallest: float) -> tuple[str, float]:
        """Shrink (not below ``smallest``), then shorten ``text`` to fit ``width`` data units."""
        fontsize, smallest = self.pt(fontsize), self.pt(smallest)
        room = width * self.ppu / 0.62  # in font sizes x characters
        size = min(fontsize, max(smallest, room / max(len(text), 1)))
        keep = max(2, int(room / size + 1e-6))
        if len(text) > keep:
            text = text[: keep - 1] + "\u2026"
        return text, size

    def fit_lines(
        self, lines: list[str], width: float, fontsize: float, smallest: float
    ) -> tuple[list[str], float]:
        """:meth:`fit` for several lines: one size for all, long lines shortened."""
        _, size = self.fit(max(lines, key=len), width, fontsize, smallest)
        keep = max(2, int(width * self.ppu / 0.62 / size + 1e-6))
        return [t if len(t) <= keep else t[: keep - 1] + "\u2026" for t in lines], size

    def set_view(self, title: str | None) -> None:
        ax = self.ax
        gone = {n[3:] for n in getattr(self.changes, "removed", ()) if n.startswith("ns:")}
        boxes = list(self.boxes.values()) + [
            b for n, b in self.ghost_boxes.items() if n in gone and n not in self.boxes
        ]
        points = list(self.pos.values())
        if _CLOUD in self.boxes:
            ext = _cloud(self.boxes[_CLOUD]).get_extents()
            points += [(ext.x0, ext.y0), (ext.x1, ext.y1)]
        y0 = min([b.y - b.h / 2 for b in boxes] + [p[1] for p in points])
        y0 -= self.size(0.4, 0.3, 0.15)
        for node, d in self.ifaces.items():  # room for the labels under a box's bottom side
            x, y = self.pos[node]
            ns = _iface_ns(node, d)
            labelled = self.dens(ns) == "full"
            if labelled and d.get("type") != "bridge" and self.boxes[ns].normal(x, y) == (0, -1):
                y0 = min(y0, y - 0.25 - 0.27 * len(self._lines(d)))
        y0 = min(y0, _FLOOR)
        y1 = max([_H] + [b.y + b.h / 2 for b in boxes] + [p[1] for p in points]) + 0.15
        x0 = min([0.0] + [b.x - b.w / 2 for b in boxes] + [p[0] for p in points]) - 0.1
        x1 = max([_W] + [b.x + b.w / 2 for b in boxes] + [p[0] for p in points]) + 0.1
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal", adjustable="box")
        ax.set_anchor("N")
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=11, color=_INK)
        fig = _root_figure(ax)
        bbox = ax.get_position()
        w_in, h_in = fig.get_figwidth() * bbox.width, fig.get_figheight() * bbox.height
        self.ppu = 72.0 * min(w_in / (x1 - x0), h_in / (y1 - y0))
        self.k = min(1.0, max(0.55, self.ppu / _PPU))

    # -- namespaces

    def boxes_and_names(self) -> None:
        has_bridge = {_iface_ns(n, d) for n, d in self.ifaces.items() if d.get("type") == "bridge"}
        addrs: dict[str, list[str]] = {}
        for node, d in sorted(self.ifaces.items(), key=lambda kv: _natural(kv[0])):
            if d.get("type") != "bridge":
                addrs.setdefault(_iface_ns(node, d), []).extend(d.get("addrs") or [])
        for name in self.names:
            box = self.boxes[name]
            face, edge = _colours(name)
            behind = name in _TITLED or name in _WORLD or name in has_bridge
            if name == _CLOUD:
                self.ax.add_patch(
                    PathPatch(
                        _cloud(box),
                        facecolor=face,
                        edgecolor=edge,
                        linewidth=1.6,
                        zorder=1,
                        gid=f"ns:{name}",
                    )
                )
            else:
                pad = min(box.w, box.h) * 0.1
                self.ax.add_patch(
                    FancyBboxPatch(
                        (box.x - box.w / 2 + pad, box.y - box.h / 2 + pad),
                        box.w - 2 * pad,
                        box.h - 2 * pad,
                        gid=f"ns:{name}",
                        boxstyle=f"round,pad={pad}",
                        facecolor=face,
                        edgecolor=edge,
                        linewidth=1.8 if behind else self.size(1.4, 1.1, 0.6, name),
                        zorder=1 if behind else 3,
                    )
                )
            if name in _TITLED:
                self._titled(name, box, edge)
                continue
            if self.density == "dense" and name not in _FIXED and name not in _WORLD:
                continue  # a tile: its row's labels name it
            size = 11.0 if name in _FIXED or name in _WORLD else self.size(11.0, 8.0, 5.5)
            smallest = self.size(8.0, 6.0, 4.0, name)
            text, size = self.fit(name, box.w * (0.7 if name == _CLOUD else 0.9), size, smallest)
            lines, small = self.notes.get(name, []), 6.5
            if name in has_bridge:
                lines = []
            elif not lines and self.density == "medium" and self.show_addresses:
                lines, small = addrs.get(name, [])[:2], 5.5
            if lines:
                width = box.w * (0.75 if name == _CLOUD else 0.94)
                fitted, small = self.fit_lines(lines, width, small, 4.0)
                if fitted != lines and len(lines) <= 2 and "/" in lines[0]:
                    # addresses too wide for the box: their host part only
                    fitted = ["." + a.split("/")[0].rsplit(".", 1)[-1] for a in lines]
                lines = fitted
            name_h = 1.3 * size / self.ppu
            line_h = 1.35 * small / self.ppu
            top = box.y + (name_h + line_h * len(lines)) / 2
            if name in has_bridge:
                top = box.y + 0.22 * box.h + name_h / 2
            self.ax.text(
                box.x,
                top - name_h / 2,
                text,
                ha="center",
                va="center",
                fontsize=size,
                fontweight="bold",
                color=edge,
                zorder=5,
            )
            if lines:
                self.ax.text(
                    box.x,
                    top - name_h,
                    "\n".join(lines),
                    ha="center",
                    va="top",
                    fontsize=small,
                    color=_NOTE,
                    zorder=5,
                    linespacing=1.15,
                )

    def row_labels(self) -> None:
        """Dense rows: the first name on the left of each row, the last on the right."""
        if self.density != "dense":
            return
        rows: dict[float, list[str]] = {}
        for name, box in self.boxes.items():
            if name != HOST and name not in _WORLD and name not in _FIXED:
                rows.setdefault(box.y, []).append(name)
        if not rows:
            return
        ys = sorted(rows, reverse=True)
        pitch = min([a - b for a, b in zip(ys, ys[1:], strict=False)] or [1.0])
        size = min(self.pt(6.5), max(3.0, 0.8 * pitch * self.ppu))
        for y in ys:
            row = sorted(rows[y], key=lambda n: self.boxes[n].x)
            first, last = self.boxes[row[0]], self.boxes[row[-1]]
            ends = [(row[0], first.x - first.w / 2 - 0.08, "right")]
            if len(row) > 1:
                ends.append((row[-1], last.x + last.w / 2 + 0.08, "left"))
            for name, x, ha in ends:
                self.ax.text(
                    x,
                    y,
                    name,
                    ha=ha,
                    va="center",
                    fontsize=size,
                    color=_OTHER_EDGE,
                    fontweight="bold",
                    zorder=5,
                    gid=f"row:{name}",
                )

    def _titled(self, name: str, box: _Box, edge: str) -> None:
        """The name at the top left of a large box, its notes below it, and
        the host's firewall rules below them, on a panel."""
        left, top = box.x - box.w / 2, box.y + box.h / 2
        colour = "#546e7a" if name == HOST else edge
        self.ax.text(
            left + 0.2,
            top - 0.15,
            name,
            ha="left",
            va="top",
            fontsize=self.pt(11),
            fontweight="bold",
            color=colour,
            zorder=5,
        )
        y = top - 0.15 - 1.45 * self.pt(11) / self.ppu
        for lines, size, panel in [(self.notes.get(name, []), 7.0, False), (self.rules, 6.8, True)]:
            if not lines or (panel and name != HOST):
                continue
            x = left + (0.4 if panel else 0.25)
            lines, size = self.fit_lines(lines, left + box.w - 0.3 - x, size, 4.5)
            text = self.ax.text(
                x,
                y - (0.08 if panel else 0.0),
                "\n".join(lines),
                ha="left",
                va="top",
                fontsize=size,
                color=_NOTE,
                zorder=5,
                linespacing=1.25,
            )
            if panel:
                text.set_bbox(
                    {
                        "boxstyle": "round,pad=0.35",
                        "fc": "white",
                        "ec": edge,
                        "lw": 0.6,
                        "alpha": 0.8,
                    }
                )
            y -= len(lines) * 1.25 * 1.17 * size / self.ppu + 0.06

    # -- cables

    def _ns(self, node: str) -> str:
        return _iface_ns(node, self.ifaces[node])

    def cables(self) -> None:
        # Dense: hundreds of lines, drawn as one collection per kind and state
        # (gid ``veths:up``, ``ports:down``, ...), which is much faster.
        batch: dict[tuple[str, bool], list[list[Point]]] = {}
        for u, v in self.veths:
            up = _is_up(self.ifaces[u]) and _is_up(self.ifaces[v])
            nu, nv = self._ns(u), self._ns(v)
            ns = nu if nu in _WORLD else nv
            style = {
                "color": _CABLE,
                "lw": self.size(1.8, 1.2, 0.55, ns, dense=0.45),
                "ls": "-" if up else _DASH,
                "zorder": 2,
                "alpha": self.size(1.0, 1.0, 0.6, ns, dense=0.5),
            }
            (x1, y1), (x2, y2) = self.pos[u], self.pos[v]
            if nu == nv:  # both ends in one namespace: a loop outside its box
                self._loop(self.boxes[nu], (x1, y1), (x2, y2), style, f"veth:{u}|{v}")
                continue
            if self.dens(ns) == "dense":
                batch.setdefault(("veths", up), []).append([(x1, y1), (x2, y2)])
                continue
            self.ax.plot([x1, x2], [y1, y2], solid_capstyle="round", gid=f"veth:{u}|{v}", **style)
        for u, v in self.ports:
            port, bridge = (u, v) if self.ifaces[v].get("type") == "bridge" else (v, u)
            up = _is_up(self.ifaces[port]) and _is_up(self.ifaces[bridge])
            (x1, y1), (x2, y2) = self.pos[port], self.pos[bridge]
            ns = self._ns(port)
            if self.dens(ns) == "dense":
                batch.setdefault(("ports", up), []).append([(x1, y1), (x2, y2)])
                continue
            self.ax.plot(
                [x1, x2],
                [y1, y2],
                color=_PORT,
                lw=self.size(1.2, 0.8, 0.35, ns),
                ls="-" if up else _DASH,
                zorder=1.5,
                alpha=self.size(1.0, 1.0, 0.6, ns),
                gid=f"port:{port}|{bridge}",
            )
        for (kind, up), segments in sorted(batch.items()):
            cable = kind == "veths"
            self.ax.add_collection(
                LineCollection(
                    segments,
                    colors=_CABLE if cable else _PORT,
                    linewidths=0.45 if cable else 0.3,
                    linestyles="-" if up else _DASH,
                    alpha=0.5,
                    zorder=2 if cable else 1.5,
                    capstyle="round",
                    gid=f"{kind}:{'up' if up else 'down'}",
                ),
                autolim=False,
            )

    def _loop(self, box: _Box, a: Point, b: Point, style: dict[str, Any], gid: str) -> None:
        nx_, ny_ = box.normal((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        bulge = 0.35 + 0.5 * math.dist(a, b)
        mid = ((a[0] + b[0]) / 2 + nx_ * bulge, (a[1] + b[1]) / 2 + ny_ * bulge)
        path = Path([a, mid, b], [Path.MOVETO, Path.CURVE3, Path.CURVE3])
        self.ax.add_patch(
            PathPatch(
                path,
                fill=False,
                edgecolor=style["color"],
                lw=style["lw"],
                ls=style["ls"],
                zorder=style["zorder"],
                alpha=style["alpha"],
                gid=gid,
            )
        )

    # -- interfaces

    def interfaces(self) -> None:
        ends: dict[str, list[str]] = {}
        for u, v in self.veths:
            ends.setdefault(u, []).append(v)
            ends.setdefault(v, []).append(u)
        batch: dict[bool, list[Point]] = {}  # dense: one mark per state (gid ifaces:up)
        for node in sorted(self.ifaces, key=_natural):
            d = self.ifaces[node]
            ns = self._ns(node)
            if d.get("type") == "bridge":
                self._bridge(node, d, self.pos[node], ns)
                continue
            far = ends.get(node, [None])[0]
            far_ns = self._ns(far) if far else None
            # the world, and the host's end of the cable to it, are always in full
            world = ns if ns in _WORLD else far_ns
            x, y = self.pos[node]
            up = _is_up(d)
            if self.dens(world) == "dense":
                batch.setdefault(up, []).append((x, y))
                continue
            self.ax.plot(
                x,
                y,
                marker="o",
                ms=self.pt(self.size(6.5, 4.5, 2.4, world)),
                mfc=_CABLE if up else "white",
                mec=_CABLE,
                mew=self.size(1.2, 0.9, 0.5, world),
                ls="",
                zorder=8,
                gid=node,
            )
            if self.dens(world) != "full":
                continue
            if far is None:
                self._end_label(self.boxes[ns], (x, y), None, d)
            elif ns == HOST and far_ns != HOST and far_ns not in _WORLD:
                self._along_label((x, y), far, d)
            else:
                self._end_label(self.boxes[ns], (x, y), self.pos[far], d)
        for up, points in sorted(batch.items()):
            self.ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker="o",
                ms=self.pt(1.8),
                mfc=_CABLE if up else "white",
                mec=_CABLE,
                mew=0.4,
                ls="",
                zorder=8,
                gid=f"ifaces:{'up' if up else 'down'}",
            )

    def _lines(self, d: dict[str, Any]) -> list[str]:
        lines = [str(d.get("name", ""))]
        if self.show_addresses:
            lines += [str(a) for a in d.get("addrs") or []]
        if self.show_macs and d.get("mac"):
            lines.append(str(d["mac"]))
        return lines

    def _anchor(self, box: _Box, p: Point, other: Point | None) -> tuple[str, str, Point]:
        """Where a horizontal label goes: just outside the box, beside the cable."""
        nx_, ny_ = box.normal(*p)
        cx, cy = (other[0] - p[0], other[1] - p[1]) if other else (nx_, ny_)
        if ny_:  # top or bottom side: above or below, on the far side from the cable
            va = "bottom" if ny_ > 0 else "top"
            ha = "right" if cx > 0.05 * abs(cy) else "left"
            return ha, va, ((-0.12 if ha == "right" else 0.12), 0.1 * ny_)
        ha = "left" if nx_ > 0 else "right"  # left or right side: above or below the cable
        if abs(cy) <= 0.05 * abs(cx):  # a level cable: its two ends' labels on either side
            va = "bottom" if nx_ > 0 else "top"
        else:
            va = "top" if cy > 0 else "bottom"
        return ha, va, (0.14 * nx_, (-0.1 if va == "top" else 0.1))

    def _end_label(self, box: _Box, p: Point, other: Point | None, d: dict[str, Any]) -> None:
        ha, va, (dx, dy) = self._anchor(box, p, other)
        self.ax.text(
            p[0] + dx,
            p[1] + dy,
            "\n".join(self._lines(d)),
            ha=ha,
            va=va,
            fontsize=self.pt(7.5),
            color=_INK,
            zorder=9,
            linespacing=1.1,
        )

    def _along_label(self, p: Point, far: str, d: dict[str, Any]) -> None:
        """Label a host end along its cable, on the other side from the far end's label."""
        q = self.pos[far]
        fd = self.ifaces[far]
        ha_far, va_far, _ = self._anchor(self.boxes[_iface_ns(far, fd)], q, p)
        vx, vy = p[0] - q[0], p[1] - q[1]  # from the far end towards this end
        length = math.hypot(vx, vy) or 1.0
        ux, uy = -vx / length, -vy / length  # from this end along the cable
        angle = math.degrees(math.atan2(uy, ux))
        ha = "left"
        if abs(angle) > 90:
            angle += 180 if angle < 0 else -180
            ha = "right"
        up = (-math.sin(math.radians(angle)), math.cos(math.radians(angle)))
        sx = {"left": 1, "right": -1}.get(ha_far, 0)
        want = (-sx, 0.0) if sx else (0.0, -1.0 if va_far == "bottom" else 1.0)
        va = "bottom" if up[0] * want[0] + up[1] * want[1] > 0 else "top"
        step = 0.2
        self.ax.text(
            p[0] + ux * step,
            p[1] + uy * step,
            "\n".join(self._lines(d)),
            ha=ha,
            va=va,
            rotation=angle,
            rotation_mode="anchor",
            fontsize=self.pt(7.0),
            color=_INK,
            zorder=9,
            linespacing=1.1,
        )

    def _bridge(self, node: str, d: dict[str, Any], p: Point, ns: str) -> None:
        x, y = p
        up = _is_up(d)
        bw, bh = self.size(1.7, 1.5, 1.3, ns), self.size(0.5, 0.45, 0.4, ns)
        self.ax.add_patch(
            FancyBboxPatch(
                (x - bw / 2, y - bh / 2),
                bw,
                bh,
                boxstyle="round,pad=0.05",
                facecolor=_BRIDGE_FACE if up else "white",
                edgecolor=_BRIDGE_FACE,
                linewidth=1.3,
                linestyle="-" if up else "--",
                zorder=6,
                gid=node,
            )
        )
        lights = [x - bw / 2 + bw * (i + 1) / 7 for i in range(6)]
        self.ax.plot(
            lights,
            [y - bh / 2 + 0.1] * 6,
            ls="",
            marker="s",
            ms=1.6,
            color=_BRIDGE_LIGHT if up else _BRIDGE_FACE,
            zorder=7,
        )
        text, size = self.fit(str(d.get("name", "")), bw * 0.95, 8.0, 5.0)
        self.ax.text(
            x,
            y + 0.06,
            text,
            ha="center",
            va="center",
            fontsize=size,
            fontweight="bold",
            color="white" if up else _BRIDGE_FACE,
            zorder=7,
        )
        lines = self._lines(d)[1:]
        if lines:
            face, _ = _colours(ns)
            self.ax.text(
                x,
                y - bh / 2 - 0.1,
                "\n".join(lines),
                ha="center",
                va="top",
                fontsize=self.pt(7.5),
                color=_INK,
                zorder=7,
                linespacing=1.1,
                bbox={"boxstyle": "round,pad=0.15", "fc": face, "ec": "none", "alpha": 0.85},
            )

    # -- what changed since the last picture

    def _ring_box(self, box: _Box, colour: str, ls: Any, gid: str, cloud: bool = False) -> None:
        pad = min(box.w, box.h) * 0.1
        style = {"facecolor": "none", "edgecolor": colour, "zorder": 4, "gid": gid}
        style["linewidth"] = self.size(3.0, 2.4, 1.4) if ls == "-" else self.size(1.6, 1.2, 0.8)
        if cloud:
            self.ax.add_patch(PathPatch(_cloud(box), ls=ls, **style))
            return
        grow = self.size(0.08, 0.05, 0.03)
        self.ax.add_patch(
            FancyBboxPatch(
                (box.x - box.w / 2 + pad - grow, box.y - box.h / 2 + pad - grow),
                box.w - 2 * pad + 2 * grow,
                box.h - 2 * pad + 2 * grow,
                boxstyle=f"round,pad={pad}",
                linestyle=ls,
                **style,
            )
        )

    def _ring_point(self, p: Point, ns: str | None, colour: str, ls: Any, gid: str) -> None:
        """A ring around an interface point: solid, or dashed for a ghost."""
        ms = self.pt(self.size(13.0, 9.0, 5.0, ns))
        if ls == "-":
            self.ax.plot(
                p[0],
                p[1],
                marker="o",
                ms=ms,
                mfc="none",
                mec=colour,
                mew=self.size(2.2, 1.6, 0.9, ns),
                ls="",
                zorder=8.5,
                gid=gid,
            )
            return
        self.ax.add_patch(
            Circle(
                p,
                ms / 2 / self.ppu,
                fill=False,
                edgecolor=colour,
                lw=self.size(1.4, 1.0, 0.6, ns),
                ls=ls,
                alpha=0.9,
                zorder=8.5,
                gid=gid,
            )
        )

    def highlight(self) -> None:
        """Mark what changed since the last picture (see :func:`draw`'s ``changes``)."""
        c = self.changes
        if c is None:
            return
        for node in sorted(set(c.added) | set(c.changed)):
            kind = "added" if node in c.added else "changed"
            colour = _ADDED if kind == "added" else _CHANGED
            gid = f"{kind}:{node}"
            if node.startswith("ns:") and node[3:] in self.boxes:
                name = node[3:]
                self._ring_box(self.boxes[name], colour, "-", gid, cloud=name == _CLOUD)
            elif node in self.ifaces and node in self.pos:
                if self.ifaces[node].get("type") == "bridge":
                    ns = self._ns(node)
                    bw, bh = self.size(1.7, 1.5, 1.3, ns), self.size(0.5, 0.45, 0.4, ns)
                    x, y = self.pos[node]
                    self.ax.add_patch(
                        FancyBboxPatch(
                            (x - bw / 2 - 0.08, y - bh / 2 - 0.08),
                            bw + 0.16,
                            bh + 0.16,
                            boxstyle="round,pad=0.05",
                            facecolor="none",
                            edgecolor=colour,
                            linewidth=2.4,
                            zorder=6.5,
                            gid=gid,
                        )
                    )
                else:
                    self._ring_point(self.pos[node], self._ns(node), colour, "-", gid)
        for u, v in sorted(c.added_edges):
            if u in self.pos and v in self.pos and u in self.ifaces and v in self.ifaces:
                (x1, y1), (x2, y2) = self.pos[u], self.pos[v]
                self.ax.plot(
                    [x1, x2],
                    [y1, y2],
                    color=_ADDED,
                    lw=self.size(6.0, 4.0, 2.0, self._ns(u)),
                    alpha=0.45,
                    solid_capstyle="round",
                    zorder=1.8,
                    gid=f"added:{u}|{v}",
                )
        self._ghosts()

    def _ghosts(self) -> None:
        """Removed namespaces, interfaces and cables, red and dashed, where they were."""
        c = self.changes
        for node in sorted(c.removed):
            gid = f"removed:{node}"
            if node.startswith("ns:") and node[3:] in self.ghost_boxes:
                name = node[3:]
                box = self.ghost_boxes[name]
                self._ring_box(box, _REMOVED, _DASH, gid, cloud=name == _CLOUD)
                text, size = self.fit(name, box.w * 0.9, 9.0, 4.0)
                self.ax.text(
                    box.x,
                    box.y - box.h / 2 - 0.05,
                    text,
                    ha="center",
                    va="top",
                    fontsize=size,
                    color=_REMOVED,
                    zorder=9,
                )
            elif node in self.ghost_pos and node in self.old_ifaces:
                ns = _iface_ns(node, self.old_ifaces[node])
                self._ring_point(self.ghost_pos[node], ns, _REMOVED, _DASH, gid)
                if self.dens(ns) == "full":
                    x, y = self.ghost_pos[node]
                    self.ax.text(
                        x,
                        y - 0.2,
                        str(self.old_ifaces[node].get("name", node)),
                        ha="center",
                        va="top",
                        fontsize=self.pt(6.5),
                        color=_REMOVED,
                        zorder=9,
                    )
        for u, v in sorted(c.removed_edges):
            if u in self.ghost_pos and v in self.ghost_pos:
                (x1, y1), (x2, y2) = self.ghost_pos[u], self.ghost_pos[v]
                self.ax.plot(
                    [x1, x2],
                    [y1, y2],
                    color=_REMOVED,
                    lw=self.size(1.6, 1.1, 0.6),
                    ls=_DASH,
                    alpha=0.85,
                    zorder=2.2,
                    gid=f"removed:{u}|{v}",
                )

    # -- a packet trace

    def _free_space(self) -> tuple[list[_Rect], list[Point]]:
        """What a hop number or a NAT label should not cover, in data units:
        the rectangles of the texts, bridges and interface points drawn so
        far, and points along every cable and bridge port."""
        self.ax.apply_aspect()  # the limits as they will be drawn
        fig = _root_figure(self.ax)
        renderer = RendererAgg(fig.bbox.width, fig.bbox.height, fig.dpi)
        to_data = self.ax.transData.inverted()

        def rect(extent: Any) -> _Rect:
            (x0, y0), (x1, y1) = to_data.transform([(extent.x0, extent.y0), (extent.x1, extent.y1)])
            return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

        rects = [rect(t.get_window_extent(renderer)) for t in self.ax.texts if t.get_text()]
        rects += [
            rect(p.get_window_extent(renderer))
            for p in self.ax.patches
            if str(p.get_gid()) in self.ifaces  # bridges
        ]
        dot = self.pt(self.size(6.5, 4.5, 2.4)) / self.ppu
        rects += [(x - dot, y - dot, x + dot, y + dot) for x, y in self.pos.values()]
        points: list[Point] = []
        for u, v in [*self.veths, *self.ports]:
            (x1, y1), (x2, y2) = self.pos[u], self.pos[v]
            n = max(2, int(math.dist((x1, y1), (x2, y2)) / 0.08))
            points += [(x1 + (x2 - x1) * i / n, y1 + (y2 - y1) * i / n) for i in range(n + 1)]
        return rects, points

    @staticmethod
    def _cost(r: _Rect, rects: list[_Rect], points: list[Point]) -> float:
        """How much of ``r`` is covered (by area, relative to ``r``) and how
        many cable points it covers."""
        area = max((r[2] - r[0]) * (r[3] - r[1]), 1e-9)
        covered = 0.0
        for o in rects:
            w = min(r[2], o[2]) - max(r[0], o[0])
            h = min(r[3], o[3]) - max(r[1], o[1])
            if w > 0 and h > 0:
                covered += w * h
        crossed = sum(1 for x, y in points if r[0] <= x <= r[2] and r[1] <= y <= r[3])
        return 3 * covered / area + 0.05 * crossed

    @staticmethod
    def _near(
        p: Point, reach: float, rects: list[_Rect], points: list[Point]
    ) -> tuple[list[_Rect], list[Point]]:
        """The rectangles and points within ``reach`` of ``p`` (on each axis):
        all that a place near ``p`` can cover (hundreds of namespaces stay fast)."""
        x0, y0, x1, y1 = p[0] - reach, p[1] - reach, p[0] + reach, p[1] + reach
        return (
            [r for r in rects if r[0] < x1 and r[2] > x0 and r[1] < y1 and r[3] > y0],
            [q for q in points if x0 <= q[0] <= x1 and y0 <= q[1] <= y1],
        )

    def _hop_places(
        self, d: float, rects: list[_Rect], points: list[Point]
    ) -> tuple[dict[int, Point], dict[int, Point]]:
        """Where each hop's number goes (its centre), and the direction from
        its interface, by hop number (1, 2, ...).

        Every hop of the trace gets its place, whatever ``upto`` is, so that
        a number never moves while stepping through. The hops of one
        interface sit side by side, ``d`` apart, as near as possible to
        its point where they cover the least: no text, bridge, interface
        or cable if they can. A hop on an interface that is not drawn (a
        loopback, one gone since) goes into its namespace's box.
        """
        at: dict[str, list[int]] = {}
        for n, s in enumerate(self.trace.sightings, 1):
            at.setdefault(f"if:{s.where}", []).append(n)
        places: dict[int, Point] = {}
        away: dict[int, Point] = {}
        for node, numbers in sorted(at.items(), key=lambda kv: kv[1][0]):
            ns = _iface_ns(node, self.ifaces.get(node, {}))
            if node in self.ifaces and node in self.pos:
                p = self.pos[node]
            elif ns in self.boxes:
                box = self.boxes[ns]
                p = (box.x, box.y - 0.25 * box.h)
            else:
                continue
            box = self.boxes.get(ns)
            normal = box.normal(*p) if box and node in self.pos else (0.0, -1.0)
            k = len(numbers)
            near = self._near(p, (3 + k) * d, rects, points)
            best: tuple[float, list[Point], Point] | None = None
            for ring in (0, 1, 2):
                r = (0.85 + 0.55 * ring) * d
                for step in range(24):
                    a = math.radians(15 * step)
                    u = (math.cos(a), math.sin(a))
                    # side by side across the direction, left to right or top to bottom
                    across = (1.0, 0.0) if abs(u[1]) > 0.5 else (0.0, -1.0)
                    centre = (p[0] + u[0] * r, p[1] + u[1] * r)
                    if across == (0.0, -1.0) and k > 1:  # a column: keep clear of the point
                        centre = (centre[0] + u[0] * 0.25 * d, centre[1])
                    spots = [
                        (
                            centre[0] + across[0] * (i - (k - 1) / 2) * d,
                            centre[1] + across[1] * (i - (k - 1) / 2) * d,
                        )
                        for i in range(k)
                    ]
                    half = d / 2
                    r_all = (
                        min(x for x, _ in spots) - half,
                        min(y for _, y in spots) - half,
                        max(x for x, _ in spots) + half,
                        max(y for _, y in spots) + half,
                    )
                    inward = -(u[0] * normal[0] + u[1] * normal[1])
                    cost = self._cost(r_all, *near) + 0.3 * ring - 0.01 * inward
                    if best is None or cost < best[0] - 1e-9:
                        best = (cost, spots, u)
            assert best is not None
            _, spots, u = best
            for n, spot in zip(numbers, spots, strict=True):
                places[n] = (round(spot[0], 6), round(spot[1], 6))
                away[n] = u
            rects.append(
                (
                    min(x for x, _ in spots) - d / 2,
                    min(y for _, y in spots) - d / 2,
                    max(x for x, _ in spots) + d / 2,
                    max(y for _, y in spots) + d / 2,
                )
            )
        return places, away

    def hops(self) -> None:
        """Number the trace's hops on the interfaces that saw them, join them
        with arrows, and note where NAT changed an address."""
        t = self.trace
        if t is None:
            return
        rects, points = self._free_space()
        d = self.pt(11.0) / self.ppu  # a number's circle, in data units
        places, away = self._hop_places(d, rects, points)
        sightings = list(t.sightings)
        last = len(sightings) if self.upto is None else self.upto
        shown = [(n, s) for n, s in enumerate(sightings, 1) if n <= last and n in places]
        # arrows from one hop to the next of the same packet: the request's
        # and the reply's bend to opposite sides of the same way
        previous: dict[str, tuple[int, Any]] = {}
        for n, s in shown:
            before = previous.get(s.kind)
            previous[s.kind] = (n, s)
            if before is None or before[1].where == s.where:
                continue
            m, b = before
            self.ax.add_patch(
                FancyArrowPatch(
                    self.pos.get(f"if:{b.where}", places[m]),
                    self.pos.get(f"if:{s.where}", places[n]),
                    arrowstyle="-|>",
                    mutation_scale=self.pt(9),
                    connectionstyle="arc3,rad=0.12",
                    shrinkA=self.pt(4),
                    shrinkB=self.pt(4),
                    color=_HOP.get(s.kind, _INK),
                    lw=self.pt(1.4),
                    alpha=0.5,
                    zorder=2.6,
                    gid=f"hop-arrow:{m}-{n}",
                )
            )
        for n, s in shown:
            x, y = places[n]
            current = self.upto is not None and n == last
            self.ax.plot(
                x,
                y,
                marker="o",
                ms=d * self.ppu * (1.2 if current else 1.0),
                mfc=_HOP.get(s.kind, _INK),
                mec="#ffb300" if current else "white",
                mew=self.pt(2.0 if current else 0.8),
                ls="",
                zorder=10.5,
                gid=f"hop-mark:{n}",
            )
            self.ax.text(
                x,
                y,
                str(n),
                ha="center",
                va="center_baseline",
                fontsize=self.pt(6.5) * (1.15 if current else 1.0),
                fontweight="bold",
                color="white",
                zorder=11,
                gid=f"hop:{n}",
            )
        self._nat_labels(shown, places, away, d, rects, points)

    def _nat_labels(
        self,
        shown: list[tuple[int, Any]],
        places: dict[int, Point],
        away: dict[int, Point],
        d: float,
        rects: list[_Rect],
        points: list[Point],
    ) -> None:
        """A label beside each hop where an address differs from the hop
        before of the same packet: ``src → NEW`` or ``dst → NEW``."""
        fig = _root_figure(self.ax)
        renderer = RendererAgg(fig.bbox.width, fig.bbox.height, fig.dpi)
        to_data = self.ax.transData.inverted()
        before: dict[str, Any] = {}
        for n, s in shown:
            a = before.get(s.kind)
            before[s.kind] = s
            if a is None:
                continue
            lines = [f"src \u2192 {s.src}"] * (a.src != s.src)
            lines += [f"dst \u2192 {s.dst}"] * (a.dst != s.dst)
            if not lines:
                continue
            colour = _HOP.get(s.kind, _INK)
            x, y = places[n]
            label = self.ax.text(
                x,
                y,
                "\n".join(lines),
                ha="center",
                va="center",
                fontsize=self.pt(6.8),
                fontweight="bold",
                color=colour,
                zorder=10.8,
                gid=f"nat:{n}",
                linespacing=1.1,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "lw": 0.8},
            )
            ext = label.get_window_extent(renderer)
            (x0, y0), (x1, y1) = to_data.transform([(ext.x0, ext.y0), (ext.x1, ext.y1)])
            w, h = abs(x1 - x0) + 0.12, abs(y1 - y0) + 0.12  # with the frame
            ux, uy = away[n]
            near = self._near((x, y), w + h + 3 * d, rects, points)
            best: tuple[float, Point] | None = None
            for ring in (0, 1):
                for step in range(16):
                    a_ = math.radians(22.5 * step)
                    vx, vy = math.cos(a_), math.sin(a_)
                    # the label's centre, so that its edge is just beyond the number
                    gap = d * (0.6 + 0.8 * ring)
                    t = min(
                        (w / 2 + gap) / abs(vx) if abs(vx) > 1e-9 else math.inf,
                        (h / 2 + gap) / abs(vy) if abs(vy) > 1e-9 else math.inf,
                    )
                    cx, cy = x + vx * t, y + vy * t
                    r = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                    cost = self._cost(r, *near) - 0.05 * (vx * ux + vy * uy) + 0.3 * ring
                    if best is None or cost < best[0] - 1e-9:
                        best = (cost, (cx, cy))
            assert best is not None
            cx, cy = best[1]
            label.set_position((round(cx, 6), round(cy, 6)))
            rects.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))

    def legend(self) -> None:
        mark = {"ls": "", "marker": "o", "ms": self.pt(5.5), "mec": _CABLE, "mew": 1.0}
        handles = [
            Line2D([], [], color=_CABLE, lw=1.6, label="cable, both ends up"),
            Line2D([], [], color=_CABLE, lw=1.6, ls=_DASH, label="cable, an end down"),
            Line2D([], [], color=_PORT, lw=1.1, label="bridge port"),
            Line2D([], [], mfc=_CABLE, label="interface up", **mark),
            Line2D([], [], mfc="white", label="interface down", **mark),
            Line2D([], [], ls="", marker="s", ms=self.pt(7), color=_BRIDGE_FACE, label="bridge"),
        ]
        if self.by_hand:
            handles.append(Line2D([], [], ls="", label="* rule made by hand"))
        if self.changes is not None:
            handles += [
                Line2D([], [], color=_ADDED, lw=3.0, label="added since last picture"),
                Line2D([], [], color=_REMOVED, lw=1.6, ls=_DASH, label="removed (ghost)"),
                Line2D([], [], color=_CHANGED, lw=3.0, label="changed (address, state, route)"),
            ]
        if self.trace is not None:
            hop = {"ls": "", "marker": "o", "ms": self.pt(8), "mec": "white"}
            handles += [
                Line2D([], [], mfc=_HOP["request"], label="hop of the request (in order)", **hop),
                Line2D([], [], mfc=_HOP["reply"], label="hop of the reply", **hop),
                Line2D(
                    [],
                    [],
                    ls="",
                    marker="s",
                    ms=self.pt(8),
                    mfc="white",
                    mec=_HOP["request"],
                    label="NAT: an address rewritten",
                ),
            ]
        where: dict[str, Any] = {"loc": "upper left"}
        if HOST in self.boxes:  # on the left of the host, where nothing else goes
            host = self.boxes[HOST]
            where["bbox_to_anchor"] = (self.ax.get_xlim()[0] + 0.1, host.y + host.h / 2)
            where["bbox_transform"] = self.ax.transData
        self.ax.legend(
            handles=handles,
            fontsize=self.pt(6.5),
            frameon=True,
            framealpha=0.9,
            edgecolor="#cfd8dc",
            borderpad=0.6,
            handlelength=2.4,
            labelspacing=0.45,
            **where,
        )


def _root_figure(ax: Axes) -> Figure:
    """The top-level Figure holding ``ax`` (also through subfigures)."""
    fig: Any = ax.figure
    while not isinstance(fig, Figure):
        fig = fig.figure
    return fig


def _colours(name: str) -> tuple[str, str]:
    """Face and edge colour of a namespace's box; a colour's name tints it."""
    if name == HOST:
        return _HOST_FACE, _HOST_EDGE
    if name in _WORLD_STYLE:
        return _WORLD_STYLE[name]
    key = name.lower()
    if key in mcolors.CSS4_COLORS and key not in {"white", "snow", "ivory"}:
        r, g, b = mcolors.to_rgb(key)
        face = (1 - 0.25 * (1 - r), 1 - 0.25 * (1 - g), 1 - 0.25 * (1 - b))
        edge = (0.8 * r, 0.8 * g, 0.8 * b)
        return mcolors.to_hex(face), mcolors.to_hex(edge)
    return _OTHER_FACE, _OTHER_EDGE


def draw(
    graph: nx.Graph,
    pos: dict[str, Point] | None = None,
    ax: Axes | None = None,
    *,
    show_addresses: bool = True,
    show_macs: bool = False,
    title: str | None = None,
    show_routes: bool = True,
    changes: Any = None,
    trace: Any = None,
    upto: int | None = None,
) -> Figure:
    """Draw the sandbox: namespaces, bridges, veth cables and addresses.

    Namespaces are rounded boxes (the host a larger grey one, the internet
    a cloud), bridges are switch shapes inside their box, veth cables are
    lines between two interface points (solid when both ends are up,
    dashed otherwise) and bridge ports are thinner lines to their bridge.
    The outside world is drawn above the host, the lab below it (see
    :func:`layout`). Interface names and IPv4 addresses label the cable
    ends; with more than :data:`MEDIUM_ABOVE` lab namespaces the lab's
    boxes show their addresses instead, with more than
    :data:`COMPACT_ABOVE` only their names, and with more than
    :data:`DENSE_ABOVE` they are unnamed tiles in rows, each row labelled
    with its first and last name (the world is always labelled in full).
    Notes inside the boxes tell forwarding, web apps, routes through a
    gateway and the host's NAT rules with their packet counters
    (a rule made by hand, not by labkit, starts with ``*``). Loopback
    interfaces are left out. The figure is made without pyplot: nothing
    pops up, and a new figure always has the same size and a single Axes.

    Parameters
    ----------
    graph : networkx.Graph
        A graph from :func:`labkit.kernel.observe.to_graph`.
    pos : dict, optional
        Positions to use instead of :func:`layout`'s; a namespace moved
        here takes its interfaces along unless they are given too.
    ax : matplotlib.axes.Axes, optional
        Draw into this Axes (its limits, aspect and legend are set). By
        default a new :data:`FIGSIZE` figure with one Axes is made.
    show_addresses : bool, default True
        Write the IPv4 addresses.
    show_macs : bool, default False
        Write the MAC addresses too (at cable ends, when labelled).
    title : str, optional
        A title above the drawing.
    show_routes : bool, default True
        Note the routes through a gateway inside the boxes.
    changes : labkit.ui.live.Changes, optional
        What changed since the last picture (:func:`labkit.ui.live.diff_graphs`):
        added namespaces, interfaces and cables are outlined in green,
        changed ones in orange, and removed ones are drawn as red dashed
        ghosts where they were in the last picture; the legend explains
        the marks. Each mark's ``gid`` is ``added:ID``, ``changed:ID`` or
        ``removed:ID``.
    trace : labkit.trace.Trace, optional
        A packet trace (:func:`labkit.trace.trace`) to draw on the graph:
        each sighting is a numbered hop (1, 2, ... in the trace's order)
        beside the interface that saw it, blue for the request and
        magenta for the reply, with arrows from one hop to the next. Where
        an address changed from one hop to the next of the same packet
        (NAT), a label says which and to what (``src → 192.168.1.2``).
        The title says who pinged what, unless ``title`` is given. Each
        number's ``gid`` is ``hop:N``, each NAT label's ``nat:N``.
    upto : int, optional
        With ``trace``: draw only hops 1 to ``upto``, the last one larger
        and ringed, and (unless ``title`` is given) name that hop in the
        title. The numbers stay in place from one ``upto`` to the next
        (see :func:`trace_steps`).

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into (the one holding ``ax`` when given).

    Examples
    --------
    >>> import networkx as nx
    >>> from labkit.draw import draw
    >>> g = nx.Graph()
    >>> g.add_node("ns:red", kind="netns", name="red")
    >>> g.add_node("if:red/eth0", kind="iface", ns="red", name="eth0", type="other",
    ...            up=False, oper="DOWN", addrs=["10.0.0.1/24"], master=None)
    >>> g.add_edge("ns:red", "if:red/eth0", kind="in")
    >>> g.add_node("ns:host", kind="netns", name="host", forwarding=True, rules=[
    ...     {"table": "nat", "chain": "POSTROUTING", "spec": "-s 10.0.0.0/24 -j MASQUERADE",
    ...      "marked": True, "packets": 4, "bytes": 336}])
    >>> fig = draw(g, title="an interface in red")
    >>> fig
    <Figure size 900x700 with 1 Axes>
    >>> any("10.0.0.1/24" in t.get_text() for t in fig.axes[0].texts)
    True
    >>> [t.get_text() for t in fig.axes[0].texts if "MASQUERADE" in t.get_text()]
    ['POSTROUTING MASQUERADE -s 10.0.0.0/24 [4 pkts]']

    Marking what changed since the last picture:

    >>> from labkit.ui.live import diff_graphs
    >>> old = g.copy()
    >>> g.nodes["if:red/eth0"]["addrs"] = ["10.0.0.9/24"]
    >>> fig = draw(g, changes=diff_graphs(old, g))
    >>> sorted(a.get_gid() for a in fig.axes[0].get_children() if "changed:" in str(a.get_gid()))
    ['changed:if:red/eth0']

    A packet trace, its hops numbered on the interfaces that saw them:

    >>> from labkit.trace import Sighting, Trace
    >>> t = Trace("red", "10.0.0.9", [
    ...     Sighting(0.0, "red", "eth0", "out", "10.0.0.1", "10.0.0.9", "request"),
    ...     Sighting(0.1, "red", "eth0", "in", "10.0.0.9", "10.0.0.1", "reply")], answered=True)
    >>> fig = draw(g, trace=t)
    >>> [(x.get_text(), x.get_gid()) for x in fig.axes[0].texts if x.get_gid()]
    [('1', 'hop:1'), ('2', 'hop:2')]
    >>> fig.axes[0].get_title()
    'red pings 10.0.0.9: 2 hops, the reply came back'
    """
    if trace is not None and title is None:
        title = _trace_title(trace, upto)
    if trace is None and upto is not None:
        raise ValueError("upto= needs a trace=")
    if ax is None:
        fig = Figure(figsize=FIGSIZE)
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93 if title else 0.99)
    painter = _Painter(graph, pos, ax, show_addresses, show_macs, show_routes, changes, trace, upto)
    painter.set_view(title)
    painter.boxes_and_names()
    painter.row_labels()
    painter.cables()
    painter.interfaces()
    painter.highlight()
    painter.hops()
    painter.legend()
    return _root_figure(ax)


def _trace_title(trace: Any, upto: int | None) -> str:
    """What a trace picture is of: the whole ping, or one hop of it.

    Examples
    --------
    >>> from labkit.trace import Sighting, Trace
    >>> t = Trace("red", "203.0.113.8", [
    ...     Sighting(0.0, "red", "veth-red", "out", "192.168.15.1", "203.0.113.8", "request")])
    >>> _trace_title(t, None)
    'red pings 203.0.113.8: 1 hop, no reply came back'
    >>> _trace_title(t, 1)
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


def trace_steps(graph: nx.Graph, trace: Any, **kwargs: Any) -> list[Figure]:
    """One figure per hop of ``trace``: hops 1 to 1, 1 to 2, ... 1 to all.

    For a step-through in a notebook (show one figure at a time, with a
    slider or in a loop). Keyword arguments go to :func:`draw`.

    Examples
    --------
    >>> import networkx as nx
    >>> from labkit.trace import Sighting, Trace
    >>> g = nx.Graph()
    >>> g.add_node("ns:red", kind="netns", name="red")
    >>> t = Trace("red", "10.0.0.9", [
    ...     Sighting(0.0, "red", "eth0", "out", "10.0.0.1", "10.0.0.9", "request")] * 3)
    >>> [f.axes[0].get_title()[:8] for f in trace_steps(g, t)]
    ['hop 1 of', 'hop 2 of', 'hop 3 of']
    """
    return [draw(graph, trace=trace, upto=k, **kwargs) for k in range(1, len(trace.sightings) + 1)]


def step_through(graph: nx.Graph, trace: Any, dpi: int = 100, **kwargs: Any) -> Any:
    """A slider (and a play button) over the hops of ``trace``, in Jupyter.

    The picture shows hops 1 to the slider's value, as :func:`trace_steps`
    draws them; it starts at hop 1. Each picture is drawn the first time
    it is asked for (``dpi`` 100: 900 x 700 pixels). Keyword arguments go
    to :func:`draw`. Nothing is printed or displayed while it is made, so
    a notebook that shows it stores the same output every time.

    Returns
    -------
    ipywidgets.VBox
        The play button and the slider above the picture.

    Examples
    --------
    >>> import networkx as nx
    >>> from labkit.trace import Sighting, Trace
    >>> g = nx.Graph()
    >>> g.add_node("ns:red", kind="netns", name="red")
    >>> t = Trace("red", "10.0.0.9", [
    ...     Sighting(0.0, "red", "eth0", "out", "10.0.0.1", "10.0.0.9", "request")] * 3)
    >>> box = step_through(g, t)
    >>> controls, picture = box.children
    >>> play, slider = controls.children
    >>> first = bytes(picture.value)
    >>> slider.max, first[:4]
    (3, b'\\x89PNG')
    >>> slider.value = 3  # what dragging the slider does: hops 1 to 3
    >>> bytes(picture.value) != first
    True
    """
    import io

    import ipywidgets as w

    n = len(trace.sightings)
    if not n:
        raise ValueError(f"{trace.src} -> {trace.dst}: no interface saw the packet, no hop to show")
    pictures: dict[int, bytes] = {}

    def png(k: int) -> bytes:
        if k not in pictures:
            buf = io.BytesIO()
            draw(graph, trace=trace, upto=k, **kwargs).savefig(buf, format="png", dpi=dpi)
            pictures[k] = buf.getvalue()
        return pictures[k]

    play = w.Play(value=1, min=1, max=n, interval=1200, description="play")
    slider = w.IntSlider(value=1, min=1, max=n, description="hop", continuous_update=False)
    w.jslink((play, "value"), (slider, "value"))
    image = w.Image(value=png(1), format="png", layout={"max_width": "900px", "width": "100%"})

    def show(change: dict[str, Any]) -> None:
        image.value = png(int(change["new"]))

    slider.observe(show, names="value")
    return w.VBox([w.HBox([play, slider]), image])


def save(graph: nx.Graph, path: str | PathLike[str]) -> None:
    """Draw ``graph`` with :func:`draw` and write it to ``path`` as a PNG.

    Parameters
    ----------
    graph : networkx.Graph
        A graph from :func:`labkit.kernel.observe.to_graph`.
    path : str or os.PathLike
        The file to write (150 dpi: 1350 x 1050 pixels).

    Examples
    --------
    >>> import networkx as nx, os, tempfile
    >>> from labkit.draw import save
    >>> g = nx.Graph()
    >>> g.add_node("ns:host", kind="netns", name="host")
    >>> path = os.path.join(tempfile.mkdtemp(), "host.png")
    >>> save(g, path)
    >>> open(path, "rb").read(4)
    b'\\x89PNG'
    """
    draw(graph).savefig(path, format="png", dpi=150)
