"""Reading the graph back: node ids, drawn interfaces, cables, namespaces.

Pure (no matplotlib). The graph is one from
:func:`labkit.kernel.observe.to_graph`: nodes ``ns:NAME`` and ``if:NS/NAME``,
read back in one place, :meth:`NodeId.parse`. Loopback interfaces are not
drawn.

Examples
--------
>>> from labkit.draw.graph import NodeId
>>> NodeId.parse("if:red/veth-red").ns
'red'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import networkx as nx

from labkit.core.model import HOST

__all__ = [
    "NodeId",
    "edges",
    "iface_ns",
    "ifaces",
    "is_up",
    "namespaces",
    "natural",
    "ns_order",
]

_DOWN_OPER = {"DOWN", "LOWERLAYERDOWN", "NOTPRESENT", "DORMANT"}


@dataclass(frozen=True)
class NodeId:
    """A node id of the graph read back: ``ns:NAME`` or ``if:NS/NAME``.

    ``kind`` is what comes before the first colon (``""`` when there is
    none). A namespace's ``ns`` and ``name`` are both its name; an
    interface's namespace is everything before its last ``/`` (the host
    when there is none).

    Examples
    --------
    >>> NodeId.parse("if:red/veth-red")
    NodeId(kind='if', ns='red', name='veth-red')
    >>> NodeId.parse("ns:lan-pc")
    NodeId(kind='ns', ns='lan-pc', name='lan-pc')
    >>> NodeId.parse("if:eth0").ns
    'host'
    """

    kind: str
    ns: str
    name: str

    @classmethod
    def parse(cls, node: str) -> NodeId:
        """Read a node id (any string: one without a colon has kind ``""``)."""
        kind, colon, rest = node.partition(":")
        if not colon:
            return cls("", "", node)
        if kind == "if":
            ns, _, name = rest.rpartition("/")
            return cls(kind, ns or HOST, name)
        return cls(kind, rest, rest)


def natural(name: str) -> tuple[Any, ...]:
    """Natural sort key: ``ns2`` before ``ns10``.

    Examples
    --------
    >>> sorted(["ns10", "ns2", "ns1b"], key=natural)
    ['ns1b', 'ns2', 'ns10']
    """
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", name)
        if part
    )


def ns_order(name: str) -> tuple[Any, ...]:
    """Layout order: ``ns10``, ``ns11``, ... first, then any other name; natural order.

    Examples
    --------
    >>> sorted(["zeta", "ns10", "alpha", "ns9"], key=ns_order)
    ['ns9', 'ns10', 'alpha', 'zeta']
    """
    return (0 if re.fullmatch(r"ns\d+", name) else 1, natural(name), name)


def iface_ns(node: str, d: dict[str, Any]) -> str:
    """The namespace of an interface: its ``ns`` attribute, else from its id.

    Examples
    --------
    >>> iface_ns("if:red/eth0", {}), iface_ns("if:red/eth0", {"ns": "blue"})
    ('red', 'blue')
    """
    if "ns" in d:
        return str(d["ns"])
    return NodeId.parse(node).ns


def ifaces(graph: nx.Graph) -> dict[str, dict[str, Any]]:
    """Drawn interfaces (no loopback): node id to attributes.

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.Graph()
    >>> g.add_node("if:red/lo", kind="iface", type="loopback")
    >>> g.add_node("if:red/eth0", kind="iface", type="veth")
    >>> list(ifaces(g))
    ['if:red/eth0']
    """
    return {
        str(n): d
        for n, d in graph.nodes(data=True)
        if d.get("kind") == "iface" and d.get("type") != "loopback"
    }


def namespaces(graph: nx.Graph, drawn: dict[str, dict[str, Any]]) -> list[str]:
    """Every namespace that has a node or a drawn interface, in layout order.

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.Graph()
    >>> g.add_node("ns:ns10", kind="netns", name="ns10")
    >>> g.add_node("ns:alpha", kind="netns")
    >>> g.add_node("if:ns9/eth0", kind="iface", type="veth")
    >>> namespaces(g, ifaces(g))
    ['ns9', 'ns10', 'alpha']
    """
    names = {
        str(d["name"]) if "name" in d else NodeId.parse(str(n)).name
        for n, d in graph.nodes(data=True)
        if d.get("kind") == "netns"
    }
    names |= {iface_ns(n, d) for n, d in drawn.items()}
    return sorted(names, key=ns_order)


def edges(graph: nx.Graph, kind: str, drawn: dict[str, Any]) -> list[tuple[str, str]]:
    """Edges of ``kind`` between drawn interfaces, each pair and the list sorted.

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.Graph()
    >>> g.add_node("if:red/a", kind="iface")
    >>> g.add_node("if:blue/b", kind="iface")
    >>> g.add_edge("if:red/a", "if:blue/b", kind="veth")
    >>> edges(g, "veth", ifaces(g))
    [('if:blue/b', 'if:red/a')]
    """
    pairs = {
        (min(str(u), str(v)), max(str(u), str(v)))
        for u, v, d in graph.edges(data=True)
        if d.get("kind") == kind and u in drawn and v in drawn and u != v
    }
    return sorted(pairs)


def is_up(d: dict[str, Any]) -> bool:
    """Admin up and not reported down by the kernel (UNKNOWN counts as up).

    Examples
    --------
    >>> is_up({"up": True, "oper": "UNKNOWN"}), is_up({"up": True, "oper": "DOWN"})
    (True, False)
    """
    return bool(d.get("up", True)) and str(d.get("oper", "UNKNOWN")).upper() not in _DOWN_OPER
