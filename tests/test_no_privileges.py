"""No privileges: neither root nor user namespaces, for real.

labkit needs root or user namespaces. Where it has neither, the CLI, the
Jupyter kernel, the Python API and ``labkit doctor`` must all say so in
the same paragraph (why, then how to fix), without a traceback.

The recipe (run as root; it changes nothing on the machine)
------------------------------------------------------------
``python tests/test_no_privileges.py CMD [ARG...]`` runs CMD where labkit
has no privileges at all:

1. it forks; the child calls ``unshare(CLONE_NEWUSER)``: a new user
   namespace U;
2. the parent (real root, so it may map any range) maps U's ids 0-65535 to
   the machine's unused ids 100000-165535 (``/proc/CHILD/uid_map`` and
   ``gid_map``): nothing on the machine belongs to them;
3. the child, still holding every capability in U, becomes U's root and
   writes 0 to ``/proc/sys/user/max_user_namespaces``. That sysctl belongs
   to U (each user namespace has its own): it forbids user namespaces
   *below U* only, and the machine's value stays as it was;
4. the child becomes user 1000 of U (machine uid 101000), which drops every
   capability, and executes CMD.

So CMD runs as an ordinary user (not root, no capabilities, in U or on the
machine) for whom ``unshare(CLONE_NEWUSER)`` fails with ENOSPC, as on a
machine where ``user.max_user_namespaces=0``. ``unshare --user`` (util-linux)
cannot do step 2 without newuidmap, nor step 3 between mapping and dropping
root, hence this small helper. Everything runs in child processes; the
tests check that the machine's sysctl is unchanged and that no process of
uid 101000 is left.

The uid 101000 cannot run this venv's Python (it lives under /root), so
the children run the system's Python of the same version with the venv's
site-packages on PYTHONPATH, and the kernel is the ``labkit`` kernelspec
written for that Python (:func:`labkit.jupyter.kernelspec`).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from labkit import jupyter
from labkit.kernel import libc, preflight

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: user 1000 of the user namespace is this uid on the machine
INSIDE_UID = 1000
OUTER_BASE = 100000
MACHINE_UID = OUTER_BASE + INSIDE_UID
MAX_USERNS = "/proc/sys/user/max_user_namespaces"
TIMEOUT = 180

# -- the recipe (runs as a script, in a child of the tests) ---------------------


def _helper(argv: list[str]) -> int:
    """Run ``argv`` as user 1000 of a user namespace that allows no user namespaces."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: steps 1, 3 and 4
        try:
            os.close(ready_r)
            os.close(go_w)
            libc.unshare(libc.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            if os.read(go_r, 1) != b"1":
                os._exit(125)
            os.setresgid(0, 0, 0)
            os.setgroups([])
            os.setresuid(0, 0, 0)
            with open(MAX_USERNS, "w") as f:
                f.write("0")
            os.setresgid(INSIDE_UID, INSIDE_UID, INSIDE_UID)
            os.setresuid(INSIDE_UID, INSIDE_UID, INSIDE_UID)  # every capability goes
            libc.set_parent_death_signal(signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(125)
            os.execvp(argv[0], argv)
        except BaseException as err:  # noqa: BLE001 - say it, and never return
            print(f"no-privileges helper: {err!r}", file=sys.stderr, flush=True)
        os._exit(125)
    os.close(ready_w)
    os.close(go_r)
    if os.read(ready_r, 1) == b"1":  # step 2
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(f"0 {OUTER_BASE} 65536\n")
        os.write(go_w, b"1")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# -- running things there ----------------------------------------------------------


def _machine_max() -> str:
    """The machine's user.max_user_namespaces, read from these tests' own namespace."""
    with open(MAX_USERNS) as f:
        return f.read()


def _others_can_run(path: str) -> bool:
    parts = os.path.realpath(path).split("/")
    dirs = ["/".join(parts[:i]) or "/" for i in range(1, len(parts))]
    return all(os.stat(d).st_mode & 0o001 for d in dirs) and bool(os.stat(path).st_mode & 0o001)


def _python_for_others() -> str | None:
    """A Python of this version that any user can run (this venv's may not be)."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (os.path.realpath(sys.executable), f"/usr/bin/python{version}"):
        if os.path.exists(candidate) and _others_can_run(candidate):
            return candidate
    return None


PYTHON = _python_for_others()

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or PYTHON is None or not os.path.exists(MAX_USERNS),
    reason="needs root (to map a user namespace), a Python every user can run, "
    "and per-namespace user.max_user_namespaces",
)


def _leftovers() -> list[int]:
    """PIDs of processes running as the machine uid the recipe uses (none expected)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == MACHINE_UID:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _gone(timeout: float = 10.0) -> bool:
    """Wait until no process of the recipe's uid is left; False if one stays."""
    deadline = time.monotonic() + timeout
    while _leftovers():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _end(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def home() -> Iterator[str]:
    """A HOME for user 1000 of the namespace, with the labkit kernelspec for its Python."""
    before = _machine_max()
    path = tempfile.mkdtemp(prefix="labkit-noprivs-")
    kernel_dir = os.path.join(path, "jupyter", "kernels", jupyter.KERNEL_NAME)
    os.makedirs(kernel_dir)
    with open(os.path.join(kernel_dir, "kernel.json"), "w") as f:
        json.dump(jupyter.kernelspec(PYTHON), f)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.chown(name, MACHINE_UID, MACHINE_UID)
    try:
        yield path
    finally:
        _end(_leftovers())
        shutil.rmtree(path, ignore_errors=True)
        assert _machine_max() == before, "the machine's sysctl changed"


def _env(home: str) -> dict[str, str]:
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONPATH": ":".join([ROOT, *site.getsitepackages()]),
        "JUPYTER_PATH": os.path.join(home, "jupyter"),
        "JUPYTER_RUNTIME_DIR": os.path.join(home, "runtime"),
        "JUPYTER_CONFIG_DIR": os.path.join(home, "config"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": os.path.join(home, "ipython"),
        "MPLCONFIGDIR": os.path.join(home, "mpl"),
    }


def no_privileges(home: str, *argv: str) -> subprocess.CompletedProcess:
    """Run ``argv`` through the recipe, in ``home``; end whatever it leaves."""
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(home),
        cwd=home,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        _end(_leftovers())
        pytest.fail(f"{argv} took more than {TIMEOUT} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def labkit_cli(home: str, *args: str) -> subprocess.CompletedProcess:
    return no_privileges(home, PYTHON, "-m", "labkit", *args)


def python(home: str, code: str) -> subprocess.CompletedProcess:
    return no_privileges(home, PYTHON, "-c", code)


@pytest.fixture(scope="module")
def paragraph(home: str) -> str:
    """What labkit says there, as the Python API gets it from :func:`why_not`."""
    proc = python(home, "from labkit.kernel.preflight import why_not; print(why_not())")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def assert_says(text: str, paragraph: str) -> None:
    """``text`` holds the whole paragraph, sentence for sentence, and no traceback."""
    why, fix = preflight.why_and_fix(paragraph)
    assert why and fix
    for part in (why, fix):
        assert part in text, f"missing {part!r} in:\n{text}"
    assert "Traceback" not in text, text


# -- the environment is what it claims ----------------------------------------------


def test_the_recipe_gives_neither_root_nor_user_namespaces(home):
    before = _machine_max()
    proc = no_privileges(
        home,
        "sh",
        "-c",
        "echo uid=$(id -u); grep -E '^Cap(Prm|Eff):' /proc/self/status; "
        f"echo max=$(cat {MAX_USERNS}); "
        "unshare --user true 2>/dev/null && echo userns=yes || echo userns=no; "
        "unshare --net true 2>/dev/null && echo netns=yes || echo netns=no",
    )
    assert proc.returncode == 0, proc.stderr
    seen = dict(
        line.replace(":", "=", 1).replace("\t", "").split("=")
        for line in proc.stdout.split("\n")
        if line
    )
    assert seen == {
        "uid": str(INSIDE_UID),  # not root, in the namespace or on the machine
        "CapPrm": "0000000000000000",  # no capability at all
        "CapEff": "0000000000000000",
        "max": "0",  # the namespace's own user.max_user_namespaces
        "userns": "no",
        "netns": "no",
    }
    assert _machine_max() == before != "0\n"  # the machine's is untouched


def test_the_paragraph_says_why_and_how_to_fix(paragraph):
    why, fix = preflight.why_and_fix(paragraph)
    assert why.startswith("A labkit sandbox cannot start here: labkit needs root or user ")
    assert f"It runs as user {INSIDE_UID}, not root," in why
    assert "refuses it a user namespace" in why
    assert "No space left on device; user.max_user_namespaces is 0" in why
    assert fix.startswith(preflight.FIX_INTRO)
    assert "run labkit as root (`sudo labkit shell`" in fix
    assert "`sysctl -w user.max_user_namespaces=15000`" in fix  # the one in the way
    assert "unprivileged_userns_clone" not in fix  # not the ones that are not
    assert "machine, VM or container where they are allowed" in fix
    assert "\n" not in paragraph and preflight.DISABLE not in paragraph


# -- the four places ----------------------------------------------------------------


def test_doctor_exits_1_with_the_paragraph(home, paragraph):
    proc = labkit_cli(home, "doctor")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    why, fix = preflight.why_and_fix(paragraph)
    assert f"[FAIL] sandbox: {why}\n" in proc.stdout
    assert f"       fix: {fix}\n" in proc.stdout
    assert "fix: as root: `sysctl -w user.max_user_namespaces=15000`" in proc.stdout
    assert proc.stdout.rstrip().endswith("labkit cannot run here: fix sandbox first.")
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["shell"],
        ["run", "--", "true"],
        ["up", "veth"],
    ],
    ids=["shell", "run", "up"],
)
def test_cli_fails_with_the_paragraph(home, paragraph, args):
    proc = labkit_cli(home, *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == f"labkit: error: {paragraph}\n"
    assert proc.stdout == ""


def test_python_api_raises_sandbox_error_with_the_paragraph(home, paragraph):
    code = (
        "import labkit\n"
        "from labkit.errors import SandboxError\n"
        "try:\n"
        "    labkit.Lab().goto('veth')\n"
        "except SandboxError as err:\n"
        "    print(err)\n"
        "else:\n"
        "    print('no error')\n"
    )
    proc = python(home, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == paragraph + "\n"


_KERNEL_DRIVER = """
import json, sys
import nbformat
from nbclient import NotebookClient

first = nbformat.read(sys.argv[1], as_version=4)
cells = [next(c.source for c in first.cells if c.cell_type == "code"),
         "!sudo ip netns add red", "!ip netns add red",
         "labkit.Lab().goto('veth')", "print('still here', 6 * 7)"]
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
client = NotebookClient(
    nb, kernel_name="labkit", timeout=60, allow_errors=True, shutdown_kernel="immediate"
)
client.execute()
json.dump([c.outputs for c in nb.cells], sys.stdout)
"""


def test_kernel_starts_and_explains_in_every_cell(home, paragraph):
    notebook = os.path.join(ROOT, "notebooks", "00-namespaces.ipynb")
    proc = no_privileges(home, PYTHON, "-c", _KERNEL_DRIVER, notebook)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = json.loads(proc.stdout)
    assert _gone(), "the kernel outlived the notebook"
    assert not glob.glob(os.path.join(home, "labkit-nosandbox-*")), "the kernel left its shims"

    def text(cell: list[dict]) -> str:
        return "".join(o.get("text", "") + "".join(o.get("traceback", [])) for o in cell)

    first, sudo, ip, goto, alive = (text(cell) for cell in outputs)
    for cell in outputs:  # labkit's errors are shown as text, not as error outputs
        assert not [o for o in cell if o["output_type"] == "error" and o["traceback"]]
    assert_says(first, paragraph)  # the notebook's first cell: lab.reset()
    assert first.startswith("SandboxError: A labkit sandbox cannot start here")
    assert_says(sudo, paragraph)
    assert sudo.startswith("sudo: not run: this kernel has no sandbox.")
    assert_says(ip, paragraph)
    assert ip.startswith("ip: not run: this kernel has no sandbox.")
    assert goto.strip() == f"SandboxError: {paragraph}"
    assert alive.strip() == "still here 42"


def test_nothing_is_left_running(home):
    assert _gone()


if __name__ == "__main__":
    sys.exit(_helper(sys.argv[1:]))
