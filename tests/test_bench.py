"""``bench/run.py``: a smoke run of its JSON, and its targets logic on hand-made rows.

The benchmark starts its own sandboxes (one per measurement), so the smoke
test runs it as a subprocess; nothing here looks at how fast anything is.
The targets test feeds :func:`targets` rows written by hand: no kernel.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"op", "n", "labkit_s", "shell_s", "ratio"}
OPS = {"build", "observe", "reach", "reset", "draw", "memory"}
TARGETS = {
    "target:build-ratio",
    "target:build-scale",
    "target:observe-ratio",
    "target:reach-ratio",
    "target:reset-1000",
    "target:draw-100",
    "target:draw-500",
    "target:memory-1000",
}


def _bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    measured = [r for r in rows if not r["op"].startswith("target:")]
    goals = [r for r in rows if r["op"].startswith("target:")]
    assert rows == measured + goals  # the measurements first, then the targets
    assert {row["op"] for row in measured} == OPS
    assert {(row["op"], row["n"]) for row in measured} == {(op, n) for op in OPS for n in (3, 6)}
    for row in measured:
        assert KEYS <= set(row) <= KEYS | {"note", "labkit_failed", "shell_failed"}, row
        assert isinstance(row["n"], int) and row["n"] >= 2
        assert isinstance(row["labkit_s"], (int, float)) and row["labkit_s"] > 0
        assert row["shell_s"] is None or row["shell_s"] > 0
        ratio = row["ratio"]
        assert ratio is None or (isinstance(ratio, (int, float)) and ratio > 0), row
        assert (ratio is None) == (row["shell_s"] is None), row
        assert "note" not in row or isinstance(row["note"], str)
        assert "labkit_failed" not in row, row  # every ping of the quick lab gets through
    reach = {row["n"]: row["note"] for row in measured if row["op"] == "reach"}
    assert reach == {3: "shell: all 6 pairs measured", 6: "shell: all 30 pairs measured"}
    assert {row["op"] for row in goals} == TARGETS
    for row in goals:  # the quick sizes measure none of the targets' sizes
        assert KEYS | {"goal", "value", "unit", "status"} <= set(row), row
        assert row["status"] == "NOT RUN" and row["value"] is None, row
        assert row["labkit_s"] is None and row["shell_s"] is None and row["ratio"] is None
    assert "target" in proc.stderr and "NOT RUN" in proc.stderr  # the targets' text
    assert plot.read_bytes()[:4] == b"\x89PNG"


def _row(op, n, labkit_s, shell_s=None, **extra):
    ratio = None if shell_s is None else round(shell_s / labkit_s, 3)
    return {"op": op, "n": n, "labkit_s": labkit_s, "shell_s": shell_s, "ratio": ratio, **extra}


def _status(goals):
    return {g["op"].removeprefix("target:"): (g["value"], g["status"]) for g in goals}


def test_targets_pass_when_every_goal_is_met():
    rows = [
        _row("build", 100, 0.1, 0.8),  # 8x
        _row("build", 1000, 1.5, 48.0),  # 1.5 ms per namespace against 1 ms: 1.5x, the limit
        _row("observe", 100, 0.2, 1.0),  # 5x, the limit
        _row("reach", 100, 1.0, 30.0, note="shell: 380 pairs measured, extrapolated to 9900"),
        _row("reset", 100, 0.1, 2.0),
        _row("reset", 1000, 0.999, 23.0),
        _row("draw", 100, 0.5),
        _row("draw", 500, 2.25),
        _row("memory", 1000, 95.5, 64.0),
    ]
    assert _status(_bench().targets(rows)) == {
        "build-ratio": (8.0, "PASS"),
        "build-scale": (1.5, "PASS"),
        "observe-ratio": (5.0, "PASS"),
        "reach-ratio": (30.0, "PASS"),
        "reset-1000": (0.999, "PASS"),
        "draw-100": (0.5, "REPORT"),
        "draw-500": (2.25, "REPORT"),
        "memory-1000": (95.5, "REPORT"),
    }


def test_targets_miss_just_past_each_limit():
    rows = [
        _row("build", 100, 0.2, 0.998),  # 4.99x
        _row("build", 1000, 3.2, 48.0),  # 3.2 ms per namespace against 2 ms: 1.6x
        _row("observe", 100, 0.5, 1.0),  # 2x
        _row("reach", 100, 4.0, 39.6),  # 9.9x
        _row("reset", 1000, 1.0, 23.0),  # not under 1 s
    ]
    got = _status(_bench().targets(rows))
    assert got["build-ratio"] == (4.99, "MISS")
    assert got["build-scale"] == (1.6, "MISS")
    assert got["observe-ratio"] == (2.0, "MISS")
    assert got["reach-ratio"] == (9.9, "MISS")
    assert got["reset-1000"] == (1.0, "MISS")
    assert got["draw-100"] == got["draw-500"] == got["memory-1000"] == (None, "NOT RUN")


def test_targets_miss_when_a_measurement_failed_however_fast():
    rows = [
        _row("build", 100, 0.1, 0.8),
        _row("reach", 100, 0.01, 30.0, labkit_failed=12, note="labkit: 12 of 9900 pings failed"),
        {"op": "reset", "n": 1000, "labkit_s": None, "shell_s": None, "ratio": None}
        | {"error": "OSError: boom", "note": "error: OSError: boom"},
    ]
    goals = {g["op"]: g for g in _bench().targets(rows)}
    assert goals["target:build-ratio"]["status"] == "PASS"
    assert goals["target:build-scale"]["status"] == "NOT RUN"  # no build at 1000
    assert goals["target:reach-ratio"]["status"] == "MISS"
    assert "12 pings failed" in goals["target:reach-ratio"]["note"]
    assert goals["target:reset-1000"]["status"] == "MISS"
    assert "OSError: boom" in goals["target:reset-1000"]["note"]


@pytest.mark.parametrize("rows", [[], [_row("build", 10, 0.01, 0.1), _row("reach", 20, 0.1, 1.0)]])
def test_targets_are_not_run_without_their_sizes(rows):
    goals = _bench().targets(rows)
    assert [g["op"] for g in goals] == sorted(TARGETS, key=[g["op"] for g in goals].index)
    assert {g["status"] for g in goals} == {"NOT RUN"}
    for g in goals:  # the same row shape as the measurements, and never a fake number
        assert {"op", "n", "labkit_s", "shell_s", "ratio", "goal", "value", "unit"} <= set(g)
        assert g["value"] is None and g["labkit_s"] is None


def test_default_plan_covers_the_targets_and_sizes_are_capped(capsys):
    bench = _bench()
    todo = bench.plan(bench.OPS, None)
    assert todo == [
        ("build", 100),
        ("build", 1000),
        ("observe", 100),
        ("reach", 100),
        ("reset", 100),
        ("reset", 1000),
        ("draw", 100),
        ("draw", 500),
        ("memory", 1000),
    ]
    measured = [_row(op, n, 1.0, None if op == "draw" else 2.0) for op, n in todo]
    assert "NOT RUN" not in {g["status"] for g in bench.targets(measured)}
    assert bench.plan(["reach", "draw"], [3, 6]) == [
        ("reach", 3),
        ("reach", 6),
        ("draw", 3),
        ("draw", 6),
    ]
    from labkit.core import stages

    assert bench._sizes(f"100,{stages.MAX_NAMESPACES + 500}") == [100, stages.MAX_NAMESPACES]
    assert str(stages.MAX_NAMESPACES) in capsys.readouterr().err
    assert bench._sizes("1014,500") == [500, 1014]  # beyond the /24: no cap at 247
