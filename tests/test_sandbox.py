"""Sandboxes seen from outside: what they start ends with them, and the
plan's shell commands build what goto builds (each in a sandbox of its own).
These tests start their sandboxes from the (single-threaded) pytest process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from labkit import Lab, SandboxError
from labkit.kernel.observe import snapshot, to_state
from labkit.kernel.sandbox import run_in_sandbox


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
    assert run_in_sandbox(_build_with_shell, stage) == run_in_sandbox(_build_with_labkit, stage)


def test_processes_end_with_the_sandbox():
    def start_sleeper():
        Lab().goto("netns")
        sh("ip netns exec red sleep 4242 >/dev/null 2>&1 & sleep 0.2")
        return sh("pgrep -f 'slee[p] 4242'").stdout

    assert run_in_sandbox(start_sleeper).strip()
    assert sh("pgrep -f 'slee[p] 4242'").stdout == ""


def test_run_in_sandbox_refuses_a_threaded_caller():
    def nested():
        Lab().goto("netns")  # starts the netlink thread
        run_in_sandbox(print)

    with pytest.raises(SandboxError, match="single-threaded"):
        run_in_sandbox(nested)


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
