"""The committed notebooks as a reader (or nbconvert) sees them, without running them.

nbval runs them; these check what it does not: the kernel they ask for, the
pictures in their HTML, the parts every course notebook has.
"""

from __future__ import annotations

import json
import re
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


# -- accessibility and exercises (issue 16) -----------------------------------------

#: link texts that say nothing out of context (a screen reader lists links alone)
VAGUE = {"here", "click here", "this", "this link", "link", "more", "read more", "there"}
FIGURE_PLACEHOLDERS = ("<Figure size", "No description has been provided")


def _markdown_text(source: str) -> str:
    """Markdown without fenced code blocks and inline code (headings and links live outside them).

    Examples
    --------
    >>> _markdown_text("# A\\n```\\n# not a heading\\n```\\nsee `http://x/`")
    '# A\\nsee '
    """
    lines, fenced = [], False
    for line in source.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def _markdown(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return [
        _markdown_text("".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "markdown"
    ]


def heading_levels(texts: list[str]) -> list[int]:
    """The levels of the Markdown and HTML headings, in order.

    Examples
    --------
    >>> heading_levels(["# Title\\n\\n## Part", "<h3>Deeper</h3>", "#hashtag"])
    [1, 2, 3]
    """
    levels = []
    for text in texts:
        for m in re.finditer(r"^(#{1,6})\s|<h([1-6])[\s>]", text, re.M | re.I):
            levels.append(len(m.group(1)) if m.group(1) else int(m.group(2)))
    return levels


def heading_problems(levels: list[int]) -> list[str]:
    """What is wrong with a notebook's heading outline: one H1 first, no skipped level.

    Examples
    --------
    >>> heading_problems([1, 2, 3, 2])
    []
    >>> heading_problems([1, 3, 1])
    ['H1 then H3 skips a level', '2 H1 headings (one title only)']
    """
    problems = []
    if not levels or levels[0] != 1:
        problems.append("the first heading is not an H1 title")
    for before, after in zip(levels, levels[1:], strict=False):
        if after > before + 1:
            problems.append(f"H{before} then H{after} skips a level")
    if levels.count(1) > 1:
        problems.append(f"{levels.count(1)} H1 headings (one title only)")
    return problems


def vague_links(text: str) -> list[str]:
    """Links whose text does not say where they lead.

    Examples
    --------
    >>> vague_links("see [here](a.md), [the README](../README.md), <https://x.org>")
    ['here', 'https://x.org']
    >>> vague_links('<a href="x">click here</a> ![img](img/a.png)')
    ['click here']
    """
    found = []
    for m in re.finditer(r"(?<!!)\[([^\]]*)\]\(([^)]*)\)", text):
        found.append(m.group(1).strip())
    for m in re.finditer(r"<a\s[^>]*>(.*?)</a>", text, re.S | re.I):
        found.append(m.group(1).strip())
    found += re.findall(r"<(https?://[^>\s]+)>", text)
    return [t for t in found if not t or t.lower() in VAGUE or re.match(r"https?://", t)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_headings_are_in_order(path):
    assert heading_problems(heading_levels(_markdown(path))) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_link_text_says_where_it_leads(path):
    assert [t for text in _markdown(path) for t in vague_links(text)] == []


def _is_solution(cell: dict) -> bool:
    first = "".join(cell["source"]).lstrip().split("\n", 1)[0].lower()
    return "solution" in cell["metadata"].get("tags", []) or re.match(r"#\s*solution", first)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_are_seen_only_by_choice(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and _is_solution(cell):
            hidden = cell["metadata"].get("jupyter", {})
            where = "".join(cell["source"])[:60]
            assert "solution" in cell["metadata"].get("tags", []), f"tag it 'solution': {where}"
            assert hidden.get("source_hidden") and hidden.get("outputs_hidden"), (
                f"a solution shows only when the learner opens it (source and output): {where}"
            )
    for text in _markdown(path):
        # a written-out solution sits in a <details> block
        for m in re.finditer(r"^\**solution\**\s*[:.]", text, re.M | re.I):
            before = text[: m.start()]
            assert before.count("<details") > before.count("</details>"), text[:80]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_a_text_alternative(path):
    nb = nbformat.read(path, as_version=4)
    figures = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" not in data:
                continue
            figures += 1
            text = data.get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            assert len(text) > 20 and not text.startswith(FIGURE_PLACEHOLDERS), (
                f"a figure without a description: {''.join(cell.source)[:60]!r} -> {text[:60]!r}"
            )
    html, _ = HTMLExporter().from_notebook_node(nb)
    images = re.findall(r"<img\b[^>]*>", html)
    assert figures == 0 or images
    for tag in images:
        alt = re.search(r'\balt="([^"]*)"', tag)
        assert alt and len(alt.group(1)) > 20, f"an <img> without alt text: {tag[:120]}"
        assert not alt.group(1).startswith(FIGURE_PLACEHOLDERS), tag[:120]
