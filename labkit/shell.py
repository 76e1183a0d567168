"""``labkit shell`` and ``labkit run``: a shell in a sandbox, or in a running lab.

A new shell enters a fresh sandbox with the world built; ``--join`` and
``--auto`` (a JupyterLab terminal) join a running lab instead, so what the
terminal changes shows in the notebook. ``--list`` lists the running labs
with the stage each is at, read from its own kernel.

Examples
--------
>>> SHELL_PS1.split()[0]
'(labkit)'
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import sys
import time

from labkit import world
from labkit.kernel import labs, sandbox
from labkit.lab import Lab

PROG = "labkit"
SHELL_PS1 = r"(labkit) \u@\h:\w# "


def say(args: argparse.Namespace, text: str = "", *, err: bool = False) -> None:
    """Print ``text`` (to stderr with ``err``) unless ``--quiet``.

    Examples
    --------
    >>> say(argparse.Namespace(quiet=False), "hello")
    hello
    """
    if not args.quiet:
        print(text, file=sys.stderr if err else sys.stdout)


def enter(kind: str = "run") -> None:
    """Enter a fresh sandbox with the world built (returns in a new process).

    Examples
    --------
    >>> enter("shell")  # doctest: +SKIP
    """
    sys.stdout.flush()
    sys.stderr.flush()
    sandbox.enter(world.build, kind=kind)


def exec_argv(argv: list[str]) -> int:
    """Replace this process with ``argv``; on failure say why like a shell does.

    Examples
    --------
    >>> exec_argv(["no-such-command-here"])
    127
    """
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        print(f"{PROG}: error: {argv[0]}: command not found", file=sys.stderr)
        return 127
    except OSError as err:
        print(f"{PROG}: error: {argv[0]}: {err.strerror}", file=sys.stderr)
        return 126
    return 0  # pragma: no cover - execvp does not return


def shell_argv() -> list[str]:
    """The learner's shell, interactive, with labkit's prompt (set in ``PS1``).

    Examples
    --------
    >>> shell_argv()[-1]
    '-i'
    """
    shell = os.environ.get("SHELL") or "/bin/bash"
    if not shutil.which(shell):
        shell = "/bin/bash" if shutil.which("/bin/bash") else "/bin/sh"
    bash = os.path.basename(shell) == "bash"
    os.environ["PS1"] = SHELL_PS1 if bash else "(labkit) # "
    return [shell, "--norc", "-i"] if bash else [shell, "-i"]


def stage_of(entry: labs.Entry, timeout: float = 10.0) -> str:
    """The stage a running lab is at, read from its kernel (``?`` if that fails).

    A forked child joins the lab and asks :meth:`labkit.Lab.stage`; this
    process stays where it is.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        text = "?"
        try:
            sandbox.join(entry)
            if os.fork() == 0:  # into the lab's PID namespace: its /proc is ours then
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


def lab_table(entries: list[labs.Entry]) -> list[str]:
    """The running labs as aligned rows: ID, LAB, STAGE, AGE.

    Examples
    --------
    >>> lab_table([])
    ['ID  LAB  STAGE  AGE']
    """
    rows = [["ID", "LAB", "STAGE", "AGE"]]
    for entry in entries:
        rows.append([str(entry.id), entry.name, stage_of(entry), labs.age(entry)])
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return ["  ".join([*(r[i].ljust(widths[i]) for i in range(3)), r[3]]) for r in rows]


def command(args: argparse.Namespace) -> int:
    """``labkit shell``: list labs, join one, or start a fresh sandbox's shell.

    Examples
    --------
    >>> command(argparse.Namespace(list=True, quiet=False))  # doctest: +SKIP
    no lab is running (a notebook on the labkit kernel, or `labkit shell`)
    0
    """
    if args.list:
        entries = labs.running()
        if not entries:
            say(args, "no lab is running (a notebook on the labkit kernel, or `labkit shell`)")
            return 0
        print("\n".join(lab_table(entries)))
        return 0
    if args.auto:
        # A JupyterLab terminal starts where the server was started; the
        # learner expects the course folder (the server's root).
        root = os.environ.get("JUPYTER_SERVER_ROOT", "")
        here = os.getcwd()
        if root and os.path.isdir(root) and not (here + "/").startswith(root.rstrip("/") + "/"):
            os.chdir(root)
    entry = None
    if args.join:
        entry = labs.find(args.join)
    elif args.auto:
        entry = labs.latest(labs.KERNEL)
    if entry is None:
        enter(kind="terminal" if args.auto else "shell")
        if args.auto:
            first = (
                "labkit: no notebook runs on the labkit kernel, so this terminal has a fresh "
                "sandbox of its own. Open a notebook, then a new terminal, to share its lab."
            )
        else:
            first = (
                "labkit: this shell runs in a sandbox, a private host with its own network: "
                "`ip netns`, `sudo ip ...`, `labkit up STAGE` and the like work here and "
                "change nothing outside; `exit` ends it and everything in it."
            )
        say(args, first, err=True)
        return exec_argv(shell_argv())
    count = len(labs.running())
    say(
        args,
        f"labkit: this terminal joined the lab of {entry.name} (lab {entry.id}, started "
        f"{labs.age(entry)} ago): what you change here shows there, and back"
        + (f"; `labkit shell --list` lists all {count} running labs." if count > 1 else "."),
        err=True,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    return sandbox.spawn_joined(entry, shell_argv(), cwd=os.getcwd())
