"""Start and stop labkit's web apps in namespaces, and find them in /proc.

A web app is a process ``python3 -m labkit.webapp --name NS PORT`` whose
network namespace is NS. It is started detached (its parent is the
sandbox's PID 1, so it ends with the sandbox) and counted as running once
its socket listens, which the app itself says on a pipe (``READY_FD``): no
sleeps, and no polling of ``/proc/PID/net/tcp``, whose every read walks the
machine's whole TCP table (4 ms here, however few sockets the namespace
has; a class of thirty polling at once made it the slowest step).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

from labkit.core.model import HOST, Service
from labkit.errors import KernelError
from labkit.kernel import netns

_LISTEN = "0A"

#: the folder that holds the labkit package (a checkout, or site-packages)
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: the environment variable that gives a web app the pipe to say "listening" on
READY_FD = "LABKIT_WEBAPP_READY_FD"


def running(namespaces: list[str]) -> list[dict[str, int | str]]:
    """The web apps running in these namespaces: ns, port and pid of each.

    One pass over /proc: a web app is a process whose command line names
    ``labkit.webapp`` and ends with its port.

    Examples
    --------
    >>> running(["nowhere"])
    []
    """
    inodes = {}
    for ns in namespaces:
        try:
            inodes[os.stat(_netns_path(ns)).st_ino] = ns
        except OSError:
            continue
    found: list[dict[str, int | str]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a for a in f.read().decode(errors="replace").split("\0") if a]
            if "labkit.webapp" not in argv or not argv[-1].isdigit():
                continue
            ns = inodes.get(os.stat(f"/proc/{entry}/ns/net").st_ino)
        except OSError:
            continue
        if ns is not None:
            found.append({"ns": ns, "port": int(argv[-1]), "pid": int(entry)})
    return sorted(found, key=lambda x: (x["ns"], x["port"], x["pid"]))


def _netns_path(ns: str) -> str:
    return "/proc/thread-self/ns/net" if ns == HOST else f"{netns.NETNS_DIR}/{ns}"


def find(svc: Service) -> list[int]:
    """PIDs of the web apps serving ``svc`` (by namespace and port).

    Examples
    --------
    >>> find(Service("nowhere", 1))
    []
    """
    return [int(x["pid"]) for x in running([svc.ns]) if x["port"] == svc.port]


def listening_ports(net_dir: str) -> set[int]:
    """The TCP ports with a listening socket, from ``NET_DIR/tcp`` and ``tcp6``.

    ``net_dir`` is a ``/proc/.../net`` directory: ``/proc/PID/net`` for a
    process's namespace, ``/proc/thread-self/net`` for the calling thread's.

    Examples
    --------
    >>> 1 in listening_ports(f"/proc/{os.getpid()}/net")
    False
    """
    ports = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{net_dir}/{name}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == _LISTEN:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    return ports


def start(nl: netns.Netlink, svc: Service, timeout: float = 10.0) -> int:
    """Start the web app of ``svc`` and wait until it listens; return its PID.

    Runs on the netlink thread (``nl``), which enters the namespace to fork.

    Examples
    --------
    >>> nl = netns.get()  # doctest: +SKIP
    >>> nl.call(start, nl, Service("blue", 80))  # doctest: +SKIP
    4242
    """
    # -S: no site-packages, only the standard library and labkit (on
    # PYTHONPATH). With the environment's site, Python's start costs three
    # times the CPU (32 ms here against 11), and a class starts thirty at once.
    argv = [sys.executable, "-S", "-m", "labkit.webapp", "--name", svc.ns, str(svc.port)]
    # sh starts the app in the background and exits: the app's parent
    # becomes the sandbox's PID 1, which reaps it. The app writes one byte
    # on the pipe once it listens, and the pipe closes if it dies first.
    launcher = ["sh", "-c", 'exec "$@" </dev/null >/dev/null 2>&1 &', "sh", *argv]
    readable, writable = os.pipe()
    try:
        try:
            env = dict(os.environ, **{READY_FD: str(writable), "PYTHONPATH": _PACKAGE_PARENT})
            nl.inside(
                svc.ns,
                lambda: subprocess.run(launcher, check=True, pass_fds=(writable,), env=env),
            )
        finally:
            os.close(writable)  # the app holds the only write end now
        ready = select.select([readable], [], [], timeout)[0]
        said = os.read(readable, 1) if ready else None  # b"" when it died first
    finally:
        os.close(readable)
    pids = find(svc)
    if said == b"1" and pids:
        return pids[0]
    if said is None:
        raise KernelError(
            f"{svc.command()}: the web app did not start listening within {timeout:.0f} s"
        )
    where = "" if svc.ns == HOST else f"ip netns exec {svc.ns} "
    raise KernelError(
        f"{svc.command()}: the web app stopped before it listened "
        f"(is port {svc.port} in use? `{where}ss -ltnp` shows what listens)"
    )


def stop(svc: Service, timeout: float = 5.0) -> None:
    """Stop every web app of ``svc`` and wait until they are gone.

    Examples
    --------
    >>> stop(Service("nowhere", 1))
    """
    pids = find(svc)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if os.path.exists(f"/proc/{p}") and _alive(p)]
        time.sleep(0.005)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
