"""Drawing: a deterministic layout, and figures that show what the kernel has.

The graphs come from the real kernel, each built in a fresh sandbox (which
always has the outside world: router, lan-pc, internet) with the
tutorial's own ``ip`` commands, or with :class:`labkit.Lab` for the later
stages; the tests at the end use hand-made graphs only.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys

import networkx as nx
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from labkit.draw import COMPACT_ABOVE, DENSE_ABOVE, FIGSIZE, draw, layout, save, trace_steps
from labkit.world import run_in_lab

FIGURE_REPR = "<LabkitFigure size 900x700 with 1 Axes>"
WORLD = ["ns:router", "ns:lan-pc", "ns:internet"]


# -- graphs from the kernel (these functions run inside a sandbox) -----------------


def sh(*commands: str) -> None:
    for command in commands:
        subprocess.run(command, shell=True, check=True, capture_output=True)


def ip_batch(lines: list[str], ns: str | None = None) -> None:
    argv = ["ip", "-batch", "-"] if ns is None else ["ip", "-n", ns, "-batch", "-"]
    subprocess.run(argv, input="\n".join(lines) + "\n", text=True, check=True)


def lab_names(count: int) -> list[tuple[str, int]]:
    """red .1, blue .2, then ns10 .10, ns11 .11, ... as in the tutorial."""
    return [("red", 1), ("blue", 2)] + [(f"ns{i}", i) for i in range(10, 8 + count)]


def build(stage: str, count: int = 2) -> nx.Graph:
    from labkit.kernel.observe import graph

    if stage == "veth":
        sh(
            "ip netns add red",
            "ip netns add blue",
            "ip link add veth-red type veth peer name veth-blue",
            "ip link set veth-red netns red",
            "ip link set veth-blue netns blue",
            "ip -n red addr add 192.168.15.1/24 dev veth-red",
            "ip -n blue addr add 192.168.15.2/24 dev veth-blue",
            "ip -n red link set veth-red up",
            "ip -n blue link set veth-blue up",
        )
        return graph()
    lines = ["link add v-net-0 type bridge", "link set v-net-0 up"]
    for x, _ in lab_names(count):
        lines += [
            f"netns add {x}",
            f"link add veth-{x} type veth peer name veth-{x}-br",
            f"link set veth-{x} netns {x}",
            f"link set veth-{x}-br master v-net-0",
            f"link set veth-{x}-br up",
        ]
    if stage == "host":
        lines.append("addr add 192.168.15.5/24 dev v-net-0")
    ip_batch(lines)
    for x, n in lab_names(count):
        ip_batch([f"addr add 192.168.15.{n}/24 dev veth-{x}", f"link set veth-{x} up"], ns=x)
    return graph()


def build_stage(stage: str) -> nx.Graph:
    """A stage built by labkit, with some traffic through the NAT rules."""
    from labkit import Lab
    from labkit.kernel.observe import graph

    lab = Lab(namespaces=2)
    if stage != "reset":
        lab.goto(stage)
    if stage == "portforward":
        lab.http("lan-pc", "http://192.168.1.2/")  # through the host's DNAT
        lab.ping("red", "203.0.113.8", count=1)  # through both MASQUERADEs
    return graph()


def build_with_blue_down() -> nx.Graph:
    from labkit.kernel.observe import graph

    build("veth")
    sh("ip -n blue link set veth-blue down")
    return graph()


@pytest.fixture(scope="module")
def graphs() -> dict[str, nx.Graph]:
    return {
        "reset": run_in_lab(build_stage, "reset"),
        "veth": run_in_lab(build, "veth"),
        "bridge": run_in_lab(build, "bridge", 2),
        "bridge20": run_in_lab(build, "bridge", 20),
        "host": run_in_lab(build, "host", 2),
        "host100": run_in_lab(build, "host", 100),
        "portforward": run_in_lab(build_stage, "portforward"),
    }


SMALL = ["veth", "bridge", "host"]


def texts(fig: Figure) -> set[str]:
    """Every line of every text in the figure's Axes, its title included."""
    ax = fig.axes[0]
    return {line for t in [*ax.texts, ax.title] for line in t.get_text().splitlines()}


def artist(fig: Figure, gid: str):
    ax = fig.axes[0]
    found = [a for a in [*ax.lines, *ax.patches] if a.get_gid() == gid]
    assert len(found) == 1, f"{gid}: {len(found)} artists"
    return found[0]


# -- layout ------------------------------------------------------------------------


def test_the_graphs_are_what_the_tutorial_builds(graphs):
    assert graphs["veth"].has_edge("if:red/veth-red", "if:blue/veth-blue")
    assert graphs["host"].nodes["if:host/v-net-0"]["addrs"] == ["192.168.15.5/24"]
    assert len(graphs["bridge20"].graph["namespaces"]) == 24  # with the world
    assert len(graphs["host100"].graph["namespaces"]) == 104
    assert set(graphs["reset"].graph["namespaces"]) == {"host", "router", "lan-pc", "internet"}
    rules = graphs["portforward"].nodes["ns:host"]["rules"]
    assert {(r["chain"], r["spec"].split()[-2]) for r in rules} >= {
        ("PREROUTING", "--to-destination"),
        ("POSTROUTING", "-j"),
    }


ALL = ["reset", "veth", "bridge", "bridge20", "host", "host100", "portforward"]


@pytest.mark.parametrize("name", ALL)
def test_layout_is_deterministic_and_ignores_insertion_order(graphs, name):
    g = graphs[name]
    first = layout(g)
    assert layout(g) == first
    shuffled = nx.Graph(**g.graph)
    nodes, edges = list(g.nodes(data=True)), list(g.edges(data=True))
    random.Random(7).shuffle(nodes)
    random.Random(8).shuffle(edges)
    shuffled.add_nodes_from(nodes)
    shuffled.add_edges_from(edges)
    assert layout(shuffled) == first


def test_red_blue_and_host_keep_their_place_from_stage_to_stage(graphs):
    names = ["veth", "bridge", "host", "portforward", "bridge20", "host100"]
    places = [layout(graphs[name]) for name in names]
    for node in ["ns:red", "ns:blue", "ns:host", *WORLD]:
        assert {p[node] for p in places} == {places[0][node]}
    assert layout(graphs["reset"])["ns:host"] == places[0]["ns:host"]
    pos = places[0]
    assert pos["ns:red"][0] < pos["ns:host"][0] < pos["ns:blue"][0]
    assert pos["ns:host"][1] > pos["ns:red"][1] == pos["ns:blue"][1]


@pytest.mark.parametrize("name", ["reset", "veth", "host", "portforward", "host100"])
def test_the_world_is_above_the_host(graphs, name):
    pos = layout(graphs[name])
    host = pos["ns:host"]
    for node in WORLD:
        assert pos[node][1] > host[1], node
    for node in ["if:router/br-lan", "if:router/lan-host", "if:router/wan0", "if:internet/eth0"]:
        assert pos[node][1] > host[1], node
    assert pos["ns:lan-pc"][0] < pos["ns:router"][0] < pos["ns:internet"][0]
    # the cable to the router leaves the host's top side, straight up
    assert pos["if:host/eth0"][0] == pos["if:router/lan-host"][0] == host[0]
    assert pos["if:host/eth0"][1] < pos["if:router/lan-host"][1]


@pytest.mark.parametrize("name", ALL)
def test_every_namespace_and_interface_but_loopback_has_a_place(graphs, name):
    g = graphs[name]
    pos = layout(g)
    for node, d in g.nodes(data=True):
        loopback = d["kind"] == "iface" and d["type"] == "loopback"
        assert (node in pos) != loopback, node
    assert all(f"ns:{ns}" in pos for ns in g.graph["namespaces"])


def test_interfaces_face_the_other_end_of_their_cable(graphs):
    pos = layout(graphs["veth"])
    assert pos["if:red/veth-red"][0] > pos["ns:red"][0]  # red faces blue, on its right
    assert pos["if:blue/veth-blue"][0] < pos["ns:blue"][0]
    pos = layout(graphs["host"])
    assert pos["if:red/veth-red"][1] > pos["ns:red"][1]  # red faces up, to the host
    port = pos["if:host/veth-red-br"]
    assert port[0] < pos["ns:host"][0] and port[1] < pos["ns:host"][1]
    assert pos["if:host/v-net-0"] != port


def test_other_namespaces_go_below_in_natural_order(graphs):
    pos = layout(graphs["bridge20"])
    order = sorted(
        (n for n in graphs["bridge20"].graph["namespaces"] if n.startswith("ns")),
        key=lambda n: (-pos[f"ns:{n}"][1], pos[f"ns:{n}"][0]),
    )
    assert order == [f"ns{i}" for i in range(10, 28)]
    assert max(pos[f"ns:ns{i}"][1] for i in range(10, 28)) < pos["ns:red"][1]


# -- draw --------------------------------------------------------------------------


def test_the_world_is_drawn_with_addresses_at_the_cable_ends(graphs):
    fig = draw(graphs["reset"])
    assert repr(fig) == FIGURE_REPR
    words = texts(fig)
    assert {"router", "lan-pc", "internet", "br-lan", "lan-host", "wan0", "eth0"} <= words
    assert {"192.168.1.1/24", "192.168.1.2/24", "192.168.1.3/24", "198.51.100.2/24"} <= words
    assert {"198.51.100.1/24", "203.0.113.8/24"} <= words
    assert {"forwarding", "default via 198.51.100.1", "web :80"} <= words  # router, internet
    assert "NAT: MASQUERADE -o wan0 [0 pkts]" in words
    assert "default via 192.168.1.1" in words  # the host and lan-pc
    artist(fig, "veth:if:host/eth0|if:router/lan-host")
    artist(fig, "port:if:router/lan-pc|if:router/br-lan")
    artist(fig, "ns:internet")  # the cloud


def test_the_portforward_stage_shows_nat_rules_with_their_counters(graphs):
    fig = draw(graphs["portforward"])
    assert repr(fig) == FIGURE_REPR
    words = texts(fig)
    assert {"192.168.1.2/24", "192.168.15.5/24", "192.168.15.2/24"} <= words
    assert any("203.0.113.8" in w for w in words)
    dnat = [w for w in words if w.startswith("PREROUTING DNAT")]
    assert len(dnat) == 1
    assert re.fullmatch(
        r"PREROUTING DNAT 192\.168\.1\.2:80 → 192\.168\.15\.2:80 \[[1-9]\d* pkts?\]", dnat[0]
    )
    assert any(re.fullmatch(r"OUTPUT DNAT .* \[\d+ pkts?\]", w) for w in words)
    assert any(
        re.fullmatch(r"POSTROUTING MASQUERADE -s 192\.168\.15\.0/24 \[[1-9]\d* pkts?\]", w)
        for w in words
    )
    assert {
        "forwarding",
        "web :80",
        "default via 192.168.15.5",
        "192.168.1.0/24 via 192.168.15.5",
    } <= words
    assert not any(w.startswith("*") for w in words)  # every rule is labkit's


@pytest.mark.parametrize("name", SMALL)
def test_small_graphs_show_names_and_addresses(graphs, name):
    fig = draw(graphs[name])
    assert isinstance(fig, Figure)
    assert repr(fig) == FIGURE_REPR
    assert len(fig.axes) == 1
    words = texts(fig)
    assert {"red", "blue", "veth-red", "veth-blue", "192.168.15.1/24", "192.168.15.2/24"} <= words
    assert "lo" not in words and "127.0.0.1/8" not in words
    if name != "veth":
        assert {"v-net-0", "veth-red-br", "veth-blue-br"} <= words
        artist(fig, "port:if:host/veth-red-br|if:host/v-net-0")
    if name == "host":
        assert "192.168.15.5/24" in words


def test_cables_are_solid_when_up_and_dashed_when_an_end_is_down(graphs):
    cable = "veth:if:blue/veth-blue|if:red/veth-red"
    assert artist(draw(graphs["veth"]), cable).get_linestyle() == "-"
    fig = draw(run_in_lab(build_with_blue_down))
    assert artist(fig, cable).get_linestyle() == "--"
    assert artist(fig, "if:blue/veth-blue").get_markerfacecolor() == "white"


def test_twenty_namespaces_show_every_name_and_address(graphs):
    fig = draw(graphs["bridge20"], title="20 namespaces")
    assert repr(fig) == FIGURE_REPR
    words = texts(fig)
    assert {"red", "blue", "ns10", "ns27", "20 namespaces"} <= words
    assert {"192.168.15.1/24", "192.168.15.27/24"} <= words
    assert {"192.168.1.2/24", "lan-host", "198.51.100.2/24"} <= words  # the world: in full


def test_a_hundred_namespaces_save_as_a_png(graphs, tmp_path):
    g = graphs["host100"]
    assert len(g.graph["namespaces"]) - 1 > COMPACT_ABOVE
    fig = draw(g)
    assert repr(fig) == FIGURE_REPR
    words = texts(fig)
    assert {"red", "blue", "ns10", "ns107", "v-net-0"} <= words
    assert "veth-ns50" not in words  # compact: no per-interface labels
    assert {"eth0", "192.168.1.2/24", "203.0.113.8/24", "default via 192.168.1.1"} <= words
    path = tmp_path / "hundred.png"
    save(g, path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    height, width, _ = imread(path).shape
    assert (width, height) == (FIGSIZE[0] * 150, FIGSIZE[1] * 150)


# -- a hand-made graph, no kernel ------------------------------------------------


def iface(g: nx.Graph, ns: str, name: str, **attrs) -> str:
    node = f"if:{ns}/{name}"
    attrs = {
        "type": "veth",
        "mac": "02:00:00:00:00:01",
        "up": True,
        "oper": "UP",
        "addrs": [],
        "master": None,
        **attrs,
    }
    g.add_node(node, kind="iface", ns=ns, name=name, **attrs)
    if f"ns:{ns}" in g:
        g.add_edge(f"ns:{ns}", node, kind="in")
    return node


def hand_made() -> nx.Graph:
    """Two namespaces on a cable with one end down, plus the odd cases:
    an interface with no peer, a pair inside one namespace, a loopback, and
    a namespace with no node of its own."""
    g = nx.Graph(namespaces=["host", "red", "blue", "router"])
    for ns in ["host", "red", "blue", "router"]:
        g.add_node(f"ns:{ns}", kind="netns", name=ns, routes=[], neigh=[])
    a = iface(g, "red", "veth-red", addrs=["10.1.0.1/24"], mac="02:00:00:00:00:aa")
    b = iface(g, "blue", "veth-blue", addrs=["10.1.0.2/24"], up=False, oper="DOWN")
    g.add_edge(a, b, kind="veth")
    iface(g, "red", "lo", type="loopback", addrs=["127.0.0.1/8"])
    iface(g, "router", "orphan", oper="LOWERLAYERDOWN")
    c, d = iface(g, "blue", "in-a"), iface(g, "blue", "in-b")
    g.add_edge(c, d, kind="veth")
    iface(g, "ghost", "eth0", type="other", addrs=["10.9.0.1/24"])
    return g


def test_hand_made_graph_without_a_kernel():
    g = hand_made()
    before = (nx.to_dict_of_dicts(g), dict(g.nodes(data=True)))
    pos = layout(g)
    assert (nx.to_dict_of_dicts(g), dict(g.nodes(data=True))) == before  # pure
    assert "if:red/lo" not in pos
    assert {"ns:ghost", "if:ghost/eth0", "if:router/orphan", "if:blue/in-a"} <= set(pos)
    assert pos["ns:router"][1] > pos["ns:red"][1]  # a name of the world: above
    assert pos["ns:ghost"][1] < pos["ns:red"][1]  # another name: in the rows below
    assert pos["if:blue/in-a"] != pos["if:blue/in-b"]

    fig = draw(g, show_macs=True, title="by hand")
    words = texts(fig)
    assert {"by hand", "router", "ghost", "orphan", "10.1.0.1/24", "02:00:00:00:00:aa"} <= words
    assert artist(fig, "veth:if:blue/veth-blue|if:red/veth-red").get_linestyle() == "--"
    assert artist(fig, "veth:if:blue/in-a|if:blue/in-b").get_linestyle() == "-"
    assert "10.1.0.1/24" not in texts(draw(g, show_addresses=False))


def test_names_sort_naturally_with_other_names_after():
    g = nx.Graph()
    for ns in ["zeta", "ns100", "alpha", "ns9", "ns10"]:
        g.add_node(f"ns:{ns}", kind="netns", name=ns)
    pos = layout(g)
    order = sorted(
        ["zeta", "ns100", "alpha", "ns9", "ns10"],
        key=lambda n: (-pos[f"ns:{n}"][1], pos[f"ns:{n}"][0]),
    )
    assert order == ["ns9", "ns10", "ns100", "alpha", "zeta"]


def test_draw_into_a_given_axes_and_move_a_namespace():
    g = hand_made()
    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    auto = layout(g)
    moved = (auto["ns:red"][0] + 1.0, auto["ns:red"][1] - 0.5)
    assert draw(g, pos={"ns:red": moved}, ax=ax) is fig
    assert len(fig.axes) == 1
    dot = artist(fig, "if:red/veth-red")
    x, y = auto["if:red/veth-red"]
    assert (dot.get_xdata()[0], dot.get_ydata()[0]) == pytest.approx((x + 1.0, y - 0.5))


def rule(chain: str, spec: str, packets: int = 0, marked: bool = True) -> dict:
    return {
        "table": "nat",
        "chain": chain,
        "spec": spec,
        "marked": marked,
        "packets": packets,
        "bytes": 60 * packets,
    }


def test_notes_rules_made_by_hand_and_many_namespaces():
    g = nx.Graph(namespaces=["host", "red", "router"])
    dnat = "-d 192.168.1.2/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.0.1:53"
    host_rules = [
        rule("PREROUTING", dnat, packets=1),
        rule("POSTROUTING", "-o eth0 -j MASQUERADE", packets=12, marked=False),
        {**rule("INPUT", "-p tcp -j ACCEPT"), "table": "filter"},
    ]
    routes = [{"dst": "10.9.0.0/16", "via": "10.0.0.9"}, {"dst": "default", "via": "10.0.0.1"}]
    g.add_node("ns:host", kind="netns", name="host", forwarding=True, rules=host_rules)
    g.add_node("ns:red", kind="netns", name="red", routes=routes, services=[8080, 80])
    g.add_node("ns:router", kind="netns", name="router", rules=[rule("POSTROUTING", "-j SNAT")])
    words = texts(draw(g))
    assert {"PREROUTING DNAT udp 192.168.1.2:53 → 10.0.0.1:53 [1 pkt]"} <= words
    assert {"* POSTROUTING MASQUERADE -o eth0 [12 pkts]", "+ 1 filter rule"} <= words
    assert {"NAT: SNAT [0 pkts]", "forwarding"} <= words
    assert {"web :80 :8080", "default via 10.0.0.1", "10.9.0.0/16 via 10.0.0.9"} <= words
    legend = [t.get_text() for t in draw(g).axes[0].get_legend().get_texts()]
    assert "* rule made by hand" in legend

    many = [rule("POSTROUTING", f"-s 10.{i}.0.0/16 -j MASQUERADE") for i in range(9)]
    g.nodes["ns:host"]["rules"] = many
    words = texts(draw(g))
    assert "POSTROUTING MASQUERADE -s 10.2.0.0/16 [0 pkts]" in words
    assert "POSTROUTING MASQUERADE -s 10.3.0.0/16 [0 pkts]" not in words
    assert "+ 6 more NAT rules" in words
    assert "* rule made by hand" not in [
        t.get_text() for t in draw(g).axes[0].get_legend().get_texts()
    ]

    for i in range(10, 10 + COMPACT_ABOVE):  # many lab namespaces: no notes in theirs
        g.add_node(f"ns:ns{i}", kind="netns", name=f"ns{i}", routes=routes)
    words = texts(draw(g))
    assert "default via 10.0.0.1" not in words and "web :80 :8080" not in words
    assert {"forwarding", "+ 6 more NAT rules", "NAT: SNAT [0 pkts]"} <= words


# -- hundreds of namespaces (hand-made, no kernel) ---------------------------------


def bridge_graph(count: int, down: tuple[str, ...] = ()) -> nx.Graph:
    """The bridge stage with ``count`` lab namespaces, as observe makes it, and
    the host's cable to the router; the namespace ends in ``down`` are down."""
    names = ["red", "blue"] + [f"ns{i}" for i in range(10, 8 + count)]
    g = nx.Graph(namespaces=["host", *names, "router"])
    for ns in ["host", *names, "router"]:
        g.add_node(f"ns:{ns}", kind="netns", name=ns, routes=[], neigh=[])
    bridge = iface(g, "host", "v-net-0", type="bridge")
    g.add_edge(iface(g, "host", "eth0"), iface(g, "router", "lan-host"), kind="veth")
    for ns in names:
        end = iface(g, ns, f"veth-{ns}", up=ns not in down, oper="DOWN" if ns in down else "UP")
        port = iface(g, "host", f"veth-{ns}-br", master="v-net-0")
        g.add_edge(end, port, kind="veth")
        g.add_edge(port, bridge, kind="port")
    return g


def test_hundreds_of_namespaces_are_tiles_in_rows_named_at_both_ends():
    g = bridge_graph(500)
    fig = draw(g)
    assert repr(fig) == FIGURE_REPR
    ax = fig.axes[0]
    rows = [t for t in ax.texts if str(t.get_gid()).startswith("row:")]
    words = {t.get_text() for t in rows}
    assert {"ns10", "ns507"} <= words  # the first and the last namespace
    assert "ns200" not in texts(fig) - words  # no name inside a tile
    assert {"red", "blue", "v-net-0", "eth0"} <= texts(fig)
    assert min(t.get_fontsize() for t in rows) >= 4.5  # still readable
    # every row has its first name on the left and (but the last row) its last on the right
    pos = layout(g)
    ys = sorted({pos[f"ns:ns{i}"][1] for i in range(10, 508)}, reverse=True)
    assert len(rows) == 2 * len(ys)
    by_y: dict[float, list[str]] = {}
    for i in range(10, 508):
        by_y.setdefault(pos[f"ns:ns{i}"][1], []).append(f"ns{i}")
    for y in ys:
        first, last = by_y[y][0], by_y[y][-1]
        left = [t for t in rows if t.get_text() == first][0]
        right = [t for t in rows if t.get_text() == last][0]
        assert left.get_position()[0] < pos[f"ns:{first}"][0] < pos[f"ns:{last}"][0]
        assert right.get_position()[0] > pos[f"ns:{last}"][0]
    # all inside the picture
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in pos.values())


def test_hundreds_of_cables_end_on_the_bottom_of_the_host():
    g = bridge_graph(500)
    pos = layout(g)
    host_x, host_y = pos["ns:host"]
    bottom = min(y for n, (_, y) in pos.items() if n.startswith("if:host/veth-"))
    ends = [pos[f"if:host/veth-ns{i}-br"] for i in range(10, 508)]
    assert {y for _, y in ends} == {bottom} and bottom < host_y
    xs = sorted(x for x, _ in ends)
    assert abs(xs[0] - host_x) < 3.8 and abs(xs[-1] - host_x) < 3.8  # within the box
    assert len(set(xs)) == len(xs)  # no two on the same spot
    # the cable to the router keeps its place at the top, facing it
    assert pos["if:host/eth0"] == layout(bridge_graph(2))["if:host/eth0"]
    assert pos["if:host/eth0"][1] > host_y


def test_hundreds_of_cables_are_drawn_as_a_few_collections():
    fig = draw(bridge_graph(300, down=("ns42",)))
    ax = fig.axes[0]
    gids = {str(c.get_gid()) for c in ax.collections}
    assert {"veths:up", "veths:down", "ports:up"} <= gids
    (down,) = [c for c in ax.collections if c.get_gid() == "veths:down"]
    assert len(down.get_segments()) == 1
    (up,) = [c for c in ax.collections if c.get_gid() == "veths:up"]
    assert len(up.get_segments()) == 299
    (hollow,) = [a for a in ax.lines if a.get_gid() == "ifaces:down"]
    assert hollow.get_markerfacecolor() == "white" and len(hollow.get_xdata()) == 1
    assert len(ax.lines) < 20  # not one line per cable
    assert artist(fig, "veth:if:host/eth0|if:router/lan-host").get_linestyle() == "-"


def test_names_stay_in_their_tiles_up_to_dense_above():
    words = texts(draw(bridge_graph(DENSE_ABOVE)))
    assert {"ns10", "ns100", "ns135"} <= words
    fig = draw(bridge_graph(DENSE_ABOVE + 1))
    rows = {t.get_text() for t in fig.axes[0].texts if str(t.get_gid()).startswith("row:")}
    assert "ns10" in rows and "ns100" not in texts(fig)


# -- a packet trace on the graph ---------------------------------------------------

REQUEST, REPLY = "request", "reply"


def hand_trace():
    """red pings the router through the host, which masquerades: what
    :func:`labkit.trace.trace` would see, by hand."""
    from labkit.trace import Sighting, Trace

    red, host, router = "192.168.15.1", "192.168.1.2", "192.168.1.1"
    hops = [
        ("red", "veth-red", "out", red, router, REQUEST),
        ("host", "veth-red-br", "in", red, router, REQUEST),
        ("host", "v-net-0", "in", red, router, REQUEST),
        ("host", "eth0", "out", host, router, REQUEST),  # the host's NAT
        ("router", "lan-host", "in", host, router, REQUEST),
        ("router", "lan-host", "out", router, host, REPLY),
        ("host", "eth0", "in", router, host, REPLY),
        ("host", "v-net-0", "out", router, red, REPLY),  # NAT undone
        ("host", "veth-red-br", "out", router, red, REPLY),
        ("red", "veth-red", "in", router, red, REPLY),
    ]
    sightings = [Sighting(i / 1000, *hop) for i, hop in enumerate(hops)]
    return Trace("red", router, sightings, answered=True)


def numbers(fig: Figure) -> dict[int, tuple[float, float]]:
    """Hop number -> where it is written."""
    found = {}
    for t in fig.axes[0].texts:
        gid = str(t.get_gid())
        if gid.startswith("hop:"):
            assert t.get_text() == gid[4:]
            found[int(gid[4:])] = tuple(t.get_position())
    return found


def test_a_trace_numbers_its_hops_at_the_interfaces_that_saw_them():
    g = bridge_graph(2)
    t = hand_trace()
    fig = draw(g, trace=t)
    assert repr(fig) == FIGURE_REPR
    at = numbers(fig)
    assert sorted(at) == list(range(1, 11))
    pos = layout(g)
    ifaces = {n: p for n, p in pos.items() if n.startswith("if:")}
    for n, s in enumerate(t.sightings, 1):
        mine = pos[f"if:{s.where}"]
        # near its interface, and nearer to it than to any other interface
        assert abs(complex(*at[n]) - complex(*mine)) < 0.8, (n, s.where)
        nearest = min(ifaces, key=lambda i: abs(complex(*ifaces[i]) - complex(*at[n])))
        assert nearest == f"if:{s.where}", (n, nearest)
    # two hops on one interface (request out, reply in) do not cover each other
    for a, b in [(1, 10), (2, 9), (3, 8), (4, 7), (5, 6)]:
        assert abs(complex(*at[a]) - complex(*at[b])) > 0.25
    # the request in one colour, the reply in another
    marks = {a.get_gid(): a.get_markerfacecolor() for a in fig.axes[0].lines}
    request = {marks[f"hop-mark:{n}"] for n in range(1, 6)}
    reply = {marks[f"hop-mark:{n}"] for n in range(6, 11)}
    assert len(request) == len(reply) == 1 and request != reply
    legend = [x.get_text() for x in fig.axes[0].get_legend().get_texts()]
    assert {"hop of the request (in order)", "hop of the reply"} <= set(legend)
    assert fig.axes[0].get_title() == "red pings 192.168.1.1: 10 hops, the reply came back"


def test_a_trace_marks_where_nat_changed_an_address():
    fig = draw(bridge_graph(2), trace=hand_trace())
    nat = {t.get_gid(): t.get_text() for t in fig.axes[0].texts if "nat:" in str(t.get_gid())}
    assert nat == {"nat:4": "src \u2192 192.168.1.2", "nat:8": "dst \u2192 192.168.15.1"}
    at = numbers(fig)
    label = next(t for t in fig.axes[0].texts if t.get_gid() == "nat:4")
    assert abs(complex(*label.get_position()) - complex(*at[4])) < 1.5  # beside hop 4


def test_a_trace_steps_through_its_hops_without_moving_them():
    g, t = bridge_graph(2), hand_trace()
    whole = numbers(draw(g, trace=t))
    fig = draw(g, trace=t, upto=4)
    assert numbers(fig) == {n: whole[n] for n in range(1, 5)}
    assert fig.axes[0].get_title() == (
        "hop 4 of 10: host eth0 out, 192.168.1.2 \u2192 192.168.1.1 (request)"
    )
    assert "src \u2192 192.168.1.2" in texts(fig)  # hop 4's NAT is shown
    assert "dst \u2192 192.168.15.1" not in texts(fig)  # hop 8's is not yet
    steps = trace_steps(g, t)
    assert len(steps) == 10
    assert [len(numbers(f)) for f in steps] == list(range(1, 11))
    assert numbers(steps[-1]) == whole
    assert draw(g, trace=t, upto=0, title="before").axes[0].get_title() == "before"
    with pytest.raises(ValueError, match="from 0 to 10"):
        draw(g, trace=t, upto=11)
    with pytest.raises(ValueError, match="needs a trace"):
        draw(g, upto=1)


def test_without_a_trace_the_drawing_is_unchanged():
    g = bridge_graph(2)
    fig = draw(g)
    ax = fig.axes[0]
    assert not [a for a in ax.get_children() if str(a.get_gid()).startswith(("hop", "nat:"))]
    assert ax.get_title() == ""
    legend = [x.get_text() for x in ax.get_legend().get_texts()]
    assert not [x for x in legend if "hop" in x or "NAT" in x]
    assert len(texts(fig)) == len(texts(draw(g, trace=None)))


def test_a_hop_on_an_interface_not_drawn_goes_into_its_box():
    from labkit.trace import Sighting, Trace

    g = bridge_graph(2)
    t = Trace(
        "red",
        "192.168.15.1",
        [
            Sighting(0.0, "red", "lo", "out", "192.168.15.1", "192.168.15.1", REQUEST),
            Sighting(0.0, "red", "lo", "in", "192.168.15.1", "192.168.15.1", REQUEST),
        ],
    )
    at = numbers(draw(g, trace=t))
    box_x, box_y = layout(g)["ns:red"]
    for x, y in at.values():
        assert abs(x - box_x) < 1.6 and abs(y - box_y) < 0.8  # red's box is 3.2 x 1.6
    assert at[1] != at[2]


@pytest.mark.sandbox
def test_a_real_trace_to_the_internet_draws_sixteen_hops():
    from labkit import Lab, trace

    Lab().goto("internet")
    fig = trace.trace("red", "203.0.113.8").draw()
    assert repr(fig) == FIGURE_REPR
    assert sorted(numbers(fig)) == list(range(1, 17))
    nat = {t.get_text() for t in fig.axes[0].texts if "nat:" in str(t.get_gid())}
    assert {"src \u2192 192.168.1.2", "src \u2192 198.51.100.2"} <= nat  # host and router
    assert fig.axes[0].get_title() == "red pings 203.0.113.8: 16 hops, the reply came back"


# -- the package's layout ------------------------------------------------------------


def test_layout_is_pure_and_needs_no_matplotlib():
    code = (
        "import sys, labkit.draw.layout, labkit.draw.graph, labkit.draw.notes, labkit.draw.style; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_step_through_slider_is_ui():
    import labkit.draw
    from labkit.ui.steps import step_through

    box = step_through(bridge_graph(2), hand_trace())
    controls, picture, _words = box.children
    assert bytes(picture.value)[:4] == b"\x89PNG"
    assert not hasattr(labkit.draw, "step_through")
