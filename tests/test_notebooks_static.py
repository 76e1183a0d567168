"""The committed notebooks as a reader (or nbconvert) sees them, without running them.

nbval runs them; these check what it does not: the kernel they ask for, the
pictures in their HTML, the parts every course notebook has.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
#: the control panel (07) is a tool, not a stage of the course
TOOLS = {"07-control-panel.ipynb"}
COURSE = [
    p
    for p in NOTEBOOKS
    if p.name[:2].isdigit() and not p.name.startswith("99") and p.name not in TOOLS
]


def test_there_is_a_notebook_per_stage_and_a_walk_through():
    names = [p.name for p in NOTEBOOKS]
    for prefix in ["00-", "01-", "02-", "03-", "04-", "05-", "06-", "99-"]:
        assert any(n.startswith(prefix) for n in names), prefix


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_on_the_labkit_kernel_with_stored_outputs(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "labkit"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] for c in code), "run it with nbconvert --execute"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_html_shows_the_live_graph(path):
    html, _ = HTMLExporter().from_notebook_node(nbformat.read(path, as_version=4))
    assert "data:image/png;base64," in html


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_course_notebook_has_goal_picture_exercise_and_summary(path):
    nb = json.loads(path.read_text())
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "](img/" in markdown, "a picture of where the notebook is going"
    assert "<details>" in markdown, "an exercise with a solution to reveal"
    assert "|" in markdown.split("\n#")[-1], "a summary table of the commands at the end"
    for ref in [part.split(")")[0] for part in markdown.split("](img/")[1:]]:
        assert (path.parent / "img" / ref).exists(), ref
