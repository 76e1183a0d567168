"""The sandbox: a private "host" that never touches the machine's network.

A sandbox is a set of fresh Linux namespaces that a process enters:

* a **user** namespace, always: the learner is root inside and an
  unprivileged user on the machine (the one who started labkit, or, when
  root started it, user :data:`SANDBOX_UID`, which no account uses);
* a **PID** namespace, whose first process is a small reaper; when the
  process that started the sandbox exits, the kernel ends every process
  inside (web apps and joined terminals included);
* a **mount** namespace whose ``/proc``, ``/sys``, ``/run`` and
  ``/run/netns`` are the sandbox's own, mounted before the learner's user
  namespace exists, so the learner cannot unmount them;
* a **network** namespace that plays "the host" of the tutorial, and a
  **UTS** namespace that names it ``host``, and an IPC namespace.

:func:`enter` builds all of it; the calling process stays outside as
supervisor. Nothing the learner runs keeps the machine's network
namespace: the Jupyter kernel's sockets are bound outside by the
supervisor and handed in (see :mod:`labkit.jupyter`).

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

from labkit.errors import SandboxError
from labkit.kernel import libc

ENV_MARK = "LABKIT_SANDBOX"
#: set to any value to act as if no sandbox could start (to see the message)
DISABLE = "LABKIT_DISABLE_SANDBOX"
NETNS_DIR = "/run/netns"
BIN_DIR = "/run/labkit/bin"
#: the learner's home when the machine's is not theirs (root's)
HOME_DIR = "/run/labkit/home"
#: the host's name inside every sandbox
HOSTNAME = "host"

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
    forbidding = {name for name, _, forbids, _ in userns_sysctls() if forbids}
    if uid == 0 and "user.max_user_namespaces" in forbidding:
        return (
            "A labkit sandbox cannot start here: every sandbox has a user namespace, and "
            "user.max_user_namespaces is 0, which forbids them to everyone, root included "
            f"({said}). {FIX_INTRO}, as root: "
            "`sysctl -w user.max_user_namespaces=15000` (to keep it after a reboot, put it in "
            "/etc/sysctl.d/99-labkit.conf)."
        )
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
    >>> import labkit.kernel.sandbox
    >>> labkit.kernel.sandbox.inside() in (True, False)
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
    >>> from labkit.kernel.sandbox import require
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
            libc.unshare(flags)
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
    >>> from labkit.kernel.sandbox import why_not
    >>> why_not() is None or isinstance(why_not(), str)
    True
    """
    if os.environ.get(DISABLE):
        return _DISABLED
    if os.geteuid() != 0 and not sysfs_mounted():
        return NO_SYSFS.format(uid=os.geteuid())
    if os.geteuid() == 0 and not learner_ids_exist():
        uid, _, count = learner_ids()
        return (
            f"A labkit sandbox cannot start here: it runs as root of a user namespace (a "
            f"container) that has no user ids {uid}-{uid + count - 1}, where labkit puts the "
            f"sandbox's learner. {FIX_INTRO}, map {count} more ids into the container than "
            f"its accounts use and set {UID_ENV} to the first of them, or start labkit "
            "on a machine or VM."
        )
    flags = libc.CLONE_NEWNS | libc.CLONE_NEWNET | libc.CLONE_NEWPID | libc.CLONE_NEWUSER
    failure = _child_probe(flags)
    return None if failure is None else cannot_start(failure)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


# -- who the learner is on the machine ------------------------------------------

#: Where a sandbox started by root puts its root: the first of 65536 user
#: ids that no account uses, in the range systemd leaves to containers'
#: user namespaces (524288-1879048191). Override with LABKIT_SANDBOX_UID.
SANDBOX_UID = 0x60000000
#: How many user ids a sandbox started by root maps (0-65535 inside).
SANDBOX_IDS = 65536
UID_ENV = "LABKIT_SANDBOX_UID"


def learner_ids(euid: int | None = None, egid: int | None = None) -> tuple[int, int, int]:
    """Where the sandbox's root lives on the machine: ``(uid, gid, how many ids)``.

    Started by root, the sandbox maps its root to :data:`SANDBOX_UID` (a
    user id no account uses, with 65535 more after it for the sandbox's
    other users); started by an ordinary user, to that user alone. Either
    way the learner is root inside and an unprivileged user outside.

    Examples
    --------
    >>> learner_ids(0, 0)
    (1610612736, 1610612736, 65536)
    >>> learner_ids(1000, 1000)
    (1000, 1000, 1)
    """
    euid = os.geteuid() if euid is None else euid
    egid = os.getegid() if egid is None else egid
    if euid != 0:
        return euid, egid, 1
    if inside():
        return 0, 0, 1  # a sandbox in a sandbox: our root is unprivileged already
    text = os.environ.get(UID_ENV, "")
    uid = int(text) if text.isdigit() and 0 < int(text) < 2**32 - SANDBOX_IDS else SANDBOX_UID
    return uid, uid, SANDBOX_IDS


def _covered(path: str, first: int, count: int) -> bool:
    """True when ids ``first`` to ``first + count - 1`` all exist in this user namespace.

    ``path`` is ``/proc/self/uid_map`` or ``gid_map``, whose lines say
    ``inside outside count``; an unreadable map counts as the machine's.
    """
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return True
    ranges = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and all(f.isdigit() for f in fields):
            ranges.append((int(fields[0]), int(fields[0]) + int(fields[2])))
    end = first + count
    for start, stop in sorted(ranges):
        if start <= first < stop:
            first = stop
        if first >= end:
            return True
    return False


def learner_ids_exist() -> bool:
    """Tell whether the ids :func:`learner_ids` picks exist here (a container may lack them).

    Examples
    --------
    >>> learner_ids_exist() in (True, False)
    True
    """
    uid, gid, count = learner_ids()
    return _covered("/proc/self/uid_map", uid, count) and _covered("/proc/self/gid_map", gid, count)


def sysfs_mounted() -> bool:
    """Tell whether a sysfs is mounted at ``/sys`` (some VMs and containers have none).

    Examples
    --------
    >>> sysfs_mounted() in (True, False)
    True
    """
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split(" - ", 1)
                if len(fields) == 2 and fields[0].split()[4] == "/sys":
                    if fields[1].split()[0] == "sysfs":
                        return True
    except (OSError, IndexError):
        pass
    return False


NO_SYSFS = (
    "A labkit sandbox cannot start here: this machine has no sysfs mounted at /sys, and "
    "in a user namespace the kernel refuses a new one unless one is visible already (so "
    "`ip netns exec` and `ip -n NAME` would fail with `mount of /sys failed`). labkit runs "
    f"as user {{uid}}, not root. {FIX_INTRO}, as root: `mount -t sysfs sysfs /sys`; or run "
    "labkit as root (it then mounts a sysfs inside its own sandbox)."
)


def _be_root() -> None:
    """Take user and group 0 of the current user namespace (after setns/unshare)."""
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


# -- the sandbox's file system (level 1: as the one who started it) -----------


def _bins() -> list[tuple[str, str]]:
    # The labkit that started the sandbox, under its usual name, for
    # `labkit up veth` in a shell or a notebook's `!` cell; and python3, so
    # that `python3 -m labkit.webapp` (the port-forward stage's command)
    # finds labkit whichever python3 comes first on the machine's PATH.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pythonpath = f"PYTHONPATH={shlex.quote(here)}${{PYTHONPATH:+:$PYTHONPATH}}"
    python = shlex.quote(sys.executable)
    return [
        ("sudo", _SUDO_SHIM),
        ("labkit", f'#!/bin/sh\n{pythonpath} exec {python} -m labkit "$@"\n'),
        ("python3", f'#!/bin/sh\n{pythonpath} exec {python} "$@"\n'),
    ]


def _needed_paths() -> list[str]:
    """What a sandbox's learner must reach: labkit, this Python and its environment, the cwd."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [here, sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    try:
        paths.append(os.getcwd())
    except OSError:
        pass
    return sorted({os.path.realpath(p) for p in paths if p})


def _make_reachable(paths: list[str]) -> None:
    """Open the way to ``paths`` for a learner who is "others" to the machine's files.

    A folder on the way that others may not enter (root's home, mode 700,
    where a checkout or pyenv's Python often lives) gets, in the sandbox
    only, an empty tmpfs in its place that holds just the way on: a bind
    mount of the next folder. The learner reaches the course and its
    Python, and sees nothing else of that folder. Called by PID 1, as root.
    """
    covered: dict[str, tuple[int, set[str]]] = {}
    try:
        for path in paths:
            current = "/"
            for name in [part for part in path.split("/") if part]:
                target = os.path.join(current, name)
                if current not in covered:
                    try:
                        mode = os.stat(current).st_mode
                    except OSError:
                        break
                    if mode & 0o001:  # others may enter it
                        current = target
                        continue
                    fd = os.open(current, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                    libc.mount("tmpfs", current, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755")
                    covered[current] = (fd, set())
                fd, names = covered[current]
                if name not in names:
                    source = f"/proc/self/fd/{fd}/{name}"
                    if os.path.isdir(source):
                        os.mkdir(target)
                    else:
                        open(target, "w").close()
                    libc.mount(source, target, None, libc.MS_BIND | libc.MS_REC)
                    names.add(name)
                current = target
    finally:
        for fd, _ in covered.values():
            os.close(fd)


def _private_files(uid: int, gid: int) -> None:
    """Set up the sandbox's mount namespace while still privileged over it.

    Called by PID 1 of the sandbox, before anything enters the learner's
    user namespace, so that every mount made here is *locked* there: the
    learner cannot unmount ``/proc``, ``/sys``, ``/run`` or ``/run/netns``
    to see what lies beneath. ``uid``/``gid`` own what the learner writes
    (in this namespace's terms).
    """
    libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
    try:
        # A /proc of the new PID namespace: ps, pgrep and kill see and
        # name the sandbox's processes only.
        libc.mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    except OSError:
        pass  # keep the machine's /proc (a container may mask parts of it)
    if not sysfs_mounted():
        # In a user namespace the kernel mounts a sysfs only where one is
        # visible already; as root, give the sandbox one.
        libc.mount("sysfs", "/sys", "sysfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    if uid != 0:  # root started it: the learner is another user than the files' owner
        try:
            _make_reachable(_needed_paths())
        except OSError:
            pass  # what stays out of reach fails inside, with its own message
    owner = f"uid={uid},gid={gid}"
    # /run is the sandbox's own: the machine's sockets and named namespaces stay outside.
    libc.mount("tmpfs", "/run", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755")
    os.mkdir(NETNS_DIR)
    libc.mount("tmpfs", NETNS_DIR, "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode=0755,{owner}")
    try:
        libc.mount("tmpfs", "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777")
    except OSError:
        pass
    top = os.path.dirname(BIN_DIR)
    os.mkdir(top)
    libc.mount("tmpfs", top, "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode=0755,{owner}")
    os.makedirs(BIN_DIR)
    for name, text in _bins():
        _write(os.path.join(BIN_DIR, name), text)
        os.chmod(os.path.join(BIN_DIR, name), 0o755)
    os.mkdir(HOME_DIR, 0o755)
    os.chown(HOME_DIR, uid, gid)
    # No DNS in the sandbox: name lookups fail at once instead of waiting
    # for the machine's name server, which the sandbox cannot reach.
    resolv = os.path.join(top, "resolv.conf")
    _write(resolv, "# labkit sandbox: no name server here\nnameserver 127.0.0.1\n")
    try:
        libc.mount(resolv, "/etc/resolv.conf", None, libc.MS_BIND)
    except OSError:
        pass


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
                    libc.mount("sysfs", "/sys", "sysfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
                    libc.sethostname(HOSTNAME)
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
    # Where br_netfilter is loaded (Docker hosts), bridged frames would pass
    # the host's iptables, so NAT rules would rewrite traffic between two
    # namespaces on the bridge. A plain Linux host does not do that.
    for name in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"):
        try:
            _write(f"/proc/sys/net/bridge/{name}", "0")
        except OSError:
            pass


def _environment(outer: int, inner: int | None = None) -> None:
    inner = _netns_inode() if inner is None else inner
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


def _start(uid: int, ids: tuple[int, int, int], report_w: int) -> None:
    """The starter: user (if not root) and PID namespaces, PID 1, then the worker.

    Runs in a child of the process that called :func:`enter`; returns in
    the worker, with every namespace set up. Failures go to ``report_w``
    as text, for the caller to raise.
    """
    outer = _netns_inode()
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
        _write("/proc/self/gid_map", f"0 {os.getegid()} 1")
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
    _private_files(inner_uid, inner_gid)
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


def enter(world: bool = True, kind: str = "shell", label: str = "") -> None:
    """Move this (single-threaded) process into a fresh sandbox.

    It returns in a new process, the sandbox's worker (three forks down),
    while the calling process stays outside as its supervisor: it waits,
    forwards signals, exits with the worker's status, and lists the lab
    for ``labkit shell --list`` meanwhile. When the supervisor dies, the
    kernel ends every process of the sandbox. With ``world``, the outside
    world (LAN, router, internet; see :mod:`labkit.core.stages`) is built.

    ``kind`` and ``label`` say what the lab belongs to (``"kernel"`` and
    the notebook's path, for example) in :mod:`labkit.kernel.labs`. File
    descriptors that are inheritable stay open in the worker.

    Examples
    --------
    >>> import subprocess
    >>> from labkit.kernel.sandbox import enter
    >>> enter()  # doctest: +SKIP
    >>> subprocess.run(["ip", "netns", "add", "red"], check=True)  # doctest: +SKIP
    """
    from labkit.kernel import labs, modules

    if os.environ.get(DISABLE):
        raise SandboxError(_DISABLED)
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
        if world:
            build_world()
        return
    # the supervisor
    os.close(report_w)
    with os.fdopen(report_r, "rb") as f:
        said = f.read()
    if said != b"\0":
        _wait(starter)
        if said.startswith(_REFUSED.encode()) and said[len(_REFUSED) :].isdigit():
            raise SandboxError(cannot_start(int(said[len(_REFUSED) :]), uid))
        who = "root" if uid == 0 else f"user {uid} (not root)"
        text = said.decode(errors="replace") or "it ended before it was ready"
        raise SandboxError(
            f"A labkit sandbox cannot start here: running as {who}, its namespaces were "
            f"made but setting them up failed ({text}). "
            + (f"{FIX_INTRO}, see what `labkit doctor` says." if uid == 0 else HOW_TO_FIX)
        )
    _supervise(starter, registry, kind, label)


def _supervise(starter: int, registry: Any, kind: str, label: str) -> None:
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


def build_world() -> None:
    """Build the outside world (LAN, router, internet) in this sandbox; say so if it fails.

    Examples
    --------
    >>> build_world()  # doctest: +SKIP
    """
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


def joined(outer: int, inner: int) -> None:
    """Finish joining a running sandbox (see :func:`labkit.kernel.labs.join`): its environment.

    Examples
    --------
    >>> joined(0, 0)  # doctest: +SKIP
    """
    _environment(outer, inner)


def run_in_sandbox(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run ``fn(*args, **kwargs)`` in a fresh sandbox and return its result.

    The call runs in a forked child that enters a new sandbox; the result
    (or the exception) comes back pickled. When it returns, the sandbox
    and everything in it are gone.

    Examples
    --------
    >>> import subprocess
    >>> from labkit.kernel.sandbox import run_in_sandbox
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
