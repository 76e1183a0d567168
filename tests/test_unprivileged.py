"""The sandbox as an ordinary user (uid 65534), where user namespaces work.

Skipped when the tests do not run as root (we need to become another user)
or when no Python can be run by that user.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys

import pytest

from labkit.kernel.preflight import try_unshare as _child_probe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _others_can_run(path: str) -> bool:
    """True when every directory on the way is open to others (o+x)."""
    parts = os.path.realpath(path).split("/")
    dirs = ["/".join(parts[:i]) or "/" for i in range(1, len(parts))]
    return all(os.stat(d).st_mode & 0o001 for d in dirs) and bool(os.stat(path).st_mode & 0o001)


def _python_for_nobody() -> str | None:
    for candidate in (
        os.path.realpath(sys.executable),
        f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}",
    ):
        if not os.path.exists(candidate) or not _others_can_run(candidate):
            continue
        probe = subprocess.run([*NOBODY, candidate, "-c", "pass"], capture_output=True)
        if probe.returncode == 0:
            return candidate
    return None


def _as_nobody(*argv: str, group: int = 65534) -> subprocess.CompletedProcess:
    python = _python_for_nobody()
    who = [*NOBODY[:2], f"--regid={group}", *NOBODY[3:]]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/tmp",
        "PYTHONPATH": ":".join([ROOT, *site.getsitepackages()]),
    }
    return subprocess.run(
        [*who, python, "-m", "labkit", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _userns_works_for_nobody() -> bool:
    python = _python_for_nobody()
    if not python:
        return False
    code = (
        "from labkit.kernel.preflight import why_not; import sys; sys.exit(why_not() is not None)"
    )
    env = {"PYTHONPATH": ":".join([ROOT, *site.getsitepackages()])}
    return subprocess.run([*NOBODY, python, "-c", code], env=env).returncode == 0


pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not _python_for_nobody(),
    reason="needs root (to become uid 65534) and a Python that uid 65534 can run",
)


def test_probe_runs():
    assert _child_probe(0) is None


@pytest.mark.skipif(
    not _userns_works_for_nobody() if os.geteuid() == 0 else True, reason="no user namespaces"
)
def test_ordinary_user_builds_the_bridge_and_pings():
    proc = _as_nobody(
        "run",
        "--",
        "sh",
        "-c",
        "id -u && sudo ip netns add red && labkit up bridge -q && "
        "ip netns exec red ping -c1 -W1 192.168.15.2",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "0"  # root inside the sandbox only
    assert "1 received" in proc.stdout


@pytest.mark.skipif(
    not _userns_works_for_nobody() if os.geteuid() == 0 else True, reason="no user namespaces"
)
def test_a_user_whose_group_is_not_nobody_starts_a_sandbox():
    # The group map was once read after unshare, where every id reads 65534:
    # it worked for uid 65534 with group 65534 only (a container's user 1000 failed).
    proc = _as_nobody("run", "--", "sh", "-c", "id -u; id -g; ip netns add red", group=100)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "0"]


def test_no_fresh_proc_is_a_clear_refusal_naming_the_container_option():
    from labkit.kernel.preflight import no_fresh_proc, try_fresh_proc

    assert try_fresh_proc() is None  # root here: a /proc of its own is allowed
    text = no_fresh_proc(1)
    assert "mount /proc: Operation not permitted" in text
    assert "--security-opt systempaths=unconfined" in text and "procMount: Unmasked" in text


@pytest.mark.slow
@pytest.mark.skipif(
    not _userns_works_for_nobody() if os.geteuid() == 0 else True, reason="no user namespaces"
)
@pytest.mark.skipif(
    not _others_can_run(os.path.realpath(sys.executable)) or not _others_can_run(sys.executable),
    reason="this Python environment is not readable by uid 65534",
)
def test_ordinary_user_runs_notebooks_01_and_06_under_nbval(tmp_path):
    """The course as an ordinary user: two notebooks, on the labkit kernel, checked by nbval."""
    work = tmp_path / "course"
    shutil.copytree(
        os.path.join(ROOT, "notebooks"),
        work,
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "0[02345789]-*", "99-*"),
    )
    for path in [work, *work.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }
    proc = subprocess.run(
        [*NOBODY, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval"]
        + ["--nbval-sanitize-with", "nbval-sanitize.cfg", "-o", "addopts=", "--rootdir", "."]
        + ["01-veth-pair.ipynb", "06-portforward.ipynb"],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and int(summary.split(" passed")[0].split()[-1]) >= 20, summary
