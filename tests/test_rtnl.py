"""labkit.kernel.rtnl: the encoders and decoders against pyroute2, the socket against the kernel.

The first half needs no kernel: every request labkit encodes is decoded by
pyroute2's own parser next to the same request built by pyroute2's
``IPBatch``, and labkit's decoders read messages that pyroute2 built.

The second half runs each test in a fresh sandbox (see ``conftest.py``) and
compares what :class:`labkit.kernel.rtnl.Socket` does and sees with ``ip``.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import socket
import struct
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyroute2 import IPBatch
from pyroute2.netlink import nlmsg_base
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl
from pyroute2.netlink.rtnl.ndmsg import ndmsg

from labkit.kernel import rtnl

REQUEST_ACK = rtnl.F_REQUEST | rtnl.F_ACK
CREATE = REQUEST_ACK | rtnl.F_CREATE_EXCL  # NLM_F_REQUEST|ACK|CREATE|EXCL = 0x605

# -- helpers: pyroute2 as the oracle ----------------------------------------


@pytest.fixture
def ipb() -> Iterator[IPBatch]:
    batch = IPBatch()
    yield batch
    batch.close()


def built(ipb: IPBatch, call: Callable[[IPBatch], Any]) -> bytes:
    """The bytes pyroute2 compiles for one request."""
    ipb.reset()
    call(ipb)
    data = bytes(ipb.batch)
    ipb.reset()
    return data


def decode(data: bytes) -> Any:
    """Exactly one whole message, parsed by pyroute2."""
    msgs = list(MarshalRtnl().parse(data))
    assert len(msgs) == 1, msgs
    assert msgs[0]["header"]["length"] == len(data)
    return msgs[0]


def canon(msg: Any) -> dict[str, Any]:
    """Fixed fields and attributes (by name, in any order), nested ones too."""
    out = {name: msg[name] for name, _ in msg.fields if not name.startswith("__")}
    for slot in msg["attrs"]:
        name, value = slot[0], slot[1]
        assert name not in out, f"attribute {name} twice"
        out[name] = canon(value) if isinstance(value, nlmsg_base) else value
    return out


def both(ours: bytes, theirs: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header (type, flags) and contents of labkit's and pyroute2's messages."""
    a, b = decode(ours), decode(theirs)
    ca, cb = canon(a), canon(b)
    ca["header"] = (a["header"]["type"], a["header"]["flags"])
    cb["header"] = (b["header"]["type"], b["header"]["flags"])
    return ca, cb


# -- encoders vs IPBatch -----------------------------------------------------


def test_new_bridge_is_what_pyroute2_sends(ipb):
    ours, theirs = both(
        rtnl.new_bridge("v-net-0"),
        built(ipb, lambda b: b.link("add", ifname="v-net-0", kind="bridge")),
    )
    assert ours == theirs
    assert ours["header"] == (rtnl.RTM_NEWLINK, CREATE)
    assert ours["IFLA_IFNAME"] == "v-net-0"
    assert ours["IFLA_LINKINFO"] == {"IFLA_INFO_KIND": "bridge"}
    assert ours["index"] == 0


@pytest.mark.parametrize("fd", [None, 5, 1023])
def test_new_veth_is_what_pyroute2_sends(ipb, fd):
    peer = {"ifname": "veth-red-br"} | ({} if fd is None else {"net_ns_fd": fd})
    ours, theirs = both(
        rtnl.new_veth("veth-red", "veth-red-br", fd),
        built(ipb, lambda b: b.link("add", ifname="veth-red", kind="veth", peer=peer)),
    )
    assert ours == theirs
    assert ours["header"] == (rtnl.RTM_NEWLINK, CREATE)
    assert ours["IFLA_IFNAME"] == "veth-red"
    info = ours["IFLA_LINKINFO"]
    assert info["IFLA_INFO_KIND"] == "veth"
    peer_msg = info["IFLA_INFO_DATA"]["VETH_INFO_PEER"]
    assert peer_msg["IFLA_IFNAME"] == "veth-red-br"
    assert peer_msg.get("IFLA_NET_NS_FD") == fd
    assert peer_msg["index"] == 0


@pytest.mark.parametrize(
    ("up", "master", "kwargs", "flags", "change"),
    [
        (True, None, {"state": "up"}, 1, 1),
        (False, None, {"state": "down"}, 0, 1),
        (True, 4, {"state": "up", "master": 4}, 1, 1),
        (None, 7, {"master": 7}, 0, 0),
        (None, 0, {"master": 0}, 0, 0),
    ],
)
def test_set_link_is_what_pyroute2_sends(ipb, up, master, kwargs, flags, change):
    ours, theirs = both(
        rtnl.set_link(12, up=up, master=master),
        built(ipb, lambda b: b.link("set", index=12, **kwargs)),
    )
    assert ours == theirs
    assert ours["header"] == (rtnl.RTM_NEWLINK, REQUEST_ACK)
    assert (ours["index"], ours["flags"], ours["change"]) == (12, flags, change)
    assert ours.get("IFLA_MASTER") == master


def test_del_link_is_what_pyroute2_sends(ipb):
    ours, theirs = both(rtnl.del_link(41), built(ipb, lambda b: b.link("del", index=41)))
    assert ours == theirs
    assert ours["header"] == (rtnl.RTM_DELLINK, REQUEST_ACK)
    assert ours["index"] == 41


def test_get_link_asks_for_the_name_like_pyroute2_without_ack_and_stats(ipb):
    ours, theirs = both(
        rtnl.get_link("veth-red"), built(ipb, lambda b: b.link("get", ifname="veth-red"))
    )
    # Deliberate differences: no ACK (call() reads the answer, not an ack) and
    # RTEXT_FILTER_SKIP_STATS (the counters are not needed).
    assert ours.pop("header") == (rtnl.RTM_GETLINK, rtnl.F_REQUEST)
    assert theirs.pop("header") == (rtnl.RTM_GETLINK, REQUEST_ACK)
    assert ours.pop("IFLA_EXT_MASK") == 1 << 3
    assert "IFLA_EXT_MASK" not in theirs
    assert ours == theirs
    assert ours["IFLA_IFNAME"] == "veth-red"


@pytest.mark.parametrize(
    ("cidr", "ip", "plen"),
    [
        ("192.168.15.1/24", "192.168.15.1", 24),
        ("10.0.0.9", "10.0.0.9", 32),
        ("0.0.0.1/0", "0.0.0.1", 0),
    ],
)
@pytest.mark.parametrize("add", [True, False])
def test_address_is_what_pyroute2_sends(ipb, add, cidr, ip, plen):
    verb = "add" if add else "del"
    ours, theirs = both(
        rtnl.address(add, 3, cidr),
        built(ipb, lambda b: b.addr(verb, index=3, address=ip, prefixlen=plen)),
    )
    assert ours == theirs
    kind = rtnl.RTM_NEWADDR if add else rtnl.RTM_DELADDR
    assert ours["header"] == (kind, CREATE if add else REQUEST_ACK)
    assert (ours["family"], ours["index"], ours["prefixlen"]) == (socket.AF_INET, 3, plen)
    assert ours["IFA_LOCAL"] == ours["IFA_ADDRESS"] == ip


@pytest.mark.parametrize(
    ("dst", "net", "plen"),
    [("default", None, 0), ("10.0.0.0/8", "10.0.0.0", 8), ("192.168.1.7", "192.168.1.7", 32)],
)
def test_route_add_is_what_pyroute2_sends_but_proto_boot(ipb, dst, net, plen):
    ours, theirs = both(
        rtnl.route(True, dst, "192.168.15.5"),
        built(ipb, lambda b: b.route("add", dst=dst, gateway="192.168.15.5")),
    )
    # like `ip route add`, labkit's routes are "proto boot"; pyroute2's are static
    assert (ours.pop("proto"), theirs.pop("proto")) == (rtnl.PROTO_BOOT, 4) == (3, 4)
    assert ours == theirs
    assert ours["header"] == (rtnl.RTM_NEWROUTE, CREATE)
    assert (ours["family"], ours["table"], ours["dst_len"], ours["type"]) == (2, 254, plen, 1)
    assert ours.get("RTA_DST") == net
    assert ours["RTA_GATEWAY"] == "192.168.15.5"
    assert "RTA_TABLE" not in ours


@pytest.mark.parametrize(("dst", "plen"), [("default", 0), ("10.9.0.0/16", 16)])
def test_route_del_is_what_pyroute2_sends(ipb, dst, plen):
    ours, theirs = both(
        rtnl.route(False, dst, "192.168.15.5"),
        built(ipb, lambda b: b.route("del", dst=dst, gateway="192.168.15.5")),
    )
    # labkit names the type (unicast), pyroute2 leaves it 0: both match a unicast route
    assert (ours.pop("type"), theirs.pop("type")) == (1, 0)
    assert ours == theirs
    assert ours["header"] == (rtnl.RTM_DELROUTE, REQUEST_ACK)
    assert (ours["proto"], ours["table"], ours["dst_len"]) == (0, 254, plen)
    assert ours["RTA_GATEWAY"] == "192.168.15.5"


def test_del_neigh_is_what_pyroute2_sends(ipb):
    ours, theirs = both(
        rtnl.del_neigh(6, "192.168.15.2"),
        built(ipb, lambda b: b.neigh("del", ifindex=6, dst="192.168.15.2")),
    )
    # pyroute2 fills in state PERMANENT, which the kernel ignores on delete
    assert (ours.pop("state"), theirs.pop("state")) == (0, 0x80)
    assert ours == theirs
    assert ours["header"] == (rtnl.RTM_DELNEIGH, REQUEST_ACK)
    assert (ours["family"], ours["ifindex"], ours["NDA_DST"]) == (2, 6, "192.168.15.2")


@pytest.mark.parametrize("fd", [3, 77])
def test_get_nsid_is_what_pyroute2_sends(ipb, fd):
    ours, theirs = both(rtnl.get_nsid(fd), built(ipb, lambda b: b.get_netnsid(fd=fd)))
    assert ours == theirs
    assert ours["header"] == (rtnl.RTM_GETNSID, rtnl.F_REQUEST)
    assert ours["NETNSA_FD"] == fd


@pytest.mark.parametrize(
    ("what", "kind", "family"),
    [
        ("links", rtnl.RTM_GETLINK, 0),
        ("addrs", rtnl.RTM_GETADDR, 2),
        ("routes", rtnl.RTM_GETROUTE, 2),
        ("neigh", rtnl.RTM_GETNEIGH, 2),
    ],
)
def test_dump_requests_decode(what, kind, family):
    msg = decode(rtnl._DUMPS[what])
    assert (msg["header"]["type"], msg["header"]["flags"]) == (kind, rtnl.F_REQUEST | rtnl.F_DUMP)
    assert msg["family"] == family


# -- decoders vs messages pyroute2 built -------------------------------------


def body(data: bytes) -> tuple[bytes, int, int]:
    return data, 16, struct.unpack_from("=I", data)[0]


@pytest.mark.parametrize(
    ("ip", "plen", "index"),
    [("192.168.15.1", 24, 3), ("10.0.0.9", 32, 1000), ("172.16.0.1", 12, 7)],
)
def test_parse_addr_reads_pyroute2_messages(ipb, ip, plen, index):
    data = built(ipb, lambda b: b.addr("add", index=index, address=ip, prefixlen=plen))
    assert rtnl.parse_addr(*body(data)) == {"index": index, "cidr": f"{ip}/{plen}"}


def encoded(msg: Any, kind: int, **fields: Any) -> bytes:
    msg["header"]["type"] = kind
    for name, value in fields.items():
        msg[name] = value
    msg.encode()
    return bytes(msg.data)


def test_parse_addr_prefers_the_local_address_and_falls_back_to_address():
    peer = encoded(
        ifaddrmsg(),
        rtnl.RTM_NEWADDR,
        family=2,
        prefixlen=32,
        index=5,
        attrs=[("IFA_ADDRESS", "10.0.0.2"), ("IFA_LOCAL", "10.0.0.1")],
    )
    assert rtnl.parse_addr(*body(peer)) == {"index": 5, "cidr": "10.0.0.1/32"}
    only = encoded(
        ifaddrmsg(),
        rtnl.RTM_NEWADDR,
        family=2,
        prefixlen=8,
        index=6,
        attrs=[("IFA_ADDRESS", "10.1.2.3")],
    )
    assert rtnl.parse_addr(*body(only)) == {"index": 6, "cidr": "10.1.2.3/8"}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"dst": "default", "gateway": "192.168.15.5"},
            {"dst": "default", "via": "192.168.15.5", "oif": None, "proto": "static"},
        ),
        (
            {"dst": "10.9.0.0/16", "gateway": "10.0.0.1", "oif": 4, "proto": 3},
            {"dst": "10.9.0.0/16", "via": "10.0.0.1", "oif": 4, "proto": "boot"},
        ),
        (
            {"dst": "192.168.1.0/24", "oif": 2, "proto": 2, "table": 254},
            {"dst": "192.168.1.0/24", "via": None, "oif": 2, "proto": "kernel"},
        ),
        (
            {"dst": "10.0.0.7/32", "gateway": "10.0.0.1", "proto": 99},
            {"dst": "10.0.0.7/32", "via": "10.0.0.1", "oif": None, "proto": "99"},
        ),
        ({"dst": "10.0.0.0/8", "gateway": "10.0.0.1", "table": 1000}, None),
        ({"dst": "10.0.0.0/8", "gateway": "10.0.0.1", "table": 255}, None),
        ({"dst": "10.0.0.0/8", "gateway": "10.0.0.1", "table": 100}, None),
    ],
)
def test_parse_route_reads_pyroute2_messages(ipb, kwargs, expected):
    data = built(ipb, lambda b: b.route("add", **kwargs))
    assert rtnl.parse_route(*body(data)) == expected


@pytest.mark.parametrize(
    ("state", "name"),
    [
        ("reachable", "REACHABLE"),
        ("stale", "STALE"),
        ("permanent", "PERMANENT"),
        ("delay", "DELAY"),
    ],
)
def test_parse_neigh_reads_pyroute2_messages(ipb, state, name):
    data = built(
        ipb,
        lambda b: b.neigh(
            "add", ifindex=9, dst="192.168.15.2", lladdr="02:aa:bb:cc:dd:0e", state=state
        ),
    )
    assert rtnl.parse_neigh(*body(data)) == {
        "ip": "192.168.15.2",
        "mac": "02:aa:bb:cc:dd:0e",
        "index": 9,
        "state": name,
    }


def test_parse_neigh_without_mac_or_without_address():
    failed = encoded(
        ndmsg(), rtnl.RTM_NEWNEIGH, family=2, ifindex=3, state=0x20, attrs=[("NDA_DST", "10.0.0.9")]
    )
    assert rtnl.parse_neigh(*body(failed)) == {
        "ip": "10.0.0.9",
        "mac": "",
        "index": 3,
        "state": "FAILED",
    }
    nodst = encoded(
        ndmsg(),
        rtnl.RTM_NEWNEIGH,
        family=2,
        ifindex=3,
        state=2,
        attrs=[("NDA_LLADDR", "02:00:00:00:00:01")],
    )
    assert rtnl.parse_neigh(*body(nodst)) is None


def test_parse_link_reads_a_pyroute2_ifinfmsg():
    data = encoded(
        ifinfmsg(),
        rtnl.RTM_NEWLINK,
        ifi_type=1,
        index=7,
        flags=0x1 | 0x2 | 0x1000 | 0x10000,
        attrs=[
            ("IFLA_IFNAME", "veth-red-br"),
            ("IFLA_ADDRESS", "02:aa:bb:cc:dd:ee"),
            ("IFLA_MASTER", 4),
            ("IFLA_LINK", 9),
            ("IFLA_LINK_NETNSID", 2),
            ("IFLA_OPERSTATE", "UP"),
            ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth")]}),
        ],
    )
    assert rtnl.parse_link(*body(data)) == {
        "index": 7,
        "name": "veth-red-br",
        "kind": "veth",
        "peer_index": 9,
        "peer_nsid": 2,
        "master": 4,
        "up": True,
        "oper": "UP",
        "operstate": "UP",
        "mac": "02:aa:bb:cc:dd:ee",
    }


@pytest.mark.parametrize(
    ("ifi_type", "name", "flags", "operstate", "kind", "oper"),
    [
        (772, "lo", 0x1 | 0x8 | 0x10000, "UNKNOWN", "loopback", "UP"),
        (1, "eth9", 0x1, "LOWERLAYERDOWN", "other", "LOWERLAYERDOWN"),
        (1, "eth8", 0x10000, "DOWN", "other", "DOWN"),
    ],
)
def test_parse_link_without_linkinfo(ifi_type, name, flags, operstate, kind, oper):
    data = encoded(
        ifinfmsg(),
        rtnl.RTM_NEWLINK,
        ifi_type=ifi_type,
        index=3,
        flags=flags,
        attrs=[("IFLA_IFNAME", name), ("IFLA_OPERSTATE", operstate)],
    )
    link = rtnl.parse_link(*body(data))
    assert (link["name"], link["kind"], link["oper"], link["operstate"]) == (
        name,
        kind,
        oper,
        operstate,
    )
    assert (link["peer_index"], link["peer_nsid"], link["master"], link["mac"]) == (
        None,
        None,
        None,
        "",
    )
    assert link["up"] is bool(flags & 1)


def test_netlink_error_says_errno_and_detail():
    err = rtnl.NetlinkError(errno.EEXIST, "boom")
    assert isinstance(err, OSError)
    assert (err.errno, err.detail, str(err)) == (17, "boom", "File exists (boom)")
    assert str(rtnl.NetlinkError(errno.ENODEV)) == "No such device"


def test_netlink_error_survives_pickling():
    back = pickle.loads(pickle.dumps(rtnl.NetlinkError(errno.EEXIST, "boom")))
    assert (back.errno, back.detail, str(back)) == (17, "boom", "File exists (boom)")


# -- against the kernel, in a sandbox ----------------------------------------


def ip(*args: str) -> Any:
    """``ip -j ARGS``, parsed."""
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def indexes() -> dict[str, int]:
    return {link["ifname"]: link["ifindex"] for link in ip("link")}


def links_by_ip() -> dict[int, dict[str, Any]]:
    """What parse_link should say about each link, from ``ip -j -d link``."""
    raw = ip("-d", "link")
    names = {link["ifname"]: link["ifindex"] for link in raw}
    out = {}
    for link in raw:
        flags = link["flags"]
        kind = link.get("linkinfo", {}).get("info_kind")
        if kind is None:
            kind = "loopback" if link.get("link_type") == "loopback" else "other"
        if "link_index" in link:
            peer = link["link_index"]
        else:
            peer = names[link["link"]] if "link" in link else None
        up = "UP" in flags
        out[link["ifindex"]] = {
            "index": link["ifindex"],
            "name": link["ifname"],
            "kind": kind,
            "peer_index": peer,
            "peer_nsid": link.get("link_netnsid"),
            "master": names[link["master"]] if "master" in link else None,
            "up": up,
            "oper": "DOWN" if not up else "UP" if "LOWER_UP" in flags else "LOWERLAYERDOWN",
            "mac": link.get("address", ""),
        }
    return out


def links_by_rtnl(s: rtnl.Socket) -> dict[int, dict[str, Any]]:
    out = {}
    for link in s.dump("links"):
        # operstate follows the carrier up to a second late (see rtnl.oper)
        assert link.pop("operstate") in rtnl._OPERSTATE
        out[link["index"]] = link
    return out


def addrs_by_ip() -> set[tuple[int, str]]:
    return {
        (link["ifindex"], f"{a['local']}/{a['prefixlen']}")
        for link in ip("-4", "addr")
        for a in link["addr_info"]
    }


def addrs_by_rtnl(s: rtnl.Socket) -> set[tuple[int, str]]:
    got = s.dump("addrs")
    pairs = {(a["index"], a["cidr"]) for a in got}
    assert len(pairs) == len(got)
    return pairs


def routes_by_ip() -> list[tuple[str, str | None, int | None, str]]:
    names = indexes()
    out = []
    for r in ip("-d", "-4", "route"):  # -d: show "proto boot" too
        dst = r["dst"] if r["dst"] == "default" or "/" in r["dst"] else r["dst"] + "/32"
        out.append((dst, r.get("gateway"), names.get(r.get("dev")), r["protocol"]))
    return sorted(out, key=repr)


def routes_by_rtnl(s: rtnl.Socket) -> list[tuple[str, str | None, int | None, str]]:
    got = [(r["dst"], r["via"], r["oif"], r["proto"]) for r in s.dump("routes")]
    return sorted(got, key=repr)


def neigh_by_ip() -> set[tuple[str, str, int, str]]:
    names = indexes()
    return {
        (n["dst"], n.get("lladdr", ""), names[n["dev"]], "+".join(n["state"]))
        for n in ip("-4", "neigh")
    }


def neigh_by_rtnl(s: rtnl.Socket) -> set[tuple[str, str, int, str]]:
    return {(n["ip"], n["mac"], n["index"], n["state"]) for n in s.dump("neigh")}


def wire(s: rtnl.Socket) -> tuple[int, int]:
    """veth va (here, 10.77.0.1/24, up) to vb (netns x, 10.77.0.2/24, up).

    Returns (index of va, fd of netns x).
    """
    sh("ip", "netns", "add", "x")
    fd = os.open("/run/netns/x", os.O_RDONLY)
    assert s.request([rtnl.new_veth("va", "vb", fd)]) == [(0, "")]
    va = indexes()["va"]
    assert s.request([rtnl.set_link(va, up=True), rtnl.address(True, va, "10.77.0.1/24")]) == [
        (0, ""),
        (0, ""),
    ]
    sh("ip", "-n", "x", "addr", "add", "10.77.0.2/24", "dev", "vb")
    sh("ip", "-n", "x", "link", "set", "vb", "up")
    return va, fd


@pytest.mark.sandbox
def test_request_reports_each_result_and_keeps_going():
    with rtnl.Socket() as s:
        assert s.request([rtnl.new_bridge("br0")]) == [(0, "")]
        again = s.request([rtnl.new_bridge("br0")])
        assert len(again) == 1 and again[0][0] == errno.EEXIST
        results = s.request([rtnl.del_link(99999), rtnl.new_bridge("br1"), rtnl.new_bridge("br0")])
        assert [code for code, _ in results] == [errno.ENODEV, 0, errno.EEXIST]
        assert results[1] == (0, "")
        assert s.request([]) == []
        names = indexes()
        assert {"br0", "br1"} <= set(names)
        assert s.request([rtnl.del_link(names["br1"]), rtnl.del_link(names["br1"])]) == [
            (0, ""),
            (errno.ENODEV, ""),
        ]
        assert "br1" not in indexes()


@pytest.mark.sandbox
def test_call_get_link_answers_or_raises():
    with rtnl.Socket() as s:
        with pytest.raises(rtnl.NetlinkError) as caught:
            s.call(rtnl.get_link("nope"))
        assert caught.value.errno == errno.ENODEV
        assert isinstance(caught.value, OSError)
        [lo] = s.call(rtnl.get_link("lo"))
        assert (lo["index"], lo["name"], lo["kind"], lo["up"]) == (1, "lo", "loopback", True)
        assert s.request([rtnl.new_bridge("br0")]) == [(0, "")]
        [br] = s.call(rtnl.get_link("br0"))
        assert (br["index"], br["kind"], br["up"]) == (indexes()["br0"], "bridge", False)
        # the socket is still in step after an error and an answer
        assert s.request([rtnl.set_link(br["index"], up=True)]) == [(0, "")]
        assert s.call(rtnl.get_link("br0"))[0]["up"] is True


@pytest.mark.sandbox
def test_links_match_ip_with_a_veth_peer_in_another_namespace():
    with rtnl.Socket() as s:
        sh("ip", "netns", "add", "x")
        fd = os.open("/run/netns/x", os.O_RDONLY)
        assert (
            s.request(
                [rtnl.new_bridge("br0"), rtnl.new_veth("va", "vb", fd), rtnl.new_veth("vc", "vd")]
            )
            == [(0, "")] * 3
        )
        names = indexes()
        assert "vb" not in names and {"br0", "va", "vc", "vd"} <= set(names)
        br, va, vc = names["br0"], names["va"], names["vc"]
        assert (
            s.request(
                [
                    rtnl.set_link(va, up=True, master=br),
                    rtnl.set_link(br, up=True),
                    rtnl.set_link(vc, up=True),
                ]
            )
            == [(0, "")] * 3
        )
        sh("ip", "-n", "x", "link", "set", "vb", "up")

        ours, theirs = links_by_rtnl(s), links_by_ip()
        assert ours == theirs
        assert ours[va]["master"] == br and ours[va]["kind"] == "veth"
        assert ours[va]["up"] and ours[va]["oper"] == "UP"
        assert ours[br]["kind"] == "bridge" and ours[br]["master"] is None
        assert (ours[vc]["peer_index"], ours[vc]["peer_nsid"]) == (names["vd"], None)
        assert ours[vc]["oper"] == "LOWERLAYERDOWN"  # its peer vd is down
        assert not ours[names["vd"]]["up"]

        [vb] = ip("-n", "x", "link", "show", "vb")
        assert vb["link_index"] == va and "LOWER_UP" in vb["flags"]
        assert ours[va]["peer_index"] == vb["ifindex"]
        nsid = ours[va]["peer_nsid"]
        assert isinstance(nsid, int) and nsid >= 0
        assert s.call(rtnl.get_nsid(fd)) == [{"nsid": nsid}]

        # nomaster and down, then delete a pair by one end
        assert (
            s.request(
                [
                    rtnl.set_link(va, master=0),
                    rtnl.set_link(vc, up=False),
                    rtnl.del_link(names["vd"]),
                ]
            )
            == [(0, "")] * 3
        )
        ours = links_by_rtnl(s)
        assert ours == links_by_ip()
        assert ours[va]["master"] is None and ours[va]["up"]
        assert vc not in ours and names["vd"] not in ours


@pytest.mark.sandbox
def test_addresses_and_routes_match_ip():
    with rtnl.Socket() as s:
        va, _ = wire(s)
        assert (va, "10.77.0.1/24") in addrs_by_rtnl(s)
        assert addrs_by_rtnl(s) == addrs_by_ip()
        again = s.request([rtnl.address(True, va, "10.77.0.1/24")])
        assert [code for code, _ in again] == [errno.EEXIST]

        # the world's default route (if any) makes room for ours
        old = [r for r in s.dump("routes") if r["dst"] == "default"]
        assert s.request([rtnl.route(False, "default", r["via"]) for r in old]) == [(0, "")] * len(
            old
        )
        assert s.request(
            [
                rtnl.route(True, "default", "10.77.0.2"),
                rtnl.route(True, "10.88.0.0/16", "10.77.0.2"),
            ]
        ) == [(0, ""), (0, "")]
        routes = routes_by_rtnl(s)
        assert ("default", "10.77.0.2", va, "boot") in routes
        assert ("10.88.0.0/16", "10.77.0.2", va, "boot") in routes
        assert ("10.77.0.0/24", None, va, "kernel") in routes
        assert routes == routes_by_ip()
        [default] = ip("-4", "route", "show", "default")
        assert (default["gateway"], default["dev"]) == ("10.77.0.2", "va")
        dup = s.request([rtnl.route(True, "default", "10.77.0.2")])
        assert [code for code, _ in dup] == [errno.EEXIST]

        assert s.request(
            [
                rtnl.route(False, "default", "10.77.0.2"),
                rtnl.route(False, "10.88.0.0/16", "10.77.0.2"),
            ]
        ) == [(0, ""), (0, "")]
        gone = s.request([rtnl.route(False, "10.88.0.0/16", "10.77.0.2")])
        assert [code for code, _ in gone] == [errno.ESRCH]
        routes = routes_by_rtnl(s)
        assert [r for r in routes if r[0] in ("default", "10.88.0.0/16")] == []
        assert routes == routes_by_ip()

        assert s.request([rtnl.address(False, va, "10.77.0.1/24")]) == [(0, "")]
        assert [c for c, _ in s.request([rtnl.address(False, va, "10.77.0.1/24")])] == [
            errno.EADDRNOTAVAIL
        ]
        addrs = addrs_by_rtnl(s)
        assert not [a for a in addrs if a[0] == va]
        assert addrs == addrs_by_ip()
        # its subnet route went with it
        assert not [r for r in routes_by_rtnl(s) if r[2] == va]


@pytest.mark.sandbox
def test_neighbours_match_ip_after_a_ping():
    with rtnl.Socket() as s:
        va, _ = wire(s)
        assert not [n for n in s.dump("neigh") if n["index"] == va]
        ping = subprocess.run(
            ["ping", "-c", "1", "-W", "2", "10.77.0.2"], capture_output=True, text=True
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        [vb] = ip("-n", "x", "link", "show", "vb")
        entry = ("10.77.0.2", vb["address"], va, "REACHABLE")
        assert entry in neigh_by_rtnl(s)
        assert neigh_by_rtnl(s) == neigh_by_ip()

        assert s.request([rtnl.del_neigh(va, "10.77.0.2")]) == [(0, "")]
        assert not [n for n in s.dump("neigh") if n["index"] == va]
        assert not ip("-4", "neigh", "show", "dev", "va")
        again = s.request([rtnl.del_neigh(va, "10.77.0.2")])
        assert [code for code, _ in again] == [errno.ENOENT]


class CountingSock:
    """A socket that counts the datagrams sent through it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent: list[int] = []

    def send(self, data: bytes) -> int:
        self.sent.append(len(data))
        return self.sock.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def many(n: int) -> list[str]:
    return [f"10.100.{i // 200}.{i % 200 + 1}/32" for i in range(n)]


@pytest.mark.sandbox
def test_300_addresses_in_one_request_and_in_chunks():
    with rtnl.Socket() as s:
        assert s.request([rtnl.new_bridge("br0")]) == [(0, "")]
        br = indexes()["br0"]
        counted = CountingSock(s._sock)
        s._sock = counted
        cidrs = many(300)
        adds = [rtnl.address(True, br, c) for c in cidrs]
        assert s.request(adds) == [(0, "")] * 300
        # 300 * 40 bytes fit one chunk; at most MAX_MESSAGES go in one sendmsg
        assert counted.sent == [40 * s.MAX_MESSAGES, 40 * (300 - s.MAX_MESSAGES)]
        on_br = {a["cidr"] for a in s.dump("addrs") if a["index"] == br}
        assert on_br == set(cidrs)
        [link] = ip("-4", "addr", "show", "dev", "br0")
        assert {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]} == set(cidrs)

        # small chunks: many sendmsg calls, results still in order, an error mid-way
        s.CHUNK = 512
        counted.sent.clear()
        dels = [rtnl.address(False, br, c) for c in cidrs]
        dels.insert(151, rtnl.address(False, br, cidrs[150]))  # deleted just before
        results = s.request(dels)
        per_chunk = -(-s.CHUNK // len(dels[0]))
        assert len(counted.sent) == -(-len(dels) // per_chunk) > 1
        assert max(counted.sent) <= s.CHUNK + len(dels[0])
        assert [i for i, r in enumerate(results) if r != (0, "")] == [151]
        assert results[151][0] == errno.EADDRNOTAVAIL
        assert not [a for a in s.dump("addrs") if a["index"] == br]
        assert addrs_by_rtnl(s) == addrs_by_ip()


@pytest.mark.sandbox
def test_a_full_chunk_of_small_requests_with_the_stock_receive_buffer():
    with rtnl.Socket() as s:
        # what Socket() gets where net.core.rmem_max is the kernel's default
        s._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 212992)
        s._sock.settimeout(5)
        assert s.request([rtnl.new_bridge("br0")]) == [(0, "")]
        br = indexes()["br0"]
        msgs = [rtnl.set_link(br, up=True)] * 1024  # 1024 * 32 bytes: one chunk
        assert s.request(msgs) == [(0, "")] * 1024
