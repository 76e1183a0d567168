"""Containment: no cell, `!` command or terminal of the course reaches the machine.

The battery in ``escape_battery.py`` (23 attempts: the machine's network
and user namespaces through /proc and through socket fds, its loopback,
its named namespaces, files, clock, hostname, kernel log, modules,
sysctls, the sandbox's mounts, PID 1's memory, the disk, reboot) runs
from three places, as root and as an ordinary user (uid 65534):

* inside the labkit kernel's own process (a cell), where the kernel's
  threads and its Jupyter sockets are in reach too;
* from ``labkit run``;
* from a terminal opened through the Jupyter server's terminal API, as
  JupyterLab's launcher does, with a notebook's kernel running: the
  terminal joins that kernel's lab, and each sees the other's changes.

Every attempt must be refused, and the machine stays as it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BATTERY = Path(__file__).resolve().parent / "escape_battery.py"
VENV_BIN = Path(sys.executable).parent
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
PROBE_NS = "labkit-escape-probe"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to set the targets up)")


def _others_can_read(path: Path) -> bool:
    path = path.resolve()
    return all(os.stat(p).st_mode & 0o005 == 0o005 for p in [*path.parents, path])


def _users() -> list[str]:
    users = ["root"]
    python = Path(os.path.realpath(sys.executable))
    if shutil.which("setpriv") and _others_can_read(python) and _others_can_read(ROOT):
        users.append("nobody")
    return users


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """What the battery aims at, set up outside as root; checked unchanged afterwards."""
    base = tmp_path_factory.mktemp("escape")
    base.chmod(0o777)
    for parent in base.parents:  # pytest makes them for root alone (700)
        if parent.stat().st_uid == 0 and str(parent).startswith(("/tmp/", "/var/tmp/")):
            parent.chmod(parent.stat().st_mode | 0o755)
    root_file = base / "root-owned"
    root_file.write_text("root's\n")
    root_file.chmod(0o644)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    had_netns_dir = os.path.isdir("/run/netns")
    subprocess.run(["ip", "netns", "add", PROBE_NS], check=True)
    disk = os.stat("/").st_dev
    block = next(
        (f"/dev/{n}" for n in sorted(os.listdir("/sys/block")) if _dev(n) == disk),
        "/dev/vda",
    )
    params = {
        "machine_netns": os.stat("/proc/self/ns/net").st_ino,
        "root_file": str(root_file),
        "machine_named_netns": PROBE_NS,
        "machine_port": listener.getsockname()[1],
        "machine_hostname": socket.gethostname(),
        "block_device": block if os.path.exists(block) else "/dev/vda",
    }
    (base / "params.json").write_text(json.dumps(params))
    (base / "params.json").chmod(0o644)
    before = {
        "hostname": socket.gethostname(),
        "root_file": (root_file.read_text(), root_file.stat().st_mode),
        "swappiness": Path("/proc/sys/vm/swappiness").read_text(),
    }
    try:
        yield {"base": base, "params": params, "path": base / "params.json"}
    finally:
        subprocess.run(["ip", "netns", "del", PROBE_NS], check=False)
        if not had_netns_dir:  # `ip netns add` made /run/netns (a mount of itself)
            subprocess.run(["umount", "-l", "/run/netns"], stderr=subprocess.DEVNULL)
            os.rmdir("/run/netns")
        listener.close()
    assert socket.gethostname() == before["hostname"]
    assert (root_file.read_text(), root_file.stat().st_mode) == before["root_file"]
    assert Path("/proc/sys/vm/swappiness").read_text() == before["swappiness"]
    assert not Path("/etc/labkit-escape").exists()
    assert abs(time.time() - time.monotonic() - _CLOCK[0]) < 5, "the machine's clock moved"


_CLOCK = [time.time() - time.monotonic()]


def _dev(name: str) -> int | None:
    try:
        major, minor = Path(f"/sys/block/{name}/dev").read_text().split(":")
        return os.makedev(int(major), int(minor))
    except (OSError, ValueError):
        return None


def _as(user: str) -> list[str]:
    return NOBODY if user == "nobody" else []


def _env(user: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    if user == "nobody":
        env = {
            "PATH": f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
        }
    return env


def _assert_all_refused(rows: list[dict[str, Any]], where: str) -> None:
    assert len(rows) >= 15
    escaped = [f"{r['name']} ({r['what']}): {r['how']}" for r in rows if not r["refused"]]
    assert not escaped, f"escapes from {where}:\n" + "\n".join(escaped)


# -- labkit run ---------------------------------------------------------------------


@pytest.mark.parametrize("user", _users())
def test_escapes_from_labkit_run_are_refused(user: str, targets: dict[str, Any]) -> None:
    out = targets["base"] / f"run-{user}.json"
    home = targets["base"] / f"home-{user}"
    home.mkdir(exist_ok=True)
    home.chmod(0o777)
    proc = subprocess.run(
        [*_as(user), str(VENV_BIN / "labkit"), "run", "--", "python3", str(BATTERY)]
        + [str(targets["path"]), str(out)],
        capture_output=True,
        text=True,
        env=_env(user, home),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    _assert_all_refused(json.loads(out.read_text()), f"labkit run as {user}")


# -- a Jupyter server, its kernel and its terminal ----------------------------------


class Server:
    """A Jupyter server on 127.0.0.1 started by the test, as root or as nobody."""

    def __init__(self, base: Path, user: str) -> None:
        self.base = base
        self.user = user
        self.root = base / "notebooks"
        self.runtime = base / "runtime"
        for folder in (self.root, self.runtime):
            folder.mkdir()
            folder.chmod(0o777)
        self.token = secrets.token_hex(16)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = _env(user, base)
        env.update(JUPYTER_RUNTIME_DIR=str(self.runtime), JUPYTER_CONFIG_DIR=str(base / "cfg"))
        argv = [
            *_as(user),
            str(VENV_BIN / "jupyter-server"),
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
        ]
        if user == "root":
            argv.append("--allow-root")
        self.log = base / "server.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.log.read_text()[-3000:]}")
            try:
                self.api("GET", "status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no answer:\n{self.log.read_text()[-3000:]}") from None
                time.sleep(0.2)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Terminal:
    """A terminal of the server, through its websocket, as JupyterLab uses it."""

    def __init__(self, server: Server) -> None:
        self.name = server.api("POST", "terminals")["name"]
        self.url = (
            f"ws://127.0.0.1:{server.port}/terminals/websocket/{self.name}?token={server.token}"
        )
        self.loop = asyncio.new_event_loop()
        self.ws = self._run(self._connect())
        self.screen = ""

    async def _connect(self) -> Any:
        from tornado.websocket import websocket_connect

        return await websocket_connect(self.url)

    def read_until(self, text: str, timeout: float = 60) -> str:
        """Read the terminal's output until ``text`` shows up; all of it so far."""

        async def read() -> None:
            while text not in self.screen:
                msg = await self.ws.read_message()
                if msg is None:
                    raise AssertionError(f"the terminal closed:\n{self.screen}")
                kind, *rest = json.loads(msg)
                if kind == "stdout":
                    self.screen += rest[0]

        try:
            self._run(asyncio.wait_for(read(), timeout))
        except asyncio.TimeoutError:
            raise AssertionError(f"{text!r} did not show up:\n{self.screen[-3000:]}") from None
        return self.screen

    def type(self, line: str) -> None:
        async def write() -> None:
            await self.ws.write_message(json.dumps(["stdin", line + "\r"]))

        self._run(write())

    def _run(self, coro: Any) -> Any:
        asyncio.set_event_loop(self.loop)
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.ws.close()
        self.loop.close()


def _kernel_client(server: Server, kernel_id: str) -> Any:
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=str(server.runtime / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    return client


def _run_cell(client: Any, code: str, timeout: float = 120) -> str:
    chunks: list[str] = []

    def keep(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            chunks.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            chunks.append("\n".join(msg["content"]["traceback"]))

    reply = client.execute_interactive(code, timeout=timeout, output_hook=keep)
    text = "".join(chunks)
    assert reply["content"]["status"] == "ok", text
    return text


@pytest.fixture(params=_users())
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path, request.param)
    try:
        yield srv
    finally:
        srv.stop()


def test_kernel_and_terminal_are_contained_and_share_a_lab(
    server: Server, targets: dict[str, Any]
) -> None:
    machine_netns = os.readlink("/proc/self/ns/net")
    kernel = server.api("POST", "kernels", {"name": "labkit"})["id"]
    client = _kernel_client(server, kernel)
    terminal = None
    try:
        # 1. The battery inside the kernel's own process: its threads, its fds.
        out = targets["base"] / f"kernel-{server.user}.json"
        _run_cell(
            client,
            f"import json, runpy\nrows = runpy.run_path({str(BATTERY)!r})['run']"
            f"(json.load(open({str(targets['path'])!r})))\n"
            f"json.dump(rows, open({str(out)!r}, 'w'))",
        )
        _assert_all_refused(json.loads(out.read_text()), f"a kernel cell as {server.user}")
        text = _run_cell(
            client,
            "import glob, os\n"
            "print(sorted({os.readlink(t + '/ns/net') for t in glob.glob('/proc/self/task/*')}))\n"
            "import labkit\nlabkit.Lab().goto('veth')\n",
        )
        kernel_netns = eval(text.splitlines()[0])  # noqa: S307 - our own printed list
        assert len(kernel_netns) == 1 and kernel_netns[0] != machine_netns

        # 2. A terminal, as JupyterLab's launcher opens it: it joins that lab.
        terminal = Terminal(server)
        screen = terminal.read_until("root@host")
        assert "joined the lab of" in screen, screen
        terminal.type(
            "readlink /proc/self/ns/net; ip netns; ip -n red -br addr; echo END-$((40+2))"
        )
        screen = terminal.read_until("END-42")
        after = screen.rsplit("END-$((40+2))", 1)[1]
        assert machine_netns not in after
        assert kernel_netns[0] in after, after  # the notebook's host, not a fresh one
        assert "red" in after and "192.168.15.1/24" in after  # the notebook's goto
        terminal.type("sudo ip netns add fromterminal; echo END-$((40+3))")
        terminal.read_until("END-43")
        assert "fromterminal" in _run_cell(client, "!ip netns")
        _run_cell(client, "labkit.Lab().goto('netns')")
        terminal.type("ip -n red -br link; echo END-$((40+4))")
        after = terminal.read_until("END-44").rsplit("END-$((40+4))", 1)[1]
        assert "lo" in after and "veth-red" not in after, after  # the notebook went back

        # 3. The battery from the terminal.
        out = targets["base"] / f"terminal-{server.user}.json"
        terminal.type(f"python3 {BATTERY} {targets['path']} {out}; echo END-$((40+5))")
        terminal.read_until("END-45", timeout=120)
        _assert_all_refused(json.loads(out.read_text()), f"a terminal as {server.user}")
    finally:
        if terminal:
            terminal.close()
        client.stop_channels()
        server.api("DELETE", f"kernels/{kernel}")


def test_a_terminal_without_a_notebook_gets_its_own_sandbox(tmp_path: Path) -> None:
    server = Server(tmp_path, "root")
    try:
        terminal = Terminal(server)
        screen = terminal.read_until("root@host")
        assert "fresh sandbox of its own" in screen
        terminal.type("readlink /proc/self/ns/net; ip netns; echo END-$((40+6))")
        after = terminal.read_until("END-46").rsplit("END-$((40+6))", 1)[1]
        assert os.readlink("/proc/self/ns/net") not in after
        assert "router" in after and "internet" in after  # the world of a fresh sandbox
        terminal.close()
    finally:
        server.stop()


def test_labs_are_listed_and_joined_from_the_command_line(tmp_path: Path) -> None:
    """`labkit shell --list` shows a running lab with its stage; --join enters it."""
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [
            str(VENV_BIN / "labkit"),
            "run",
            "--",
            "sh",
            "-c",
            f"labkit up veth -q && touch {ready} && sleep 60",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        listing = subprocess.run(
            [str(VENV_BIN / "labkit"), "shell", "--list"], capture_output=True, text=True
        )
        row = next(line for line in listing.stdout.splitlines() if line.startswith(str(holder.pid)))
        assert row.split()[1:3] == ["run", "veth"], listing.stdout
        joined = subprocess.run(
            [str(VENV_BIN / "labkit"), "shell", "--join", str(holder.pid)],
            input="ip -n red -br addr; hostname; exit\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "192.168.15.1/24" in joined.stdout and "host" in joined.stdout.split()
        missing = subprocess.run(
            [str(VENV_BIN / "labkit"), "shell", "--join", "1"], capture_output=True, text=True
        )
        assert missing.returncode == 1
        assert missing.stderr.startswith("labkit: error: no running lab has id '1'")
    finally:
        holder.kill()
        holder.wait()
