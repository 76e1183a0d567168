"""Run bench/run.py for this tree and an earlier revision, side by side, in one run.

The earlier revision is exported with ``git archive`` to a temporary
folder and imported from there (``PYTHONPATH``). For each op, the two
trees take turns (old, new, old, new, ...), so a machine that gets slower
during the run slows both alike. Each side reports its own ratio (shell
time over labkit time, both measured by that side in the same sandbox);
the table shows both ratios and how much the new one differs. ``draw``
has no shell side: its columns are pictures per second instead.

Usage::

    .venv/bin/python bench/compare.py --against c5b1e5c
    .venv/bin/python bench/compare.py --against HEAD~3 --ops build,reset --sizes 100 --rounds 1

Examples
--------
>>> change(10.0, 9.0)
-10.0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPS = ("build", "observe", "reach", "reset", "draw")


def change(old: float, new: float) -> float:
    """How much ``new`` differs from ``old``, in percent (one decimal).

    Examples
    --------
    >>> change(20.0, 22.0)
    10.0
    """
    return round(100.0 * (new - old) / old, 1)


def run(tree: Path, op: str, sizes: str | None, repeat: int | None) -> list[dict]:
    """One ``bench/run.py --json`` of ``tree`` for ``op``: its measurement rows."""
    argv = [sys.executable, str(tree / "bench" / "run.py"), "--json", "--ops", op]
    argv += ["--plot", os.devnull]
    if sizes:
        argv += ["--sizes", sizes]
    if repeat:
        argv += ["--repeat", str(repeat)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tree, check=False)
    try:
        rows = json.loads(proc.stdout)
    except json.JSONDecodeError:
        sys.exit(f"bench/run.py of {tree} failed:\n{proc.stderr[-2000:]}")
    return [r for r in rows if not r["op"].startswith("target:")]


def main(argv: list[str] | None = None) -> int:
    """Compare the ratios; print a table. Exit status 0 (the table is the result).

    Examples
    --------
    >>> main(["--against", "HEAD", "--ops", "build", "--sizes", "3"])  # doctest: +SKIP
    op        n   old ratio   new ratio  change %
    build     3       ...
    0
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the earlier revision (git)")
    parser.add_argument("--ops", default=",".join(OPS), help="ops to compare")
    parser.add_argument("--sizes", default=None, help="as bench/run.py --sizes")
    parser.add_argument("--repeat", type=int, default=None, help="as bench/run.py --repeat")
    parser.add_argument("--rounds", type=int, default=2, help="turns per tree and op (2)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="labkit-old-") as tmp:
        os.chmod(tmp, 0o755)  # a sandbox's learner reads the old tree too
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.against], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        trees = {"old": Path(tmp), "new": ROOT}
        print(f"{'op':8} {'n':>5} {'old ratio':>10} {'new ratio':>10} {'change %':>9}")
        for op in args.ops.split(","):
            got: dict[str, dict[int, list[float]]] = {"old": {}, "new": {}}
            for _ in range(args.rounds):
                for side, tree in trees.items():
                    for row in run(tree, op, args.sizes, args.repeat):
                        if row.get("ratio"):
                            got[side].setdefault(row["n"], []).append(row["ratio"])
                        elif row.get("labkit_s") is not None and op == "draw":
                            got[side].setdefault(row["n"], []).append(row["labkit_s"])
            for n in sorted(set(got["old"]) & set(got["new"])):
                old = statistics.median(got["old"][n])
                new = statistics.median(got["new"][n])
                if op == "draw":  # no shell side: compare seconds (lower is better)
                    old, new = 1 / old, 1 / new
                print(f"{op:8} {n:>5} {old:>10.2f} {new:>10.2f} {change(old, new):>9.1f}")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
