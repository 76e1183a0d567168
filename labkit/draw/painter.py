"""Draw the graph of a sandbox with matplotlib: :func:`draw`, :func:`save`.

The picture follows the course, drawn as a home network. The host
namespace is a large grey box in the middle, with its bridges (switch
shapes) inside. Above it is the outside world every sandbox has (see
:mod:`labkit.core.stages`): the home ``router`` with its LAN switch ``br-lan``
inside, the ``lan-pc`` beside it on the LAN side and the ``internet`` (a
cloud) on the WAN side. Below the host, ``red`` is always on the left and
``blue`` on the right; every other namespace sits in rows below (``ns10``,
``ns11``, ... in natural order, other names after them). Every one of these
places is fixed (:mod:`labkit.draw.layout`), so nothing moves from stage to
stage. An interface is a point on its namespace's box, on the side facing
the other end of its cable; loopback interfaces are left out.

How much is written depends on how many lab namespaces there are (the
world's three do not count): up to :data:`~labkit.draw.layout.MEDIUM_ABOVE`,
every cable end is labelled with its interface's name and addresses; up to
:data:`~labkit.draw.layout.COMPACT_ABOVE`, the boxes are smaller and show
their addresses inside; up to :data:`~labkit.draw.layout.DENSE_ABOVE`,
boxes are compact and show only their (shortened) names; above that
(hundreds of namespaces), they are small unnamed tiles in rows, each row
labelled with its first and last name (``ns10`` on the left, ``ns41`` on
the right), and the host's ends of their cables sit along the bottom of
the host only. The world, and the host's cable to it, are always labelled
in full.

Small notes inside a box say what a namespace does besides its links
(:mod:`labkit.draw.notes`): ``forwarding`` when it forwards IPv4, the
labkit web apps listening there (``web :80``), its routes through a
gateway (``default via 192.168.1.1``) and, in the host, its NAT rules
with their packet counters (``PREROUTING DNAT 192.168.1.2:80 →
192.168.15.2:80 [2 pkts]``); the router's NAT rule is a short ``NAT:``
note. A rule labkit did not make (one added by hand) starts with ``*``.
The host and the world always have notes; lab namespaces have them up to
:data:`~labkit.draw.layout.MEDIUM_ABOVE`.

Examples
--------
>>> import networkx as nx
>>> from labkit.draw.painter import draw
>>> g = nx.Graph()
>>> g.add_node("ns:host", kind="netns", name="host")
>>> draw(g)
<LabkitFigure size 900x700 with 1 Axes>
>>> print(draw(g).labkit_alt)
Network diagram: the host.
host: no interface but loopback.
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import networkx as nx
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from labkit.core.model import HOST
from labkit.draw import style
from labkit.draw.boxes import draw_namespaces, draw_row_labels
from labkit.draw.cables import draw_cables, draw_interfaces
from labkit.draw.describe import describe, trace_title
from labkit.draw.figure import LabkitFigure
from labkit.draw.layout import Point
from labkit.draw.overlays import draw_changes, draw_hops
from labkit.draw.scene import Scene
from labkit.draw.shapes import root_figure

__all__ = ["draw", "draw_legend", "legend_keys", "save", "trace_steps"]


#: A text mark as a legend marker (mathtext).
_GLYPH = {"+": "$+$", "~": r"$\sim$", "\u2212": "$-$", "*": r"$\ast$", "\u2192": r"$\rightarrow$"}


def legend_keys(scene: Scene) -> list[str]:
    """The names of the :data:`~labkit.draw.style.LEGEND` entries drawn for ``scene``.

    Examples
    --------
    >>> import networkx as nx
    >>> from matplotlib.figure import Figure
    >>> legend_keys(Scene(nx.Graph(), Figure().add_subplot()))[:3]
    ['cable', 'cable-down', 'port']
    """
    keys = ["cable", "cable-down", "port", "iface", "iface-down", "bridge", "bridge-down"]
    if scene.by_hand:
        keys.append("by-hand")
    if scene.changes is not None:
        keys += ["added", "removed", "changed"]
    if scene.trace is not None:
        keys += ["request", "reply", "nat"]
        if scene.upto:
            keys.append("current")
    return keys


def _legend_pt(scene: Scene, size: float) -> float:
    """A size in the legend: scaled up to :data:`~labkit.draw.style.LEGEND_MAX_SCALE`
    only, so that a larger legend still fits left of the host."""
    return scene.pt(size) / scene.scale * min(scene.scale, style.LEGEND_MAX_SCALE)


def _handle(scene: Scene, key: style.Key) -> Artist | tuple[Artist, Artist]:
    """The legend's sample of one entry: its line, marker, fill and mark."""
    if key.marker == "s" and key.colour == style.BRIDGE_FACE:  # a switch
        return Patch(
            facecolor=key.colour if key.fill == "full" else "white",
            edgecolor=key.colour,
            linestyle=key.edge,
            linewidth=scene.lw(1.0),
            label=key.label,
        )
    look: dict[str, Any] = {"color": key.colour, "ls": key.line or "", "label": key.label}
    if key.line:
        look["lw"] = scene.lw(key.width)
    if key.marker:
        ring = key.fill == "ringed"
        look |= {
            "marker": key.marker,
            "ms": _legend_pt(scene, style.LEGEND_HOP if key.line or ring else style.LEGEND_DOT),
            "mfc": "white" if key.fill == "none" else key.colour,
            "mec": style.CURRENT_HOP if ring else key.colour,
            "mew": scene.lw(2.0 if ring else 1.0),
        }
    line = Line2D([], [], **look)
    if key.mark in _GLYPH and key.line:  # a change: its line, then its text mark
        ms = _legend_pt(scene, style.LEGEND_HOP)
        glyph = Line2D([], [], ls="", marker=_GLYPH[key.mark], ms=ms, color=key.colour)
        return (line, glyph)  # type: ignore[return-value]
    return line


def draw_legend(scene: Scene) -> None:
    """The legend, on the left of the host: the marks drawn, the changes
    and the trace's when there are some (the entries of
    :data:`labkit.draw.style.LEGEND` named by :func:`legend_keys`).

    Examples
    --------
    >>> import networkx as nx
    >>> from matplotlib.figure import Figure
    >>> scene = Scene(nx.Graph(), Figure().add_subplot())
    >>> draw_legend(scene)
    >>> [t.get_text() for t in scene.ax.get_legend().get_texts()][:2]
    ['cable, both ends up', 'cable or port, an end down']
    """
    keys = [style.LEGEND[k] for k in legend_keys(scene)]
    handles = [_handle(scene, k) for k in keys]
    where: dict[str, Any] = {"loc": "upper left"}
    if HOST in scene.boxes:  # on the left of the host, where nothing else goes
        host = scene.boxes[HOST]
        where["bbox_to_anchor"] = (scene.ax.get_xlim()[0] + 0.1, host.y + host.h / 2)
        where["bbox_transform"] = scene.ax.transData
    scene.ax.legend(
        handles=handles,
        labels=[k.label for k in keys],
        fontsize=_legend_pt(scene, style.LEGEND_FONT),
        frameon=True,
        framealpha=0.9,
        edgecolor=style.LEGEND_EDGE,
        borderpad=0.6,
        handlelength=2.4,
        handler_map={tuple: HandlerTuple(ndivide=None, pad=0.2)},
        labelspacing=0.45,
        **where,
    )


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
    scale: float = 1.0,
) -> Figure:
    """Draw the sandbox: namespaces, bridges, veth cables and addresses.

    Namespaces are rounded boxes (the host a larger grey one, the internet
    a cloud), bridges are switch shapes inside their box, veth cables are
    lines between two interface points (solid when both ends are up,
    dashed otherwise) and bridge ports are thinner lines to their bridge.
    The outside world is drawn above the host, the lab below it (see
    :func:`labkit.draw.layout.layout`). Interface names and IPv4 addresses
    label the cable ends; with more than
    :data:`~labkit.draw.layout.MEDIUM_ABOVE` lab namespaces the lab's boxes
    show their addresses instead, with more than
    :data:`~labkit.draw.layout.COMPACT_ABOVE` only their names, and with
    more than :data:`~labkit.draw.layout.DENSE_ABOVE` they are unnamed tiles
    in rows, each row labelled with its first and last name (the world is
    always labelled in full). Notes inside the boxes tell forwarding, web
    apps, routes through a gateway and the host's NAT rules with their
    packet counters (a rule made by hand, not by labkit, starts with
    ``*``). Loopback interfaces are left out. The figure is made without
    pyplot: nothing pops up, and a new figure always has the same size and
    a single Axes.

    Parameters
    ----------
    graph : networkx.Graph
        A graph from :func:`labkit.kernel.observe.to_graph`.
    pos : dict, optional
        Positions to use instead of :func:`~labkit.draw.layout.layout`'s; a
        namespace moved here takes its interfaces along unless they are
        given too.
    ax : matplotlib.axes.Axes, optional
        Draw into this Axes (its limits, aspect and legend are set). By
        default a new :data:`~labkit.draw.style.FIGSIZE` figure with one
        Axes is made.
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
        added namespaces, interfaces and cables are outlined in green with
        a solid line and marked ``+``, changed ones in orange with a dotted
        line and ``~``, and removed ones are drawn as vermillion dashed
        ghosts marked ``−`` where they were in the last picture; the legend
        explains the marks. Each mark's ``gid`` is ``added:ID``,
        ``changed:ID`` or ``removed:ID``.
    trace : labkit.trace.Trace, optional
        A packet trace (:func:`labkit.trace.trace`) to draw on the graph:
        each sighting is a numbered hop (1, 2, ... in the trace's order)
        beside the interface that saw it, the request's in blue circles
        joined by solid arrows, the reply's in purple squares joined by
        dashed arrows. Where
        an address changed from one hop to the next of the same packet
        (NAT), a label says which and to what (``src → 192.168.1.2``).
        The title says who pinged what, unless ``title`` is given. Each
        number's ``gid`` is ``hop:N``, each NAT label's ``nat:N``.
    upto : int, optional
        With ``trace``: draw only hops 1 to ``upto``, the last one larger
        and ringed, and (unless ``title`` is given) name that hop in the
        title. The numbers stay in place from one ``upto`` to the next
        (see :func:`trace_steps`).
    scale : float, default 1
        Text, marks and lines this much larger, from 0.5 to 3: ``1.5``
        for a projector (``lab.draw(scale=1.5)``). Text that would no
        longer fit in its box is shrunk to fit, as always.

    Returns
    -------
    labkit.draw.figure.LabkitFigure
        The figure drawn into (the one holding ``ax`` when given, a plain
        Figure then). Its ``labkit_alt`` is the picture in words
        (:func:`labkit.draw.describe.describe`); in a notebook it is the
        output's ``text/plain`` and the ``alt`` of its picture. Drawn into
        a given ``ax``, the description is added to the figure's
        ``labkit_alt``.

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
    <LabkitFigure size 900x700 with 1 Axes>
    >>> print(fig.labkit_alt)
    Network diagram, an interface in red: the host and 1 lab namespace: red.
    host: no interface but loopback; forwarding; NAT rules: POSTROUTING MASQUERADE -s 10.0.0.0/24.
    red: eth0 10.0.0.1/24 (down).
    >>> any("10.0.0.1/24" in t.get_text() for t in fig.axes[0].texts)
    True
    >>> [t.get_text() for t in fig.axes[0].texts if "MASQUERADE" in t.get_text()]
    ['POSTROUTING MASQUERADE -s 10.0.0.0/24 [4 pkts]']

    Marking what changed since the last picture:

    >>> from labkit.ui.live import diff_graphs
    >>> old = g.copy()
    >>> g.nodes["if:red/eth0"]["addrs"] = ["10.0.0.9/24"]
    >>> fig = draw(g, changes=diff_graphs(old, g))
    >>> gids = [str(a.get_gid()) for a in fig.axes[0].get_children()]
    >>> sorted(gid for gid in gids if "changed:" in gid)
    ['changed:if:red/eth0', 'mark:changed:if:red/eth0']
    >>> print(fig.labkit_alt.splitlines()[1])
    Since the last picture: ~ changed red eth0 (addresses).

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
        title = trace_title(trace, upto)
    if trace is None and upto is not None:
        raise ValueError("upto= needs a trace=")
    given = ax is not None
    if ax is None:
        fig = LabkitFigure(figsize=style.FIGSIZE)
        ax = fig.add_subplot()
        top = 0.99 - (0.06 * scale if title else 0.0)
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top)
    scene = Scene(
        graph,
        ax,
        pos=pos,
        show_addresses=show_addresses,
        show_macs=show_macs,
        show_routes=show_routes,
        changes=changes,
        trace=trace,
        upto=upto,
        scale=scale,
    )
    scene.set_view(title)
    draw_namespaces(scene)
    draw_row_labels(scene)
    draw_cables(scene)
    draw_interfaces(scene)
    draw_changes(scene)
    draw_hops(scene)
    draw_legend(scene)
    alt = describe(
        graph,
        changes=changes,
        trace=trace,
        upto=upto,
        title=title,
        show_addresses=show_addresses,
        show_routes=show_routes,
    )
    fig = root_figure(ax)
    before = getattr(fig, "labkit_alt", "") if given else ""
    fig.labkit_alt = f"{before}\n{alt}" if before else alt  # type: ignore[attr-defined]
    return fig


def trace_steps(graph: nx.Graph, trace: Any, **kwargs: Any) -> list[Figure]:
    """One figure per hop of ``trace``: hops 1 to 1, 1 to 2, ... 1 to all.

    For a step-through in a notebook (show one figure at a time, with a
    slider, see :func:`labkit.ui.steps.step_through`, or in a loop).
    Keyword arguments go to :func:`draw`.

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


def save(graph: nx.Graph, path: str | PathLike[str]) -> None:
    """Draw ``graph`` with :func:`draw` and write it to ``path`` as a PNG.

    Parameters
    ----------
    graph : networkx.Graph
        A graph from :func:`labkit.kernel.observe.to_graph`.
    path : str or os.PathLike
        The file to write (150 dpi: 1350 x 1050 pixels), with the picture
        in words (:func:`labkit.draw.describe.describe`) as its PNG
        ``Description``.

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
    fig = draw(graph)
    fig.savefig(path, format="png", dpi=150, metadata={"Description": fig.labkit_alt})
