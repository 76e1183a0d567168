"""`labkit why`: one fault at a time, the diagnosis names it, and its fix works."""

from __future__ import annotations

import subprocess
import time

import pytest

from labkit import Lab, exercises, why
from labkit.errors import ConfigError

#: (name, stage, fault, (src, dst, port), cause, fixes): the exercises' faults, and
#: more whose fix is not one command (tests/test_why_fixes.py mixes them at random)
FAULTS = [
    (f.name, f.stage, " ; ".join(f.breaks), f.probe, f.cause, 1) for f in exercises.FAULTS.values()
] + [
    (
        "wrong-address",
        "bridge",
        "ip -n blue addr del 192.168.15.2/24 dev veth-blue ; "
        "ip -n blue addr add 192.168.15.3/24 dev veth-blue",
        ("red", "192.168.15.2", None),
        "arp",
        1,
    ),
    (
        "link-down-takes-the-routes",  # the kernel removes red's routes with the link
        "internet",
        "ip -n red link set veth-red down",
        ("red", "203.0.113.8", None),
        "down",
        2,
    ),
    (
        "address-flushed-takes-the-routes",
        "internet",
        "ip -n red addr flush dev veth-red",
        ("red", "203.0.113.8", None),
        "no-address",
        2,
    ),
]


def sh(command: str) -> None:
    # a fix that starts a web app in the background must not hold our pipes open
    quiet = subprocess.DEVNULL
    subprocess.run(command, shell=True, check=True, stdout=quiet, stderr=quiet)


def _works(src: str, dst: str, port: int | None) -> bool:
    lab = Lab()
    if port:
        return lab.http(src, f"http://{dst}:{port}/", timeout=2).ok
    return lab.ping(src, dst, count=2).received > 0


@pytest.mark.sandbox
@pytest.mark.parametrize("stage", ["veth", "bridge", "nat", "internet", "portforward"])
def test_a_healthy_lab_has_a_fine_path(stage):
    Lab().goto(stage)
    probe = {
        "veth": ("red", "192.168.15.2", None),
        "bridge": ("blue", "192.168.15.1", None),
        "nat": ("red", "192.168.1.3", None),
        "internet": ("blue", "203.0.113.8", None),
        "portforward": ("lan-pc", "192.168.1.2", 80),
    }[stage]
    result = why.why(*probe)
    assert result.ok and result.confirmed, str(result)
    assert "the path is fine" in str(result)
    assert result.there and result.back


@pytest.mark.sandbox
@pytest.mark.parametrize("name,stage,fault,probe,cause,steps", FAULTS, ids=[f[0] for f in FAULTS])
def test_one_fault_is_named_and_its_fix_works(name, stage, fault, probe, cause, steps):
    Lab().goto(stage)
    assert why.why(*probe).ok  # healthy first
    for command in fault.split(" ; "):
        sh(command)
    result = why.why(*probe)
    assert result.problem is not None, f"{name}: {result}"
    assert result.problem.cause == cause, f"{name}: {result}"
    assert result.confirmed is False  # a real packet agrees: it does not arrive
    assert len(result.fixes) == steps, f"{name}: {result}"
    assert result.fixes[0] == result.problem.fix
    for command in result.fixes:
        sh(command)
    deadline = time.monotonic() + 5  # a web app starts in the background
    while not _works(*probe) and time.monotonic() < deadline:
        time.sleep(0.1)
    after = why.why(*probe)
    assert after.ok and after.confirmed, f"{name}: after {result.fixes}: {after}"


@pytest.mark.sandbox
def test_bad_input_says_what_to_write():
    Lab().goto("veth")
    with pytest.raises(ConfigError, match="not an IPv4 address"):
        why.why("red", "blue")
    with pytest.raises(ConfigError, match="no node 'green'"):
        why.why("green", "192.168.15.2")
    with pytest.raises(ConfigError, match="from 1 to 65535"):
        why.why("red", "192.168.15.2", 0)


@pytest.mark.sandbox
def test_labkit_why_on_the_command_line():
    Lab().goto("nat:masquerade")
    out = subprocess.run(["labkit", "why", "red", "192.168.1.3"], capture_output=True, text=True)
    assert out.returncode == 1
    assert "does not forward" in out.stdout and "fix: sysctl -w net.ipv4.ip_forward=1" in out.stdout
    sh("sysctl -w net.ipv4.ip_forward=1")
    out = subprocess.run(["labkit", "why", "red", "192.168.1.3"], capture_output=True, text=True)
    assert out.returncode == 0 and "the path is fine" in out.stdout
    assert "a real packet got through" in out.stdout


@pytest.mark.sandbox
def test_labkit_why_numbers_the_fixes_when_one_is_not_enough():
    """The issue's case: veth-red down took red's routes with it. The root cause comes
    first, then every command in order, each one as it must be typed."""
    Lab().goto("internet")
    sh("ip -n red link set veth-red down")
    out = subprocess.run(
        ["labkit", "why", "red", "203.0.113.8", "--no-check"], capture_output=True, text=True
    )
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines[0].startswith("red -> 203.0.113.8 (ping): veth-red in red is down"), out.stdout
    assert lines[1:4] == [
        "  fix, in this order:",
        "    1. ip -n red link set veth-red up",
        "    2. ip netns exec red ip route add default via 192.168.15.5",
    ], out.stdout
    assert lines[4].startswith("       (after step 1: red has no route to 203.0.113.8")
    for line in lines[2:4]:
        sh(line.split(". ", 1)[1])
    assert _works("red", "203.0.113.8", None)
