"""The ``labkit`` Jupyter kernel: an IPython kernel inside a fresh sandbox.

Jupyter (JupyterLab, nbclient, nbval) talks to kernels over TCP on
127.0.0.1, which does not cross network namespaces. So the kernel starts
in this order:

1. still outside, as the user who started Jupyter, the launcher reads the
   connection file and opens the five listening TCP sockets Jupyter will
   connect to, in the machine's network namespace;
2. :func:`labkit.kernel.sandbox.enter` moves the kernel, whole, into a fresh
   sandbox (user, mount, PID, network, UTS and IPC namespaces); the
   launcher stays outside as its supervisor;
3. ipykernel binds its ZMQ sockets *on those listening sockets*
   (``ZMQ_USE_FD``), so no thread of the kernel needs the machine's
   network namespace, and learner code cannot reach it;
4. the outside world is built (:func:`labkit.world.build`) and the kernel
   starts serving.

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
import socket
import subprocess
import sys
import tempfile
from typing import Any

from labkit import world
from labkit.errors import LabkitError, SandboxError
from labkit.kernel import mounts, sandbox

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


def _connection_file(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg in ("-f", "--f") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(("-f=", "--f=")):
            return arg.split("=", 1)[1]
    return None


_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def _listen(info: dict) -> dict[int, int]:
    """Open Jupyter's five listening sockets here, outside: port -> fd (inheritable).

    TCP ports on ``ip``, or, with ``"transport": "ipc"``, Unix sockets at
    ``IP-PORT`` (paths in the user's runtime folder, which the sandbox may
    not see). The classroom uses ipc: thirty servers picking free TCP ports
    at the same moment on one machine sometimes pick the same one.
    """
    transport = info.get("transport", "tcp")
    if transport not in ("tcp", "ipc"):
        return {}
    ip = info.get("ip") or "127.0.0.1"
    ip = "" if ip in ("*", "0.0.0.0") else ip
    fds = {}
    for key in _PORTS:
        port = int(info.get(key) or 0)
        if port <= 0:
            continue
        if transport == "ipc":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            path = f"{ip}-{port}"
            if os.path.exists(path):
                os.unlink(path)  # as ZMQ does: a socket file left by an earlier run
            s.bind(path)
        else:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, port))
        s.listen(128)
        fd = s.detach()
        os.set_inheritable(fd, True)
        fds[port] = fd
    return fds


def _bind_on(fds: dict[int, int]) -> None:
    """Make ZMQ bind Jupyter's ports on the sockets opened outside (``ZMQ_USE_FD``)."""
    import zmq

    original = zmq.Socket.bind

    def bind(self: zmq.Socket, addr: str):  # type: ignore[no-untyped-def]
        if addr.startswith("tcp://"):
            port = addr.rsplit(":", 1)[-1]
        elif addr.startswith("ipc://"):
            port = addr.rsplit("-", 1)[-1]
        else:
            port = ""
        fd = fds.pop(int(port), None) if port.isdigit() else None
        if fd is not None:
            self.setsockopt(zmq.USE_FD, fd)
        return original(self, addr)

    zmq.Socket.bind = bind  # type: ignore[method-assign]


def launch(argv: list[str] | None = None) -> None:
    """Start the sandboxed kernel (what the kernelspec runs).

    Examples
    --------
    >>> from labkit.jupyter import launch
    >>> launch(["-f", "/tmp/kernel.json"])  # doctest: +SKIP
    """
    args = list(sys.argv[1:] if argv is None else argv)
    path = _connection_file(args)
    reason = None
    fds: dict[int, int] = {}
    info: dict = {}
    try:
        if path:
            with open(path) as f:
                info = json.load(f)
            fds = _listen(info)
        # bare: the world is built once ipykernel is set up (below)
        sandbox.enter(kind="kernel", label=os.environ.get("JPY_SESSION_NAME", ""))
    except SandboxError as err:
        reason = str(err)
        for fd in fds.values():
            os.close(fd)
        fds = {}
    except (OSError, ValueError) as err:
        reason = f"the kernel could not open its ports: {err}"
        fds = {}
    if reason is None and path:
        # The connection file may sit where the learner cannot read it (root's
        # home): a copy in the sandbox, with the same ports and key.
        inside = os.path.join(mounts.HOME_DIR, "kernel-connection.json")
        with open(os.open(inside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(info, f)
        args = [inside if a == path else a.replace(path, inside) for a in args]
        _bind_on(fds)
    # We now run three forks below the process Jupyter started, which stays
    # and waits for us (and takes us down when it dies); ipykernel's parent
    # poller would misread our parent, PID 1 of the sandbox. "1" turns the
    # poller off.
    os.environ["JPY_PARENT_PID"] = "1"
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(args)
    if app.shell is not None:
        _figures_inline(app.shell)
    if reason is None:
        world.build()
    if reason is not None:
        os.environ["LABKIT_NO_SANDBOX"] = reason
        _refuse_tools(reason)
        print(f"labkit: {reason}", file=sys.__stderr__, flush=True)
    if app.shell is not None:
        app.shell.set_custom_exc((LabkitError,), _show_labkit_error)
    app.start()


def _figures_inline(shell: Any) -> None:
    """Show a matplotlib Figure as a PNG, without importing matplotlib now.

    ``lab.draw()`` returns a Figure made without pyplot, which IPython shows
    only once a formatter for Figure is registered. ``--matplotlib=inline``
    would register it at start, and import matplotlib to do so (half a
    second and some 30 MiB per kernel, measured by ``bench/classroom.py
    --kernels``). Registered by name, the formatter costs nothing until the
    first figure. pyplot still draws inline: ipykernel makes the inline
    backend the default, and it registers its own formatter on first use.

    labkit's own figures (:class:`labkit.draw.figure.LabkitFigure`) bring
    their picture, its ``<img alt>`` and their description themselves
    (``_repr_mimebundle_``): the formatter leaves them be, so the picture
    is drawn once. Any other Figure with a ``labkit_alt`` (one that
    :func:`labkit.draw.draw` drew into) gets it as its PNG's ``alt``.

    Examples
    --------
    >>> from IPython.core.interactiveshell import InteractiveShell
    >>> _figures_inline(InteractiveShell.instance())  # doctest: +SKIP
    """

    def png(figure: Any) -> Any:
        from IPython.core.pylabtools import print_figure

        data = print_figure(figure, fmt="png", bbox_inches="tight", base64=True)
        alt = getattr(figure, "labkit_alt", "")
        return (data, {"alt": " ".join(alt.split())}) if alt else data

    def own(figure: Any) -> None:
        return None  # the figure's own bundle has its PNG

    formatter = shell.display_formatter.formatters["image/png"]
    formatter.for_type_by_name("matplotlib.figure", "Figure", png)
    formatter.for_type_by_name("labkit.draw.figure", "LabkitFigure", own)


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
    """Install the ``labkit`` kernelspec and the course's JupyterLab settings.

    By default into this Python environment (``sys.prefix``), so a
    virtual environment's Jupyter finds it. The settings
    (:func:`install_server_config`) make every JupyterLab terminal run
    ``labkit shell --auto``, start notebooks on the ``labkit`` kernel,
    serve files with :class:`labkit.server.ConfinedContentsManager` and
    switch off the news pop-up. Returns where the kernelspec went.

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
        os.chmod(tmp, 0o755)  # a copy of a temporary folder would be for us alone
        where = KernelSpecManager().install_kernel_spec(
            tmp, KERNEL_NAME, user=user, prefix=None if user else prefix
        )
    if not user:
        # JupyterLab of this environment: terminals in the sandbox, no news pop-up
        install_server_config(prefix)
    return where


#: the JupyterLab settings that switch off the news pop-up and update check
LAB_OVERRIDES: dict[str, Any] = {
    "@jupyterlab/apputils-extension:notification": {
        "checkForUpdates": False,
        "fetchNews": "false",
    },
}


def server_config(labkit_command: str | None = None) -> dict[str, Any]:
    """The Jupyter server settings of the course.

    Examples
    --------
    >>> server_config("/venv/bin/labkit")["ServerApp"]["terminado_settings"]
    {'shell_command': ['/venv/bin/labkit', 'shell', '--auto']}
    """
    if labkit_command is None:
        labkit_command = os.path.join(os.path.dirname(sys.executable), "labkit")
        if not os.path.exists(labkit_command):
            labkit_command = shutil.which("labkit") or labkit_command
    return {
        "ServerApp": {
            "terminado_settings": {"shell_command": [labkit_command, "shell", "--auto"]},
            "contents_manager_class": "labkit.server.ConfinedContentsManager",
        },
        "MappingKernelManager": {"default_kernel_name": "labkit"},
    }


def _merge_json(path: str, settings: dict[str, Any]) -> None:
    """Add ``settings`` (two levels deep) to the JSON file at ``path``, keeping the rest."""
    data: dict[str, Any] = {}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        pass
    for section, values in settings.items():
        current = data.get(section)
        data[section] = {**current, **values} if isinstance(current, dict) else dict(values)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def _server_config_path(prefix: str) -> str:
    return os.path.join(prefix, "etc", "jupyter", "jupyter_server_config.json")


def install_server_config(prefix: str | None = None) -> list[str]:
    """Write the server settings and JupyterLab overrides under ``prefix``; return the files.

    ``PREFIX/etc/jupyter/jupyter_server_config.json`` (read by every
    Jupyter server of this environment) gets :func:`server_config`, and
    ``PREFIX/share/jupyter/lab/settings/overrides.json`` gets
    :data:`LAB_OVERRIDES`; other settings in those files stay.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as prefix:
    ...     [os.path.relpath(p, prefix) for p in install_server_config(prefix)]
    ['etc/jupyter/jupyter_server_config.json', 'share/jupyter/lab/settings/overrides.json']
    """
    prefix = sys.prefix if prefix is None else prefix
    server = _server_config_path(prefix)
    _merge_json(server, server_config())
    overrides = os.path.join(prefix, "share", "jupyter", "lab", "settings", "overrides.json")
    _merge_json(overrides, LAB_OVERRIDES)
    return [server, overrides]


def server_config_installed(prefix: str | None = None) -> bool:
    """Tell whether this environment's JupyterLab puts terminals in the sandbox.

    Examples
    --------
    >>> server_config_installed("/nonexistent")
    False
    """
    prefix = sys.prefix if prefix is None else prefix
    try:
        with open(_server_config_path(prefix)) as f:
            shell = json.load(f)["ServerApp"]["terminado_settings"]["shell_command"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return shell[1:] == ["shell", "--auto"]


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
