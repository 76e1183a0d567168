"""Packet captures for Wireshark: real packets, read back by tools that are not labkit's.

One sandbox at the ``portforward`` stage makes the files once (module
fixture ``made``):

* ``labkit capture host -w web.pcapng -- ip netns exec lan-pc curl ...``:
  the CLI around a curl through the port forward;
* the same as ``.pcap``, and with ``-c 3``;
* :func:`labkit.capture.start` on ``blue:veth-blue`` around another curl;
* :meth:`labkit.trace.Trace.save` of a ping from red to the internet.

The tests then read the files, outside the sandbox, with ``tcpdump -r``
and with the small pcapng/pcap reader below (written from the format's
specification, sharing no code with :mod:`labkit.pcap`), and check the
packets the kernel really carried: the TCP handshake, the GET and the 200
with the addresses before DNAT on the host's eth0 and after it on the
bridge port to blue; the ping's request and reply on every hop, NAT
included; the interface names, directions and timestamps. Bad input runs
in a sandbox of its own.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labkit import Lab, capture, trace
from labkit.errors import ConfigError
from labkit.kernel import preflight
from labkit.world import run_in_lab

ROOT = Path(__file__).resolve().parent.parent
CURL = ["ip", "netns", "exec", "lan-pc", "curl", "-s", "-m", "3", "http://192.168.1.2/"]
LAN_PC, HOST_LAN, APP = "192.168.1.3", "192.168.1.2", "192.168.15.2"

needs_sandbox = pytest.mark.skipif(
    preflight.why_not() is not None, reason="no labkit sandbox can start here"
)
needs_tcpdump = pytest.mark.skipif(
    shutil.which("tcpdump") is None, reason="tcpdump is not installed (apt-get install tcpdump)"
)


# -- an independent reader ----------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """One record of a capture file, as a reader other than labkit's sees it."""

    iface: str | None  # pcapng's if_name; None in a classic pcap
    time_ns: int
    direction: str | None  # "in", "out" (pcapng's epb_flags); None if absent
    data: bytes


def read_pcapng(data: bytes) -> tuple[list[dict[str, Any]], list[Packet]]:
    """Interfaces (name, linktype, tsresol) and packets of a pcapng file."""
    assert data[:4] == b"\x0a\x0d\x0d\x0a", "not a pcapng file"
    order = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}[data[8:12]]
    interfaces: list[dict[str, Any]] = []
    packets = []
    pos = 0
    while pos < len(data):
        kind, length = struct.unpack_from(order + "II", data, pos)
        assert length % 4 == 0 and pos + length <= len(data), f"bad block at {pos}"
        assert struct.unpack_from(order + "I", data, pos + length - 4)[0] == length
        body = data[pos + 8 : pos + length - 4]
        if kind == 1:  # Interface Description Block
            linktype, _, _snaplen = struct.unpack_from(order + "HHI", body)
            opts = _options(body[8:], order)
            interfaces.append(
                {
                    "name": opts.get(2, b"").decode(),
                    "linktype": linktype,
                    "tsresol": opts.get(9, b"\x06")[0],
                }
            )
        elif kind == 6:  # Enhanced Packet Block
            ifid, high, low, caplen, origlen = struct.unpack_from(order + "IIIII", body)
            assert caplen == origlen
            frame = body[20 : 20 + caplen]
            opts = _options(body[20 + caplen + (-caplen % 4) :], order)
            flags = struct.unpack(order + "I", opts[2])[0] if 2 in opts else 0
            iface = interfaces[ifid]
            assert iface["tsresol"] == 9, "labkit writes nanoseconds"
            packets.append(
                Packet(iface["name"], (high << 32) | low, {1: "in", 2: "out"}.get(flags & 3), frame)
            )
        pos += length
    return interfaces, packets


def _options(raw: bytes, order: str) -> dict[int, bytes]:
    out, pos = {}, 0
    while pos + 4 <= len(raw):
        code, length = struct.unpack_from(order + "HH", raw, pos)
        if code == 0:
            break
        out[code] = raw[pos + 4 : pos + 4 + length]
        pos += 4 + length + (-length % 4)
    return out


def read_pcap(data: bytes) -> tuple[int, list[Packet]]:
    """Link type and packets of a classic (nanosecond) pcap file."""
    magic = struct.unpack_from("<I", data)[0]
    assert magic == 0xA1B23C4D, f"not a nanosecond pcap: {magic:#x}"
    linktype = struct.unpack_from("<I", data, 20)[0]
    packets, pos = [], 24
    while pos < len(data):
        sec, nsec, caplen, origlen = struct.unpack_from("<IIII", data, pos)
        packets.append(Packet(None, sec * 10**9 + nsec, None, data[pos + 16 : pos + 16 + caplen]))
        pos += 16 + caplen
    return linktype, packets


@dataclass(frozen=True)
class Ip:
    """What a frame carries: IPv4 addresses, and TCP ports/flags/payload or ICMP type/id."""

    src: str
    dst: str
    proto: int
    sport: int = 0
    dport: int = 0
    flags: str = ""
    payload: bytes = b""
    icmp_type: int = -1
    icmp_id: int = -1


def decode(frame: bytes) -> Ip | None:
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
    l4 = ip[ihl:total]
    if ip[9] == 6:
        sport, dport = struct.unpack_from("!HH", l4)
        bits = l4[13]
        flags = "".join(c for c, b in zip("FSRPA", (1, 2, 4, 8, 16), strict=True) if bits & b)
        return Ip(src, dst, 6, sport, dport, flags, l4[(l4[12] >> 4) * 4 :])
    if ip[9] == 1:
        return Ip(src, dst, 1, icmp_type=l4[0], icmp_id=struct.unpack_from("!H", l4, 4)[0])
    return Ip(src, dst, ip[9])


# -- making the files, in one sandbox ------------------------------------------------


def _labkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _make(out: Path) -> dict[str, Any]:
    Lab().goto("portforward")
    made: dict[str, Any] = {"start": time.time_ns()}
    proc = _labkit("capture", "host", "-w", "web.pcapng", "--", *CURL, cwd=out)
    made["cli"] = (proc.returncode, proc.stdout, proc.stderr)
    proc = _labkit("capture", "host:eth0", "-w", "web.pcap", "--", *CURL, cwd=out)
    made["pcap"] = (proc.returncode, proc.stdout, proc.stderr)
    proc = _labkit("capture", "host", "-c", "3", "-w", "three.pcapng", "--", *CURL, cwd=out)
    made["count"] = (proc.returncode, proc.stdout, proc.stderr)
    with capture.start("blue", "veth-blue", path=str(out / "api.pcapng")) as cap:
        subprocess.run(CURL, capture_output=True, check=True)
    made["api"] = (cap.count, cap.counts(), cap.running)
    t = trace.trace("red", "203.0.113.8")
    made["trace"] = [(s.where, s.direction, s.src, s.dst, s.kind) for s in t.sightings]
    made["trace_format"] = t.save(out / "ping.pcapng")
    made["end"] = time.time_ns()
    return made


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    if preflight.why_not() is not None:
        pytest.skip("no labkit sandbox can start here")
    out = tmp_path_factory.mktemp("captures")
    out.chmod(0o777)  # the sandbox's root is another user of this machine (as conftest's tmp_path)
    for parent in out.parents:
        if parent == parent.parent or parent.name == "tmp":
            break
        if parent.stat().st_uid == os.geteuid():
            parent.chmod(parent.stat().st_mode | 0o755)
    for thread in threading.enumerate():  # run_in_lab forks only alone
        if thread is not threading.main_thread():
            thread.join(timeout=10)
    return out, run_in_lab(_make, out)


def _tcp(packets: list[Packet], where: str, direction: str, **want: Any) -> list[Ip]:
    """The TCP packets seen on ``where`` in ``direction`` that match ``want``."""
    found = []
    for p in packets:
        ip = decode(p.data)
        if p.iface == where and p.direction == direction and ip and ip.proto == 6:
            if all(getattr(ip, k) == v for k, v in want.items()):
                found.append(ip)
    return found


# -- the curl through the port forward ----------------------------------------------


def test_the_cli_runs_the_command_and_says_what_it_captured(made):
    out, m = made
    status, stdout, stderr = m["cli"]
    assert status == 0, stderr
    assert stdout.startswith("Hello from blue! You came from 192.168.1.3.")
    summary = stderr.strip().splitlines()
    assert len(summary) == 1, stderr
    assert summary[0].startswith("labkit: captured ")
    assert "host/eth0 " in summary[0] and "host/veth-blue-br " in summary[0]
    assert summary[0].endswith(" into web.pcapng")
    _, packets = read_pcapng((out / "web.pcapng").read_bytes())
    assert f"captured {len(packets)} packets" in summary[0]


def test_the_pcapng_names_every_interface_of_the_host(made):
    out, _ = made
    interfaces, packets = read_pcapng((out / "web.pcapng").read_bytes())
    names = [i["name"] for i in interfaces]
    for name in ("host/lo", "host/eth0", "host/v-net-0", "host/veth-red-br", "host/veth-blue-br"):
        assert name in names
    assert {i["linktype"] for i in interfaces} == {1}  # Ethernet
    assert {p.iface for p in packets} <= set(names)
    assert {p.direction for p in packets} == {"in", "out"}


def test_the_handshake_the_get_and_the_200_are_there_before_and_after_dnat(made):
    out, m = made
    _, packets = read_pcapng((out / "web.pcapng").read_bytes())
    # on the LAN side, the address the PC asked for; on the bridge side, blue's
    eth0, blue = "host/eth0", "host/veth-blue-br"
    (syn,) = _tcp(packets, eth0, "in", src=LAN_PC, dst=HOST_LAN, dport=80, flags="S")
    port = syn.sport
    assert _tcp(packets, blue, "out", src=LAN_PC, dst=APP, sport=port, dport=80, flags="S")
    assert _tcp(packets, blue, "in", src=APP, dst=LAN_PC, sport=80, dport=port, flags="SA")
    assert _tcp(packets, eth0, "out", src=HOST_LAN, dst=LAN_PC, sport=80, dport=port, flags="SA")
    for where, direction, dst in ((eth0, "in", HOST_LAN), (blue, "out", APP)):
        gets = _tcp(packets, where, direction, dst=dst, dport=80, sport=port)
        assert any(g.payload.startswith(b"GET / HTTP/1.1\r\n") for g in gets), where
    for where, direction, src in ((blue, "in", APP), (eth0, "out", HOST_LAN)):
        answers = _tcp(packets, where, direction, src=src, sport=80, dport=port)
        assert any(a.payload.startswith(b"HTTP/1.0 200 ") for a in answers), where
    # the port forward's addresses never show on the wrong side
    assert not _tcp(packets, eth0, "in", dst=APP)
    assert not _tcp(packets, blue, "out", dst=HOST_LAN)
    # the connection's end came after curl did: the FINs are in
    assert _tcp(packets, eth0, "in", src=LAN_PC, sport=port, flags="FA")
    assert _tcp(packets, eth0, "out", dst=LAN_PC, dport=port, flags="FA")


def test_timestamps_are_the_kernels_in_nanoseconds(made):
    out, m = made
    _, packets = read_pcapng((out / "web.pcapng").read_bytes())
    assert all(m["start"] <= p.time_ns <= m["end"] for p in packets)
    assert len({p.time_ns for p in packets}) > len(packets) // 2  # not one stamp for all
    assert any(p.time_ns % 1000 for p in packets)  # finer than microseconds
    by_iface: dict[str | None, list[int]] = {}
    for p in packets:
        by_iface.setdefault(p.iface, []).append(p.time_ns)
    for stamps in by_iface.values():
        assert stamps == sorted(stamps)
    eth0, blue = "host/eth0", "host/veth-blue-br"

    def first(where: str, direction: str, flags: str) -> int:
        return next(
            p.time_ns
            for p in packets
            if p.iface == where
            and p.direction == direction
            and (ip := decode(p.data))
            and ip.proto == 6
            and ip.flags == flags
        )

    # the SYN arrives, is forwarded; the SYN-ACK comes back, is forwarded
    assert first(eth0, "in", "S") <= first(blue, "out", "S")
    assert first(blue, "out", "S") <= first(blue, "in", "SA") <= first(eth0, "out", "SA")


@needs_tcpdump
def test_tcpdump_reads_the_pcapng(made):
    out, _ = made
    proc = subprocess.run(
        ["tcpdump", "-r", str(out / "web.pcapng"), "-nn", "-e", "-Z", "root"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "link-type EN10MB (Ethernet)" in proc.stderr
    lines = proc.stdout.splitlines()
    _, packets = read_pcapng((out / "web.pcapng").read_bytes())
    assert len(lines) == len(packets)

    def seen(*words: str) -> bool:
        return any(all(w in line for w in words) for line in lines)

    assert seen(f"{LAN_PC}.", f"> {HOST_LAN}.80: Flags [S]")
    assert seen(f"{LAN_PC}.", f"> {APP}.80: Flags [S]")
    assert seen(f"{APP}.80 > {LAN_PC}.", "Flags [S.]")
    assert seen(f"{HOST_LAN}.80 > {LAN_PC}.", "Flags [S.]")
    assert seen(f"> {HOST_LAN}.80:", "HTTP: GET / HTTP/1.1")
    assert seen(f"> {APP}.80:", "HTTP: GET / HTTP/1.1")
    assert seen(f"{APP}.80 >", "HTTP: HTTP/1.0 200 OK")
    assert seen(f"{HOST_LAN}.80 >", "HTTP: HTTP/1.0 200 OK")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (Wireshark) is not installed")
def test_wireshark_shows_the_interface_names_and_directions(made):
    out, m = made
    fields = ["frame.interface_name", "frame.packet_flags_direction", "ip.src", "ip.dst"]
    rows = {}
    for name in ("web.pcapng", "ping.pcapng"):
        proc = subprocess.run(
            ["tshark", "-r", str(out / name), "-T", "fields", *(f"-e{f}" for f in fields)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        rows[name] = [line.split("\t") for line in proc.stdout.splitlines()]
    direction = {"0x00000001": "in", "0x00000002": "out"}
    assert [(r[0], direction[r[1]], r[2], r[3]) for r in rows["ping.pcapng"]] == [
        s[:4] for s in m["trace"]
    ]
    assert ["host/eth0", "0x00000001", LAN_PC, HOST_LAN] in rows["web.pcapng"]
    assert ["host/veth-blue-br", "0x00000002", LAN_PC, APP] in rows["web.pcapng"]


@needs_tcpdump
def test_tcpdump_reads_the_classic_pcap(made):
    out, m = made
    assert m["pcap"][0] == 0, m["pcap"][2]
    proc = subprocess.run(
        ["tcpdump", "-r", str(out / "web.pcap"), "-nn", "-Z", "root"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{HOST_LAN}.80: Flags [S]" in proc.stdout
    assert "HTTP/1.0 200 OK" in proc.stdout


def test_the_classic_pcap_keeps_the_frames_and_loses_the_names(made):
    out, m = made
    linktype, packets = read_pcap((out / "web.pcap").read_bytes())
    assert linktype == 1
    assert m["pcap"][2].strip().endswith(f"(host/eth0 {len(packets)}) into web.pcap")
    ips = [decode(p.data) for p in packets]
    assert any(ip and ip.flags == "S" and ip.dst == HOST_LAN for ip in ips)
    assert not any(ip and APP in (ip.src, ip.dst) for ip in ips)  # eth0 only
    assert all(p.iface is None and p.direction is None for p in packets)
    assert all(m["start"] <= p.time_ns <= m["end"] for p in packets)


def test_count_keeps_the_first_packets_and_the_command_runs_to_its_end(made):
    out, m = made
    status, stdout, stderr = m["count"]
    assert status == 0 and stdout.startswith("Hello from blue!")
    assert "captured 3 packets" in stderr and "; the first 3 only, as asked" in stderr
    _, packets = read_pcapng((out / "three.pcapng").read_bytes())
    assert len(packets) == 3


def test_the_python_api_captures_one_interface(made):
    out, m = made
    count, counts, running = m["api"]
    assert not running
    assert counts == {"blue/veth-blue": count}
    interfaces, packets = read_pcapng((out / "api.pcapng").read_bytes())
    assert [i["name"] for i in interfaces] == ["blue/veth-blue"]
    assert len(packets) == count
    where = "blue/veth-blue"
    assert _tcp(packets, where, "in", src=LAN_PC, dst=APP, dport=80, flags="S")
    assert _tcp(packets, where, "out", src=APP, dst=LAN_PC, sport=80, flags="SA")


# -- the ping's trace -----------------------------------------------------------------


def test_a_saved_trace_holds_the_request_and_the_reply_on_every_hop(made):
    out, m = made
    assert m["trace_format"] == "pcapng"
    sightings = m["trace"]
    interfaces, packets = read_pcapng((out / "ping.pcapng").read_bytes())
    # packet N of the file is line N of the trace, with the same addresses
    assert len(packets) == len(sightings) > 0
    icmp_ids = set()
    for p, (where, direction, src, dst, kind) in zip(packets, sightings, strict=True):
        ip = decode(p.data)
        assert ip is not None and ip.proto == 1
        assert (p.iface, p.direction, ip.src, ip.dst) == (where, direction, src, dst)
        assert ip.icmp_type == {"request": 8, "reply": 0}[kind]
        icmp_ids.add(ip.icmp_id)
    assert len(icmp_ids) <= 2  # one echo (its id may be rewritten by NAT)
    hops = {"request": [], "reply": []}
    for p, s in zip(packets, sightings, strict=True):
        hops[s[4]].append(p.iface)
    for where in ("red/veth-red", "host/veth-red-br", "host/eth0", "internet/eth0"):
        assert where in hops["request"] and where in hops["reply"], where
    assert set(hops["request"]) == set(hops["reply"])  # the reply came back the same way
    assert {i["name"] for i in interfaces} == set(hops["request"])
    # NAT, read from the bytes: the host's, then the router's
    request = {
        (p.iface, p.direction): decode(p.data)
        for p, s in zip(packets, sightings, strict=True)
        if s[4] == "request"
    }
    assert request[("red/veth-red", "out")].src == "192.168.15.1"
    assert request[("host/eth0", "out")].src == HOST_LAN
    assert request[("internet/eth0", "in")].src == "198.51.100.2"


# -- bad input ------------------------------------------------------------------------


@pytest.mark.sandbox
def test_bad_input_is_an_error_before_the_command_runs_and_loses_nothing(tmp_path):
    Lab().goto("veth")
    keep = tmp_path / "keep.pcapng"
    keep.write_bytes(b"an earlier capture")
    marker = tmp_path / "ran"
    folder = tmp_path / "folder.pcapng"
    folder.mkdir()
    touch = ["touch", str(marker)]
    cases = [
        (["green", "-w", str(keep)], 1, "there is no node 'green' here: the namespaces are"),
        (["red:eth9", "-w", str(keep)], 1, "red has no interface 'eth9': its interfaces are"),
        (["../etc", "-w", str(keep)], 1, "use letters, digits"),
        ([f"red;touch {marker}", "-w", str(keep)], 1, "use letters, digits"),
        (["red", "-w", str(tmp_path / "x.txt")], 1, "must end in .pcapng or .pcap"),
        (["red", "-w", str(tmp_path / "no" / "x.pcapng")], 1, "cannot write"),
        (["red", "-w", str(tmp_path)], 1, "must end in .pcapng or .pcap"),
        (["red", "-w", str(folder)], 1, "it is a folder"),
        (["red:", "-w", str(keep)], 2, "after ':' comes an interface of NODE"),
        (["red", "-c", "0", "-w", str(keep)], 1, "count must be a whole number above 0, not 0"),
        (["red", "-c", "x", "-w", str(keep)], 2, "invalid int value: 'x'"),
        (["red"], 2, "capture needs -w FILE and a command"),
    ]
    for words, status, hint in cases:
        proc = _labkit("capture", *words, "--", *touch, cwd=tmp_path)
        assert proc.returncode == status, (words, proc.stderr)
        assert hint in proc.stderr, (words, proc.stderr)
        assert "Traceback" not in proc.stderr and not proc.stdout
        assert not marker.exists(), f"{words}: the command ran"
    for words, hint in (
        (["red", "-w", str(keep)], "capture needs -- and a command"),
        (["red", "-w", str(keep), "--"], "capture needs -w FILE and a command"),
        (["red", "-w", str(keep), "true"], "capture needs -- and a command"),
    ):
        proc = _labkit("capture", *words, cwd=tmp_path)
        assert proc.returncode == 2 and hint in proc.stderr, proc.stderr
    proc = _labkit("capture", "red", "-w", str(keep), "--", "no-such-command-here", cwd=tmp_path)
    assert proc.returncode == 127
    assert "no-such-command-here: command not found (nothing was written)" in proc.stderr
    assert keep.read_bytes() == b"an earlier capture"
    proc = _labkit("capture", "red", "-w", "new.pcapng", "--", "no-such-command", cwd=tmp_path)
    assert proc.returncode == 127 and not (tmp_path / "new.pcapng").exists()
    # the Python API says the same
    with pytest.raises(ConfigError, match="red has no interface 'eth9'"):
        capture.start("red", "eth9")
    with pytest.raises(ConfigError, match="must end in .pcapng or .pcap"):
        capture.start("red", path=str(tmp_path / "x.txt"))
    with pytest.raises(ConfigError, match="whole number above 0"):
        capture.start("red", count=0)
    t = trace.trace("red", "192.168.15.2")
    with pytest.raises(ConfigError, match="must end in .pcapng or .pcap"):
        t.save(tmp_path / "ping.json")
    assert keep.read_bytes() == b"an earlier capture"


@pytest.mark.sandbox
def test_the_exit_status_is_the_commands(tmp_path):
    Lab().goto("veth")
    proc = _labkit("capture", "red", "-w", "x.pcapng", "--", "sh", "-c", "exit 3", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    interfaces, packets = read_pcapng((tmp_path / "x.pcapng").read_bytes())
    assert [i["name"] for i in interfaces] == ["red/lo", "red/veth-red"]
    n = len(packets)  # none, or IPv6 chatter of a link just up
    on = sum(p.iface == "red/veth-red" for p in packets)
    s = "" if n == 1 else "s"
    assert f"captured {n} packet{s} (red/lo {n - on}, red/veth-red {on}) into x.pcapng" in (
        proc.stderr
    )
    proc = _labkit(
        "capture", "red", "-q", "-w", "x.pcapng", "--", "sh", "-c", "kill -TERM $$", cwd=tmp_path
    )
    assert proc.returncode == 128 + 15 and not proc.stderr


@needs_sandbox
def test_outside_a_sandbox_it_says_how_to_start_one(tmp_path):
    if preflight.inside():
        pytest.skip("the test suite itself runs inside a sandbox")
    proc = _labkit("capture", "red", "-w", "x.pcapng", "--", "true", cwd=tmp_path)
    assert proc.returncode == 1
    assert "labkit run -- labkit capture red -w x.pcapng -- true" in proc.stderr
    assert not (tmp_path / "x.pcapng").exists()
