"""Packet trace: send one real packet and see every interface it crossed.

:func:`trace` opens a packet capture (an ``AF_PACKET`` socket, what
``tcpdump`` uses) in every namespace of the sandbox, sends one ICMP echo
request carrying a unique marker from the source node, and collects every
copy of it, and of its reply, that any interface saw, with the kernel's
timestamps. Each sighting is a :class:`Sighting`: where (namespace,
interface, in or out), when, and the source and destination addresses
*at that point*, so NAT shows as an address that changes between two
interfaces. Nothing is modelled: if the packet died somewhere, the trace
simply ends there. Each sighting keeps the frame itself, so
:meth:`Trace.save` writes them all to one file for Wireshark.

Examples
--------
>>> from labkit import trace
>>> print(trace.trace("red", "203.0.113.8"))  # doctest: +SKIP
 1  red       veth-red      out  192.168.15.1 -> 203.0.113.8   request
 2  host      veth-red-br   in   192.168.15.1 -> 203.0.113.8   request
 ...
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from labkit import capture, pcap
from labkit.core import names
from labkit.core.model import HOST
from labkit.errors import ConfigError, NamespaceGone
from labkit.kernel import netns, preflight, probe

_ETH_P_IP = 0x0800
_ICMP = 1


@dataclass(frozen=True)
class Sighting:
    """One interface seeing the packet (or its reply) go by.

    Examples
    --------
    >>> s = Sighting(0.5, "host", "eth0", "out", "192.168.1.2", "203.0.113.8", "request")
    >>> s.where
    'host/eth0'
    """

    time: float
    ns: str
    iface: str
    direction: str  # "in" or "out"
    src: str
    dst: str
    kind: str  # "request" or "reply"
    frame: pcap.Frame | None = field(default=None, repr=False, compare=False)  # the bytes

    @property
    def where(self) -> str:
        """``NS/IFACE``, as graph nodes name interfaces (``if:NS/IFACE``).

        Examples
        --------
        >>> Sighting(0, "red", "veth-red", "out", "a", "b", "request").where
        'red/veth-red'
        """
        return f"{self.ns}/{self.iface}"


@dataclass
class Trace:
    """Where one ping went, in the order the interfaces saw it.

    Examples
    --------
    >>> t = Trace("red", "203.0.113.8", [
    ...     Sighting(0.0, "red", "veth-red", "out", "192.168.15.1", "203.0.113.8", "request"),
    ...     Sighting(0.1, "host", "eth0", "out", "192.168.1.2", "203.0.113.8", "request")])
    >>> t.rewrites()
    ['source 192.168.15.1 -> 192.168.1.2 in the host (request)']
    """

    src: str
    dst: str
    sightings: list[Sighting] = field(default_factory=list)
    answered: bool = False

    def hops(self, kind: str | None = None) -> list[Sighting]:
        """The sightings, all or only ``"request"`` / ``"reply"`` ones.

        Examples
        --------
        >>> Trace("red", "192.168.15.2").hops("reply")
        []
        """
        return [s for s in self.sightings if kind is None or s.kind == kind]

    def rewrites(self) -> list[str]:
        """Where NAT changed an address: one line per change.

        Examples
        --------
        >>> Trace("red", "192.168.15.2").rewrites()
        []
        """
        out = []
        for kind in ("request", "reply"):
            hops = self.hops(kind)
            for a, b in zip(hops, hops[1:], strict=False):
                where = names.where(b.ns)
                if a.src != b.src:
                    out.append(f"source {a.src} -> {b.src} in {where} ({kind})")
                if a.dst != b.dst:
                    out.append(f"destination {a.dst} -> {b.dst} in {where} ({kind})")
        return out

    def __str__(self) -> str:
        if not self.sightings:
            return f"{self.src} -> {self.dst}: no interface saw the packet"
        width = max(len(s.ns) for s in self.sightings)
        iw = max(len(s.iface) for s in self.sightings)
        lines = []
        for n, s in enumerate(self.sightings, 1):
            lines.append(
                f"{n:2}  {s.ns:<{width}}  {s.iface:<{iw}}  {s.direction:<3}  "
                f"{s.src} -> {s.dst}  {s.kind}"
            )
        lines += [f"NAT: {r}" for r in self.rewrites()]
        lines.append("the reply came back" if self.answered else "no reply came back")
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write every copy of the packet and its reply to a capture file; return the format.

        ``path`` ends in ``.pcapng`` (each interface named ``NS/IFACE``,
        each copy with its direction) or ``.pcap`` (interfaces and
        directions lost: see :mod:`labkit.pcap`). The copies are in the
        trace's order, so Wireshark's packet N is line N of the trace; the
        file holds the traced packet only, not the ARP or other traffic
        around it.

        Raises
        ------
        ConfigError
            For another suffix, or a trace made by hand, without frames.

        Examples
        --------
        >>> t = trace("red", "203.0.113.8")  # doctest: +SKIP
        >>> t.save("ping.pcapng")  # doctest: +SKIP
        'pcapng'
        >>> Trace("red", "192.168.15.2").save("ping.txt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        labkit.errors.ConfigError: 'ping.txt' must end in .pcapng or .pcap ...
        """
        fmt = pcap.format_of(path)
        frames = [s.frame for s in self.sightings if s.frame is not None]
        if len(frames) < len(self.sightings):
            raise ConfigError("this trace has no captured frames to save: make it with trace()")
        try:
            pcap.write(path, frames)
        except OSError as err:
            raise ConfigError(f"cannot write {os.fspath(path)}: {err.strerror}") from None
        return fmt

    def draw(self, **kwargs: Any) -> Any:
        """The live graph with the hops numbered on the interfaces that saw them.

        Keyword arguments go to :func:`labkit.draw.draw` (``scale=1.5`` for
        a projector, ``upto=N`` for the first N hops). The figure's
        ``labkit_alt`` says it in words, the hops in order: a notebook
        shows it as the picture's ``alt`` text.

        Examples
        --------
        >>> fig = trace("red", "203.0.113.8").draw()  # doctest: +SKIP
        >>> fig  # doctest: +SKIP
        <LabkitFigure size 900x700 with 1 Axes>
        >>> print(fig.labkit_alt.splitlines()[2])  # doctest: +SKIP
        Request (circles, solid arrows): 1 red veth-red out, 192.168.15.1 → 203.0.113.8; ...
        """
        from labkit import draw
        from labkit.kernel import observe

        return draw.draw(observe.graph(), trace=self, **kwargs)


def _parse(frame: bytes, marker: bytes) -> tuple[str, str, str] | None:
    """(src, dst, request|reply) of one of our ICMP echoes in an Ethernet frame."""
    if len(frame) < 14 + 20 + 8 or struct.unpack_from("!H", frame, 12)[0] != _ETH_P_IP:
        return None
    ip = frame[14:]
    if ip[9] != _ICMP:
        return None
    ihl = (ip[0] & 0x0F) * 4
    icmp = ip[ihl:]
    if marker not in icmp[8:]:
        return None
    kind = {8: "request", 0: "reply"}.get(icmp[0])
    if kind is None:
        return None
    return socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), kind


def _read(sock: socket.socket, ns: str, marker: bytes, out: list[Sighting]) -> None:
    for frame in capture.read_frames(sock, ns):
        got = _parse(frame.data, marker) if frame.linktype == pcap.LINKTYPE_ETHERNET else None
        if got:
            out.append(Sighting(frame.time, ns, frame.iface, frame.direction, *got, frame=frame))


def _run(nl: netns.Netlink, src: str, dst: str, timeout: float) -> Trace:
    marker = b"labkit-trace-" + os.urandom(6).hex().encode()
    names = [HOST, *nl.netns_list()]
    captures: dict[str, socket.socket] = {}
    sender = None
    result = Trace(src, dst)
    try:
        for ns in names:
            try:
                captures[ns] = capture.open_socket(nl, ns)
            except (OSError, NamespaceGone):
                continue  # gone meanwhile
        # The first socket that asks for timestamps turns them on for the whole
        # kernel, but a moment later (net_enable_timestamp defers it): a packet
        # that passes before is stamped only when read, in the order of the reads.
        time.sleep(0.02)
        sender = nl.inside(
            src, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        )
        sender.setblocking(False)
        ident = int.from_bytes(os.urandom(2), "big")
        packet = probe.echo_request(ident, 1, marker + b"." * 8)
        try:
            sender.sendto(packet, (dst, 0))
        except OSError as err:
            result.sightings = []
            result.answered = False
            raise ConfigError(
                f"{src} cannot send to {dst}: {err.strerror} (try `labkit why {src} {dst}`)"
            ) from None
        deadline = time.monotonic() + timeout
        settle: float | None = None
        socks = {s: ns for ns, s in captures.items()}
        while True:
            now = time.monotonic()
            end = min(deadline, settle) if settle else deadline
            if now >= end:
                break
            ready, _, _ = select.select([*socks, sender], [], [], end - now)
            for s in ready:
                if s is sender:
                    try:
                        reply = sender.recv(2048)
                    except BlockingIOError:
                        continue
                    got = probe.parse_reply(reply)
                    if got and got[0] == "reply" and got[1] == ident:
                        result.answered = True
                        settle = time.monotonic() + 0.05  # the last copies on their way
                else:
                    _read(s, socks[s], marker, result.sightings)
        for s, ns in socks.items():  # what is queued still
            _read(s, ns, marker, result.sightings)
    finally:
        for s in captures.values():
            s.close()
        if sender is not None:
            sender.close()
    result.sightings = _causal_order(result.sightings, _peers())
    return result


def _peers() -> dict[tuple[str, str], tuple[str, str]]:
    """(ns, iface) -> the other end of its veth, or ("master", bridge) for a bridge port."""
    from labkit.kernel import observe

    snap = observe.snapshot()
    out = {}
    for (ns, index), (other_ns, other_index) in snap.peers.items():
        a, b = snap.link(ns, index), snap.link(other_ns, other_index)
        if a and b:
            out[(ns, a["name"])] = (other_ns, b["name"])
    for ns, links in snap.links.items():
        for link in links:
            master = snap.link(ns, link["master"]) if link["master"] else None
            if master:
                out[("master", ns, link["name"])] = ("master", master["name"])  # type: ignore[index]
    return out


def _causal_order(
    sightings: list[Sighting], peers: dict[tuple[str, str], tuple[str, str]]
) -> list[Sighting]:
    """Sort by the kernel's timestamps, then put cause before effect.

    A copy the kernel did not stamp when it was taken is stamped when read,
    a little late; and a forwarded packet keeps the stamp of its arrival.
    So: a packet leaves one end of a cable before it arrives at the other,
    and arrives in a namespace before it leaves it again.

    Examples
    --------
    >>> out = Sighting(2.0, "red", "veth-red", "out", "a", "b", "request")
    >>> arrive = Sighting(1.0, "host", "veth-red-br", "in", "a", "b", "request")
    >>> peers = {("red", "veth-red"): ("host", "veth-red-br")}
    >>> [s.ns for s in _causal_order([arrive, out], peers)]
    ['red', 'host']
    """
    order = sorted(sightings, key=lambda s: s.time)

    def before(a: Sighting, b: Sighting) -> bool:
        """True when ``a`` must come before ``b``."""
        if a.kind != b.kind:
            return a.kind == "request"  # the reply is made when the request arrives
        if a.direction == "out" and b.direction == "in":
            if peers.get((a.ns, a.iface)) == (b.ns, b.iface):
                return (a.src, a.dst) == (b.src, b.dst)
        if a.ns != b.ns:
            return False
        if a.direction == "in" and b.direction == "out":
            return True  # in before out again
        # a bridge hands a frame it sends to its port; a port hands what
        # arrives to its bridge
        if a.direction == b.direction == "out":
            return peers.get(("master", b.ns, b.iface)) == ("master", a.iface)  # type: ignore
        if a.direction == b.direction == "in":
            return peers.get(("master", a.ns, a.iface)) == ("master", b.iface)  # type: ignore
        return False

    for _ in range(len(order) ** 2):
        moved = False
        for i in range(len(order)):
            for j in range(i + 1, len(order)):
                if before(order[j], order[i]) and not before(order[i], order[j]):
                    order.insert(i, order.pop(j))
                    moved = True
                    break
            if moved:
                break
        if not moved:
            break
    return order


def trace(src: str, dst: str, timeout: float = 2.0) -> Trace:
    """Ping ``dst`` once from node ``src`` and record every interface the packet crossed.

    Waits for the reply (then 50 ms for the last copies), at most
    ``timeout`` seconds: long enough for an ARP request to be retried.

    Examples
    --------
    >>> t = trace("red", "203.0.113.8")  # doctest: +SKIP
    >>> t.rewrites()  # doctest: +SKIP
    ['source 192.168.15.1 -> 192.168.1.2 in the host (request)', ...]
    """
    preflight.require()
    try:
        ipaddress.IPv4Address(dst)
    except ValueError:
        raise ConfigError(f"{dst!r} is not an IPv4 address (like 203.0.113.8)") from None
    nl = netns.get()
    if src != HOST and src not in nl.call(nl.netns_list):
        raise ConfigError(f"there is no node {src!r} here: use 'host' or a namespace name")
    return nl.call(_run, nl, src, dst, timeout)
