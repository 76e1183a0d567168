"""The course's JupyterLab: files confined to the course folder, which the learner may write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tornado import web

from labkit import jupyter
from labkit.kernel.preflight import learner_ids
from labkit.server import ConfinedContentsManager

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    root.mkdir()
    (root / "01.ipynb").write_text("{}")
    (root / "img").mkdir()
    return root


def test_paths_inside_the_course_folder_are_served(course: Path) -> None:
    cm = ConfinedContentsManager(root_dir=str(course))
    assert cm._get_os_path("01.ipynb") == str(course / "01.ipynb")
    assert cm._get_os_path("img") == str(course / "img")
    assert cm._get_os_path("new.ipynb") == str(course / "new.ipynb")  # not there yet: fine


def test_a_link_out_of_the_course_folder_is_refused(course: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root's")
    (course / "out").symlink_to(secret)
    (course / "etc").symlink_to("/etc")
    cm = ConfinedContentsManager(root_dir=str(course))
    for path in ("out", "etc/passwd", "etc"):
        with pytest.raises(web.HTTPError) as err:
            cm._get_os_path(path)
        assert err.value.status_code == 404


def test_a_hard_link_is_refused(course: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text("elsewhere")
    os.link(other, course / "linked")
    cm = ConfinedContentsManager(root_dir=str(course))
    with pytest.raises(web.HTTPError) as err:
        cm._get_os_path("linked")
    assert err.value.status_code == 404


def test_install_writes_the_server_settings_and_keeps_others(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "jupyter" / "jupyter_server_config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"ServerApp": {"port": 9999}, "Other": {"x": 1}}))
    jupyter.install_server_config(str(tmp_path))
    data = json.loads(config.read_text())
    assert data["ServerApp"]["port"] == 9999 and data["Other"] == {"x": 1}
    assert data["ServerApp"]["terminado_settings"]["shell_command"][1:] == ["shell", "--auto"]
    assert data["ServerApp"]["contents_manager_class"] == "labkit.server.ConfinedContentsManager"
    assert data["MappingKernelManager"]["default_kernel_name"] == "labkit"
    assert jupyter.server_config_installed(str(tmp_path))
    overrides = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    news = json.loads(overrides.read_text())["@jupyterlab/apputils-extension:notification"]
    assert news == {"checkForUpdates": False, "fetchNews": "false"}


def test_this_environment_has_the_course_settings() -> None:
    """What `./run.sh install` did: JupyterLab of this environment sandboxes terminals."""
    assert jupyter.server_config_installed(), "run: python -m labkit.jupyter install"


@pytest.mark.skipif(os.geteuid() != 0, reason="the course folder is granted to the learner by root")
def test_the_learner_may_write_in_the_course_folder() -> None:
    """`./run.sh install` (as root) let the sandbox's learner write in notebooks/."""
    uid = learner_ids(0, 0)[0]
    probe = REPO / "notebooks" / f".labkit-write-probe-{os.getpid()}"
    try:
        proc = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            + [sys.executable, "-c", f"open({str(probe)!r}, 'w').write('picture')"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        assert probe.read_text() == "picture"
    finally:
        probe.unlink(missing_ok=True)
