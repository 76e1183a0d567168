"""Leaving the namespace network: the world, NAT, the internet, port forwarding.

Every claim is checked with real packets in a fresh sandbox.
"""

from __future__ import annotations

import socket
import subprocess

import pytest

from labkit import ConfigError, KernelError, Lab
from labkit.core.model import HOST, Service
from labkit.kernel import netns, probe, services
from labkit.kernel.observe import graph, snapshot

pytestmark = pytest.mark.sandbox

LAN_PC = "192.168.1.3"
SERVER = "203.0.113.8"


def sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, capture_output=True, text=True)


def counter(lab: Lab, chain: str) -> int:
    return sum(r["packets"] for r in lab.nat_counters() if r["chain"] == chain and r["marked"])


def test_a_fresh_sandbox_has_the_world_and_the_host_reaches_the_internet():
    lab = Lab()
    assert lab.stage() == "reset"
    assert lab.ping(HOST, LAN_PC).ok
    assert lab.ping(HOST, SERVER).ok
    reply = lab.http(HOST, f"http://{SERVER}/")
    assert reply.status == 200 and "You came from 198.51.100.2" in reply.body  # the router's NAT
    assert lab.ping("lan-pc", SERVER).ok


def test_nat_each_step_and_what_the_lan_pc_sees():
    lab = Lab()
    lab.goto("host")
    first = lab.ping("red", LAN_PC, count=1)
    assert first.received == 0 and "Network is unreachable" in first.output
    lab.goto("nat:route")
    routed = lab.ping("red", LAN_PC, count=2)
    assert routed.received == 0 and "unreachable" not in routed.output
    lab.goto("nat:masquerade")  # as the tutorial writes it: still no reply
    assert lab.ping("red", LAN_PC, count=2).received == 0
    lab.goto("nat:forward")
    assert lab.ping("red", LAN_PC).loss == 0
    assert counter(lab, "POSTROUTING") > 0
    nl = netns.get()
    nl.call(services.start, nl, Service("lan-pc", 8080))
    seen = lab.http("red", f"http://{LAN_PC}:8080/")
    assert seen.status == 200 and "You came from 192.168.1.2." in seen.body


def test_the_web_app_answers_get_and_head_and_refuses_the_rest():
    lab = Lab()
    lab.goto("portforward")
    head = sh("ip netns exec lan-pc curl -sS -I http://192.168.1.2/")
    assert head.stdout.startswith("HTTP/1.0 200 OK") and "Server: labkit-webapp" in head.stdout
    assert "Content-Length: 44" in head.stdout  # "Hello from blue! You came from 192.168.1.3.\n"
    post = sh("ip netns exec lan-pc curl -sS -X POST -o /dev/null -w '%{http_code}' 192.168.1.2")
    assert post.stdout == "501"
    # a client that sends half a request and leaves does not stop the app
    with socket.create_connection(("192.168.1.2", 80), timeout=5) as half:
        half.sendall(b"GE")
    assert lab.http("lan-pc", "http://192.168.1.2/").status == 200


def test_a_web_app_on_a_taken_port_says_so_at_once():
    # the app says "listening" on a pipe, and the pipe closes when it dies:
    # no waiting out the timeout, and the error says what to look at
    Lab()
    nl = netns.get()
    first = nl.call(services.start, nl, Service("lan-pc", 8081))
    with pytest.raises(KernelError) as refused:
        nl.call(services.start, nl, Service("lan-pc", 8081))
    said = str(refused.value)
    assert "stopped before it listened" in said and "port 8081 in use" in said, said
    assert "`ip netns exec lan-pc ss -ltnp`" in said
    assert services.find(Service("lan-pc", 8081)) == [first]  # the first one serves on
    services.stop(Service("lan-pc", 8081))
    assert not services.find(Service("lan-pc", 8081))


def test_the_internet_answers_only_after_the_default_route():
    lab = Lab()
    lab.goto("nat")
    before = lab.ping("red", SERVER, count=1)
    assert before.received == 0 and "Network is unreachable" in before.output
    lab.goto("internet")
    assert lab.ping("red", SERVER).loss == 0
    reply = lab.http("blue", f"http://{SERVER}/")
    assert reply.status == 200 and "You came from 198.51.100.2." in reply.body


def test_port_forward_from_the_lan_the_host_and_a_neighbour():
    lab = Lab()
    lab.goto("portforward")
    before = counter(lab, "PREROUTING")
    from_lan = lab.http("lan-pc", "http://192.168.1.2/")
    assert from_lan.status == 200 and "Hello from blue! You came from 192.168.1.3." in from_lan.body
    assert counter(lab, "PREROUTING") > before
    assert lab.http(HOST, "http://192.168.1.2/").status == 200
    assert lab.http("red", "http://192.168.1.2/").status == 200
    # other traffic to port 80 still goes where it was sent
    assert "Hello from internet" in lab.http("red", f"http://{SERVER}/").body


def test_the_checks_http_probe_is_a_real_request_through_the_same_rules():
    # probe.http_get (what lab.check uses) sends real packets, as curl does
    lab = Lab()
    lab.goto("portforward:dnat")
    before = counter(lab, "PREROUTING")
    assert probe.http_get("lan-pc", "192.168.1.2") == 200
    assert counter(lab, "PREROUTING") == before + 1  # one connection, DNATed
    assert probe.http_get(HOST, "192.168.1.2", timeout=1) == 0  # no OUTPUT rule yet
    lab.goto("portforward:local")
    assert probe.http_get(HOST, "192.168.1.2") == 200
    assert probe.http_get("lan-pc", "192.168.1.2", port=81, timeout=1) == 0  # nothing there


def test_without_the_output_rule_the_host_cannot_reach_its_own_forward():
    lab = Lab()
    lab.goto("portforward:dnat")
    assert lab.http("lan-pc", "http://192.168.1.2/").ok
    assert not lab.http(HOST, "http://192.168.1.2/", timeout=1).ok
    lab.goto("portforward:local")
    assert lab.http(HOST, "http://192.168.1.2/").ok


def test_the_tutorials_literal_dnat_fails_and_the_fix_works():
    bad = sh("iptables -t nat -A PREROUTING --dport 80 --to-destination 192.168.15.2:80 -j DNAT")
    assert bad.returncode != 0 and 'unknown option "--dport"' in bad.stderr
    assert sh(Lab().plan("portforward").commands[1]).returncode == 0


def test_going_back_to_host_leaves_no_labkit_rule_and_forwarding_off():
    lab = Lab()
    lab.goto("portforward")
    assert lab.http("lan-pc", "http://192.168.1.2/").ok
    lab.goto("host")
    snap = snapshot()
    assert not [r for r in snap.rules[HOST] if r["marked"]]
    assert snap.rules[HOST] == []
    assert snap.sysctls[HOST]["net.ipv4.ip_forward"] == "0"
    assert not [s for s in snap.services if s["ns"] != "internet"]
    assert not lab.http("lan-pc", "http://192.168.1.2/", timeout=1).ok
    assert lab.stage() == "host"


def test_a_hand_made_rule_is_left_alone_by_goto_and_removed_by_reset():
    lab = Lab()
    lab.goto("host")
    sh("iptables -t nat -A POSTROUTING -d 10.1.2.0/24 -j MASQUERADE")
    lab.goto("nat")
    lab.goto("host")
    assert [r["spec"] for r in snapshot().rules[HOST]] == ["-d 10.1.2.0/24 -j MASQUERADE"]
    lab.reset()
    assert snapshot().rules[HOST] == []


def test_the_tutorials_nat_typed_by_hand_is_recognised():
    lab = Lab()
    lab.goto("host")
    for command in lab.plan("nat").commands:
        assert sh(f"sudo {command}").returncode == 0, command
    assert lab.stage() == "nat"
    assert lab.ping("red", LAN_PC).ok


def test_reset_restores_a_broken_world():
    lab = Lab()
    sh("ip netns delete router")
    for _ in range(50):  # the kernel frees a namespace asynchronously
        if not lab.ping(HOST, SERVER, count=1, timeout=0.1).ok:
            break
    assert not lab.ping(HOST, SERVER, count=1).ok
    lab.reset()
    assert lab.stage() == "reset"
    assert lab.http(HOST, f"http://{SERVER}/").ok


def test_nothing_in_the_sandbox_is_wired_to_the_machine():
    lab = Lab()
    lab.goto("portforward")
    g = graph()
    for node, data in g.nodes(data=True):
        if data["kind"] != "iface" or data["type"] == "loopback":
            continue
        assert data["type"] in ("veth", "bridge"), node
        if data["type"] == "veth":
            peers = [n for n in g[node] if g.edges[node, n]["kind"] == "veth"]
            assert len(peers) == 1, f"{node}: its other end is not in the sandbox"
    # The internet has no route beyond its own networks (no packet is sent).
    route = lab.exec("internet", ["ip", "route", "get", "10.0.0.1"])
    assert route.returncode != 0 and "unreachable" in route.stderr


def test_world_machines_by_name_and_bad_names():
    lab = Lab()
    assert "192.168.1.3/24" in lab.exec("lan-pc", ["ip", "-br", "addr"]).stdout
    with pytest.raises(ConfigError, match="does not exist"):
        lab.exec("lan-pcc", ["true"])
    with pytest.raises(ConfigError, match="not an http:// URL"):
        lab.http("red", "ftp://x")


def test_reachability_table_from_real_pings():
    lab = Lab()
    lab.goto("internet")
    table = lab.reachability().table
    assert table["red"]["internet"] and table["blue"]["lan-pc"]
    assert not table["lan-pc"]["red"]  # the LAN does not know 192.168.15.0/24
    lab.goto("host")
    table = lab.reachability().table
    assert table["red"]["blue"] and not table["red"]["internet"]


def test_publish_any_port_and_its_bad_inputs():
    lab = Lab()
    lab.goto("host")
    with pytest.raises(ConfigError, match="go to the nat stage first"):
        lab.publish(8080, "red")
    lab.goto("nat")  # the host forwards and red has its way back: enough
    before = lab.state()
    for bad, match in [
        ((0, "red"), "from 1 to 65535"),
        ((70000, "red"), "from 1 to 65535"),
        ((8080, "red", 0), "from 1 to 65535"),
        ((8080, "green"), "does not exist"),
        ((8080, "lan-pc"), "lab namespace"),
        ((8080, "red; reboot"), "not a valid namespace name"),
    ]:
        with pytest.raises(ConfigError, match=match):
            lab.publish(*bad)
    assert lab.state() == before  # nothing half-applied
    lab.publish(8080, "red")
    reply = lab.http("lan-pc", "http://192.168.1.2:8080/")
    assert reply.ok and "Hello from red" in reply.body
    with pytest.raises(ConfigError, match="already forwarded"):
        lab.publish(8080, "blue")
    lab.goto("nat")  # goto removes what publish added
    assert not lab.http("lan-pc", "http://192.168.1.2:8080/", timeout=1).ok
    assert lab.stage() == "nat"


def test_a_stage_asked_for_early_builds_the_path():
    lab = Lab()
    lab.goto("portforward")  # from a fresh sandbox
    assert lab.http("lan-pc", "http://192.168.1.2/").ok
    assert lab.ping("red", SERVER).ok
