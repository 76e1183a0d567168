"""The sandbox's own file system, set up by its PID 1 before the learner exists.

:func:`private_files` gives a new mount namespace its own ``/proc``,
``/run`` (with ``/run/netns``), ``/dev/shm`` and ``/etc/resolv.conf``, a
``/sys`` where the machine has none, the ``sudo``, ``labkit`` and
``python3`` shims in :data:`BIN_DIR` and a home for the learner
(:data:`HOME_DIR`). Made above the learner's user namespace, every one of
these mounts is locked there: the learner cannot unmount them to see what
lies beneath.

When root starts the sandbox, the learner is another user than the files'
owner; :func:`make_reachable` opens the way to labkit and its Python for
them, and to nothing else of the folders on the way.
"""

from __future__ import annotations

import os
import shlex
import sys

from labkit.kernel import libc
from labkit.kernel.preflight import NETNS_DIR, sysfs_mounted

#: the shims on the sandbox's PATH (sudo, labkit, python3)
BIN_DIR = "/run/labkit/bin"
#: the learner's home when the machine's is not theirs (root's)
HOME_DIR = "/run/labkit/home"

MS_NOSUID, MS_NODEV, MS_NOEXEC = libc.MS_NOSUID, libc.MS_NODEV, libc.MS_NOEXEC

SUDO_SHIM = """#!/bin/sh
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


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def mount_sysfs() -> None:
    """Mount a sysfs of this process's network namespace on ``/sys``.

    Examples
    --------
    >>> mount_sysfs()  # doctest: +SKIP
    """
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    try:
        libc.mount("sysfs", "/sys", "sysfs", flags)
    except PermissionError:
        # A container's /sys is read-only and locked: the kernel lets a
        # user namespace mount a new sysfs only read-only too.
        libc.mount("sysfs", "/sys", "sysfs", flags | libc.MS_RDONLY)


class ProcRefused(OSError):
    """The kernel refused the sandbox a ``/proc`` of its own (see :func:`fresh_proc`)."""


def fresh_proc() -> None:
    """Mount a ``/proc`` of this process's PID namespace on ``/proc``.

    Without it, ``ps``, ``kill`` and ``/proc/PID`` would show and number
    the processes of the machine (or container) instead of the sandbox's,
    and learner code could reach them. A container that masks parts of
    its ``/proc`` (Docker's and Podman's default) makes the kernel refuse
    the mount; this raises :class:`ProcRefused` then.

    Examples
    --------
    >>> fresh_proc()  # doctest: +SKIP
    """
    try:
        libc.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as err:
        raise ProcRefused(err.errno, f"mount /proc: {os.strerror(err.errno)}") from None


def _package_parent() -> str:
    """The folder that holds the ``labkit`` package (what PYTHONPATH needs)."""
    kernel = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(os.path.dirname(kernel))


def _bins() -> list[tuple[str, str]]:
    # The labkit that started the sandbox, under its usual name, for
    # `labkit up veth` in a shell or a notebook's `!` cell; and python3, so
    # that `python3 -m labkit.webapp` (the port-forward stage's command)
    # finds labkit whichever python3 comes first on the machine's PATH.
    here = _package_parent()
    pythonpath = f"PYTHONPATH={shlex.quote(here)}${{PYTHONPATH:+:$PYTHONPATH}}"
    python = shlex.quote(sys.executable)
    return [
        ("sudo", SUDO_SHIM),
        ("labkit", f'#!/bin/sh\n{pythonpath} exec {python} -m labkit "$@"\n'),
        ("python3", f'#!/bin/sh\n{pythonpath} exec {python} "$@"\n'),
    ]


def _needed_paths() -> list[str]:
    """What a sandbox's learner must reach: labkit, this Python and its environment, the cwd."""
    paths = [
        _package_parent(),
        sys.prefix,
        sys.base_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
    ]
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
                    libc.mount("tmpfs", current, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
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


def private_files(uid: int, gid: int) -> None:
    """Set up the sandbox's mount namespace while still privileged over it.

    Called by PID 1 of the sandbox, in a mount namespace of its own, before
    anything enters the learner's user namespace, so that every mount made
    here is *locked* there: the learner cannot unmount ``/proc``, ``/sys``,
    ``/run`` or ``/run/netns`` to see what lies beneath. ``uid``/``gid``
    own what the learner writes (in this namespace's terms).

    Examples
    --------
    >>> private_files(0, 0)  # doctest: +SKIP
    """
    libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
    # A /proc of the new PID namespace: ps, pgrep and kill see and name the
    # sandbox's processes only. No sandbox without it (ProcRefused).
    fresh_proc()
    if not sysfs_mounted():
        # In a user namespace the kernel mounts a sysfs only where one is
        # visible already; as root, give the sandbox one.
        mount_sysfs()
    if uid != 0:  # root started it: the learner is another user than the files' owner
        try:
            _make_reachable(_needed_paths())
        except OSError:
            pass  # what stays out of reach fails inside, with its own message
    owner = f"uid={uid},gid={gid}"
    # /run is the sandbox's own: the machine's sockets and named namespaces stay outside.
    libc.mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    os.mkdir(NETNS_DIR)
    libc.mount("tmpfs", NETNS_DIR, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0755,{owner}")
    try:
        libc.mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    except OSError:
        pass
    top = os.path.dirname(BIN_DIR)
    os.mkdir(top)
    libc.mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0755,{owner}")
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
