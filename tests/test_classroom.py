"""The classroom on one machine (deploy/jupyterhub): learners apart from each other.

A real JupyterHub with its proxy, FirstUse login, a system user and a
JupyterLab per learner, driven through its REST API and the kernels'
websockets (``bench/classroom.py``'s client). Three learners walk the
course to ``portforward`` at once; then:

* each sees only their own namespaces and rules (a mark one learner makes
  is in no other lab);
* from a cell and from a terminal, one learner tries the containment
  battery on another's lab (its network namespace, a named namespace, a
  port on its loopback, a file in its home) and on the machine: every
  attempt is refused;
* one learner's ``reset`` and a kill -9 of another's kernel leave the
  others' labs as they were (their checks still pass, their web app
  still answers);
* the idle culler stops a learner's server, and nothing of that learner
  runs afterwards;
* the learners' system users, group and homes go with the hub, and the
  machine's network is as before.

Needs root (system users), nodejs with configurable-http-proxy in
``.venv/node`` (``./run.sh test`` installs it) and about a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import http.cookiejar
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import machine_network

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import classroom  # noqa: E402

BATTERY = ROOT / "tests" / "escape_battery.py"
PROXY = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
LEARNERS = ["lkt-ann", "lkt-bob", "lkt-cat"]

#: what every classroom test needs (tests/test_classroom_browser.py too)
CLASSROOM_MARKS = [
    pytest.mark.classroom,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a system user per learner)"),
    pytest.mark.skipif(
        not PROXY.exists() and not shutil.which("configurable-http-proxy"),
        reason="needs configurable-http-proxy (./run.sh install)",
    ),
]
pytestmark = CLASSROOM_MARKS


@contextlib.contextmanager
def classroom_hub(learners: list[str], idle_timeout: int) -> Iterator[classroom.RunningHub]:
    """The classroom's hub for these learners; afterwards, the machine as it was.

    No proxy left running, no learner's system user, the learners' group
    only if it was there before, and the machine's network unchanged.
    """
    before = machine_network()
    had_group = _group_exists()
    with classroom.running_hub(idle_timeout=idle_timeout) as running:
        running.learners.extend(learners)
        yield running
        proxy = int((running.state / "proxy.pid").read_text())
    assert not Path(f"/proc/{proxy}").exists(), "the hub's proxy still runs"
    classroom.remove_group_if_empty()
    for name in learners:
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
    assert _group_exists() == had_group
    after = machine_network()
    changed = [key for key in before if before[key] != after.get(key)]
    assert not changed, f"the classroom changed the machine's {changed}"


@pytest.fixture(scope="module")
def hub() -> Iterator[classroom.RunningHub]:
    with classroom_hub(LEARNERS, idle_timeout=30) as running:
        yield running


def _group_exists() -> bool:
    try:
        grp.getgrnam(classroom.GROUP)
        return True
    except KeyError:
        return False


def _pids_of(name: str) -> list[str]:
    found = subprocess.run(["pgrep", "-u", name], capture_output=True, text=True)
    return found.stdout.split()


async def _class_to_portforward(client: classroom.Hub) -> dict[str, classroom.Kernel]:
    await client.add_users(LEARNERS)
    times = {step: [] for step in classroom.STEPS}
    failures: list[str] = []
    ready: list[float] = []
    kernels = await asyncio.gather(
        *(classroom.learner_walk(client, n, times, failures, ready) for n in LEARNERS)
    )
    assert not failures, failures
    return dict(zip(LEARNERS, kernels, strict=True))


async def _scenario(hub: classroom.RunningHub) -> None:
    client = classroom.Hub(hub.url, hub.token)
    kernels = await _class_to_portforward(client)
    ann, bob, cat = (kernels[n] for n in LEARNERS)

    # each learner is their own system user, with their own copy of the course
    for name in LEARNERS:
        user = pwd.getpwnam(name)
        assert user.pw_gid == grp.getgrnam(classroom.GROUP).gr_gid
        assert (Path(user.pw_dir) / "course" / "06-portforward.ipynb").exists()
        assert os.stat(user.pw_dir).st_mode & 0o077 == 0  # others cannot look in
        # kernels listen on Unix sockets in the home, not on ports of 127.0.0.1
        # that thirty servers choosing at once could choose twice
        kernels = [
            json.loads(f.read_text()) for f in Path(user.pw_dir, ".rt").glob("kernel-*.json")
        ]
        assert kernels and all(k["transport"] == "ipc" for k in kernels), kernels

    # a mark made in ann's lab is in no other lab
    ok, said = await ann.run(
        "!ip netns add mark-ann && iptables -t nat -A PREROUTING -p tcp --dport 4242 "
        "-m comment --comment mark-ann -j ACCEPT\n!ip netns; iptables -t nat -S PREROUTING"
    )
    assert ok and "mark-ann" in said
    for other in (bob, cat):
        ok, said = await other.run("!ip netns; iptables -t nat -S PREROUTING")
        assert ok and "mark-ann" not in said and "red" in said, said

    # from a cell, ann tries every escape of the containment battery on bob's lab
    ok, said = await bob.run(
        "!ip netns add mark-bob\nimport os, socket\n_listener = socket.socket()\n"
        "_listener.bind(('127.0.0.1', 0)); _listener.listen(4)\n"
        "print(os.stat('/proc/self/ns/net').st_ino, _listener.getsockname()[1])"
    )
    assert ok, said
    netns, port = (int(v) for v in said.split()[-2:])
    home = Path(pwd.getpwnam("lkt-bob").pw_dir)
    params = {
        "machine_netns": netns,  # namespace inodes are the same seen from anywhere
        "root_file": str(home / "course" / "06-portforward.ipynb"),
        "machine_named_netns": "mark-bob",
        "machine_port": port,
        # every lab is called "host", by design: a name that is nobody's
        "machine_hostname": "not-a-lab-name",
        "block_device": "/dev/vda",
    }
    ok, said = await ann.run(
        f"import json, runpy\nbattery = runpy.run_path({str(BATTERY)!r})\n"
        f"print(json.dumps(battery['run']({params!r})))"
    )
    assert ok, said
    _assert_all_refused(json.loads(said.strip().splitlines()[-1]), "a cell of ann's")

    # the same battery from a terminal of ann's (it joins the lab of ann's kernel)
    terminal = await client.terminal("lkt-ann")
    try:
        screen = await terminal.read_until("@host")
        assert "joined the lab of" in screen, screen
        code = (
            f"import json, runpy; b = runpy.run_path({str(BATTERY)!r}); "
            f"print('ROWS-' + 'BEGIN', json.dumps(b['run']({params!r})), 'ROWS-' + 'END')"
        )
        await terminal.type(f"python3 -c {shlex.quote(code)}")
        screen = await terminal.read_until("ROWS-END\r", timeout=180)
    finally:
        await terminal.close()
    rows = screen.rsplit("ROWS-BEGIN", 1)[1].rsplit("ROWS-END", 1)[0]
    _assert_all_refused(json.loads(rows), "a terminal of ann's")

    # ann resets, bob's kernel is killed with SIGKILL: cat's lab is untouched
    ok, said = await ann.run("lab.reset()\n!ip netns")
    assert ok and "red" not in said and "mark-ann" not in said, said
    # the kernel's pid in its sandbox is not the machine's: kill every process of
    # bob's that holds a kernel (the server's kernel launchers and their sandboxes)
    launchers = subprocess.run(
        ["pgrep", "-u", "lkt-bob", "-f", "labkit.jupyter"], capture_output=True, text=True
    ).stdout.split()
    assert launchers, "bob's kernel is not running as bob"
    for p in launchers:
        subprocess.run(["kill", "-9", p], check=False)
    ok, said = await cat.run("print(lab.check('portforward'))")
    assert ok and "All good" in said, said

    # the culler stops an idle learner's server (ann's); cat keeps working meanwhile
    await ann.shutdown()
    deadline = time.monotonic() + 120
    while _pids_of("lkt-ann") and time.monotonic() < deadline:
        ok, _ = await cat.run("1")
        assert ok
        await asyncio.sleep(2)
    assert not _pids_of("lkt-ann"), "ann's server was not culled, or left processes"
    status, user = await client.api("GET", "users/lkt-ann")
    assert status == 200 and not user.get("servers")
    ok, said = await cat.run("print(lab.check('portforward'))")
    assert ok and "All good" in said, said


def _assert_all_refused(rows: list[dict], where: str) -> None:
    assert len(rows) >= 15, rows
    reached = [f"{r['name']}: {r['how']}" for r in rows if not r["refused"]]
    assert not reached, f"from {where}, bob's lab was reached:\n" + "\n".join(reached)


def test_three_learners_stay_apart_and_a_culled_one_leaves_nothing(hub) -> None:
    asyncio.run(_scenario(hub))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # keep the 302: following it would spawn a server


def _log_in(url: str, name: str, password: str) -> urllib.request.OpenerDirector:
    """Log in on the hub's form as a browser does; return an opener with the cookies."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    with opener.open(f"{url}/hub/login", timeout=30) as page:
        form = page.read().decode()
    xsrf = re.search(r'name="_xsrf"[^>]*value="([^"]+)"', form)
    assert xsrf, "no _xsrf field in the login form"
    body = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": xsrf[1]})
    try:
        opener.open(f"{url}/hub/login", data=body.encode(), timeout=60)
    except urllib.error.HTTPError as answer:
        assert answer.code == 302, f"logging in as {name}: {answer.code}"
        return opener  # logged in: sent on to the hub's home
    raise AssertionError(f"logging in as {name}: the hub showed the form again")


def _status(opener: urllib.request.OpenerDirector, url: str) -> int:
    try:
        with opener.open(url, timeout=30) as page:
            return page.status
    except urllib.error.HTTPError as answer:
        return answer.code


def test_run_sh_classroom_starts_the_hub_with_an_admin_view() -> None:
    # The instructor's one command, as README gives it; it installs what is
    # missing first (quick when all is there), then execs the hub.
    before = machine_network()
    with classroom.running_hub(
        command=[str(ROOT / "run.sh"), "classroom"], start_timeout=900
    ) as hub:
        hub.learners.append("lkt-dan")
        banner = hub.log.read_text()
        assert f"JupyterHub at {hub.url}/" in banner, banner[-2000:]
        assert "Add Users" in banner and "log in as instructor" in banner.lower()
        asyncio.run(classroom.Hub(hub.url, hub.token).add_users(["lkt-dan"]))

        instructor = _log_in(hub.url, "instructor", "a first password 1")
        assert _status(instructor, f"{hub.url}/hub/admin") == 200
        learner = _log_in(hub.url, "lkt-dan", "a first password 2")
        assert _status(learner, f"{hub.url}/hub/admin") == 403  # learners have no admin view
        # FirstUse: the first password stuck, another one is refused
        with pytest.raises(AssertionError, match="logging in as lkt-dan"):
            _log_in(hub.url, "lkt-dan", "another password")
    with pytest.raises(KeyError):
        pwd.getpwnam("instructor")  # logging in made no system user; only a spawn would
    assert machine_network() == before
