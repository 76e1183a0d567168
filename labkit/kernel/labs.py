"""The running labs of this machine, and how a terminal joins one.

Every sandbox (a notebook's kernel, ``labkit shell``, ``labkit run``) is
listed, while it runs, in a small registry that only its owner can write:
``/run/labkit/labs`` for root, ``$XDG_RUNTIME_DIR/labkit/labs`` or
``/tmp/labkit-UID/labs`` for anybody else. An entry names the sandbox's
worker process (pid and start time, so a reused pid is never mistaken
for it), what kind of lab it is and, for a kernel, its notebook.

:func:`join` moves the calling process into a running lab's namespaces
(user, mount, PID, network, UTS, IPC), as the same unprivileged learner:
that is how a JupyterLab terminal shares the notebook's lab
(``labkit shell --auto``, ``labkit shell --join ID``).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import stat
import time
from dataclasses import dataclass

from labkit.errors import ConfigError, SandboxError
from labkit.kernel import libc

#: what --auto joins: the most recently started lab of this kind
KERNEL = "kernel"


def registry_dir(uid: int | None = None) -> str:
    """Where this user's labs are listed.

    Examples
    --------
    >>> registry_dir(0)
    '/run/labkit/labs'
    >>> registry_dir(1000).endswith("/labs")
    True
    """
    uid = os.geteuid() if uid is None else uid
    if uid == 0:
        return "/run/labkit/labs"
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    try:
        if runtime and os.stat(runtime).st_uid == uid:
            return os.path.join(runtime, "labkit", "labs")
    except OSError:
        pass
    return f"/tmp/labkit-{uid}/labs"


@dataclass(frozen=True)
class Entry:
    """One running lab, as listed in the registry.

    Examples
    --------
    >>> e = Entry(id=42, pid=45, start=1234, kind="kernel", label="01-veth-pair.ipynb",
    ...           created=0.0)
    >>> e.name
    '01-veth-pair.ipynb'
    """

    id: int
    pid: int
    start: int
    kind: str
    label: str
    created: float

    @property
    def name(self) -> str:
        """The notebook's name, or the kind of lab (``shell``, ``run``, ``kernel``)."""
        return os.path.basename(self.label) if self.label else self.kind

    def alive(self) -> bool:
        """True while the lab's worker process is the one listed."""
        return _start_time(self.pid) == self.start


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _start_time(pid: int) -> int | None:
    try:
        return int(_stat(pid)[19])
    except (OSError, ValueError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return sorted(found)


class Registry:
    """The directory of running labs, opened before the sandbox hides /run.

    Examples
    --------
    >>> reg = Registry.open()  # doctest: +SKIP
    >>> [e.name for e in reg.entries()]  # doctest: +SKIP
    ['01-veth-pair.ipynb']
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls, create: bool = True) -> Registry | None:
        """This user's registry (None when it cannot be made or is not safe)."""
        path = registry_dir()
        uid = os.geteuid()
        try:
            if create:
                parent = os.path.dirname(path)
                for d in (parent, path):
                    try:
                        os.mkdir(d, 0o755 if uid == 0 else 0o700)
                    except FileExistsError:
                        pass
            st = os.lstat(path)
            parent_st = os.lstat(os.path.dirname(path))
        except OSError:
            return None
        for s in (st, parent_st):
            # only a folder of this user that nobody else may write is trusted
            if not stat.S_ISDIR(s.st_mode) or s.st_uid != uid or s.st_mode & 0o022:
                return None
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return cls(fd)

    def close(self) -> None:
        """Close the directory."""
        os.close(self.fd)

    def add(self, starter: int, kind: str, label: str) -> str | None:
        """List the sandbox whose starter process is ``starter``; return the entry's name.

        Entries of labs that ended without taking themselves off the list
        (their supervisor was killed) are removed on the way.
        """
        self.entries()
        reapers = _children(starter)
        workers = _children(reapers[0]) if reapers else []
        if not workers:
            return None
        worker = workers[0]
        start = _start_time(worker)
        if start is None:
            return None
        data = {
            "id": os.getpid(),
            "pid": worker,
            "start": start,
            "kind": kind,
            "label": label,
            "created": time.time(),
        }
        name = f"{os.getpid()}.json"
        tmp = f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=self.fd)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        return name

    def remove(self, name: str) -> None:
        """Take a lab off the list."""
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass

    def entries(self) -> list[Entry]:
        """The running labs, oldest first; stale entries are removed."""
        out = []
        for name in os.listdir(self.fd):
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                fd = os.open(name, os.O_RDONLY, dir_fd=self.fd)
                with os.fdopen(fd) as f:
                    data = json.load(f)
                entry = Entry(
                    int(data["id"]),
                    int(data["pid"]),
                    int(data["start"]),
                    str(data["kind"]),
                    str(data.get("label", "")),
                    float(data["created"]),
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if entry.alive():
                out.append(entry)
            else:
                self.remove(name)
        return sorted(out, key=lambda e: (e.created, e.id))


def running() -> list[Entry]:
    """The labs this user runs now, oldest first.

    Examples
    --------
    >>> isinstance(running(), list)
    True
    """
    registry = Registry.open(create=False)
    if registry is None:
        return []
    try:
        return registry.entries()
    finally:
        registry.close()


def find(lab_id: str | int) -> Entry:
    """The running lab with this id (what ``labkit shell --list`` shows).

    Examples
    --------
    >>> find("0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labkit.errors.ConfigError: no running lab has id '0': `labkit shell --list` ...
    """
    for entry in running():
        if str(entry.id) == str(lab_id):
            return entry
    raise ConfigError(
        f"no running lab has id {str(lab_id)!r}: `labkit shell --list` shows the running labs"
    )


def latest(kind: str = KERNEL) -> Entry | None:
    """The most recently started running lab of this kind, if any.

    Examples
    --------
    >>> latest("no such kind") is None
    True
    """
    found = [e for e in running() if e.kind == kind]
    return found[-1] if found else None


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


def join(entry: Entry) -> None:
    """Move this single-threaded process into the lab's namespaces, as its learner.

    Afterwards this process is root of the lab's user namespace (an
    unprivileged user on the machine), sees the lab's files, network and
    hostname, and its *children* are in the lab's PID namespace, so they
    end with the lab. The environment is the sandbox's (``PATH`` with the
    ``sudo`` shim, the sandbox mark).

    Examples
    --------
    >>> join(latest())  # doctest: +SKIP
    """
    from labkit.kernel import sandbox

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
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
    except OSError as err:
        raise SandboxError(f"cannot join lab {entry.id}: {err}") from None
    finally:
        for fd in fds:
            os.close(fd)
    sandbox.joined(outer, inner)


def spawn_joined(entry: Entry, argv: list[str], cwd: str | None = None) -> int:
    """Run ``argv`` inside a running lab and return its exit status (as a shell would).

    This process joins the lab (:func:`join`), forks the command into the
    lab's PID namespace, forwards signals to it and waits.

    Examples
    --------
    >>> spawn_joined(latest(), ["ip", "netns"])  # doctest: +SKIP
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
    from labkit.kernel import sandbox

    return sandbox.wait_child(pid)


def age(entry: Entry, now: float | None = None) -> str:
    """How long ago a lab started, in words.

    Examples
    --------
    >>> age(Entry(1, 2, 3, "shell", "", 100.0), now=250.0)
    '2 min'
    >>> age(Entry(1, 2, 3, "shell", "", 100.0), now=110.0)
    '10 s'
    """
    seconds = max(0, int((time.time() if now is None else now) - entry.created))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def stage_of(entry: Entry, timeout: float = 10.0) -> str:
    """The stage a running lab is at, read from its kernel (``?`` if that fails).

    A forked child joins the lab and asks :meth:`labkit.Lab.stage`; this
    process stays where it is.

    Examples
    --------
    >>> stage_of(latest())  # doctest: +SKIP
    'veth'
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        text = "?"
        try:
            join(entry)
            if os.fork() == 0:  # into the lab's PID namespace: its /proc is ours then
                from labkit.lab import Lab

                text = Lab().stage() or "none (changed by hand)"
            else:
                os.close(w)
                os.wait()
                os._exit(0)
        except Exception:  # noqa: BLE001 - a row of a listing, not an error
            text = "?"
        finally:
            if text:
                os.write(w, text.encode())
            os._exit(0)
    os.close(w)
    deadline = time.monotonic() + timeout
    chunks = []
    try:
        while time.monotonic() < deadline:
            ready = select.select([r], [], [], max(0.0, deadline - time.monotonic()))[0]
            if not ready:
                break
            chunk = os.read(r, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    return b"".join(chunks).decode(errors="replace") or "?"
