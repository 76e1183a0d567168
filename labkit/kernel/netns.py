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

import os
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from labkit.core.model import HOST
from labkit.errors import KernelError, NamespaceGone
from labkit.kernel import libc, rtnl
from labkit.kernel.preflight import NETNS_DIR

_T = TypeVar("_T")


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
        self.host_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._socks: dict[str, tuple[int, rtnl.Socket]] = {}
        self._pool = ThreadPoolExecutor(1, "labkit-netlink", initializer=self._enter_host)
        self._thread: threading.Thread | None = None

    def _enter_host(self) -> None:
        libc.setns(self.host_fd, libc.CLONE_NEWNET)
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

    def forget(self, ns: str) -> None:
        """Close the socket kept for ``ns`` (its namespace is going).

        Examples
        --------
        >>> get().call(get().forget, "red")  # doctest: +SKIP
        """
        entry = self._socks.pop(ns, None)
        if entry:
            entry[1].close()

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

    def run_in(self, ns: str, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command in namespace ``ns`` (like ``ip netns exec``, lighter).

        The child is forked from this thread while it is inside ``ns``.

        Examples
        --------
        >>> get().call(get().run_in, "red", ["iptables", "-S"]).returncode  # doctest: +SKIP
        0
        """
        return self.inside(
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

        self.inside(ns, write)

    def inside(self, ns: str, fn: Callable[[], _T]) -> _T:
        """Call ``fn()`` with this thread in namespace ``ns`` (on the netlink thread).

        Examples
        --------
        >>> nl = get()
        >>> nl.call(nl.inside, "red", os.getpid)  # doctest: +SKIP
        4242
        """
        if ns == HOST:
            return fn()
        fd = self.ns_fd(ns)
        try:
            libc.setns(fd, libc.CLONE_NEWNET)
            try:
                return fn()
            finally:
                libc.setns(self.host_fd, libc.CLONE_NEWNET)
        finally:
            os.close(fd)

    def ns_fd(self, ns: str) -> int:
        """An open fd for a namespace (the caller closes it).

        Examples
        --------
        >>> fd = get().call(get().ns_fd, "red")  # doctest: +SKIP
        """
        if ns == HOST:
            return os.dup(self.host_fd)
        try:
            return os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NamespaceGone(
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
        sock = self.inside(ns, rtnl.Socket)
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
