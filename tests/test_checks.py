"""Check-your-work: a correct build passes; each broken build gets the right hint."""

from __future__ import annotations

import subprocess

import pytest

from labkit import Lab
from labkit.checks import Report

pytestmark = pytest.mark.sandbox


def sh(command: str) -> None:
    proc = subprocess.run(command, shell=True, capture_output=True, text=True)
    assert proc.returncode == 0, (command, proc.stderr)


@pytest.mark.parametrize(
    "stage", ["netns", "veth", "bridge", "host", "nat", "internet", "portforward"]
)
def test_a_correct_build_passes_with_packets(stage):
    lab = Lab()
    lab.goto(stage)
    report = lab.check(stage)
    assert report.ok, str(report)
    assert str(report).startswith("All good")
    if stage != "netns":
        assert report.confirmed


BREAKS = [
    ("netns", "ip netns delete blue", "Namespace blue does not exist.", "ip netns add blue"),
    ("veth", "ip -n blue link set veth-blue down", "veth-blue in blue is down.", "up"),
    (
        "veth",
        "ip -n red addr flush dev veth-red",
        "veth-red in red does not have the address 192.168.15.1/24.",
        "ip -n red addr add 192.168.15.1/24 dev veth-red",
    ),
    ("veth", "ip -n red link delete veth-red", "The cable veth-red (red) <-> veth-blue", "veth"),
    ("bridge", "ip link set veth-red-br down", "veth-red-br in the host is down.", "up"),
    (
        "bridge",
        "ip link set veth-blue-br nomaster",
        "veth-blue-br in the host is not plugged into the bridge v-net-0.",
        "master v-net-0",
    ),
    (
        "host",
        "ip addr del 192.168.15.5/24 dev v-net-0",
        "v-net-0 in the host does not have the address 192.168.15.5/24.",
        "ip addr add 192.168.15.5/24 dev v-net-0",
    ),
    (
        "nat",
        "ip -n red route del 192.168.1.0/24",
        "red has no route to 192.168.1.0/24 via 192.168.15.5.",
        "ip -n red route add 192.168.1.0/24 via 192.168.15.5",
    ),
    (
        "nat",
        "sysctl -w net.ipv4.ip_forward=0",
        "The host does not forward packets",
        "sysctl -w net.ipv4.ip_forward=1",
    ),
    (
        "nat",
        "iptables -t nat -F POSTROUTING",
        "The host lacks the nat rule POSTROUTING -s 192.168.15.0/24 -j MASQUERADE.",
        "iptables -t nat -A POSTROUTING -s 192.168.15.0/24",
    ),
    (
        "internet",
        "ip -n blue route del default",
        "blue has no route to default via 192.168.15.5.",
        "ip -n blue route add default via 192.168.15.5",
    ),
    (
        "portforward",
        "iptables -t nat -F OUTPUT",
        "The host lacks the nat rule OUTPUT",
        "iptables -t nat -A OUTPUT",
    ),
    (
        "portforward",
        "pkill -f 'labkit.webapp --name [b]lue'",
        "No web app listens on port 80 in blue.",
        "python3 -m labkit.webapp --name blue 80",
    ),
    (
        "veth",
        "ip -n red addr add 10.9.9.9/24 dev veth-red",
        "veth-red in red has an address it should not have: 10.9.9.9/24.",
        "ip -n red addr del 10.9.9.9/24 dev veth-red",
    ),
]


@pytest.mark.parametrize("stage, breakage, hint, fix", BREAKS)
def test_a_broken_build_gets_the_right_hint(stage, breakage, hint, fix):
    lab = Lab()
    lab.goto(stage)
    sh(breakage)
    report = lab.check(stage)
    assert not report.ok
    text = str(report)
    assert text.startswith("Not yet")
    assert hint in text, text
    assert fix in text, text
    lab.goto(stage)  # the fix labkit would run repairs it
    assert lab.check(stage).ok


def test_intermediate_steps_are_checked_without_packet_tests():
    lab = Lab()
    lab.goto("bridge:as-written")
    report = lab.check("bridge:as-written")
    assert report.ok and not report.confirmed
    report = lab.check("bridge")
    assert "veth-red-br in the host is down." in str(report)


def test_report_text_without_a_kernel():
    r = Report("nat:route", failed=["red reaches the LAN PC 192.168.1.3: no"])
    assert not r.ok
    assert "packets say otherwise" in str(r)
