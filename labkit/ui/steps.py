"""Step through a packet trace in Jupyter: a slider over its hops.

Examples
--------
>>> import networkx as nx
>>> from labkit.trace import Sighting, Trace
>>> from labkit.ui.steps import step_through
>>> g = nx.Graph()
>>> g.add_node("ns:red", kind="netns", name="red")
>>> t = Trace("red", "10.0.0.9", [
...     Sighting(0.0, "red", "eth0", "out", "10.0.0.1", "10.0.0.9", "request")])
>>> type(step_through(g, t)).__name__
'VBox'
"""

from __future__ import annotations

import html
import io
from typing import Any

import ipywidgets as w
import networkx as nx

from labkit.draw import draw

__all__ = ["step_through"]


def step_through(graph: nx.Graph, trace: Any, dpi: int = 100, **kwargs: Any) -> w.VBox:
    """A slider (and a play button) over the hops of ``trace``, in Jupyter.

    The picture shows hops 1 to the slider's value, as
    :func:`labkit.draw.trace_steps` draws them; it starts at hop 1. Each
    picture is drawn the first time it is asked for (``dpi`` 100: 900 x 700
    pixels). Keyword arguments go to :func:`labkit.draw.draw`. Nothing is
    printed or displayed while it is made, so a notebook that shows it
    stores the same output every time.

    Returns
    -------
    ipywidgets.VBox
        The play button and the slider above the picture, and below it the
        picture in words (its ``labkit_alt``, for a screen reader).

    Examples
    --------
    >>> import networkx as nx
    >>> from labkit.trace import Sighting, Trace
    >>> g = nx.Graph()
    >>> g.add_node("ns:red", kind="netns", name="red")
    >>> t = Trace("red", "10.0.0.9", [
    ...     Sighting(0.0, "red", "eth0", "out", "10.0.0.1", "10.0.0.9", "request")] * 3)
    >>> box = step_through(g, t)
    >>> controls, picture, words = box.children
    >>> play, slider = controls.children
    >>> first = bytes(picture.value)
    >>> slider.max, first[:4]
    (3, b'\\x89PNG')
    >>> slider.value = 3  # what dragging the slider does: hops 1 to 3
    >>> bytes(picture.value) != first
    True
    >>> "The picture in words" in words.value
    True
    """
    n = len(trace.sightings)
    if not n:
        raise ValueError(f"{trace.src} -> {trace.dst}: no interface saw the packet, no hop to show")
    pictures: dict[int, bytes] = {}
    words: dict[int, str] = {}

    def png(k: int) -> bytes:
        if k not in pictures:
            buf = io.BytesIO()
            fig = draw(graph, trace=trace, upto=k, **kwargs)
            fig.savefig(buf, format="png", dpi=dpi)
            pictures[k] = buf.getvalue()
            words[k] = getattr(fig, "labkit_alt", "")
        return pictures[k]

    def caption(k: int) -> str:
        png(k)
        return (
            "<details><summary><small>The picture in words</small></summary>"
            f"<pre>{html.escape(words[k])}</pre></details>"
        )

    play = w.Play(value=1, min=1, max=n, interval=1200, description="play")
    slider = w.IntSlider(value=1, min=1, max=n, description="hop", continuous_update=False)
    w.jslink((play, "value"), (slider, "value"))
    image = w.Image(value=png(1), format="png", layout={"max_width": "900px", "width": "100%"})
    text = w.HTML(caption(1))

    def show(change: dict[str, Any]) -> None:
        image.value = png(int(change["new"]))
        text.value = caption(int(change["new"]))

    slider.observe(show, names="value")
    return w.VBox([w.HBox([play, slider]), image, text])
