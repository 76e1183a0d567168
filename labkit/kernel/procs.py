"""Ending the processes of a namespace, and the strays of namespaces deleted by hand.

Examples
--------
>>> kill_processes_in(0)
0
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


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
    from labkit.kernel.preflight import ENV_MARK

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
