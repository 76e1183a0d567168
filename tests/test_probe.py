"""Reachability from in-process pings (labkit.kernel.probe), checked against `ping`."""

from __future__ import annotations

import subprocess

import pytest

from labkit import Lab
from labkit.core import stages
from labkit.errors import ConfigError
from labkit.kernel import netns, probe


def _ping_binary(lab: Lab, src: str, ip: str) -> bool:
    prefix = [] if src == "host" else ["ip", "netns", "exec", src]
    argv = [*prefix, "ping", "-n", "-c", "1", "-W", "1", ip]
    return subprocess.run(argv, capture_output=True).returncode == 0


def _neigh_count(ns: str) -> int:
    nl = netns.get()
    return nl.call(lambda: len(nl.sock(ns).dump("neigh")))


@pytest.mark.sandbox
@pytest.mark.parametrize("stage", ["veth", "bridge:as-written", "nat:masquerade", "internet"])
def test_reachability_says_what_ping_says(stage):
    lab = Lab()
    lab.goto(stage)
    result = lab.reachability()
    for src, row in result.table.items():
        for dst, ok in row.items():
            assert ok == _ping_binary(lab, src, result.targets[dst]), (stage, src, dst)
    # some of each, so the comparison means something
    cells = [ok for row in result.table.values() for ok in row.values()]
    assert any(cells) and not all(cells)


@pytest.mark.sandbox
def test_a_small_lab_keeps_its_arp_entries_as_ping_would():
    lab = Lab()
    lab.goto("bridge")
    assert _neigh_count("red") == 0
    assert lab.reachability(nodes=["red"], targets={"blue": "192.168.15.2"}).table == {
        "red": {"blue": True}
    }
    assert lab.neighbours("red") and lab.neighbours("blue")


@pytest.mark.sandbox
@pytest.mark.slow
def test_all_pairs_among_100_namespaces_within_the_neighbour_table_limit():
    lab = Lab(namespaces=100)
    lab.goto("bridge")
    names = dict(stages.namespaces(100))
    peak = []
    real = probe._NeighbourTables.forget

    def watch(self, units):  # the whole sandbox's ARP entries after each wave
        peak.append(sum(_neigh_count(ns) for ns in ["host", *lab.namespaces]))
        real(self, units)

    probe._NeighbourTables.forget = watch
    try:
        result = lab.reachability(nodes=list(names), targets=names)
    finally:
        probe._NeighbourTables.forget = real
    cells = [ok for row in result.table.values() for ok in row.values()]
    assert len(cells) == 9900 and all(cells)
    assert len(peak) > 10  # waves, not one burst
    assert max(peak) <= probe.BUDGET  # never more entries than the budget
    assert sum(_neigh_count(ns) for ns in lab.namespaces) == 0  # all removed again


def test_echo_packets_and_replies():
    pkt = probe.echo_request(0x1234, 7)
    assert pkt[:2] == b"\x08\x00" and probe.checksum(pkt) == 0
    request = b"\x45" + bytes(19) + pkt  # an echo request is not a reply
    assert probe.parse_reply(request) is None
    assert probe.parse_reply(b"\x45" + bytes(19) + b"\x00" + bytes(7))[:3] == ("reply", 0, 0)


@pytest.mark.sandbox
def test_bad_targets_are_refused_before_anything_is_sent():
    lab = Lab()
    lab.goto("veth")
    with pytest.raises(ConfigError, match="not an IPv4 address"):
        lab.reachability(nodes=["red"], targets={"blue": "blue.example"})
    with pytest.raises(ConfigError, match="does not exist"):
        lab.reachability(nodes=["green"], targets={"blue": "192.168.15.2"})
