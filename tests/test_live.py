"""The live graph: diff_graphs on hand-made graphs, highlights from the kernel,
and the redraw-after-every-cell hook."""

from __future__ import annotations

import subprocess
import threading

import networkx as nx

from labkit.draw import draw
from labkit.ui import live
from labkit.ui.live import Changes, LiveGraph, diff_graphs


def graph() -> nx.Graph:
    g = nx.Graph()
    rule = {"table": "nat", "chain": "POSTROUTING", "spec": "-j MASQUERADE", "marked": True}
    g.add_node("ns:host", kind="netns", name="host", routes=[], neigh=[], rules=[dict(rule)])
    for ns, ip in (("red", "10.0.0.1/24"), ("blue", "10.0.0.2/24")):
        g.add_node(f"ns:{ns}", kind="netns", name=ns, routes=[], neigh=[], rules=[])
        node = f"if:{ns}/veth-{ns}"
        g.add_node(
            node,
            kind="iface",
            ns=ns,
            name=f"veth-{ns}",
            type="veth",
            up=True,
            oper="UP",
            addrs=[ip],
            master=None,
            mac="aa:bb:cc:dd:ee:0" + ip[-4],
        )
        g.add_edge(f"ns:{ns}", node, kind="in")
    g.add_edge("if:red/veth-red", "if:blue/veth-blue", kind="veth")
    g.nodes["ns:host"]["rules"][0]["packets"] = 0
    return g


def gids(fig, prefix: str) -> list[str]:
    return sorted(
        str(a.get_gid())[len(prefix) :]
        for a in fig.axes[0].get_children()
        if str(a.get_gid()).startswith(prefix)
    )


def test_equal_graphs_have_no_changes_and_no_old_graph_is_no_change():
    assert not diff_graphs(graph(), graph())
    assert diff_graphs(None, graph()) == Changes()


def test_added_removed_and_changed_nodes_and_cables():
    old, new = graph(), graph()
    new.remove_node("if:blue/veth-blue")
    new.add_node(
        "if:blue/eth1",
        kind="iface",
        ns="blue",
        name="eth1",
        type="veth",
        up=True,
        oper="UP",
        addrs=[],
        master=None,
    )
    new.add_edge("if:red/veth-red", "if:blue/eth1", kind="veth")
    new.nodes["if:red/veth-red"]["up"] = False
    new.nodes["ns:red"]["routes"] = [{"dst": "default", "via": "10.0.0.5"}]
    c = diff_graphs(old, new)
    assert c.added == {"if:blue/eth1"} and c.removed == {"if:blue/veth-blue"}
    assert c.changed == {"if:red/veth-red", "ns:red"}
    assert c.details == {"if:red/veth-red": ("up",), "ns:red": ("routes",)}
    assert c.added_edges == {("if:blue/eth1", "if:red/veth-red")}
    assert c.removed_edges == {("if:blue/veth-blue", "if:red/veth-red")}
    assert c.old is old
    assert c.summary()[0] == "added if:blue/eth1"


def test_counters_and_arp_entries_are_not_changes():
    old, new = graph(), graph()
    new.nodes["ns:host"]["rules"][0].update(packets=7, bytes=420)
    new.nodes["ns:red"]["neigh"] = [{"ip": "10.0.0.2", "mac": "x", "state": "REACHABLE"}]
    new.nodes["if:red/veth-red"]["operstate"] = "UNKNOWN"
    assert not diff_graphs(old, new)
    new.nodes["ns:host"]["rules"][0]["spec"] = "-o eth0 -j MASQUERADE"
    assert diff_graphs(old, new).changed == {"ns:host"}
    assert diff_graphs(old, new, ignore=frozenset()).changed == {
        "ns:host",
        "ns:red",
        "if:red/veth-red",
    }


def test_draw_marks_added_changed_and_removed_and_explains_them():
    old, new = graph(), graph()
    new.remove_node("ns:blue")
    new.remove_node("if:blue/veth-blue")
    new.add_node("ns:green", kind="netns", name="green")
    new.nodes["if:red/veth-red"]["addrs"] = ["10.0.0.9/24"]
    fig = draw(new, changes=diff_graphs(old, new))
    assert gids(fig, "added:") == ["ns:green"]
    assert gids(fig, "changed:") == ["if:red/veth-red"]
    assert gids(fig, "removed:") == [
        "if:blue/veth-blue",
        "if:blue/veth-blue|if:red/veth-red",
        "ns:blue",
    ]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"added since last picture", "removed (ghost)"} <= set(legend)
    assert "added since last picture" not in [
        t.get_text() for t in draw(new).axes[0].get_legend().get_texts()
    ]


def test_routes_can_be_hidden():
    g = graph()
    g.nodes["ns:red"]["routes"] = [{"dst": "default", "via": "10.0.0.5", "dev": "veth-red"}]
    texts = lambda fig: " ".join(t.get_text() for t in fig.axes[0].texts)  # noqa: E731
    assert "default via 10.0.0.5" in texts(draw(g))
    assert "default via 10.0.0.5" not in texts(draw(g, show_routes=False))


def test_a_hundred_namespaces_with_changes_draw():
    def many(n: int) -> nx.Graph:
        g = nx.Graph()
        g.add_node("ns:host", kind="netns", name="host")
        for i in range(n):
            g.add_node(f"ns:ns{i}", kind="netns", name=f"ns{i}")
        return g

    old, new = many(110), many(105)
    new.add_node("ns:extra", kind="netns", name="extra")
    fig = draw(new, changes=diff_graphs(old, new))
    assert len(gids(fig, "removed:")) == 5 and gids(fig, "added:") == ["ns:extra"]


def hand_made_changes() -> tuple[list[str], list[str], list[str], list[str]]:
    from labkit import Lab

    Lab().goto("veth")
    g = LiveGraph()
    g.update()
    subprocess.run(
        ["ip", "link", "add", "tap-a", "type", "veth", "peer", "name", "tap-b"], check=True
    )
    added = g.update()
    fig = g.figure()
    subprocess.run(["ip", "-n", "red", "link", "del", "veth-red"], check=True)
    removed = g.update()
    fig2 = g.figure()
    return (
        sorted(added.added),
        gids(fig, "added:"),
        sorted(removed.removed),
        gids(fig2, "removed:"),
    )


def test_highlight_after_ip_link_add_and_del_by_hand():
    from labkit.world import run_in_lab

    added, added_marks, removed, removed_marks = run_in_lab(hand_made_changes)
    assert added == ["if:host/tap-a", "if:host/tap-b"]
    assert added_marks == ["if:host/tap-a", "if:host/tap-a|if:host/tap-b", "if:host/tap-b"]
    assert removed == ["if:blue/veth-blue", "if:red/veth-red"]
    assert "if:blue/veth-blue|if:red/veth-red" in removed_marks


class FakeEvents:
    def __init__(self) -> None:
        self.callbacks: dict[str, list] = {"post_run_cell": []}

    def register(self, event: str, fn) -> None:
        self.callbacks[event].append(fn)

    def unregister(self, event: str, fn) -> None:
        self.callbacks[event].remove(fn)


class FakeShell:
    def __init__(self) -> None:
        self.events = FakeEvents()


def test_auto_registers_one_hook_and_removes_it():
    shell = FakeShell()
    assert live.auto(True, shell=shell) is True
    assert live.auto(True, shell=shell) is True  # not twice
    assert len(shell.events.callbacks["post_run_cell"]) == 1
    assert live.auto(False, shell=shell) is False
    assert shell.events.callbacks["post_run_cell"] == []


def test_auto_with_a_real_ipython_shell_redraws_after_a_cell(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no history thread: later tests fork sandboxes
    shell = InteractiveShell.instance(config=config)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    g = graph()
    monkeypatch.setattr(live._LIVE, "update", lambda: diff_graphs(None, g))
    try:
        live.auto(True, shell=shell, always=True)
        assert len(shell.events.callbacks["post_run_cell"]) >= 1
        shell.run_cell("1 + 1")
        assert len(shown) == 1
    finally:
        live.auto(False, shell=shell)
    shell.run_cell("2 + 2")
    assert len(shown) == 1
    InteractiveShell.clear_instance()
    assert threading.active_count() == 1
