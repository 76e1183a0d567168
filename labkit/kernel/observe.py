"""Read the live kernel: a :class:`Snapshot`, then a State or a graph.

:func:`snapshot` dumps every namespace of the sandbox (the host and each
name in ``/run/netns``) over netlink: links, IPv4 addresses, routes and
neighbour (ARP) entries. :func:`to_state` keeps what labkit compares;
:func:`to_graph` builds a networkx graph of everything, for drawing and
for checks. Nothing here remembers what labkit meant to build: a change
made by hand with ``ip`` shows up like any other.

Graph schema
------------
Nodes are strings:

* ``"ns:NAME"``: a namespace (``ns:host`` is the sandbox's host), with
  ``kind="netns"``, ``name``, ``routes`` (list of dicts: dst, via, dev,
  proto), ``neigh`` (list of dicts: ip, mac, dev, state), ``forwarding``
  (bool), ``rules`` (firewall rules of the host and the router, dicts:
  table, chain, spec, marked, packets, bytes) and ``services`` (ports of
  labkit web apps listening there);
* ``"if:NS/NAME"``: an interface, with ``kind="iface"``, ``ns``, ``name``,
  ``type`` (veth, bridge, loopback, ...), ``mac``, ``up`` (admin state),
  ``oper`` (UP, LOWERLAYERDOWN for up without carrier, or DOWN, from the
  flags: immediate; see :func:`labkit.kernel.rtnl.oper`), ``operstate``
  (the kernel's, as ``ip link`` prints it: it may lag, and says DOWN for a
  veth whose other end, in another namespace, is down), ``addrs`` (IPv4
  CIDRs) and ``master``.

Edges carry ``kind``: ``"in"`` (namespace to its interface), ``"veth"``
(the two ends of a cable) and ``"port"`` (bridge port to its bridge).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from labkit.core.model import (
    ACCEPT,
    FORWARDING,
    HOST,
    MARK,
    ROUTERS,
    Iface,
    Route,
    Rule,
    Service,
    State,
)
from labkit.errors import NamespaceGone
from labkit.kernel import netns, services

#: tables labkit reads and writes
TABLES = ("nat", "filter")
#: namespaces whose firewall is read besides the host's (the world's router)
RULE_NAMESPACES = tuple(ns for ns in ROUTERS if ns != HOST)


@dataclass
class Snapshot:
    """Plain-data dumps of every namespace, keyed by namespace name.

    Examples
    --------
    >>> Snapshot().namespaces
    []
    """

    links: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    addrs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    routes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    neigh: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    peers: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    sysctls: dict[str, dict[str, str]] = field(default_factory=dict)
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: chain policies of the host and the router: (table, chain) -> ACCEPT / DROP
    policies: dict[str, dict[tuple[str, str], str]] = field(default_factory=dict)
    services: list[dict[str, Any]] = field(default_factory=list)
    _by_index: dict[str, dict[int, dict[str, Any]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def namespaces(self) -> list[str]:
        """Lab namespaces (the host not included), sorted.

        Examples
        --------
        >>> Snapshot(links={"host": [], "red": []}).namespaces
        ['red']
        """
        return sorted(n for n in self.links if n != HOST)

    def link(self, ns: str, index: int) -> dict[str, Any] | None:
        """The link with ``index`` in ``ns``, or None.

        Examples
        --------
        >>> Snapshot(links={"host": [{"index": 1}]}).link("host", 1)
        {'index': 1}
        """
        by_index = self._by_index.get(ns)
        if by_index is None:
            by_index = {item["index"]: item for item in self.links.get(ns, [])}
            self._by_index[ns] = by_index
        return by_index.get(index)


def parse_rules(text: str, table: str) -> list[dict[str, Any]]:
    r"""Rules from ``iptables -t TABLE -v -S`` output, labkit's mark noted.

    Examples
    --------
    >>> out = "-P OUTPUT ACCEPT -c 0 0\n-A POSTROUTING -s 10.0.0.0/8 -m comment"
    >>> out += " --comment labkit -c 3 252 -j MASQUERADE"
    >>> parse_rules(out, "nat")[0]["spec"], parse_rules(out, "nat")[0]["packets"]
    ('-s 10.0.0.0/8 -j MASQUERADE', 3)
    """
    rules = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "-A":
            continue
        packets = nbytes = 0
        if "-c" in words:
            at = words.index("-c")
            packets, nbytes = int(words[at + 1]), int(words[at + 2])
            del words[at : at + 3]
        marked = False
        for i in range(len(words) - 3):
            if words[i : i + 4] == ["-m", "comment", "--comment", MARK]:
                del words[i : i + 4]
                marked = True
                break
        rules.append(
            {
                "table": table,
                "chain": words[1],
                "spec": " ".join(words[2:]),
                "marked": marked,
                "packets": packets,
                "bytes": nbytes,
            }
        )
    return rules


def read_firewall(
    nl: netns.Netlink, ns: str
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], str]]:
    """The rules (see :func:`parse_rules`) and chain policies of ``ns``'s tables.

    Runs ``iptables -v -S`` per table in :data:`TABLES`, on the netlink
    thread; a table iptables cannot read has no rules and no policies.

    Examples
    --------
    >>> nl = netns.get()
    >>> rules, policies = nl.call(read_firewall, nl, "host")  # doctest: +SKIP
    >>> policies[("filter", "FORWARD")]  # doctest: +SKIP
    'ACCEPT'
    """
    rules: list[dict[str, Any]] = []
    policies: dict[tuple[str, str], str] = {}
    for table in TABLES:
        proc = nl.run_in(ns, ["iptables", "-w", "-t", table, "-v", "-S"])
        if proc.returncode == 0:
            rules += parse_rules(proc.stdout, table)
            for line in proc.stdout.splitlines():
                words = line.split()
                if len(words) >= 3 and words[0] == "-P":
                    policies[(table, words[1])] = words[2]
    return rules, policies


def _collect(nl: netns.Netlink) -> Snapshot:
    snap = Snapshot()
    for ns in [HOST, *nl.netns_list()]:
        try:
            plain = nl.dump(ns)
            forwarding = "1" if nl.sock(ns).forwarding() else "0"
        except (OSError, NamespaceGone):
            continue  # deleted while we looked
        snap.links[ns] = plain["links"]
        snap.addrs[ns] = plain["addrs"]
        snap.routes[ns] = plain["routes"]
        snap.neigh[ns] = plain["neigh"]
        snap.sysctls[ns] = {FORWARDING: forwarding or "0"}
    for ns in [HOST, *(n for n in RULE_NAMESPACES if n in snap.links)]:
        snap.rules[ns], policies = read_firewall(nl, ns)
        if policies:
            snap.policies[ns] = policies
    snap.services = services.running(list(snap.links))
    _pair_veths(nl, snap)
    return snap


def _pair_veths(nl: netns.Netlink, snap: Snapshot) -> None:
    """Find the other end of every veth, across namespaces."""
    veths = [
        (ns, link)
        for ns, links in snap.links.items()
        for link in links
        if link["kind"] == "veth" and link["peer_index"]
    ]
    # (index, peer's index) -> namespaces with such a veth: O(1) per lookup
    by_pair: dict[tuple[int, int], list[str]] = {}
    for ns, link in veths:
        by_pair.setdefault((link["index"], link["peer_index"]), []).append(ns)
    wanted: dict[str, set[str]] = {}  # namespace -> namespaces whose nsid it must tell
    found: list[tuple[str, dict[str, Any], list[str]]] = []
    for ns, link in veths:
        if link["peer_nsid"] is None:
            snap.peers[(ns, link["index"])] = (ns, link["peer_index"])
            continue
        candidates = [
            other for other in by_pair.get((link["peer_index"], link["index"]), []) if other != ns
        ]
        found.append((ns, link, candidates))
        wanted.setdefault(ns, set()).update(candidates)
    # Each namespace numbers its own links, so indexes repeat across
    # namespaces (a veth made in a new namespace is often 2 there; one moved
    # in keeps its number unless it is taken), and a match by index alone
    # can be another pair: check the namespace ids.
    ids: dict[str, dict[str, int]] = {}
    for ns, others in wanted.items():
        names = sorted(others)
        fds = []
        try:
            for other in names:
                fds.append(nl.ns_fd(other))
            got = nl.sock(ns).nsids(fds)
        except (OSError, NamespaceGone):
            got = [-1] * len(names)
        finally:
            for fd in fds:
                os.close(fd)
        ids[ns] = dict(zip(names, got, strict=False))
    for ns, link, candidates in found:
        # a peer in a namespace without a name (kept alive by a process) has
        # no candidate with its id: the veth stays without a peer
        sure = [
            c
            for c in candidates
            if link["peer_nsid"] >= 0 and ids.get(ns, {}).get(c) == link["peer_nsid"]
        ]
        if len(sure) == 1:
            snap.peers[(ns, link["index"])] = (sure[0], link["peer_index"])


def snapshot() -> Snapshot:
    """Read every namespace of the sandbox from the kernel.

    Examples
    --------
    >>> from labkit.kernel.observe import snapshot
    >>> snapshot().namespaces  # doctest: +SKIP
    ['blue', 'red']
    """
    nl = netns.get()
    return nl.call(_collect, nl)


def to_state(snap: Snapshot) -> State:
    """The parts of a snapshot that labkit compares (no loopback, no MACs).

    Examples
    --------
    >>> to_state(Snapshot(links={"host": []})).namespaces
    set()
    >>> fwd = {"host": {FORWARDING: "0"}, "red": {FORWARDING: "1"}}
    >>> to_state(Snapshot(links={"host": [], "red": []}, sysctls=fwd)).sysctls
    {('host', 'net.ipv4.ip_forward'): '0'}
    >>> closed = {"host": {("filter", "FORWARD"): "DROP", ("filter", "INPUT"): "ACCEPT"}}
    >>> to_state(Snapshot(links={"host": []}, policies=closed)).policies
    {('host', 'filter', 'FORWARD'): 'DROP'}
    """
    state = State(namespaces=set(snap.namespaces))
    for ns, links in snap.links.items():
        names = {item["index"]: item["name"] for item in links}
        up = {item["index"] for item in links if item["up"]}
        # An address whose connected route is gone (a learner flushed the
        # routes) cannot be used: count it as missing, so it is added again.
        connected = {(r["dst"], r["dev"]) for r in snap.routes.get(ns, []) if not r["via"]}
        addrs: dict[int, set[str]] = {}
        broken: list[ipaddress.IPv4Network] = []
        for a in snap.addrs.get(ns, []):
            iface = ipaddress.ip_interface(a["cidr"])
            net = str(iface.network)
            if (
                a["index"] in up
                and iface.network.prefixlen < 32
                and (net, names.get(a["index"])) not in connected
                and names.get(a["index"]) != "lo"
            ):
                broken.append(iface.network)  # routes through it go when it is re-added
                continue
            addrs.setdefault(a["index"], set()).add(str(iface))
        for link in links:
            if link["kind"] == "loopback":
                continue
            peer = None
            where = snap.peers.get((ns, link["index"]))
            if where:
                other = snap.link(*where)
                peer = (where[0], other["name"]) if other else None
            iface = Iface(
                ns=ns,
                name=link["name"],
                kind=link["kind"],
                peer=peer,
                master=names.get(link["master"]) if link["master"] else None,
                up=link["up"],
                addrs=frozenset(addrs.get(link["index"], ())),
            )
            state.ifaces[iface.key] = iface
        for r in snap.routes.get(ns, []):
            if r["via"] and r["proto"] != "kernel":
                if any(ipaddress.ip_address(r["via"]) in net for net in broken):
                    continue
                state.routes.add(Route(ns, r["dst"], r["via"]))
    # forwarding of the namespaces that route in the course only: elsewhere it is
    # the machine's (1 where Docker runs), which the course does not care about
    state.sysctls = {
        (ns, key): value
        for ns, values in snap.sysctls.items()
        if ns in ROUTERS
        for key, value in values.items()
    }
    for ns, rules in snap.rules.items():
        for r in rules:
            rule = Rule(ns, r["table"], r["chain"], r["spec"])
            state.rules.add(rule)
            if r["marked"]:
                state.marked.add(rule)
    state.services = {Service(s["ns"], s["port"]) for s in snap.services}
    state.policies = {
        (ns, table, chain): value
        for ns, chains in snap.policies.items()
        for (table, chain), value in chains.items()
        if value != ACCEPT
    }
    return state


def to_graph(snap: Snapshot) -> nx.Graph:
    """A networkx graph of the snapshot (see the module docstring).

    Examples
    --------
    >>> g = to_graph(Snapshot(links={"host": []}))
    >>> sorted(g.nodes)
    ['ns:host']
    """
    g = nx.Graph(namespaces=[HOST, *snap.namespaces])
    for ns in [HOST, *snap.namespaces]:
        if ns not in snap.links:
            continue
        g.add_node(
            f"ns:{ns}",
            kind="netns",
            name=ns,
            routes=snap.routes.get(ns, []),
            neigh=snap.neigh.get(ns, []),
            forwarding=snap.sysctls.get(ns, {}).get(FORWARDING) == "1",
            rules=snap.rules.get(ns, []),
            services=[s["port"] for s in snap.services if s["ns"] == ns],
        )
        names = {item["index"]: item["name"] for item in snap.links[ns]}
        addrs: dict[int, list[str]] = {}
        for a in snap.addrs.get(ns, []):
            addrs.setdefault(a["index"], []).append(a["cidr"])
        for link in snap.links[ns]:
            node = f"if:{ns}/{link['name']}"
            g.add_node(
                node,
                kind="iface",
                ns=ns,
                name=link["name"],
                type=link["kind"],
                mac=link["mac"],
                up=link["up"],
                oper=link["oper"],
                operstate=link.get("operstate", link["oper"]),
                addrs=sorted(addrs.get(link["index"], [])),
                master=names.get(link["master"]) if link["master"] else None,
            )
            g.add_edge(f"ns:{ns}", node, kind="in")
    for ns in snap.links:
        names = {item["index"]: item["name"] for item in snap.links[ns]}
        for link in snap.links[ns]:
            node = f"if:{ns}/{link['name']}"
            if link["master"] and link["master"] in names:
                g.add_edge(node, f"if:{ns}/{names[link['master']]}", kind="port")
            where = snap.peers.get((ns, link["index"]))
            other = snap.link(*where) if where else None
            if where and other:
                g.add_edge(node, f"if:{where[0]}/{other['name']}", kind="veth")
    return g


def graph() -> nx.Graph:
    """Read the kernel and return the graph of the whole sandbox.

    Examples
    --------
    >>> from labkit.kernel.observe import graph
    >>> g = graph()  # doctest: +SKIP
    >>> g.nodes["if:red/veth-red"]["addrs"]  # doctest: +SKIP
    ['192.168.15.1/24']
    """
    return to_graph(snapshot())
