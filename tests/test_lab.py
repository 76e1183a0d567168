"""The lab against the real kernel, each test in a fresh sandbox."""

from __future__ import annotations

import subprocess
import time

import pytest

from labkit import ConfigError, ConflictError, Lab
from labkit.core.model import HOST
from labkit.core.stages import desired
from labkit.kernel.observe import graph, snapshot

pytestmark = pytest.mark.sandbox


def sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, capture_output=True, text=True)


def mac_of(ns: str, ifname: str) -> str:
    return graph().nodes[f"if:{ns}/{ifname}"]["mac"]


def test_red_pings_blue_over_the_veth_and_both_learn_arp():
    lab = Lab()
    lab.goto("veth")
    assert lab.ping("red", "192.168.15.2").loss == 0
    assert lab.ping("blue", "192.168.15.1").loss == 0
    assert lab.neighbours("red")["192.168.15.2"] == mac_of("blue", "veth-blue")
    assert lab.neighbours("blue")["192.168.15.1"] == mac_of("red", "veth-red")


def test_veth_not_up_yet_means_no_reply():
    lab = Lab()
    lab.goto("veth:address")
    result = lab.ping("red", "192.168.15.2", count=1)
    assert result.received == 0 and "Network is unreachable" in result.output


def test_bridge_as_written_fails_and_the_fix_works():
    lab = Lab()
    lab.goto("bridge:as-written")
    assert lab.stage() == "bridge:as-written"
    assert lab.ping("red", "192.168.15.2", count=2).loss == 100
    lab.goto("bridge:fix")
    # a port forwards once the kernel's link watch has seen its carrier (up to 1 s)
    for _ in range(40):
        states = [
            open(f"/sys/class/net/{port}/brport/state").read().strip()
            for port in ("veth-red-br", "veth-blue-br")
        ]
        if states == ["3", "3"]:  # BR_STATE_FORWARDING
            break
        time.sleep(0.05)
    assert lab.ping("red", "192.168.15.2").loss == 0
    assert lab.neighbours("red")["192.168.15.2"] == mac_of("blue", "veth-blue")


@pytest.mark.parametrize("count", [2, 20])
def test_bridge_joins_n_namespaces(count):
    lab = Lab(namespaces=count)
    lab.goto("bridge")
    g = graph()
    ports = [n for n, d in g.nodes(data=True) if d.get("master") == "v-net-0"]
    assert len(ports) == count
    last = f"192.168.15.{9 + count - 2}" if count > 2 else "192.168.15.2"
    assert lab.ping("red", last).loss == 0
    src = f"ns{9 + count - 2}" if count > 2 else "blue"
    assert lab.ping(src, "192.168.15.1").loss == 0
    assert "192.168.15.1" in lab.neighbours(src)
    assert Lab().count == count  # read back from the kernel


def test_host_reaches_red_only_from_the_host_stage_on():
    lab = Lab()
    for stage in ("veth", "bridge"):
        lab.goto(stage)
        assert lab.ping(HOST, "192.168.15.1", count=1).received == 0
    lab.goto("host")
    assert lab.ping(HOST, "192.168.15.1").loss == 0
    lab.goto("bridge")
    assert lab.ping(HOST, "192.168.15.1", count=1).received == 0


@pytest.mark.parametrize(
    "earlier,later", [("netns", "veth"), ("veth", "bridge"), ("bridge", "host")]
)
def test_going_back_removes_exactly_what_the_later_stage_added(earlier, later):
    lab = Lab()
    lab.goto(earlier)
    fresh = lab.state()
    lab.goto(later)
    assert lab.state() != fresh
    lab.goto(earlier)
    assert lab.state() == fresh == desired(earlier)
    assert lab.state().marked == fresh.marked  # labkit's rules too
    assert lab.stage() == earlier
    assert lab.goto(earlier) == []  # twice in a row: nothing to do


def test_every_stage_from_every_stage():
    lab = Lab()
    names = ["reset", *lab.stages]
    for a in names:
        for b in names:
            lab.goto(a)
            lab.goto(b)
            assert lab.stage() == b, f"{a} -> {b}"


def test_reset_twice_leaves_nothing():
    lab = Lab(namespaces=4)
    lab.goto("host")
    sh("ip netns exec red sleep 1000 >/dev/null 2>&1 & sleep 0.2")
    assert lab.reset()
    assert lab.reset() == []
    snap = snapshot()
    assert snap.namespaces == ["internet", "lan-pc", "router"]  # the world stays
    assert [link["name"] for link in snap.links[HOST]] == ["lo", "eth0"]
    assert sh("pgrep -f 'slee[p] 1000'").stdout == ""
    listed = sorted(line.split()[0] for line in sh("ip netns list").stdout.splitlines())
    assert listed == ["internet", "lan-pc", "router"]
    assert lab.stage() == "reset"


def test_observe_sees_a_link_deleted_by_hand_and_goto_repairs_it():
    lab = Lab()
    lab.goto("veth")
    assert "if:red/veth-red" in graph()
    assert sh("ip -n red link delete veth-red").returncode == 0
    g = graph()
    assert "if:red/veth-red" not in g and "if:blue/veth-blue" not in g
    assert lab.stage() == "netns"  # the namespaces are all that is left
    lab.goto("veth")
    assert lab.ping("red", "192.168.15.2").loss == 0


def test_observe_sees_hand_made_address_and_goto_removes_it():
    lab = Lab()
    lab.goto("veth")
    sh("ip -n red addr add 10.9.9.9/24 dev veth-red")
    assert "10.9.9.9/24" in graph().nodes["if:red/veth-red"]["addrs"]
    assert lab.stage() is None
    lab.goto("veth")
    assert graph().nodes["if:red/veth-red"]["addrs"] == ["192.168.15.1/24"]


def test_tutorial_commands_typed_by_hand_are_recognised():
    for command in Lab().plan("netns").commands + Lab().plan("veth").commands:
        assert sh(f"sudo {command}").returncode == 0, command
    assert Lab().stage() == "veth"


def test_veth_pair_is_seen_across_namespaces():
    Lab().goto("bridge")
    g = graph()
    assert g.edges["if:red/veth-red", "if:host/veth-red-br"]["kind"] == "veth"
    assert g.edges["if:host/veth-red-br", "if:host/v-net-0"]["kind"] == "port"
    assert g.nodes["if:host/v-net-0"]["type"] == "bridge"


def test_address_in_use_by_hand_is_a_conflict_and_changes_nothing():
    lab = Lab()
    lab.goto("netns")
    sh("ip -n blue link add foo0 type veth peer name foo1")
    sh("ip -n blue addr add 192.168.15.2/24 dev foo0")
    before = lab.state()
    with pytest.raises(ConflictError, match=r"192\.168\.15\.2 is on foo0 in namespace blue"):
        lab.goto("veth")
    assert lab.state() == before


def test_bad_input_is_a_clear_error_and_changes_nothing():
    lab = Lab()
    lab.goto("veth")
    before = lab.state()
    with pytest.raises(ConfigError, match="unknown stage 'brigde'"):
        lab.goto("brigde")
    with pytest.raises(ConfigError, match="has no step"):
        lab.goto("veth:nope")
    with pytest.raises(ConfigError, match="not a valid namespace name"):
        lab.ping("red; touch /tmp/pwned", "192.168.15.2")
    with pytest.raises(ConfigError, match="does not exist"):
        lab.ping("green", "192.168.15.2")
    with pytest.raises(ConfigError, match="not an IP address"):
        lab.ping("red", "blue")
    with pytest.raises(ConfigError, match="at least 2"):
        Lab(namespaces=1)
    with pytest.raises(ConfigError, match="do not fit"):
        Lab(namespaces=1015)
    assert lab.state() == before


def test_a_failing_change_is_rolled_back(monkeypatch):
    from labkit.errors import KernelError
    from labkit.kernel import apply

    lab = Lab()
    lab.goto("veth")
    before = lab.state()
    real = apply.EXECUTORS["netlink"]

    failed = []

    def flaky(nl, ops, idx, *rest):
        real(nl, ops, idx, *rest)
        if ops[0].kind == "veth_add" and not failed:  # the bridge and new cables exist
            failed.append(True)
            raise KernelError("injected failure")

    monkeypatch.setitem(apply.EXECUTORS, "netlink", flaky)
    with pytest.raises(KernelError, match="injected"):
        lab.goto("host")
    monkeypatch.setitem(apply.EXECUTORS, "netlink", real)
    assert lab.state() == before


def test_progress_follows_the_work_to_the_end():
    calls = []
    lab = Lab(namespaces=50)
    lab.goto("bridge", progress=lambda done, total: calls.append((done, total)))
    dones = [d for d, _ in calls]
    totals = {t for _, t in calls}
    assert len(totals) == 1 and dones == sorted(dones)
    assert calls[-1][0] == calls[-1][1] > 50 * 3  # a namespace, a cable, an address... each
    assert len(calls) > 10  # a bar that moves, not one jump
    calls.clear()
    lab.reset(progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 50), (50, 50)]
    calls.clear()
    lab.goto("reset", progress=lambda done, total: calls.append((done, total)))
    assert calls == []  # nothing to do: no bar


def test_reset_opens_a_chain_the_learner_closed():
    lab = Lab()
    lab.goto("internet")
    sh("iptables -P FORWARD DROP")
    assert lab.ping("red", "203.0.113.8", count=1).received == 0
    assert "iptables -t filter -P FORWARD ACCEPT" in lab.reset()
    assert "-P FORWARD ACCEPT" in sh("iptables -S FORWARD").stdout
    lab.goto("internet")
    assert lab.ping("red", "203.0.113.8").loss == 0


def test_bridges_are_plain_switches_even_where_br_netfilter_is_loaded():
    # The world's router bridges the host and lan-pc (br-lan). Where
    # br_netfilter is loaded (this machine, Docker hosts) a new namespace
    # would send those frames through its FORWARD chain; labkit turns that
    # off in every namespace it makes, so the router's policy cannot cut them.
    Lab().reset()
    nf = sh("ip netns exec router cat /proc/sys/net/bridge/bridge-nf-call-iptables")
    assert nf.stdout.strip() in ("0", ""), nf
    assert sh("ip netns exec router iptables -P FORWARD DROP").returncode == 0
    try:
        ping = sh("ping -c2 -W1 -i0.2 192.168.1.3")
        assert " 0% packet loss" in ping.stdout, ping.stdout
    finally:
        sh("ip netns exec router iptables -P FORWARD ACCEPT")
