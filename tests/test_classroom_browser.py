"""The classroom in a real browser: three learners apart, as they see it.

The REST and websocket version of this test is ``test_classroom.py``; this
one does what learners do. It starts the one-machine JupyterHub of
``deploy/jupyterhub`` (``bench/classroom.py``'s ``running_hub``), adds three
learners, ``lkt-pw1``, ``lkt-pw2`` and ``lkt-pw3``, through the hub's REST
API with the admin token, as an instructor does, then drives headless
Chromium (Debian's ``chromium``, Playwright's sync API), one fresh browser
context per learner, all three at once:

* each learner signs in on ``/hub/login`` (FirstUse: the first login sets
  the password), and the hub spawns their JupyterLab;
* each opens ``06-portforward.ipynb`` (``~/course`` is the root of their
  JupyterLab), whose kernel is ``labkit``, and runs all cells from the
  *Run* menu; the check cell says
  ``All good: the kernel has everything the portforward stage needs.``;
* each adds a cell at the end that leaves a mark in their lab: a named
  network namespace ``mark-<name>`` and a ``nat`` rule with the comment
  ``mark-<name>``; once all three marks are made, each adds a cell that
  prints ``ip netns``, ``iptables -t nat -S`` and the page of the web app
  that the notebook published on the host's port 80;
* the page of each shows their own mark, no other learner's, the lab's
  namespaces and DNAT rule, and their web app's answer.

Afterwards the hub's proxy is gone, the learners' system users and homes
are removed, the group ``labkit-learners`` is as before and the machine's
network is unchanged. Every browser request to anything but 127.0.0.1 is
blocked and fails the test. Screenshots are written to ``out/e2e/``:
``classroom-<name>-01-lab.png``, ``-02-ran.png``, ``-03-marks.png``, and
``classroom-<name>-failure.png`` when something went wrong.

Needs root (system users), configurable-http-proxy (``./run.sh test``
installs it; without it the test is skipped), Chromium and Playwright
(skipped when missing, except in CI, where it fails), and about two
minutes.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, UI_TIMEOUT, loopback, missing, shot

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import classroom  # noqa: E402
from test_classroom import CLASSROOM_MARKS, classroom_hub  # noqa: E402

LEARNERS = ["lkt-pw1", "lkt-pw2", "lkt-pw3"]
NOTEBOOK = "06-portforward.ipynb"
ALL_GOOD = "All good: the kernel has everything the portforward stage needs."
APP = "http://192.168.1.2/"  # the host's port 80, forwarded to the web app in blue
APP_SAYS = "Hello from blue!"
SPAWN_TIMEOUT = 180  # s for the hub to spawn a learner's JupyterLab
RUN_TIMEOUT = 420  # s for a notebook's Run All, three at once on two cores
CELL_TIMEOUT = 120  # s for one added cell to run
STDERR = "application/vnd.jupyter.stderr"  # a Python error shows as this, too
DONE = re.compile(r"\[\d+\]")  # an input prompt of a cell that has run: "[12]:"

pytestmark = [*CLASSROOM_MARKS, pytest.mark.browser]


# -- the browser and the hub ---------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Any:
    """Playwright's ``sync_playwright``; skips (fails in CI) when it or Chromium is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"{CHROMIUM} is not installed (Debian package 'chromium')")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed (pip package 'playwright')")
    return sync_playwright


@pytest.fixture(scope="module")
def browser(chromium: Any, hub: classroom.RunningHub) -> Iterator[Any]:
    """Headless Chromium with no context yet.

    Started after the hub and closed before it stops: the hub's fixture runs
    asyncio, which Playwright's sync API does not allow while it runs.
    """
    pw = chromium().start()
    try:
        launched = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def hub() -> Iterator[classroom.RunningHub]:
    """The classroom's hub with the three learners added; the machine as it was after it."""
    with classroom_hub(LEARNERS, idle_timeout=3600) as running:
        asyncio.run(_add_learners(running))
        yield running


async def _add_learners(running: classroom.RunningHub) -> None:
    """Add the learners through the REST API, as the instructor's Admin > Add Users does."""
    client = classroom.Hub(running.url, running.token)
    await client.add_users(LEARNERS)
    for name in LEARNERS:
        status, user = await client.api("GET", f"users/{name}")
        assert status == 200 and user["name"] == name, (status, user)


# -- a learner's page ---------------------------------------------------------------------


def log_in(page: Any, hub_url: str, name: str, password: str) -> None:
    """Fill the hub's sign-in form and submit it (a first login sets the password)."""
    page.goto(f"{hub_url}/hub/login")
    page.locator("#username_input").fill(name)
    page.locator("#password_input").fill(password)
    page.locator("#login_submit").click()


def wait_for_lab(page: Any, name: str) -> None:
    """Wait until the hub has spawned the learner's server and their JupyterLab loaded."""
    page.wait_for_url(re.compile(rf"/user/{re.escape(name)}/lab"), timeout=SPAWN_TIMEOUT * 1000)


def notebook_of(page: Any) -> Any:
    """The notebook panel shown in the page."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first


def wait_for_notebook(page: Any) -> Any:
    """Wait until the notebook is shown with a ``labkit`` kernel, started and idle."""
    from playwright.sync_api import expect

    notebook = notebook_of(page)
    cell, dialog = notebook.locator(".jp-Cell").first, page.locator(".jp-Dialog")
    expect(cell.or_(dialog).first).to_be_visible(timeout=SPAWN_TIMEOUT * 1000)
    if dialog.count():  # "Cannot open", "Select Kernel": not what a learner should see
        raise AssertionError(f"JupyterLab shows a dialog: {dialog.first.inner_text()!r}")
    expect(notebook.locator(".jp-KernelName")).to_contain_text("labkit", timeout=UI_TIMEOUT)
    expect(notebook.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=SPAWN_TIMEOUT * 1000
    )
    return notebook


def run_all(page: Any) -> None:
    """Run > Run All Cells, from JupyterLab's menu."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def tracebacks(notebook: Any) -> list[str]:
    """The text of every Python error shown in the notebook's outputs."""
    errors = notebook.locator(f'.jp-OutputArea-output[data-mime-type="{STDERR}"]')
    return [t for t in errors.all_text_contents() if "Traceback" in t]


def wait_until_ran(notebook: Any, name: str) -> None:
    """Wait until the notebook's last code cell has run; fail at once on a Python error."""
    last = notebook.locator(".jp-CodeCell").last.locator(".jp-InputPrompt")
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        if DONE.search(last.text_content() or ""):
            return
        if errors := tracebacks(notebook):
            raise AssertionError(f"{name}'s notebook raised: {errors[0][-1500:]}")
        time.sleep(1)
    raise AssertionError(f"{name}'s notebook did not finish in {RUN_TIMEOUT} s")


def add_cell(page: Any, code: str) -> None:
    """Add a code cell at the end of the notebook, type ``code`` in it and run it."""
    notebook = notebook_of(page)
    notebook.locator(".jp-Cell").last.click()
    page.keyboard.press("Escape")  # command mode
    page.keyboard.press("b")  # a code cell below
    page.keyboard.press("Enter")  # edit it
    page.keyboard.insert_text(code)  # as pasted: no bracket or indent of the editor's own
    page.keyboard.press("Shift+Enter")


def cell_output(page: Any, tag: str) -> str:
    """Wait until the code cell holding ``tag`` has run; the text of its outputs."""
    from playwright.sync_api import expect

    cell = notebook_of(page).locator(".jp-CodeCell").filter(has_text=tag).first
    expect(cell.locator(".jp-InputPrompt")).to_have_text(DONE, timeout=CELL_TIMEOUT * 1000)
    return "".join(cell.locator(".jp-OutputArea").all_text_contents())


def mark_code(name: str) -> str:
    """A cell that leaves the learner's mark in their lab: a namespace and a nat rule."""
    return (
        "# classroom: my mark\n"
        f"!ip netns add mark-{name}\n"
        "!iptables -t nat -A PREROUTING -p tcp --dport 4242 "
        f"-m comment --comment mark-{name} -j ACCEPT\n"
        "!echo marked"
    )


STATE_CODE = (
    "# classroom: my lab\n"
    "!echo '== netns'; ip netns | sort\n"
    "!echo '== nat'; iptables -t nat -S\n"
    f"!echo '== app'; curl -s -m 5 {APP} || echo 'no answer'\n"
    "!echo '== end'"
)


def section(text: str, title: str) -> str:
    """The lines of the state cell's output under ``== title``."""
    found = re.search(rf"== {title}\n(.*?)(?:\n== |\Z)", text, re.S)
    assert found, f"no '== {title}' in {text!r}"
    return found.group(1)


# -- the test --------------------------------------------------------------------------------


def test_three_learners_in_chromium_see_only_their_own_lab(
    browser: Any, hub: classroom.RunningHub
) -> None:
    """Three learners sign in, run notebook 06 and see only their own marks and web app."""
    for old in SHOTS.glob("classroom-*.png"):  # no picture of an earlier run left to mislead
        old.unlink()
    blocked: list[str] = []

    def guard(route: Any) -> None:
        if loopback(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    contexts, pages, console = [], {}, []
    started = time.monotonic()
    try:
        for name in LEARNERS:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.route("**/*", guard)
            contexts.append(context)
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT)
            page.on("pageerror", lambda exc, n=name: console.append(f"{n}: page error: {exc}"))
            pages[name] = page

        # each signs in; the hub spawns the three servers at once
        for name, page in pages.items():
            log_in(page, hub.url, name, secrets.token_urlsafe(12))
        for name, page in pages.items():
            wait_for_lab(page, name)
        spawned = time.monotonic() - started

        # each opens notebook 06 (its kernel is labkit) and runs all its cells
        for name, page in pages.items():
            # the server's root is ~/course (the spawner's notebook_dir)
            page.goto(f"{hub.url}/user/{name}/lab/tree/{NOTEBOOK}", wait_until="commit")
        for name, page in pages.items():
            wait_for_notebook(page)
            shot(page, f"classroom-{name}-01-lab.png")
        for page in pages.values():
            run_all(page)
        for name, page in pages.items():
            wait_until_ran(notebook_of(page), name)
            check = cell_output(page, 'lab.check("portforward")')
            assert ALL_GOOD in check, f"{name}'s check: {check!r}"
            shot(page, f"classroom-{name}-02-ran.png")
        ran = time.monotonic() - started

        # each leaves a mark; once all three are made, each looks at their lab
        for name, page in pages.items():
            add_cell(page, mark_code(name))
        for name, page in pages.items():
            said = cell_output(page, "classroom: my mark")
            assert said.strip().endswith("marked"), f"{name}'s mark: {said!r}"
        for page in pages.values():
            add_cell(page, STATE_CODE)
        seen = {}
        for name, page in pages.items():
            seen[name] = cell_output(page, "classroom: my lab")
            shot(page, f"classroom-{name}-03-marks.png")
    except BaseException:
        for name, page in pages.items():
            try:
                shot(page, f"classroom-{name}-failure.png")
                outputs = page.locator(".jp-OutputArea").all_text_contents()[-8:]
                print(f"{name}'s last outputs: {outputs}")
            except Exception as exc:  # noqa: BLE001 - only for a message
                print(f"{name}'s page: {exc}")
        print(f"browser: {console}")
        print(f"hub log:\n{hub.log.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        for context in contexts:
            context.close()

    print(
        f"classroom in the browser: servers after {spawned:.0f} s, notebooks run after "
        f"{ran:.0f} s, all done after {time.monotonic() - started:.0f} s"
    )
    for name, text in seen.items():
        netns, nat, app = section(text, "netns"), section(text, "nat"), section(text, "app")
        others = [n for n in LEARNERS if n != name]
        assert f"mark-{name}" in netns.split(), f"{name} does not see their namespace: {text}"
        assert f"mark-{name}" in nat, f"{name} does not see their rule: {text}"
        for other in others:
            assert f"mark-{other}" not in text, f"{name} sees {other}'s mark: {text}"
        assert {"red", "blue", "lan-pc"} <= set(netns.split()), f"{name}'s lab: {text}"
        assert "--to-destination 192.168.15.2:80" in nat, f"{name}'s DNAT rule: {text}"
        assert APP_SAYS in app, f"{name}'s web app did not answer: {text}"
    assert not blocked, f"the pages tried to leave the machine: {blocked}"
