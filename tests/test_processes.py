"""Processes: what runs in a lab ends with reset, with the sandbox and with the kernel.

Every process a test starts carries a marker that no other process on the
machine has: the environment variable ``LABKIT_PROC_MARK`` with a value
unique to the test (set in the sandbox before anything starts, so every
program started there inherits it: ``sleep``, the shells, the web apps of
the portforward stage, of :meth:`labkit.Lab.publish` and of ``labkit
publish``), and, for the sleeps and the published apps, unique arguments
(``sleep 9999.<digits>``, ports nobody else uses) that ``pgrep`` finds.

The tests look from the machine's side (the pytest process, outside every
sandbox) at ``/proc``: while the lab runs they record each marked
process (PID and start time, so a reused PID is not mistaken for it) and
check it descends from the sandbox (or kernel) that started it: none has
been reparented to the machine's init. Afterwards each recorded process
must be gone: not running, not a zombie, and no new marked process
anywhere.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VAR = "LABKIT_PROC_MARK"
TIMEOUT = 60.0


# -- the machine's view ---------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of ``pid`` in the machine's /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), int(fields[19])


def marked(mark: str) -> dict[int, dict[str, Any]]:
    """The machine's processes that carry ``mark`` in their environment."""
    needle = f"{VAR}={mark}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        st = _stat(int(entry))
        if st:
            found[int(entry)] = {"state": st[0], "ppid": st[1], "start": st[2], "cmd": cmd}
    return found


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        st = _stat(pid)
        if st is None:
            return False
        pid = st[1]
    return False


def still_there(procs: dict[int, dict[str, Any]]) -> dict[int, str]:
    """Which of ``procs`` still exist (same PID and start time): PID -> state."""
    left = {}
    for pid, info in procs.items():
        st = _stat(pid)
        if st and st[2] == info["start"]:
            left[pid] = f"{st[0]} {info['cmd']}"
    return left


def pgrep(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
    return out.splitlines()


def wait_for(fact: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fact()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _wait_file(path: Path, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sandbox ended early:\n{proc.communicate()[0]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited for {path}")
        time.sleep(0.01)


@pytest.fixture
def mark() -> dict[str, Any]:
    """A marker unique to this test: the environment value, a sleep time, two ports."""
    n = random.randrange(10**6, 10**7)
    return {
        "mark": f"lkproc-{os.getpid()}-{n}",
        "sleep": f"9999.{n}",
        "ports": [random.randrange(20000, 30000), random.randrange(30000, 40000)],
    }


def assert_all_gone(recorded: dict[int, dict[str, Any]], m: dict[str, Any]) -> None:
    left = wait_for(lambda: not still_there(recorded) and not marked(m["mark"]), 10.0)
    assert left, (
        f"still there: {still_there(recorded)}; marked now: {marked(m['mark'])}; "
        f"by argument: {pgrep(m['sleep']) + pgrep(str(m['ports'][1]))}"
    )
    assert not pgrep(f"^sleep {m['sleep']}")
    assert not pgrep(f"labkit.webapp --name \\S+ {m['ports'][1]}$")


# -- in the sandbox ----------------------------------------------------------------


def _sh(command: str) -> None:
    subprocess.run(command, shell=True, check=True, capture_output=True)


def start_everything(m: dict[str, Any], host_too: bool) -> dict[str, Any]:
    """Inside a sandbox: web apps and sleeps in lab namespaces; check they run."""
    from labkit import Lab
    from labkit.kernel.services import running

    os.environ[VAR] = m["mark"]
    lab = Lab(3)
    lab.goto("portforward")  # the web app in blue
    hp, port = m["ports"]
    lab.publish(hp, "red", port)  # a web app in red
    _sh(f"labkit publish -q {hp + 1} ns10 --port {port}")  # and one in ns10, by the CLI
    # a sleep in each lab namespace, one of them behind a shell that ignores signals
    _sh(f"ip netns exec red sleep {m['sleep']} >/dev/null 2>&1 &")
    stubborn = f"trap '' TERM HUP INT; sleep {m['sleep']}; :"
    _sh(f'ip netns exec ns10 sh -c "{stubborn}" >/dev/null 2>&1 &')
    _sh(f"ip netns exec blue sh -c 'sleep {m['sleep']} & sleep {m['sleep']}' >/dev/null 2>&1 &")
    if host_too:
        _sh(f"sleep {m['sleep']} >/dev/null 2>&1 &")
    sleeps = wait_for(lambda: len(pgrep(f"^sleep {m['sleep']}")) >= 4 + host_too)
    assert sleeps, pgrep(m["sleep"])
    # the web apps answer
    for url, body in (
        ("http://192.168.1.2/", "Hello from blue!"),
        (f"http://192.168.1.2:{hp}/", "Hello from red!"),
        (f"http://192.168.1.2:{hp + 1}/", "Hello from ns10!"),
    ):
        got = lab.http("lan-pc", url)
        assert got.body.startswith(body), (url, str(got))
    apps = sorted((str(a["ns"]), int(a["port"])) for a in running(lab.namespaces + ["internet"]))
    assert apps == sorted([("blue", 80), ("red", port), ("ns10", port), ("internet", 80)]), apps
    return {"apps": apps}


def zombies() -> list[str]:
    """Zombies in this (the sandbox's) /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    text = f.read()
            except OSError:
                continue
            if text.rsplit(")", 1)[1].split()[0] == "Z":
                out.append(text)
    return out


def scenario(mode: str, shared: str) -> None:
    """Run in a sandbox by a subprocess; talks with the test through files in ``shared``.

    The marker comes in a file: on the command line, pgrep would find this process.
    """
    from labkit import Lab
    from labkit.kernel.services import running

    box = Path(shared)
    m = json.loads((box / "mark.json").read_text())
    started = start_everything(m, host_too=(mode == "end"))
    (box / "started.json").write_text(json.dumps(started))
    _wait_file(box / "recorded")
    if mode == "end":
        return  # the sandbox ends with everything in it
    lab = Lab()
    lab.reset()
    # inside: no sleep, no web app but the world's, no zombie
    assert wait_for(lambda: not pgrep(f"^sleep {m['sleep']}"), 5.0), pgrep(m["sleep"])
    apps = [(a["ns"], a["port"]) for a in running(["internet", "red", "blue", "ns10"])]
    assert apps == [("internet", 80)], apps
    assert wait_for(lambda: not zombies(), 5.0), zombies()
    (box / "reset").touch()
    _wait_file(box / "checked")


def run_scenario(mode: str, m: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "mark.json").write_text(json.dumps(m))
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
        "from labkit.world import run_in_lab\n"
        "import test_processes as t\n"
        f"run_in_lab(t.scenario, {mode!r}, {str(tmp_path)!r})\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_file(tmp_path / "started.json", proc)
        recorded = marked(m["mark"])
        cmds = " | ".join(p["cmd"] for p in recorded.values())
        # the sleeps (red, ns10, 2 in blue, 1 in the host at "end"), the 3 web apps
        sleeps = [p for p in recorded.values() if p["cmd"].startswith("sleep ")]
        assert len(sleeps) == 4 + (mode == "end"), cmds
        assert len([p for p in recorded.values() if "labkit.webapp" in p["cmd"]]) == 3, cmds
        assert pgrep(f"^sleep {m['sleep']}")
        assert pgrep(f"labkit.webapp --name red {m['ports'][1]}$")
        # none reparented out of the sandbox, none a zombie
        for pid, info in recorded.items():
            assert descends_from(pid, proc.pid), (pid, info)
            assert info["state"] != "Z", (pid, info)
        (tmp_path / "recorded").touch()
        if mode == "reset":
            _wait_file(tmp_path / "reset", proc)
            assert proc.poll() is None  # the sandbox still runs ...
            assert_all_gone(recorded, m)  # ... but nothing of the lab's
            (tmp_path / "checked").touch()
        out = proc.communicate(timeout=TIMEOUT)[0]
        assert proc.returncode == 0, out
    finally:
        for name in ("recorded", "checked"):
            (tmp_path / name).touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_all_gone(recorded, m)


def test_processes_in_lab_namespaces_end_with_reset(tmp_path, mark):
    run_scenario("reset", mark, tmp_path)


def test_processes_end_with_the_sandbox(tmp_path, mark):
    run_scenario("end", mark, tmp_path)


def test_run_in_sandbox_returns_only_when_everything_is_gone(mark):
    from labkit.world import run_in_lab

    assert run_in_lab(start_everything, mark, True)["apps"]
    # no waiting: when the call returns, the sandbox's processes are gone already
    assert not marked(mark["mark"]), marked(mark["mark"])
    assert not pgrep(f"^sleep {mark['sleep']}")


def _delete_namespaces_by_hand(m: dict[str, Any]) -> list[str]:
    from labkit import Lab

    lab = Lab()
    lab.goto("portforward")
    _sh(f"ip netns exec red sleep {m['sleep']} >/dev/null 2>&1 &")
    assert wait_for(lambda: pgrep(f"^sleep {m['sleep']}"), 5.0)
    _sh("ip netns del red; ip netns del blue; ip netns del internet")
    lab.goto("portforward")
    lab.reset()
    time.sleep(0.2)
    return pgrep(f"^sleep {m['sleep']}") + pgrep("labkit.webapp --name (blue|internet) 80$")


def test_processes_in_namespaces_deleted_by_hand_end_with_reset(mark):
    from labkit.world import run_in_lab

    left = run_in_lab(_delete_namespaces_by_hand, mark)
    assert [line.split(None, 1)[1] for line in left] == [
        f"{sys.executable} -S -m labkit.webapp --name internet 80"  # the new one only
    ], left


# -- in a kernel ---------------------------------------------------------------------


def _kernel_available() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("labkit")
    except NoSuchKernel:
        return False
    return True


def _run_cell(kc: Any, code: str) -> str:
    out: list[str] = []

    def hook(msg: dict) -> None:
        content = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(content["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(content["traceback"]))

    reply = kc.execute_interactive(code, output_hook=hook, timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out)


@pytest.mark.slow
@pytest.mark.skipif(not _kernel_available(), reason="the 'labkit' kernelspec is not installed")
@pytest.mark.parametrize("how", ["shutdown", "kill"])
def test_processes_end_with_the_kernel(mark, how):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="labkit", startup_timeout=TIMEOUT)
    recorded: dict[int, dict[str, Any]] = {}
    try:
        cell = (
            f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
            "import test_processes as t\n"
            f"print(t.start_everything({mark!r}, True))\n"
        )
        assert "'apps'" in _run_cell(kc, cell)
        # as a learner would, from cells: a child of the kernel and a `!` job
        sleep = f"sleep {mark['sleep']}"
        _run_cell(
            kc, f"import subprocess\np = subprocess.Popen('ip netns exec red {sleep}'.split())"
        )
        _run_cell(kc, f"!(trap '' HUP; ip netns exec blue {sleep} > /dev/null 2>&1 &)")

        def sleeps_seen() -> dict[int, dict[str, Any]] | None:
            found = marked(mark["mark"])
            sleeps = [p for p in found.values() if p["cmd"].startswith("sleep ")]
            return found if len(sleeps) >= 7 else None

        recorded = wait_for(sleeps_seen) or {}
        assert recorded, marked(mark["mark"])
        apps = [p for p in recorded.values() if "labkit.webapp" in p["cmd"]]
        assert len(apps) == 3, apps
        kernel_pid = km.provisioner.process.pid
        for pid, info in recorded.items():
            assert descends_from(pid, kernel_pid), (pid, info)
        if how == "shutdown":
            km.shutdown_kernel()  # as Jupyter does: ask the kernel to stop
        else:
            km.shutdown_kernel(now=True)  # kill it
        assert not km.is_alive()
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)
    assert_all_gone(recorded, mark)
