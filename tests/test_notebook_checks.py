"""Every "check your work" cell of every notebook, against good and broken builds.

A check cell is a code cell tagged ``labkit-check`` whose first line is
``# Check your work``. Its code runs here in a fresh sandbox, with ``lab``
defined as in the notebooks, after a correct build of its stage and after
builds broken in one place; its printed words must say so.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from labkit import Lab
from labkit.world import run_in_lab

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

#: one way to break each stage by hand, and words the hint must contain
BREAKS = {
    "netns": ("ip netns delete blue", "Namespace blue does not exist"),
    "veth": ("ip -n blue link set veth-blue down", "veth-blue in blue is down"),
    "bridge": ("ip link set veth-red-br down", "veth-red-br in the host is down"),
    "host": ("ip addr flush dev v-net-0", "v-net-0 in the host does not have the address"),
    "nat": ("sysctl -w net.ipv4.ip_forward=0", "does not forward packets"),
    "internet": ("ip -n red route del default", "red has no route to default"),
    "portforward": ("iptables -t nat -F PREROUTING", "lacks the nat rule PREROUTING"),
}


def check_cells() -> list[tuple[str, int, str, str]]:
    found = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb["cells"]):
            source = "".join(cell["source"])
            if cell["cell_type"] != "code" or "labkit-check" not in cell["metadata"].get(
                "tags", []
            ):
                continue
            m = re.search(r"lab\.check\(\s*[\"']([a-z]+(?::[a-z-]+)?)[\"']", source)
            assert m, f"{path.name} cell {i}: a check cell must call lab.check('STAGE')"
            found.append((path.name, i, m.group(1), source))
    return found


CELLS = check_cells()


def test_every_notebook_has_a_check_cell():
    with_checks = {name for name, *_ in CELLS}
    # the stage notebooks (00 is about namespaces alone, 07 is the control panel)
    stage_notebooks = {p.name for p in NOTEBOOKS.glob("0[1-6]-*.ipynb")}
    assert stage_notebooks <= with_checks, stage_notebooks - with_checks


def test_check_cells_start_with_the_marker():
    for name, i, _, source in CELLS:
        assert source.startswith("# Check your work"), f"{name} cell {i}"


def _run_cell(source: str, stage: str, breakage: str | None) -> str:
    lab = Lab()
    lab.goto(stage)
    if breakage:
        subprocess.run(breakage, shell=True, check=True, capture_output=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<check cell>", "exec"), {"lab": lab, "labkit": __import__("labkit")})  # noqa: S102
    return out.getvalue()


@pytest.mark.parametrize(
    "name, index, stage, source", CELLS, ids=[f"{n}#{i}" for n, i, *_ in CELLS]
)
def test_check_cell_passes_a_correct_build(name, index, stage, source):
    text = run_in_lab(_run_cell, source, stage, None)
    assert "All good" in text, text


@pytest.mark.parametrize(
    "name, index, stage, source", CELLS, ids=[f"{n}#{i}" for n, i, *_ in CELLS]
)
def test_check_cell_sees_a_broken_build(name, index, stage, source):
    base = stage.partition(":")[0]
    if ":" in stage or base not in BREAKS:
        pytest.skip(f"no breakage defined for {stage}")
    breakage, hint = BREAKS[base]
    text = run_in_lab(_run_cell, source, stage, breakage)
    assert "Not yet" in text and hint in text, text
