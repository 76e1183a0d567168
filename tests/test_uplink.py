"""The learner's own addresses on the host's uplink ``eth0``.

``eth0`` is part of the world (every stage has it, with 192.168.1.2/24),
but the host is the learner's machine: an address they add there by hand
is theirs. ``goto`` keeps it; when it stands in the way of a stage (an
address the stage needs, or a network inside one the stage puts on another
link of the host), ``goto`` and ``labkit up`` stop before anything changes,
with the ``ip addr del`` command that removes it; ``reset`` removes it, as
it removes every other hand-made thing.

Each test runs in a fresh sandbox and reads the kernel before and after.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from labkit import ConflictError, Lab


def run(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)


def addrs(dev: str = "eth0") -> list[str]:
    """The IPv4 addresses on one of the host's links, as ``ip`` shows them."""
    out = json.loads(run(f"ip -j -4 addr show dev {dev}").stdout)
    return sorted(f"{a['local']}/{a['prefixlen']}" for link in out for a in link["addr_info"])


def kernel() -> dict[str, Any]:
    """What a refused ``goto`` must not change: namespaces, links, addresses, rules."""
    names = sorted(line.split()[0] for line in run("ip netns list").stdout.splitlines())
    per_ns = {}
    for ns in ["", *names]:
        ip = f"ip -n {ns}" if ns else "ip"
        links = json.loads(run(f"{ip} -j addr").stdout)
        per_ns[ns or "host"] = sorted(
            (
                link["ifname"],
                link.get("master"),
                "UP" in link["flags"],
                tuple(sorted(a["local"] for a in link["addr_info"])),
            )
            for link in links
        )
        per_ns[f"{ns or 'host'} routes"] = run(f"{ip} route").stdout
    rules = [line for line in run("iptables-save").stdout.splitlines() if line[0] in "-:*"]
    return {"netns": names, "links": per_ns, "iptables": [re.sub(r" \[.*", "", r) for r in rules]}


def route_dev(dst: str) -> str:
    """The link the host's kernel would send a packet to ``dst`` out of."""
    return run(f"ip route get {dst}").stdout.split(" dev ")[1].split()[0]


def pings(dst: str) -> bool:
    return run(f"ping -c 1 -W 2 {dst}").returncode == 0


def fix_in(message: str) -> str:
    """The ``ip addr del`` command a message gives, between backticks."""
    found = re.search(r"`(ip addr del [^`]+)`", message)
    assert found, message
    return found.group(1)


@pytest.mark.sandbox
@pytest.mark.parametrize("start", ["reset", "bridge"])
def test_up_host_stops_on_the_learners_address_and_changes_nothing(start: str) -> None:
    Lab().goto(start)
    assert run("ip addr add 192.168.15.5/24 dev eth0").returncode == 0
    before = kernel()
    proc = run("labkit up host")
    assert proc.returncode == 1, proc
    assert proc.stdout == "", proc.stdout  # not one command printed, none run
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(
        "labkit: error: address 192.168.15.5 is on eth0, the host's uplink, where it was "
        "added by hand: v-net-0 in the host needs it."
    ), proc.stderr
    assert kernel() == before
    assert addrs() == ["192.168.1.2/24", "192.168.15.5/24"]
    # the fix it gives works: the stage builds, the host reaches red
    fix = fix_in(proc.stderr)
    assert fix == "ip addr del 192.168.15.5/24 dev eth0"
    assert run(fix).returncode == 0
    done = run("labkit up host")
    assert done.returncode == 0, done.stderr
    assert addrs() == ["192.168.1.2/24"] and addrs("v-net-0") == ["192.168.15.5/24"]
    assert pings("192.168.15.1")


@pytest.mark.sandbox
def test_goto_raises_the_same_and_loses_nothing() -> None:
    lab = Lab()
    lab.goto("bridge")
    run("ip addr add 192.168.15.5/24 dev eth0")
    before, state = kernel(), lab.state()
    with pytest.raises(ConflictError, match=r"`ip addr del 192\.168\.15\.5/24 dev eth0`"):
        lab.goto("host")
    with pytest.raises(ConflictError, match="eth0, the host's uplink"):
        lab.changes("portforward")
    assert kernel() == before and lab.state() == state
    assert lab.stage() == "bridge"  # the learner's address is not the lab's


@pytest.mark.sandbox
def test_a_network_inside_the_bridges_is_in_the_way() -> None:
    # 192.168.15.0/28 on eth0 holds red, blue and the host's .5: with it there,
    # the kernel sends packets for red out of eth0 (the longer prefix wins)
    Lab().goto("bridge")
    run("ip addr add 192.168.15.9/28 dev eth0")
    before = kernel()
    proc = run("labkit up host")
    assert proc.returncode == 1, proc
    assert "192.168.15.9/28 on eth0, the host's uplink" in proc.stderr, proc.stderr
    assert "lies in 192.168.15.0/24, which v-net-0 in the host needs" in proc.stderr
    assert kernel() == before
    # what the error prevents, seen in the kernel: built anyway, red is out of eth0
    run("ip addr add 192.168.15.5/24 dev v-net-0")
    assert route_dev("192.168.15.1") == "eth0"
    assert not pings("192.168.15.1")
    run("ip addr del 192.168.15.5/24 dev v-net-0")
    assert run(fix_in(proc.stderr)).returncode == 0
    assert run("labkit up host").returncode == 0
    assert route_dev("192.168.15.1") == "v-net-0" and pings("192.168.15.1")


@pytest.mark.sandbox
def test_goto_keeps_the_learners_address_and_reset_removes_it() -> None:
    lab = Lab()
    run("ip addr add 10.9.0.2/24 dev eth0")  # in nobody's way
    for target in ("host", "portforward", "netns", "internet"):
        lab.goto(target)
        assert addrs() == ["10.9.0.2/24", "192.168.1.2/24"], target
        assert lab.stage() == target  # the stage is complete; the address is extra
        assert lab.changes(target) == []
    assert pings("192.168.1.3") and pings("203.0.113.8")  # the uplink still works
    commands = lab.reset()
    assert "ip addr del 10.9.0.2/24 dev eth0" in commands
    assert addrs() == ["192.168.1.2/24"]
    assert lab.stage() == "reset"


@pytest.mark.sandbox
def test_the_worlds_own_address_on_eth0_is_repaired() -> None:
    # the world's address is labkit's: removed by hand, goto puts it back
    lab = Lab()
    lab.goto("host")
    run("ip addr flush dev eth0")
    assert addrs() == []
    lab.goto("nat")
    assert addrs() == ["192.168.1.2/24"] and pings("192.168.1.3")
