"""Broken labs: labkit breaks one thing on purpose, the learner finds and fixes it.

:func:`start` builds a stage, breaks one thing without saying what, and
returns an :class:`Exercise` that says what no longer works. The learner
investigates with the usual tools (``ip``, ``ping``, ``iptables``,
:func:`labkit.why.why`, :func:`labkit.trace.trace`), fixes it by hand, and
:meth:`Exercise.check` confirms with a real packet. Any fix that makes the
packet arrive counts, not only the one labkit has in mind.

Examples
--------
>>> from labkit import exercises
>>> sorted(exercises.FAULTS)[:3]
['app-stopped', 'bridge-down', 'bridge-end-down']
>>> ex = exercises.start("forwarding-off")  # doctest: +SKIP
>>> print(ex)  # doctest: +SKIP
Exercise forwarding-off: red cannot reach the internet (203.0.113.8) any more. ...
"""

from __future__ import annotations

import random
import shlex
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from labkit.core import stages
from labkit.errors import ConfigError
from labkit.kernel import preflight

(_, _RED_IP), (_, _BLUE_IP) = stages.namespaces(2)
_LAB_NET = f"{stages.SUBNET}.0/{stages.PREFIX}"
_LAN_NET = f"{stages.LAN}.0/24"
_DNAT = (
    f"-d {stages.HOST_LAN_IP}/32 -p tcp -m tcp --dport 80 -m comment --comment labkit "
    f"-j DNAT --to-destination {_BLUE_IP}:80"
)


@dataclass(frozen=True)
class Fault:
    """One thing to break: the stage it starts from, the commands that break it,
    the symptom (a packet that stops arriving), the cause labkit's diagnosis names,
    and a fix.

    Examples
    --------
    >>> FAULTS["forwarding-off"].probe
    ('red', '203.0.113.8', None)
    """

    name: str
    stage: str
    breaks: tuple[str, ...]
    probe: tuple[str, str, int | None]
    cause: str
    fix: str
    hint: str

    @property
    def symptom(self) -> str:
        """What the learner is told: which packet no longer arrives.

        Examples
        --------
        >>> FAULTS["no-dnat"].symptom
        'the LAN PC gets no answer from http://192.168.1.2:80/ any more'
        """
        src, dst, port = self.probe
        who = {"lan-pc": "the LAN PC", "host": "the host"}.get(src, src)
        if port:
            return f"{who} gets no answer from http://{dst}:{port}/ any more"
        what = {
            stages.SERVER_IP: f"the internet ({stages.SERVER_IP})",
            stages.LAN_PC_IP: f"the LAN PC ({stages.LAN_PC_IP})",
        }
        return f"{who} cannot reach {what.get(dst, dst)} any more"


def _fault(name: str, stage: str, breaks: str, probe: tuple, cause: str, fix: str, hint: str):
    return name, Fault(name, stage, tuple(breaks.split(" ; ")), probe, cause, fix, hint)


#: every fault labkit can inject, by name
FAULTS: dict[str, Fault] = dict(
    [
        _fault(
            "cable-down",
            "veth",
            "ip -n red link set veth-red down",
            ("red", _BLUE_IP, None),
            "down",
            "ip -n red link set veth-red up",
            "look at the state of red's interfaces",
        ),
        _fault(
            "no-address",
            "veth",
            "ip -n red addr flush dev veth-red",
            ("red", _BLUE_IP, None),
            "no-address",
            f"ip -n red addr add {_RED_IP}/{stages.PREFIX} dev veth-red",
            "what addresses does red have?",
        ),
        _fault(
            "no-route",
            "internet",
            "ip -n red route del default",
            ("red", stages.SERVER_IP, None),
            "no-route",
            f"ip netns exec red ip route add default via {stages.HOST_IP}",
            f"where does red send packets for {stages.SERVER_IP}?",
        ),
        _fault(
            "forwarding-off",
            "internet",
            "sysctl -qw net.ipv4.ip_forward=0",
            ("red", stages.SERVER_IP, None),
            "forwarding",
            "sysctl -w net.ipv4.ip_forward=1",
            "the packet reaches the host: does the host pass it on?",
        ),
        _fault(
            "no-nat",
            "nat",
            f"iptables -t nat -D POSTROUTING -s {_LAB_NET} -m comment --comment labkit "
            "-j MASQUERADE",
            ("red", stages.LAN_PC_IP, None),
            "no-nat",
            f"iptables -t nat -A POSTROUTING -s {_LAB_NET} -j MASQUERADE",
            "the LAN PC receives the ping: where does its reply go?",
        ),
        _fault(
            "no-route-back",
            "portforward",
            f"ip -n blue route del {_LAN_NET} ; ip -n blue route del default",
            ("lan-pc", stages.HOST_LAN_IP, 80),
            "no-route-back",
            f"ip netns exec blue ip route add {_LAN_NET} via {stages.HOST_IP}",
            "the web app gets the request: can it answer?",
        ),
        _fault(
            "forward-drop",
            "internet",
            "iptables -P FORWARD DROP",
            ("red", stages.SERVER_IP, None),
            "forward-drop",
            "iptables -P FORWARD ACCEPT",
            "the host forwards... unless its firewall says no",
        ),
        _fault(
            "no-dnat",
            "portforward",
            f"iptables -t nat -D PREROUTING {_DNAT}",
            ("lan-pc", stages.HOST_LAN_IP, 80),
            "no-dnat",
            f"iptables -t nat -A PREROUTING -d {stages.HOST_LAN_IP}/32 -p tcp --dport 80 "
            f"-j DNAT --to-destination {_BLUE_IP}:80",
            "who listens on the host's port 80?",
        ),
        _fault(
            "no-output-dnat",
            "portforward",
            f"iptables -t nat -D OUTPUT {_DNAT}",
            ("host", stages.HOST_LAN_IP, 80),
            "no-output-dnat",
            f"iptables -t nat -A OUTPUT -d {stages.HOST_LAN_IP}/32 -p tcp --dport 80 "
            f"-j DNAT --to-destination {_BLUE_IP}:80",
            "the LAN PC still gets the page; the host does not",
        ),
        _fault(
            "unplugged",
            "bridge",
            "ip link set veth-blue-br nomaster",
            ("red", _BLUE_IP, None),
            "arp",
            f"ip link set veth-blue-br master {stages.BRIDGE}",
            f"which cable ends are plugged into {stages.BRIDGE}?",
        ),
        _fault(
            "app-stopped",
            "portforward",
            "pkill -f labkit.webapp.--name.[b]lue",
            ("lan-pc", stages.HOST_LAN_IP, 80),
            "not-listening",
            "ip netns exec blue python3 -m labkit.webapp --name blue 80 &",
            "the request reaches blue: is anything listening there?",
        ),
        _fault(
            "bridge-down",
            "bridge",
            f"ip link set {stages.BRIDGE} down",
            ("red", _BLUE_IP, None),
            "down",
            f"ip link set {stages.BRIDGE} up",
            "is the switch itself on?",
        ),
        _fault(
            "bridge-end-down",
            "bridge",
            "ip link set veth-blue-br down",
            ("red", _BLUE_IP, None),
            "down",
            "ip link set veth-blue-br up",
            "look at every cable end on the way",
        ),
    ]
)


@dataclass
class Result:
    """What :meth:`Exercise.check` found.

    Examples
    --------
    >>> print(Result(True, "red reaches the internet (203.0.113.8) again"))
    Fixed: red reaches the internet (203.0.113.8) again.
    """

    fixed: bool
    sentence: str

    def __str__(self) -> str:
        return ("Fixed: " if self.fixed else "Not yet: ") + self.sentence + "."

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


class Exercise:
    """A lab with one hidden fault. :meth:`check` says whether it is fixed.

    Examples
    --------
    >>> ex = Exercise(FAULTS["bridge-down"])
    >>> print(ex)
    Exercise bridge-down: red cannot reach 192.168.15.2 any more. Find out why and fix it.
    """

    def __init__(self, fault: Fault, named: bool = True) -> None:
        self.fault = fault
        self.named = named  # False for a random exercise: its name would give it away
        self.tries = 0

    def __str__(self) -> str:
        name = f" {self.fault.name}" if self.named else ""
        return f"Exercise{name}: {self.fault.symptom}. Find out why and fix it."

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def check(self, wait: float = 0.0) -> Result:
        """Send the real packet again: does it arrive now?

        ``wait`` gives a web app just started in the background time to
        listen. After three tries that fail, the result adds a hint.

        Examples
        --------
        >>> print(start("bridge-down").check())  # doctest: +SKIP
        Not yet: red still gets no answer from 192.168.15.2.
        """
        src, dst, port = self.fault.probe
        ok = arrives(self.fault.probe, wait)
        self.tries += 1
        what = f"http://{dst}:{port}/" if port else dst
        if ok:
            return Result(True, f"{src} gets an answer from {what} again")
        sentence = f"{src} still gets no answer from {what}"
        if self.tries >= 3:
            sentence += f" (hint: {self.fault.hint})"
        return Result(False, sentence)

    def reveal(self) -> str:
        """What was broken and one way to fix it (for when you give up).

        Examples
        --------
        >>> print(Exercise(FAULTS["bridge-down"]).reveal())
        labkit ran: ip link set v-net-0 down
        one fix: ip link set v-net-0 up
        """
        broke = "; ".join(self.fault.breaks)
        return f"labkit ran: {broke}\none fix: {self.fault.fix}"


def arrives(probe: tuple[str, str, int | None], wait: float = 0.0, count: int = 2) -> bool:
    """Send the real packet of ``probe`` (src, dst, TCP port or None): does it arrive?

    A ping (``count`` echoes, one reply is enough) or, with a port, an HTTP
    GET. It tries again for up to ``wait`` seconds, for a web app just
    started in the background.

    Examples
    --------
    >>> arrives(("red", "203.0.113.8", None))  # doctest: +SKIP
    True
    """
    from labkit.lab import Lab

    preflight.require()
    src, dst, port = probe
    lab = Lab()
    deadline = time.monotonic() + wait
    while True:
        if port:
            ok = lab.http(src, f"http://{dst}:{port}/", timeout=2).ok
        else:
            ok = lab.ping(src, dst, count=count).received > 0
        if ok or time.monotonic() >= deadline:
            return ok
        time.sleep(0.2)


def start(name: str | None = None, seed: int | None = None) -> Exercise:
    """Build the fault's stage, break it (quietly) and return the exercise.

    ``name`` picks a fault (see :data:`FAULTS`); without it, one at random
    (``seed`` makes the choice repeatable).

    Examples
    --------
    >>> ex = start(seed=3)  # doctest: +SKIP
    >>> ex.check().fixed  # doctest: +SKIP
    False
    """
    from labkit.lab import Lab

    named = name is not None
    if name is None:
        name = random.Random(seed).choice(sorted(FAULTS))
    if name not in FAULTS:
        raise ConfigError(
            f"there is no exercise {name!r}: the exercises are {', '.join(sorted(FAULTS))}"
        )
    preflight.require()
    fault = FAULTS[name]
    lab = Lab()
    lab.reset()
    lab.goto(fault.stage)
    for command in fault.breaks:
        subprocess.run(shlex.split(command), check=True, capture_output=True)
    return Exercise(fault, named)
