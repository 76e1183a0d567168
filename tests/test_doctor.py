"""``labkit doctor``: the machine check, for real and with faked machines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import machine_network

from labkit import cli, doctor, sandbox

needs_sandbox = pytest.mark.skipif(
    sandbox.why_not() is not None, reason="no labkit sandbox can start here"
)


def by_name(findings: list[doctor.Finding]) -> dict[str, doctor.Finding]:
    return {f.name: f for f in findings}


# -- the real machine -----------------------------------------------------------


def test_check_returns_findings_with_details_and_fixes():
    findings = doctor.check()
    assert findings and all(isinstance(f, doctor.Finding) for f in findings)
    names = by_name(findings)
    for name in ("user", "sandbox", "user namespaces", "br_netfilter", "NAT modules"):
        assert name in names
    assert {f"tool {t}" for t in doctor.TOOLS} <= set(names)
    for f in findings:
        assert f.detail
        assert f.ok or f.fix, f"{f.name} is not ok but says no fix"


def test_report_names_the_sandbox():
    text = doctor.report(doctor.check())
    assert "sandbox" in text
    assert text.splitlines()[-1].startswith("labkit ")


@needs_sandbox
def test_sandbox_finding_is_ok_where_a_sandbox_can_start():
    assert by_name(doctor.check())["sandbox"].ok


def test_check_leaves_the_machine_alone():
    before = machine_network()
    doctor.check()
    assert machine_network() == before


@needs_sandbox
def test_labkit_doctor_exits_0_here():
    proc = subprocess.run(
        [*cli_argv(), "doctor"], capture_output=True, text=True, timeout=60, env=cli_env()
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sandbox" in proc.stdout


def cli_argv() -> list[str]:
    return [sys.executable, "-m", "labkit"]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


# -- faked machines ---------------------------------------------------------------


def test_doctor_exits_1_when_no_sandbox_can_start(monkeypatch, capsys):
    monkeypatch.setattr(
        sandbox,
        "why_not",
        lambda: "A labkit sandbox cannot start here: nope. " + sandbox.HOW_TO_FIX,
    )
    monkeypatch.setattr(doctor, "_bridge_nf_in_sandbox", lambda: None)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] sandbox: A labkit sandbox cannot start here: nope." in out
    assert "fix: " + sandbox.HOW_TO_FIX in out
    assert "labkit cannot run here: fix sandbox first." in out


def test_quiet_doctor_prints_only_what_is_not_ok(monkeypatch, capsys):
    monkeypatch.setattr(doctor.shutil, "which", lambda tool, path=None: None)
    assert cli.main(["doctor", "-q"]) in (0, 1)
    out = capsys.readouterr().out
    assert "[ok]" not in out
    assert "[warn] tool ip:" in out


def test_a_missing_tool_says_which_package_to_install(monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda tool, path=None: None)
    tools = by_name(doctor.check_tools())
    assert not tools["tool ip"].ok
    assert "apt-get install -y iproute2" in tools["tool ip"].fix
    assert "apt-get install -y net-tools" in tools["tool arp"].fix
    assert "apt-get install -y net-tools" in tools["tool route"].fix
    assert "apt-get install -y iputils-ping" in tools["tool ping"].fix
    assert "apt-get install -y nftables" in tools["tool nft"].fix
    assert not any(f.blocking for f in tools.values())


def fake_files(monkeypatch, files: dict[str, str]) -> None:
    monkeypatch.setattr(doctor, "_read", lambda path: files.get(path))


def test_user_namespaces_blocked_for_an_ordinary_user(monkeypatch):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    fake_files(
        monkeypatch,
        {
            "/proc/sys/kernel/unprivileged_userns_clone": "0",
            "/proc/sys/user/max_user_namespaces": "0",
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1",
        },
    )
    f = doctor.check_userns()
    assert not f.ok
    assert "kernel.unprivileged_userns_clone=0" in f.detail
    assert "sysctl -w kernel.unprivileged_userns_clone=1" in f.fix
    assert "sysctl -w user.max_user_namespaces=15000" in f.fix
    assert "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in f.fix


def test_user_namespaces_allowed_for_an_ordinary_user(monkeypatch):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    fake_files(monkeypatch, {"/proc/sys/user/max_user_namespaces": "15000"})
    assert doctor.check_userns().ok


def test_user_namespaces_do_not_matter_for_root(monkeypatch):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 0)
    fake_files(monkeypatch, {"/proc/sys/user/max_user_namespaces": "0"})
    f = doctor.check_userns()
    assert f.ok and "not needed as root" in f.detail


def _fake_iptables(monkeypatch, stdout: str, returncode: int = 0, stderr: str = "") -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda tool, path=None: f"/usr/sbin/{tool}")

    def run(argv, **kwargs):
        assert argv == ["/usr/sbin/iptables", "-S", "FORWARD"]  # reads, never writes
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

    monkeypatch.setattr(doctor.subprocess, "run", run)


def test_docker_forward_drop_is_explained_as_not_applying_to_labs(monkeypatch):
    _fake_iptables(monkeypatch, "-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n")
    f = doctor.check_forward()
    assert f.ok
    assert "DROP" in f.detail and "own network namespace" in f.detail


def test_forward_policy_unreadable_without_root(monkeypatch):
    _fake_iptables(monkeypatch, "", 4, "iptables: Permission denied (you must be root).\n")
    f = doctor.check_forward()
    assert f.ok and "could not read" in f.detail


def test_br_netfilter_on_in_the_sandbox_is_a_warning_with_a_fix(monkeypatch):
    monkeypatch.setattr(doctor, "_bridge_nf_in_sandbox", lambda: "1")
    f = doctor.check_br_netfilter()
    assert not f.ok and not f.blocking
    assert "sysctl -w net.bridge.bridge-nf-call-iptables=0" in f.fix
    assert "modprobe -r br_netfilter" in f.fix


def test_br_netfilter_not_loaded_is_ok(monkeypatch):
    monkeypatch.setattr(doctor, "_bridge_nf_in_sandbox", lambda: None)
    fake_files(monkeypatch, {})
    f = doctor.check_br_netfilter()
    assert f.ok and "not loaded" in f.detail


def test_nat_modules_missing_in_a_user_namespace(monkeypatch):
    monkeypatch.setattr(doctor, "_can_load_modules", lambda: False)
    monkeypatch.setattr(doctor, "_module_loaded", lambda module: module != "nf_nat")
    f = doctor.check_nat_modules()
    assert not f.ok and "nf_nat" in f.detail
    assert "modprobe -a nf_tables nf_nat" in f.fix


def test_nat_modules_loaded_in_a_user_namespace(monkeypatch):
    monkeypatch.setattr(doctor, "_can_load_modules", lambda: False)
    monkeypatch.setattr(doctor, "_module_loaded", lambda module: True)
    assert doctor.check_nat_modules().ok


def test_module_loaded_reads_proc_modules(monkeypatch):
    monkeypatch.setattr(doctor.os.path, "isdir", lambda path: False)
    fake_files(monkeypatch, {"/proc/modules": "nf_nat 61440 3 - Live 0x0\nveth 40960 0 - Live"})
    assert doctor._module_loaded("nf_nat") is True
    assert doctor._module_loaded("nf_tables") is False


def test_module_loaded_cannot_tell_without_proc_modules(monkeypatch):
    monkeypatch.setattr(doctor.os.path, "isdir", lambda path: False)
    fake_files(monkeypatch, {})
    assert doctor._module_loaded("nf_tables") is None


def test_report_levels_and_summary():
    findings = [
        doctor.Finding("sandbox", True, "fine"),
        doctor.Finding("tool curl", False, "missing", "apt-get install -y curl"),
    ]
    text = doctor.report(findings)
    assert "[ok]   sandbox: fine" in text
    assert "[warn] tool curl: missing" in text
    assert "fix: apt-get install -y curl" in text
    assert text.endswith("labkit can run here (1 warning).")
    assert doctor.can_run(findings)
    blocked = [doctor.Finding("sandbox", False, "no", "do this", blocking=True)]
    assert not doctor.can_run(blocked)
    assert "[FAIL] sandbox: no" in doctor.report(blocked)


def test_neighbour_table_limit_is_reported_and_a_full_table_warns(monkeypatch):
    real = doctor._read
    finding = doctor.check_neighbour_table()
    limit = real("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
    assert finding.ok and f"at most {limit} entries" in finding.detail

    def fake(entries: int, limit: str):
        stat = f"entries allocs\n{entries:08x} 00000001\n"
        files = {
            "/proc/net/stat/arp_cache": stat,
            "/proc/sys/net/ipv4/neigh/default/gc_thresh3": limit,
        }
        return lambda path: files.get(path, real(path))

    monkeypatch.setattr(doctor, "_read", fake(900, "1024"))
    busy = doctor.check_neighbour_table()
    assert not busy.ok and not busy.blocking and "900 in use" in busy.detail
    assert "gc_thresh3" in busy.fix and "never changes it" in busy.fix
    monkeypatch.setattr(doctor, "_read", fake(3, "128"))
    assert not doctor.check_neighbour_table().ok  # too small for a lab of any size
    monkeypatch.setattr(doctor, "_read", fake(3, None))
    assert doctor.check_neighbour_table().ok  # cannot tell: say so, no warning
