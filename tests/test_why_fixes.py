"""The fixes `labkit why` prints work: break a stage at random, run them verbatim, and a
real packet gets through.

Hypothesis picks a stage and one or two faults that break its packet (the
exercises' faults of :data:`labkit.exercises.FAULTS`, and more that a
learner makes by hand: a link set down, an address deleted, a route deleted,
forwarding off, a closed chain of the filter table, NAT flushed, ...). Each example builds
the stage in a fresh sandbox, breaks it with shell commands, checks that the
packet no longer arrives, asks :func:`labkit.why.why`, runs every fix
command it prints, as printed, through the sandbox's shell (each must
succeed), and then sends the real packet (a ping, or an HTTP request for the
port forward): it must arrive.

The explicit examples cover every fault once, and a few pairs. In CI (when
``CI`` is set) the random examples are derandomized: the same ones every
run. ``LABKIT_WHY_EXAMPLES`` sets how many random examples (default 40;
each takes 1 to 4 seconds).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from labkit import Lab, exercises, why
from labkit.world import run_in_lab

EXAMPLES = int(os.environ.get("LABKIT_WHY_EXAMPLES", "40"))

#: a stage, and the packet that works there: (stage, (src, dst, port))
SETUPS = {
    "veth": ("veth", ("red", "192.168.15.2", None)),
    "bridge": ("bridge", ("red", "192.168.15.2", None)),
    "host": ("host", ("red", "192.168.15.5", None)),
    "nat": ("nat", ("red", "192.168.1.3", None)),
    "internet": ("internet", ("red", "203.0.113.8", None)),
    "portforward": ("portforward", ("lan-pc", "192.168.1.2", 80)),
    "portforward-self": ("portforward", ("host", "192.168.1.2", 80)),
}

_BRIDGED = ("bridge", "host", "nat", "internet")
_ROUTED = ("nat", "internet", "portforward")


@dataclass(frozen=True)
class Fault:
    """Shell commands that break something, and the setups whose packet they stop."""

    commands: tuple[str, ...]
    setups: tuple[str, ...]


def _exercises() -> dict[str, Fault]:
    out = {}
    for f in exercises.FAULTS.values():
        setup = next(k for k, v in SETUPS.items() if v == (f.stage, f.probe))
        out[f.name] = Fault(f.breaks, (setup,))
    return out


#: what a learner breaks by hand, beyond the exercises
BY_HAND = {
    "red-down": Fault(("ip -n red link set veth-red down",), ("veth", *_BRIDGED)),
    "red-bridge-end-down": Fault(("ip link set veth-red-br down",), _BRIDGED),
    "blue-down": Fault(("ip -n blue link set veth-blue down",), ("veth", "bridge", "portforward")),
    "bridge-down-later": Fault(("ip link set v-net-0 down",), (*_BRIDGED[1:], "portforward")),
    "red-no-address": Fault(("ip -n red addr flush dev veth-red",), _BRIDGED),
    "blue-no-address": Fault(("ip -n blue addr flush dev veth-blue",), ("bridge", "portforward")),
    "blue-wrong-address": Fault(
        (
            "ip -n blue addr del 192.168.15.2/24 dev veth-blue",
            "ip -n blue addr add 192.168.15.3/24 dev veth-blue",
        ),
        ("veth", "bridge"),
    ),
    "host-no-address": Fault(
        ("ip addr del 192.168.15.5/24 dev v-net-0",), ("host", "nat", "internet", "portforward")
    ),
    "red-connected-route-deleted": Fault(
        ("ip -n red route del 192.168.15.0/24",), ("veth", "bridge", "host")
    ),
    "red-lan-route-deleted": Fault(("ip -n red route del 192.168.1.0/24",), ("nat",)),
    "host-eth0-down": Fault(("ip link set eth0 down",), _ROUTED),
    "host-default-deleted": Fault(("ip route del default",), ("internet",)),
    "forwarding-off-later": Fault(("sysctl -qw net.ipv4.ip_forward=0",), _ROUTED),
    "forward-policy-drop": Fault(("iptables -P FORWARD DROP",), _ROUTED),
    "forward-rule-drop": Fault(
        ("iptables -I FORWARD -i v-net-0 -m comment --comment 'no way out' -j DROP",), _ROUTED
    ),
    "forward-rule-reject": Fault(("iptables -A FORWARD -o eth0 -j REJECT",), _ROUTED),
    "nat-flushed": Fault(("iptables -t nat -F",), _ROUTED),
    "red-unplugged": Fault(("ip link set veth-red-br nomaster",), _BRIDGED),
    "host-input-drop": Fault(("iptables -P INPUT DROP",), ("host", "portforward-self")),
    "red-output-drop": Fault(("ip netns exec red iptables -P OUTPUT DROP",), ("veth", *_BRIDGED)),
    "blue-input-rule-drop": Fault(
        ("ip netns exec blue iptables -A INPUT -p tcp --dport 80 -j DROP",), ("portforward",)
    ),
}

FAULTS = {**_exercises(), **BY_HAND}


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, tuple[str, ...]]:
    """A setup and one or two faults that stop its packet."""
    setup = draw(st.sampled_from(sorted(SETUPS)))
    fits = sorted(name for name, f in FAULTS.items() if setup in f.setups)
    faults = draw(st.lists(st.sampled_from(fits), min_size=1, max_size=2, unique=True))
    return setup, tuple(faults)


def sh(command: str) -> tuple[int, str]:
    """Run ``command`` through bash, as a learner's shell does: (status, stderr)."""
    # a file, not a pipe: a web app started in the background would hold a pipe open
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(["bash", "-c", command], stdout=subprocess.DEVNULL, stderr=err)
        err.seek(0)
        return proc.returncode, err.read().strip()


def gets_through(probe: tuple[str, str, int | None], wait: float = 0.0) -> bool:
    """Send the real packet, one echo (polling up to ``wait`` seconds for a web app to start)."""
    return exercises.arrives(probe, wait, count=1)


def printed_fixes(text: str) -> list[str]:
    """The fix commands as `labkit why` prints them: `fix: CMD`, or numbered `N. CMD`."""
    one = re.findall(r"^  fix: (.+)$", text, re.M)
    return one or re.findall(r"^    \d+\. (.+)$", text, re.M)


def break_ask_fix(setup: str, faults: tuple[str, ...]) -> tuple[str, str | None]:
    """In this sandbox: build, break, ask, fix. Returns (why's text, what went wrong or None)."""
    stage, probe = SETUPS[setup]
    Lab().goto(stage)
    assert gets_through(probe, wait=5.0), f"{setup}: the packet fails before any fault"
    for name in faults:
        for command in FAULTS[name].commands:
            status, err = sh(command)
            if status:  # an earlier fault already took it away
                return "", f"skip: {command}: {err}"
    if gets_through(probe):
        return "", f"{setup} {faults}: the packet still gets through after the faults"
    result = why.why(*probe, confirm=False)
    text = str(result)
    fixes = printed_fixes(text)
    if not fixes or fixes != result.fixes:
        return text, f"printed fixes {fixes} are not the diagnosis's {result.fixes}"
    for command in fixes:
        status, err = sh(command)
        if status:
            return text, f"the fix `{command}` fails: {err}"
    if not gets_through(probe, wait=5.0):
        return text, "after the fixes, the packet still does not get through"
    return text, None


def _explicit() -> list[tuple[str, tuple[str, ...]]]:
    """Every fault once (in its first setup), pairs that need several fixes, and the
    cases that failed once."""
    one = [(f.setups[0], (name,)) for name, f in FAULTS.items()]
    pairs = [
        ("internet", ("red-down",)),  # the issue's case: the routes went with the link
        ("internet", ("red-down", "forwarding-off-later")),
        ("internet", ("red-no-address", "forward-policy-drop")),
        ("portforward", ("app-stopped", "no-dnat")),
        ("portforward", ("blue-down", "host-eth0-down")),
        ("nat", ("forward-rule-drop", "nat-flushed")),
        ("bridge", ("bridge-down", "blue-wrong-address")),
        ("host", ("host-input-drop", "red-output-drop")),
        # found by Hypothesis: the router's own NAT hid that the host's was gone
        ("internet", ("nat-flushed",)),
        # found by Hypothesis: without its address on v-net-0, the host sent the packet
        # by its default route, out eth0
        ("portforward", ("host-no-address",)),
        # found by Hypothesis: a cable end out of the bridge (on the sender's side, or on
        # the side of an address that is gone) hid the rest
        ("bridge", ("blue-no-address", "red-unplugged")),
        ("bridge", ("unplugged", "blue-no-address")),
    ]
    return one + pairs


PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),  # in CI the same examples every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _with_examples(test):
    for setup, faults in reversed(_explicit()):
        test = example(case=(setup, faults))(test)
    return test


@PROPERTY
@_with_examples
@given(case=cases())
def test_the_fixes_why_prints_make_the_packet_arrive(case):
    setup, faults = case
    text, wrong = run_in_lab(break_ask_fix, setup, faults)
    assume(not (wrong or "").startswith("skip:"))
    assert wrong is None, f"{setup} {faults}: {wrong}\n{text}"


def test_every_fault_stops_the_packet_of_each_of_its_setups():
    """The table is honest: each fault applies where it says (checked by the property
    too, for the setups it draws), and every exercise of the course is in it."""
    assert set(exercises.FAULTS) <= set(FAULTS)
    for name, fault in FAULTS.items():
        for setup in fault.setups:
            assert setup in SETUPS, (name, setup)
    covered = {name for _, faults in _explicit() for name in faults}
    assert covered == set(FAULTS)


def test_the_veth_down_case_of_the_issue():
    """veth-red down in a working lab: the kernel removed red's routes with the link, so
    adding the default route alone fails; why names the link, then the route."""

    def case() -> tuple[str, list[str], list[int]]:
        Lab().goto("internet")
        sh("ip -n red link set veth-red down")
        result = why.why("red", "203.0.113.8", confirm=False)
        codes = [sh(command)[0] for command in result.fixes]
        return str(result), result.fixes, codes

    text, fixes, codes = run_in_lab(case)
    assert text.startswith("red -> 203.0.113.8 (ping): veth-red in red is down"), text
    assert fixes == [
        "ip -n red link set veth-red up",
        "ip netns exec red ip route add default via 192.168.15.5",
    ]
    assert codes == [0, 0]
