"""Capture what a node's interfaces see while something runs, for Wireshark.

:func:`start` opens a packet capture (an ``AF_PACKET`` socket, what
``tcpdump`` uses) in one namespace of the sandbox, or in the sandbox's
host, on one interface or on all of them, and a thread reads the copies as
they come. :meth:`Capture.stop` ends it; :meth:`Capture.save` writes a
``.pcapng`` (interface names ``NS/IFACE`` and directions kept) or a
``.pcap`` (see :mod:`labkit.pcap` for what each keeps). ``labkit capture``
(:mod:`labkit.cli`) wraps a command in one; :mod:`labkit.trace` opens its
sockets and reads its frames with :func:`open_socket` and
:func:`read_frames` too.

Each frame carries the kernel's timestamp (``SO_TIMESTAMPNS``), taken when
the copy was made. The first socket that asks for timestamps turns them on
for the whole kernel a moment later (``net_enable_timestamp`` defers it);
a copy made before is stamped by the kernel when read.

Examples
--------
>>> from labkit import capture
>>> with capture.start("host", path="web.pcapng") as cap:  # doctest: +SKIP
...     subprocess.run(["ip", "netns", "exec", "lan-pc", "curl", "-s", "http://192.168.1.2/"])
>>> print(cap.summary("web.pcapng"))  # doctest: +SKIP
captured 38 packets (host/lo 0, host/eth0 13, host/v-net-0 10, ...) into web.pcapng
"""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from labkit import pcap
from labkit.core.model import HOST
from labkit.core.names import check_netns_name
from labkit.errors import ConfigError, NamespaceGone
from labkit.kernel import netns, preflight

_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
_SO_TIMESTAMPNS = 35
_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_BUFFER = 262144  # larger than any frame a veth hands over (64 KiB of GSO and headers)
SETTLE = 0.05  # seconds of silence that end a capture after stop()
_SETTLE_MAX = 1.0


def open_socket(nl: netns.Netlink, ns: str) -> socket.socket:
    """A non-blocking capture socket for every interface of ``ns``, with timestamps.

    Call it on the netlink thread (``nl.call``): it enters ``ns`` to open
    the socket, which then sees that namespace's interfaces wherever it is
    read.

    Examples
    --------
    >>> nl = netns.get()  # doctest: +SKIP
    >>> sock = nl.call(open_socket, nl, "red")  # doctest: +SKIP
    """

    def make() -> socket.socket:
        return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))

    sock = nl.inside(ns, make)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    return sock


def read_frames(sock: socket.socket, ns: str, iface: str | None = None) -> list[pcap.Frame]:
    """Every frame queued on a capture socket now (of ``iface`` only, if given).

    Frames of an interface whose link type labkit does not write (none in
    the course: see :func:`labkit.pcap.linktype_of`) are left out.

    Examples
    --------
    >>> read_frames(sock, "red")  # doctest: +SKIP
    [Frame(time_ns=1764790000123456789, ns='red', iface='veth-red', direction='out', ...)]
    """
    out = []
    while True:
        try:
            data, anc, _, addr = sock.recvmsg(_BUFFER, socket.CMSG_SPACE(16))
        except BlockingIOError:
            return out
        name, _, pkttype, hatype = addr[:4]
        linktype = pcap.linktype_of(hatype)
        if linktype is None or (iface is not None and name != iface):
            continue
        stamp = time.time_ns()  # only if the kernel gave none (it always does)
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
                sec, nsec = struct.unpack("=qq", value[:16])
                stamp = sec * 1_000_000_000 + nsec
        direction = "out" if pkttype == _PACKET_OUTGOING else "in"
        out.append(pcap.Frame(stamp, ns, name, direction, data, linktype))


def _dropped(sock: socket.socket) -> int:
    """Copies the kernel dropped because the socket's queue was full (tp_drops)."""
    try:
        _, drops = struct.unpack("=II", sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8))
    except OSError:
        return 0
    return drops


@dataclass
class Capture:
    """A running (or finished) capture on one node: its frames, counted per interface.

    Make one with :func:`start`. As a context manager it stops on leaving
    the ``with`` block and writes its file, if it holds one (``start(...,
    path=...)``, or :meth:`claim`).

    Examples
    --------
    >>> cap = Capture("red", None, [("red", "lo"), ("red", "veth-red")])
    >>> cap.frames.append(pcap.Frame(1, "red", "veth-red", "out", bytes(60)))
    >>> cap.count, cap.counts()
    (1, {'red/lo': 0, 'red/veth-red': 1})
    >>> cap.summary("x.pcapng")
    'captured 1 packet (red/lo 0, red/veth-red 1) into x.pcapng'
    """

    node: str
    iface: str | None
    interfaces: list[tuple[str, str]]
    path: str | None = None  # set by claim()
    limit: int | None = None
    frames: list[pcap.Frame] = field(default_factory=list)
    dropped: int = 0
    _sock: socket.socket | None = field(default=None, init=False, repr=False)
    _wake: tuple[int, int] | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _stopping: bool = field(default=False, init=False, repr=False)
    _out: tuple[int, str, bool] | None = field(default=None, init=False, repr=False)

    @property
    def count(self) -> int:
        """How many frames it has (so far, while it runs).

        Examples
        --------
        >>> Capture("red", None, []).count
        0
        """
        return len(self.frames)

    @property
    def running(self) -> bool:
        """True until :meth:`stop`.

        Examples
        --------
        >>> Capture("red", None, []).running
        False
        """
        return self._sock is not None

    def counts(self) -> dict[str, int]:
        """Frames per interface (``NS/IFACE``), every interface of the capture included.

        Examples
        --------
        >>> Capture("red", "lo", [("red", "lo")]).counts()
        {'red/lo': 0}
        """
        out = {f"{ns}/{iface}": 0 for ns, iface in self.interfaces}
        for f in self.frames:
            out[f.where] = out.get(f.where, 0) + 1
        return out

    def summary(self, path: str | os.PathLike[str] | None = None) -> str:
        """One line: packets per interface, the file (``path``, or its own), drops if any.

        Examples
        --------
        >>> Capture("red", "lo", [("red", "lo")], dropped=3).summary()
        'captured 0 packets (red/lo 0); the kernel dropped 3 (the capture fell behind)'
        """
        n, path = self.count, path if path is not None else self.path
        per = ", ".join(f"{where} {k}" for where, k in self.counts().items())
        text = f"captured {n} packet{'' if n == 1 else 's'} ({per})"
        if path is not None:
            text += f" into {os.fspath(path)}"
        if self._full():
            text += f"; the first {self.limit} only, as asked"
        if self.dropped:
            text += f"; the kernel dropped {self.dropped} (the capture fell behind)"
        return text

    # -- running ----------------------------------------------------------------

    def _run(self) -> None:
        """The reader thread: take frames as they come; after stop, until quiet."""
        assert self._sock is not None and self._wake is not None
        sock, wake = self._sock, self._wake[0]
        give_up = None
        while True:
            if self._stopping and give_up is None:
                give_up = time.monotonic() + _SETTLE_MAX
            ready, _, _ = select.select([sock, wake], [], [], SETTLE if self._stopping else None)
            if wake in ready:
                os.read(wake, 64)
            if sock in ready:
                self._take(read_frames(sock, self.node, self.iface))
            elif not ready:
                return  # stopping, and quiet for SETTLE seconds
            if self._full():
                self.dropped = _dropped(sock)  # what comes after is not wanted
                return
            if give_up is not None and time.monotonic() >= give_up:
                return

    def _full(self) -> bool:
        return self.limit is not None and self.count >= self.limit

    def _take(self, frames: list[pcap.Frame]) -> None:
        if self.limit is not None:
            frames = frames[: max(0, self.limit - self.count)]
        self.frames.extend(frames)

    def stop(self) -> Capture:
        """Stop capturing, once the packets already on their way are in.

        Waits until the interfaces have been quiet for :data:`SETTLE`
        seconds (a TCP connection's last FIN and ACK come just after its
        program exits), at most one second. Safe to call twice.

        Examples
        --------
        >>> Capture("red", None, []).stop().running
        False
        """
        if self._sock is None or self._wake is None or self._thread is None:
            return self
        self._stopping = True
        os.write(self._wake[1], b"x")
        self._thread.join()
        if not self._full():
            self._take(read_frames(self._sock, self.node, self.iface))
            self.dropped = _dropped(self._sock)
        self._sock.close()
        for fd in self._wake:
            os.close(fd)
        self._sock = self._wake = self._thread = None
        return self

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the frames to ``path``: ``.pcapng`` or ``.pcap``; returns the format.

        Stops the capture first if it still runs. The frames are in the
        order they were read, which is the order of their timestamps for
        each interface.

        Examples
        --------
        >>> import os, tempfile
        >>> cap = Capture("red", None, [("red", "lo")])
        >>> cap.save(os.path.join(tempfile.mkdtemp(), "empty.pcap"))
        'pcap'
        """
        self.stop()
        return pcap.write(path, self.frames, self.interfaces)

    def claim(self, path: str | os.PathLike[str]) -> None:
        """Check now that ``path`` can be written, and hold it for :meth:`finish`.

        Opens the file (creating it if need be) without emptying it, so a
        problem shows before anything runs, and an existing file stays as
        it was until the capture is written over it.

        Examples
        --------
        >>> Capture("red", None, []).claim("/proc/nope.pcapng")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        labkit.errors.ConfigError: cannot write /proc/nope.pcapng: No such file or directory
        """
        fmt = pcap.format_of(path)
        if os.path.isdir(path):
            raise ConfigError(f"cannot write {os.fspath(path)}: it is a folder")
        existed = os.path.exists(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise ConfigError(f"cannot write {os.fspath(path)}: {err.strerror}") from None
        self.release()
        self.path, self._out = os.fspath(path), (fd, fmt, not existed)

    def release(self) -> None:
        """Let go of a claimed file unwritten (removing it if the claim created it).

        Examples
        --------
        >>> Capture("red", None, []).release()
        """
        if self._out is None:
            return
        fd, _, created = self._out
        os.close(fd)
        if created and self.path is not None and os.path.getsize(self.path) == 0:
            os.unlink(self.path)
        self._out = None

    def finish(self) -> str:
        """Stop, and write the claimed file (see :meth:`claim`); return the format.

        Examples
        --------
        >>> import os, tempfile
        >>> cap = Capture("red", None, [("red", "lo")])
        >>> cap.claim(os.path.join(tempfile.mkdtemp(), "quiet.pcapng"))
        >>> cap.finish()
        'pcapng'
        """
        self.stop()
        if self._out is None:
            raise ConfigError("this capture has no file to write: claim(path) first")
        fd, fmt, _ = self._out
        data = pcap.dumps(self.frames, fmt, self.interfaces)
        try:
            os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.pwrite(fd, view, len(data) - len(view)) :]
        except OSError as err:
            raise ConfigError(f"cannot write {self.path}: {err.strerror}") from None
        finally:
            os.close(fd)
            self._out = None
        return fmt

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._out is not None:
            self.finish()  # after an error too: what was captured is kept
        else:
            self.stop()


def _interfaces(nl: netns.Netlink, node: str, iface: str | None) -> list[tuple[str, str]]:
    """(node, name) of the interfaces to capture on, in ifindex order; clear errors."""
    if node != HOST:
        check_netns_name(node)
        present = nl.netns_list()
        if node not in present:
            raise ConfigError(
                f"there is no node {node!r} here: the namespaces are "
                f"{', '.join(present) or 'none yet'} (and 'host')"
            )
    try:
        indexes = nl.indexes(node)
    except NamespaceGone as err:
        raise ConfigError(str(err)) from None
    names = sorted(indexes, key=indexes.__getitem__)
    if iface is not None and iface not in indexes:
        raise ConfigError(
            f"{node} has no interface {iface!r}: its interfaces are {', '.join(names)}"
        )
    return [(node, name) for name in names if iface is None or name == iface]


def _open(nl: netns.Netlink, cap: Capture) -> None:
    cap.interfaces = _interfaces(nl, cap.node, cap.iface)
    cap._sock = open_socket(nl, cap.node)


def start(
    node: str, iface: str | None = None, path: str | None = None, count: int | None = None
) -> Capture:
    """Start capturing on ``node`` (a namespace, or ``"host"``): on ``iface``, or on all.

    Parameters
    ----------
    node
        A namespace of the sandbox (red, blue, lan-pc, router, ...) or
        ``"host"``.
    iface
        One interface of ``node``; ``None``: every interface it has.
    path
        Where the context manager saves on leaving (``.pcapng`` or
        ``.pcap``): checked and opened now (see :meth:`Capture.claim`),
        written then, also when the block ends with an error.
    count
        Keep only the first ``count`` frames.

    Raises
    ------
    ConfigError
        For an unknown node or interface, a bad count, a bad suffix or a
        file that cannot be written.

    Examples
    --------
    >>> with start("host", path="web.pcapng") as cap:  # doctest: +SKIP
    ...     subprocess.run(["curl", "-s", "http://192.168.1.2/"])
    >>> cap.counts()  # doctest: +SKIP
    {'host/lo': 0, 'host/eth0': 6, 'host/v-net-0': 6, 'host/veth-red-br': 0, ...}
    """
    preflight.require()
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ConfigError(f"count must be a whole number above 0, not {count!r}")
    if path is not None:
        pcap.format_of(path)
    cap = Capture(node, iface, [], limit=count)
    nl = netns.get()
    nl.call(_open, nl, cap)  # an unknown node or interface: an error before the file
    if path is not None:
        try:
            cap.claim(path)
        except BaseException:
            cap.stop()
            raise
    # Timestamps are on a moment after the socket asks (see the module's docstring).
    time.sleep(0.02)
    cap._wake = os.pipe()
    cap._thread = threading.Thread(target=cap._run, name=f"labkit-capture-{node}", daemon=True)
    cap._thread.start()
    return cap


def run(cmd: list[str], cap: Capture) -> int:
    """Run ``cmd`` while ``cap`` captures, then stop and write its claimed file.

    ``cmd`` runs in this process's network namespace (the sandbox's host,
    for the command line), with this terminal. The capture stops once it
    ends (see :meth:`Capture.stop`). After Ctrl-C, which reaches ``cmd``
    too, what was captured is written all the same.

    Returns
    -------
    int
        ``cmd``'s exit status; 128 + N if signal N ended it; 130 after Ctrl-C.

    Raises
    ------
    OSError
        When ``cmd`` cannot start; nothing is written then, and a file the
        claim created is removed.

    Examples
    --------
    >>> cap = start("host", path="web.pcapng")  # doctest: +SKIP
    >>> run(["curl", "-s", "http://192.168.1.2/"], cap)  # doctest: +SKIP
    0
    """
    try:
        proc = subprocess.Popen(cmd)
        try:
            status = proc.wait()
        except KeyboardInterrupt:
            proc.wait()
            status = -2  # SIGINT: 130, whatever cmd did with it
        if cap._out is not None:
            cap.finish()
    finally:
        cap.release()
        cap.stop()
    return 128 - status if status < 0 else status
