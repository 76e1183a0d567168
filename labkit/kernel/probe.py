"""Many pings at once, in-process: real ICMP echo requests, no ``ping`` processes.

:func:`ping_many` opens one raw ICMP socket in each source namespace (a
socket stays in the namespace it was opened in), sends an echo request to
every target and waits for the replies. The packets are real: they cross
the same veths, bridges, routes and NAT rules as ``ping``'s.

One kernel limit shapes it. The IPv4 neighbour (ARP) table holds at most
``net.ipv4.neigh.default.gc_thresh3`` entries (1024 by default) **for the
whole machine**, every namespace together, and an entry updated less than
five seconds ago (unless it failed) cannot be reclaimed. Each pair of
namespaces that talk on a bridge needs two entries (one on each side), so
100 namespaces pinging each other need 9,900. Beyond the limit the
kernel refuses new entries ("No buffer space available") and pings fail,
in this lab and elsewhere on the machine. So when the probes need more
entries than :data:`BUDGET` allows, they go in waves, and after each
wave labkit deletes the neighbour entries that the wave created (entries
that were there before stay).
"""

from __future__ import annotations

import errno
import random
import select
import socket
import struct
import time
from collections.abc import Iterable

from labkit.core.model import HOST
from labkit.errors import NamespaceGone
from labkit.kernel import netns, rtnl

#: neighbour entries one batch of probes may create (see the module docstring)
BUDGET = 256
#: tries per probe when the neighbour table was full while it ran (else 2)
RETRIES = 3
_SOL_RAW = 255
_ICMP_FILTER = 1
_ECHO_REPLY, _UNREACHABLE, _ECHO, _TIME_EXCEEDED = 0, 3, 8, 11
_PAYLOAD = b"labkit reach ...."


def checksum(data: bytes) -> int:
    """The internet checksum (RFC 1071).

    Examples
    --------
    >>> hex(checksum(bytes.fromhex("0800 0000 0001 0002".replace(" ", ""))))
    '0xf7fc'
    """
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes = _PAYLOAD) -> bytes:
    """An ICMP echo request with a valid checksum (and ``payload`` after its header).

    Examples
    --------
    >>> pkt = echo_request(7, 1)
    >>> pkt[0], checksum(pkt)
    (8, 0)
    """
    head = struct.pack("!BBHHH", _ECHO, 0, 0, ident, seq)
    csum = checksum(head + payload)
    return struct.pack("!BBHHH", _ECHO, 0, csum, ident, seq) + payload


def parse_reply(packet: bytes) -> tuple[str, int, int, int] | None:
    """(kind, ident, seq, source) of an echo reply or an ICMP error about an echo.

    ``kind`` is ``"reply"`` or ``"error"``; for an error, ident and seq
    are those of the echo request it is about. None for anything else.

    Examples
    --------
    >>> ip = bytes([0x45]) + bytes(11) + socket.inet_aton("10.0.0.2") + bytes(4)
    >>> reply = struct.pack("!BBHHH", 0, 0, 0, 7, 3)
    >>> parse_reply(ip + reply)
    ('reply', 7, 3, '10.0.0.2')
    """
    if len(packet) < 20:
        return None
    ihl = (packet[0] & 0x0F) * 4
    source = socket.inet_ntoa(packet[12:16])
    icmp = packet[ihl:]
    if len(icmp) < 8:
        return None
    kind = icmp[0]
    if kind == _ECHO_REPLY:
        ident, seq = struct.unpack_from("!HH", icmp, 4)
        return "reply", ident, seq, source
    if kind in (_UNREACHABLE, _TIME_EXCEEDED) and len(icmp) >= 8 + 20 + 8:
        inner = icmp[8:]
        inner_ihl = (inner[0] & 0x0F) * 4
        about = inner[inner_ihl:]
        if len(about) >= 8 and about[0] == _ECHO:
            ident, seq = struct.unpack_from("!HH", about, 4)
            return "error", ident, seq, socket.inet_ntoa(inner[16:20])
    return None


class _Unit:
    """Echo requests from one namespace to some addresses, one raw socket."""

    def __init__(self, src: str, targets: list[str], ident: int) -> None:
        self.src = src
        self.targets = targets
        self.ident = ident
        self.answered: dict[int, bool] = {}
        self.sock: socket.socket | None = None
        self.tries = 1
        self.full = False  # the kernel refused a neighbour entry

    @property
    def cost(self) -> int:
        return 2 * len(self.targets)

    def open(self, nl: netns.Netlink) -> None:
        def make() -> socket.socket:
            return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)

        sock = nl.inside(self.src, make)
        sock.setblocking(False)
        wanted = (1 << _ECHO_REPLY) | (1 << _UNREACHABLE) | (1 << _TIME_EXCEEDED)
        sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", ~wanted & 0xFFFFFFFF))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock = sock

    def send(self) -> None:
        assert self.sock is not None
        for seq, ip in enumerate(self.targets):
            try:
                self.sock.sendto(echo_request(self.ident, seq), (ip, 0))
            except OSError as err:
                # no route, unreachable, or the neighbour table is full
                if err.errno == errno.ENOBUFS:
                    self.full = True
                if err.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    self.answered[seq] = False

    def read(self) -> None:
        assert self.sock is not None
        while True:
            try:
                packet = self.sock.recv(2048)
            except BlockingIOError:
                return
            got = parse_reply(packet)
            if not got:
                continue
            kind, ident, seq, source = got
            if ident != self.ident or not 0 <= seq < len(self.targets):
                continue
            if kind == "reply" and source == self.targets[seq]:
                self.answered[seq] = True
            elif kind == "error" and source == self.targets[seq]:
                self.answered.setdefault(seq, False)

    @property
    def done(self) -> bool:
        return len(self.answered) == len(self.targets)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _NeighbourTables:
    """The sandbox's neighbour tables as the probes found them: who has which
    devices and addresses, and the entries that were there before the probes
    (read once, when the probes need waves), so each wave's entries can go."""

    def __init__(self, nl: netns.Netlink) -> None:
        self.nl = nl
        self.devs: dict[str, list[int]] = {}
        self.addrs: dict[str, list[str]] = {}
        self.owner: dict[str, str] = {}
        self.before: dict[str, set[tuple[int, str]]] = {}
        for ns in [HOST, *nl.netns_list()]:
            try:
                sock = nl.sock(ns)
                links = sock.dump("links")
                addrs = sock.dump("addrs")
                neigh = sock.dump("neigh")
            except (OSError, NamespaceGone):
                continue
            self.devs[ns] = [lk["index"] for lk in links if lk["kind"] != "loopback"]
            self.addrs[ns] = [a["cidr"].split("/")[0] for a in addrs]
            for ip in self.addrs[ns]:
                self.owner.setdefault(ip, ns)
            self.before[ns] = {(n["index"], n["ip"]) for n in neigh}

    def forget(self, units: list[_Unit]) -> None:
        """Delete the neighbour entries these probes made on the way (the
        source's for each target, each target's for the source)."""
        doomed: dict[str, set[tuple[int, str]]] = {}

        def drop(ns: str, ips: Iterable[str]) -> None:
            old = self.before.get(ns, set())
            doomed.setdefault(ns, set()).update(
                (d, ip) for d in self.devs.get(ns, []) for ip in ips if (d, ip) not in old
            )

        for unit in units:
            drop(unit.src, unit.targets)
            for ip in unit.targets:
                if ip in self.owner:
                    drop(self.owner[ip], self.addrs.get(unit.src, []))
        self._delete(doomed)

    def forget_all(self) -> None:
        """Delete every neighbour entry that was not there before (routers' too)."""
        doomed = {}
        for ns, old in self.before.items():
            try:
                now = {(n["index"], n["ip"]) for n in self.nl.sock(ns).dump("neigh")}
            except (OSError, NamespaceGone):
                continue
            doomed[ns] = now - old
        self._delete(doomed)

    def _delete(self, doomed: dict[str, set[tuple[int, str]]]) -> None:
        for ns, entries in doomed.items():
            if not entries:
                continue
            try:
                self.nl.sock(ns).request([rtnl.del_neigh(i, ip) for i, ip in sorted(entries)])
            except (OSError, NamespaceGone):
                continue  # gone meanwhile


def neighbour_stats() -> dict[str, int]:
    """The machine's IPv4 neighbour table counters (``/proc/net/stat/arp_cache``).

    ``entries`` is the number of entries now (every namespace together);
    the other counters, such as ``table_fulls`` (how often the table has
    refused an entry since boot), are summed over the CPUs. Empty when the
    file cannot be read.

    Examples
    --------
    >>> stats = neighbour_stats()
    >>> stats == {} or stats["entries"] >= 0
    True
    """
    try:
        with open("/proc/net/stat/arp_cache") as f:
            rows = [r.split() for r in f.read().splitlines()]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    head, cpus = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    stats = {name: sum(int(r[i], 16) for r in cpus) for i, name in enumerate(head)}
    if "entries" in head and cpus:
        stats["entries"] = int(cpus[0][head.index("entries")], 16)  # the same on every row
    return stats


def table_fulls() -> int:
    """How often the machine's IPv4 neighbour table has refused an entry (since boot).

    Examples
    --------
    >>> table_fulls() >= 0
    True
    """
    return neighbour_stats().get("table_fulls", 0)


def ping_many(
    nl: netns.Netlink,
    pairs: list[tuple[str, str]],
    timeout: float = 1.0,
    budget: int = BUDGET,
) -> dict[tuple[str, str], bool]:
    """Ping each ``(source node, address)`` once; True where a reply came.

    Runs on the netlink thread (``nl.call(ping_many, nl, pairs)``). All
    probes of a wave go out at once; a wave ends when every probe is
    answered or ``timeout`` seconds have passed.

    Examples
    --------
    >>> nl = netns.get()  # doctest: +SKIP
    >>> nl.call(ping_many, nl, [("red", "192.168.15.2")])  # doctest: +SKIP
    {('red', '192.168.15.2'): True}
    """
    by_src: dict[str, list[str]] = {}
    for src, ip in pairs:
        by_src.setdefault(src, []).append(ip)
    size = max(1, budget // 2)
    base = random.randrange(0x10000)
    chunks = [
        (src, ips[i : i + size]) for src, ips in by_src.items() for i in range(0, len(ips), size)
    ]
    # each unit its own ICMP id: replies are told apart by (id, seq)
    units = [_Unit(src, ips, (base + n) & 0xFFFF) for n, (src, ips) in enumerate(chunks)]
    bounded = sum(u.cost for u in units) > budget
    tables = _NeighbourTables(nl) if bounded else None
    results: dict[tuple[str, str], bool] = {}
    pending = list(reversed(units))
    while pending:
        fulls = table_fulls()
        wave: list[_Unit] = []
        used = 0
        while pending and (not wave or used + pending[-1].cost <= budget):
            unit = pending.pop()
            used += unit.cost
            wave.append(unit)
        try:
            for unit in wave:
                try:
                    unit.open(nl)
                except (OSError, NamespaceGone):
                    unit.answered = dict.fromkeys(range(len(unit.targets)), False)
                    continue
                unit.send()
            deadline = time.monotonic() + timeout
            while True:
                open_units = [u for u in wave if u.sock is not None and not u.done]
                left = deadline - time.monotonic()
                if not open_units or left <= 0:
                    break
                ready, _, _ = select.select([u.sock for u in open_units], [], [], left)
                for unit in open_units:
                    if unit.sock in ready:
                        unit.read()
        finally:
            for unit in wave:
                unit.close()
        for unit in wave:
            for seq, ip in enumerate(unit.targets):
                results[(unit.src, ip)] = unit.answered.get(seq, False)
        if tables:
            tables.forget(wave)
        # A probe lost once (an ARP request dropped while a busy bridge
        # floods) gets a second try; more when the neighbour table was full
        # meanwhile (another lab, or the machine), which is not the network.
        full = table_fulls() > fulls or any(u.full for u in wave)
        for unit in wave:
            failed = [ip for seq, ip in enumerate(unit.targets) if not unit.answered.get(seq)]
            if failed and unit.tries < (RETRIES if full else 2):
                again = _Unit(unit.src, failed, unit.ident)
                again.tries = unit.tries + 1
                pending.append(again)
        if full:
            time.sleep(0.1)
    if tables:
        tables.forget_all()
    return results


def http_get(ns: str, host: str, port: int = 80, path: str = "/", timeout: float = 3.0) -> int:
    """One real HTTP GET from namespace ``ns``, in-process; the status (0: no answer).

    The TCP socket is opened in ``ns`` (on the netlink thread) and used
    from here, so the request crosses the same routes, bridges and NAT
    rules as ``ip netns exec NS curl``'s, without starting two processes
    (``ip`` and ``curl``: about 10 ms of CPU per request, which a class
    checking at the same moment pays thirty times over). The checks use
    it; :meth:`labkit.Lab.http` stays curl, which a learner can compare
    with their own command.

    Examples
    --------
    >>> http_get("lan-pc", "192.168.1.2")  # doctest: +SKIP
    200
    """
    nl = netns.get()
    sock = nl.call(nl.inside, ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: labkit\r\n\r\n".encode())
        head = b""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in head and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    except OSError:
        return 0
    finally:
        sock.close()
    words = head.split(b"\r\n", 1)[0].split()
    if len(words) >= 2 and words[0].startswith(b"HTTP/") and words[1].isdigit():
        return int(words[1])
    return 0
