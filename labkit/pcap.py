"""Packet capture files that Wireshark and ``tcpdump -r`` open: pcapng and pcap.

A :class:`Frame` is one copy of a packet that one interface saw: the bytes
as the capture socket got them (an Ethernet frame on the course's veth,
bridge and loopback interfaces), the kernel's timestamp in nanoseconds,
the namespace and interface, and the direction. :func:`write` saves a list
of them; the file name's suffix picks the format:

``.pcapng`` (what labkit recommends) keeps everything:
  one Interface Description Block per interface, named ``NS/IFACE``
  (``host/eth0``, as :attr:`labkit.trace.Sighting.where` and the graph
  name interfaces) in ``if_name``, with a description and a nanosecond
  timestamp resolution (``if_tsresol`` 9); then one Enhanced Packet Block
  per frame, in the order given, with its interface, its timestamp and
  its direction (``epb_flags``: inbound or outbound). Wireshark shows the
  name as "Interface name" and the direction as "Direction".

``.pcap`` (the classic format, for older tools) keeps less:
  the bytes and the nanosecond timestamps (the nanosecond variant, magic
  ``a1b23c4d``, which tcpdump and Wireshark read). It has one link type for
  the whole file, and no place for an interface or a direction: which
  namespace and interface saw a frame, and whether it went in or out, is
  **lost**, so a packet seen on three interfaces is three identical-looking
  records. Frames of different link types cannot share such a file.

No third-party package: the formats are small (see
https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html and
https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html). Every
number is written little-endian; the byte-order magic says so to readers.

Examples
--------
>>> f = Frame(1_700_000_000_123_456_789, "red", "veth-red", "out", bytes(60))
>>> data = dumps([f], "pcapng")
>>> data[:4].hex(), b"red/veth-red" in data
('0a0d0d0a', True)
>>> dumps([f], "pcap")[:4].hex()
'4d3cb2a1'
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from labkit.errors import ConfigError
from labkit.version import __version__

#: link types (https://www.tcpdump.org/linktypes.html) by Linux ARPHRD_* hardware type
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # a bare IPv4 or IPv6 packet
_LINKTYPE_OF_HATYPE = {
    1: LINKTYPE_ETHERNET,  # ARPHRD_ETHER: veth, bridge
    772: LINKTYPE_ETHERNET,  # ARPHRD_LOOPBACK: lo has an all-zero Ethernet header
    65534: LINKTYPE_RAW,  # ARPHRD_NONE: tun
    768: LINKTYPE_RAW,  # ARPHRD_TUNNEL: ipip (tunl0)
    776: LINKTYPE_RAW,  # ARPHRD_SIT: sit0
    778: LINKTYPE_RAW,  # ARPHRD_IPGRE: gre0
}
_LINKTYPE_NAMES = {LINKTYPE_ETHERNET: "Ethernet", LINKTYPE_RAW: "raw IP"}

SNAPLEN = 262144  # what tcpdump writes; labkit keeps whole frames
FORMATS = {".pcapng": "pcapng", ".pcap": "pcap"}

# pcapng block types and option codes
_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_END, _SHB_USERAPPL = 0, 4
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL = 2, 3, 9
_EPB_FLAGS = 2
_DIRECTION_FLAGS = {"in": 1, "out": 2}  # epb_flags bits 0-1: 01 inbound, 10 outbound
# classic pcap, nanosecond timestamps
_PCAP_NS_MAGIC = 0xA1B23C4D


@dataclass(frozen=True)
class Frame:
    """One copy of a packet, as one interface saw it.

    Parameters
    ----------
    time_ns
        The kernel's timestamp: nanoseconds since the epoch.
    ns, iface
        The namespace (``"host"`` for the sandbox itself) and interface.
    direction
        ``"in"`` or ``"out"``.
    data
        The bytes, from the link-layer header on.
    linktype
        What ``data`` starts with: :data:`LINKTYPE_ETHERNET` (the course's
        interfaces) or :data:`LINKTYPE_RAW`; see :func:`linktype_of`.

    Examples
    --------
    >>> f = Frame(1_500_000_000, "host", "eth0", "in", b"...")
    >>> f.where, f.time
    ('host/eth0', 1.5)
    """

    time_ns: int
    ns: str
    iface: str
    direction: str
    data: bytes
    linktype: int = LINKTYPE_ETHERNET

    @property
    def where(self) -> str:
        """``NS/IFACE``: the interface's name in a pcapng file.

        Examples
        --------
        >>> Frame(0, "red", "veth-red", "out", b"").where
        'red/veth-red'
        """
        return f"{self.ns}/{self.iface}"

    @property
    def time(self) -> float:
        """The timestamp in seconds (a float: about 0.2 microseconds precise).

        Examples
        --------
        >>> Frame(2_000_000_001, "red", "lo", "in", b"").time
        2.000000001
        """
        return self.time_ns / 1e9


def linktype_of(hatype: int) -> int | None:
    """The link type of an interface's frames, from its ARPHRD hardware type.

    ``None`` for a type labkit does not write (nothing in the course).

    Examples
    --------
    >>> linktype_of(1), linktype_of(772), linktype_of(65534), linktype_of(32)
    (1, 1, 101, None)
    """
    return _LINKTYPE_OF_HATYPE.get(hatype)


def format_of(path: str | os.PathLike[str]) -> str:
    """``"pcapng"`` or ``"pcap"``, from the file name's suffix.

    Raises
    ------
    ConfigError
        For any other suffix.

    Examples
    --------
    >>> format_of("web.pcapng"), format_of("WEB.PCAP")
    ('pcapng', 'pcap')
    >>> format_of("web.txt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labkit.errors.ConfigError: 'web.txt' must end in .pcapng or .pcap (.pcapng keeps ...
    """
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"{os.fspath(path)!r} must end in .pcapng or .pcap (.pcapng keeps the interface "
            "names; Wireshark and tcpdump -r open both)"
        )
    return FORMATS[suffix]


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def _interfaces(
    frames: Sequence[Frame], interfaces: Iterable[tuple[str, str]]
) -> list[tuple[str, str, int]]:
    """(ns, iface, linktype) of every interface: those given, then those frames name.

    An interface's link type is its first frame's; Ethernet if it has none.
    """
    out: dict[tuple[str, str], int | None] = dict.fromkeys(interfaces)
    for f in frames:
        if out.get((f.ns, f.iface)) is None:
            out[(f.ns, f.iface)] = f.linktype
    return [(ns, iface, t or LINKTYPE_ETHERNET) for (ns, iface), t in out.items()]


def _pcapng(frames: Sequence[Frame], interfaces: Iterable[tuple[str, str]]) -> bytes:
    parts = [
        _block(
            _SHB,
            struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)  # version 1.0, length unknown
            + _option(_SHB_USERAPPL, f"labkit {__version__}".encode())
            + _option(_OPT_END, b""),
        )
    ]
    ids: dict[tuple[str, str], int] = {}
    for ns, iface, linktype in _interfaces(frames, interfaces):
        ids[(ns, iface)] = len(ids)
        where = "the sandbox's host" if ns == "host" else f"namespace {ns}"
        parts.append(
            _block(
                _IDB,
                struct.pack("<HHI", linktype, 0, SNAPLEN)
                + _option(_IF_NAME, f"{ns}/{iface}".encode())
                + _option(_IF_DESCRIPTION, f"{iface} in {where} (labkit)".encode())
                + _option(_IF_TSRESOL, bytes([9]))  # 10^-9 s: nanoseconds
                + _option(_OPT_END, b""),
            )
        )
    for f in frames:
        options = b""
        if f.direction in _DIRECTION_FLAGS:
            options = _option(_EPB_FLAGS, struct.pack("<I", _DIRECTION_FLAGS[f.direction]))
            options += _option(_OPT_END, b"")
        body = struct.pack(
            "<IIIII",
            ids[(f.ns, f.iface)],
            f.time_ns >> 32,
            f.time_ns & 0xFFFFFFFF,
            len(f.data),
            len(f.data),
        )
        parts.append(_block(_EPB, body + f.data + bytes(-len(f.data) % 4) + options))
    return b"".join(parts)


def _pcap(frames: Sequence[Frame], interfaces: Iterable[tuple[str, str]]) -> bytes:
    types = sorted({linktype for _, _, linktype in _interfaces(frames, interfaces)})
    if len(types) > 1:
        names = " and ".join(_LINKTYPE_NAMES.get(t, f"link type {t}") for t in types)
        raise ConfigError(
            f"these frames have different link types ({names}) and a .pcap file holds "
            "one: save as .pcapng"
        )
    linktype = types[0] if types else LINKTYPE_ETHERNET
    parts = [struct.pack("<IHHiIII", _PCAP_NS_MAGIC, 2, 4, 0, 0, SNAPLEN, linktype)]
    for f in frames:
        sec, nsec = divmod(f.time_ns, 1_000_000_000)
        parts.append(struct.pack("<IIII", sec, nsec, len(f.data), len(f.data)) + f.data)
    return b"".join(parts)


_WRITERS = {"pcapng": _pcapng, "pcap": _pcap}


def dumps(
    frames: Sequence[Frame], fmt: str = "pcapng", interfaces: Iterable[tuple[str, str]] = ()
) -> bytes:
    """The bytes of a capture file holding ``frames``, in that order.

    Parameters
    ----------
    frames
        The frames.
    fmt
        ``"pcapng"`` or ``"pcap"`` (see the module's docstring for what
        each keeps).
    interfaces
        ``(ns, iface)`` of interfaces to describe even if no frame names
        them, first and in this order (pcapng: a quiet interface shows in
        Wireshark with no packets). Those that only frames name follow.

    Examples
    --------
    >>> frames = [Frame(1, "red", "veth-red", "out", bytes(60)),
    ...           Frame(2, "host", "veth-red-br", "in", bytes(60))]
    >>> data = dumps(frames)
    >>> data.count(b"red/veth-red"), data.count(b"host/veth-red-br")
    (1, 1)
    >>> len(dumps(frames, "pcap"))  # a 24-byte header, then 16 + 60 bytes a frame
    176
    """
    if fmt not in _WRITERS:
        raise ConfigError(f"unknown capture format {fmt!r}: use 'pcapng' or 'pcap'")
    return _WRITERS[fmt](frames, interfaces)


def write(
    path: str | os.PathLike[str],
    frames: Sequence[Frame],
    interfaces: Iterable[tuple[str, str]] = (),
) -> str:
    """Write ``frames`` to ``path`` (``.pcapng`` or ``.pcap``); return the format.

    The format is checked and the bytes made before the file is opened, so a
    bad suffix or mixed link types leave an existing file as it was.

    Raises
    ------
    ConfigError
        For another suffix, or frames of several link types in a ``.pcap``.
    OSError
        When the file cannot be written.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "one.pcapng")
    >>> write(path, [Frame(1, "red", "lo", "out", bytes(42))])
    'pcapng'
    >>> open(path, "rb").read(4).hex()
    '0a0d0d0a'
    """
    fmt = format_of(path)
    data = dumps(frames, fmt, interfaces)
    with open(path, "wb") as f:
        f.write(data)
    return fmt
