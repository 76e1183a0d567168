"""Soak: many build/reset cycles in one sandbox, watching for leaks (issue 7).

Run (as root, or where user namespaces work):

    .venv/bin/python bench/soak.py                    # 500 cycles, about 2 minutes
    .venv/bin/python bench/soak.py --cycles 40 --json # what tests/test_soak.py runs

Each cycle is ``Lab(N).goto(STAGE)`` then ``Lab().reset()`` (default: the
portforward stage with 10 namespaces, so every cycle makes and removes
namespaces, veths, a bridge, routes, NAT rules and a web app). After every
cycle it records, in the process that does the work (the sandbox's worker):

* ``fds``: open file descriptors (``/proc/self/fd``);
* ``rss_kib``: resident memory (``VmRSS``);
* ``threads``: threads of the process;
* ``netns``: namespaces in the sandbox's ``/run/netns``;
* ``procs`` and ``zombies``: processes in the sandbox (its own ``/proc``),
  zombies counted apart;
* ``seconds``: how long the cycle took.

Then it prints a table (a sample of the cycles) and a summary per measure
(first, after the warm-up, last, max, growth after the warm-up) and exits
with status 1 when a measure grew beyond its limit (:func:`verdicts`):
no growth at all in fds, threads and processes after the warm-up, less than
``--max-rss-growth`` MiB (default 10) of memory after the warm-up (default
20 cycles), the world's 3 namespaces after every reset, and no zombie left
at the end. ``--json`` prints ``{"rows": [...], "verdicts": [...],
"seconds": ...}`` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

#: measures that must not grow at all after the warm-up
EXACT = ("fds", "threads", "procs")
#: the world's namespaces: router, lan-pc, internet
WORLD_NETNS = 3


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _processes() -> tuple[int, int]:
    """(live processes, zombies) in this /proc (the sandbox's own)."""
    live = zombies = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            zombies += 1
        else:
            live += 1
    return live, zombies


def measure() -> dict[str, int]:
    """The figures of this process and its sandbox, now."""
    procs, zombies = _processes()
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "rss_kib": _status("VmRSS"),
        "threads": _status("Threads"),
        "netns": len(os.listdir("/run/netns")),
        "procs": procs,
        "zombies": zombies,
    }


def soak(cycles: int, namespaces: int, stage: str) -> list[dict[str, Any]]:
    """Run in a sandbox: ``cycles`` times goto(stage) and reset(); a row per cycle."""
    from labkit import Lab

    rows = []
    for i in range(1, cycles + 1):
        started = time.monotonic()
        Lab(namespaces).goto(stage)
        Lab().reset()
        row: dict[str, Any] = {"cycle": i, "seconds": round(time.monotonic() - started, 4)}
        row.update(measure())
        rows.append(row)
    time.sleep(0.5)  # the last web app's exit, reaped by the sandbox's PID 1
    rows[-1]["zombies_at_end"] = measure()["zombies"]
    return rows


def verdicts(rows: list[dict[str, Any]], warmup: int, max_rss_mib: float) -> list[dict[str, Any]]:
    """One verdict per measure: its figures, its limit and whether it passed.

    Examples
    --------
    >>> flat = [{"fds": 9, "rss_kib": 50000, "threads": 2, "procs": 3, "netns": 3,
    ...          "zombies": 0} for _ in range(30)]
    >>> all(v["ok"] for v in verdicts(flat, 20, 10))
    True
    >>> leaky = [dict(r, fds=9 + i) for i, r in enumerate(flat)]
    >>> [v["measure"] for v in verdicts(leaky, 20, 10) if not v["ok"]]
    ['fds']
    """
    if not rows:
        return [{"measure": "cycles", "ok": False, "note": "no cycle ran"}]
    base = rows[min(warmup, len(rows)) - 1]
    after = rows[min(warmup, len(rows)) - 1 :]
    out = []
    for key in (*EXACT, "rss_kib"):
        values = [r[key] for r in rows]
        growth = max(r[key] for r in after) - base[key]
        limit = max_rss_mib * 1024 if key == "rss_kib" else 0
        out.append(
            {
                "measure": key,
                "first": values[0],
                "after_warmup": base[key],
                "last": values[-1],
                "max": max(values),
                "growth": growth,
                "limit": limit,
                "ok": growth < limit if key == "rss_kib" else growth <= limit,
            }
        )
    netns = [r["netns"] for r in rows]
    out.append(
        {
            "measure": "netns",
            "first": netns[0],
            "after_warmup": base["netns"],
            "last": netns[-1],
            "max": max(netns),
            "growth": max(netns) - WORLD_NETNS,
            "limit": 0,
            "ok": set(netns) == {WORLD_NETNS},
        }
    )
    zombies = rows[-1].get("zombies_at_end", rows[-1]["zombies"])
    out.append(
        {
            "measure": "zombies",
            "first": rows[0]["zombies"],
            "after_warmup": base["zombies"],
            "last": zombies,
            "max": max(r["zombies"] for r in rows),
            "growth": zombies,
            "limit": 0,
            "ok": zombies == 0,
        }
    )
    return out


def table(rows: list[dict[str, Any]], warmup: int) -> str:
    """A sample of the rows: the first ones, the warm-up's end, ten more, the last."""
    n = len(rows)
    picks = sorted({1, 2, 3, warmup, n, *range(max(1, n // 10), n + 1, max(1, n // 10))})
    keys = ("cycle", "seconds", "fds", "rss_kib", "threads", "netns", "procs", "zombies")
    lines = ["  ".join(k.rjust(8) for k in keys)]
    for i in picks:
        if 1 <= i <= n:
            lines.append("  ".join(str(rows[i - 1][k]).rjust(8) for k in keys))
    return "\n".join(lines)


def summary(checks: list[dict[str, Any]]) -> str:
    lines = [
        f"{'measure':>8}  {'first':>8}  {'warm':>8}  {'last':>8}  {'max':>8}  "
        f"{'growth':>8}  {'limit':>8}  verdict"
    ]
    for v in checks:
        lines.append(
            f"{v['measure']:>8}  {v['first']:>8}  {v['after_warmup']:>8}  {v['last']:>8}  "
            f"{v['max']:>8}  {v['growth']:>8}  {v['limit']:>8}  {'PASS' if v['ok'] else 'FAIL'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=500, help="build/reset cycles (500)")
    parser.add_argument("--namespaces", type=int, default=10, help="namespaces on the bridge")
    parser.add_argument("--stage", default="portforward", help="the stage built each cycle")
    parser.add_argument("--warmup", type=int, default=20, help="cycles before the baseline")
    parser.add_argument(
        "--max-rss-growth", type=float, default=10.0, help="MiB of memory growth allowed"
    )
    parser.add_argument("--json", action="store_true", help="rows and verdicts as JSON")
    args = parser.parse_args(argv)
    if args.cycles < 1 or not 1 <= args.warmup <= args.cycles:
        parser.error("need --cycles >= 1 and 1 <= --warmup <= --cycles")

    from labkit.world import run_in_lab

    started = time.monotonic()
    rows = run_in_lab(soak, args.cycles, args.namespaces, args.stage)
    seconds = round(time.monotonic() - started, 2)
    checks = verdicts(rows, args.warmup, args.max_rss_growth)
    ok = all(v["ok"] for v in checks)
    if args.json:
        print(json.dumps({"rows": rows, "verdicts": checks, "seconds": seconds}))
    else:
        print(
            f"soak: {args.cycles} cycles of goto({args.stage!r}) with {args.namespaces} "
            f"namespaces + reset() in {seconds} s ({seconds / args.cycles:.3f} s per cycle)"
        )
        print(table(rows, args.warmup))
        print()
        print(summary(checks))
        print(f"soak: {'PASS' if ok else 'FAIL'} (baseline: after cycle {args.warmup})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
