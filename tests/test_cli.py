"""The ``labkit`` command line, run as a subprocess against the real kernel.

Every command that changes the network runs through ``labkit run``, so each
test gets a fresh sandbox of its own and the machine's network is never
touched (conftest checks that at the end of the session).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import cli
from labkit.kernel import preflight

ROOT = Path(__file__).resolve().parent.parent
SUBCOMMANDS = [
    "capture",
    "shell",
    "run",
    "doctor",
    "up",
    "down",
    "reset",
    "status",
    "plan",
    "stages",
    "graph",
    "why",
    "ping",
    "exec",
    "http",
    "reach",
    "publish",
]

needs_sandbox = pytest.mark.skipif(
    preflight.why_not() is not None, reason="no labkit sandbox can start here"
)
outside_only = pytest.mark.skipif(
    preflight.inside(), reason="the test suite itself runs inside a sandbox"
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def labkit(
    *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m labkit ARGS`` as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args],
        cwd=ROOT,
        env=_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def in_sandbox(script: str) -> subprocess.CompletedProcess:
    """``labkit run -- sh -c SCRIPT``: the script runs in a fresh sandbox."""
    return labkit("run", "--", "sh", "-c", script)


def machine_netns() -> list[str]:
    if not os.path.isdir("/run/netns"):
        return []
    return sorted(os.listdir("/run/netns"))


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("labkit: error: ")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0]


# -- help, version, usage -----------------------------------------------------


def test_the_subcommand_list_is_complete():
    parser = cli.build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert sorted(choices) == sorted(SUBCOMMANDS)


@pytest.mark.parametrize("command", [[], *[[c] for c in SUBCOMMANDS]])
def test_help_of_every_subcommand_exits_0_with_an_example(command):
    proc = labkit(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: labkit" in proc.stdout
    assert "examples:" in proc.stdout


def test_version():
    proc = labkit("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("labkit ")


@pytest.mark.parametrize("args", [["run"], ["run", "--"]])
def test_run_without_a_command_is_a_usage_error(args):
    proc = labkit(*args)
    assert proc.returncode == 2
    assert "a command is required" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_subcommand_is_a_usage_error():
    proc = labkit("nosuchcommand")
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


# -- in-process main() --------------------------------------------------------


def test_main_returns_the_status_and_prints_the_plan(capsys):
    assert cli.main(["plan", "netns"]) == 0
    assert "ip netns add red" in capsys.readouterr().out


def test_main_usage_error_returns_2(capsys):
    assert cli.main(["up"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_keyboard_interrupt_exits_130(monkeypatch):
    def interrupted(self, stage):
        raise KeyboardInterrupt

    monkeypatch.setattr("labkit.Lab.plan", interrupted)
    assert cli.main(["plan", "veth"]) == 130


def test_a_multi_line_error_is_printed_on_one_line(monkeypatch, capsys):
    from labkit.errors import ConfigError

    def fails(self, stage):
        raise ConfigError("first line\nsecond line")

    monkeypatch.setattr("labkit.Lab.plan", fails)
    assert cli.main(["plan", "veth"]) == 1
    assert capsys.readouterr().err == "labkit: error: first line second line\n"


# -- commands that work anywhere ----------------------------------------------


@outside_only
def test_plan_works_outside_a_sandbox():
    proc = labkit("plan", "bridge")
    assert proc.returncode == 0, proc.stderr
    assert "ip link add v-net-0 type bridge" in proc.stdout.splitlines()


def test_plan_with_more_namespaces():
    proc = labkit("plan", "bridge", "-n", "3")
    assert proc.returncode == 0, proc.stderr
    assert "ip netns add ns10" in proc.stdout


def test_plan_of_an_unknown_stage_is_an_error():
    assert_one_line_error(labkit("plan", "nosuchstage"), "unknown stage", "nosuchstage")


def test_stages_lists_stages_and_steps_with_titles():
    proc = labkit("stages")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("netns ")
    assert any(line.split()[0] == "bridge:fix" and "forgets" in line for line in lines)


@outside_only
@pytest.mark.parametrize(
    "args",
    [
        ["up", "veth"],
        ["down"],
        ["reset"],
        ["status"],
        ["graph", "-o", "/tmp/labkit-never.png"],
        ["ping", "red", "192.168.15.2"],
    ],
)
def test_changing_commands_refuse_to_run_outside_a_sandbox(args):
    proc = labkit(*args)
    assert_one_line_error(proc, "sandbox", "labkit shell", "labkit run")
    assert not os.path.exists("/tmp/labkit-never.png")


# -- the sandbox ----------------------------------------------------------------


@needs_sandbox
def test_run_passes_the_exit_status_through():
    assert in_sandbox("exit 7").returncode == 7


@needs_sandbox
def test_run_of_a_missing_command_exits_127():
    proc = labkit("run", "--", "labkit-no-such-command")
    assert proc.returncode == 127
    assert "command not found" in proc.stderr


@needs_sandbox
@outside_only
def test_a_namespace_made_in_run_stays_in_the_sandbox():
    if "red" in machine_netns():
        pytest.skip("the machine has a namespace called red already")
    proc = in_sandbox("ip netns add red && ip netns list")
    assert proc.returncode == 0, proc.stderr
    assert "red" in proc.stdout.split()
    assert "red" not in machine_netns()
    real = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    assert "red" not in real.stdout.split()


@needs_sandbox
def test_sudo_works_in_run():
    proc = in_sandbox("sudo ip netns add red && sudo -E ip netns list")
    assert proc.returncode == 0, proc.stderr
    assert "red" in proc.stdout.split()


@needs_sandbox
def test_shell_runs_an_interactive_shell_in_a_sandbox():
    proc = labkit("shell", stdin="labkit -q up netns && ip netns list\nexit 3\n")
    assert proc.returncode == 3, proc.stderr
    assert "red" in proc.stdout.split()
    assert "sandbox" in proc.stderr.splitlines()[0]


@needs_sandbox
def test_up_veth_then_red_pings_blue():
    proc = in_sandbox("labkit up veth && ip netns exec red ping -c1 -W1 192.168.15.2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "+ ip netns add red" in lines
    assert "+ ip link add veth-red type veth peer name veth-blue" in lines
    assert "1 received" in proc.stdout


@needs_sandbox
def test_python_m_labkit_works_inside_too():
    proc = in_sandbox(f"{sys.executable} -m labkit up netns && ip netns list")
    assert proc.returncode == 0, proc.stderr
    assert {"red", "blue"} <= set(proc.stdout.split())


@needs_sandbox
def test_up_twice_says_already_there_and_quiet_says_nothing():
    proc = in_sandbox("labkit -q up veth && labkit up veth")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "already at veth\n"


@needs_sandbox
def test_up_an_unknown_stage_inside_is_a_one_line_error():
    proc = in_sandbox("labkit up nosuchstage")
    assert_one_line_error(proc, "unknown stage", "nosuchstage")


@needs_sandbox
def test_up_a_step_and_more_namespaces():
    proc = in_sandbox(
        "labkit -q up bridge:as-written && labkit status | head -1 && "
        "labkit -q up bridge -n 3 && labkit status"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "stage: bridge:as-written"
    assert lines[1] == "stage: bridge"
    assert "ns10" in lines


@needs_sandbox
def test_status_after_up_bridge_lists_the_bridge_and_the_namespaces():
    proc = in_sandbox("labkit -q up bridge && labkit status")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "stage: bridge"
    assert any(line.split()[:2] == ["v-net-0", "bridge"] for line in lines)
    assert "red" in lines and "blue" in lines
    red = lines[lines.index("red") + 1 :]
    assert any("veth-red " in line and "192.168.15.1/24" in line for line in red)


@needs_sandbox
def test_status_of_an_empty_sandbox():
    proc = in_sandbox("labkit status")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("stage: reset")


@needs_sandbox
def test_down_goes_back_one_stage_and_reset_empties():
    proc = in_sandbox(
        "labkit -q up host && labkit down && labkit status | head -1 && "
        "labkit -q reset && labkit status | head -1 && labkit reset && labkit down"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "+ ip addr del 192.168.15.5/24 dev v-net-0"
    assert lines[1] == "stage: bridge"
    assert lines[2].startswith("stage: reset")
    assert lines[3].startswith("nothing to reset")
    assert lines[4].startswith("nothing to undo")


@needs_sandbox
def test_ping_exit_status_follows_the_replies_and_reset_makes_it_an_error():
    proc = in_sandbox(
        "labkit -q up veth; labkit ping red 192.168.15.2 -c 1; echo up=$?; "
        "labkit -q up bridge:as-written; labkit ping red 192.168.15.2 -c 1; echo broken=$?; "
        "labkit -q reset; labkit ping red 192.168.15.2; echo gone=$?"
    )
    out = proc.stdout.splitlines()
    assert "up=0" in out
    assert "broken=1" in out
    assert "gone=1" in out
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("labkit: error: ")]
    assert len(errors) == 1 and "'red' does not exist" in errors[0]


@needs_sandbox
def test_ping_a_bad_address_is_an_error():
    proc = in_sandbox("labkit -q up veth && labkit ping red 192.168.15")
    assert_one_line_error(proc, "not an IP address")


def _can_draw() -> bool:
    try:
        import labkit.draw  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means: not ready
        return False
    return True


@needs_sandbox
@pytest.mark.skipif(not _can_draw(), reason="labkit.draw cannot be imported (yet)")
def test_graph_writes_a_png(tmp_path):
    out = tmp_path / "lab.png"
    proc = in_sandbox(f"labkit -q up bridge && labkit graph -o {out}")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_sandbox
def test_graph_to_a_missing_directory_is_a_one_line_error(tmp_path):
    if not _can_draw():
        pytest.skip("labkit.draw cannot be imported (yet)")
    proc = in_sandbox(f"labkit graph -o {tmp_path}/no/such/dir/lab.png")
    assert_one_line_error(proc, "cannot write")


@needs_sandbox
def test_doctor_exits_0_where_a_sandbox_can_start():
    proc = labkit("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sandbox" in proc.stdout


@needs_sandbox
def test_world_machines_http_reach_and_publish_from_the_shell():
    script = (
        "labkit up internet -q && "
        "labkit exec lan-pc -- ip -br addr && "
        "labkit http red http://203.0.113.8/ && "
        "labkit reach && "
        "labkit publish 8080 red && "
        "labkit http lan-pc http://192.168.1.2:8080/ && "
        "labkit exec router -- iptables -t nat -S"
    )
    proc = labkit("run", "--", "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert "192.168.1.3/24" in proc.stdout
    assert "HTTP 200: Hello from internet! You came from 198.51.100.2." in proc.stdout
    assert "HTTP 200: Hello from red! You came from 192.168.1.3." in proc.stdout
    assert "-A POSTROUTING -o wan0 -m comment --comment labkit -j MASQUERADE" in proc.stdout
    table = [line.split() for line in proc.stdout.splitlines() if line.startswith("red ")]
    assert table and "no" not in table[0]


@needs_sandbox
@pytest.mark.parametrize(
    "script, message",
    [
        ("labkit exec nosuch -- true", "namespace 'nosuch' does not exist"),
        ("labkit exec red", "exec needs a command"),
        ("labkit http red ftp://x", "not an http:// URL"),
        ("labkit up internet -q && labkit publish 99999 red", "from 1 to 65535"),
    ],
)
def test_bad_input_on_the_new_commands(script, message):
    proc = labkit("run", "--", "sh", "-c", script)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
