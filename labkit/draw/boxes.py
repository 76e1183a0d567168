"""Namespaces: their boxes (the internet a cloud), names and notes.

The host and the router write their name at the top left of their box
with their notes below it (the host's firewall rules on a panel); other
boxes centre their name, with their notes (or, medium, their addresses)
below it. Dense tiles are unnamed: :func:`draw_row_labels` names each row
at both ends.

Examples
--------
>>> import networkx as nx
>>> from matplotlib.figure import Figure
>>> from labkit.draw.boxes import draw_namespaces
>>> from labkit.draw.scene import Scene
>>> g = nx.Graph()
>>> g.add_node("ns:red", kind="netns", name="red", forwarding=True)
>>> scene = Scene(g, Figure().add_subplot())
>>> scene.set_view(None)
>>> draw_namespaces(scene)
>>> [t.get_text() for t in scene.ax.texts]
['red', 'forwarding']
"""

from __future__ import annotations

from matplotlib.patches import FancyBboxPatch, PathPatch

from labkit.core.model import HOST
from labkit.draw import style
from labkit.draw.graph import natural
from labkit.draw.layout import CLOUD, FIXED, TITLED, WORLD, Box
from labkit.draw.scene import Scene
from labkit.draw.shapes import cloud, colours

__all__ = ["draw_namespaces", "draw_row_labels"]

_CORNER = 0.1  # a box's rounded corner, a fraction of its smaller side
_NAME_LINE, _NOTE_LINE = 1.3, 1.35  # line heights, in font sizes


def draw_namespaces(scene: Scene) -> None:
    """Every namespace's box, name and notes.

    Examples
    --------
    >>> import networkx as nx
    >>> from matplotlib.figure import Figure
    >>> g = nx.Graph()
    >>> g.add_node("ns:internet", kind="netns", name="internet")
    >>> scene = Scene(g, Figure().add_subplot())
    >>> scene.set_view(None)
    >>> draw_namespaces(scene)
    >>> [(type(p).__name__, p.get_gid()) for p in scene.ax.patches]
    [('PathPatch', 'ns:internet')]
    """
    ax = scene.ax
    has_bridge = {scene.ns_of(n) for n, d in scene.ifaces.items() if d.get("type") == "bridge"}
    addrs: dict[str, list[str]] = {}
    for node, d in sorted(scene.ifaces.items(), key=lambda kv: natural(kv[0])):
        if d.get("type") != "bridge":
            addrs.setdefault(scene.ns_of(node), []).extend(d.get("addrs") or [])
    for name in scene.names:
        box = scene.boxes[name]
        face, edge = colours(name)
        behind = name in TITLED or name in WORLD or name in has_bridge
        if name == CLOUD:
            ax.add_patch(
                PathPatch(
                    cloud(box),
                    facecolor=face,
                    edgecolor=edge,
                    linewidth=scene.lw(style.CLOUD_EDGE),
                    zorder=1,
                    gid=f"ns:{name}",
                )
            )
        else:
            pad = min(box.w, box.h) * _CORNER
            ax.add_patch(
                FancyBboxPatch(
                    (box.x - box.w / 2 + pad, box.y - box.h / 2 + pad),
                    box.w - 2 * pad,
                    box.h - 2 * pad,
                    gid=f"ns:{name}",
                    boxstyle=f"round,pad={pad}",
                    facecolor=face,
                    edgecolor=edge,
                    linewidth=scene.lw(
                        style.BEHIND_EDGE if behind else scene.size(style.BOX_EDGE, name)
                    ),
                    zorder=1 if behind else 3,
                )
            )
        if name in TITLED:
            _titled(scene, name, box, edge)
            continue
        if scene.density == "dense" and name not in FIXED and name not in WORLD:
            continue  # a tile: its row's labels name it
        fixed = name in FIXED or name in WORLD
        size = style.FIXED_NAME_FONT if fixed else scene.size(style.NAME_FONT)
        smallest = scene.size(style.NAME_SMALLEST, name)
        text, size = scene.fit(name, box.w * (0.7 if name == CLOUD else 0.9), size, smallest)
        lines, small = scene.notes.get(name, []), style.NOTE_FONT
        if name in has_bridge:
            lines = []
        elif not lines and scene.density == "medium" and scene.show_addresses:
            lines, small = addrs.get(name, [])[:2], style.ADDRESS_FONT
        if lines:
            width = box.w * (0.75 if name == CLOUD else 0.94)
            fitted, small = scene.fit_lines(lines, width, small, style.NOTE_SMALLEST)
            if fitted != lines and len(lines) <= 2 and "/" in lines[0]:
                # addresses too wide for the box: their host part only
                fitted = ["." + a.split("/")[0].rsplit(".", 1)[-1] for a in lines]
            lines = fitted
        name_h = _NAME_LINE * size / scene.ppu
        line_h = _NOTE_LINE * small / scene.ppu
        top = box.y + (name_h + line_h * len(lines)) / 2
        if name in has_bridge:
            top = box.y + 0.22 * box.h + name_h / 2
        ax.text(
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
            ax.text(
                box.x,
                top - name_h,
                "\n".join(lines),
                ha="center",
                va="top",
                fontsize=small,
                color=style.NOTE,
                zorder=5,
                linespacing=1.15,
            )


def draw_row_labels(scene: Scene) -> None:
    """Dense rows: the first name on the left of each row, the last on the right.

    Examples
    --------
    >>> import networkx as nx
    >>> from matplotlib.figure import Figure
    >>> g = nx.Graph()
    >>> for i in range(10, 140):
    ...     g.add_node(f"ns:ns{i}", kind="netns", name=f"ns{i}")
    >>> scene = Scene(g, Figure().add_subplot())
    >>> scene.set_view(None)
    >>> draw_row_labels(scene)
    >>> [t.get_text() for t in scene.ax.texts][:4]
    ['ns10', 'ns26', 'ns27', 'ns43']
    """
    if scene.density != "dense":
        return
    rows: dict[float, list[str]] = {}
    for name, box in scene.boxes.items():
        if name != HOST and name not in WORLD and name not in FIXED:
            rows.setdefault(box.y, []).append(name)
    if not rows:
        return
    ys = sorted(rows, reverse=True)
    pitch = min([a - b for a, b in zip(ys, ys[1:], strict=False)] or [1.0])
    size = min(scene.pt(style.ROW_FONT), max(style.ROW_SMALLEST, 0.8 * pitch * scene.ppu))
    for y in ys:
        row = sorted(rows[y], key=lambda n: scene.boxes[n].x)
        first, last = scene.boxes[row[0]], scene.boxes[row[-1]]
        ends = [(row[0], first.x - first.w / 2 - 0.08, "right")]
        if len(row) > 1:
            ends.append((row[-1], last.x + last.w / 2 + 0.08, "left"))
        for name, x, ha in ends:
            scene.ax.text(
                x,
                y,
                name,
                ha=ha,
                va="center",
                fontsize=size,
                color=style.OTHER_EDGE,
                fontweight="bold",
                zorder=5,
                gid=f"row:{name}",
            )


def _titled(scene: Scene, name: str, box: Box, edge: str) -> None:
    """The name at the top left of a large box, its notes below it, and
    the host's firewall rules below them, on a panel."""
    left, top = box.x - box.w / 2, box.y + box.h / 2
    colour = style.HOST_TITLE if name == HOST else edge
    scene.ax.text(
        left + 0.2,
        top - 0.15,
        name,
        ha="left",
        va="top",
        fontsize=scene.pt(style.TITLED_NAME_FONT),
        fontweight="bold",
        color=colour,
        zorder=5,
    )
    y = top - 0.15 - 1.45 * scene.pt(style.TITLED_NAME_FONT) / scene.ppu
    blocks = [
        (scene.notes.get(name, []), style.TITLED_NOTE_FONT, False),
        (scene.rules, style.RULES_FONT, True),
    ]
    for lines, size, panel in blocks:
        if not lines or (panel and name != HOST):
            continue
        x = left + (0.4 if panel else 0.25)
        lines, size = scene.fit_lines(lines, left + box.w - 0.3 - x, size, style.TITLED_SMALLEST)
        text = scene.ax.text(
            x,
            y - (0.08 if panel else 0.0),
            "\n".join(lines),
            ha="left",
            va="top",
            fontsize=size,
            color=style.NOTE,
            zorder=5,
            linespacing=1.25,
        )
        if panel:
            text.set_bbox(
                {
                    "boxstyle": "round,pad=0.35",
                    "fc": "white",
                    "ec": edge,
                    "lw": scene.lw(0.6),
                    "alpha": 0.8,
                }
            )
        y -= len(lines) * 1.25 * 1.17 * size / scene.ppu + 0.06
