"""The course on a machine that runs Docker (or Podman): ip_forward=1, br_netfilter.

Docker sets the machine's ``net.ipv4.ip_forward`` to 1. With
``net.core.devconf_inherit_init_net=0`` (the default, and machine-wide), every
namespace made afterwards copies that value: a learner's ``ip netns add red``
makes a red that forwards, although the learner did everything as the
tutorial says, and the sandbox's own host starts forwarding too. Docker also
loads ``br_netfilter``, which sends bridged traffic through iptables.

This test turns the machine into such a host for a while (ip_forward=1, and
``modprobe br_netfilter`` where the bridge's netfilter sysctls are missing and
modules can be loaded), runs the stage tests (``tests/test_lab.py``,
``tests/test_notebook_checks.py``) and the notebooks 00 to 06 under nbval in a
pytest subprocess, and puts everything back in a ``finally`` (the machine's
value of ip_forward; the module unloaded only if this test loaded it).
``tests/test_zz_machine_untouched.py`` checks that afterwards.

It runs in the default test command; skip it with ``-m "not docker_host"``.
It needs root (it changes the machine's sysctl) and takes about two minutes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker_host, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
BRIDGE_NF = Path("/proc/sys/net/bridge")
STAGE_TESTS = ["tests/test_lab.py", "tests/test_notebook_checks.py"]
NOTEBOOKS = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("notebooks/0[0-6]-*.ipynb"))


def _modprobe() -> str | None:
    return shutil.which("modprobe", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def docker_like_machine() -> Iterator[list[str]]:
    """The machine as Docker leaves it, for the duration of the ``with``.

    Yields what was changed (for the report). A SIGTERM while inside is
    turned into an exception, so the ``finally`` still puts things back.
    """
    before = FORWARD.read_text().strip()
    loaded_here = False
    old_term = signal.signal(signal.SIGTERM, _interrupted)
    changed = []
    try:
        FORWARD.write_text("1\n")
        changed.append(f"net.ipv4.ip_forward {before} -> 1")
        if not BRIDGE_NF.exists() and _modprobe():
            proc = subprocess.run([_modprobe(), "br_netfilter"], capture_output=True, text=True)
            loaded_here = proc.returncode == 0 and BRIDGE_NF.exists()
            if loaded_here:
                changed.append("br_netfilter loaded")
        yield changed
    finally:
        FORWARD.write_text(before + "\n")
        if loaded_here:
            subprocess.run([_modprobe(), "-r", "br_netfilter"], capture_output=True)
        signal.signal(signal.SIGTERM, old_term)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: it sets the machine's ip_forward")
def test_stages_and_notebooks_on_a_docker_host():
    assert len(NOTEBOOKS) == 7, NOTEBOOKS
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbval",
        "--nbval-sanitize-with",
        "notebooks/nbval-sanitize.cfg",
        *STAGE_TESTS,
        *NOTEBOOKS,
    ]
    before = FORWARD.read_text()
    with docker_like_machine() as changed:
        # what the machine gives a namespace made by hand, as a learner makes it
        probe = subprocess.run(
            [sys.executable, "-m", "labkit", "run", "--", "sh", "-c",
             "ip netns add red && ip netns exec red cat /proc/sys/net/ipv4/ip_forward"],
            capture_output=True, text=True, cwd=ROOT, timeout=120,
        )  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert FORWARD.read_text() == before  # put back
    # the set-up is real: a namespace made by hand forwards on such a machine
    assert probe.stdout.split()[-1:] == ["1"], (changed, probe.stdout, probe.stderr)
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
    assert proc.returncode == 0, f"on a Docker-like machine ({', '.join(changed)}):\n{tail}"
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail
