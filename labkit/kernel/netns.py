"""Netlink access to every namespace of the sandbox, from one worker thread.

All netlink work goes to a single worker thread (a Jupyter cell's thread
runs an asyncio loop; blocking it is no good either). That thread lives in
the sandbox's host network namespace; for another namespace it opens a
netlink socket *there* (``setns`` in, :class:`labkit.kernel.rtnl.Socket`,
``setns`` back: no fork). Namespaces are created the same way, without
forking ``ip``: the thread ``unshare``\\ s a new network namespace and
bind-mounts it at ``/run/netns/NAME``, exactly as ``ip netns add`` does.

Kernel errors become :class:`labkit.errors.KernelError` with the shell
command they stand for.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from labkit.core.model import HOST
from labkit.errors import ConfigError, KernelError
from labkit.kernel import libc, rtnl
from labkit.kernel.sandbox import NETNS_DIR

_T = TypeVar("_T")
#: from this many namespaces on, deleting swaps /run/netns instead of
#: unmounting each namespace file
SWAP_AT = 16


class Netlink:
    """Netlink access to the sandbox, from one worker thread.

    Use :func:`get` for the process-wide instance.

    Examples
    --------
    >>> from labkit.kernel import netns
    >>> nl = netns.get()  # doctest: +SKIP
    >>> nl.call(nl.netns_list)  # doctest: +SKIP
    ['blue', 'red']
    """

    def __init__(self) -> None:
        # /proc/self/ns/net is the main thread's: the sandbox's host.
        self._host_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._socks: dict[str, tuple[int, rtnl.Socket]] = {}
        self._pool = ThreadPoolExecutor(1, "labkit-netlink", initializer=self._enter_host)
        self._thread: threading.Thread | None = None

    def _enter_host(self) -> None:
        libc.setns(self._host_fd, libc.CLONE_NEWNET)
        self._thread = threading.current_thread()

    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` on the netlink thread and return its result.

        Examples
        --------
        >>> get().call(get().netns_list)  # doctest: +SKIP
        []
        """
        if threading.current_thread() is self._thread:
            return fn(*args)
        return self._pool.submit(self._then_release, fn, *args).result()

    def _then_release(self, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return fn(*args)
        finally:
            self.release()

    def release(self) -> None:
        """Close the sockets held in lab namespaces.

        An open socket keeps its namespace alive; holding one after a call
        would keep a namespace that a learner deleted by hand working.

        Examples
        --------
        >>> get().call(get().release)  # doctest: +SKIP
        """
        for ns in [n for n in self._socks if n != HOST]:
            self._socks.pop(ns)[1].close()

    # -- namespaces (run on the worker thread) --------------------------

    def netns_list(self) -> list[str]:
        """Names in /run/netns, sorted.

        Examples
        --------
        >>> get().call(get().netns_list)  # doctest: +SKIP
        ['blue', 'red']
        """
        try:
            return sorted(os.listdir(NETNS_DIR))
        except FileNotFoundError:
            return []

    def netns_add(self, name: str) -> None:
        """Create ``/run/netns/NAME`` like ``ip netns add``, without forking.

        Examples
        --------
        >>> get().call(get().netns_add, "red")  # doctest: +SKIP
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
            finally:
                libc.setns(self._host_fd, libc.CLONE_NEWNET)
        except OSError as err:
            os.unlink(path)
            raise KernelError(f"ip netns add {name}: {err.strerror}") from None

    def netns_del(self, name: str) -> None:
        """Delete a namespace like ``ip netns delete``, ending its processes.

        Examples
        --------
        >>> get().call(get().netns_del, "red")  # doctest: +SKIP
        """
        self.netns_del_many([name])

    def netns_del_many(
        self, names: Iterable[str], timeout: float = 10.0, wait: bool = True
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
        >>> get().call(get().netns_del_many, ["red", "blue"])  # doctest: +SKIP
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
        stay = [HOST, *(n for n in self.netns_list() if n not in doomed)]
        # Hold every doomed namespace open until all are unmounted: the
        # kernel then frees them together, and not while we unmount (its
        # cleanup slows each umount from ~20 us to ~0.7 ms).
        fds = [self.ns_fd(name) for name in doomed]
        try:
            cables = self._cables_into(stay, fds)
            kill_processes_in(set(doomed.values()))
            for name in doomed:
                entry = self._socks.pop(name, None)
                if entry:
                    entry[1].close()
            if len(doomed) < SWAP_AT or not self._swap_netns_dir(stay[1:]):
                for name in doomed:
                    self._unmount(name)
        finally:
            for fd in fds:
                os.close(fd)
        if wait:
            self.wait_for_cables(cables, timeout)
        return cables

    def wait_for_cables(self, cables: dict[str, set[int]], timeout: float = 10.0) -> None:
        """Wait until these links (namespace -> ifindexes) are gone; delete stragglers.

        Examples
        --------
        >>> get().call(get().wait_for_cables, {"host": {7}})  # doctest: +SKIP
        """
        cables = {ns: set(indexes) for ns, indexes in cables.items()}
        deadline = time.monotonic() + timeout
        pause = 0.002
        while cables:
            for ns in list(cables):
                try:
                    present = self.sock(ns).link_indexes()
                except (OSError, ConfigError):
                    present = set()
                cables[ns] &= present
                if not cables[ns]:
                    del cables[ns]
            if not cables or time.monotonic() > deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        for ns, indexes in cables.items():
            self.sock(ns).request([rtnl.del_link(i) for i in sorted(indexes)])

    def delete_bridges(self, ns: str) -> list[str]:
        """Delete every bridge in ``ns`` (one request for all); their names.

        Examples
        --------
        >>> get().call(get().delete_bridges, "host")  # doctest: +SKIP
        ['v-net-0']
        """
        bridges = [lk for lk in self.sock(ns).dump("links") if lk["kind"] == "bridge"]
        self.sock(ns).request([rtnl.del_link(lk["index"]) for lk in bridges])
        return sorted(lk["name"] for lk in bridges)

    def _unmount(self, name: str) -> None:
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

    def _swap_netns_dir(self, keep: list[str]) -> bool:
        """Replace /run/netns by an empty one holding only ``keep``; False if it cannot.

        One umount of the directory removes every namespace file at once.
        Unmounting them one by one costs about 1 ms each once the
        namespaces have devices (measured with 1000), 1 s in all.
        """
        fds = {name: self.ns_fd(name) for name in keep}
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

    def _cables_into(self, stay: list[str], fds: list[int]) -> dict[str, set[int]]:
        """For each namespace in ``stay``: the veths whose peer is in one of ``fds``."""
        out = {}
        for ns in stay:
            try:
                sock = self.sock(ns)
                links = [lk for lk in sock.dump("links") if lk["peer_nsid"] is not None]
                if not links:
                    continue
                ids = {i for i in sock.nsids(fds) if i >= 0}
            except (OSError, ConfigError):
                continue
            mine = {lk["index"] for lk in links if lk["peer_nsid"] in ids}
            if mine:
                out[ns] = mine
        return out

    def run_in(self, ns: str, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command in namespace ``ns`` (like ``ip netns exec``, lighter).

        The child is forked from this thread while it is inside ``ns``.

        Examples
        --------
        >>> get().call(get().run_in, "red", ["iptables", "-S"]).returncode  # doctest: +SKIP
        0
        """
        return self._inside(
            ns, lambda: subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        )

    def write_sysctl(self, ns: str, key: str, value: str) -> None:
        """Set a network sysctl in namespace ``ns``.

        Examples
        --------
        >>> get().call(get().write_sysctl, "host", "net.ipv4.ip_forward", "1")  # doctest: +SKIP
        """

        def write() -> None:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)

        self._inside(ns, write)

    def _inside(self, ns: str, fn: Callable[[], _T]) -> _T:
        if ns == HOST:
            return fn()
        fd = self.ns_fd(ns)
        try:
            libc.setns(fd, libc.CLONE_NEWNET)
            try:
                return fn()
            finally:
                libc.setns(self._host_fd, libc.CLONE_NEWNET)
        finally:
            os.close(fd)

    def ns_fd(self, ns: str) -> int:
        """An open fd for a namespace (the caller closes it).

        Examples
        --------
        >>> fd = get().call(get().ns_fd, "red")  # doctest: +SKIP
        """
        if ns == HOST:
            return os.dup(self._host_fd)
        try:
            return os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ConfigError(
                f"network namespace {ns!r} does not exist: create it with "
                f"`ip netns add {ns}` or build a stage with lab.goto(...)"
            ) from None

    def sock(self, ns: str) -> rtnl.Socket:
        """The netlink socket for namespace ``ns`` (host: ``"host"``).

        Examples
        --------
        >>> get().call(lambda: get().sock("red").dump("links"))  # doctest: +SKIP
        """
        if ns == HOST:
            inode = 0
        else:
            try:
                inode = os.stat(os.path.join(NETNS_DIR, ns)).st_ino
            except FileNotFoundError:
                self.ns_fd(ns)  # raises the clear error
                raise
        cached = self._socks.get(ns)
        if cached and cached[0] == inode:
            return cached[1]
        if cached:
            cached[1].close()
        sock = self._inside(ns, rtnl.Socket)
        self._socks[ns] = (inode, sock)
        return sock

    # -- links, addresses, routes (run on the worker thread) -------------

    def indexes(self, ns: str) -> dict[str, int]:
        """Interface name -> ifindex for every link of ``ns`` (one dump).

        Examples
        --------
        >>> get().call(get().indexes, "host")["lo"]  # doctest: +SKIP
        1
        """
        return {link["name"]: link["index"] for link in self.sock(ns).dump("links")}

    def dump(self, ns: str) -> dict[str, list[dict[str, Any]]]:
        """Links, IPv4 addresses, main-table IPv4 routes and neighbours of ``ns``.

        Plain dicts (see :mod:`labkit.kernel.rtnl`); routes and neighbours name
        their device (``dev``).

        Examples
        --------
        >>> sorted(get().call(get().dump, "host"))  # doctest: +SKIP
        ['addrs', 'links', 'neigh', 'routes']
        """
        sock = self.sock(ns)
        links = sock.dump("links")
        names = {link["index"]: link["name"] for link in links}
        routes = sock.dump("routes")
        for r in routes:
            r["dev"] = names.get(r.pop("oif"))
        neigh = sock.dump("neigh")
        for n in neigh:
            n["dev"] = names.get(n.pop("index"))
        return {"links": links, "addrs": sock.dump("addrs"), "routes": routes, "neigh": neigh}


def kill_processes_in(netns_inodes: int | set[int]) -> int:
    """SIGKILL every process whose network namespace has one of these inodes.

    Returns how many were killed. Processes we may not inspect are skipped.

    Examples
    --------
    >>> kill_processes_in(0)
    0
    """
    wanted = {netns_inodes} if isinstance(netns_inodes, int) else netns_inodes
    return _kill_where(lambda inode: inode in wanted, {os.getpid()})


def _kill_where(doomed: Callable[[int], bool], spared: set[int]) -> int:
    """SIGKILL each visible process (not in ``spared``) whose netns inode is ``doomed``."""
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spared:
            continue
        try:
            if doomed(os.stat(f"/proc/{entry}/ns/net").st_ino):
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            continue
    return killed


def kill_strays(keep: set[int]) -> int:
    """SIGKILL the sandbox's processes whose network namespace is not in ``keep``.

    A learner who deletes a namespace by hand (``ip netns del red``) while
    something runs in it leaves that namespace alive without a name, and
    the process in it. Only processes of this sandbox are visible here (it
    has its own PID namespace); PID 1, this process and its ancestors, and
    processes still in the machine's network namespace (the sandbox's own
    plumbing) are never touched. Returns how many were killed.

    Examples
    --------
    >>> kill_strays({os.stat("/proc/self/ns/net").st_ino}) >= 0  # doctest: +SKIP
    True
    """
    from labkit.kernel.sandbox import ENV_MARK

    outer = os.environ.get(ENV_MARK, "").partition(":")[0]
    if not outer.isdigit():
        return 0  # not in a sandbox: nothing here is ours to end
    keep = keep | {int(outer)}
    spared = {1}
    pid = os.getpid()
    while pid > 1:  # this process and its ancestors
        spared.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return _kill_where(lambda inode: inode not in keep, spared)


_instance: tuple[int, Netlink] | None = None
_lock = threading.Lock()


def get() -> Netlink:
    """The process's :class:`Netlink` (a new one after a fork).

    Examples
    --------
    >>> from labkit.kernel import netns
    >>> netns.get()  # doctest: +SKIP
    <labkit.kernel.netns.Netlink object at ...>
    """
    global _instance
    with _lock:
        if _instance is None or _instance[0] != os.getpid():
            _instance = (os.getpid(), Netlink())
        return _instance[1]


def translate(err: OSError, command: str) -> KernelError:
    """Turn a netlink error into a :class:`KernelError` naming the command.

    Examples
    --------
    >>> translate(rtnl.NetlinkError(17), "ip link add v-net-0 type bridge")
    KernelError('ip link add v-net-0 type bridge: File exists (errno 17)')
    """
    return KernelError(f"{command}: {err.strerror} (errno {err.errno})")
