"""Draw the graph of a sandbox: namespaces as boxes, veth pairs as cables.

:func:`layout` places every drawn node of a graph from
:func:`labkit.observe.to_graph` (pure and deterministic: a place depends on
names, not on the order the kernel listed things in); :func:`draw` renders
it with matplotlib; :func:`save` writes a PNG.

The picture follows the course: the host namespace is a large grey box at
the top centre with its bridges (switch shapes) inside; ``red`` is always
on the left and ``blue`` on the right, so they keep their place from stage
to stage; every other namespace sits in rows below (``ns10``, ``ns11``, ...
in natural order, other names after them). An interface is a point on its
namespace's box, on the side facing the other end of its cable; loopback
interfaces are left out. Above :data:`COMPACT_ABOVE` namespaces the boxes
get small and the per-interface labels are left out.

Examples
--------
>>> import networkx as nx
>>> from labkit.draw import draw, layout
>>> g = nx.Graph(namespaces=["host", "red"])
>>> g.add_node("ns:host", kind="netns", name="host")
>>> g.add_node("ns:red", kind="netns", name="red")
>>> pos = layout(g)
>>> pos["ns:red"][0] < pos["ns:host"][0]
True
>>> draw(g)
<Figure size 800x500 with 1 Axes>
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
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch

from labkit.model import HOST

__all__ = ["COMPACT_ABOVE", "FIGSIZE", "draw", "layout", "save"]

#: Default figure size in inches (width, height); the same for every graph.
FIGSIZE = (8.0, 5.0)
#: With more lab namespaces than this, boxes are compact and unlabelled.
COMPACT_ABOVE = 24
#: With more lab namespaces than this (and up to COMPACT_ABOVE), labels are shorter.
MEDIUM_ABOVE = 6

# The drawing area, in data units (same aspect as FIGSIZE).
_W, _H = 16.0, 10.0
_HOST_BOX = (8.0, 8.1, 6.2, 3.0)  # centre x, centre y, width, height
_FIXED = {"red": (2.2, 5.0), "blue": (_W - 2.2, 5.0)}
_FIXED_SIZE = (3.0, 1.5)
# Rows of the other namespaces: x from _ROWS_X0 to _ROWS_X1, y from _ROWS_TOP down to _ROWS_BOTTOM.
_ROWS_X0, _ROWS_X1, _ROWS_TOP, _ROWS_BOTTOM = 0.2, _W - 0.2, 3.7, 0.1
# Grids for the other namespaces, by how many there are: (columns, rows).
# Within one grid a namespace's place depends only on its rank.
_GRIDS = [(5, 1), (7, 2), (9, 3), (12, 4), (14, 6), (16, 8)]

_DOWN_OPER = {"DOWN", "LOWERLAYERDOWN", "NOTPRESENT"}
_CABLE = "#37474f"
_PORT = "#546e7a"
_HOST_FACE, _HOST_EDGE = "#eceff1", "#78909c"
_OTHER_FACE, _OTHER_EDGE = "#f3f1e4", "#8d8a6a"
_BRIDGE_FACE = "#263238"


@dataclass(frozen=True)
class _Box:
    """A namespace's rectangle: centre, width and height in data units."""

    name: str
    x: float
    y: float
    w: float
    h: float

    @property
    def perimeter(self) -> float:
        return 2 * (self.w + self.h)

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
        """Perimeter coordinate of a point on the edge, counter-clockwise
        from the bottom-left corner."""
        left, bottom = self.x - self.w / 2, self.y - self.h / 2
        u, v = px - left, py - bottom
        eps = 1e-6
        if v <= eps:
            return min(max(u, 0.0), self.w)
        if u >= self.w - eps:
            return self.w + min(max(v, 0.0), self.h)
        if v >= self.h - eps:
            return self.w + self.h + (self.w - min(max(u, 0.0), self.w))
        return 2 * self.w + self.h + (self.h - min(max(v, 0.0), self.h))

    def point(self, s: float) -> tuple[float, float]:
        """The edge point at perimeter coordinate ``s``."""
        s %= self.perimeter
        left, bottom = self.x - self.w / 2, self.y - self.h / 2
        if s <= self.w:
            return (left + s, bottom)
        s -= self.w
        if s <= self.h:
            return (left + self.w, bottom + s)
        s -= self.h
        if s <= self.w:
            return (left + self.w - s, bottom + self.h)
        s -= self.w
        return (left, bottom + self.h - s)

    def normal(self, px: float, py: float) -> tuple[float, float]:
        """Outward unit normal of the side a point is on (corners: diagonal)."""
        nx_ = (px - self.x) / (self.w / 2)
        ny_ = (py - self.y) / (self.h / 2)
        ax_, ay_ = abs(nx_), abs(ny_)
        if abs(ax_ - ay_) < 0.08:
            return (math.copysign(0.7071, nx_), math.copysign(0.7071, ny_))
        return (math.copysign(1.0, nx_), 0.0) if ax_ > ay_ else (0.0, math.copysign(1.0, ny_))


# -- names and the graph --------------------------------------------------------


def _natural(name: str) -> tuple[Any, ...]:
    """Natural sort key: ``ns2`` before ``ns10``."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", name)
        if part
    )


def _ns_order(name: str) -> tuple[Any, ...]:
    """``ns10``, ``ns11``, ... first (naturally), then any other name."""
    return (0 if re.fullmatch(r"ns\d+", name) else 1, _natural(name), name)


def _namespaces(graph: nx.Graph) -> list[str]:
    """Every namespace with a node or with an interface in the graph."""
    names = {d.get("name", n[3:]) for n, d in graph.nodes(data=True) if d.get("kind") == "netns"}
    names |= {d["ns"] for _, d in graph.nodes(data=True) if d.get("kind") == "iface" and "ns" in d}
    return sorted(names, key=_ns_order)


def _ifaces(graph: nx.Graph) -> dict[str, dict[str, Any]]:
    """Drawn interfaces (no loopback), node id to attributes."""
    return {
        n: d
        for n, d in graph.nodes(data=True)
        if d.get("kind") == "iface" and d.get("type") != "loopback" and d.get("name") != "lo"
    }


def _edges(graph: nx.Graph, kind: str, ifaces: dict[str, Any]) -> list[tuple[str, str]]:
    """Edges of ``kind`` between drawn interfaces, each sorted, the list sorted."""
    return sorted(
        tuple(sorted((u, v)))  # type: ignore[misc]
        for u, v, d in graph.edges(data=True)
        if d.get("kind") == kind and u in ifaces and v in ifaces
    )


def _is_up(d: dict[str, Any]) -> bool:
    """Admin up and not reported down by the kernel (UNKNOWN counts as up)."""
    return bool(d.get("up", True)) and str(d.get("oper", "UNKNOWN")).upper() not in _DOWN_OPER


def _lab_count(names: list[str]) -> int:
    return sum(1 for n in names if n != HOST)


def _density(names: list[str]) -> str:
    n = _lab_count(names)
    if n > COMPACT_ABOVE:
        return "compact"
    return "medium" if n > MEDIUM_ABOVE else "full"


# -- layout ----------------------------------------------------------------------


def _grid(m: int) -> tuple[int, int]:
    for cols, rows in _GRIDS:
        if m <= cols * rows:
            return cols, rows
    aspect = (_ROWS_X1 - _ROWS_X0) / (_ROWS_TOP - _ROWS_BOTTOM)
    cols = math.ceil(math.sqrt(m * aspect))
    return cols, math.ceil(m / cols)


def _boxes(names: list[str]) -> dict[str, _Box]:
    """The rectangle of every namespace."""
    boxes: dict[str, _Box] = {}
    others = [n for n in names if n != HOST and n not in _FIXED]
    cols, rows = _grid(len(others))
    cell_w = (_ROWS_X1 - _ROWS_X0) / cols
    cell_h = min((_ROWS_TOP - _ROWS_BOTTOM) / rows, 1.9)
    w, h = cell_w * 0.82, cell_h * 0.72
    for name in names:
        if name == HOST:
            x, y, bw, bh = _HOST_BOX
            boxes[name] = _Box(name, x, y, bw, bh)
        elif name in _FIXED:
            boxes[name] = _Box(name, *_FIXED[name], *_FIXED_SIZE)
    for rank, name in enumerate(others):
        row, col = divmod(rank, cols)
        x = _ROWS_X0 + (col + 0.5) * cell_w
        y = _ROWS_TOP - (row + 0.5) * cell_h
        boxes[name] = _Box(name, x, y, w, h)
    return boxes


def _spread(wanted: list[float], gap: float, length: float) -> list[float]:
    """Move sorted coordinates apart by at least ``gap``, as little as possible.

    Isotonic regression (pool adjacent violators) of ``wanted[i] - i * gap``,
    clipped so that everything stays within ``[gap / 2, length - gap / 2]``.
    """
    n = len(wanted)
    if n == 0:
        return []
    gap = min(gap, length / n)
    blocks: list[list[float]] = []  # [mean, weight]
    for i, s in enumerate(wanted):
        blocks.append([s - i * gap, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    ys = [m for m, w in blocks for _ in range(int(w))]
    lo, hi = gap / 2, length - gap / 2 - (n - 1) * gap
    return [min(max(y, lo), max(hi, lo)) + i * gap for i, y in enumerate(ys)]


def _bridge_spots(box: _Box, bridges: list[str], is_host: bool) -> dict[str, tuple[float, float]]:
    """Bridges sit inside their box, side by side, a little below the middle."""
    y = box.y - (0.15 * box.h if is_host else 0.1 * box.h)
    n = len(bridges)
    return {
        b: (box.x - box.w / 2 + box.w * (i + 1) / (n + 1), y)
        for i, b in enumerate(sorted(bridges, key=_natural))
    }


def _place(graph: nx.Graph) -> tuple[dict[str, _Box], dict[str, tuple[float, float]]]:
    names = _namespaces(graph)
    boxes = _boxes(names)
    ifaces = _ifaces(graph)
    density = _density(names)
    pos: dict[str, tuple[float, float]] = {f"ns:{n}": (b.x, b.y) for n, b in boxes.items()}

    by_ns: dict[str, list[str]] = {}
    for node, d in ifaces.items():
        by_ns.setdefault(d.get("ns", HOST), []).append(node)

    peers: dict[str, list[str]] = {}
    for u, v in _edges(graph, "veth", ifaces):
        peers.setdefault(u, []).append(v)
        peers.setdefault(v, []).append(u)

    for ns, nodes in sorted(by_ns.items()):
        box = boxes[ns]
        bridges = [n for n in nodes if ifaces[n].get("type") == "bridge"]
        pos.update(_bridge_spots(box, bridges, ns == HOST))
        wanted: list[tuple[float, str]] = []
        for node in nodes:
            if node in bridges:
                continue
            targets = [
                boxes[ifaces[p].get("ns", HOST)]
                for p in peers.get(node, [])
                if ifaces[p].get("ns", HOST) != ns
            ]
            if targets:
                tx = sum(t.x for t in targets) / len(targets)
                ty = sum(t.y for t in targets) / len(targets)
            else:  # not cabled to another namespace: the side away from the host
                tx, ty = box.x, box.y + (1.0 if ns == HOST else -1.0)
            wanted.append((box.toward(tx, ty), ifaces[node].get("name", node)))
        if not wanted:
            continue
        order = sorted(zip(wanted, [n for n in nodes if n not in bridges]))
        # Cut the perimeter where the interfaces are thinnest: opposite their mean direction.
        angles = [2 * math.pi * s / box.perimeter for (s, _), _ in order]
        mean = math.atan2(sum(math.sin(a) for a in angles), sum(math.cos(a) for a in angles))
        cut = ((mean / (2 * math.pi)) * box.perimeter + box.perimeter / 2) % box.perimeter
        rel = sorted(
            (((s - cut) % box.perimeter, name), node) for (s, name), node in order
        )
        gap = {"full": 0.55, "medium": 0.3, "compact": 0.12}[density]
        spread = _spread([s for (s, _), _ in rel], gap, box.perimeter)
        for s, (_, node) in zip(spread, rel):
            pos[node] = box.point(s + cut)
    return boxes, pos


def layout(graph: nx.Graph) -> dict[str, tuple[float, float]]:
    """Place every node that :func:`draw` draws, from names alone.

    Namespaces get the centre of their box: the host at the top centre,
    ``red`` on the left, ``blue`` on the right, every other namespace in
    rows below (``ns10``, ``ns11``, ... in natural order, then other names
    in natural order). Interfaces get a point on their namespace's box, on
    the side facing the other end of their veth cable; interfaces without
    a cable to another namespace sit on the bottom side (the top side in
    the host). Bridges sit inside their box. Loopback interfaces are left
    out. The result is deterministic and the graph is not changed.

    Parameters
    ----------
    graph : networkx.Graph
        A graph from :func:`labkit.observe.to_graph` (nodes ``ns:NAME`` and
        ``if:NS/NAME``; see :mod:`labkit.observe`).

    Returns
    -------
    dict of str to (float, float)
        Node id to ``(x, y)`` in data units: x from 0 to 16, y from 0 to 10.

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
    ((2.2, 5.0), (13.8, 5.0))
    >>> pos["if:red/veth-red"]  # the right side of red's box, facing blue
    (3.7, 5.0)
    """
    return _place(graph)[1]


# -- drawing ---------------------------------------------------------------------


def _colours(name: str) -> tuple[str, str]:
    """Face and edge colour of a lab namespace's box; a colour name tints it."""
    if name.lower() in mcolors.CSS4_COLORS:
        rgb = mcolors.to_rgb(name.lower())
        face = tuple(1 - 0.22 * (1 - c) for c in rgb)
        edge = tuple(0.75 * c for c in rgb)
        return mcolors.to_hex(face), mcolors.to_hex(edge)
    return _OTHER_FACE, _OTHER_EDGE


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _label(d: dict[str, Any], show_addresses: bool, show_macs: bool, density: str) -> str:
    lines = [str(d.get("name", ""))]
    if show_addresses:
        lines += [str(a) for a in d.get("addrs") or []]
    if show_macs and d.get("mac"):
        lines.append(str(d["mac"]))
    return "\n".join(lines)


def _legend(ax: Axes, fontsize: float) -> None:
    handles = [
        Line2D([], [], color=_CABLE, lw=1.6, label="cable: both ends up"),
        Line2D([], [], color=_CABLE, lw=1.6, ls=(0, (3, 2)), label="cable: an end is down"),
        Line2D([], [], ls="", marker="o", ms=5, color=_CABLE, label="interface up"),
        Line2D(
            [], [], ls="", marker="o", ms=5, mfc="white", mec=_CABLE, label="interface down"
        ),
        Line2D([], [], ls="", marker="s", ms=7, color=_BRIDGE_FACE, label="bridge (switch)"),
    ]
    ax.legend(
        handles=handles,
        loc="upper left",
        fontsize=fontsize,
        frameon=True,
        framealpha=0.9,
        edgecolor="#cfd8dc",
        borderpad=0.5,
        handlelength=2.2,
    )


def draw(
    graph: nx.Graph,
    pos: dict[str, tuple[float, float]] | None = None,
    ax: Axes | None = None,
    *,
    show_addresses: bool = True,
    show_macs: bool = False,
    title: str | None = None,
) -> Figure:
    """Draw the sandbox: namespaces, bridges, veth cables and addresses.

    Namespaces are rounded boxes (the host a larger grey one), bridges are
    switch shapes inside their box, veth cables are lines between two
    interface points (solid when both ends are up, dashed otherwise) and
    bridge ports are thin lines to their bridge. Interface names and IPv4
    addresses label the cable ends; with more than
    :data:`COMPACT_ABOVE` namespaces only the namespace names are written.
    Loopback interfaces are left out. The figure is made without pyplot, so
    nothing pops up and notebooks stay reproducible.

    Parameters
    ----------
    graph : networkx.Graph
        A graph from :func:`labkit.observe.to_graph`.
    pos : dict, optional
        Node positions; nodes it lacks are placed by :func:`layout`.
    ax : matplotlib.axes.Axes, optional
        Draw into this Axes (it is cleared of nothing; limits are set);
        default: a new :data:`FIGSIZE` figure with one Axes.
    show_addresses : bool, default True
        Write the IPv4 addresses under the interface names.
    show_macs : bool, default False
        Write the MAC addresses too.
    title : str, optional
        Title above the drawing.

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
    >>> g.add_node("if:red/dummy0", kind="iface", ns="red", name="dummy0", type="other",
    ...            up=False, oper="DOWN", addrs=["10.0.0.1/24"], master=None)
    >>> g.add_edge("ns:red", "if:red/dummy0", kind="in")
    >>> fig = draw(g, title="a dummy in red")
    >>> fig
    <Figure size 800x500 with 1 Axes>
    >>> "10.0.0.1/24" in [t.get_text().split("\\n")[-1] for t in fig.axes[0].texts]
    True
    """
    boxes, auto = _place(graph)
    where = dict(auto)
    if pos:
        where.update({k: (float(v[0]), float(v[1])) for k, v in pos.items()})
    if ax is None:
        fig = Figure(figsize=FIGSIZE)
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93 if title else 0.99)
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    names = list(boxes)
    density = _density(names)
    ifaces = _ifaces(graph)
    big = density == "full"
    compact = density == "compact"
    name_size = {"full": 11.0, "medium": 7.5, "compact": 5.0}[density]
    label_size = {"full": 7.0, "medium": 5.5, "compact": 0.0}[density]

    ax.set_xlim(0, _W)
    ax.set_ylim(0, _H)
    ax.set_aspect("equal", adjustable="box")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=11)

    # Boxes (zorder 1-2), cables behind the lab boxes' faces but above the host's.
    for name in names:
        box = boxes[name]
        cx, cy = where.get(f"ns:{name}", (box.x, box.y))
        if name == HOST:
            face, edge, lw, z = _HOST_FACE, _HOST_EDGE, 1.6, 1
        else:
            (face, edge), lw, z = _colours(name), (1.3 if not compact else 0.7), 3
        pad = min(box.w, box.h) * 0.08
        ax.add_patch(
            FancyBboxPatch(
                (cx - box.w / 2 + pad, cy - box.h / 2 + pad),
                box.w - 2 * pad,
                box.h - 2 * pad,
                boxstyle=f"round,pad={pad}",
                facecolor=face,
                edgecolor=edge,
                linewidth=lw,
                zorder=z,
            )
        )
        has_bridge = any(
            d.get("ns") == name and d.get("type") == "bridge" for d in ifaces.values()
        )
        if name == HOST:
            ax.text(
                cx - box.w / 2 + 0.2,
                cy + box.h / 2 - 0.15,
                "host",
                ha="left",
                va="top",
                fontsize=name_size if not compact else 9.0,
                fontweight="bold",
                color="#455a64",
                zorder=5,
            )
        else:
            text = _short(name, 7 if compact else 12)
            ty = cy + box.h * 0.22 if has_bridge else cy
            ax.text(
                cx,
                ty,
                text,
                ha="center",
                va="center",
                fontsize=name_size,
                fontweight="bold",
                color=edge,
                zorder=5,
                clip_on=True,
            )

    # Cables and ports.
    for kind in ("veth", "port"):
        for u, v in _edges(graph, kind, ifaces):
            if u not in where or v not in where:
                continue
            up = _is_up(ifaces[u]) and _is_up(ifaces[v])
            (x1, y1), (x2, y2) = where[u], where[v]
            if kind == "veth":
                lw = 1.6 if not compact else 0.6
                colour, z = _CABLE, 2
            else:
                lw = 1.1 if not compact else 0.4
                colour, z = _PORT, 1.5
            ax.plot(
                [x1, x2],
                [y1, y2],
                color=colour,
                lw=lw,
                ls="-" if up else (0, (3, 2)),
                solid_capstyle="round",
                zorder=z,
                alpha=1.0 if not compact else 0.55,
            )

    # Interfaces.
    ms = {"full": 6.0, "medium": 4.5, "compact": 2.2}[density]
    for node in sorted(ifaces, key=_natural):
        d = ifaces[node]
        if node not in where:
            continue
        x, y = where[node]
        up = _is_up(d)
        ns = d.get("ns", HOST)
        if d.get("type") == "bridge":
            bw, bh = (1.5, 0.42) if not compact else (1.1, 0.32)
            ax.add_patch(
                FancyBboxPatch(
                    (x - bw / 2, y - bh / 2),
                    bw,
                    bh,
                    boxstyle="round,pad=0.04",
                    facecolor=_BRIDGE_FACE if up else "white",
                    edgecolor=_BRIDGE_FACE,
                    linewidth=1.2,
                    linestyle="-" if up else "--",
                    zorder=6,
                )
            )
            for i in range(4):  # the switch's port lights
                ax.plot(
                    x - bw / 2 + bw * (i + 1) / 5,
                    y - bh / 2 + 0.09,
                    marker="s",
                    ms=1.8,
                    color="#80cbc4" if up else _BRIDGE_FACE,
                    zorder=7,
                )
            ax.text(
                x,
                y + 0.05,
                _short(str(d.get("name", "")), 10),
                ha="center",
                va="center",
                fontsize=7.5 if not compact else 6.0,
                fontweight="bold",
                color="white" if up else _BRIDGE_FACE,
                zorder=7,
            )
            extra = []
            if show_addresses:
                extra += list(d.get("addrs") or [])
            if show_macs and d.get("mac"):
                extra.append(str(d["mac"]))
            if extra:
                ax.text(
                    x,
                    y - bh / 2 - 0.08,
                    "\n".join(extra),
                    ha="center",
                    va="top",
                    fontsize=7.0 if not compact else 6.0,
                    color="#263238",
                    zorder=7,
                )
            continue
        ax.plot(
            x,
            y,
            marker="o",
            ms=ms,
            mfc=_CABLE if up else "white",
            mec=_CABLE,
            mew=1.0 if not compact else 0.5,
            ls="",
            zorder=8,
        )
        if compact or label_size <= 0:
            continue
        box = boxes.get(ns)
        if box is None:
            continue
        bx, by = where.get(f"ns:{ns}", (box.x, box.y))
        shifted = _Box(ns, bx, by, box.w, box.h)
        nx_, ny_ = shifted.normal(x, y)
        text = _label(d, show_addresses, show_macs, density)
        off = 0.12
        ha = "left" if nx_ > 0.1 else "right" if nx_ < -0.1 else "center"
        va = "bottom" if ny_ > 0.1 else "top" if ny_ < -0.1 else "center"
        ax.text(
            x + off * nx_,
            y + off * ny_,
            text,
            ha=ha,
            va=va,
            fontsize=label_size,
            color="#263238",
            zorder=9,
            linespacing=1.05,
            bbox={"boxstyle": "round,pad=0.12", "fc": "white", "ec": "none", "alpha": 0.75}
            if big
            else None,
        )

    _legend(ax, 6.5 if not compact else 5.5)
    return fig  # type: ignore[return-value]


def save(graph: nx.Graph, path: str | PathLike[str]) -> None:
    """Draw ``graph`` with :func:`draw` and write it as a PNG file.

    Parameters
    ----------
    graph : networkx.Graph
        A graph from :func:`labkit.observe.to_graph`.
    path : str or os.PathLike
        Where to write the PNG.

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
