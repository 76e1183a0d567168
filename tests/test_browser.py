"""The control panel notebook, used end to end in a real browser.

This test does what a learner does: it starts JupyterLab on loopback with
the ``labkit`` kernel, opens ``notebooks/07-control-panel.ipynb`` in headless
Chromium (Debian's ``chromium``, driven by Playwright), runs all cells from
the *Run* menu, then clicks the panel's buttons and watches the page:

* the panel shows the buttons "Back", "Next" and "Reset", a status that
  says ``stage: reset`` and an image of the live graph;
* "Next" changes the status and the image;
* "Reset" brings back ``stage: reset`` and a new image.

JupyterLab serves a copy of the notebooks in a temporary folder, so the
committed notebooks are never modified, and its configuration, runtime and
workspace folders are temporary too. The browser has a fresh profile, and
every request it makes to anything but the server on 127.0.0.1 is blocked
(and fails the test). Screenshots for a person to look at are written to
``out/e2e/`` in the repository (``01-loaded.png``, ``02-ran.png``,
``03-next.png``, ``04-reset.png``; ``widget-error.png`` and ``failure.png`` when something went
wrong).

Chromium and Playwright are installed by ``./run.sh test``. When one is
missing the test is skipped, except in CI (``CI`` set), where it fails. When
the notebook does not exist yet the test is skipped; when it exists and
misbehaves the test fails. ``LABKIT_E2E_NOTEBOOK=path`` serves another
notebook in its place (to try the harness on a notebook of your own).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NOTEBOOK = "07-control-panel.ipynb"
SHOTS = REPO / "out" / "e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START = 90  # seconds for JupyterLab to answer
PANEL_TIMEOUT = 120_000  # ms for the kernel to start and the panel to render
CLICK_TIMEOUT = 60_000  # ms for a button's effect to show
UI_TIMEOUT = 30_000  # ms for JupyterLab's own interface


STATUS_RE = re.compile(r"^\s*stage:")  # the status line, not another HTML widget


def first_stage() -> str:
    """The tutorial's first stage, where "Next" goes from ``reset``."""
    from labkit.lab import Lab

    return Lab().stages[0]


def in_ci() -> bool:
    """Whether this run is CI's (``CI`` set to anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str) -> None:
    """A tool the test needs is missing: skip, or fail in CI where it must be there."""
    reason = f"{what} (./run.sh test installs it)"
    if in_ci():
        pytest.fail(f"in CI the browser test must run, but {reason}")
    pytest.skip(reason)


def notebook_source() -> Path:
    """The notebook to serve: ``LABKIT_E2E_NOTEBOOK`` or the committed one."""
    override = os.environ.get("LABKIT_E2E_NOTEBOOK")
    return Path(override) if override else NOTEBOOKS / NOTEBOOK


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback(url: str) -> bool:
    """Whether ``url`` stays on this machine (or in the page: data:, blob:, about:)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome-error"):
        return True
    return parts.hostname in ("127.0.0.1", "localhost", "::1")


# -- JupyterLab ----------------------------------------------------------------


@dataclass
class Server:
    """A JupyterLab server started by the test."""

    url: str
    token: str
    root: Path
    log: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def api(self, path: str) -> Any:
        """GET ``/api/<path>`` with the token; the decoded JSON."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(
            f"{self.url}/api/{path}", headers={"Authorization": f"token {self.token}"}
        )
        with opener.open(req, timeout=5) as resp:
            return json.load(resp)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started by the test: SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def notebook() -> Path:
    """The control panel notebook; skips while it does not exist."""
    path = notebook_source()
    if not path.is_file():
        pytest.skip(
            f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path} "
            "does not exist yet: nothing to test in the browser"
        )
    return path


@pytest.fixture(scope="module")
def server(notebook: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """JupyterLab on 127.0.0.1 with a token, serving a temporary copy of the notebooks."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("labkit")
    except NoSuchKernel:
        pytest.fail("the 'labkit' kernelspec is not installed: python -m labkit.jupyter install")
    jupyter = Path(sys.executable).with_name("jupyter")
    if shutil.which("jupyter-lab", path=str(jupyter.parent)) is None:
        missing("JupyterLab is not installed in this environment")

    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(notebook, root / NOTEBOOK)
    config = base / "config"
    (config / "labconfig").mkdir(parents=True)
    # The terminal keeps its text in the page for screen readers (it may draw on a
    # canvas otherwise), so the test can read it.
    terminal_settings = base / "settings" / "@jupyterlab" / "terminal-extension"
    terminal_settings.mkdir(parents=True)
    (terminal_settings / "plugin.jupyterlab-settings").write_text(
        json.dumps({"screenReaderMode": True})
    )
    # No "official Jupyter news?" question over the page.
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    argv = [
        str(jupyter.parent / "jupyter-lab"),
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--MappingKernelManager.default_kernel_name=labkit",
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
        f"--LabApp.user_settings_dir={base / 'settings'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    log = base / "jupyterlab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    srv = Server(f"http://127.0.0.1:{port}", token, root, log, proc)
    try:
        deadline = time.monotonic() + SERVER_START
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{srv.log_tail()}")
            try:
                srv.api("status")
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer in {SERVER_START} s:\n{srv.log_tail()}")
                time.sleep(0.25)
        yield srv
    finally:
        stop(proc)


# -- Chromium ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium context with a fresh profile that only reaches loopback.

    Yields the Playwright ``BrowserContext``; its attribute ``blocked`` lists
    the requests that were refused because they left the machine.
    """
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"{CHROMIUM} is not installed (Debian package 'chromium')")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed (pip package 'playwright')")

    profile = tmp_path_factory.mktemp("chromium-profile")
    pw = sync_playwright().start()
    context = None
    try:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        blocked: list[str] = []

        def guard(route: Any) -> None:
            url = route.request.url
            if loopback(url):
                route.continue_()
            else:
                blocked.append(url)
                route.abort()

        context.route("**/*", guard)
        context.blocked = blocked
        yield context
    finally:
        if context is not None:
            context.close()
        pw.stop()


# -- the page --------------------------------------------------------------------


def shot(page: Any, name: str) -> Path:
    """Save a screenshot of the whole page as ``out/e2e/<name>``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def image_digest(img: Any) -> str:
    """SHA-256 of the picture an ``<img>`` shows (its ``src`` fetched in the page)."""
    data = img.evaluate(
        """async (el) => {
            const blob = await (await fetch(el.src)).blob();
            const bytes = new Uint8Array(await blob.arrayBuffer());
            let s = "";
            for (let i = 0; i < bytes.length; i += 8192) {
                s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
            }
            return btoa(s);
        }"""
    )
    raw = base64.b64decode(data)
    assert raw, "the panel's image is empty"
    return hashlib.sha256(raw).hexdigest()


def wait_for_new_image(img: Any, old_src: str, old_digest: str) -> tuple[str, str]:
    """Wait until the ``<img>`` shows a picture other than ``old_digest``."""
    deadline = time.monotonic() + CLICK_TIMEOUT / 1000
    src, digest = old_src, old_digest
    while time.monotonic() < deadline:
        src = img.get_attribute("src") or ""
        if src and src != old_src:
            digest = image_digest(img)
            if digest != old_digest:
                return src, digest
        time.sleep(0.2)
    raise AssertionError(
        f"the panel's image did not change in {CLICK_TIMEOUT // 1000} s "
        f"(src {'changed' if src != old_src else 'unchanged'}, same picture)"
    )


def no_widget_errors(page: Any, output: Any) -> None:
    """Fail if a widget could not be shown (ipywidgets' "Click to show javascript error")."""
    errors = output.locator(".jupyter-widgets-error-widget")
    if errors.count() == 0:
        return
    shot(page, "widget-error.png")
    texts = []
    for i in range(errors.count()):
        errors.nth(i).click()  # shows the message and stack in place of the icon
        lines = errors.nth(i).inner_text().splitlines()
        texts.append(" | ".join(line.strip() for line in lines[1:4]))  # message, first frame
    raise AssertionError(f"{len(texts)} widget(s) failed to render in the browser: {texts}")


def notebook_text(page: Any) -> str:
    """What the notebook's outputs say, for failure messages."""
    try:
        return page.locator(".jp-OutputArea").all_inner_texts()[-20:]
    except Exception as exc:  # noqa: BLE001 - only for a message
        return f"(outputs unreadable: {exc})"


def open_notebook(page: Any, server: Server) -> Any:
    """Open the notebook and wait for its labkit kernel, started and idle; its panel."""
    from playwright.sync_api import expect

    page.goto(f"{server.url}/lab/tree/{NOTEBOOK}?token={server.token}")
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first
    expect(notebook.locator(".jp-Cell").first).to_be_visible(timeout=PANEL_TIMEOUT)
    expect(notebook.locator(".jp-KernelName")).to_contain_text("labkit", timeout=UI_TIMEOUT)
    expect(notebook.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=PANEL_TIMEOUT
    )
    return notebook


def test_control_panel_in_browser(browser: Any, server: Server) -> None:
    """Run the notebook in JupyterLab, click Reset and Next, and see the graph change."""
    from playwright.sync_api import expect

    for old in SHOTS.glob("[0-9]*.png"):  # no picture of an earlier run left to mislead
        old.unlink()  # (only this test's: the classroom test's are classroom-*.png)
    for old in SHOTS.glob("*failure.png"):
        if not old.name.startswith("classroom-"):
            old.unlink()
    (SHOTS / "widget-error.png").unlink(missing_ok=True)
    page = browser.new_page()
    page.set_default_timeout(UI_TIMEOUT)
    console: list[str] = []
    page.on("pageerror", lambda exc: console.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            console.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    started = time.monotonic()
    try:
        notebook = open_notebook(page, server)
        shot(page, "01-loaded.png")

        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

        output = notebook.locator(".jp-OutputArea-output")
        # By their text (an icon's glyph is CSS, not text): exactly "Back", "Next", "Reset".
        buttons = {
            name: output.locator("button").filter(has_text=re.compile(rf"^\s*{name}\s*$"))
            for name in ("Back", "Next", "Reset")
        }
        expect(buttons["Next"]).to_be_visible(timeout=PANEL_TIMEOUT)
        expect(notebook.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
            "data-status", "idle", timeout=PANEL_TIMEOUT
        )
        no_widget_errors(page, output)
        for button in buttons.values():
            expect(button).to_be_visible()
        status = output.locator(".widget-html-content").filter(has_text=STATUS_RE).first
        # the notebook's guided tour ends at the bridge stage
        expect(status).to_contain_text("stage: bridge", timeout=CLICK_TIMEOUT)
        img = output.locator("img.widget-image, img.jupyter-widget-image").first
        expect(img).to_be_visible()
        page.wait_for_function(
            "(el) => el.src && el.complete && el.naturalWidth > 0",
            arg=img.element_handle(),
            timeout=CLICK_TIMEOUT,
        )
        src0 = img.get_attribute("src") or ""
        digest0 = image_digest(img)
        img.scroll_into_view_if_needed()
        shot(page, "02-ran.png")
        status0 = status.inner_text()

        buttons["Reset"].click()
        expect(status).to_contain_text("stage: reset", timeout=CLICK_TIMEOUT)
        src1, digest1 = wait_for_new_image(img, src0, digest0)
        status1 = status.inner_text()
        no_widget_errors(page, output)
        shot(page, "03-reset.png")

        buttons["Next"].click()
        expect(status).not_to_contain_text("stage: reset", timeout=CLICK_TIMEOUT)
        expect(status).to_contain_text(f"stage: {first_stage()}", timeout=CLICK_TIMEOUT)
        src2, digest2 = wait_for_new_image(img, src1, digest1)
        no_widget_errors(page, output)
        shot(page, "04-next.png")
        status2 = status.inner_text()
    except BaseException:
        try:
            shot(page, "failure.png")
        finally:
            print(f"notebook outputs: {notebook_text(page)}")
            print(f"browser: {console}")
            print(f"JupyterLab log:\n{server.log_tail()}")
        raise
    finally:
        page.close()
    print(
        f"browser test: {time.monotonic() - started:.1f} s; "
        f"status {status0!r} -> {status1!r} -> {status2!r}; "
        f"the pictures differ at each click: {len({digest0, digest1, digest2}) == 3}"
    )
    assert not browser.blocked, f"the page tried to leave the machine: {browser.blocked}"
    assert not console, console


def terminal_text(page: Any) -> str:
    """What the visible terminal shows, row by row."""
    return page.locator(".jp-Terminal:not(.lm-mod-hidden)").first.inner_text()


def test_terminal_shares_the_notebook_lab(browser: Any, server: Server) -> None:
    """A terminal opened from JupyterLab's menu joins the notebook's lab, both ways."""
    from playwright.sync_api import expect

    page = browser.new_page()
    page.set_default_timeout(UI_TIMEOUT)
    try:
        notebook = open_notebook(page, server)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        output = notebook.locator(".jp-OutputArea-output")
        status = output.locator(".widget-html-content").filter(has_text=STATUS_RE).first
        expect(status).to_contain_text("stage:", timeout=PANEL_TIMEOUT)
        reset = output.locator("button").filter(has_text=re.compile(r"^\s*Reset\s*$"))
        reset.click()
        expect(status).to_contain_text("stage: reset", timeout=CLICK_TIMEOUT)
        output.locator("button").filter(has_text=re.compile(r"^\s*Next\s*$")).click()
        expect(status).to_contain_text(f"stage: {first_stage()}", timeout=CLICK_TIMEOUT)

        # File > New > Terminal, as a learner opens one.
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^File$")).click()
        page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(r"^New$")).hover()
        page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(r"^Terminal$")).click()
        terminal = page.locator(".jp-Terminal:not(.lm-mod-hidden)").first
        expect(terminal).to_contain_text("root@host", timeout=UI_TIMEOUT)
        expect(terminal).to_contain_text(f"joined the lab of {NOTEBOOK}", timeout=UI_TIMEOUT)
        terminal.click()
        page.keyboard.type("ip netns | sort | tr '\\n' ' '; echo; sudo ip netns add fromterminal\n")
        # The notebook's Next made red and blue: the terminal sees them.
        expect(terminal).to_contain_text("blue internet", timeout=UI_TIMEOUT)
        shot(page, "05-terminal.png")
        screen = terminal_text(page)

        # Back in the notebook: a new cell shows the terminal's namespace.
        page.locator(".lm-TabBar-tab", has_text=NOTEBOOK).first.click()
        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first
        notebook.locator(".jp-Cell").last.click()
        page.keyboard.press("Escape")
        page.keyboard.press("b")
        page.keyboard.press("Enter")
        page.keyboard.type("!ip netns | sort")
        page.keyboard.press("Shift+Enter")
        cell = notebook.locator(".jp-CodeCell").filter(has_text="!ip netns | sort").last
        last = cell.locator(".jp-OutputArea-output")
        expect(last).to_contain_text("fromterminal", timeout=CLICK_TIMEOUT)
        shot(page, "06-notebook-sees-terminal.png")
    except BaseException:
        try:
            shot(page, "terminal-failure.png")
        finally:
            print(f"JupyterLab log:\n{server.log_tail()}")
        raise
    finally:
        page.close()
    assert "fromterminal" not in screen.split("sudo ip netns add fromterminal")[0]
    assert not browser.blocked, f"the page tried to leave the machine: {browser.blocked}"
