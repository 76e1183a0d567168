"""Sandboxes seen from outside: what they start ends with them, a bare one has
no world, the shims find this labkit, and the plan's shell commands build
what goto builds (each in a sandbox of its own). These tests start their
sandboxes from the (single-threaded) pytest process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import labkit
from labkit import Lab, SandboxError
from labkit.kernel.mounts import BIN_DIR
from labkit.kernel.observe import snapshot, to_state
from labkit.kernel.sandbox import run_in_sandbox
from labkit.world import run_in_lab


def sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, capture_output=True, text=True)


def _build_with_shell(stage: str):
    lab = Lab()
    for name in lab.stages[: lab.stages.index(stage) + 1]:
        for command in lab.plan(name).commands:
            proc = sh(command)
            assert proc.returncode == 0, (command, proc.stderr)
    return to_state(snapshot())


def _build_with_labkit(stage: str):
    Lab().goto(stage)
    return to_state(snapshot())


@pytest.mark.parametrize("stage", ["netns", "veth", "bridge", "host"])
def test_the_plan_is_what_goto_builds(stage):
    # Runs the plan's shell commands in one sandbox and goto in another.
    assert run_in_lab(_build_with_shell, stage) == run_in_lab(_build_with_labkit, stage)


def test_processes_end_with_the_sandbox():
    def start_sleeper():
        Lab().goto("netns")
        sh("ip netns exec red sleep 4242 >/dev/null 2>&1 & sleep 0.2")
        return sh("pgrep -f 'slee[p] 4242'").stdout

    assert run_in_lab(start_sleeper).strip()
    assert sh("pgrep -f 'slee[p] 4242'").stdout == ""


def test_run_in_sandbox_refuses_a_threaded_caller():
    def nested():
        Lab().goto("netns")  # starts the netlink thread
        run_in_sandbox(print)

    with pytest.raises(SandboxError, match="single-threaded"):
        run_in_lab(nested)


def _namespaces() -> list[str]:
    return sorted(line.split()[0] for line in sh("ip netns").stdout.splitlines())


def test_a_bare_sandbox_has_no_world_and_run_in_lab_builds_it():
    assert run_in_sandbox(_namespaces) == []
    world = run_in_lab(_namespaces)
    assert world, "the world has namespaces of its own"
    assert run_in_lab(lambda: Lab().stage()) == "reset"


def test_keyword_arguments_named_fn_reach_the_call():
    def echo(*, fn: str) -> str:
        return fn

    assert run_in_sandbox(echo, fn="bare") == "bare"
    assert run_in_lab(echo, fn="lab") == "lab"


def test_the_shims_put_the_folder_that_holds_labkit_on_pythonpath():
    def shim() -> str:
        with open(os.path.join(BIN_DIR, "labkit")) as f:
            return f.read()

    text = run_in_sandbox(shim)
    root = os.path.dirname(os.path.dirname(os.path.abspath(labkit.__file__)))
    assert f"PYTHONPATH={root}" in text, text
    # run as a command, it imports this checkout's labkit, and stdlib modules stay stdlib
    code = "import labkit, trace; print(labkit.__file__); print(trace.__file__)"
    proc = run_in_sandbox(sh, f"python3 -c {code!r}")
    assert proc.returncode == 0, proc.stderr
    mine, stdlib_trace = proc.stdout.split()
    assert mine == labkit.__file__
    assert not stdlib_trace.startswith(os.path.dirname(labkit.__file__))


@pytest.mark.skipif(os.geteuid() != 0, reason="root starts the sandbox as another user")
def test_a_course_under_a_private_folder_is_reachable_and_nothing_else(tmp_path):
    """A checkout in root's home (mode 700): the learner reaches it, not its neighbours."""
    home = tmp_path / "home"
    course = home / "course"
    course.mkdir(parents=True)
    (course / "lesson.txt").write_text("lesson\n")
    (home / "secret").write_text("root's\n")
    for path in (tmp_path, *tmp_path.parents):
        if str(path).startswith("/tmp/") and path.stat().st_uid == 0:
            path.chmod(path.stat().st_mode | 0o755)
    home.chmod(0o700)
    course.chmod(0o755)
    labkit = os.path.join(os.path.dirname(sys.executable), "labkit")
    proc = subprocess.run(
        [labkit, "run", "--", "sh", "-c", f"cat lesson.txt; ls -A {home}; cat {home}/secret"],
        cwd=course,
        capture_output=True,
        text=True,
    )
    assert proc.stdout.split() == ["lesson", "course"], proc.stdout + proc.stderr
    assert "secret" in proc.stderr and proc.returncode != 0
    # outside, nothing moved
    assert sorted(p.name for p in home.iterdir()) == ["course", "secret"]
