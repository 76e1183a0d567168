"""The control panel against the real kernel, each test in a fresh sandbox.

The panel's worker thread is started inside the sandboxed test (the
sandbox forks first), as it is in the labkit kernel.
"""

from __future__ import annotations

import pytest

from labkit import Lab, Panel
from labkit.kernel.observe import graph

pytestmark = pytest.mark.sandbox

VOLATILE = {"neigh", "operstate", "rules"}


def comparable(graph):
    """Nodes and attributes, without what changes by itself (ARP, counters)."""
    return {n: {k: v for k, v in d.items() if k not in VOLATILE} for n, d in graph.nodes(data=True)}


def status(panel: Panel) -> str:
    return panel.status.value


def test_a_new_panel_shows_reset_and_a_picture():
    panel = Panel()
    assert panel.stage == "reset" and status(panel) == "stage: reset"
    assert panel.image.value[:4] == b"\x89PNG"
    assert not panel.image.tooltip  # ipywidgets 8 cannot show an Image that has one
    assert "stage reset" in panel.caption.value
    assert repr(panel) == "labkit control panel"
    assert panel._repr_mimebundle_()["text/plain"] == "labkit control panel"
    assert [b.description for b in (panel.back_button, panel.next_button, panel.reset_button)] == [
        "Back",
        "Next",
        "Reset",
    ]
    assert list(panel.target.options) == ["reset", *Lab().steps()]


def test_next_back_and_reset_drive_the_kernel():
    panel = Panel()
    panel.next()
    panel.wait()
    assert Lab().stage() == "netns" == panel.stage and status(panel) == "stage: netns"
    first = panel.image.value
    panel.next_button.click()  # the button calls the same method
    panel.wait()
    assert Lab().stage() == "veth:cable" == panel.stage
    assert panel.image.value != first
    assert "added" in panel.caption.value
    # the picture in words, for a screen reader: the new cable's ends
    assert "The picture in words" in panel.caption.value and "veth-red" in panel.caption.value
    panel.back_button.click()
    panel.wait()
    assert Lab().stage() == "netns"
    panel.reset_button.click()
    panel.wait()
    assert Lab().stage() == "reset" and status(panel) == "stage: reset"
    assert not panel.errors


def test_go_to_any_step_and_back_and_the_graph_is_a_fresh_observe():
    panel = Panel()
    panel.go("host")
    panel.wait()
    assert Lab().stage() == "host" == panel.stage
    assert comparable(panel.graph) == comparable(graph())
    panel.target.value = "veth:address"
    panel.go_button.click()
    panel.wait()
    assert Lab().stage() == "veth:address"
    assert comparable(panel.graph) == comparable(graph())
    assert "removed" in panel.caption.value  # the bridge is gone since the last picture


def test_a_change_by_hand_shows_after_refresh():
    import subprocess

    panel = Panel()
    panel.go("veth")
    panel.wait()
    subprocess.run(["ip", "netns", "add", "green"], check=True)
    subprocess.run(["ip", "-n", "red", "link", "set", "veth-red", "down"], check=True)
    panel.refresh()
    panel.wait()
    assert "ns:green" in panel.graph and panel.stage == "unknown"
    assert "green" in panel.ping_src.options
    assert panel.live.changes.added >= {"ns:green"}
    assert "if:red/veth-red" in panel.live.changes.changed
    panel.next()  # from a state no step matches, the stepper goes on from where it was
    panel.wait()
    assert Lab().stage() == "bridge:switch"


def test_ping_and_http_show_their_results():
    panel = Panel()
    panel.go("veth")
    panel.ping("red", "192.168.15.2")
    panel.wait()
    assert "red -&gt; 192.168.15.2: 3/3 replies, 0% loss" in panel.result.value
    panel.ping_src.value, panel.ping_dst.value = "blue", "192.168.15.9"
    panel.ping_button.click()
    panel.wait()
    assert "0/3 replies" in panel.result.value
    panel.go("portforward")
    panel.http("lan-pc", "http://192.168.1.2/")
    panel.wait()
    assert "HTTP 200" in panel.result.value and "Hello from blue" in panel.result.value
    panel.http_src.value, panel.http_url.value = "red", "http://203.0.113.8/"
    panel.http_button.click()
    panel.wait()
    assert "red -&gt; http://203.0.113.8/: HTTP 200" in panel.result.value


def test_tables_show_routes_arp_entries_and_nat_counters():
    panel = Panel()
    panel.go("internet")
    panel.ping("red", "203.0.113.8")
    panel.wait()
    routes, arp, nat = panel.routes_table.value, panel.arp_table.value, panel.nat_table.value
    assert "<td style='padding:0 8px'>red</td><td style='padding:0 8px'>default</td>" in routes
    assert "192.168.15.5" in routes
    mac = graph().nodes["if:host/v-net-0"]["mac"]
    assert "192.168.15.5" in arp and mac in arp  # red learnt the host's MAC
    assert "MASQUERADE" in nat
    packets = [r["packets"] for r in Lab().nat_counters() if "MASQUERADE" in r["spec"]]
    # the table was read a moment before: its counter is at least 1 and at most now's
    row = [cell for cell in nat.split("</tr>") if "192.168.15.0/24" in cell][0]
    shown = int(row.rsplit("<td style='padding:0 8px'>", 1)[1].split("<")[0])
    assert packets and 1 <= shown <= packets[0]


def test_errors_show_in_the_panel_and_the_worker_goes_on():
    panel = Panel()
    panel.ping("red", "192.168.15.2")  # no red yet
    panel.wait()
    assert "does not exist" in panel.result.value and panel.errors
    panel.next()
    panel.wait()
    assert panel.stage == "netns"


def test_toggles_redraw_without_the_kernel():
    panel = Panel()
    panel.go("veth")
    panel.wait()
    with_addresses = panel.image.value
    panel.show_addresses.value = False
    panel.wait()
    assert panel.image.value != with_addresses and not panel.live.show_addresses
    panel.show_macs.value = True
    panel.show_routes.value = False
    panel.wait()
    assert panel.live.show_macs and not panel.live.show_routes


def test_the_progress_bar_reaches_its_end_building_twenty_namespaces():
    lab = Lab(namespaces=20)
    panel = Panel(lab)
    seen: list[int] = []
    panel.progress.observe(lambda change: seen.append(change["new"]), names="value")
    panel.go("bridge")
    panel.wait()
    assert Lab(namespaces=20).stage() == "bridge" and len(lab.namespaces) == 20
    steps = lab.steps()[: lab.steps().index(lab.steps("bridge")[-1]) + 1]
    assert steps[-1] == "bridge:more"  # the 18 more namespaces join in a step of their own
    assert panel.progress.max == len(steps) == panel.progress.value
    assert seen == list(range(1, len(steps) + 1))
    assert len(panel.ping_src.options) == 1 + 20 + 3
