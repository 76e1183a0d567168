"""Benchmark labkit against the plain shell way, both in the same run.

Run (as root, or where user namespaces work):

    .venv/bin/python bench/run.py [--sizes 10,100] [--repeat 3] [--json] [--plot FILE]
    .venv/bin/python bench/run.py --quick --json     # small sizes, 1 repeat (CI smoke)

Every measurement runs in a fresh sandbox (:func:`labkit.sandbox.run_in_sandbox`);
only the operation itself is timed, never the set-up before it. The table gives
the median of ``--repeat`` runs per op and size, and ratio = shell_s / labkit_s
(above 1: labkit is faster). The ops:

build
    ``Lab(namespaces=N).goto("bridge")`` against the commands of the plans of
    stages netns, veth and bridge, one ``ip`` process each.
observe
    :func:`labkit.observe.snapshot` + :func:`~labkit.observe.to_graph` of the
    bridge stage against ``ip -j netns list`` and ``ip -j [-n NS] link|addr|route|neigh``
    for the host and every namespace of the sandbox (the world's included).
reach
    :meth:`labkit.Lab.reachability` among the N namespaces (all ordered pairs,
    pinged at once) against ``ip netns exec A ping -c1 -W1 B`` pair after
    pair. The shell side runs at most :data:`REACH_PAIRS` pairs (all of them
    up to N = 20), a sample spread over all pairs beyond, and extrapolates;
    the row's ``note`` says which.
reset
    :meth:`labkit.Lab.reset` of the bridge stage against ``ip link delete`` of
    each host-side veth and the bridge, then ``ip netns delete`` of each namespace.
draw
    :func:`labkit.draw.save` of the bridge stage's graph (no shell counterpart).
memory
    Peak RSS (``ru_maxrss``) in MiB of the sandboxed Python process after the
    build, labkit's way and the shell way (the same process, driving ``ip``):
    labkit_s and shell_s hold MiB here, not seconds (see the row's ``note``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import labkit.draw  # imported before any fork, so no op pays for importing it
from labkit import Lab, observe, stages
from labkit.sandbox import run_in_sandbox

ROOT = Path(__file__).resolve().parent.parent
OPS = ["build", "observe", "reach", "reset", "draw", "memory"]
REACH_PAIRS = 380  # the shell side's pairs per measurement: all pairs of 20 namespaces
REACH_BUDGET = 50.0  # seconds: the shell side stops there and extrapolates
QUICK_SIZES = [3, 6]
NOTES = {
    "memory": "peak RSS in MiB of the sandboxed process after build (not seconds); "
    "shell_s: the same process driving ip",
    "draw": "no shell counterpart",
}

# -- the measurements: each runs inside a fresh sandbox ---------------------


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def _build(n: int) -> None:
    Lab(namespaces=n).goto("bridge")


def _shell_build_commands(n: int) -> list[str]:
    lab = Lab(namespaces=n)
    return [c for st in ("netns", "veth", "bridge") for c in lab.plan(st).commands]


def build_labkit(n: int) -> tuple[float, str | None]:
    """Time ``Lab(namespaces=n).goto("bridge")`` from a fresh sandbox."""
    lab = Lab(namespaces=n)
    start = time.perf_counter()
    lab.goto("bridge")
    return time.perf_counter() - start, None


def build_shell(n: int) -> tuple[float, str | None]:
    """Time the plans' commands of netns, veth and bridge, one process each."""
    commands = _shell_build_commands(n)
    start = time.perf_counter()
    for command in commands:
        _run(command.split())
    return time.perf_counter() - start, None


def observe_labkit(n: int) -> tuple[float, str | None]:
    """Time a snapshot of the whole sandbox and its graph, at the bridge stage."""
    _build(n)
    start = time.perf_counter()
    observe.to_graph(observe.snapshot())
    return time.perf_counter() - start, None


def observe_shell(n: int) -> tuple[float, str | None]:
    """Time ``ip -j`` link, addr, route and neigh of the host and every namespace."""
    _build(n)
    start = time.perf_counter()
    listing = subprocess.run(["ip", "-j", "netns", "list"], check=True, capture_output=True)
    names = [entry["name"] for entry in json.loads(listing.stdout or b"[]")]
    for ns in [None, *names]:
        where = [] if ns is None else ["-n", ns]
        for what in ("link", "addr", "route", "neigh"):
            subprocess.run(["ip", "-j", *where, what], check=True, capture_output=True)
    return time.perf_counter() - start, f"{4 * (len(names) + 1) + 1} ip processes"


def reach_labkit(n: int) -> tuple[float, str | None]:
    """Time :meth:`Lab.reachability` among the lab's n namespaces."""
    _build(n)
    targets = dict(stages.namespaces(n))
    start = time.perf_counter()
    table = Lab(namespaces=n).reachability(nodes=list(targets), targets=targets)
    elapsed = time.perf_counter() - start
    pings = [ok for row in table.table.values() for ok in row.values()]
    failed = pings.count(False)
    return elapsed, f"labkit: {failed} of {len(pings)} pings failed" if failed else None


def reach_shell(n: int) -> tuple[float, str | None]:
    """Time sequential pings for every ordered pair (sampled beyond REACH_PAIRS)."""
    _build(n)
    targets = stages.namespaces(n)
    pairs = [(a, ip) for a, _ in targets for b, ip in targets if a != b]
    sample = pairs
    if len(pairs) > REACH_PAIRS:  # evenly spread, so every source and target appears
        step = len(pairs) / REACH_PAIRS
        sample = [pairs[int(i * step)] for i in range(REACH_PAIRS)]
    failed = done = 0
    start = time.perf_counter()
    for src, ip in sample:
        argv = ["ip", "netns", "exec", src, "ping", "-n", "-c1", "-W1", ip]
        failed += subprocess.run(argv, stdout=subprocess.DEVNULL).returncode != 0
        done += 1
        if time.perf_counter() - start > REACH_BUDGET:
            break
    elapsed = time.perf_counter() - start
    notes = []
    if done < len(pairs):
        elapsed *= len(pairs) / done
        notes.append(f"shell extrapolated from {done} of {len(pairs)} pairs")
    else:
        notes.append(f"shell ran all {len(pairs)} pairs")
    if failed:
        notes.append(f"shell: {failed} of {done} pings failed")
    return elapsed, "; ".join(notes)


def reset_labkit(n: int) -> tuple[float, str | None]:
    """Time :meth:`Lab.reset` of the bridge stage with n namespaces."""
    _build(n)
    lab = Lab(namespaces=n)
    start = time.perf_counter()
    lab.reset()
    return time.perf_counter() - start, None


def reset_shell(n: int) -> tuple[float, str | None]:
    """Time deleting the host-side veths, the bridge and the namespaces with ``ip``."""
    _build(n)
    names = [name for name, _ in stages.namespaces(n)]
    start = time.perf_counter()
    for name in names:
        _run(["ip", "link", "delete", f"veth-{name}-br"])
    _run(["ip", "link", "delete", "v-net-0"])
    for name in names:
        _run(["ip", "netns", "delete", name])
    return time.perf_counter() - start, None


def draw_labkit(n: int) -> tuple[float, str | None]:
    """Time :func:`labkit.draw.save` of the bridge stage's graph to a PNG."""
    _build(n)
    graph = observe.to_graph(observe.snapshot())
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        labkit.draw.save(graph, os.path.join(tmp, "lab.png"))
        return time.perf_counter() - start, None


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_labkit(n: int) -> tuple[float, str | None]:
    """Peak RSS (MiB) of this sandboxed process after building n namespaces with labkit."""
    _build(n)
    return _peak_mib(), None


def memory_shell(n: int) -> tuple[float, str | None]:
    """Peak RSS (MiB) of this sandboxed process after building n namespaces with ``ip``."""
    for command in _shell_build_commands(n):
        _run(command.split())
    return _peak_mib(), None


WAYS: dict[str, tuple[Callable[[int], tuple[float, str | None]], Callable | None]] = {
    "build": (build_labkit, build_shell),
    "observe": (observe_labkit, observe_shell),
    "reach": (reach_labkit, reach_shell),
    "reset": (reset_labkit, reset_shell),
    "draw": (draw_labkit, None),
    "memory": (memory_labkit, memory_shell),
}

# -- running, printing, plotting ---------------------------------------------


def _median(fn: Callable[[int], tuple[float, str | None]], n: int, repeat: int) -> tuple:
    """The median of ``repeat`` sandboxed runs of ``fn(n)``, and the notes they gave."""
    results = [run_in_sandbox(fn, n) for _ in range(repeat)]
    notes = sorted({note for _, note in results if note})
    return statistics.median(value for value, _ in results), notes


def measure(op: str, n: int, repeat: int) -> dict[str, Any]:
    """One row: both ways of ``op`` at size ``n``, medians of ``repeat`` runs each."""
    labkit_way, shell_way = WAYS[op]
    labkit_s, notes = _median(labkit_way, n, repeat)
    shell_s = None
    if shell_way is not None:
        shell_s, shell_notes = _median(shell_way, n, repeat)
        notes += shell_notes
    if op in NOTES:
        notes.insert(0, NOTES[op])
    row: dict[str, Any] = {
        "op": op,
        "n": n,
        "labkit_s": round(labkit_s, 6),
        "shell_s": None if shell_s is None else round(shell_s, 6),
        "ratio": None if shell_s is None or labkit_s <= 0 else round(shell_s / labkit_s, 3),
    }
    if notes:
        row["note"] = "; ".join(dict.fromkeys(notes))
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a text table, notes at the end of each line.

    Examples
    --------
    >>> print(table([{"op": "draw", "n": 2, "labkit_s": 0.5, "shell_s": None, "ratio": None}]))
    op           n   labkit_s    shell_s   ratio
    draw         2      0.500          -       -
    """

    def num(value: float | None, width: int, digits: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"

    lines = [f"{'op':8} {'n':>5} {'labkit_s':>10} {'shell_s':>10} {'ratio':>7}"]
    for r in rows:
        line = (
            f"{r['op']:8} {r['n']:5d} {num(r['labkit_s'], 10, 3)} "
            f"{num(r['shell_s'], 10, 3)} {num(r['ratio'], 7, 2)}"
        )
        lines.append(line + (f"  ({r['note']})" if r.get("note") else ""))
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Write time (memory for ``memory``) against n for both ways, one panel per op."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    ops = list(dict.fromkeys(r["op"] for r in rows))
    cols = 3
    fig = Figure(figsize=(4 * cols, 3.2 * -(-len(ops) // cols)), layout="constrained")
    axes = fig.subplots(-(-len(ops) // cols), cols, squeeze=False).ravel()
    for ax, op in zip(axes, ops, strict=False):
        mine = [r for r in rows if r["op"] == op]
        ns = [r["n"] for r in mine]
        ax.plot(ns, [r["labkit_s"] for r in mine], "o-", label="labkit")
        if any(r["shell_s"] is not None for r in mine):
            ax.plot(ns, [r["shell_s"] for r in mine], "s--", label="shell")
        ax.set_title(op)
        ax.set_xlabel("namespaces (n)")
        ax.set_ylabel("peak RSS (MiB)" if op == "memory" else "seconds")
        ax.legend()
    for ax in axes[len(ops) :]:
        ax.set_visible(False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)


def _sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        n = int(part)
        if n < 2:
            raise argparse.ArgumentTypeError(f"a lab has at least 2 namespaces, not {n}")
        if n > stages.MAX_NAMESPACES:
            print(
                f"note: {n} namespaces do not fit labkit's subnet "
                f"({stages.SUBNET}.0/{stages.PREFIX}); capped at {stages.MAX_NAMESPACES}",
                file=sys.stderr,
            )
            n = stages.MAX_NAMESPACES
        sizes.append(n)
    return sorted(set(sizes))


def main(argv: list[str] | None = None) -> None:
    """Measure, print the table (or JSON) and write the plot.

    Examples
    --------
    $ python bench/run.py --sizes 10,50,100 --repeat 3
    $ python bench/run.py --quick --json
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help=f"namespace counts, comma-separated (default 10,100; at most "
        f"{stages.MAX_NAMESPACES}: labkit's subnet holds no more)",
    )
    parser.add_argument("--repeat", type=int, default=None, help="runs per value (median)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repeat (CI smoke)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--plot", type=Path, default=ROOT / "out" / "bench.png", help="PNG file")
    parser.add_argument("--ops", default=",".join(OPS), help="which ops (default all)")
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else [10, 100])
    repeat = args.repeat or (1 if args.quick else 3)
    ops = [op for op in args.ops.split(",") if op]
    unknown = set(ops) - set(OPS)
    if unknown:
        parser.error(f"unknown ops {sorted(unknown)}: choose from {OPS}")
    rows = []
    started = time.perf_counter()
    for op in ops:
        for n in sizes:
            print(f"{op} n={n} ...", file=sys.stderr, flush=True)
            rows.append(measure(op, n, repeat))
    plot(rows, args.plot)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(table(rows))
    print(
        f"repeat {repeat} (median); took {time.perf_counter() - started:.1f} s; plot: {args.plot}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
