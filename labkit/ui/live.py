"""The live graph: redraw from the kernel, with what changed highlighted.

:func:`diff_graphs` compares two graphs from :func:`labkit.kernel.observe.graph`
(pure: no kernel) and says which nodes and cables were added, removed or
changed. A :class:`LiveGraph` remembers the last picture it drew; each
:meth:`LiveGraph.redraw` reads the kernel again, whatever changed it
(labkit or the learner's own ``!ip`` command), and draws the new graph
with the changes marked, each kind by its colour, its line and its text
mark: a green solid ring and ``+`` for added, a vermillion dashed ghost
and ``−`` for removed, an orange dotted ring and ``~`` for changed
addresses, state, routes or rules. The figure's text alternative
(``labkit_alt``) lists the changes the same way. Nodes keep their places
(:func:`labkit.draw.layout` depends on names only).

:func:`redraw` does that with one module-wide :class:`LiveGraph`;
:func:`auto` redraws after every notebook cell (an IPython
``post_run_cell`` hook) and shows the picture when something changed.

Examples
--------
>>> import networkx as nx
>>> from labkit.ui.live import diff_graphs
>>> old, new = nx.Graph(), nx.Graph()
>>> old.add_node("ns:red", kind="netns", name="red")
>>> new.add_node("ns:blue", kind="netns", name="blue")
>>> changes = diff_graphs(old, new)
>>> sorted(changes.added), sorted(changes.removed)
(['ns:blue'], ['ns:red'])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

__all__ = ["Changes", "LiveGraph", "auto", "diff_graphs", "redraw"]

#: Node attributes that change by themselves (traffic, ARP ageing): not a change.
VOLATILE = frozenset({"neigh", "operstate"})
#: Keys of a firewall rule that count packets: compared without them.
_COUNTERS = ("packets", "bytes")

Edge = tuple[str, str]


def _edge(u: Any, v: Any) -> Edge:
    a, b = str(u), str(v)
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class Changes:
    """What differs between two graphs of the sandbox.

    Attributes
    ----------
    added, removed, changed : frozenset of str
        Node ids (``ns:NAME``, ``if:NS/NAME``) new in the second graph, gone
        from it, and in both but with other attributes.
    added_edges, removed_edges : frozenset of (str, str)
        Cables (veth pairs) and bridge ports, each as a sorted pair of
        interface ids (the ``in`` edges of a namespace to its interfaces
        are not listed: they come and go with the interfaces).
    details : Mapping of str to tuple of str
        For each changed node, the names of the attributes that changed.
    old : networkx.Graph or None
        The first graph, so that removed things can be drawn where they
        were (not compared, not shown in the repr).

    Examples
    --------
    >>> c = Changes(added=frozenset({"ns:red"}))
    >>> bool(c), c.summary()
    (True, ['added ns:red'])
    >>> bool(Changes())
    False
    """

    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    changed: frozenset[str] = frozenset()
    added_edges: frozenset[Edge] = frozenset()
    removed_edges: frozenset[Edge] = frozenset()
    details: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    old: nx.Graph | None = field(default=None, compare=False, repr=False)

    def __bool__(self) -> bool:
        return bool(
            self.added or self.removed or self.changed or self.added_edges or self.removed_edges
        )

    def summary(self) -> list[str]:
        """One line per change, in a stable order.

        Examples
        --------
        >>> Changes(changed=frozenset({"if:red/veth-red"}),
        ...         details={"if:red/veth-red": ("addrs",)}).summary()
        ['changed if:red/veth-red (addrs)']
        >>> Changes(removed_edges=frozenset({("if:blue/b", "if:red/a")})).summary()
        ['removed cable if:blue/b - if:red/a']
        """
        lines = [f"added {n}" for n in sorted(self.added)]
        lines += [f"removed {n}" for n in sorted(self.removed)]
        lines += [
            f"changed {n} ({', '.join(self.details.get(n, ()))})".replace(" ()", "")
            for n in sorted(self.changed)
        ]
        lines += [f"added cable {u} - {v}" for u, v in sorted(self.added_edges)]
        lines += [f"removed cable {u} - {v}" for u, v in sorted(self.removed_edges)]
        return lines


def _comparable(key: str, value: Any) -> Any:
    """An attribute value as compared: rules without their counters."""
    if key == "rules" and isinstance(value, list):
        return [
            {k: v for k, v in r.items() if k not in _COUNTERS} if isinstance(r, dict) else r
            for r in value
        ]
    return value


def _cables(graph: nx.Graph) -> set[Edge]:
    return {
        _edge(u, v)
        for u, v, d in graph.edges(data=True)
        if d.get("kind") != "in" and str(u) != str(v)
    }


def diff_graphs(old: nx.Graph | None, new: nx.Graph, ignore: frozenset[str] = VOLATILE) -> Changes:
    """Compare two graphs of the sandbox: what was added, removed or changed.

    Pure: it reads only the two graphs. Attributes in ``ignore`` (by
    default the ARP entries and the kernel's raw operstate, which change by
    themselves) and the packet counters of firewall rules do not count.
    With no ``old`` graph (the first picture) nothing is a change.

    Parameters
    ----------
    old : networkx.Graph or None
        The graph of the last picture.
    new : networkx.Graph
        The graph now.
    ignore : frozenset of str, optional
        Node attributes that do not count as a change.

    Returns
    -------
    Changes
        Node ids and edges added, removed and changed.

    Examples
    --------
    >>> import networkx as nx
    >>> old = nx.Graph()
    >>> old.add_node("if:red/veth-red", kind="iface", addrs=[], up=False)
    >>> new = old.copy()
    >>> new.nodes["if:red/veth-red"].update(addrs=["192.168.15.1/24"], up=True)
    >>> new.add_node("if:blue/veth-blue", kind="iface", addrs=[], up=False)
    >>> new.add_edge("if:red/veth-red", "if:blue/veth-blue", kind="veth")
    >>> c = diff_graphs(old, new)
    >>> sorted(c.added), sorted(c.changed), dict(c.details)
    (['if:blue/veth-blue'], ['if:red/veth-red'], {'if:red/veth-red': ('addrs', 'up')})
    >>> sorted(c.added_edges)
    [('if:blue/veth-blue', 'if:red/veth-red')]
    >>> diff_graphs(None, new)
    Changes(added=frozenset(), removed=frozenset(), changed=frozenset(), \
added_edges=frozenset(), removed_edges=frozenset(), details={})
    """
    if old is None:
        return Changes()
    before, after = set(map(str, old.nodes)), set(map(str, new.nodes))
    details: dict[str, tuple[str, ...]] = {}
    for node in sorted(before & after):
        a, b = old.nodes[node], new.nodes[node]
        keys = sorted((set(a) | set(b)) - set(ignore))
        diff = tuple(k for k in keys if _comparable(k, a.get(k)) != _comparable(k, b.get(k)))
        if diff:
            details[node] = diff
    edges_before, edges_after = _cables(old), _cables(new)
    return Changes(
        added=frozenset(after - before),
        removed=frozenset(before - after),
        changed=frozenset(details),
        added_edges=frozenset(edges_after - edges_before),
        removed_edges=frozenset(edges_before - edges_after),
        details=details,
        old=old,
    )


class LiveGraph:
    """The live topology, redrawn from the kernel with the changes marked.

    Each :meth:`update` reads the kernel (or takes a graph), compares it
    with the graph of the last picture (:func:`diff_graphs`) and keeps it
    as the new last picture. The toggles say what the pictures write.

    Parameters
    ----------
    show_addresses : bool, default True
        Write the IPv4 addresses.
    show_macs : bool, default False
        Write the MAC addresses.
    show_routes : bool, default True
        Note the routes through a gateway inside the boxes.

    Examples
    --------
    >>> import networkx as nx
    >>> live = LiveGraph()
    >>> g = nx.Graph()
    >>> g.add_node("ns:host", kind="netns", name="host")
    >>> live.update(g)
    Changes(added=frozenset(), ...)
    >>> g2 = g.copy()
    >>> g2.add_node("ns:red", kind="netns", name="red")
    >>> sorted(live.update(g2).added)
    ['ns:red']
    >>> live.figure()
    <LabkitFigure size 900x700 with 1 Axes>
    """

    def __init__(
        self, show_addresses: bool = True, show_macs: bool = False, show_routes: bool = True
    ) -> None:
        self.show_addresses = show_addresses
        self.show_macs = show_macs
        self.show_routes = show_routes
        self.graph: nx.Graph | None = None
        self.changes = Changes()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"LiveGraph(show_addresses={self.show_addresses}, show_macs={self.show_macs}, "
            f"show_routes={self.show_routes})"
        )

    def update(self, graph: nx.Graph | None = None) -> Changes:
        """Read the kernel (or take ``graph``) and work out what changed.

        Examples
        --------
        >>> LiveGraph().update()  # doctest: +SKIP
        Changes(added=frozenset(), ...)
        """
        if graph is None:
            from labkit.kernel import observe, preflight

            preflight.require()
            graph = observe.graph()
        with self._lock:
            self.changes = diff_graphs(self.graph, graph)
            self.graph = graph
        return self.changes

    def figure(self, title: str | None = None, highlight: bool = True) -> Any:
        """Draw the last graph, with its changes marked; returns a Figure.

        Examples
        --------
        >>> LiveGraph().figure()  # doctest: +SKIP
        <LabkitFigure size 900x700 with 1 Axes>
        """
        from labkit import draw

        with self._lock:
            graph, changes = self.graph, self.changes
        if graph is None:  # nothing read yet: an empty host
            graph = nx.Graph()
            graph.add_node("ns:host", kind="netns", name="host")
        return draw.draw(
            graph,
            show_addresses=self.show_addresses,
            show_macs=self.show_macs,
            show_routes=self.show_routes,
            changes=changes if highlight else None,
            title=title,
        )

    def describe(self, title: str | None = None, highlight: bool = True) -> str:
        """The last picture in words, what changed first (the figure's
        ``labkit_alt``, without drawing it): for a screen reader beside
        a picture shown as bytes, as the control panel shows it.

        Examples
        --------
        >>> live = LiveGraph()
        >>> g = nx.Graph()
        >>> g.add_node("ns:host", kind="netns", name="host")
        >>> _ = live.update(g)
        >>> g2 = g.copy()
        >>> g2.add_node("ns:red", kind="netns", name="red")
        >>> print(live.update(g2) and live.describe())
        Network diagram: the host and 1 lab namespace: red.
        Since the last picture: + added namespace red.
        host: no interface but loopback.
        red: no interface but loopback.
        """
        from labkit.draw.describe import describe

        with self._lock:
            graph, changes = self.graph, self.changes
        if graph is None:
            graph = nx.Graph()
            graph.add_node("ns:host", kind="netns", name="host")
        return describe(
            graph,
            changes=changes if highlight else None,
            title=title,
            show_addresses=self.show_addresses,
            show_routes=self.show_routes,
        )

    def redraw(self, title: str | None = None) -> Any:
        """Read the kernel and draw it with what changed since the last picture.

        Examples
        --------
        >>> LiveGraph().redraw()  # doctest: +SKIP
        <LabkitFigure size 900x700 with 1 Axes>
        """
        self.update()
        return self.figure(title)

    def png(self, dpi: int = 80) -> bytes:
        """The last picture as PNG bytes (``dpi`` 80: 720 x 560 pixels).

        Examples
        --------
        >>> LiveGraph().png()[:4]
        b'\\x89PNG'
        """
        import io

        buf = io.BytesIO()
        self.figure().savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()


_LIVE = LiveGraph()
_HOOK: list[Callable[..., None]] = []


def redraw(
    show_addresses: bool | None = None,
    show_macs: bool | None = None,
    show_routes: bool | None = None,
    title: str | None = None,
) -> Any:
    """Read the kernel and draw it, with what changed since the last picture marked.

    The toggles given are kept for the next pictures.

    Examples
    --------
    >>> import labkit.ui.live
    >>> labkit.ui.live.redraw()  # doctest: +SKIP
    <LabkitFigure size 900x700 with 1 Axes>
    >>> labkit.ui.live.redraw(show_macs=True)  # doctest: +SKIP
    <LabkitFigure size 900x700 with 1 Axes>
    """
    for name, value in (
        ("show_addresses", show_addresses),
        ("show_macs", show_macs),
        ("show_routes", show_routes),
    ):
        if value is not None:
            setattr(_LIVE, name, bool(value))
    return _LIVE.redraw(title)


def _after_cell(always: bool) -> Callable[..., None]:
    def hook(*_args: Any) -> None:
        from labkit.errors import LabkitError

        try:
            changes = _LIVE.update()
        except LabkitError as err:
            print(f"labkit.ui.live: no redraw: {err}")
            return
        if always or changes:
            from IPython.display import display

            display(_LIVE.figure())

    return hook


def auto(on: bool = True, *, always: bool = False, shell: Any = None) -> bool:
    """Redraw after every notebook cell (or stop it).

    Registers (or removes) an IPython ``post_run_cell`` hook. After each
    cell it reads the kernel and, when something changed since the last
    picture (or with ``always``), shows the live graph with the changes
    marked. Returns whether the hook is on.

    Parameters
    ----------
    on : bool, default True
        Start (True) or stop (False).
    always : bool, default False
        Show a picture after every cell, even when nothing changed.
    shell : IPython.core.interactiveshell.InteractiveShell, optional
        The shell to hook into (by default the running one).

    Examples
    --------
    >>> import labkit.ui.live
    >>> labkit.ui.live.auto(True)  # doctest: +SKIP
    True
    >>> labkit.ui.live.auto(False)  # doctest: +SKIP
    False
    """
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        from labkit.errors import ConfigError

        raise ConfigError("auto-redraw needs IPython: use it in a notebook on the labkit kernel")
    while _HOOK:
        try:
            shell.events.unregister("post_run_cell", _HOOK.pop())
        except ValueError:
            pass  # already gone
    if on:
        hook = _after_cell(always)
        shell.events.register("post_run_cell", hook)
        _HOOK.append(hook)
    return bool(on)
