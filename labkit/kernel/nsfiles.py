"""Network namespace files: make and delete namespaces as ``ip netns`` does.

A namespace is named by a file in ``/run/netns``, a bind mount of the
namespace. :func:`add` makes one without forking ``ip`` (the netlink
thread unshares a new network namespace and bind-mounts it);
:func:`delete` deletes many at once and waits for their cables to go.
Every function here runs on the netlink thread (``nl.call``).

Examples
--------
>>> from labkit.kernel import netns
>>> nl = netns.get()  # doctest: +SKIP
>>> nl.call(add, nl, "red")  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterable

from labkit.core.model import HOST
from labkit.errors import KernelError, NamespaceGone
from labkit.kernel import libc, rtnl
from labkit.kernel.netns import Netlink
from labkit.kernel.preflight import NETNS_DIR
from labkit.kernel.procs import kill_processes_in

#: from this many namespaces on, deleting swaps /run/netns instead of
#: unmounting each namespace file
SWAP_AT = 16


#: the br_netfilter switches that send bridged frames through iptables/ip6tables/arptables
BRIDGE_NF = ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables")


def add(nl: Netlink, name: str) -> None:
    """Create ``/run/netns/NAME`` like ``ip netns add``, without forking.

    Examples
    --------
    >>> nl.call(add, nl, "red")  # doctest: +SKIP
    """
    path = os.path.join(NETNS_DIR, name)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    except FileExistsError:
        raise KernelError(f"ip netns add {name}: namespace {name!r} exists already") from None
    try:
        libc.unshare(libc.CLONE_NEWNET)
        try:
            libc.mount("/proc/thread-self/ns/net", path, None, libc.MS_BIND)
            # A new namespace may copy the machine's forwarding setting;
            # labkit's namespaces start from "does not forward".
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write("0")
            # Where br_netfilter is loaded (Docker hosts), a new namespace's
            # bridges pass their frames through its iptables; labkit's
            # bridges are plain switches on every machine, as in the host.
            for knob in BRIDGE_NF:
                try:
                    with open(f"/proc/sys/net/bridge/{knob}", "w") as f:
                        f.write("0")
                except OSError:  # no br_netfilter: bridges never call iptables
                    pass
        finally:
            libc.setns(nl.host_fd, libc.CLONE_NEWNET)
    except OSError as err:
        os.unlink(path)
        raise KernelError(f"ip netns add {name}: {err.strerror}") from None


def delete(
    nl: Netlink, names: Iterable[str], timeout: float = 10.0, wait: bool = True
) -> dict[str, set[int]]:
    """Delete namespaces at once; return when their cables are gone too.

    Like ``ip netns delete`` for each, and it ends the processes inside.
    The kernel frees a namespace asynchronously, and frees many
    together in one batch (deleting cables one by one costs an RCU
    grace period each). This waits until every veth whose other end
    was in a deleted namespace has disappeared from the namespaces
    that stay; one still there after ``timeout`` seconds (something
    else keeps its namespace alive) is deleted explicitly.

    With ``wait=False`` it returns at once with those cables (namespace
    -> ifindexes), for :meth:`wait_for_cables` after other work: the
    kernel frees the namespaces meanwhile, on another CPU.

    Examples
    --------
    >>> nl.call(delete, nl, ["red", "blue"])  # doctest: +SKIP
    {}
    """
    doomed = {}
    for name in names:
        try:
            doomed[name] = os.stat(os.path.join(NETNS_DIR, name)).st_ino
        except FileNotFoundError:
            continue
    if not doomed:
        return {}
    stay = [HOST, *(n for n in nl.netns_list() if n not in doomed)]
    # Hold every doomed namespace open until all are unmounted: the
    # kernel then frees them together, and not while we unmount (its
    # cleanup slows each umount from ~20 us to ~0.7 ms).
    fds = [nl.ns_fd(name) for name in doomed]
    try:
        cables = _cables_into(nl, stay, fds)
        kill_processes_in(set(doomed.values()))
        for name in doomed:
            nl.forget(name)
        if len(doomed) < SWAP_AT or not _swap_netns_dir(nl, stay[1:]):
            for name in doomed:
                _unmount(name)
    finally:
        for fd in fds:
            os.close(fd)
    if wait:
        wait_for_cables(nl, cables, timeout)
    return cables


def wait_for_cables(nl: Netlink, cables: dict[str, set[int]], timeout: float = 10.0) -> None:
    """Wait until these links (namespace -> ifindexes) are gone; delete stragglers.

    Examples
    --------
    >>> nl.call(wait_for_cables, nl, {"host": {7}})  # doctest: +SKIP
    """
    cables = {ns: set(indexes) for ns, indexes in cables.items()}
    deadline = time.monotonic() + timeout
    pause = 0.002
    while cables:
        for ns in list(cables):
            try:
                present = nl.sock(ns).link_indexes()
            except (OSError, NamespaceGone):
                present = set()
            cables[ns] &= present
            if not cables[ns]:
                del cables[ns]
        if not cables or time.monotonic() > deadline:
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.01)
    for ns, indexes in cables.items():
        nl.sock(ns).request([rtnl.del_link(i) for i in sorted(indexes)])


def delete_bridges(nl: Netlink, ns: str) -> list[str]:
    """Delete every bridge in ``ns`` (one request for all); their names.

    Examples
    --------
    >>> nl.call(delete_bridges, nl, "host")  # doctest: +SKIP
    ['v-net-0']
    """
    bridges = [lk for lk in nl.sock(ns).dump("links") if lk["kind"] == "bridge"]
    nl.sock(ns).request([rtnl.del_link(lk["index"]) for lk in bridges])
    return sorted(lk["name"] for lk in bridges)


def _unmount(name: str) -> None:
    path = os.path.join(NETNS_DIR, name)
    try:
        libc.umount(path)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOENT):
            raise KernelError(f"ip netns delete {name}: {err.strerror}") from None
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _swap_netns_dir(nl: Netlink, keep: list[str]) -> bool:
    """Replace /run/netns by an empty one holding only ``keep``; False if it cannot.

    One umount of the directory removes every namespace file at once.
    Unmounting them one by one costs about 1 ms each once the
    namespaces have devices (measured with 1000), 1 s in all.
    """
    fds = {name: nl.ns_fd(name) for name in keep}
    try:
        try:
            libc.umount(NETNS_DIR)
        except OSError:
            return False
        libc.mount("tmpfs", NETNS_DIR, "tmpfs", 0, "mode=0755")
        libc.mount(None, NETNS_DIR, None, libc.MS_SHARED)
        for name, fd in fds.items():
            path = os.path.join(NETNS_DIR, name)
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
            libc.mount(f"/proc/self/fd/{fd}", path, None, libc.MS_BIND)
        return True
    finally:
        for fd in fds.values():
            os.close(fd)


def _cables_into(nl: Netlink, stay: list[str], fds: list[int]) -> dict[str, set[int]]:
    """For each namespace in ``stay``: the veths whose peer is in one of ``fds``."""
    out = {}
    for ns in stay:
        try:
            sock = nl.sock(ns)
            links = [lk for lk in sock.dump("links") if lk["peer_nsid"] is not None]
            if not links:
                continue
            ids = {i for i in sock.nsids(fds) if i >= 0}
        except (OSError, NamespaceGone):
            continue
        mine = {lk["index"] for lk in links if lk["peer_nsid"] in ids}
        if mine:
            out[ns] = mine
    return out
