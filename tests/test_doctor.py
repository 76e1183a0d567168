"""``labkit doctor``: the machine check, for real and with faked machines."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import machine_network

from labkit import cli, doctor
from labkit.kernel import preflight

needs_sandbox = pytest.mark.skipif(
    preflight.why_not() is not None, reason="no labkit sandbox can start here"
)


def by_name(findings: list[doctor.Finding]) -> dict[str, doctor.Finding]:
    return {f.name: f for f in findings}


# -- the real machine -----------------------------------------------------------


def test_check_returns_findings_with_details_and_fixes():
    findings = doctor.findings()
    assert findings and all(isinstance(f, doctor.Finding) for f in findings)
    names = by_name(findings)
    for name in ("user", "sandbox", "containment", "user namespaces", "kernel modules"):
        assert name in names
    assert "br_netfilter" in names
    assert {f"tool {t}" for t in doctor.TOOLS} <= set(names)
    for f in findings:
        assert f.detail
        assert f.ok or f.fix, f"{f.name} is not ok but says no fix"


def test_report_names_the_sandbox():
    text = doctor.report(doctor.findings())
    assert "sandbox" in text
    assert text.splitlines()[-1].startswith("labkit ")


@needs_sandbox
def test_sandbox_finding_is_ok_where_a_sandbox_can_start():
    assert by_name(doctor.findings())["sandbox"].ok


def test_check_leaves_the_machine_alone():
    before = machine_network()
    doctor.findings()
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
        preflight,
        "why_not",
        lambda: "A labkit sandbox cannot start here: nope. " + preflight.HOW_TO_FIX,
    )
    monkeypatch.setattr(doctor, "_bridge_nf_in_sandbox", lambda: None)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] sandbox: A labkit sandbox cannot start here: nope." in out
    assert "fix: " + preflight.HOW_TO_FIX in out
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


def fake_sysctls(monkeypatch, tmp_path: Path, files: dict[str, str]) -> None:
    """Only these files under /proc/sys, as preflight.userns_sysctls reads them."""
    for path, value in files.items():
        f = tmp_path / path.removeprefix("/proc/sys/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(value + "\n")
    monkeypatch.setattr(preflight, "PROC_SYS", str(tmp_path))


def test_user_namespaces_blocked_for_an_ordinary_user(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    fake_sysctls(
        monkeypatch,
        tmp_path,
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


def test_user_namespaces_allowed_for_an_ordinary_user(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    fake_sysctls(monkeypatch, tmp_path, {"/proc/sys/user/max_user_namespaces": "15000"})
    assert doctor.check_userns().ok


def test_user_namespaces_allowed_for_root_whatever_the_unprivileged_switches_say(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 0)
    fake_sysctls(
        monkeypatch,
        tmp_path,
        {
            "/proc/sys/kernel/unprivileged_userns_clone": "0",
            "/proc/sys/user/max_user_namespaces": "15000",
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1",
        },
    )
    f = doctor.check_userns()
    assert f.ok, f
    assert "root may create them" in f.detail and "every sandbox uses one" in f.detail
    assert "not needed" not in f.detail


def test_max_user_namespaces_0_forbids_them_to_root_too(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 0)
    fake_sysctls(
        monkeypatch,
        tmp_path,
        {
            "/proc/sys/kernel/unprivileged_userns_clone": "0",
            "/proc/sys/user/max_user_namespaces": "0",
        },
    )
    f = doctor.check_userns()
    assert not f.ok
    assert "root included" in f.detail
    assert "`sysctl -w user.max_user_namespaces=15000`" in f.fix
    assert "unprivileged_userns_clone" not in f.fix  # it does not bind root


def test_user_says_root_still_gets_a_user_namespace(monkeypatch):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 0)
    monkeypatch.setattr(doctor, "_initial_userns", lambda: True)
    f = doctor.check_user()
    assert f.ok and "running as root" in f.detail
    assert "user namespace" in f.detail and "unprivileged uid" in f.detail
    assert "needs no user namespace" not in f.detail
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    assert "running as user 1000 (not root)" in doctor.check_user().detail


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


# -- kernel modules ------------------------------------------------------------------


def fake_modules(monkeypatch, missing: list[str], can_load: bool, modprobe: bool | None) -> None:
    monkeypatch.setattr(doctor.modules, "missing", lambda: list(missing))
    monkeypatch.setattr(doctor, "_can_load_modules", lambda: can_load)
    monkeypatch.setattr(doctor, "_modprobe_finds", lambda names: modprobe)


def test_modules_all_there_is_ok(monkeypatch):
    fake_modules(monkeypatch, [], can_load=False, modprobe=None)
    fake_files(monkeypatch, {"/proc/modules": "veth 40960 0 - Live 0x0"})
    f = doctor.check_modules()
    assert f.ok and f.name == "kernel modules"
    assert "veth" in f.detail and "xt_MASQUERADE" in f.detail


def test_missing_nat_modules_in_a_user_namespace_warn_with_modprobe(monkeypatch):
    fake_modules(monkeypatch, ["nf_nat", "xt_MASQUERADE"], can_load=False, modprobe=None)
    f = doctor.check_modules()
    assert not f.ok and not f.blocking
    assert "nf_nat, xt_MASQUERADE" in f.detail
    assert "a sandbox cannot load kernel modules itself" in f.detail
    assert "iptables rules and NAT" in f.detail
    assert "veth pairs" not in f.detail
    assert "`modprobe -a nf_nat xt_MASQUERADE`" in f.fix and "as root" in f.fix


def test_missing_veth_or_bridge_blocks(monkeypatch):
    fake_modules(monkeypatch, ["veth", "bridge", "nf_nat"], can_load=False, modprobe=None)
    f = doctor.check_modules()
    assert not f.ok and f.blocking
    assert "veth pairs, the bridge v-net-0 and iptables rules and NAT" in f.detail
    assert "`modprobe -a veth bridge nf_nat`" in f.fix
    assert not doctor.can_run([f])


def test_root_who_can_load_them_is_told_labkit_loads_them(monkeypatch):
    fake_modules(monkeypatch, ["veth", "nf_nat"], can_load=True, modprobe=True)
    f = doctor.check_modules()
    assert f.ok
    assert "not loaded yet: veth, nf_nat" in f.detail
    assert "labkit loads them as root before a sandbox starts" in f.detail


def test_root_without_modprobe_is_told_to_install_it(monkeypatch):
    fake_modules(monkeypatch, ["bridge"], can_load=True, modprobe=None)
    f = doctor.check_modules()
    assert not f.ok and f.blocking
    assert "modprobe is not installed" in f.detail
    assert "apt-get install -y kmod" in f.fix and "`modprobe -a bridge`" in f.fix
    fake_modules(monkeypatch, ["xt_nat"], can_load=True, modprobe=False)
    f = doctor.check_modules()
    assert not f.ok and not f.blocking
    assert "modprobe cannot find them" in f.detail
    assert "`modprobe -a xt_nat`" in f.fix


def test_the_modules_check_only_asks_modprobe_for_a_dry_run(monkeypatch):
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(doctor.shutil, "which", lambda tool, path=None: f"/usr/sbin/{tool}")
    monkeypatch.setattr(doctor.subprocess, "run", run)
    assert doctor._modprobe_finds(["veth", "bridge"]) is True
    assert calls == [["/usr/sbin/modprobe", "--dry-run", "-q", "-a", "veth", "bridge"]]
    monkeypatch.setattr(doctor.shutil, "which", lambda tool, path=None: None)
    assert doctor._modprobe_finds(["veth"]) is None


def test_doctor_never_loads_modules(monkeypatch):
    def refuse() -> list[str]:
        raise AssertionError("doctor called modules.load()")

    monkeypatch.setattr(doctor.modules, "load", refuse)
    doctor.check_modules()


# -- containment ---------------------------------------------------------------------


def fake_containment(
    monkeypatch, euid: int, accounts: dict[int, str], terminals: bool = True
) -> None:
    monkeypatch.setattr(doctor.os, "geteuid", lambda: euid)
    monkeypatch.setattr(doctor.os, "getegid", lambda: euid)
    monkeypatch.setattr(preflight.os, "geteuid", lambda: euid)
    monkeypatch.setattr(preflight.os, "getegid", lambda: euid)
    monkeypatch.setattr(preflight, "inside", lambda: False)
    monkeypatch.delenv(preflight.UID_ENV, raising=False)
    monkeypatch.setattr(doctor, "_initial_userns", lambda: True)
    everything = "0 0 4294967295"
    fake_files(monkeypatch, {"/proc/self/uid_map": everything, "/proc/self/gid_map": everything})
    monkeypatch.setattr(doctor.jupyter, "server_config_installed", lambda: terminals)

    def getpwuid(uid: int) -> pwd.struct_passwd:
        if uid not in accounts:
            raise KeyError(uid)
        return pwd.struct_passwd((accounts[uid], "x", uid, uid, "", "/", "/bin/sh"))

    monkeypatch.setattr(doctor.pwd, "getpwuid", getpwuid)
    monkeypatch.setattr(doctor.pwd, "getpwall", lambda: [getpwuid(u) for u in accounts])


def test_containment_as_root_names_the_unused_uid(monkeypatch):
    fake_containment(monkeypatch, 0, {0: "root", 1000: "ann"})
    f = doctor.check_containment()
    assert f.ok, f
    assert f.detail == (
        f"learner root is uid {preflight.SANDBOX_UID} on this machine (no account has it); "
        "terminals join the notebook's lab"
    )


def test_containment_warns_when_an_account_has_the_learners_uid(monkeypatch):
    fake_containment(monkeypatch, 0, {0: "root", preflight.SANDBOX_UID + 7: "mallory"})
    f = doctor.check_containment()
    assert not f.ok and not f.blocking
    assert "account mallory has a uid in" in f.detail
    assert preflight.UID_ENV in f.fix


def test_containment_for_an_ordinary_user_is_that_user(monkeypatch):
    fake_containment(monkeypatch, 1000, {1000: "ann"})
    f = doctor.check_containment()
    assert f.ok
    assert f.detail.startswith("learner root is you (uid 1000) on this machine;")


def test_containment_warns_when_terminals_are_not_sandboxed(monkeypatch):
    fake_containment(monkeypatch, 0, {0: "root"}, terminals=False)
    f = doctor.check_containment()
    assert not f.ok and not f.blocking
    assert "terminals are NOT sandboxed" in f.detail
    assert "-m labkit.jupyter install" in f.fix


def test_containment_fails_in_a_container_that_maps_too_few_ids(monkeypatch):
    fake_containment(monkeypatch, 0, {0: "root"})
    monkeypatch.setattr(doctor, "_initial_userns", lambda: False)
    monkeypatch.setattr(preflight, "learner_ids_exist", lambda: False)
    f = doctor.check_containment()
    assert not f.ok and f.blocking
    assert "no sandbox can start" in f.detail
    assert preflight.UID_ENV in f.fix


def test_id_maps_join_adjacent_ranges(tmp_path):
    m = tmp_path / "uid_map"
    m.write_text("0 1000 10\n10 5000 10\n100 9000 5")
    assert preflight.ids_mapped(str(m), 0, 20)
    assert preflight.ids_mapped(str(m), 5, 10)
    assert not preflight.ids_mapped(str(m), 0, 21)
    assert not preflight.ids_mapped(str(m), 15, 90)
    assert preflight.ids_mapped(str(m), 100, 5)
    assert not preflight.ids_mapped(str(m), 100, 6)


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
        monkeypatch.setattr(doctor.probe, "neighbour_stats", lambda: {"entries": entries})
        files = {"/proc/sys/net/ipv4/neigh/default/gc_thresh3": limit}
        return lambda path: files.get(path, real(path))

    monkeypatch.setattr(doctor, "_read", fake(900, "1024"))
    busy = doctor.check_neighbour_table()
    assert not busy.ok and not busy.blocking and "900 in use" in busy.detail
    assert "gc_thresh3" in busy.fix and "never changes it" in busy.fix
    monkeypatch.setattr(doctor, "_read", fake(3, "128"))
    assert not doctor.check_neighbour_table().ok  # too small for a lab of any size
    monkeypatch.setattr(doctor, "_read", fake(3, None))
    assert doctor.check_neighbour_table().ok  # cannot tell: say so, no warning


# -- in a container ----------------------------------------------------------------


@pytest.mark.parametrize("engine", ["Docker", "Podman", "Kubernetes"])
def test_a_container_that_refuses_namespaces_names_the_seccomp_option(
    monkeypatch, tmp_path, engine
):
    fake_sysctls(monkeypatch, tmp_path, {"/proc/sys/user/max_user_namespaces": "15000"})
    monkeypatch.setattr(preflight, "container", lambda: engine)
    text = preflight.cannot_start(1, uid=1000)
    assert f"in a container ({engine})" in text
    assert "--security-opt seccomp=unconfined" in text
    assert "systempaths=unconfined" in text and "last resort" in text


def test_outside_a_container_the_paragraph_does_not_speak_of_one(monkeypatch, tmp_path):
    fake_sysctls(monkeypatch, tmp_path, {"/proc/sys/user/max_user_namespaces": "15000"})
    monkeypatch.setattr(preflight, "container", lambda: None)
    text = preflight.cannot_start(1, uid=1000)
    assert "in a container (" not in text and "labkit needs root or user namespaces" in text


def test_doctor_names_the_missing_proc_option(monkeypatch, capsys):
    monkeypatch.setattr(preflight, "try_fresh_proc", lambda: 1)
    monkeypatch.setattr(preflight, "container", lambda: "Podman")
    monkeypatch.setattr(doctor, "_bridge_nf_in_sandbox", lambda: None)
    assert cli.main(["doctor", "-q"]) == 1
    out = capsys.readouterr().out
    assert "in a container (Podman)" in out and "--security-opt systempaths=unconfined" in out


@pytest.mark.parametrize("refused", ["namespaces", "proc"])
def test_on_binder_the_paragraph_points_to_the_stored_outputs(monkeypatch, tmp_path, refused):
    fake_sysctls(monkeypatch, tmp_path, {"/proc/sys/user/max_user_namespaces": "15000"})
    monkeypatch.setenv("BINDER_LAUNCH_HOST", "https://mybinder.org/")
    monkeypatch.setattr(preflight, "container", lambda: "Kubernetes")
    text = (
        preflight.cannot_start(1, 1000) if refused == "namespaces" else preflight.no_fresh_proc(1)
    )
    assert text.startswith("A labkit sandbox cannot start on Binder (https://mybinder.org/)")
    assert "stored outputs" in text and "Run it in a container" in text
    assert "--security-opt" not in text  # nothing a Binder user can pass
