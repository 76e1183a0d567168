"""Small matplotlib helpers: the internet's cloud, box colours, a figure's root.

Examples
--------
>>> from labkit.draw.layout import Box
>>> from labkit.draw.shapes import cloud
>>> len(cloud(Box(14.3, 12.3, 3.2, 1.9)).vertices)
31
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.path import Path

from labkit.core.model import HOST
from labkit.draw import style
from labkit.draw.layout import Box, Point

__all__ = ["cloud", "colours", "root_figure"]

_BUMPS = 10  # bumps round the cloud
_BULGE = (0.36, 0.46, 0.4, 0.5, 0.38)  # how far each bump bulges (a fraction of its chord)


def cloud(box: Box) -> Path:
    """A cloud around ``box``: bumps on an ellipse, one dent at the middle of
    the left side (where the cable to the router arrives).

    Examples
    --------
    >>> from labkit.draw.layout import Box
    >>> ext = cloud(Box(0.0, 0.0, 4.0, 2.0)).get_extents()
    >>> bool(ext.x0 < -2.0 < 2.0 < ext.x1)
    True
    """
    n = _BUMPS
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
        bump = _BULGE[k % 5] * chord * 4 / 3
        ox, oy = (y1 - y0) / chord, -(x1 - x0) / chord  # outward: the dents go counter-clockwise
        verts += [(x0 + ox * bump, y0 + oy * bump), (x1 + ox * bump, y1 + oy * bump), (x1, y1)]
        codes += [Path.CURVE4] * 3
    return Path(verts, codes)


def root_figure(ax: Axes) -> Figure:
    """The top-level Figure holding ``ax`` (also through subfigures).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure()
    >>> root_figure(fig.subfigures(1, 2)[1].add_subplot()) is fig
    True
    """
    fig: Any = ax.figure
    while not isinstance(fig, Figure):
        fig = fig.figure
    return fig


def colours(name: str) -> tuple[str, str]:
    """Face and edge colour of a namespace's box; a colour's name tints it.

    Examples
    --------
    >>> colours("host"), colours("red"), colours("ns10")
    (('#eceff1', '#78909c'), ('#ffbfbf', '#cc0000'), ('#f1efe2', '#7d7a5c'))
    """
    if name == HOST:
        return style.HOST_FACE, style.HOST_EDGE
    if name in style.WORLD_COLOURS:
        return style.WORLD_COLOURS[name]
    key = name.lower()
    if key in mcolors.CSS4_COLORS and key not in {"white", "snow", "ivory"}:
        r, g, b = mcolors.to_rgb(key)
        face = (1 - 0.25 * (1 - r), 1 - 0.25 * (1 - g), 1 - 0.25 * (1 - b))
        edge = (0.8 * r, 0.8 * g, 0.8 * b)
        return mcolors.to_hex(face), mcolors.to_hex(edge)
    return style.OTHER_FACE, style.OTHER_EDGE
