"""Text that fits, and places for labels that cover as little as they can.

:func:`fit_text` and :func:`fit_lines` shrink and shorten text to a width.
For a packet trace, :func:`free_space` collects what is already drawn (as
rectangles and points along the cables, in data units); :func:`hop_row`
and :func:`label_spot` search around a point for the place that covers
the least of it (:func:`cost`).

Examples
--------
>>> from labkit.draw.labels import fit_text
>>> fit_text("veth-red-br", 1.0, 8.0, 5.0, ppu=34.0)
('veth-red-…', 5.0)
"""

from __future__ import annotations

import math
from collections.abc import Container
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import RendererAgg

from labkit.draw.layout import Point, Rect
from labkit.draw.shapes import root_figure
from labkit.draw.style import CHAR_WIDTH

__all__ = [
    "Measure",
    "cost",
    "fit_lines",
    "fit_text",
    "free_space",
    "hop_row",
    "label_spot",
    "near",
    "spots_rect",
]

_CABLE_STEP = 0.08  # points along a cable, this far apart
_HOP_RINGS = (0, 1, 2)  # a hop row's distances from its point, tried nearest first
_HOP_ANGLES = 24  # directions tried round a point (every 15 degrees)
_LABEL_RINGS = (0, 1)
_LABEL_ANGLES = 16  # every 22.5 degrees
_RING_COST = 0.3  # a farther ring costs this much more


def fit_text(
    text: str, width: float, fontsize: float, smallest: float, ppu: float
) -> tuple[str, float]:
    """Shrink (not below ``smallest``), then shorten ``text`` to fit ``width``
    data units, ``ppu`` points each; sizes in points.

    Examples
    --------
    >>> fit_text("red", 3.0, 11.0, 8.0, ppu=34.0)
    ('red', 11.0)
    >>> fit_text("a-long-name", 0.5, 11.0, 8.0, ppu=34.0)
    ('a-…', 8.0)
    """
    room = width * ppu / CHAR_WIDTH  # in font sizes x characters
    size = min(fontsize, max(smallest, room / max(len(text), 1)))
    keep = max(2, int(room / size + 1e-6))
    if len(text) > keep:
        text = text[: keep - 1] + "\u2026"
    return text, size


def fit_lines(
    lines: list[str], width: float, fontsize: float, smallest: float, ppu: float
) -> tuple[list[str], float]:
    """:func:`fit_text` for several lines: one size for all, long lines shortened.

    Examples
    --------
    >>> fit_lines(["forwarding", "default via 192.168.1.1"], 1.5, 7.0, 4.5, ppu=34.0)
    (['forwarding', 'default via 192.1…'], 4.5)
    """
    _, size = fit_text(max(lines, key=len), width, fontsize, smallest, ppu)
    keep = max(2, int(width * ppu / CHAR_WIDTH / size + 1e-6))
    return [t if len(t) <= keep else t[: keep - 1] + "\u2026" for t in lines], size


class Measure:
    """Where drawn artists are, in data units, as :class:`matplotlib.axes.Axes`
    ``ax`` draws them now (its limits and aspect applied).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().add_subplot()
    >>> ax.set_xlim(0, 10); ax.set_ylim(0, 10)
    (0.0, 10.0)
    (0.0, 10.0)
    >>> x0, y0, x1, y1 = Measure(ax).rect(ax.text(5, 5, "hello"))
    >>> bool(4.9 < x0 < 5.1 < x1 < 7 and 4.9 < y0 < 5.1 < y1 < 6)
    True
    """

    def __init__(self, ax: Axes) -> None:
        fig = root_figure(ax)
        self.renderer = RendererAgg(fig.bbox.width, fig.bbox.height, fig.dpi)
        self.to_data = ax.transData.inverted()

    def rect(self, artist: Any) -> Rect:
        """The rectangle an artist covers."""
        extent = artist.get_window_extent(self.renderer)
        (x0, y0), (x1, y1) = self.to_data.transform(
            [(extent.x0, extent.y0), (extent.x1, extent.y1)]
        )
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def free_space(
    ax: Axes,
    pos: dict[str, Point],
    cables: list[tuple[str, str]],
    bridges: Container[str],
    dot: float,
) -> tuple[list[Rect], list[Point]]:
    """What a hop number or a NAT label should not cover, in data units:
    the rectangles of the texts drawn so far, of the patches whose gid is
    in ``bridges`` and of every point in ``pos`` (``dot`` either side), and
    points along every cable (a pair of nodes in ``pos``).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().add_subplot()
    >>> ax.set_xlim(0, 10); ax.set_ylim(0, 10)
    (0.0, 10.0)
    (0.0, 10.0)
    >>> rects, points = free_space(ax, {"a": (1.0, 1.0), "b": (1.0, 2.0)}, [("a", "b")], (), 0.1)
    >>> rects[0], len(points)
    ((0.9, 0.9, 1.1, 1.1), 13)
    """
    ax.apply_aspect()  # the limits as they will be drawn
    measure = Measure(ax)
    rects = [measure.rect(t) for t in ax.texts if t.get_text()]
    rects += [measure.rect(p) for p in ax.patches if str(p.get_gid()) in bridges]
    rects += [(x - dot, y - dot, x + dot, y + dot) for x, y in pos.values()]
    points: list[Point] = []
    for u, v in cables:
        (x1, y1), (x2, y2) = pos[u], pos[v]
        n = max(2, int(math.dist((x1, y1), (x2, y2)) / _CABLE_STEP))
        points += [(x1 + (x2 - x1) * i / n, y1 + (y2 - y1) * i / n) for i in range(n + 1)]
    return rects, points


def cost(r: Rect, rects: list[Rect], points: list[Point]) -> float:
    """How much of ``r`` is covered (by area, relative to ``r``) and how
    many cable points it covers.

    Examples
    --------
    >>> cost((0, 0, 2, 2), [(1, 1, 3, 3)], [(0.5, 0.5), (5, 5)])
    0.8
    """
    area = max((r[2] - r[0]) * (r[3] - r[1]), 1e-9)
    covered = 0.0
    for o in rects:
        w = min(r[2], o[2]) - max(r[0], o[0])
        h = min(r[3], o[3]) - max(r[1], o[1])
        if w > 0 and h > 0:
            covered += w * h
    crossed = sum(1 for x, y in points if r[0] <= x <= r[2] and r[1] <= y <= r[3])
    return 3 * covered / area + 0.05 * crossed


def near(
    p: Point, reach: float, rects: list[Rect], points: list[Point]
) -> tuple[list[Rect], list[Point]]:
    """The rectangles and points within ``reach`` of ``p`` (on each axis):
    all that a place near ``p`` can cover (hundreds of namespaces stay fast).

    Examples
    --------
    >>> near((0.0, 0.0), 1.0, [(0.5, 0.5, 2, 2), (3, 3, 4, 4)], [(0.2, 0.2), (2, 2)])
    ([(0.5, 0.5, 2, 2)], [(0.2, 0.2)])
    """
    x0, y0, x1, y1 = p[0] - reach, p[1] - reach, p[0] + reach, p[1] + reach
    return (
        [r for r in rects if r[0] < x1 and r[2] > x0 and r[1] < y1 and r[3] > y0],
        [q for q in points if x0 <= q[0] <= x1 and y0 <= q[1] <= y1],
    )


def spots_rect(spots: list[Point], half: float) -> Rect:
    """The rectangle covering squares of side ``2 * half`` centred on ``spots``.

    Examples
    --------
    >>> spots_rect([(0.0, 0.0), (1.0, 0.0)], 0.5)
    (-0.5, -0.5, 1.5, 0.5)
    """
    return (
        min(x for x, _ in spots) - half,
        min(y for _, y in spots) - half,
        max(x for x, _ in spots) + half,
        max(y for _, y in spots) + half,
    )


def hop_row(
    p: Point, k: int, d: float, normal: Point, rects: list[Rect], points: list[Point]
) -> tuple[list[Point], Point]:
    """Where ``k`` circles of diameter ``d`` go around the point ``p``, side
    by side, where they cover the least (preferring the side away from
    ``normal``, into the box): their centres, and their direction from ``p``.

    Examples
    --------
    >>> spots, u = hop_row((0.0, 0.0), 2, 0.3, (0.0, -1.0), [], [])
    >>> [(round(x, 3), round(y, 3)) for x, y in spots], [round(c, 3) for c in u]
    ([(-0.15, 0.255), (0.15, 0.255)], [0.0, 1.0])
    """
    reach = near(p, (3 + k) * d, rects, points)
    best: tuple[float, list[Point], Point] | None = None
    for ring in _HOP_RINGS:
        r = (0.85 + 0.55 * ring) * d
        for step in range(_HOP_ANGLES):
            a = math.radians(360 / _HOP_ANGLES * step)
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
            inward = -(u[0] * normal[0] + u[1] * normal[1])
            c = cost(spots_rect(spots, d / 2), *reach) + _RING_COST * ring - 0.01 * inward
            if best is None or c < best[0] - 1e-9:
                best = (c, spots, u)
    assert best is not None
    return best[1], best[2]


def label_spot(
    p: Point, w: float, h: float, d: float, away: Point, rects: list[Rect], points: list[Point]
) -> Point:
    """The centre of a ``w`` x ``h`` label beside a circle of diameter ``d``
    at ``p``, just beyond it, where it covers the least (preferring the
    direction ``away``).

    Examples
    --------
    >>> [round(c, 3) for c in label_spot((0.0, 0.0), 1.0, 0.4, 0.3, (1.0, 0.0), [], [])]
    [0.68, 0.0]
    """
    x, y = p
    ux, uy = away
    reach = near(p, w + h + 3 * d, rects, points)
    best: tuple[float, Point] | None = None
    for ring in _LABEL_RINGS:
        for step in range(_LABEL_ANGLES):
            a = math.radians(360 / _LABEL_ANGLES * step)
            vx, vy = math.cos(a), math.sin(a)
            # the label's centre, so that its edge is just beyond the number
            gap = d * (0.6 + 0.8 * ring)
            t = min(
                (w / 2 + gap) / abs(vx) if abs(vx) > 1e-9 else math.inf,
                (h / 2 + gap) / abs(vy) if abs(vy) > 1e-9 else math.inf,
            )
            cx, cy = x + vx * t, y + vy * t
            r = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            c = cost(r, *reach) - 0.05 * (vx * ux + vy * uy) + _RING_COST * ring
            if best is None or c < best[0] - 1e-9:
                best = (c, (cx, cy))
    assert best is not None
    return best[1]
