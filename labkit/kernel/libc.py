"""Thin ctypes wrappers for the Linux system calls labkit needs.

Python 3.11 has no ``os.unshare``/``os.setns`` and no ``mount``; these
wrappers raise :class:`OSError` with the errno on failure, like the
``os`` module does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    """Move the calling thread (or process) into new namespaces.

    Examples
    --------
    >>> unshare(CLONE_NEWNET)  # doctest: +SKIP
    """
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """Move the calling thread into the namespace that ``fd`` refers to.

    Examples
    --------
    >>> fd = os.open("/proc/self/ns/net", os.O_RDONLY)  # doctest: +SKIP
    >>> setns(fd, CLONE_NEWNET)  # doctest: +SKIP
    """
    _check(_libc.setns(fd, nstype), "setns")


def mount(
    source: str | None,
    target: str,
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """Call mount(2).

    Examples
    --------
    >>> mount("tmpfs", "/run", "tmpfs", 0, "mode=0755")  # doctest: +SKIP
    """
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    """Call umount2(2), lazily by default.

    Examples
    --------
    >>> umount("/run/netns/red")  # doctest: +SKIP
    """
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def set_parent_death_signal(sig: int) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies.

    Examples
    --------
    >>> import signal
    >>> set_parent_death_signal(signal.SIGKILL)  # doctest: +SKIP
    """
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl")


def set_dumpable(on: bool) -> None:
    """Say whether this process may be traced and its /proc files read by its user.

    Examples
    --------
    >>> set_dumpable(True)  # doctest: +SKIP
    """
    _check(_libc.prctl(PR_SET_DUMPABLE, 1 if on else 0, 0, 0, 0), "prctl")


def sethostname(name: str) -> None:
    """Call sethostname(2) (the UTS namespace's hostname).

    Examples
    --------
    >>> sethostname("host")  # doctest: +SKIP
    """
    data = name.encode()
    _check(_libc.sethostname(data, len(data)), "sethostname")
