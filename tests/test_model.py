"""The pure parts: the command simulator, the stages, the diff. No kernel."""

from __future__ import annotations

import pytest

from labkit.core.model import CommandError, Iface, Route, State, simulate
from labkit.core.plan import diff
from labkit.core.stages import count_from, course, desired, find, namespaces, owned, steps_upto
from labkit.errors import ConfigError, ConflictError


def test_simulator_follows_a_veth_across_namespaces():
    s = simulate(
        [
            "ip netns add red",
            "ip netns add blue",
            "ip link add veth-red type veth peer name veth-blue",
            "ip link set veth-red netns red",
            "ip link set veth-blue netns blue",
            "ip -n red addr add 192.168.15.1/24 dev veth-red",
            "ip -n red link set veth-red up",
            "ip netns exec red ip route add 10.0.0.0/8 via 192.168.15.5",
        ]
    )
    red = s.ifaces[("red", "veth-red")]
    assert red.peer == ("blue", "veth-blue") and red.up
    assert s.ifaces[("blue", "veth-blue")].peer == ("red", "veth-red")
    assert red.addrs == {"192.168.15.1/24"}
    assert s.routes == {Route("red", "10.0.0.0/8", "192.168.15.5")}


def test_deleting_one_end_deletes_both_and_netns_delete_takes_its_links():
    s = simulate(["ip netns add red", "ip netns add blue"])
    s = simulate(
        [
            "ip link add veth-red type veth peer name veth-blue",
            "ip link set veth-red netns red",
            "ip link set veth-blue netns blue",
        ],
        s,
    )
    assert not simulate(["ip netns exec red ip link delete veth-red"], s).ifaces
    assert not simulate(["ip netns delete blue"], s).ifaces


@pytest.mark.parametrize("bad", ["ip link add x type vxlan id 1", "ls /", "ip link set nope up"])
def test_simulator_refuses_what_it_does_not_know(bad):
    with pytest.raises(CommandError):
        simulate([bad])


def test_bridge_stage_has_no_direct_cable_and_all_ports():
    d = desired("bridge", 4)
    assert ("red", "veth-red") in d.ifaces
    assert d.ifaces[("red", "veth-red")].peer == ("host", "veth-red-br")
    ports = [i for i in d.ifaces.values() if i.master == "v-net-0"]
    assert len(ports) == 4 and all(p.up for p in ports)


def test_as_written_leaves_bridge_ends_down():
    d = desired("bridge:as-written")
    assert not d.ifaces[("host", "veth-red-br")].up
    assert d.ifaces[("red", "veth-red")].up


def test_names_and_counts():
    assert namespaces(4)[2:] == [("ns10", "192.168.15.10"), ("ns11", "192.168.15.11")]
    assert count_from({"red", "blue", "ns10", "ns12"}) == 3
    with pytest.raises(ConfigError):
        namespaces(0)
    with pytest.raises(ConfigError, match="whole number"):
        namespaces("3")  # type: ignore[arg-type]
    assert [s.id for s in steps_upto("veth:cable")][-2:] == ["netns:create", "veth:cable"]
    assert find("host") == (4, 0)
    assert [s.name for s in course(2)][0] == "world"


def test_diff_from_nothing_equals_the_plans_effect():
    own = owned(2)
    ops = diff(State(), desired("host"), own, set(owned(2).routes))
    assert simulate([c for op in ops for c in op.commands]) == desired("host")


def test_diff_between_equal_states_is_empty():
    assert diff(desired("bridge"), desired("bridge"), owned(2), set(owned(2).routes)) == []


def test_diff_going_back_deletes_only_what_the_later_stage_added():
    ops = diff(desired("host"), desired("bridge"), owned(2), set(owned(2).routes))
    assert [c for op in ops for c in op.commands] == ["ip addr del 192.168.15.5/24 dev v-net-0"]


def test_diff_leaves_what_it_does_not_own():
    obs = desired("veth")
    obs.namespaces.add("green")
    obs.ifaces[("green", "g0")] = Iface("green", "g0", "veth", peer=("green", "g1"))
    assert diff(obs, desired("veth"), owned(2), set(owned(2).routes)) == []


def test_conflict_names_the_object_and_the_fix():
    obs = State(
        {"red"},
        {("host", "eth9"): Iface("host", "eth9", "other", addrs=frozenset({"192.168.15.5/24"}))},
    )
    with pytest.raises(ConflictError, match=r"ip addr del 192\.168\.15\.5/24 dev eth9"):
        diff(obs, desired("host"), owned(2), set(owned(2).routes))


@pytest.mark.parametrize("count", [2, 3, 20])
def test_owned_is_everything_any_command_ever_made(count):
    # the plain, quadratic way: the union of the state after every command
    state, ns, ifs, routes = State(), set(), set(), set()
    for stage in course(count):
        for command in stage.commands:
            state = simulate([command], state)
            ns |= state.namespaces
            ifs |= set(state.ifaces)
            routes |= {r for r in state.routes if r.ns == "host"}
    own = owned(count)
    assert own.namespaces == ns - {"host"}
    assert own.ifaces == ifs
    assert own.routes == routes


@pytest.mark.parametrize("count", [2, 5])
def test_desired_step_by_step_equals_all_commands_at_once(count):
    for stage in course(count):
        for step in stage.steps:
            commands = [c for s in steps_upto(step.id, count) for c in s.commands]
            assert desired(step.id, count) == simulate(commands), step.id


def test_a_lab_beyond_247_namespaces_uses_a_22():
    assert namespaces(247)[-1] == ("ns254", "192.168.15.254")
    names = namespaces(1014)
    assert names[247] == ("ns255", "192.168.12.1")
    assert names[-1] == ("ns1021", "192.168.14.255")
    assert len({ip for _, ip in names} | {"192.168.15.5"}) == 1015
    assert "ip -n red addr add 192.168.15.1/24 dev veth-red" in course(247)[2].commands
    assert "ip -n red addr add 192.168.15.1/22 dev veth-red" in course(248)[2].commands
    nat = [c for c in course(248)[5].commands if "MASQUERADE" in c]
    assert nat == ["iptables -t nat -A POSTROUTING -s 192.168.12.0/22 -j MASQUERADE"]
    with pytest.raises(ConfigError, match="at most 1014"):
        namespaces(1015)


def test_a_deleted_link_takes_the_routes_through_it():
    world = desired("reset")
    assert Route("router", "default", "198.51.100.1") in world.routes
    after = simulate(["ip -n internet link del eth0"], world)
    assert Route("router", "default", "198.51.100.1") not in after.routes
    assert after.routes == world.routes - {Route("router", "default", "198.51.100.1")}
    # the host's default route goes through eth0 (host end of the LAN cable)
    unplugged = simulate(["ip link del eth0"], world)
    assert Route("host", "default", "192.168.1.1") not in unplugged.routes


def test_a_chain_policy_is_part_of_the_state_and_accept_is_not_stored():
    s = simulate(["iptables -P FORWARD DROP"])
    assert s.policies == {("host", "filter", "FORWARD"): "DROP"}
    assert s != State() and s.copy() == s
    opened = simulate(["iptables -w -t filter -P FORWARD ACCEPT"], s)
    assert opened.policies == {} and opened == State()
    assert simulate(["iptables -P INPUT ACCEPT"]) == State()  # already the default


def test_a_policy_in_a_namespace_goes_with_the_namespace():
    s = simulate(
        [
            "ip netns add router",
            "ip netns exec router iptables -P FORWARD DROP",
            "sudo ip netns exec router iptables -w -P INPUT DROP",
            "ip netns exec router iptables -t nat -P POSTROUTING ACCEPT",
            "iptables -w -t filter -P OUTPUT DROP",
        ]
    )
    assert s.policies == {
        ("router", "filter", "FORWARD"): "DROP",
        ("router", "filter", "INPUT"): "DROP",
        ("host", "filter", "OUTPUT"): "DROP",
    }
    assert s.project(set(), set()).policies == {("host", "filter", "OUTPUT"): "DROP"}
    assert s.project({"router"}, set()).policies == s.policies
    gone = simulate(["ip netns del router"], s)
    assert gone.policies == {("host", "filter", "OUTPUT"): "DROP"}


def test_a_copy_of_a_state_does_not_share_its_policies():
    s = simulate(["iptables -P OUTPUT DROP"])
    assert simulate(["iptables -P OUTPUT ACCEPT"], s).policies == {}
    c = s.copy()
    c.policies.clear()
    assert s.policies == {("host", "filter", "OUTPUT"): "DROP"}


@pytest.mark.parametrize(
    "bad",
    [
        "iptables -P FORWARD REJECT",  # a policy is ACCEPT or DROP
        "iptables -P FORWARD",
        "iptables -P FORWARD drop",
        "iptables -t nat -P FORWARD ACCEPT",  # nat has no FORWARD chain
        "iptables -t nat -P POSTROUTING DROP",  # iptables: not intended for filtering
        "iptables -t mangle -P PREROUTING DROP",  # a table labkit does not read
        "iptables -N MINE",
        "iptables -P MINE DROP",  # only built-in chains have a policy
        "iptables -t",
    ],
)
def test_the_simulator_refuses_a_policy_iptables_would_refuse(bad):
    with pytest.raises(CommandError):
        simulate([bad])


def test_no_stage_closes_a_chain():
    for stage in course(3):
        for step in stage.steps:
            assert desired(step.id, 3).policies == {}, step.id


def test_forwarding_is_part_of_the_state_only_where_the_course_routes():
    fwd = "net.ipv4.ip_forward"
    s = simulate(
        [
            "ip netns add red",
            "ip netns add router",
            "ip netns exec red sysctl -w net.ipv4.ip_forward=1",  # as Docker's machine gives it
        ]
    )
    assert s.sysctls == {("host", fwd): "0", ("router", fwd): "0"}
    s = simulate([f"sysctl -w {fwd}=1", f"ip netns exec router sysctl -w {fwd}=1"], s)
    assert s.sysctls == {("host", fwd): "1", ("router", fwd): "1"}
    assert simulate(["ip netns del router"], s).sysctls == {("host", fwd): "1"}
    for target in ["reset", "netns", "bridge", "nat:masquerade", "nat", "portforward"]:
        d = desired(target, 3)
        assert {ns for ns, _ in d.sysctls} == {"host", "router"}, target
    assert desired("nat:masquerade").sysctls[("host", fwd)] == "0"
    assert desired("nat").sysctls == {("host", fwd): "1", ("router", fwd): "1"}
