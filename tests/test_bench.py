"""Smoke test of ``bench/run.py``: it runs, and its JSON has the promised shape.

The benchmark starts its own sandboxes (one per measurement), so it runs as a
subprocess; nothing here looks at how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"op", "n", "labkit_s", "shell_s", "ratio"}


def test_quick_json_has_the_promised_shape(tmp_path):
    plot = tmp_path / "bench.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", "--plot", str(plot)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert isinstance(rows, list) and rows
    ops = {row["op"] for row in rows}
    assert ops == {"build", "observe", "reach", "reset", "draw", "memory"}
    for row in rows:
        assert KEYS <= set(row) <= KEYS | {"note"}, row
        assert isinstance(row["n"], int) and row["n"] >= 2
        assert isinstance(row["labkit_s"], (int, float)) and row["labkit_s"] > 0
        assert row["shell_s"] is None or row["shell_s"] > 0
        ratio = row["ratio"]
        assert ratio is None or (isinstance(ratio, (int, float)) and ratio > 0), row
        assert (ratio is None) == (row["shell_s"] is None), row
        assert "note" not in row or isinstance(row["note"], str)
    assert plot.read_bytes()[:4] == b"\x89PNG"
