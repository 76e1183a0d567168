"""The ``labkit`` Jupyter kernel, started for real as Jupyter starts it.

These tests run in the pytest process itself (not in a sandbox): they start
``labkit`` kernels through nbclient and jupyter_client, run cells in them
and look at the machine from the outside. Each kernel is a sandbox of its
own, so whatever a cell does with ``ip`` stays there; the tests check that
it does, and that it all goes away with the kernel.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import KernelManager, start_new_kernel
from nbclient import NotebookClient

KERNEL = "labkit"
TIMEOUT = 60

try:
    KernelSpecManager().get_kernel_spec(KERNEL)
except NoSuchKernel:
    pytest.skip(
        "the 'labkit' kernelspec is not installed: python -m labkit.jupyter install",
        allow_module_level=True,
    )


# -- looking from the outside ------------------------------------------------


def machine_netns() -> list[str]:
    """The machine's own namespaces (`ip netns list`, run outside any sandbox)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def pgrep(pattern: str) -> list[str]:
    """PIDs of the machine's processes whose command line matches ``pattern``."""
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return out.split()


def wait_for(fact: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``fact`` until it is truthy or ``timeout`` seconds have passed; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = fact()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


# -- kernels ---------------------------------------------------------------


class NotebookKernel:
    """A live labkit kernel driven by nbclient, one cell at a time."""

    def __init__(self, client: NotebookClient) -> None:
        self.client = client

    def run(self, source: str) -> list[Any]:
        """Execute one cell; return its outputs (nbclient raises on an error)."""
        cell = nbformat.v4.new_code_cell(source)
        self.client.nb.cells.append(cell)
        self.client.execute_cell(cell, len(self.client.nb.cells) - 1)
        return cell.outputs


def text_of(outputs: list[Any]) -> str:
    """Streams and the text/plain of results, as one string."""
    parts = []
    for out in outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out:
            parts.append(out.data.get("text/plain", ""))
    return "\n".join(parts)


def has_png(outputs: list[Any]) -> bool:
    return any("image/png" in out.get("data", {}) for out in outputs)


@pytest.fixture(scope="module")
def kernel() -> Iterator[NotebookKernel]:
    """One labkit kernel shared by the tests that only add things to it."""
    client = NotebookClient(nbformat.v4.new_notebook(), kernel_name=KERNEL, timeout=TIMEOUT)
    with client.setup_kernel():
        yield NotebookKernel(client)


@contextmanager
def fresh_kernel() -> Iterator[tuple[KernelManager, Any]]:
    """A labkit kernel of its own, through jupyter_client (to restart or stop it)."""
    km, kc = start_new_kernel(kernel_name=KERNEL, startup_timeout=TIMEOUT)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)


def run(kc: Any, code: str) -> str:
    """Execute ``code`` in a jupyter_client kernel; return what it printed."""
    out: list[str] = []

    def hook(msg: dict) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            out.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            out.append("\n".join(content["traceback"]))

    reply = kc.execute_interactive(code, output_hook=hook, timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out)


# -- the tests ---------------------------------------------------------------


def test_a_cell_builds_the_lab_and_the_machine_never_sees_it(kernel):
    assert "red" not in machine_netns()
    kernel.run("!sudo ip netns add red")
    assert "red" not in machine_netns()

    made = text_of(kernel.run("import labkit\nlab = labkit.Lab()\nprint(lab.goto('veth'))"))
    assert "ip netns add blue" in made
    assert "ip netns add red" not in made  # the red made by hand was adopted

    ping = text_of(kernel.run("print(lab.ping('red', '192.168.15.2'))"))
    assert "3/3 replies, 0% loss" in ping

    drawn = kernel.run("%matplotlib inline\nlab.draw()")
    assert has_png(drawn)
    # the picture in words, for screen readers and nbval: red's address
    assert "red: veth-red 192.168.15.1/24" in text_of(drawn)

    inside = text_of(kernel.run("!ip netns list"))
    assert "blue" in inside.split() and "red" in inside.split()
    assert "red" not in machine_netns() and "blue" not in machine_netns()


def test_netlink_works_from_a_cell(kernel):
    # ipykernel runs cells inside a running asyncio loop, where pyroute2's
    # synchronous API fails; labkit must still read the kernel from a cell.
    kernel.run("!ip netns add probe")
    nodes = text_of(kernel.run("import labkit\nprint(sorted(labkit.Lab().observe().nodes))"))
    assert "'ns:host'" in nodes and "'ns:probe'" in nodes and "'if:host/lo'" in nodes


def test_two_kernels_do_not_see_each_other(kernel):
    kernel.run("!ip netns add only-in-first")
    with fresh_kernel() as (_, kc):
        assert "only-in-first" not in run(kc, "!ip netns list")
        run(kc, "!ip netns add only-in-second")
        assert "only-in-second" in run(kc, "!ip netns list")
        seen_by_first = text_of(kernel.run("!ip netns list"))
    assert "only-in-first" in seen_by_first and "only-in-second" not in seen_by_first
    assert not {"only-in-first", "only-in-second"} & set(machine_netns())


def test_restart_gives_a_clean_machine():
    assert not pgrep("slee[p] 4244")
    look = '!ip netns list | cut -d" " -f1; ip -o link | cut -d: -f2 | sort'
    with fresh_kernel() as (km, kc):
        fresh = run(kc, look)
        run(kc, "!ip netns add red\n!ip link add v-net-0 type bridge")
        run(kc, "import subprocess\nsubprocess.Popen('ip netns exec red sleep 4244'.split())")
        assert wait_for(lambda: pgrep("slee[p] 4244")), "the sleep never started"

        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=TIMEOUT)
        assert run(kc, look) == fresh
        assert wait_for(lambda: not pgrep("slee[p] 4244")), "the sleep outlived the restart"


def test_processes_started_in_the_sandbox_end_with_the_kernel():
    assert not pgrep("slee[p] 4243")
    with fresh_kernel() as (km, kc):
        run(kc, "!ip netns add red")
        # IPython refuses a `!` line that ends in `&`, and it runs `!` lines on
        # a terminal that hangs up (SIGHUP) when the line is done; nohup races
        # with that hangup, an inherited `trap '' HUP` does not.
        run(kc, "!(trap '' HUP; ip netns exec red sleep 4243 > /dev/null 2>&1 &)")
        assert wait_for(lambda: pgrep("slee[p] 4243")), "the sleep never started"
        km.shutdown_kernel()  # as Jupyter does: ask the kernel to stop
        assert not km.is_alive()
    assert wait_for(lambda: not pgrep("slee[p] 4243")), "the sleep outlived its kernel"


def test_draw_shows_a_picture_without_matplotlib_inline():
    # The labkit kernel shows a Figure as a PNG, but imports matplotlib only
    # for the first one (it costs half a second and ~30 MiB per kernel).
    with fresh_kernel() as (_, kc):
        shown: list[dict] = []
        texts: list[str] = []

        def keep(msg: dict) -> None:
            shown.append(msg["content"].get("data", {}))
            texts.append(msg["content"].get("text", ""))

        kc.execute_interactive(
            "import sys\nprint('matplotlib' in sys.modules)", output_hook=keep, timeout=TIMEOUT
        )
        assert "".join(texts).strip() == "False", texts
        kc.execute_interactive(
            "import labkit\nlabkit.Lab().draw()", output_hook=keep, timeout=TIMEOUT
        )
        assert any("image/png" in data for data in shown)
        # pyplot too draws inline, without %matplotlib inline
        shown.clear()
        kc.execute_interactive(
            "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nNone",
            output_hook=keep,
            timeout=TIMEOUT,
        )
    assert any("image/png" in data for data in shown)


def test_without_a_sandbox_the_kernel_explains_without_a_traceback(monkeypatch):
    monkeypatch.setenv("LABKIT_DISABLE_SANDBOX", "1")
    with fresh_kernel() as (_, kc):
        shown: list[str] = []

        def keep(msg: dict) -> None:
            content = msg["content"]
            shown.append(content.get("text", "") + "".join(content.get("traceback", [])))

        kc.execute_interactive(
            "import labkit\nlabkit.Lab().goto('veth')", output_hook=keep, timeout=TIMEOUT
        )
        kc.execute_interactive("!sudo ip netns add red", output_hook=keep, timeout=TIMEOUT)
    text = "".join(shown)
    assert "SandboxError: A labkit sandbox cannot start here" in text
    assert "ip: not run: this kernel has no sandbox" in text or "sudo: not run" in text
    assert "Traceback" not in text


def test_the_kernel_listens_on_unix_sockets_when_asked(tmp_path):
    # transport=ipc, as the classroom's servers start kernels: the launcher opens
    # the five sockets at IP-PORT before it enters the sandbox, as it does ports
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=KERNEL, transport="ipc", ip=str(tmp_path / "k"))
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        ports = [km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port]
        sockets = {p.name for p in tmp_path.iterdir() if p.is_socket()}
        assert sockets == {f"k-{port}" for port in ports}, sockets
        said = run(
            kc, "import labkit\nlab = labkit.Lab()\nlab.goto('veth')\nprint(lab.check('veth'))"
        )
        assert "All good" in said and "red reaches blue" in said, said
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
