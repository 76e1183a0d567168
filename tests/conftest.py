"""Shared test set-up.

* Tests marked ``sandbox`` run in a fresh labkit sandbox each (a forked
  process with its own namespaces), against the real kernel.
* The machine's own network is recorded when the session starts and
  compared when it ends: any difference fails the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading

import pytest

from labkit.world import run_in_lab

collect_ignore = ["../labkit/__main__.py"]


def _cmd(argv: list[str]) -> str:
    if not shutil.which(argv[0]):
        return f"({argv[0]} not installed)"
    proc = subprocess.run(argv, capture_output=True, text=True)
    return proc.stdout + proc.stderr


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "(absent)"


def machine_network() -> dict[str, str]:
    """The machine's own network, as text to compare (no counters)."""
    links = json.loads(_cmd(["ip", "-j", "link"]) or "[]")
    for link in links:
        link.pop("operstate", None)
    snap = {
        "links": json.dumps(links, sort_keys=True),
        "addrs": _cmd(["ip", "-j", "addr"]),
        "routes": _cmd(["ip", "-j", "route", "show", "table", "all"]),
        "rules": _cmd(["ip", "-j", "rule"]),
        "netns": _cmd(["ip", "netns", "list"]),
        "run_netns": " ".join(sorted(os.listdir("/run/netns")))
        if os.path.isdir("/run/netns")
        else "(absent)",
        "iptables": "\n".join(
            line for line in _cmd(["iptables-save"]).splitlines() if not line.startswith("#")
        ),
        "nft": _cmd(["nft", "list", "ruleset"]),
        "ip_forward": _read("/proc/sys/net/ipv4/ip_forward"),
        "bridge_nf": _read("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        "hostname": _read("/proc/sys/kernel/hostname"),
    }
    return snap


BEFORE: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sandbox: run the test in a fresh labkit sandbox")
    BEFORE.update(machine_network())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    after = machine_network()
    changed = [k for k in BEFORE if BEFORE[k] != after.get(k)]
    if changed:
        print(f"\nFAILED: the machine's own network changed during the tests: {changed}")
        session.exitstatus = 1


@pytest.fixture
def tmp_path(tmp_path: pytest.TempPathFactory) -> object:
    """pytest's tmp_path, open to the sandbox's learner (an unprivileged user).

    pytest makes its folders for the user who runs it alone (mode 700);
    a sandbox's root is another user on the machine.
    """
    path = tmp_path
    path.chmod(0o777)
    for parent in path.parents:
        if parent == parent.parent or parent.name == "tmp":
            break
        if parent.stat().st_uid == os.geteuid():
            parent.chmod(parent.stat().st_mode | 0o755)
    return path


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if pyfuncitem.get_closest_marker("sandbox") is None:
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    # An event loop closed by an earlier test (Playwright's) ends its
    # executor's threads a moment later; run_in_lab forks only alone.
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(timeout=10)
    run_in_lab(pyfuncitem.obj, **kwargs)
    return True
