"""Packet traces from real captures: every interface a ping crossed, NAT included."""

from __future__ import annotations

import subprocess

import pytest

from labkit import Lab, trace
from labkit.errors import ConfigError

pytestmark = pytest.mark.sandbox


def test_a_ping_to_the_internet_is_rewritten_at_the_host_and_at_the_router():
    Lab().goto("internet")
    t = trace.trace("red", "203.0.113.8")
    assert t.answered
    request = [(s.where, s.direction, s.src) for s in t.hops("request")]
    assert request[0] == ("red/veth-red", "out", "192.168.15.1")
    assert ("host/eth0", "out", "192.168.1.2") in request  # the host's NAT
    assert ("router/wan0", "out", "198.51.100.2") in request  # the router's NAT
    assert request[-1] == ("internet/eth0", "in", "198.51.100.2")
    reply = [(s.where, s.direction, s.dst) for s in t.hops("reply")]
    assert reply[0] == ("internet/eth0", "out", "198.51.100.2")
    assert reply[-1] == ("red/veth-red", "in", "192.168.15.1")
    assert t.rewrites()[:2] == [
        "source 192.168.15.1 -> 192.168.1.2 in the host (request)",
        "source 192.168.1.2 -> 198.51.100.2 in router (request)",
    ]
    text = str(t)
    assert text.splitlines()[0].split()[:3] == ["1", "red", "veth-red"]
    assert "the reply came back" in text


def test_a_trace_ends_where_the_packet_dies():
    Lab().goto("nat:masquerade")  # forwarding is still off in the host
    t = trace.trace("red", "192.168.1.3")
    assert not t.answered and not t.hops("reply")
    assert t.sightings[-1].ns == "host"
    assert not [s for s in t.sightings if s.ns in ("router", "lan-pc")]
    subprocess.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
    t = trace.trace("red", "192.168.1.3")
    assert t.answered and t.hops("request")[-1].where == "lan-pc/eth0"


def test_a_bridge_passes_frames_without_the_host_routing_them():
    Lab().goto("bridge")
    t = trace.trace("red", "192.168.15.2")
    assert [s.where for s in t.hops("request")] == [
        "red/veth-red",
        "host/veth-red-br",
        "host/veth-blue-br",
        "blue/veth-blue",
    ]
    assert not t.rewrites()


def test_bad_input():
    Lab().goto("veth")
    with pytest.raises(ConfigError, match="not an IPv4 address"):
        trace.trace("red", "blue")
    with pytest.raises(ConfigError, match="no node 'green'"):
        trace.trace("green", "192.168.15.2")
    with pytest.raises(ConfigError, match="cannot send"):
        trace.trace("red", "203.0.113.8")  # no route: the kernel refuses at once
