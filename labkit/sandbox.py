"""The sandbox: a private "host" that never touches the machine's network.

A sandbox is a set of fresh Linux namespaces that the calling process
enters:

* a **user** namespace (only when not started as root), so that an
  ordinary user is root inside and nowhere else;
* a **mount** namespace whose ``/run/netns`` is a private tmpfs, so
  ``ip netns add red`` creates ``red`` for this sandbox only;
* a **PID** namespace, whose first process is a small reaper; when the
  process that entered the sandbox exits, the reaper dies with it and the
  kernel ends every process started inside (web apps included);
* a **network** namespace that plays "the host" of the tutorial.

Entering happens in two steps because a Jupyter kernel must bind its ZMQ
sockets in the machine's network namespace before it moves into the
sandbox's: :func:`enter_private` (user, mount, PID; must run while the
process is single-threaded) and :func:`enter_network` (the network
namespace, for the calling thread only). :func:`enter` does both.

Inside, the tutorial's commands run verbatim: ``sudo`` is a small shim on
``PATH`` (the sandbox user is already root there; the real ``sudo``
refuses to run in a user namespace).
"""

from __future__ import annotations

import fcntl
import os
import pickle
import shlex
import signal
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from labkit import _libc
from labkit.errors import SandboxError

ENV_MARK = "LABKIT_SANDBOX"
#: set to any value to act as if no sandbox could start (to see the message)
DISABLE = "LABKIT_DISABLE_SANDBOX"
NETNS_DIR = "/run/netns"
BIN_DIR = "/run/labkit/bin"

_T = TypeVar("_T")
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8

_SUDO_SHIM = """#!/bin/sh
# labkit sandbox: you are root here already, so sudo only drops its options.
while [ $# -gt 0 ]; do
  case "$1" in
    -u|-g|-C|-h|-p|-r|-t|-U|-D) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -eq 0 ] && { echo "usage: sudo COMMAND [ARG...]" >&2; exit 1; }
exec "$@"
"""

#: The sysctls that can forbid user namespaces to ordinary users: the name,
#: the value that forbids them and the value that allows them.
USERNS_SYSCTLS = (
    ("kernel.unprivileged_userns_clone", "0", "1"),
    ("user.max_user_namespaces", "0", "15000"),
    ("kernel.apparmor_restrict_unprivileged_userns", "1", "0"),
)

#: How every "cannot start" paragraph turns from why to how to fix.
FIX_INTRO = "To fix it"

#: How to fix it when labkit cannot tell which setting is in the way.
HOW_TO_FIX = (
    f"{FIX_INTRO}, do one of these: run labkit as root (`sudo labkit shell`; for "
    "notebooks, start Jupyter as root); or, as root, allow user namespaces "
    "(`sysctl -w user.max_user_namespaces=15000`; where they exist, also "
    "`sysctl -w kernel.unprivileged_userns_clone=1` and "
    "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`; in a container, "
    "also start it with `--security-opt seccomp=unconfined`); or use a machine, VM "
    "or container where they are allowed."
)

_DISABLED = (
    f"A labkit sandbox cannot start here: {DISABLE} is set (to show this message). "
    f"{FIX_INTRO}, unset {DISABLE}."
)


def userns_sysctls() -> list[tuple[str, str, bool, str]]:
    """The user namespace sysctls this kernel has, and whether each forbids them.

    Each is ``(name, value, forbids, allowing)``: ``allowing`` is the value
    that allows user namespaces. Read from ``/proc/sys``, as seen from this
    process's user namespace (``user.max_user_namespaces`` is set per user
    namespace, and limits the ones below it).

    Examples
    --------
    >>> all(len(entry) == 4 for entry in userns_sysctls())
    True
    """
    found = []
    for name, forbidding, allowing in USERNS_SYSCTLS:
        try:
            with open("/proc/sys/" + name.replace(".", "/")) as f:
                value = f.read().strip()
        except OSError:
            continue
        found.append((name, value, value == forbidding, allowing))
    return found


def cannot_start(errno: int, uid: int | None = None) -> str:
    """The one paragraph labkit shows wherever no sandbox can start: why, how to fix.

    The CLI, the Jupyter kernel, the Python API and ``labkit doctor`` all
    show this text, for the error of the ``unshare`` call that failed.

    Parameters
    ----------
    errno
        What the kernel answered to ``unshare`` (``errno.EPERM``, ...).
    uid
        The effective user id (default: this process's).

    Examples
    --------
    >>> import errno
    >>> text = cannot_start(errno.EPERM, uid=0)
    >>> text.startswith("A labkit sandbox cannot start here: it runs as root")
    True
    >>> FIX_INTRO in text
    True
    """
    uid = os.geteuid() if uid is None else uid
    said = f"unshare: {os.strerror(errno)}"
    if uid == 0:
        return (
            "A labkit sandbox cannot start here: it runs as root, but the kernel refuses "
            f"it new namespaces ({said}), as in a container started without the "
            f"capabilities for them. {FIX_INTRO}, start the container with `--privileged` "
            "(or with `--cap-add SYS_ADMIN --cap-add NET_ADMIN --security-opt "
            "seccomp=unconfined`), or use a machine or VM where root can create namespaces."
        )
    blockers = [
        (name, value, allowing) for name, value, forbids, allowing in userns_sysctls() if forbids
    ]
    if blockers:
        said += "; " + " and ".join(f"{name} is {value}" for name, value, _ in blockers)
        commands = " and ".join(f"`sysctl -w {name}={allowing}`" for name, _, allowing in blockers)
        fix = (
            f"{FIX_INTRO}, do one of these: run labkit as root (`sudo labkit shell`; for "
            f"notebooks, start Jupyter as root); or, as root, allow user namespaces with "
            f"{commands} (to keep that after a reboot, put it in "
            "/etc/sysctl.d/99-labkit.conf); or use a machine, VM or container where they "
            "are allowed."
        )
    else:
        fix = HOW_TO_FIX
    return (
        "A labkit sandbox cannot start here: labkit needs root or user namespaces, and it "
        f"has neither. It runs as user {uid}, not root, and the kernel refuses it a user "
        f"namespace ({said}). {fix}"
    )


def why_and_fix(paragraph: str) -> tuple[str, str]:
    """A "cannot start" paragraph as (why, how to fix).

    Examples
    --------
    >>> why_and_fix("A labkit sandbox cannot start here: nope. " + HOW_TO_FIX)[1] == HOW_TO_FIX
    True
    """
    why, intro, fix = paragraph.partition(" " + FIX_INTRO)
    return why.strip(), (intro + fix).strip()


def _netns_inode(path: str = "/proc/self/ns/net") -> int:
    return os.stat(path).st_ino


def inside() -> bool:
    """Tell whether this process runs inside a labkit sandbox.

    True when the sandbox mark is in the environment and the current
    network namespace is not the one the sandbox was started from.

    Examples
    --------
    >>> import labkit.sandbox
    >>> labkit.sandbox.inside() in (True, False)
    True
    """
    mark = os.environ.get(ENV_MARK, "")
    outer, _, _ = mark.partition(":")
    if not outer.isdigit():
        return False
    try:
        return _netns_inode() != int(outer) and os.path.isdir(NETNS_DIR)
    except OSError:
        return False


NOT_INSIDE = (
    "labkit changes the network only inside its sandbox, and this "
    "process is not in one. Use the 'labkit' Jupyter kernel, or start "
    "a shell with `labkit shell` (or a command with `labkit run -- CMD`)."
)


def require(outside: str = NOT_INSIDE) -> None:
    """Raise :class:`SandboxError` unless this process is in a sandbox.

    Every call that changes the network goes through here, so labkit can
    never change the machine's own network by mistake. When no sandbox
    can start here at all, the error is the paragraph of
    :func:`cannot_start` (why, how to fix); otherwise it is ``outside``,
    which says where to go instead.

    Examples
    --------
    >>> from labkit.sandbox import require
    >>> require()  # doctest: +SKIP
    """
    if inside():
        return
    why = os.environ.get("LABKIT_NO_SANDBOX")  # set by a kernel that could not start one
    if why:
        raise SandboxError(why)
    why = why_not()
    if why:
        raise SandboxError(why)
    raise SandboxError(outside)


def _child_probe(flags: int) -> int | None:
    """Try ``unshare(flags)`` in a throwaway child; return its errno, None if it worked."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        msg = b""
        try:
            _libc.unshare(flags)
        except OSError as err:
            msg = str(err.errno).encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    return int(out) if out else None


def why_not() -> str | None:
    """Say why a sandbox cannot start here, or None when it can.

    Examples
    --------
    >>> from labkit.sandbox import why_not
    >>> why_not() is None or isinstance(why_not(), str)
    True
    """
    if os.environ.get(DISABLE):
        return _DISABLED
    flags = _libc.CLONE_NEWNS | _libc.CLONE_NEWNET | _libc.CLONE_NEWPID
    if os.geteuid() != 0:
        flags |= _libc.CLONE_NEWUSER
    failure = _child_probe(flags)
    return None if failure is None else cannot_start(failure)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _private_run() -> None:
    """Cover /run with a tmpfs, keep what was there, add /run/netns."""
    kept: list[tuple[str, str, Any]] = []
    for entry in os.scandir("/run"):
        if entry.name in ("netns", "labkit"):
            continue
        try:
            if entry.is_symlink():
                kept.append((entry.name, "link", os.readlink(entry.path)))
            else:
                kind = "dir" if entry.is_dir(follow_symlinks=False) else "file"
                kept.append((entry.name, kind, os.open(entry.path, os.O_PATH | os.O_NOFOLLOW)))
        except OSError:
            continue
    _libc.mount("tmpfs", "/run", "tmpfs", 0, "mode=0755")
    for name, kind, value in kept:
        path = os.path.join("/run", name)
        try:
            if kind == "link":
                os.symlink(value, path)
                continue
            if kind == "dir":
                os.mkdir(path)
            else:
                open(path, "w").close()
            _libc.mount(f"/proc/self/fd/{value}", path, None, _libc.MS_BIND | _libc.MS_REC)
        except OSError:
            pass  # best effort: a part of /run we cannot keep is left out
        finally:
            if kind != "link":
                os.close(value)
    os.mkdir(NETNS_DIR)
    _libc.mount("tmpfs", NETNS_DIR, "tmpfs", 0, "mode=0755")
    _libc.mount(None, NETNS_DIR, None, _libc.MS_SHARED)
    os.makedirs(BIN_DIR)
    # The labkit that started the sandbox, under its usual name, for
    # `labkit up veth` in a shell or a notebook's `!` cell.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    labkit_cmd = (
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(here)}${{PYTHONPATH:+:$PYTHONPATH}} "
        f'exec {shlex.quote(sys.executable)} -m labkit "$@"\n'
    )
    # `python3 -m labkit.webapp` (the port-forward stage's command) must find
    # labkit too, whichever python3 comes first on the machine's PATH.
    python_cmd = (
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(here)}${{PYTHONPATH:+:$PYTHONPATH}} "
        f'exec {shlex.quote(sys.executable)} "$@"\n'
    )
    shims = (("sudo", _SUDO_SHIM), ("labkit", labkit_cmd), ("python3", python_cmd))
    for name, text in shims:
        _write(os.path.join(BIN_DIR, name), text)
        os.chmod(os.path.join(BIN_DIR, name), 0o755)
    # No DNS in the sandbox: name lookups fail at once instead of waiting
    # for the machine's name server, which the sandbox cannot reach.
    resolv = os.path.join(os.path.dirname(BIN_DIR), "resolv.conf")
    _write(resolv, "# labkit sandbox: no name server here\nnameserver 127.0.0.1\n")
    try:
        _libc.mount(resolv, "/etc/resolv.conf", None, _libc.MS_BIND)
    except OSError:
        pass


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


_FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _supervise() -> None:
    """Split into supervisor, PID 1 (reaper) and worker; return in the worker.

    A process that called unshare(CLONE_NEWPID) cannot start threads, so
    the work goes on two forks down: the calling process (the supervisor)
    forwards signals and exits with the worker's status; its child is
    PID 1 of the new PID namespace, reaps orphans and dies with the
    supervisor (taking every process of the sandbox with it); its child,
    the worker, is where this function returns.
    """
    life_r, life_w = os.pipe()
    reaper = os.fork()
    if reaper:  # the supervisor
        os.close(life_r)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker gets it from the tty
        _forward(_FORWARDED, reaper)
        _exit_like(_wait(reaper))
    # PID 1 of the sandbox
    os.close(life_w)
    _libc.set_parent_death_signal(signal.SIGKILL)
    os.set_blocking(life_r, False)
    try:
        if os.read(life_r, 1) == b"":  # the supervisor is gone already
            os._exit(1)
    except BlockingIOError:
        pass
    worker = os.fork()
    if worker == 0:
        os.close(life_r)
        return
    try:  # pragma: no cover - runs in the reaper
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


def enter_private() -> None:
    """First step: new user (if not root), mount and PID namespaces.

    Must run while the process has a single thread. It returns in a new
    process (two forks down, PID 2 of the sandbox) while the original
    process waits for it and exits with its status. Afterwards
    ``/run/netns`` is private to this process and its children.

    Examples
    --------
    >>> from labkit.sandbox import enter_private
    >>> enter_private()  # doctest: +SKIP
    """
    if os.environ.get(DISABLE):
        raise SandboxError(_DISABLED)
    uid, gid = os.geteuid(), os.getegid()
    flags = _libc.CLONE_NEWNS | _libc.CLONE_NEWPID
    if uid != 0:
        flags |= _libc.CLONE_NEWUSER
    try:
        _libc.unshare(flags)
    except OSError as err:
        raise SandboxError(cannot_start(err.errno, uid)) from None
    try:
        if uid != 0:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
        _libc.mount(None, "/", None, _libc.MS_REC | _libc.MS_PRIVATE)
        _private_run()
    except OSError as err:
        who = "root" if uid == 0 else f"user {uid} (not root)"
        raise SandboxError(
            f"A labkit sandbox cannot start here: running as {who}, its namespaces were "
            f"made but setting them up failed ({err}). {HOW_TO_FIX}"
        ) from None
    _supervise()
    try:
        # A /proc of the new PID namespace: ps, pgrep and kill see and
        # name the sandbox's processes only.
        _libc.mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    except OSError:
        pass  # keep the machine's /proc; everything still works


def _set_up(ifname: str) -> None:
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", ifname.encode(), 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", ifname.encode(), flags | IFF_UP))


def enter_network(world: bool = True) -> None:
    """Second step: a new network namespace, "the host", for this thread.

    In a single-threaded process that is the whole process; in a Jupyter
    kernel it is the main thread, which runs the cells. Threads and
    processes started from it afterwards are inside too. With ``world``,
    the outside world (LAN, router, internet; see :mod:`labkit.stages`)
    is built right away.

    Examples
    --------
    >>> from labkit.sandbox import enter_network
    >>> enter_network()  # doctest: +SKIP
    """
    outer = _netns_inode("/proc/thread-self/ns/net")
    try:
        _libc.unshare(_libc.CLONE_NEWNET)
    except OSError as err:
        raise SandboxError(f"A labkit sandbox cannot start here: {err}. {HOW_TO_FIX}") from None
    _set_up("lo")
    try:
        # /sys/class/net of the sandbox's host, not of the machine
        _libc.mount("sysfs", "/sys", "sysfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    except OSError:
        pass
    # A new namespace may copy the machine's forwarding setting; the
    # course starts from a host that does not forward.
    _write("/proc/sys/net/ipv4/ip_forward", "0")
    # Where br_netfilter is loaded (Docker hosts), bridged frames would pass
    # the host's iptables, so NAT rules would rewrite traffic between two
    # namespaces on the bridge. A plain Linux host does not do that.
    for name in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"):
        try:
            _write(f"/proc/sys/net/bridge/{name}", "0")
        except OSError:
            pass
    inner = _netns_inode("/proc/thread-self/ns/net")
    os.environ[ENV_MARK] = f"{outer}:{inner}"
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    os.environ["PATH"] = ":".join([BIN_DIR, path, "/usr/sbin", "/sbin"])
    if world:
        _build_world()


def _build_world() -> None:
    from labkit.errors import LabkitError
    from labkit.lab import Lab

    try:
        Lab().reset()
    except LabkitError as err:
        print(
            f"labkit: the outside world (LAN, router, internet) is incomplete: {err} "
            "(`labkit doctor` checks the tools)",
            file=sys.stderr,
        )


def enter(world: bool = True) -> None:
    """Move this (single-threaded) process into a fresh sandbox.

    Examples
    --------
    >>> import subprocess
    >>> from labkit.sandbox import enter
    >>> enter()  # doctest: +SKIP
    >>> subprocess.run(["ip", "netns", "add", "red"], check=True)  # doctest: +SKIP
    """
    enter_private()
    enter_network(world)


def run_in_sandbox(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run ``fn(*args, **kwargs)`` in a fresh sandbox and return its result.

    The call runs in a forked child that enters a new sandbox; the result
    (or the exception) comes back pickled. When it returns, the sandbox
    and everything in it are gone.

    Examples
    --------
    >>> import subprocess
    >>> from labkit.sandbox import run_in_sandbox
    >>> def netns_list():
    ...     subprocess.run(["ip", "netns", "add", "red"], check=True)
    ...     return subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout
    >>> run_in_sandbox(netns_list)  # doctest: +SKIP
    'red\\n'
    """
    if threading.active_count() > 1:
        raise SandboxError(
            "run_in_sandbox forks, and this process has threads (a fork would copy "
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
            enter()  # returns in the sandbox's worker; this process waits there
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
