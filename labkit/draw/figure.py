"""A matplotlib Figure that carries its text alternative into a notebook.

:func:`labkit.draw.draw` returns a :class:`LabkitFigure`: a
:class:`matplotlib.figure.Figure` in every way (``savefig``, ``axes``)
with one attribute more, :attr:`~LabkitFigure.labkit_alt`, the picture in
words (:func:`labkit.draw.describe.describe`). Shown in a notebook, its
output has three parts:

- ``image/png``: the picture, with ``alt`` in its metadata (Colab and
  nbconvert's ``classic`` template read it);
- ``text/html``: the same picture as ``<img alt="...">``, which JupyterLab
  shows (so that a screen reader reads the description) and which
  nbconvert's HTML export writes as it is;
- ``text/plain``: the description (which nbval compares, so it never holds
  what varies from run to run).

Examples
--------
>>> from labkit.draw.figure import LabkitFigure
>>> fig = LabkitFigure(figsize=(2, 1))
>>> fig.labkit_alt = "An empty picture."
>>> data, meta = fig._repr_mimebundle_()
>>> sorted(data), meta["image/png"]["alt"]
(['image/png', 'text/html', 'text/plain'], 'An empty picture.')
>>> data["text/html"].startswith('<img alt="An empty picture." src="data:image/png;base64,')
True
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Container
from typing import Any

from matplotlib.figure import Figure

__all__ = ["LabkitFigure", "alt_attribute"]


def alt_attribute(text: str) -> str:
    """The description as one line, for an ``alt`` attribute.

    Examples
    --------
    >>> alt_attribute("Network diagram: red.\\nred: eth0.")
    'Network diagram: red. red: eth0.'
    """
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


class LabkitFigure(Figure):
    """A Figure with a text alternative, shown in a notebook with it.

    Attributes
    ----------
    labkit_alt : str
        What the picture shows, in words (empty for a figure not drawn by
        labkit yet).

    Examples
    --------
    >>> import networkx as nx
    >>> from labkit.draw import draw
    >>> g = nx.Graph()
    >>> g.add_node("ns:red", kind="netns", name="red")
    >>> fig = draw(g)
    >>> isinstance(fig, LabkitFigure), fig.labkit_alt
    (True, 'Network diagram of 1 namespace: red.\\nred: no interface but loopback.')
    """

    labkit_alt: str = ""

    def png(self) -> bytes:
        """The picture as a PNG, as a notebook shows it (tight, at the figure's dpi).

        Examples
        --------
        >>> LabkitFigure(figsize=(1, 1)).png()[:4]
        b'\\x89PNG'
        """
        buf = io.BytesIO()
        self.savefig(
            buf,
            format="png",
            bbox_inches="tight",
            dpi="figure",
            facecolor=self.get_facecolor(),
            edgecolor=self.get_edgecolor(),
            metadata={"Description": self.labkit_alt} if self.labkit_alt else None,
        )
        return buf.getvalue()

    def _repr_mimebundle_(
        self, include: Container[str] | None = None, exclude: Container[str] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The picture, as ``<img alt>`` too, and its description (see the module)."""
        png = base64.b64encode(self.png()).decode("ascii")
        alt = alt_attribute(self.labkit_alt)
        data: dict[str, Any] = {
            "image/png": png,
            "text/html": f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}"/>',
            "text/plain": self.labkit_alt or repr(self),
        }
        wanted = {
            k: v
            for k, v in data.items()
            if (include is None or k in include) and (exclude is None or k not in exclude)
        }
        meta = {"image/png": {"alt": alt}} if alt and "image/png" in wanted else {}
        return wanted, meta
