"""The simulator against the kernel: the same commands, run for real, give the same State.

Each test runs in a fresh sandbox (the world built: router, lan-pc,
internet), runs learner commands with the real tools, and compares what
:func:`labkit.kernel.observe.to_state` reads with what
:func:`labkit.core.model.simulate` predicts from the same commands.
"""

from __future__ import annotations

import subprocess

import pytest

from labkit import Lab
from labkit.core.model import FORWARDING, ROUTERS, CommandError, simulate
from labkit.core.stages import desired
from labkit.kernel.observe import snapshot, to_graph, to_state

pytestmark = pytest.mark.sandbox


def sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, capture_output=True, text=True)


POLICY_COMMANDS = [
    "iptables -P FORWARD DROP",
    "iptables -w -t filter -P OUTPUT DROP",
    "iptables -P OUTPUT ACCEPT",
    "ip netns exec router iptables -P INPUT DROP",
    "ip netns exec router iptables -t nat -P POSTROUTING ACCEPT",
]


def test_chain_policies_read_from_the_kernel_are_the_simulated_ones():
    assert to_state(snapshot()).policies == {}  # a fresh sandbox: every chain open
    for command in POLICY_COMMANDS:
        proc = sh(command)
        assert proc.returncode == 0, (command, proc.stderr)
    got = to_state(snapshot()).policies
    assert got == {("host", "filter", "FORWARD"): "DROP", ("router", "filter", "INPUT"): "DROP"}
    assert got == simulate(POLICY_COMMANDS).policies
    # opened again: nothing stored, as in a state where no chain was ever closed
    for command in ["iptables -P FORWARD ACCEPT", "ip netns exec router iptables -P INPUT ACCEPT"]:
        assert sh(command).returncode == 0
    assert to_state(snapshot()).policies == {}


@pytest.mark.parametrize(
    "command",
    [
        "iptables -P FORWARD REJECT",
        "iptables -P FORWARD drop",
        "iptables -t nat -P FORWARD ACCEPT",
        "iptables -t nat -P POSTROUTING DROP",
    ],
)
def test_a_policy_the_simulator_refuses_the_kernel_refuses_too(command):
    with pytest.raises(CommandError):
        simulate([command])
    assert sh(command).returncode != 0
    assert to_state(snapshot()).policies == {}


@pytest.mark.parametrize(
    "command",
    ["ip -n internet link del eth0", "ip -n router link del wan0", "ip link del eth0"],
)
def test_a_deleted_link_takes_the_same_routes_in_the_kernel_and_the_simulator(command):
    world = desired("reset")
    assert to_state(snapshot()).routes == world.routes
    proc = sh(command)
    assert proc.returncode == 0, proc.stderr
    after = simulate([command], world).routes
    assert after < world.routes  # something went
    assert to_state(snapshot()).routes == after


def test_a_namespace_made_by_hand_that_forwards_is_still_at_its_stage():
    # On a machine running Docker (ip_forward=1), `ip netns add` makes namespaces
    # that forward: the same here, set by hand, without touching the machine.
    for command in Lab().plan("netns").commands + Lab().plan("veth").commands:
        assert sh(command).returncode == 0, command
    for ns in ("red", "blue", "lan-pc", "internet"):
        assert sh(f"ip netns exec {ns} sysctl -qw net.ipv4.ip_forward=1").returncode == 0
    snap = snapshot()
    assert snap.sysctls["red"] == {"net.ipv4.ip_forward": "1"}  # the kernel's truth ...
    assert to_graph(snap).nodes["ns:red"]["forwarding"]  # ... which the graph shows
    assert set(to_state(snap).sysctls) == {(ns, FORWARDING) for ns in ROUTERS}
    assert Lab().stage() == "veth"
    assert Lab().changes("veth") == []
    # the routers' forwarding stays part of the state
    assert sh("ip netns exec router sysctl -qw net.ipv4.ip_forward=0").returncode == 0
    assert to_state(snapshot()).sysctls[("router", FORWARDING)] == "0"
    assert Lab().stage() is None
