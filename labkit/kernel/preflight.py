"""Where this process is, and whether a labkit sandbox can start here (and why not).

:func:`inside` tells whether this process runs in a sandbox, and
:func:`require` refuses to go on otherwise: every call that changes the
network goes through it. :func:`why_not` says why no sandbox can start
here, as one paragraph (why, then how to fix) that the CLI, the Jupyter
kernel, the Python API and ``labkit doctor`` all show; :func:`cannot_start`
writes it for the error of the ``unshare`` call that failed.

:func:`learner_ids` says who the learner is on the machine (the sandbox's
root), and :func:`learner_ids_exist` whether those ids exist here.

Everything here only reads the machine (``/proc``, the environment); the
one thing it starts is a throwaway child that tries ``unshare`` (and, in
its own namespaces, a ``/proc`` mount).

In a container, the paragraphs name the container option that is
missing (:func:`container`, :func:`no_fresh_proc`): README's "Run it in a
container" gives the least options measured for Docker and Podman.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from labkit.errors import SandboxError
from labkit.kernel import libc

#: the environment variable that marks a sandbox: "OUTER:INNER" network namespace inodes
ENV_MARK = "LABKIT_SANDBOX"
#: set to any value to act as if no sandbox could start (to see the message)
DISABLE = "LABKIT_DISABLE_SANDBOX"
#: where the sandbox's named network namespaces live (its own tmpfs)
NETNS_DIR = "/run/netns"
#: where userns_sysctls reads the sysctls
PROC_SYS = "/proc/sys"

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


DISABLED = (
    f"A labkit sandbox cannot start here: {DISABLE} is set (to show this message). "
    f"{FIX_INTRO}, unset {DISABLE}."
)


def userns_sysctls(proc_sys: str | None = None) -> list[tuple[str, str, bool, str]]:
    """The user namespace sysctls this kernel has, and whether each forbids them.

    Each is ``(name, value, forbids, allowing)``: ``allowing`` is the value
    that allows user namespaces. Read from ``/proc/sys``, as seen from this
    process's user namespace (``user.max_user_namespaces`` is set per user
    namespace, and limits the ones below it). ``proc_sys`` reads them from
    another folder (default :data:`PROC_SYS`).

    Examples
    --------
    >>> all(len(entry) == 4 for entry in userns_sysctls())
    True
    """
    proc_sys = PROC_SYS if proc_sys is None else proc_sys
    found = []
    for name, forbidding, allowing in USERNS_SYSCTLS:
        try:
            with open(os.path.join(proc_sys, *name.split("."))) as f:
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
    elif binder():
        return on_binder(said)
    elif container():
        return (
            f"A labkit sandbox cannot start here: it runs as user {uid}, not root, in a "
            f"container ({container()}) that refuses it new namespaces ({said}). Docker's "
            "default seccomp profile does that to a process without CAP_SYS_ADMIN. "
            f"{FIX_INTRO}, start the container with `--security-opt seccomp=unconfined` and "
            "`--security-opt systempaths=unconfined` (as README's container commands do); "
            "`--privileged` also works, as a last resort."
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


def netns_inode(path: str = "/proc/self/ns/net") -> int:
    """The inode of a network namespace (this process's, by default): its identity.

    Examples
    --------
    >>> netns_inode() == os.stat("/proc/self/ns/net").st_ino
    True
    """
    return os.stat(path).st_ino


def inside() -> bool:
    """Tell whether this process runs inside a labkit sandbox.

    True when the sandbox mark is in the environment and the current
    network namespace is not the one the sandbox was started from.

    Examples
    --------
    >>> inside() in (True, False)
    True
    """
    mark = os.environ.get(ENV_MARK, "")
    outer, _, _ = mark.partition(":")
    if not outer.isdigit():
        return False
    try:
        return netns_inode() != int(outer) and os.path.isdir(NETNS_DIR)
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


def _in_child(attempt: Callable[[], None]) -> int | None:
    """Run ``attempt`` in a throwaway child; return the errno it failed with, None if it worked."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        msg = b""
        try:
            attempt()
        except OSError as err:
            msg = str(err.errno or 1).encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    return int(out) if out else None


def try_unshare(flags: int) -> int | None:
    """Try ``unshare(flags)`` in a throwaway child; return its errno, None if it worked.

    Examples
    --------
    >>> try_unshare(0) is None
    True
    """
    return _in_child(lambda: libc.unshare(flags))


def why_not() -> str | None:
    """Say why a sandbox cannot start here, or None when it can.

    Examples
    --------
    >>> why_not() is None or isinstance(why_not(), str)
    True
    """
    if os.environ.get(DISABLE):
        return DISABLED
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
    failure = try_unshare(flags)
    if failure is not None:
        return cannot_start(failure)
    failure = try_fresh_proc()
    return None if failure is None else no_fresh_proc(failure)


def container() -> str | None:
    """Name the container engine this process runs under, or None on a machine or VM.

    Podman leaves ``/run/.containerenv``, Docker ``/.dockerenv``, and
    Kubernetes sets ``KUBERNETES_SERVICE_HOST`` in every container.

    Examples
    --------
    >>> container() in (None, "Podman", "Docker", "Kubernetes")
    True
    """
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "Kubernetes"
    if os.path.exists("/run/.containerenv"):
        return "Podman"
    if os.path.exists("/.dockerenv"):
        return "Docker"
    return None


def binder() -> str | None:
    """The address of the Binder service this runs on (mybinder.org, ...), or None.

    BinderHub sets ``BINDER_LAUNCH_HOST`` and ``BINDER_REPO_URL`` in every
    session it starts.

    Examples
    --------
    >>> binder() is None or binder().startswith("http")
    True
    """
    host = os.environ.get("BINDER_LAUNCH_HOST")
    if host:
        return host
    return "https://mybinder.org/" if os.environ.get("BINDER_REPO_URL") else None


def on_binder(said: str) -> str:
    """The paragraph for Binder, where no option can be added to the container.

    Examples
    --------
    >>> "stored outputs" in on_binder("unshare: Operation not permitted")
    True
    """
    return (
        f"A labkit sandbox cannot start on Binder ({binder()}): its containers hide parts "
        f"of /proc, refuse new namespaces or both, and a session cannot change that ({said}). "
        "The notebooks' stored outputs and pictures show what each step does; running a "
        f"cell here replaces them with this note. {FIX_INTRO}, run the course on a Linux "
        "machine or VM (`./run.sh course`), or in a container as README's \"Run it in a "
        'container" says.'
    )


def no_fresh_proc(errno: int) -> str:
    """The paragraph for a sandbox whose namespaces start but which gets no ``/proc`` of its own.

    Examples
    --------
    >>> import errno
    >>> "systempaths=unconfined" in no_fresh_proc(errno.EPERM)
    True
    """
    if binder():
        return on_binder(f"mount /proc: {os.strerror(errno)}")
    where = f"in a container ({container()})" if container() else "here"
    return (
        f"A labkit sandbox cannot start {where}: its namespaces start, but the kernel "
        f"refuses it a /proc of its own (mount /proc: {os.strerror(errno)}). The kernel does "
        "that where parts of /proc are hidden, as Docker and Podman hide them by default. "
        "Without its own /proc, learner code would see and reach the container's "
        f"processes. {FIX_INTRO}, start the container with `--security-opt "
        "systempaths=unconfined` (on Kubernetes: `procMount: Unmasked` in the container's "
        "securityContext, with `hostUsers: false`); `--privileged` also works, as a last "
        "resort."
    )


def try_fresh_proc() -> int | None:
    """Try, in throwaway namespaces, what a sandbox needs first: a ``/proc`` of its own.

    Returns the ``mount`` call's errno, or None if it worked. The child
    makes user (unless root), mount and PID namespaces, and its own child
    mounts a proc there; nothing outside changes.

    Examples
    --------
    >>> try_fresh_proc() in (None, 1, 13)
    True
    """
    return _in_child(_fresh_proc_here)


def _fresh_proc_here() -> None:
    """In a child: user (unless root), mount and PID namespaces, then a proc mount below."""
    uid, gid = os.geteuid(), os.getegid()
    flags = libc.CLONE_NEWNS | libc.CLONE_NEWPID
    libc.unshare(flags if uid == 0 else flags | libc.CLONE_NEWUSER)
    if uid != 0:
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"0 {uid} 1"),
            ("gid_map", f"0 {gid} 1"),
        ):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    child = os.fork()  # the first process of the new PID namespace
    if child == 0:  # pragma: no cover - runs in the grandchild
        try:
            libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
            libc.mount("proc", "/proc", "proc", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
        except OSError as err:
            os._exit(err.errno or 1)
        os._exit(0)
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    if code:
        raise OSError(code, os.strerror(code))


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


def ids_mapped(path: str, first: int, count: int) -> bool:
    """True when ids ``first`` to ``first + count - 1`` all exist in this user namespace.

    ``path`` is ``/proc/self/uid_map`` or ``gid_map``, whose lines say
    ``inside outside count``; an unreadable map counts as the machine's.

    Examples
    --------
    >>> ids_mapped("/proc/self/uid_map", os.geteuid(), 1)
    True
    >>> ids_mapped("/no/such/map", 0, 10)
    True
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
    return ids_mapped("/proc/self/uid_map", uid, count) and ids_mapped(
        "/proc/self/gid_map", gid, count
    )


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
