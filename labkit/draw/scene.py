"""One graph being drawn into one Axes: what is drawn, where, and how big.

A :class:`Scene` reads the graph once (its drawn interfaces, cables,
boxes, places and notes) and knows the picture's scale once its view is
set; the painters (:mod:`labkit.draw.boxes`, :mod:`labkit.draw.cables`,
:mod:`labkit.draw.overlays`) draw from it.

Examples
--------
>>> import networkx as nx
>>> from matplotlib.figure import Figure
>>> from labkit.draw.scene import Scene
>>> g = nx.Graph()
>>> g.add_node("ns:red", kind="netns", name="red")
>>> scene = Scene(g, Figure().add_subplot())
>>> scene.names, scene.density, scene.pos
(['red'], 'full', {'ns:red': (2.3, 3.6)})
"""

from __future__ import annotations

from typing import Any, TypeVar

import networkx as nx
from matplotlib.axes import Axes

from labkit.core.model import HOST
from labkit.draw import labels, notes, style
from labkit.draw.graph import NodeId, edges, iface_ns, ifaces
from labkit.draw.layout import (
    CLOUD,
    FLOOR,
    HEIGHT,
    TITLED,
    WIDTH,
    WORLD,
    Box,
    Point,
    density,
    merge,
    place,
)
from labkit.draw.shapes import cloud, root_figure

__all__ = ["Scene"]

T = TypeVar("T")

_LABEL_LINE = 0.27  # a cable end's label line, in data units (room below a box)
_LABEL_GAP = 0.25


class Scene:
    """One graph drawn into one Axes ``ax``.

    Attributes
    ----------
    ax : matplotlib.axes.Axes
        Where it is drawn.
    ifaces : dict
        The drawn interfaces (see :func:`labkit.draw.graph.ifaces`).
    veths, ports : list of (str, str)
        The veth cables and bridge ports between them.
    names : list of str
        The namespaces, in layout order.
    density : str
        How crowded the picture is (:func:`labkit.draw.layout.density`).
    boxes, pos : dict
        Each namespace's box and each drawn node's point: ``pos`` wins
        over :func:`labkit.draw.layout.place`.
    ppu, k : float
        Points per data unit, and how much text and marks shrink in a small
        Axes (known once :meth:`set_view` is called), times ``scale``.
    scale : float
        How much larger text, marks and lines are than by default (1.5 for
        a projector).
    notes, rules, by_hand
        The notes in each box, the host's rules (drawn on a panel of their
        own) and whether a rule made by hand is among them.
    ghost_boxes, ghost_pos, old_ifaces
        Where removed things were: the last picture's layout (empty unless
        ``changes`` removed something).

    Examples
    --------
    >>> import networkx as nx
    >>> from matplotlib.figure import Figure
    >>> g = nx.Graph()
    >>> g.add_node("ns:host", kind="netns", name="host", forwarding=True)
    >>> scene = Scene(g, Figure().add_subplot())
    >>> scene.notes, scene.size(style.CABLE_WIDTH), scene.size(style.CABLE_WIDTH, "router")
    ({'host': ['forwarding']}, 1.8, 1.8)
    >>> scene.set_view("a title")
    >>> round(float(scene.ppu), 1), round(float(scene.k), 2)
    (22.0, 0.65)
    """

    def __init__(
        self,
        graph: nx.Graph,
        ax: Axes,
        *,
        pos: dict[str, Point] | None = None,
        show_addresses: bool = True,
        show_macs: bool = False,
        show_routes: bool = True,
        changes: Any = None,
        trace: Any = None,
        upto: int | None = None,
        scale: float = 1.0,
    ) -> None:
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0.5 <= scale <= 3:
            raise ValueError(
                f"scale must be a number from 0.5 to 3 (1.5 for a projector), not {scale!r}"
            )
        self.ax = ax
        self.scale = float(scale)
        self.changes = changes
        self.trace = trace
        self.upto = upto
        self.ifaces = ifaces(graph)
        self.veths = edges(graph, "veth", self.ifaces)
        self.ports = edges(graph, "port", self.ifaces)
        self.show_addresses = show_addresses
        self.show_macs = show_macs
        auto = place(graph)
        self.names = list(auto.boxes)
        self.density = density(self.names)
        self.pos = merge(auto, pos or {}, self.ifaces)
        self.boxes = {n: b.moved(*self.pos[f"ns:{n}"]) for n, b in auto.boxes.items()}
        self.ppu = style.PPU  # points per data unit, known once the limits are set
        self.k = self.scale  # how much text and marks shrink in a small Axes, times scale
        self.notes: dict[str, list[str]] = {}  # general notes, and rules but the host's
        self.rules: list[str] = []  # the host's rules, in a panel of their own
        self.by_hand = False
        for name in self.names:
            if name in TITLED or name in WORLD or self.density == "full":
                d = dict(graph.nodes.get(f"ns:{name}", {}))
                lines, rules, by_hand = notes.notes(d, name != HOST, show_routes)
                self.notes[name] = lines if name == HOST else lines + rules
                if name == HOST:
                    self.rules = rules
                self.by_hand |= by_hand
        self.ghost_boxes: dict[str, Box] = {}
        self.ghost_pos: dict[str, Point] = {}
        self.old_ifaces: dict[str, dict[str, Any]] = {}
        old = getattr(changes, "old", None)
        if changes is not None and old is not None and changes.removed | changes.removed_edges:
            self.ghost_boxes, self.ghost_pos = place(old)
            self.old_ifaces = ifaces(old)

    # -- sizes

    def dens(self, ns: str | None) -> str:
        """The density a namespace is drawn with: the world's is always full."""
        return "full" if ns in WORLD else self.density

    def size(self, sized: style.Sized[T], ns: str | None = None) -> T:
        """The value of ``sized`` for the density ``ns`` is drawn with (the
        picture's when ``ns`` is None)."""
        return sized.at(self.dens(ns))

    def pt(self, size: float) -> float:
        """A font or marker size, in points, shrunk with a small Axes, times :attr:`scale`."""
        return size * self.k

    def lw(self, width: float) -> float:
        """A line width, in points, times :attr:`scale`."""
        return width * self.scale

    def fit(self, text: str, width: float, fontsize: float, smallest: float) -> tuple[str, float]:
        """:func:`labkit.draw.labels.fit_text` at this scale (sizes before shrinking)."""
        return labels.fit_text(text, width, self.pt(fontsize), self.pt(smallest), self.ppu)

    def fit_lines(
        self, lines: list[str], width: float, fontsize: float, smallest: float
    ) -> tuple[list[str], float]:
        """:func:`labkit.draw.labels.fit_lines` at this scale (sizes before shrinking)."""
        return labels.fit_lines(lines, width, self.pt(fontsize), self.pt(smallest), self.ppu)

    # -- graph

    def ns_of(self, node: str) -> str:
        """The namespace of a drawn interface."""
        return iface_ns(node, self.ifaces[node])

    def iface_lines(self, d: dict[str, Any]) -> list[str]:
        """An interface's label: its name, addresses and MAC (as asked)."""
        lines = [str(d.get("name", ""))]
        if self.show_addresses:
            lines += [str(a) for a in d.get("addrs") or []]
        if self.show_macs and d.get("mac"):
            lines.append(str(d["mac"]))
        return lines

    # -- the view

    def set_view(self, title: str | None) -> None:
        """Set the limits (everything drawn, ghosts and labels below boxes
        included, and always the lab's floor), the aspect and the title;
        then the scale (:attr:`ppu`, :attr:`k`) follows."""
        ax = self.ax
        removed = [NodeId.parse(n) for n in getattr(self.changes, "removed", ())]
        gone = {n.name for n in removed if n.kind == "ns"}
        boxes = list(self.boxes.values()) + [
            b for n, b in self.ghost_boxes.items() if n in gone and n not in self.boxes
        ]
        points = list(self.pos.values())
        if CLOUD in self.boxes:
            ext = cloud(self.boxes[CLOUD]).get_extents()
            points += [(ext.x0, ext.y0), (ext.x1, ext.y1)]
        y0 = min([b.y - b.h / 2 for b in boxes] + [p[1] for p in points])
        y0 -= self.size(style.VIEW_MARGIN)
        for node, d in self.ifaces.items():  # room for the labels under a box's bottom side
            x, y = self.pos[node]
            ns = iface_ns(node, d)
            labelled = self.dens(ns) == "full"
            if labelled and d.get("type") != "bridge" and self.boxes[ns].normal(x, y) == (0, -1):
                y0 = min(y0, y - _LABEL_GAP - _LABEL_LINE * len(self.iface_lines(d)))
        y0 = min(y0, FLOOR)
        y1 = max([HEIGHT] + [b.y + b.h / 2 for b in boxes] + [p[1] for p in points]) + 0.15
        x0 = min([0.0] + [b.x - b.w / 2 for b in boxes] + [p[0] for p in points]) - 0.1
        x1 = max([WIDTH] + [b.x + b.w / 2 for b in boxes] + [p[0] for p in points]) + 0.1
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal", adjustable="box")
        ax.set_anchor("N")
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=style.TITLE_FONT * self.scale, color=style.INK)
        fig = root_figure(ax)
        bbox = ax.get_position()
        w_in, h_in = fig.get_figwidth() * bbox.width, fig.get_figheight() * bbox.height
        self.ppu = 72.0 * min(w_in / (x1 - x0), h_in / (y1 - y0))
        self.k = min(1.0, max(0.55, self.ppu / style.PPU)) * self.scale
