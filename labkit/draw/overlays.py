"""Marks over the picture: what changed since the last one, and a packet trace.

:func:`draw_changes` rings what was added (green, solid, ``+``) or
changed (orange, dotted, ``~``) and draws what was removed as vermillion
dashed ghosts (``−``) where it was in the last picture (gids ``added:ID``,
``changed:ID``, ``removed:ID``, and ``mark:KIND:ID`` for the text marks).
:func:`draw_hops` numbers a trace's hops beside the interfaces that saw
them (the request's in blue circles joined by solid arrows, the reply's in
purple squares joined by dashed ones) and labels where NAT rewrote an
address (gids ``hop:N``, ``hop-mark:N``, ``hop-arrow:M-N``, ``nat:N``).
The colours are :data:`labkit.draw.style.OKABE_ITO`'s.

Examples
--------
>>> import networkx as nx
>>> from matplotlib.figure import Figure
>>> from labkit.draw.overlays import draw_changes
>>> from labkit.draw.scene import Scene
>>> from labkit.ui.live import diff_graphs
>>> old = nx.Graph()
>>> old.add_node("ns:red", kind="netns", name="red")
>>> new = old.copy()
>>> new.add_node("ns:blue", kind="netns", name="blue")
>>> scene = Scene(new, Figure().add_subplot(), changes=diff_graphs(old, new))
>>> scene.set_view(None)
>>> draw_changes(scene)
>>> [p.get_gid() for p in scene.ax.patches]
['added:ns:blue']
"""

from __future__ import annotations

from typing import Any

from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, PathPatch

from labkit.draw import labels, style
from labkit.draw.graph import NodeId, iface_ns
from labkit.draw.layout import CLOUD, Box, Point, Rect
from labkit.draw.scene import Scene
from labkit.draw.shapes import cloud

__all__ = ["draw_changes", "draw_hops"]

_BRIDGE_RING = 0.08  # how far a changed bridge's ring sits outside it


# -- what changed since the last picture


def draw_changes(scene: Scene) -> None:
    """Mark what changed since the last picture (``scene.changes``, a
    :class:`labkit.ui.live.Changes`; nothing when None).

    Each kind of change has its colour, its line style and its text mark
    (:data:`labkit.draw.style.CHANGES`): a solid ring and ``+`` for added,
    a dotted ring and ``~`` for changed, a dashed ghost and ``−`` for
    removed. The marks are written unless the picture is dense (gid
    ``mark:KIND:ID``).

    Examples
    --------
    >>> import networkx as nx
    >>> from matplotlib.figure import Figure
    >>> from labkit.ui.live import diff_graphs
    >>> new = nx.Graph()
    >>> new.add_node("ns:red", kind="netns", name="red")
    >>> old = new.copy()
    >>> old.add_node("if:red/eth0", kind="iface", ns="red", name="eth0", type="veth")
    >>> scene = Scene(new, Figure().add_subplot(), changes=diff_graphs(old, new))
    >>> scene.set_view(None)
    >>> draw_changes(scene)
    >>> [p.get_gid() for p in scene.ax.patches], [t.get_text() for t in scene.ax.texts]
    (['removed:if:red/eth0'], ['− eth0'])
    """
    c = scene.changes
    if c is None:
        return
    ax = scene.ax
    for node in sorted(set(c.added) | set(c.changed)):
        kind = "added" if node in c.added else "changed"
        look = style.CHANGES[kind]
        gid = f"{kind}:{node}"
        nid = NodeId.parse(node)
        if nid.kind == "ns" and nid.name in scene.boxes:
            box = scene.boxes[nid.name]
            _ring_box(scene, box, look, gid, cloud_=nid.name == CLOUD)
            _mark(scene, (box.x + box.w / 2, box.y + box.h / 2), kind, node, nid.name)
        elif node in scene.ifaces and node in scene.pos:
            ns = scene.ns_of(node)
            x, y = scene.pos[node]
            if scene.ifaces[node].get("type") == "bridge":
                bw, bh = scene.size(style.BRIDGE, ns)
                ax.add_patch(
                    FancyBboxPatch(
                        (x - bw / 2 - _BRIDGE_RING, y - bh / 2 - _BRIDGE_RING),
                        bw + 2 * _BRIDGE_RING,
                        bh + 2 * _BRIDGE_RING,
                        boxstyle="round,pad=0.05",
                        facecolor="none",
                        edgecolor=look.colour,
                        linewidth=scene.lw(style.BRIDGE_RING_EDGE),
                        linestyle=look.line,
                        zorder=6.5,
                        gid=gid,
                    )
                )
                _mark(scene, (x + bw / 2 + _BRIDGE_RING, y + bh / 2), kind, node, ns)
            else:
                _ring_point(scene, (x, y), ns, look, gid)
                _mark(scene, (x, y), kind, node, ns, away=True)
    for u, v in sorted(c.added_edges):
        if u in scene.pos and v in scene.pos and u in scene.ifaces and v in scene.ifaces:
            (x1, y1), (x2, y2) = scene.pos[u], scene.pos[v]
            ax.plot(
                [x1, x2],
                [y1, y2],
                color=style.ADDED,
                lw=scene.lw(scene.size(style.ADDED_CABLE, scene.ns_of(u))),
                alpha=0.45,
                solid_capstyle="round",
                zorder=1.8,
                gid=f"added:{u}|{v}",
            )
    _ghosts(scene)


def _mark(scene: Scene, p: Point, kind: str, node: str, ns: str | None, away: bool = False) -> None:
    """The text mark of a change (``+``, ``~``, ``−``) at ``p`` (``away``: just
    inside the box from an interface's ring); none when dense."""
    if scene.dens(ns) == "dense":
        return
    look = style.CHANGES[kind]
    if away and ns in scene.boxes:  # inside the box: the labels are outside
        r = 1.6 * scene.pt(scene.size(style.RING_DOT, ns)) / 2 / scene.ppu
        nx_, ny_ = scene.boxes[ns].normal(*p)
        p = (p[0] - nx_ * r, p[1] - ny_ * r)
    scene.ax.text(
        p[0],
        p[1],
        look.mark,
        ha="center",
        va="center",
        fontsize=scene.pt(style.CHANGE_MARK_FONT),
        fontweight="bold",
        color=look.colour,
        zorder=11.5,
        gid=f"mark:{kind}:{node}",
        bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": look.colour, "lw": scene.lw(1.0)},
    )


def _ghosts(scene: Scene) -> None:
    """Removed namespaces, interfaces and cables, dashed, where they were;
    their names start with ``−``."""
    c = scene.changes
    ax = scene.ax
    look = style.CHANGES["removed"]
    for node in sorted(c.removed):
        gid = f"removed:{node}"
        nid = NodeId.parse(node)
        if nid.kind == "ns" and nid.name in scene.ghost_boxes:
            box = scene.ghost_boxes[nid.name]
            _ring_box(scene, box, look, gid, cloud_=nid.name == CLOUD)
            text, size = scene.fit(
                f"{look.mark} {nid.name}",
                box.w * 0.9,
                style.GHOST_NAME_FONT,
                style.GHOST_NAME_SMALLEST,
            )
            ax.text(
                box.x,
                box.y - box.h / 2 - 0.05,
                text,
                ha="center",
                va="top",
                fontsize=size,
                color=look.colour,
                zorder=9,
            )
        elif node in scene.ghost_pos and node in scene.old_ifaces:
            ns = iface_ns(node, scene.old_ifaces[node])
            _ring_point(scene, scene.ghost_pos[node], ns, look, gid)
            if scene.dens(ns) == "full":
                x, y = scene.ghost_pos[node]
                ax.text(
                    x,
                    y - 0.2,
                    f"{look.mark} {scene.old_ifaces[node].get('name', node)}",
                    ha="center",
                    va="top",
                    fontsize=scene.pt(style.GHOST_IFACE_FONT),
                    color=look.colour,
                    zorder=9,
                )
    for u, v in sorted(c.removed_edges):
        if u in scene.ghost_pos and v in scene.ghost_pos:
            (x1, y1), (x2, y2) = scene.ghost_pos[u], scene.ghost_pos[v]
            ax.plot(
                [x1, x2],
                [y1, y2],
                color=look.colour,
                lw=scene.lw(scene.size(style.GHOST_CABLE)),
                ls=look.line,
                alpha=0.85,
                zorder=2.2,
                gid=f"removed:{u}|{v}",
            )


def _ring_box(scene: Scene, box: Box, look: style.Change, gid: str, cloud_: bool = False) -> None:
    """A ring round a box (or the cloud), in the line style of its change."""
    pad = min(box.w, box.h) * 0.1
    ring = style.GHOST_RING_EDGE if look.line == style.DASH else style.RING_EDGE
    drawn: dict[str, Any] = {
        "facecolor": "none",
        "edgecolor": look.colour,
        "linewidth": scene.lw(scene.size(ring)),
        "linestyle": look.line,
        "zorder": 4,
        "gid": gid,
    }
    if cloud_:
        scene.ax.add_patch(PathPatch(cloud(box), **drawn))
        return
    grow = scene.size(style.RING_GROW)
    scene.ax.add_patch(
        FancyBboxPatch(
            (box.x - box.w / 2 + pad - grow, box.y - box.h / 2 + pad - grow),
            box.w - 2 * pad + 2 * grow,
            box.h - 2 * pad + 2 * grow,
            boxstyle=f"round,pad={pad}",
            **drawn,
        )
    )


def _ring_point(scene: Scene, p: Point, ns: str | None, look: style.Change, gid: str) -> None:
    """A ring around an interface point, in the line style of its change
    (a solid one is a marker, a dotted or dashed one a circle)."""
    ms = scene.pt(scene.size(style.RING_DOT, ns))
    if look.line == "-":
        scene.ax.plot(
            p[0],
            p[1],
            marker="o",
            ms=ms,
            mfc="none",
            mec=look.colour,
            mew=scene.lw(scene.size(style.RING_DOT_EDGE, ns)),
            ls="",
            zorder=8.5,
            gid=gid,
        )
        return
    ghost = look.line == style.DASH
    scene.ax.add_patch(
        Circle(
            p,
            ms / 2 / scene.ppu,
            fill=False,
            edgecolor=look.colour,
            lw=scene.lw(scene.size(style.GHOST_DOT_EDGE if ghost else style.RING_DOT_EDGE, ns)),
            ls=look.line,
            alpha=0.9 if ghost else 1.0,
            zorder=8.5,
            gid=gid,
        )
    )


# -- a packet trace


def _hop_places(
    scene: Scene, d: float, rects: list[Rect], points: list[Point]
) -> tuple[dict[int, Point], dict[int, Point]]:
    """Where each hop's number goes (its centre), and the direction from
    its interface, by hop number (1, 2, ...).

    Every hop of the trace gets its place, whatever ``upto`` is, so that
    a number never moves while stepping through. The hops of one
    interface sit side by side, ``d`` apart, as near as possible to
    its point where they cover the least: no text, bridge, interface
    or cable if they can (:func:`labkit.draw.labels.hop_row`). A hop on an
    interface that is not drawn (a loopback, one gone since) goes into its
    namespace's box.
    """
    at: dict[str, list[int]] = {}
    for n, s in enumerate(scene.trace.sightings, 1):
        at.setdefault(f"if:{s.where}", []).append(n)
    places: dict[int, Point] = {}
    away: dict[int, Point] = {}
    for node, numbers in sorted(at.items(), key=lambda kv: kv[1][0]):
        ns = iface_ns(node, scene.ifaces.get(node, {}))
        if node in scene.ifaces and node in scene.pos:
            p = scene.pos[node]
        elif ns in scene.boxes:
            box = scene.boxes[ns]
            p = (box.x, box.y - 0.25 * box.h)
        else:
            continue
        box = scene.boxes.get(ns)
        normal = box.normal(*p) if box and node in scene.pos else (0.0, -1.0)
        spots, u = labels.hop_row(p, len(numbers), d, normal, rects, points)
        for n, spot in zip(numbers, spots, strict=True):
            places[n] = (round(spot[0], 6), round(spot[1], 6))
            away[n] = u
        rects.append(labels.spots_rect(spots, d / 2))
    return places, away


def _hop(kind: str) -> style.Hop:
    """How a hop of ``kind`` (request, reply) is drawn; an unknown kind in ink."""
    return style.HOPS.get(kind, style.Hop(style.INK, "D", "white", "-"))


def draw_hops(scene: Scene) -> None:
    """Number the trace's hops (``scene.trace``, a :class:`labkit.trace.Trace`;
    nothing when None) on the interfaces that saw them, up to
    ``scene.upto``, join them with arrows, and note where NAT changed an
    address.

    Examples
    --------
    >>> import networkx as nx
    >>> from matplotlib.figure import Figure
    >>> from labkit.trace import Sighting, Trace
    >>> g = nx.Graph()
    >>> g.add_node("ns:red", kind="netns", name="red")
    >>> t = Trace("red", "10.0.0.9", [
    ...     Sighting(0.0, "red", "eth0", "out", "10.0.0.1", "10.0.0.9", "request"),
    ...     Sighting(0.1, "red", "eth0", "in", "10.0.0.9", "10.0.0.2", "reply")])
    >>> scene = Scene(g, Figure().add_subplot(), trace=t)
    >>> scene.set_view(None)
    >>> draw_hops(scene)
    >>> [(x.get_text(), x.get_gid()) for x in scene.ax.texts]
    [('1', 'hop:1'), ('2', 'hop:2')]
    """
    t = scene.trace
    if t is None:
        return
    ax = scene.ax
    rects, points = labels.free_space(
        ax,
        scene.pos,
        [*scene.veths, *scene.ports],
        scene.ifaces,  # bridges are the patches with an interface's gid
        scene.pt(scene.size(style.DOT)) / scene.ppu,
    )
    d = scene.pt(style.HOP_SIZE) / scene.ppu  # a number's circle, in data units
    places, away = _hop_places(scene, d, rects, points)
    sightings = list(t.sightings)
    last = len(sightings) if scene.upto is None else scene.upto
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
        ax.add_patch(
            FancyArrowPatch(
                scene.pos.get(f"if:{b.where}", places[m]),
                scene.pos.get(f"if:{s.where}", places[n]),
                arrowstyle="-|>",
                mutation_scale=scene.pt(style.HOP_ARROW_HEAD),
                connectionstyle="arc3,rad=0.12",
                shrinkA=scene.pt(style.HOP_ARROW_SHRINK),
                shrinkB=scene.pt(style.HOP_ARROW_SHRINK),
                color=_hop(s.kind).colour,
                lw=scene.pt(style.HOP_ARROW_WIDTH),
                linestyle=_hop(s.kind).arrow,
                alpha=0.5,
                zorder=2.6,
                gid=f"hop-arrow:{m}-{n}",
            )
        )
    for n, s in shown:
        x, y = places[n]
        current = scene.upto is not None and n == last
        look = _hop(s.kind)
        ax.plot(
            x,
            y,
            marker=look.marker,
            ms=d * scene.ppu * (style.CURRENT_HOP_GROW if current else 1.0),
            mfc=look.colour,
            mec=style.CURRENT_HOP if current else "white",
            mew=scene.pt(style.CURRENT_HOP_EDGE if current else style.HOP_EDGE),
            ls="",
            zorder=10.5,
            gid=f"hop-mark:{n}",
        )
        ax.text(
            x,
            y,
            str(n),
            ha="center",
            va="center_baseline",
            fontsize=scene.pt(style.HOP_FONT) * (style.CURRENT_HOP_FONT_GROW if current else 1.0),
            fontweight="bold",
            color=look.number,
            zorder=11,
            gid=f"hop:{n}",
        )
    _nat_labels(scene, shown, places, away, d, rects, points)


def _nat_labels(
    scene: Scene,
    shown: list[tuple[int, Any]],
    places: dict[int, Point],
    away: dict[int, Point],
    d: float,
    rects: list[Rect],
    points: list[Point],
) -> None:
    """A label beside each hop where an address differs from the hop
    before of the same packet: ``src → NEW`` or ``dst → NEW``."""
    measure = labels.Measure(scene.ax)
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
        colour = _hop(s.kind).colour
        x, y = places[n]
        label = scene.ax.text(
            x,
            y,
            "\n".join(lines),
            ha="center",
            va="center",
            fontsize=scene.pt(style.NAT_FONT),
            fontweight="bold",
            color=colour,
            zorder=10.8,
            gid=f"nat:{n}",
            linespacing=1.1,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "lw": scene.lw(0.8)},
        )
        x0, y0, x1, y1 = measure.rect(label)
        w, h = x1 - x0 + 0.12, y1 - y0 + 0.12  # with the frame
        cx, cy = labels.label_spot((x, y), w, h, d, away[n], rects, points)
        label.set_position((round(cx, 6), round(cy, 6)))
        rects.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
