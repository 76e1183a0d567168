"""``bench/soak.py``: build/reset cycles leak no file descriptors, memory or namespaces.

The soak runs in its own sandbox, started by a subprocess (as CI would run
it); here with a small count. The full 500 cycles are a documented command:
``.venv/bin/python bench/soak.py``. The verdict logic is tested on its own
with hand-made rows, so a leak cannot pass unnoticed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CYCLES = 40
WARMUP = 10


def _soak():
    spec = importlib.util.spec_from_file_location("bench_soak", ROOT / "bench" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_build_reset_cycles_leak_nothing():
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--cycles",
            str(CYCLES),
            "--warmup",
            str(WARMUP),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    result = json.loads(proc.stdout)
    rows, checks = result["rows"], result["verdicts"]
    failed = [v for v in checks if not v["ok"]]
    assert proc.returncode == 0 and not failed, (failed, proc.stderr)
    assert [r["cycle"] for r in rows] == list(range(1, CYCLES + 1))
    after = rows[WARMUP - 1 :]
    for key in ("fds", "threads", "procs"):
        assert len({r[key] for r in after}) == 1, (key, [r[key] for r in after])
    assert {r["netns"] for r in rows} == {3}  # the world's, after every reset
    assert max(r["rss_kib"] for r in after) - after[0]["rss_kib"] < 10 * 1024
    assert rows[-1]["zombies_at_end"] == 0
    # the figures are real: the worker has its netlink thread, the sandbox its
    # PID 1, the worker and the internet's web app
    assert rows[0]["threads"] >= 2 and rows[0]["procs"] >= 3 and rows[0]["fds"] >= 3


def _rows(n: int = 30, **grow: float) -> list[dict]:
    base = {"fds": 9, "rss_kib": 36000, "threads": 2, "procs": 3, "netns": 3, "zombies": 0}
    return [
        {"cycle": i + 1, **{k: v + int(grow.get(k, 0) * i) for k, v in base.items()}}
        for i in range(n)
    ]


def test_verdicts_pass_flat_figures_and_catch_each_leak():
    soak = _soak()
    assert all(v["ok"] for v in soak.verdicts(_rows(), 20, 10))
    # growth before the warm-up's end is not a leak
    early = _rows()
    for r in early[:5]:
        r["fds"], r["rss_kib"] = 7, 20000
    assert all(v["ok"] for v in soak.verdicts(early, 20, 10))
    cases = {
        "fds": _rows(fds=0.2),  # one more every 5 cycles
        "threads": _rows(threads=0.1),
        "procs": _rows(procs=0.1),
        "rss_kib": _rows(rss_kib=1100),  # ~11 MiB over the 10 cycles after warm-up
    }
    for measure, rows in cases.items():
        bad = [v["measure"] for v in soak.verdicts(rows, 20, 10) if not v["ok"]]
        assert bad == [measure], (measure, bad)
    stray = _rows()
    stray[12]["netns"] = 4  # a namespace left behind by one reset
    assert [v["measure"] for v in soak.verdicts(stray, 20, 10) if not v["ok"]] == ["netns"]
    zombie = _rows()
    zombie[-1]["zombies_at_end"] = 1
    assert [v["measure"] for v in soak.verdicts(zombie, 20, 10) if not v["ok"]] == ["zombies"]
