"""The running labs of this machine: a registry that each sandbox adds itself to.

Every sandbox (a notebook's kernel, ``labkit shell``, ``labkit run``) is
listed, while it runs, in a small registry that only its owner can write:
``/run/labkit/labs`` for root, ``$XDG_RUNTIME_DIR/labkit/labs`` or
``/tmp/labkit-UID/labs`` for anybody else. An entry names the sandbox's
worker process (pid and start time, so a reused pid is never mistaken
for it), what kind of lab it is and, for a kernel, its notebook.

This module only reads and writes that registry and ``/proc``; joining a
running lab (``labkit shell --auto``, ``labkit shell --join ID``) is
:func:`labkit.kernel.sandbox.join`'s.
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass

from labkit.errors import ConfigError

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
        """The notebook's name, or the kind of lab (``shell``, ``run``, ``kernel``).

        Examples
        --------
        >>> Entry(1, 2, 3, "shell", "", 0.0).name
        'shell'
        """
        return os.path.basename(self.label) if self.label else self.kind

    def alive(self) -> bool:
        """True while the lab's worker process is the one listed.

        Examples
        --------
        >>> Entry(1, os.getpid(), -1, "shell", "", 0.0).alive()  # this pid started at another time
        False
        """
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
        """This user's registry (None when it cannot be made or is not safe).

        Examples
        --------
        >>> isinstance(Registry.open(create=False), (Registry, type(None)))
        True
        """
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
        """Close the directory.

        Examples
        --------
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Registry(os.open(d, os.O_RDONLY | os.O_DIRECTORY)).close()
        """
        os.close(self.fd)

    def add(self, starter: int, kind: str, label: str) -> str | None:
        """List the sandbox whose starter process is ``starter``; return the entry's name.

        Entries of labs that ended without taking themselves off the list
        (their supervisor was killed) are removed on the way.

        Examples
        --------
        >>> Registry.open().add(os.getpid(), "shell", "")  # doctest: +SKIP
        '4242.json'
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
        """Take a lab off the list (nothing happens when it is not on it).

        Examples
        --------
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Registry(os.open(d, os.O_RDONLY | os.O_DIRECTORY)).remove("1.json")
        """
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass

    def entries(self) -> list[Entry]:
        """The running labs, oldest first; stale entries are removed.

        Examples
        --------
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Registry(os.open(d, os.O_RDONLY | os.O_DIRECTORY)).entries()
        []
        """
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
