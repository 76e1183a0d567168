"""Cables, interfaces and bridges, and the labels at the cable ends.

A veth cable is a line between its two interface points (solid when both
ends are up, dashed otherwise; a loop outside the box when both ends are in
one namespace); a bridge port is a thinner line to its bridge, a switch
shape inside its box. When dense, hundreds of cables and points are drawn
as a few collections (gid ``veths:up``, ``ports:down``, ``ifaces:up``, ...).

Examples
--------
>>> import networkx as nx
>>> from matplotlib.figure import Figure
>>> from labkit.draw.cables import draw_cables
>>> from labkit.draw.scene import Scene
>>> g = nx.Graph()
>>> g.add_node("if:red/a", kind="iface", ns="red", name="a", type="veth")
>>> g.add_node("if:blue/b", kind="iface", ns="blue", name="b", type="veth", up=False)
>>> g.add_edge("if:red/a", "if:blue/b", kind="veth")
>>> scene = Scene(g, Figure().add_subplot())
>>> draw_cables(scene)
>>> [(line.get_gid(), line.get_linestyle()) for line in scene.ax.lines]
[('veth:if:blue/b|if:red/a', '--')]
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.collections import LineCollection
from matplotlib.patches import FancyBboxPatch, PathPatch
from matplotlib.path import Path

from labkit.core.model import HOST
from labkit.draw import style
from labkit.draw.graph import is_up, natural
from labkit.draw.layout import WORLD, Box, Point
from labkit.draw.scene import Scene
from labkit.draw.shapes import colours

__all__ = ["draw_cables", "draw_interfaces"]

_LINE = 1.1  # line spacing of a cable end's label


def draw_cables(scene: Scene) -> None:
    """The veth cables and the bridge ports.

    Examples
    --------
    >>> import networkx as nx
    >>> from matplotlib.figure import Figure
    >>> g = nx.Graph()
    >>> g.add_node("if:host/br0", kind="iface", ns="host", name="br0", type="bridge")
    >>> g.add_node("if:host/p", kind="iface", ns="host", name="p", type="veth")
    >>> g.add_edge("if:host/p", "if:host/br0", kind="port")
    >>> scene = Scene(g, Figure().add_subplot())
    >>> draw_cables(scene)
    >>> [line.get_gid() for line in scene.ax.lines]
    ['port:if:host/p|if:host/br0']
    """
    ax = scene.ax
    # Dense: hundreds of lines, drawn as one collection per kind and state
    # (gid ``veths:up``, ``ports:down``, ...), which is much faster.
    batch: dict[tuple[str, bool], list[list[Point]]] = {}
    for u, v in scene.veths:
        up = is_up(scene.ifaces[u]) and is_up(scene.ifaces[v])
        nu, nv = scene.ns_of(u), scene.ns_of(v)
        ns = nu if nu in WORLD else nv
        look = {
            "color": style.CABLE,
            "lw": scene.lw(scene.size(style.CABLE_WIDTH, ns)),
            "ls": "-" if up else style.DASH,
            "zorder": 2,
            "alpha": scene.size(style.CABLE_ALPHA, ns),
        }
        (x1, y1), (x2, y2) = scene.pos[u], scene.pos[v]
        if nu == nv:  # both ends in one namespace: a loop outside its box
            _loop(scene, scene.boxes[nu], (x1, y1), (x2, y2), look, f"veth:{u}|{v}")
            continue
        if scene.dens(ns) == "dense":
            batch.setdefault(("veths", up), []).append([(x1, y1), (x2, y2)])
            continue
        ax.plot([x1, x2], [y1, y2], solid_capstyle="round", gid=f"veth:{u}|{v}", **look)
    for u, v in scene.ports:
        port, bridge = (u, v) if scene.ifaces[v].get("type") == "bridge" else (v, u)
        up = is_up(scene.ifaces[port]) and is_up(scene.ifaces[bridge])
        (x1, y1), (x2, y2) = scene.pos[port], scene.pos[bridge]
        ns = scene.ns_of(port)
        if scene.dens(ns) == "dense":
            batch.setdefault(("ports", up), []).append([(x1, y1), (x2, y2)])
            continue
        ax.plot(
            [x1, x2],
            [y1, y2],
            color=style.PORT,
            lw=scene.lw(scene.size(style.PORT_WIDTH, ns)),
            ls="-" if up else style.DASH,
            zorder=1.5,
            alpha=scene.size(style.PORT_ALPHA, ns),
            gid=f"port:{port}|{bridge}",
        )
    for (kind, up), segments in sorted(batch.items()):
        cable = kind == "veths"
        ax.add_collection(
            LineCollection(
                segments,
                colors=style.CABLE if cable else style.PORT,
                linewidths=scene.lw((style.CABLE_WIDTH if cable else style.PORT_WIDTH).at("dense")),
                linestyles="-" if up else style.DASH,
                alpha=(style.CABLE_ALPHA if cable else style.PORT_ALPHA).at("dense"),
                zorder=2 if cable else 1.5,
                capstyle="round",
                gid=f"{kind}:{'up' if up else 'down'}",
            ),
            autolim=False,
        )


def _loop(scene: Scene, box: Box, a: Point, b: Point, look: dict[str, Any], gid: str) -> None:
    """A cable with both ends on one box: a curve bulging out of its side."""
    nx_, ny_ = box.normal((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    bulge = 0.35 + 0.5 * math.dist(a, b)
    mid = ((a[0] + b[0]) / 2 + nx_ * bulge, (a[1] + b[1]) / 2 + ny_ * bulge)
    path = Path([a, mid, b], [Path.MOVETO, Path.CURVE3, Path.CURVE3])
    scene.ax.add_patch(
        PathPatch(
            path,
            fill=False,
            edgecolor=look["color"],
            lw=look["lw"],
            ls=look["ls"],
            zorder=look["zorder"],
            alpha=look["alpha"],
            gid=gid,
        )
    )


def draw_interfaces(scene: Scene) -> None:
    """Every interface: a point on its box (filled when up), labelled when
    the picture is not crowded; bridges as switches.

    Examples
    --------
    >>> import networkx as nx
    >>> from matplotlib.figure import Figure
    >>> g = nx.Graph()
    >>> g.add_node("if:red/eth0", kind="iface", ns="red", name="eth0", type="veth",
    ...            addrs=["10.0.0.1/24"])
    >>> scene = Scene(g, Figure().add_subplot())
    >>> scene.set_view(None)
    >>> draw_interfaces(scene)
    >>> [line.get_gid() for line in scene.ax.lines], [t.get_text() for t in scene.ax.texts]
    (['if:red/eth0'], ['eth0\\n10.0.0.1/24'])
    """
    ends: dict[str, list[str]] = {}
    for u, v in scene.veths:
        ends.setdefault(u, []).append(v)
        ends.setdefault(v, []).append(u)
    batch: dict[bool, list[Point]] = {}  # dense: one mark per state (gid ifaces:up)
    for node in sorted(scene.ifaces, key=natural):
        d = scene.ifaces[node]
        ns = scene.ns_of(node)
        if d.get("type") == "bridge":
            _bridge(scene, node, d, scene.pos[node], ns)
            continue
        far = ends.get(node, [None])[0]
        far_ns = scene.ns_of(far) if far else None
        # the world, and the host's end of the cable to it, are always in full
        world = ns if ns in WORLD else far_ns
        x, y = scene.pos[node]
        up = is_up(d)
        if scene.dens(world) == "dense":
            batch.setdefault(up, []).append((x, y))
            continue
        scene.ax.plot(
            x,
            y,
            marker="o",
            ms=scene.pt(scene.size(style.DOT, world)),
            mfc=style.CABLE if up else "white",
            mec=style.CABLE,
            mew=scene.lw(scene.size(style.DOT_EDGE, world)),
            ls="",
            zorder=8,
            gid=node,
        )
        if scene.dens(world) != "full":
            continue
        if far is None:
            _end_label(scene, scene.boxes[ns], (x, y), None, d)
        elif ns == HOST and far_ns != HOST and far_ns not in WORLD:
            _along_label(scene, (x, y), far, d)
        else:
            _end_label(scene, scene.boxes[ns], (x, y), scene.pos[far], d)
    for up, points in sorted(batch.items()):
        scene.ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker="o",
            ms=scene.pt(style.TILE_DOT),
            mfc=style.CABLE if up else "white",
            mec=style.CABLE,
            mew=scene.lw(style.TILE_DOT_EDGE),
            ls="",
            zorder=8,
            gid=f"ifaces:{'up' if up else 'down'}",
        )


def _anchor(box: Box, p: Point, other: Point | None) -> tuple[str, str, Point]:
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


def _end_label(scene: Scene, box: Box, p: Point, other: Point | None, d: dict[str, Any]) -> None:
    """Label a cable end beside its point, outside its box."""
    ha, va, (dx, dy) = _anchor(box, p, other)
    scene.ax.text(
        p[0] + dx,
        p[1] + dy,
        "\n".join(scene.iface_lines(d)),
        ha=ha,
        va=va,
        fontsize=scene.pt(style.END_FONT),
        color=style.INK,
        zorder=9,
        linespacing=_LINE,
    )


def _along_label(scene: Scene, p: Point, far: str, d: dict[str, Any]) -> None:
    """Label a host end along its cable, on the other side from the far end's label."""
    q = scene.pos[far]
    ha_far, va_far, _ = _anchor(scene.boxes[scene.ns_of(far)], q, p)
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
    scene.ax.text(
        p[0] + ux * step,
        p[1] + uy * step,
        "\n".join(scene.iface_lines(d)),
        ha=ha,
        va=va,
        rotation=angle,
        rotation_mode="anchor",
        fontsize=scene.pt(style.ALONG_FONT),
        color=style.INK,
        zorder=9,
        linespacing=_LINE,
    )


def _bridge(scene: Scene, node: str, d: dict[str, Any], p: Point, ns: str) -> None:
    """A bridge: a switch with its lights, its name on it, its addresses below."""
    x, y = p
    up = is_up(d)
    bw, bh = scene.size(style.BRIDGE, ns)
    scene.ax.add_patch(
        FancyBboxPatch(
            (x - bw / 2, y - bh / 2),
            bw,
            bh,
            boxstyle="round,pad=0.05",
            facecolor=style.BRIDGE_FACE if up else "white",
            edgecolor=style.BRIDGE_FACE,
            linewidth=scene.lw(style.BRIDGE_EDGE),
            linestyle="-" if up else "--",
            zorder=6,
            gid=node,
        )
    )
    n = style.BRIDGE_LIGHTS
    lights = [x - bw / 2 + bw * (i + 1) / (n + 1) for i in range(n)]
    scene.ax.plot(
        lights,
        [y - bh / 2 + 0.1] * n,
        ls="",
        marker="s",
        ms=scene.lw(style.BRIDGE_LIGHT_SIZE),
        color=style.BRIDGE_LIGHT if up else style.BRIDGE_FACE,
        zorder=7,
    )
    text, size = scene.fit(
        str(d.get("name", "")), bw * 0.95, style.BRIDGE_NAME_FONT, style.BRIDGE_NAME_SMALLEST
    )
    scene.ax.text(
        x,
        y + 0.06,
        text,
        ha="center",
        va="center",
        fontsize=size,
        fontweight="bold",
        color="white" if up else style.BRIDGE_FACE,
        zorder=7,
    )
    lines = scene.iface_lines(d)[1:]
    if lines:
        face, _ = colours(ns)
        scene.ax.text(
            x,
            y - bh / 2 - 0.1,
            "\n".join(lines),
            ha="center",
            va="top",
            fontsize=scene.pt(style.BRIDGE_ADDRESS_FONT),
            color=style.INK,
            zorder=7,
            linespacing=_LINE,
            bbox={"boxstyle": "round,pad=0.15", "fc": face, "ec": "none", "alpha": 0.85},
        )
