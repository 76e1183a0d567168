"""The ``labkit`` Jupyter kernel: an IPython kernel inside a fresh sandbox.

Jupyter (JupyterLab, nbclient, nbval) talks to kernels over TCP on
127.0.0.1, which does not cross network namespaces. So the kernel starts
in this order:

1. :func:`labkit.sandbox.enter_private` while the process is still
   single-threaded (user, mount and PID namespaces; it continues in a
   child process, PID 2 of the sandbox);
2. ipykernel binds its ZMQ sockets: they stay in the machine's network
   namespace, where Jupyter can reach them;
3. :func:`labkit.sandbox.enter_network` moves the main thread, which runs
   the cells, into the sandbox's own network namespace, "the host";
4. the kernel starts serving.

So every notebook gets a private host, a kernel restart gives a clean
machine, and ``!sudo ip netns add red`` in a cell touches only the
sandbox. When no sandbox can start, the kernel still starts (so the
notebook can say why, without a traceback) but ``ip``, ``iptables`` and
``sudo`` are replaced by a short explanation, and labkit refuses to act.

Install the kernelspec with ``python -m labkit.jupyter install``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from labkit import sandbox
from labkit.errors import LabkitError, SandboxError

KERNEL_NAME = "labkit"
DISPLAY_NAME = "labkit (sandboxed Python 3)"
_REFUSED = ("sudo", "ip", "iptables", "nft", "ping", "arp", "route")


_KEEP: list[int] = []


def _remove_when_gone(path: str) -> None:
    """Remove ``path`` when this process ends, even by SIGKILL.

    A small shell waits on a pipe whose other end only this process holds
    (pipes are close-on-exec, so ``!`` commands do not hold it); at EOF it
    removes ``path``. It runs in a session of its own, so Jupyter killing
    the kernel's process group leaves it to do its job.
    """
    r, w = os.pipe()
    subprocess.Popen(
        ["/bin/sh", "-c", 'read _ ; rm -rf -- "$1"', "labkit-cleanup", path],
        stdin=r,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(r)
    _KEEP.append(w)


def _refuse_tools(reason: str) -> None:
    """Put stand-ins for the network tools first on PATH that explain why not."""
    bin_dir = tempfile.mkdtemp(prefix="labkit-nosandbox-")
    _remove_when_gone(bin_dir)
    message = shlex.quote(f"not run: this kernel has no sandbox. {reason}")
    for tool in _REFUSED:
        path = os.path.join(bin_dir, tool)
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\necho {tool}: {message} >&2\nexit 1\n")
        os.chmod(path, 0o755)
    os.environ["PATH"] = bin_dir + ":" + os.environ.get("PATH", "")


def launch(argv: list[str] | None = None) -> None:
    """Start the sandboxed kernel (what the kernelspec runs).

    Examples
    --------
    >>> from labkit.jupyter import launch
    >>> launch(["-f", "/tmp/kernel.json"])  # doctest: +SKIP
    """
    reason = None
    try:
        sandbox.enter_private()
    except SandboxError as err:
        reason = str(err)
    # We now run two forks below the process Jupyter started, which stays
    # and waits for us (and takes us down when it dies); ipykernel's parent
    # poller would misread our parent, PID 1 of the sandbox. "1" turns the
    # poller off.
    os.environ["JPY_PARENT_PID"] = "1"
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    # Pictures inline: lab.draw() returns a Figure made without pyplot,
    # which IPython shows as a PNG once the inline backend is set up.
    app.initialize([*(sys.argv[1:] if argv is None else argv), "--matplotlib=inline"])
    if reason is None:
        try:
            sandbox.enter_network()
        except SandboxError as err:
            reason = str(err)
    if reason is not None:
        os.environ["LABKIT_NO_SANDBOX"] = reason
        _refuse_tools(reason)
        print(f"labkit: {reason}", file=sys.__stderr__, flush=True)
    if app.shell is not None:
        app.shell.set_custom_exc((LabkitError,), _show_labkit_error)
    app.start()


def _show_labkit_error(
    shell: object, etype: type, value: BaseException, tb: object, **kw: object
) -> None:
    """Show labkit's own errors as one plain paragraph: they say what to do."""
    print(f"{etype.__name__}: {value}", file=sys.stderr)


def kernelspec(python: str | None = None) -> dict:
    """The kernel.json content for the ``labkit`` kernel.

    Examples
    --------
    >>> kernelspec("/usr/bin/python3")["argv"][:3]
    ['/usr/bin/python3', '-m', 'labkit.jupyter']
    """
    return {
        "argv": [python or sys.executable, "-m", "labkit.jupyter", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": False},
    }


def install(user: bool = False, prefix: str | None = None) -> str:
    """Install the ``labkit`` kernelspec; returns where it went.

    By default into this Python environment (``sys.prefix``), so a
    virtual environment's Jupyter finds it.

    Examples
    --------
    >>> from labkit.jupyter import install
    >>> install()  # doctest: +SKIP
    '/path/to/venv/share/jupyter/kernels/labkit'
    """
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "kernel.json"), "w") as f:
            json.dump(kernelspec(), f, indent=1)
        logo = _logo()
        if logo:
            shutil.copy(logo, os.path.join(tmp, "logo-64x64.png"))
        if not user and prefix is None:
            prefix = sys.prefix
        return KernelSpecManager().install_kernel_spec(
            tmp, KERNEL_NAME, user=user, prefix=None if user else prefix
        )


def _logo() -> str | None:
    try:
        import ipykernel

        path = os.path.join(os.path.dirname(ipykernel.__file__), "resources", "logo-64x64.png")
        return path if os.path.exists(path) else None
    except ImportError:  # pragma: no cover
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.jupyter install`` or the kernel itself (``-f FILE``).

    Examples
    --------
    >>> from labkit.jupyter import main
    >>> main(["install", "--user"])  # doctest: +SKIP
    0
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "install":
        parser = argparse.ArgumentParser(
            prog="python -m labkit.jupyter install",
            description="Install the 'labkit' Jupyter kernel (a sandboxed IPython kernel).",
        )
        parser.add_argument("--user", action="store_true", help="install for this user only")
        parser.add_argument("--prefix", help="install under this prefix (default: sys.prefix)")
        args = parser.parse_args(argv[1:])
        print(install(user=args.user, prefix=args.prefix))
        return 0
    launch(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
