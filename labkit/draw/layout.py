"""Where everything goes: pure positions from the graph, no matplotlib.

:func:`layout` places every drawn node of a graph from
:func:`labkit.kernel.observe.to_graph`; :func:`place` also gives each
namespace's :class:`Box`. A place depends on names, never on the order in
which the kernel listed things. :func:`density` says how crowded the
picture is, which decides how much is written (see :data:`MEDIUM_ABOVE`,
:data:`COMPACT_ABOVE`, :data:`DENSE_ABOVE`). Reading the graph itself
(node ids, drawn interfaces, cables) is :mod:`labkit.draw.graph`.

The drawing is in data units: x from 0 to :data:`WIDTH`, the lab below
y = :data:`HEIGHT` and the world above it.

Examples
--------
>>> import networkx as nx
>>> from labkit.draw.layout import layout
>>> g = nx.Graph()
>>> g.add_node("ns:red", kind="netns", name="red")
>>> layout(g)
{'ns:red': (2.3, 3.6)}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import networkx as nx

from labkit.core.model import HOST
from labkit.draw.graph import NodeId, edges, iface_ns, ifaces, namespaces, natural, ns_order

__all__ = [
    "CLOUD",
    "COMPACT_ABOVE",
    "DENSE_ABOVE",
    "FIXED",
    "FLOOR",
    "HEIGHT",
    "MEDIUM_ABOVE",
    "TITLED",
    "WIDTH",
    "WORLD",
    "Box",
    "Placement",
    "density",
    "layout",
    "merge",
    "place",
]

#: Up to this many lab namespaces, every cable end gets its own label.
MEDIUM_ABOVE = 6
#: Above this many lab namespaces, boxes are compact and show only their names.
COMPACT_ABOVE = 24
#: Above this many lab namespaces, boxes are unnamed tiles and each row is
#: labelled with its first and last name (a name no longer fits in a tile).
DENSE_ABOVE = 128

Point = tuple[float, float]
Rect = tuple[float, float, float, float]  # x0, y0, x1, y1

#: The drawing, in data units: x from 0 to WIDTH; the lab below y = HEIGHT, the world above.
WIDTH, HEIGHT = 16.0, 10.0
_HOST_BOX = (8.0, 8.0, 7.6, 3.6)  # centre x, centre y, width, height
#: The namespaces always in the same place below the host: centre x, centre y.
FIXED = {"red": (2.3, 3.6), "blue": (WIDTH - 2.3, 3.6)}
_FIXED_SIZE = (3.2, 1.6)
# The outside world (labkit.core.stages.WORLD), above the host: the router right
# above it, the PC on the LAN side (left), the internet on the WAN side (right).
_WORLD_Y = 12.3
#: The outside world's boxes: centre x, centre y, width, height.
WORLD = {
    "router": (8.0, _WORLD_Y, 4.4, 2.6),
    "lan-pc": (1.9, _WORLD_Y, 2.8, 1.6),
    "internet": (14.3, _WORLD_Y, 3.2, 1.9),
}
#: The namespace drawn as a cloud.
CLOUD = "internet"
#: Namespaces whose name is written at the top left of their box, notes below
#: it, and how far below their centre their bridges are (a fraction of the height).
TITLED = {HOST: 0.27, "router": 0.2}
_BRIDGE_DROP = 0.12  # the same, for any other namespace
# The other namespaces fill rows in this rectangle (x0, x1, top, bottom):
# up to _ONE_ROW of them in one centred row, more in a grid.
_ROWS = (0.2, WIDTH - 0.2, 2.4, -0.9)
_ONE_ROW = 5
_CELL = (3.2, 1.9)  # the largest cell of the rows: width, height
# Dense rows leave this much room on either side for their labels.
_ROW_LABELS = 1.1
# The grids, by how many namespaces there are: (columns, rows). Within one
# grid a namespace's place depends only on its rank among them.
_GRIDS = [(7, 3), (10, 4), (12, 5), (14, 7), (16, 8)]
#: The drawing always reaches down to red and blue, so that the host and the
#: world keep their place in the picture too.
FLOOR = FIXED["red"][1] - _FIXED_SIZE[1] / 2 - 0.4
# How far apart the interfaces on one box are, by density (the world's: full).
_IFACE_GAP = {"full": 0.6, "medium": 0.3, "compact": 0.06, "dense": 0.06}
_BOTTOM_MARGIN = 0.3  # dense: the host's cable ends keep this far from its corners


@dataclass(frozen=True)
class Box:
    """A namespace's rectangle: centre, width and height in data units.

    A point on its edge has a perimeter coordinate: counter-clockwise from
    the bottom-left corner.

    Examples
    --------
    >>> b = Box(0.0, 0.0, 4.0, 2.0)
    >>> b.perimeter, b.toward(10.0, 0.0), b.point(5.0), b.normal(2.0, 0.5)
    (12.0, 5.0, (2.0, 0.0), (1.0, 0.0))
    >>> b.moved(1.0, 1.0)
    Box(x=1.0, y=1.0, w=4.0, h=2.0)
    """

    x: float
    y: float
    w: float
    h: float

    @property
    def perimeter(self) -> float:
        """The length of the edge all round."""
        return 2 * (self.w + self.h)

    def moved(self, x: float, y: float) -> Box:
        """The same box with its centre at ``(x, y)``."""
        return Box(x, y, self.w, self.h)

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
        """Perimeter coordinate of an edge point."""
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


# -- how crowded -------------------------------------------------------------


def density(names: list[str]) -> str:
    """How crowded the picture is, from the number of lab namespaces (the
    host and the world do not count): ``"full"``, ``"medium"``,
    ``"compact"`` or ``"dense"``.

    Examples
    --------
    >>> density(["host", "red", "blue"]), density([f"ns{i}" for i in range(30)])
    ('full', 'compact')
    """
    n = sum(1 for name in names if name != HOST and name not in WORLD)
    if n > DENSE_ABOVE:
        return "dense"
    if n > COMPACT_ABOVE:
        return "compact"
    return "medium" if n > MEDIUM_ABOVE else "full"


# -- places ----------------------------------------------------------------------


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


def _boxes(names: list[str]) -> dict[str, Box]:
    """The rectangle of every namespace."""
    dense = density(names) == "dense"
    boxes: dict[str, Box] = {}
    for name in names:
        if name == HOST:
            boxes[name] = Box(*_HOST_BOX)
        elif name in WORLD:
            boxes[name] = Box(*WORLD[name])
        elif name in FIXED:
            boxes[name] = Box(*FIXED[name], *_FIXED_SIZE)
    others = [n for n in names if n not in boxes]
    cols, rows = _grid(len(others), dense)
    x0, x1, top, bottom = _rows_area(dense)
    cell_w = min((x1 - x0) / cols, _CELL[0])
    cell_h = min((top - bottom) / rows, _CELL[1])
    w, h = cell_w * 0.8, min(cell_h * 0.7, cell_w * 0.45)
    for rank, name in enumerate(others):
        row, col = divmod(rank, cols)
        x = (x0 + x1) / 2 + (col - (cols - 1) / 2) * cell_w
        y = top - (row + 0.5) * cell_h
        boxes[name] = Box(round(x, 6), round(y, 6), w, h)
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


class Placement(NamedTuple):
    """Where things are: each namespace's :class:`Box` (by name) and each
    drawn node's point (by node id)."""

    boxes: dict[str, Box]
    pos: dict[str, Point]


def place(graph: nx.Graph) -> Placement:
    """Boxes of the namespaces and positions of every drawn node.

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.Graph()
    >>> g.add_node("ns:red", kind="netns", name="red")
    >>> place(g)
    Placement(boxes={'red': Box(x=2.3, y=3.6, w=3.2, h=1.6)}, pos={'ns:red': (2.3, 3.6)})
    """
    drawn = ifaces(graph)
    names = namespaces(graph, drawn)
    boxes = _boxes(names)
    crowd = density(names)
    lab_gap = _IFACE_GAP[crowd]
    pos: dict[str, Point] = {f"ns:{n}": (b.x, b.y) for n, b in boxes.items()}

    by_ns: dict[str, list[str]] = {}
    for node, d in drawn.items():
        by_ns.setdefault(iface_ns(node, d), []).append(node)
    peers: dict[str, list[str]] = {}
    for u, v in edges(graph, "veth", drawn):
        peers.setdefault(u, []).append(v)
        peers.setdefault(v, []).append(u)

    for ns in sorted(by_ns, key=ns_order):
        box = boxes[ns]
        nodes = sorted(by_ns[ns], key=natural)
        bridges = [n for n in nodes if drawn[n].get("type") == "bridge"]
        drop = TITLED.get(ns, _BRIDGE_DROP)
        for i, node in enumerate(bridges):  # inside the box, side by side
            x = box.x - box.w / 2 + box.w * (i + 1) / (len(bridges) + 1)
            pos[node] = (x, round(box.y - drop * box.h, 6))
        wanted: list[tuple[float, str]] = []
        below: list[tuple[float, str]] = []  # dense: the host's ends of the lab's cables
        for node in nodes:
            if node in bridges:
                continue
            far = [boxes[iface_ns(p, drawn[p])] for p in peers.get(node, [])]
            far = [b for b in far if b is not box]
            if crowd == "dense" and ns == HOST and far and max(b.y for b in far) < box.y:
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
        rel = sorted(((s - cut) % box.perimeter, natural(node), node) for s, node in wanted)
        gap = _IFACE_GAP["full"] if ns in WORLD else lab_gap
        spread = _spread([r[0] for r in rel], gap, box.perimeter)
        for s, (_, _, node) in zip(spread, rel, strict=True):
            x, y = box.point(s + cut)
            pos[node] = (round(x, 6), round(y, 6))
    return Placement(boxes, pos)


def _bottom_x(box: Box, far: list[Box]) -> float:
    """Where the bottom side of ``box`` meets the line from its centre to ``far``'s."""
    tx = sum(b.x for b in far) / len(far)
    ty = sum(b.y for b in far) / len(far)
    t = (box.h / 2) / max(box.y - ty, 1e-9)
    return box.x + t * (tx - box.x)


def _along_bottom(
    box: Box, wanted: list[tuple[float, str]], gap: float, pos: dict[str, Point]
) -> None:
    """Place points on the bottom side of ``box``, in the order of their wanted x,
    at least ``gap`` apart (closer when they do not fit), as near as possible
    to where they want to be."""
    left, margin = box.x - box.w / 2, _BOTTOM_MARGIN
    length = box.w - 2 * margin
    rel = sorted(
        (min(max(x - left - margin, 0.0), length), natural(node), node) for x, node in wanted
    )
    gap = min(gap, length / max(len(rel) - 1, 1))
    spread = _spread([r[0] for r in rel], gap, length + gap)
    for s, (_, _, node) in zip(spread, rel, strict=True):
        pos[node] = (round(left + margin - gap / 2 + s, 6), round(box.y - box.h / 2, 6))


def merge(
    placement: Placement, given: dict[str, Any], drawn: dict[str, dict[str, Any]]
) -> dict[str, Point]:
    """The positions to draw: ``given`` ones win; the interfaces of a
    namespace moved there move with it unless they are given too.

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.Graph()
    >>> g.add_node("ns:red", kind="netns", name="red")
    >>> g.add_node("if:red/eth0", kind="iface", ns="red", type="veth")
    >>> auto = place(g)
    >>> auto.pos["if:red/eth0"]
    (2.3, 2.8)
    >>> x, y = merge(auto, {"ns:red": (4.3, 3.6)}, ifaces(g))["if:red/eth0"]  # moved with red
    >>> round(x, 6), round(y, 6)
    (4.3, 2.8)
    """
    boxes = placement.boxes
    out = {k: (float(v[0]), float(v[1])) for k, v in given.items()}
    for node, (x, y) in placement.pos.items():
        if node in out:
            continue
        if NodeId.parse(node).kind == "if":
            ns = iface_ns(node, drawn.get(node, {}))
            if f"ns:{ns}" in out and ns in boxes:
                gx, gy = out[f"ns:{ns}"]
                x, y = x + gx - boxes[ns].x, y + gy - boxes[ns].y
        out[node] = (x, y)
    return out


def layout(graph: nx.Graph) -> dict[str, Point]:
    """Place every node that :func:`labkit.draw.draw` draws, from names alone.

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
    return place(graph).pos
