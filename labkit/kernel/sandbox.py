"""The sandbox: a private "host" that never touches the machine's network.

A sandbox is a set of fresh Linux namespaces that a process enters:

* a **user** namespace, always: the learner is root inside and an
  unprivileged user on the machine (the one who started labkit, or, when
  root started it, user :data:`~labkit.kernel.preflight.SANDBOX_UID`,
  which no account uses);
* a **PID** namespace, whose first process is a small reaper; when the
  process that started the sandbox exits, the kernel ends every process
  inside (web apps and joined terminals included);
* a **mount** namespace whose ``/proc``, ``/sys``, ``/run`` and
  ``/run/netns`` are the sandbox's own, mounted before the learner's user
  namespace exists, so the learner cannot unmount them (see
  :mod:`labkit.kernel.mounts`);
* a **network** namespace that plays "the host" of the tutorial, and a
  **UTS** namespace that names it ``host``, and an IPC namespace.

:func:`enter` builds all of it; the calling process stays outside as
supervisor. Nothing the learner runs keeps the machine's network
namespace: the Jupyter kernel's sockets are bound outside by the
supervisor and handed in (see :mod:`labkit.jupyter`). :func:`join` moves a
process into a running sandbox (a terminal into a notebook's lab), and
:func:`run_in_sandbox` runs one call in a fresh one.

A sandbox is bare: what it holds (the course's outside world) is the
caller's business, passed to :func:`enter` as ``prepare`` (see
:mod:`labkit.world`). Whether a sandbox can start here, and why not, is
:mod:`labkit.kernel.preflight`'s; its names used with the sandbox
(:func:`require`, :func:`inside`, :data:`SANDBOX_UID`, ...) can be
imported from here too.

Inside, the tutorial's commands run verbatim: ``sudo`` is a small shim on
``PATH`` (the sandbox user is already root there; the real ``sudo``
refuses to run in a user namespace).
"""

from __future__ import annotations

import fcntl
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from labkit.errors import SandboxError
from labkit.kernel import labs, libc, modules
from labkit.kernel.mounts import BIN_DIR, HOME_DIR, ProcRefused, mount_sysfs, private_files
from labkit.kernel.preflight import (
    DISABLE,
    DISABLED,
    ENV_MARK,
    FIX_INTRO,
    HOW_TO_FIX,
    NO_SYSFS,
    cannot_start,
    learner_ids,
    netns_inode,
    no_fresh_proc,
    sysfs_mounted,
)

__all__ = ["HOSTNAME", "enter", "join", "run_in_sandbox", "spawn_joined", "wait_child"]

#: the host's name inside every sandbox
HOSTNAME = "host"

_T = TypeVar("_T")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _be_root() -> None:
    """Take user and group 0 of the current user namespace (after setns/unshare)."""
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


# -- the learner's namespaces (level 2) -----------------------------------------


def _sync(fd_r: int, fd_w: int | None = None) -> None:
    """Tell the other side (when ``fd_w``), then wait for its answer on ``fd_r``."""
    if fd_w is not None:
        os.write(fd_w, b".")
    if os.read(fd_r, 1) != b".":
        os._exit(1)


def _learner_namespaces() -> None:
    """Enter the learner's user, mount, UTS, IPC and network namespaces.

    Runs in the sandbox's worker, just after PID 1 mapped its user
    namespace (the "setup" one, whose root is the learner's id on the
    machine). A helper child makes a second user namespace below it and
    the network namespace "the host" inside that; the worker, still
    privileged over both, mounts the host's sysfs and names the host,
    then joins the second user namespace and takes a mount namespace of
    its own there. So the learner is root over the host's network, and
    every mount and the hostname made before are locked for it.
    """
    _be_root()
    libc.set_dumpable(True)  # so that the helper's /proc files are ours to write
    libc.unshare(libc.CLONE_NEWNS | libc.CLONE_NEWUTS | libc.CLONE_NEWIPC)
    to_helper_r, to_helper_w = os.pipe()
    from_helper_r, from_helper_w = os.pipe()
    helper = os.fork()
    if helper == 0:  # pragma: no cover - runs in the helper
        try:
            libc.unshare(libc.CLONE_NEWUSER)
            _sync(to_helper_r, from_helper_w)
            libc.unshare(libc.CLONE_NEWNET)
            _sync(to_helper_r, from_helper_w)
        finally:
            os._exit(0)
    try:
        _sync(from_helper_r)
        _write(f"/proc/{helper}/uid_map", "0 0 1")
        _write(f"/proc/{helper}/gid_map", "0 0 1")
        _sync(from_helper_r, to_helper_w)
        for kind, flag in (("net", libc.CLONE_NEWNET), ("user", libc.CLONE_NEWUSER)):
            fd = os.open(f"/proc/{helper}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if kind == "user":
                    # sysfs of the host's network, and its name: set up from above
                    mount_sysfs()
                    try:
                        libc.sethostname(HOSTNAME)
                    except PermissionError:
                        pass  # Podman's default seccomp profile: the prompt keeps its name
                libc.setns(fd, flag)
            finally:
                os.close(fd)
    finally:
        os.write(to_helper_w, b".")
        os.waitpid(helper, 0)
        for fd in (to_helper_r, to_helper_w, from_helper_r, from_helper_w):
            os.close(fd)
    _be_root()
    libc.unshare(libc.CLONE_NEWNS)


def _set_up(ifname: str) -> None:
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", ifname.encode(), 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", ifname.encode(), flags | IFF_UP))


def _host_network() -> None:
    """Set up "the host": lo up, no forwarding, no bridge netfilter."""
    _set_up("lo")
    # A new namespace may copy the machine's forwarding setting; the
    # course starts from a host that does not forward.
    _write("/proc/sys/net/ipv4/ip_forward", "0")
    # Where br_netfilter is loaded (Docker hosts), each new namespace starts
    # with bridge-nf-call-iptables=1: IPv4 frames its bridges forward pass
    # its iptables, so a FORWARD DROP policy would cut red from blue and NAT
    # rules would rewrite their traffic. A host without br_netfilter does
    # neither: there the bridge forwards frames without iptables.
    for name in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"):
        try:
            _write(f"/proc/sys/net/bridge/{name}", "0")
        except OSError:
            pass


def _environment(outer: int, inner: int | None = None) -> None:
    inner = netns_inode() if inner is None else inner
    os.environ[ENV_MARK] = f"{outer}:{inner}"
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":")
    # Folders the learner may not enter (root's home) would only turn
    # "command not found" into "Permission denied".
    path = [d for d in path if d and d != BIN_DIR and os.access(d, os.X_OK)]
    for extra in ("/usr/sbin", "/sbin"):
        if extra not in path:
            path.append(extra)
    os.environ["PATH"] = ":".join([BIN_DIR, *path])
    home = os.environ.get("HOME", "")
    if not (home and os.access(home, os.W_OK | os.X_OK)):
        # The machine's root's home is not the learner's: a private one.
        os.environ["HOME"] = HOME_DIR
        for name in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
            os.environ.pop(name, None)
        os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(HOME_DIR, "jupyter-runtime")
    for name in ("SUDO_USER", "SUDO_UID", "SUDO_GID", "SUDO_COMMAND", "MAIL"):
        os.environ.pop(name, None)


# -- processes --------------------------------------------------------------------


def _exit_like(status: int) -> None:
    """Exit with the code a child's wait status stands for."""
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


def _forward(signals: tuple[int, ...], pid: int) -> None:
    for sig in signals:
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))


def _wait(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue


#: how the starter says that the kernel refused it namespaces (then the errno)
_REFUSED = "refused:"
_NO_PROC = "no-proc:"

_FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def wait_child(pid: int) -> int:
    """Stand in for child ``pid`` until it ends: forward signals, return its exit code.

    SIGINT is ignored meanwhile (the child gets it from the terminal); the
    handlers are as before afterwards. A child killed by signal N gives
    128 + N, as a shell says.

    Examples
    --------
    >>> wait_child(os.posix_spawnp("sh", ["sh", "-c", "exit 3"], os.environ))
    3
    """
    handled = (signal.SIGINT, *_FORWARDED)
    before = {sig: signal.getsignal(sig) for sig in handled}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _forward(_FORWARDED, pid)
    try:
        code = os.waitstatus_to_exitcode(_wait(pid))
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    return code if code >= 0 else 128 - code


def _die_with_parent(life_r: int) -> None:
    libc.set_parent_death_signal(signal.SIGKILL)
    os.set_blocking(life_r, False)
    try:
        if os.read(life_r, 1) == b"":  # the parent is gone already
            os._exit(1)
    except BlockingIOError:
        pass
    os.set_blocking(life_r, True)


def _reap(worker: int) -> None:  # pragma: no cover - runs in PID 1
    """PID 1's life after the worker started: reap orphans, end with the worker."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 65536)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        _forward(_FORWARDED, worker)
        while True:
            pid, status = os.wait()
            if pid == worker:
                _exit_like(status)
    finally:
        os._exit(1)


# -- entering a fresh sandbox ---------------------------------------------------------


def _start(uid: int, ids: tuple[int, int, int], report_w: int) -> None:
    """The starter: user (if not root) and PID namespaces, PID 1, then the worker.

    Runs in a child of the process that called :func:`enter`; returns in
    the worker, with every namespace set up. Failures go to ``report_w``
    as text, for the caller to raise.
    """
    outer = netns_inode()
    gid = os.getegid()  # before unshare: in a user namespace without a map it reads 65534
    flags = libc.CLONE_NEWPID
    if uid != 0:
        flags |= libc.CLONE_NEWUSER
    try:
        libc.unshare(flags)
    except OSError as err:
        os.write(report_w, f"{_REFUSED}{err.errno}".encode())
        os._exit(1)
    if uid != 0:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
    # In the setup namespace (the machine's for root), the learner's ids:
    inner_uid, inner_gid = (ids[0], ids[1]) if uid == 0 else (0, 0)
    life_r, life_w = os.pipe()
    reaper = os.fork()
    if reaper:  # the starter: waits, and forwards signals
        os.close(life_r)
        os.close(report_w)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _forward(_FORWARDED, reaper)
        _exit_like(_wait(reaper))
    # PID 1 of the sandbox
    os.close(life_w)
    libc.set_dumpable(False)  # nothing inside may read or trace it
    _die_with_parent(life_r)
    libc.unshare(libc.CLONE_NEWNS)
    try:
        private_files(inner_uid, inner_gid)
    except ProcRefused as err:
        os.write(report_w, f"{_NO_PROC}{err.errno}".encode())
        os._exit(1)
    mapped_r, mapped_w = os.pipe()
    asked_r, asked_w = os.pipe()
    worker = os.fork()
    if worker:
        os.close(mapped_r)
        os.close(asked_w)
        if os.read(asked_r, 1) == b".":
            if uid == 0:
                count = ids[2]
                _write(f"/proc/{worker}/uid_map", f"0 {ids[0]} {count}")
                _write(f"/proc/{worker}/gid_map", f"0 {ids[1]} {count}")
            else:
                _write(f"/proc/{worker}/uid_map", "0 0 1")
                _write(f"/proc/{worker}/gid_map", "0 0 1")
            os.write(mapped_w, b".")
        os.close(mapped_w)
        os.close(report_w)
        _reap(worker)
    # the worker
    os.close(life_r)
    os.close(mapped_w)
    os.close(asked_r)
    libc.set_parent_death_signal(signal.SIGKILL)
    libc.set_dumpable(True)  # PID 1 may write our /proc/PID/uid_map (it is not, on purpose)
    if uid == 0:
        try:
            os.setgroups([])  # root's groups stay outside
        except PermissionError:
            pass  # in a sandbox started by a user: it has none to shed
    libc.unshare(libc.CLONE_NEWUSER)
    _sync(mapped_r, asked_w)
    os.close(mapped_r)
    os.close(asked_w)
    _learner_namespaces()
    _host_network()
    _environment(outer)


def enter(prepare: Callable[[], None] | None = None, kind: str = "shell", label: str = "") -> None:
    """Move this (single-threaded) process into a fresh sandbox.

    It returns in a new process, the sandbox's worker (three forks down),
    while the calling process stays outside as its supervisor: it waits,
    forwards signals, exits with the worker's status, and lists the lab
    for ``labkit shell --list`` meanwhile. When the supervisor dies, the
    kernel ends every process of the sandbox. The sandbox is bare: the
    worker calls ``prepare()``, if given, before it returns (to build the
    course's outside world, :func:`labkit.world.build`, for example).

    ``kind`` and ``label`` say what the lab belongs to (``"kernel"`` and
    the notebook's path, for example) in :mod:`labkit.kernel.labs`. File
    descriptors that are inheritable stay open in the worker.

    Examples
    --------
    >>> import subprocess
    >>> enter()  # doctest: +SKIP
    >>> subprocess.run(["ip", "netns", "add", "red"], check=True)  # doctest: +SKIP
    """
    if os.environ.get(DISABLE):
        raise SandboxError(DISABLED)
    uid = os.geteuid()
    if uid != 0 and not sysfs_mounted():
        raise SandboxError(NO_SYSFS.format(uid=uid))
    if uid == 0:
        modules.load()
    ids = learner_ids()
    registry = labs.Registry.open()
    report_r, report_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    starter = os.fork()
    if starter == 0:
        os.close(report_r)
        if registry:
            registry.close()
        try:
            _start(uid, ids, report_w)
        except OSError as err:
            os.write(report_w, f"{err}".encode() or b"failed")
            os._exit(1)
        os.write(report_w, b"\0")
        os.close(report_w)
        if prepare is not None:
            prepare()
        return
    # the supervisor
    os.close(report_w)
    with os.fdopen(report_r, "rb") as f:
        said = f.read()
    if said != b"\0":
        _wait(starter)
        if said.startswith(_REFUSED.encode()) and said[len(_REFUSED) :].isdigit():
            raise SandboxError(cannot_start(int(said[len(_REFUSED) :]), uid))
        if said.startswith(_NO_PROC.encode()) and said[len(_NO_PROC) :].isdigit():
            raise SandboxError(no_fresh_proc(int(said[len(_NO_PROC) :])))
        who = "root" if uid == 0 else f"user {uid} (not root)"
        text = said.decode(errors="replace") or "it ended before it was ready"
        raise SandboxError(
            f"A labkit sandbox cannot start here: running as {who}, its namespaces were "
            f"made but setting them up failed ({text}). "
            + (f"{FIX_INTRO}, see what `labkit doctor` says." if uid == 0 else HOW_TO_FIX)
        )
    _supervise(starter, registry, kind, label)


def _supervise(starter: int, registry: labs.Registry | None, kind: str, label: str) -> None:
    """The supervisor's life: list the lab, wait, forward signals, exit like the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker gets it from the tty
    _forward(_FORWARDED, starter)
    libc.set_dumpable(False)
    entry = None
    if registry:
        try:
            entry = registry.add(starter, kind, label)
        except OSError:
            entry = None
    status = _wait(starter)
    if registry and entry:
        registry.remove(entry)
    _exit_like(status)


# -- joining a running sandbox ------------------------------------------------------

_NAMESPACES = (
    ("pid", libc.CLONE_NEWPID),
    ("uts", libc.CLONE_NEWUTS),
    ("ipc", libc.CLONE_NEWIPC),
    ("net", libc.CLONE_NEWNET),
    ("user", libc.CLONE_NEWUSER),
    ("mnt", libc.CLONE_NEWNS),
)


_NS_GET_PARENT = 0xB702


def _topmost_user_ns(fd: int) -> int | None:
    """The ancestor of user namespace ``fd`` just below ours (a new fd), or None."""
    mine = os.stat("/proc/self/ns/user").st_ino
    current = os.dup(fd)
    while True:
        try:
            parent = fcntl.ioctl(current, _NS_GET_PARENT)
        except OSError:
            os.close(current)
            return None
        if os.fstat(parent).st_ino == mine:
            os.close(parent)
            return current
        os.close(current)
        current = parent


def join(entry: labs.Entry) -> None:
    """Move this single-threaded process into the lab's namespaces, as its learner.

    Afterwards this process is root of the lab's user namespace (an
    unprivileged user on the machine), sees the lab's files, network and
    hostname, and its *children* are in the lab's PID namespace, so they
    end with the lab. The environment is the sandbox's (``PATH`` with the
    ``sudo`` shim, the sandbox mark).

    Examples
    --------
    >>> join(labs.latest())  # doctest: +SKIP
    """
    outer = os.stat("/proc/self/ns/net").st_ino
    fds = []
    try:
        for kind, _ in _NAMESPACES:
            fds.append(os.open(f"/proc/{entry.pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC))
        if not entry.alive():
            raise SandboxError(f"lab {entry.id} ended just now: nothing to join")
        if os.fstat(fds[4]).st_ino == os.stat("/proc/self/ns/user").st_ino:
            raise SandboxError(f"lab {entry.id} is not a labkit sandbox: refusing to join it")
        inner = os.fstat(fds[3]).st_ino  # /proc/self is out of sight once joined
        if os.geteuid() == 0:
            os.setgroups([])  # root's groups stay outside
        else:
            # The lab's PID, UTS and IPC namespaces belong to user namespaces
            # above the learner's; an ordinary user may only join them from
            # the topmost one, which that user made (and owns).
            top = _topmost_user_ns(fds[4])
            if top is not None:
                try:
                    libc.setns(top, libc.CLONE_NEWUSER)
                finally:
                    os.close(top)
        for fd, (kind, flag) in zip(fds, _NAMESPACES, strict=True):
            libc.setns(fd, flag)
            if kind == "user":
                _be_root()
    except OSError as err:
        raise SandboxError(f"cannot join lab {entry.id}: {err}") from None
    finally:
        for fd in fds:
            os.close(fd)
    _environment(outer, inner)


def spawn_joined(entry: labs.Entry, argv: list[str], cwd: str | None = None) -> int:
    """Run ``argv`` inside a running lab and return its exit status (as a shell would).

    This process joins the lab (:func:`join`), forks the command into the
    lab's PID namespace, forwards signals to it and waits.

    Examples
    --------
    >>> spawn_joined(labs.latest(), ["ip", "netns"])  # doctest: +SKIP
    0
    """
    join(entry)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the lab
        try:
            os.chdir(cwd or os.environ.get("HOME", "/"))
        except OSError:
            os.chdir("/")
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    return wait_child(pid)


# -- one call in a fresh sandbox ------------------------------------------------------


def run_in_sandbox(fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """Run ``fn(*args, **kwargs)`` in a fresh sandbox and return its result.

    The call runs in a forked child that enters a new, bare sandbox (no
    outside world: :func:`labkit.world.run_in_lab` builds it first); the
    result (or the exception) comes back pickled. When it returns, the
    sandbox and everything in it are gone.

    Examples
    --------
    >>> import subprocess
    >>> def netns_list():
    ...     subprocess.run(["ip", "netns", "add", "red"], check=True)
    ...     return subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout
    >>> run_in_sandbox(netns_list)  # doctest: +SKIP
    'red\\n'
    """
    if threading.active_count() > 1:
        raise SandboxError(
            "a call in a fresh sandbox forks, and this process has threads (a fork would copy "
            "their locks in whatever state they are): call it from a single-threaded "
            "process, or run a command in a sandbox with `labkit run -- CMD`"
        )
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        try:
            enter(kind="python")  # returns in the sandbox's worker; this process waits there
            outcome: tuple[Any, ...] = ("ok", fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - everything goes back to the parent
            outcome = ("err", err, traceback.format_exc())
        try:
            data = pickle.dumps(outcome)
        except Exception:  # noqa: BLE001 - say what we can
            if outcome[0] == "err":
                kind = AssertionError if isinstance(outcome[1], AssertionError) else RuntimeError
                stand_in = kind(f"{type(outcome[1]).__name__}: {outcome[1]}")
                data = pickle.dumps(("err", stand_in, outcome[2]))
            else:
                data = pickle.dumps(("err", RuntimeError("the result cannot be pickled"), ""))
        with os.fdopen(w, "wb") as f:
            f.write(data)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise SandboxError(f"the sandboxed call died (wait status {status}) before it answered")
    outcome = pickle.loads(data)
    if outcome[0] == "ok":
        return outcome[1]
    err, tb = outcome[1], outcome[2]
    if tb and hasattr(err, "add_note"):
        err.add_note("In the sandbox:\n" + tb)
    raise err
