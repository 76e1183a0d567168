"""The course's container image (``deploy/Containerfile``), built and run here with Podman.

What README's "Run it in a container" promises, checked for real:

* the image builds from README's command, on a base image made here with
  mmdebstrap (no registry is needed; ``BASE`` is a build argument);
* README's ``podman run`` command starts JupyterLab, which prints its URL
  with a token and answers its API on the published port with that token;
* notebooks 00-06 pass nbval inside the image, under README's least
  options and no network;
* the escape battery, run by the container's learner from ``labkit run``,
  is refused everywhere;
* README's privilege table: each row's options give the verdict it states,
  and a refusal names the missing option.

Podman runs with its own storage, configuration and temporary folders
under this module's temporary folder, so no image, layer, container or
network of it is left afterwards, and with ``netns = "slirp4netns"``: its
port forwarding then needs no bridge, no iptables rule and no
``ip_forward`` on the machine (its default bridge network changes all
three). The machine's network is compared before and after.

Needs root, podman, runc and mmdebstrap (``./run.sh test`` installs them),
and about six minutes, most of it building. Figures go to
``out/container.json``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import machine_network

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FIGURES = ROOT / "out" / "container.json"
TOOLS = ("podman", "runc", "mmdebstrap")
BASE = "localhost/debian-base:bookworm"
MIRROR = "http://deb.debian.org/debian"
SINGLEUSER = "/home/learner/labkit/.venv/bin/jupyterhub-singleuser"
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("0[0-6]-*.ipynb"))

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (podman, mmdebstrap)"),
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in TOOLS), reason=f"needs {', '.join(TOOLS)}"
    ),
]


# -- README's commands -------------------------------------------------------------


def readme_command(engine: str) -> tuple[list[str], list[str]]:
    """README's one-line command for ``engine``: its build and its run, as argv lists."""
    lines = [ln for ln in README.read_text().splitlines() if ln.startswith(f"{engine} build ")]
    assert len(lines) == 1, f"README should give one `{engine} build ... && {engine} run` line"
    build, run = lines[0].split(" && ")
    return shlex.split(build), shlex.split(run)


def security_options(run: list[str]) -> list[str]:
    """The ``--security-opt``/``--privileged``/``--cap-add`` options of a run command."""
    out = []
    for i, word in enumerate(run):
        if word in ("--security-opt", "--cap-add"):
            out += [word, run[i + 1]]
        elif word == "--privileged" or word.startswith(("--security-opt=", "--cap-add=")):
            out.append(word)
    return out


def readme_privilege_table() -> dict[str, str]:
    """README's privilege table: options cell -> verdict cell."""
    text = README.read_text()
    start = text.index("| options | the sandbox |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1]
    return rows


def test_readme_commands_ask_for_the_least_privileges() -> None:
    _, podman = readme_command("podman")
    _, docker = readme_command("docker")
    for run in (podman, docker):
        assert "--privileged" not in run and "--cap-add" not in " ".join(run)
        assert "systempaths=unconfined" in run
        assert "127.0.0.1:8888:8888" in run
    assert "seccomp=unconfined" in docker  # Docker's profile refuses namespaces
    assert "seccomp=unconfined" not in podman  # Podman's allows them


# -- podman, kept to this module's folder ------------------------------------------


@dataclass
class Podman:
    """Podman with storage, configuration and temporary files under ``base``."""

    base: Path
    figures: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.base / "containers.conf").write_text(
            "[containers]\n"
            "default_ulimits = []\n"  # its defaults exceed what this machine lets root set
            'netns = "slirp4netns"\n'  # no bridge, iptables or ip_forward on the machine
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'runtime = "runc"\n'  # crun fails on this machine's cgroups (hybrid)
            f'tmp_dir = "{self.base}/libpod"\n'
            "[network]\n"
            f'network_config_dir = "{self.base}/cni"\n'
        )
        (self.base / "storage.conf").write_text(
            '[storage]\ndriver = "overlay"\n'
            f'graphroot = "{self.base}/storage"\nrunroot = "{self.base}/run"\n'
        )
        (self.base / "tmp").mkdir()
        self.env = dict(
            os.environ,
            CONTAINERS_CONF=str(self.base / "containers.conf"),
            CONTAINERS_STORAGE_CONF=str(self.base / "storage.conf"),
            TMPDIR=str(self.base / "tmp"),
        )

    def run(self, argv: list[str], timeout: float = 600, **kw: Any) -> subprocess.CompletedProcess:
        """Run a podman command line (``argv[0]`` is ``podman``) in this module's podman."""
        assert argv[0] == "podman"
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, **kw
        )

    def ok(self, argv: list[str], timeout: float = 600) -> str:
        proc = self.run(argv, timeout)
        assert proc.returncode == 0, f"{shlex.join(argv)}:\n{proc.stdout[-3000:]}{proc.stderr}"
        return proc.stdout

    def cleanup(self) -> None:
        for argv in (["rm", "-af", "-t", "0"], ["rmi", "-af"], ["system", "reset", "-f"]):
            self.run(["podman", *argv], timeout=120)


def _ci_build_flags(podman: Podman) -> list[str]:
    """What CI adds to README's build: the local base, host network, the machine's CA."""
    flags = ["--network=host", "--build-arg", f"BASE={BASE}"]
    bundle = "/etc/ssl/certs/ca-certificates.crt"  # this machine's proxy re-signs TLS
    if os.path.exists(bundle):
        flags += ["--secret", f"id=pip-cert,src={bundle}"]
    return flags


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """Podman with the course image (README's build) and CI's test image, built here."""
    before = machine_network()
    files = _engine_files()
    engine = Podman(tmp_path_factory.mktemp("podman"))
    try:
        rootfs = engine.base / "rootfs.tar"
        t0 = time.monotonic()
        subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--quiet", "bookworm", str(rootfs), MIRROR],
            check=True,
            capture_output=True,
            timeout=600,
        )
        engine.ok(["podman", "import", str(rootfs), BASE])
        rootfs.unlink()
        engine.figures["base_image_s"] = round(time.monotonic() - t0, 1)

        build, _ = readme_command("podman")
        t0 = time.monotonic()
        engine.ok([*build[:2], *_ci_build_flags(engine), *build[2:]], timeout=1800)
        engine.figures["build_s"] = round(time.monotonic() - t0, 1)
        size = engine.ok(["podman", "image", "inspect", "labkit", "--format", "{{.Size}}"])
        engine.figures["image_mb"] = round(int(size) / 1e6)
        t0 = time.monotonic()
        engine.ok(
            [*build[:2], *_ci_build_flags(engine), "--target", "test", "-t", "labkit-test"]
            + build[4:],
            timeout=1800,
        )
        engine.figures["test_image_build_s"] = round(time.monotonic() - t0, 1)
        yield engine
    finally:
        engine.cleanup()
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.write_text(json.dumps(engine.figures, indent=1) + "\n")
    left = subprocess.run(["pgrep", "-af", str(engine.base)], capture_output=True, text=True)
    assert not left.stdout.strip(), f"processes of the container tests still run:\n{left.stdout}"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(engine.base) not in mounts, "a mount of the container tests is left"
    after = machine_network()
    changed = [key for key in before if before[key] != after.get(key)]
    assert not changed, f"the container tests changed the machine's {changed}"
    # Podman keeps a blob cache in /var/lib/containers/cache and runc its state
    # folder in /run/runc whatever the configuration says: empty of ours now,
    # they go if they were not there before.
    for path in _engine_files() - files:
        assert path in _SWEPT, f"the container tests left {path} on the machine"
        shutil.rmtree(path)


#: where podman keeps state when it is not told otherwise
_ENGINE_PATHS = (
    "/etc/cni/net.d/cni.lock",
    "/var/lib/cni",
    "/var/lib/containers",
    "/run/containers",
    "/run/libpod",
    "/run/runc",
)


_SWEPT = ("/var/lib/containers", "/run/runc")


def _engine_files() -> set[str]:
    return {path for path in _ENGINE_PATHS if os.path.lexists(path)}


# -- README's run command: JupyterLab with its token -------------------------------


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


@pytest.mark.slow
def test_readme_run_command_serves_jupyterlab_with_its_token(podman: Podman) -> None:
    _, run = readme_command("podman")
    port = _free_port(8888)  # README's port, unless something here already uses it
    run = [w.replace("127.0.0.1:8888:", f"127.0.0.1:{port}:") for w in run]
    run = [w for w in run if w not in ("-it", "-ti")]
    run[2:2] = ["-d", "--name", "labkit-readme"]
    t0 = time.monotonic()
    podman.ok(run, timeout=120)
    try:
        base = f"http://127.0.0.1:{port}"
        status = 0
        while time.monotonic() - t0 < 120 and status == 0:
            try:
                status, _ = _get(f"{base}/api/status")
            except OSError:
                time.sleep(0.1)
        podman.figures["run_to_answer_s"] = round(time.monotonic() - t0, 1)
        printed = podman.run(["podman", "logs", "labkit-readme"])
        logs = printed.stdout + printed.stderr
        assert status == 403, f"JupyterLab did not answer on port {port} (got {status}):\n{logs}"
        urls = re.findall(r"http://127\.0\.0\.1:8888/lab\?token=([0-9a-f]{32,})", logs)
        assert urls, f"JupyterLab printed no URL with a token:\n{logs}"
        status, body = _get(f"{base}/api/status", urls[0])
        assert status == 200 and "started" in json.loads(body)
        status, body = _get(f"{base}/api/kernelspecs", urls[0])
        assert status == 200 and json.loads(body)["default"] == "labkit"
        assert "cannot run here" not in logs, logs
        hubs = podman.run(["podman", "exec", "labkit-readme", "test", "-x", SINGLEUSER])
        assert hubs.returncode == 0, "the image lacks jupyterhub-singleuser (deploy/kubernetes)"
        doctor = podman.run(["podman", "exec", "labkit-readme", ".venv/bin/labkit", "doctor"])
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "[ok]   sandbox" in doctor.stdout and "labkit can run here" in doctor.stdout
    finally:
        podman.run(["podman", "rm", "-f", "-t", "2", "labkit-readme"], timeout=60)


# -- the course inside the image ---------------------------------------------------


def _in_test_image(podman: Podman, options: list[str], command: str, timeout: float = 900):
    return podman.run(
        ["podman", "run", "--rm", "--network=none", *options, "labkit-test", "sh", "-c", command],
        timeout=timeout,
    )


@pytest.mark.slow
def test_notebooks_00_to_06_pass_nbval_inside_the_image(podman: Podman) -> None:
    _, run = readme_command("podman")
    argv = [
        ".venv/bin/python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--nbval",
        "--nbval-sanitize-with",
        "notebooks/nbval-sanitize.cfg",
        *[f"notebooks/{name}" for name in NOTEBOOKS],
    ]
    t0 = time.monotonic()
    proc = _in_test_image(podman, security_options(run), shlex.join(argv))
    podman.figures["nbval_00_06_s"] = round(time.monotonic() - t0, 1)
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert re.search(r"\d+ passed", proc.stdout) and "failed" not in proc.stdout, tail
    assert len(NOTEBOOKS) == 7


_BATTERY = """
import json, os, socket, subprocess, sys
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(4)
params = {
    "machine_netns": os.stat("/proc/self/ns/net").st_ino,
    "root_file": "/etc/debian_version",
    "machine_named_netns": "none-here",
    "machine_port": listener.getsockname()[1],
    "machine_hostname": socket.gethostname(),
    "block_device": "/dev/vda",
}
json.dump(params, open("/tmp/params.json", "w"))
done = subprocess.run([".venv/bin/labkit", "run", "--", "python3", "tests/escape_battery.py",
                       "/tmp/params.json", "/tmp/out.json"])
print(open("/tmp/out.json").read() if done.returncode == 0 else "FAILED")
"""


@pytest.mark.slow
def test_escapes_from_a_lab_in_the_container_are_refused(podman: Podman) -> None:
    _, run = readme_command("podman")
    proc = _in_test_image(
        podman, security_options(run), f".venv/bin/python -c {shlex.quote(_BATTERY)}", 300
    )
    assert proc.returncode == 0 and "FAILED" not in proc.stdout, proc.stdout + proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) >= 15
    # Podman's default seccomp profile refuses sethostname (CAP_SYS_ADMIN only):
    # a lab there keeps the container's hostname, its random id. That one is
    # seen, and documented in README; nothing else may be.
    seen = {r["name"]: r["how"] for r in rows if not r["refused"]}
    assert set(seen) <= {"machine_hostname_visible"}, f"escapes from a lab in the container: {seen}"


# -- README's privilege table --------------------------------------------------------

#: syscalls that Docker's default seccomp profile allows only with CAP_SYS_ADMIN
#: (moby's profiles/seccomp/default.json); Podman's default profile allows them.
_ADMIN_ONLY = {
    "clone", "clone3", "unshare", "setns", "mount", "umount", "umount2", "mount_setattr",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
}  # fmt: skip
_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET


def docker_like_profile(path: Path) -> Path:
    """Podman's default seccomp profile, with namespaces refused as Docker's refuses them.

    Without CAP_SYS_ADMIN: ``unshare``, ``setns`` and mounts refused,
    ``clone`` allowed without namespace flags only, ``clone3`` answered
    ENOSYS (so that libc falls back to ``clone``).
    """
    profile = json.loads(Path("/usr/share/containers/seccomp.json").read_text())
    for rule in profile["syscalls"]:
        if not (rule.get("includes") or {}).get("caps") and rule["action"] == "SCMP_ACT_ALLOW":
            rule["names"] = [n for n in rule["names"] if n not in _ADMIN_ONLY]
    admin = {"caps": ["CAP_SYS_ADMIN"]}
    profile["syscalls"] += [
        {"names": sorted(_ADMIN_ONLY), "action": "SCMP_ACT_ALLOW", "includes": admin},
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": _NAMESPACE_FLAGS, "valueTwo": 0,
                      "op": "SCMP_CMP_MASKED_EQ"}],
            "excludes": admin,
        },
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": admin},
    ]  # fmt: skip
    path.write_text(json.dumps(profile))
    return path


def _privilege_cases(podman: Podman) -> dict[str, list[str]]:
    docker = docker_like_profile(podman.base / "docker-like-seccomp.json")
    paths = ["--security-opt", "systempaths=unconfined"]
    unconfined = ["--security-opt", "seccomp=unconfined"]
    return {
        "none": [],
        "`--security-opt systempaths=unconfined`": paths,
        "Docker's seccomp profile + `systempaths=unconfined`": [
            "--security-opt",
            f"seccomp={docker}",
            *paths,
        ],
        "`seccomp=unconfined` + `systempaths=unconfined`": [*unconfined, *paths],
        "`seccomp=unconfined` alone": unconfined,
        "`--privileged`": ["--privileged"],
    }


_TRY = (
    ".venv/bin/labkit doctor >/tmp/doctor 2>&1; "
    '.venv/bin/labkit run -- sh -c "ip netns add red && ip -n red link set lo up && '
    'ip netns exec red ping -c1 -W2 127.0.0.1 >/dev/null && echo SANDBOX-WORKS" 2>&1; '
    "cat /tmp/doctor"
)


@pytest.mark.slow
def test_readme_privilege_table_is_what_podman_does(podman: Podman) -> None:
    table = readme_privilege_table()
    cases = _privilege_cases(podman)
    assert set(table) == set(cases), "README's privilege table and the measured cases differ"
    measured = {}
    for name, options in cases.items():
        proc = podman.run(
            ["podman", "run", "--rm", "--network=none", *options, "labkit", "sh", "-c", _TRY],
            timeout=180,
        )
        out = proc.stdout + proc.stderr
        works = "SANDBOX-WORKS" in out
        measured[name] = "works" if works else "refused"
        said = table[name]
        verdict = said.replace("*", "").startswith("works")
        assert verdict == works, f"{name}: README says {said!r}, but:\n{out}"
        if works:
            assert "labkit can run here" in out, out
        else:
            named = re.search(r"names `([^`]+)`", said)
            for option in [named.group(1)] if named else ["systempaths=unconfined"]:
                assert option in out, f"{name}: the refusal should name {option}:\n{out}"
            assert "cannot run here" in out, out
    podman.figures["privileges"] = measured


@pytest.mark.slow
def test_a_notebook_in_a_container_without_options_says_which_is_missing(podman: Podman) -> None:
    command = (
        ".venv/bin/jupyter nbconvert --to notebook --execute --allow-errors --stdout "
        "--ExecutePreprocessor.timeout=120 notebooks/01-veth-pair.ipynb"
    )
    proc = podman.run(
        ["podman", "run", "--rm", "--network=none", "labkit", "sh", "-c", command], timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = json.loads(proc.stdout)["cells"]
    first = json.dumps(next(c for c in cells if c["cell_type"] == "code")["outputs"])
    assert "refuses it a /proc of its own" in first, first[:3000]
    assert "--security-opt systempaths=unconfined" in first


# -- the dev container ---------------------------------------------------------------


def test_dev_container_builds_the_same_image_with_dockers_least_options() -> None:
    config = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())
    build = config["build"]
    folder = ROOT / ".devcontainer"
    assert (folder / build["dockerfile"]).resolve() == ROOT / "deploy" / "Containerfile"
    assert (folder / build["context"]).resolve() == ROOT
    stages = re.findall(
        r"^FROM .* AS (\w+)$", (ROOT / "deploy" / "Containerfile").read_text(), re.M
    )
    assert build["target"] == "course" and "course" in stages
    _, docker = readme_command("docker")
    assert config["runArgs"] == security_options(docker)
    assert config["overrideCommand"] is False  # the image's command starts JupyterLab
    assert 8888 in config["forwardPorts"] and config["remoteUser"] == "learner"
    target = config["workspaceMount"].split("target=")[1].split(",")[0]
    assert target == "/home/learner/labkit/notebooks"  # the repository's notebooks, saved there
