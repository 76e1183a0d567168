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
<Figure size 900x700 with 1 Axes>
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import networkx as nx
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from labkit.core.model import HOST
from labkit.draw import style
from labkit.draw.boxes import draw_namespaces, draw_row_labels
from labkit.draw.cables import draw_cables, draw_interfaces
from labkit.draw.layout import Point
from labkit.draw.overlays import draw_changes, draw_hops
from labkit.draw.scene import Scene
from labkit.draw.shapes import root_figure

__all__ = ["draw", "draw_legend", "save", "trace_steps"]


def draw_legend(scene: Scene) -> None:
    """The legend, on the left of the host: the marks drawn, the changes
    and the trace's when there are some.

    Examples
    --------
    >>> import networkx as nx
    >>> from matplotlib.figure import Figure
    >>> scene = Scene(nx.Graph(), Figure().add_subplot())
    >>> draw_legend(scene)
    >>> [t.get_text() for t in scene.ax.get_legend().get_texts()][:2]
    ['cable, both ends up', 'cable, an end down']
    """
    cable, dash, port = style.CABLE, style.DASH, style.PORT
    mark = {"ls": "", "marker": "o", "ms": scene.pt(style.LEGEND_DOT), "mec": cable, "mew": 1.0}
    bridge_ms = scene.pt(style.LEGEND_BRIDGE)
    handles = [
        Line2D([], [], color=cable, lw=1.6, label="cable, both ends up"),
        Line2D([], [], color=cable, lw=1.6, ls=dash, label="cable, an end down"),
        Line2D([], [], color=port, lw=1.1, label="bridge port"),
        Line2D([], [], mfc=cable, label="interface up", **mark),
        Line2D([], [], mfc="white", label="interface down", **mark),
        Line2D([], [], ls="", marker="s", ms=bridge_ms, color=style.BRIDGE_FACE, label="bridge"),
    ]
    if scene.by_hand:
        handles.append(Line2D([], [], ls="", label="* rule made by hand"))
    if scene.changes is not None:
        handles += [
            Line2D([], [], color=style.ADDED, lw=3.0, label="added since last picture"),
            Line2D([], [], color=style.REMOVED, lw=1.6, ls=dash, label="removed (ghost)"),
            Line2D([], [], color=style.CHANGED, lw=3.0, label="changed (address, state, route)"),
        ]
    if scene.trace is not None:
        hop = {"ls": "", "marker": "o", "ms": scene.pt(style.LEGEND_HOP), "mec": "white"}
        request, reply = style.HOP["request"], style.HOP["reply"]
        handles += [
            Line2D([], [], mfc=request, label="hop of the request (in order)", **hop),
            Line2D([], [], mfc=reply, label="hop of the reply", **hop),
            Line2D(
                [],
                [],
                ls="",
                marker="s",
                ms=scene.pt(style.LEGEND_HOP),
                mfc="white",
                mec=request,
                label="NAT: an address rewritten",
            ),
        ]
    where: dict[str, Any] = {"loc": "upper left"}
    if HOST in scene.boxes:  # on the left of the host, where nothing else goes
        host = scene.boxes[HOST]
        where["bbox_to_anchor"] = (scene.ax.get_xlim()[0] + 0.1, host.y + host.h / 2)
        where["bbox_transform"] = scene.ax.transData
    scene.ax.legend(
        handles=handles,
        fontsize=scene.pt(style.LEGEND_FONT),
        frameon=True,
        framealpha=0.9,
        edgecolor=style.LEGEND_EDGE,
        borderpad=0.6,
        handlelength=2.4,
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
        fig = Figure(figsize=style.FIGSIZE)
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93 if title else 0.99)
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
    )
    scene.set_view(title)
    draw_namespaces(scene)
    draw_row_labels(scene)
    draw_cables(scene)
    draw_interfaces(scene)
    draw_changes(scene)
    draw_hops(scene)
    draw_legend(scene)
    return root_figure(ax)


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
