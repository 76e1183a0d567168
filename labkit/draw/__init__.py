"""Draw the graph of a sandbox: namespaces as boxes, veth cables as lines.

:func:`layout` places every drawn node of a graph from
:func:`labkit.kernel.observe.to_graph`; :func:`draw` renders it with
matplotlib; :func:`save` writes a PNG; :func:`trace_steps` draws a packet
trace hop by hop; :func:`describe` says in words what :func:`draw` shows
(every figure carries it as its ``labkit_alt``, and a notebook as its
text and its picture's ``alt``). The package, from pure to drawing:

- :mod:`labkit.draw.graph`: the graph read back: node ids
  (:class:`~labkit.draw.graph.NodeId`), drawn interfaces, cables.
- :mod:`labkit.draw.layout`: where everything goes, from names alone; how
  crowded a picture is (:data:`MEDIUM_ABOVE`, :data:`COMPACT_ABOVE`,
  :data:`DENSE_ABOVE`).
- :mod:`labkit.draw.notes`: the notes written in a box (routes, NAT rules).
- :mod:`labkit.draw.style`: one table of sizes, fonts and colours
  (:data:`FIGSIZE`), the colour-blind-safe palette and the legend's
  entries, each with a cue that is not its colour.
- :mod:`labkit.draw.describe`: the picture in words. These five need no
  matplotlib.
- :mod:`labkit.draw.scene`: one graph being drawn into one Axes.
- :mod:`labkit.draw.boxes`, :mod:`labkit.draw.cables`: namespaces; cables,
  interfaces and bridges with their labels.
- :mod:`labkit.draw.overlays`: what changed since the last picture, and a
  packet trace's hops.
- :mod:`labkit.draw.labels`: text that fits, and label places that cover
  the least; :mod:`labkit.draw.shapes`: the cloud, box colours, a figure's root.
- :mod:`labkit.draw.painter`: :func:`draw`, :func:`trace_steps`, :func:`save`
  (imported, with matplotlib, when first used); :mod:`labkit.draw.figure`:
  the Figure they return, which shows its description in a notebook.

A slider over a trace's hops is UI: :func:`labkit.ui.steps.step_through`.

Examples
--------
>>> import networkx as nx
>>> from labkit.draw import draw, layout
>>> g = nx.Graph(namespaces=["host", "red", "router"])
>>> g.add_node("ns:host", kind="netns", name="host")
>>> g.add_node("ns:red", kind="netns", name="red")
>>> g.add_node("ns:router", kind="netns", name="router", forwarding=True)
>>> pos = layout(g)
>>> pos["ns:red"][0] < pos["ns:host"][0]
True
>>> pos["ns:router"][1] > pos["ns:host"][1] > pos["ns:red"][1]
True
>>> fig = draw(g)
>>> fig
<LabkitFigure size 900x700 with 1 Axes>
>>> print(fig.labkit_alt)  # the picture in words: its alt text in a notebook
Network diagram: the host, 1 lab namespace: red; the outside world: router.
host: no interface but loopback.
red: no interface but loopback.
router: no interface but loopback; forwarding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.draw.describe import describe
from labkit.draw.layout import COMPACT_ABOVE, DENSE_ABOVE, MEDIUM_ABOVE, layout
from labkit.draw.style import FIGSIZE

if TYPE_CHECKING:
    from labkit.draw.painter import draw, save, trace_steps

__all__ = [
    "COMPACT_ABOVE",
    "DENSE_ABOVE",
    "FIGSIZE",
    "MEDIUM_ABOVE",
    "describe",
    "draw",
    "layout",
    "save",
    "trace_steps",
]

_PAINTER = ("draw", "save", "trace_steps")


def __getattr__(name: str) -> Any:
    """The drawing functions, imported with matplotlib when first asked for
    (so that :mod:`labkit.draw.layout` can be used without matplotlib)."""
    if name in _PAINTER:
        from labkit.draw import painter

        for public in _PAINTER:
            globals()[public] = getattr(painter, public)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
