"""Benchmark labkit against the plain shell way, both in the same run (issue 6).

Run (as root, or where user namespaces work):

    .venv/bin/python bench/run.py                 # the default plan, about 7 minutes
    .venv/bin/python bench/run.py --json          # the same rows as JSON
    .venv/bin/python bench/run.py --ops reach --sizes 100 --repeat 1
    .venv/bin/python bench/run.py --quick --json  # tiny sizes, 1 repeat (CI smoke)

Every measurement runs in a fresh sandbox with its world (:func:`labkit.world.run_in_lab`);
only the operation itself is timed, never the set-up before it. The table gives
the median of ``--repeat`` runs (default 3) per op and size, and
ratio = shell_s / labkit_s (above 1: labkit is faster).

The default plan measures each op only at the sizes issue 6 asks about
(:data:`DEFAULT_PLAN`): build at 100 and 1000, observe and reach at 100,
reset at 100 and 1000, draw at 100 and 500, memory at 1000. ``--sizes``
runs every chosen op at the given sizes instead; ``--ops`` picks ops.
Sizes go up to :data:`labkit.core.stages.MAX_NAMESPACES` (1014; labs beyond 247
namespaces use 192.168.12.0/22); larger ones are capped, with a note.

After the table come the targets of issue 6 (:func:`targets`), each with
its measured value and PASS or MISS (REPORT where the issue only asks for
the figure, NOT RUN where this run did not measure it). With ``--json``
the output is one list of rows ``{"op", "n", "labkit_s", "shell_s",
"ratio", ...}``: first the measurements, then one row per target whose op
starts with ``target:`` (its labkit_s, shell_s and ratio are null; it adds
``goal``, ``value``, ``unit`` and ``status``), and the targets' text goes
to stderr.

Settling. When a sandbox's process exits, the kernel frees its namespaces
asynchronously, on a workqueue, after the call has returned: for 1000
namespaces the CPUs stayed busy for about 1.2 s on this 2-core VM, and that
work slows whatever runs next (a build of 100 right after one of 1000 took
twice as long). So after every sandboxed run, labkit's and the shell's
alike, :func:`settle` sleeps :data:`SETTLE_S_PER_NS` (1 s per 1000) per
namespace the run had (the world's and the sandbox's own included), then
waits until the CPUs are quiet (at most :data:`QUIET_MAX_S`; not with
``--quick``). None of that is timed. When the CPUs stay busy (something
else runs on the machine), the run ends with a warning that the figures
may be disturbed.

The ops:

build
    ``Lab(namespaces=N).goto("bridge")`` against the commands of the plans of
    stages netns, veth and bridge, one ``ip`` process each.
observe
    :func:`labkit.kernel.observe.snapshot` + :func:`~labkit.kernel.observe.to_graph` of the
    bridge stage against ``ip -j netns list`` and ``ip -j [-n NS] link|addr|route|neigh``
    for the host and every namespace of the sandbox (the world's included).
reach
    :meth:`labkit.Lab.reachability` among the N namespaces (all N*(N-1)
    ordered pairs) against ``ip netns exec A ping -c1 -W1 B`` pair after
    pair. The shell side runs at most :data:`REACH_PAIRS` pairs (all of them
    up to N = 20), a sample spread evenly over all pairs beyond (every
    source and target appears), and scales its time by all pairs / pairs
    measured; the row's note then says "shell: K pairs measured,
    extrapolated to P". Failed pings are counted and noted; a labkit
    failure makes the reach target a MISS whatever the time.
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
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import labkit.draw.painter  # imported (with matplotlib) before any fork, so no op pays for it
from labkit import Lab
from labkit.core import stages
from labkit.kernel import observe
from labkit.world import run_in_lab

ROOT = Path(__file__).resolve().parent.parent
OPS = ["build", "observe", "reach", "reset", "draw", "memory"]
#: the sizes each op runs at by default: those issue 6 sets targets for
DEFAULT_PLAN: dict[str, tuple[int, ...]] = {
    "build": (100, 1000),
    "observe": (100,),
    "reach": (100,),
    "reset": (100, 1000),
    "draw": (100, 500),
    "memory": (1000,),
}
QUICK_SIZES = [3, 6]
REACH_PAIRS = 380  # the shell side's pairs per measurement: all pairs of 20 namespaces
REACH_BUDGET = 50.0  # seconds: the shell side stops there and extrapolates
WORLD_NAMESPACES = 4  # besides the lab's: the sandbox's own (the host) and the world's three
SETTLE_S_PER_NS = 0.001  # sleep after a sandboxed run, per namespace it had
QUIET_BUSY = 0.10  # the CPUs count as quiet below this busy fraction (of all of them)
QUIET_WINDOW_S = 0.1
QUIET_MAX_S = 2.0  # never wait longer than this for quiet CPUs (a busy machine)
NOTES = {
    "memory": "peak RSS in MiB of the sandboxed process after build (not seconds); "
    "shell_s: the same process driving ip",
    "draw": "no shell counterpart",
}
TARGET_PREFIX = "target:"


class Sample(NamedTuple):
    """What one sandboxed run gives: the value, a note, and failed probes (reach)."""

    value: float
    note: str | None = None
    failed: int = 0


# -- the measurements: each runs inside a fresh sandbox ---------------------


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def _build(n: int) -> None:
    Lab(namespaces=n).goto("bridge")


def _shell_build_commands(n: int) -> list[str]:
    lab = Lab(namespaces=n)
    return [c for st in ("netns", "veth", "bridge") for c in lab.plan(st).commands]


def build_labkit(n: int) -> Sample:
    """Time ``Lab(namespaces=n).goto("bridge")`` from a fresh sandbox."""
    lab = Lab(namespaces=n)
    start = time.perf_counter()
    lab.goto("bridge")
    return Sample(time.perf_counter() - start)


def build_shell(n: int) -> Sample:
    """Time the plans' commands of netns, veth and bridge, one process each."""
    commands = _shell_build_commands(n)
    start = time.perf_counter()
    for command in commands:
        _run(command.split())
    return Sample(time.perf_counter() - start)


def observe_labkit(n: int) -> Sample:
    """Time a snapshot of the whole sandbox and its graph, at the bridge stage."""
    _build(n)
    start = time.perf_counter()
    observe.to_graph(observe.snapshot())
    return Sample(time.perf_counter() - start)


def observe_shell(n: int) -> Sample:
    """Time ``ip -j`` link, addr, route and neigh of the host and every namespace."""
    _build(n)
    start = time.perf_counter()
    listing = subprocess.run(["ip", "-j", "netns", "list"], check=True, capture_output=True)
    names = [entry["name"] for entry in json.loads(listing.stdout or b"[]")]
    for ns in [None, *names]:
        where = [] if ns is None else ["-n", ns]
        for what in ("link", "addr", "route", "neigh"):
            subprocess.run(["ip", "-j", *where, what], check=True, capture_output=True)
    return Sample(time.perf_counter() - start, f"{4 * (len(names) + 1) + 1} ip processes")


def reach_labkit(n: int) -> Sample:
    """Time :meth:`Lab.reachability` among the lab's n namespaces (all ordered pairs)."""
    _build(n)
    targets = dict(stages.namespaces(n))
    start = time.perf_counter()
    table = Lab(namespaces=n).reachability(nodes=list(targets), targets=targets)
    elapsed = time.perf_counter() - start
    pings = [ok for row in table.table.values() for ok in row.values()]
    failed = pings.count(False)
    expected = n * (n - 1)
    if len(pings) != expected:  # a result that skips pairs would look fast for nothing
        raise AssertionError(f"reachability gave {len(pings)} results, not {expected}")
    note = f"labkit: {failed} of {len(pings)} pings failed" if failed else None
    return Sample(elapsed, note, failed)


def reach_pairs(n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """All ordered pairs (source, target address) among n namespaces, and the shell's sample.

    The sample is every pair up to :data:`REACH_PAIRS` of them, else
    :data:`REACH_PAIRS` pairs spread evenly over the list (sorted by source,
    then target), so that every source and every target appears.

    Examples
    --------
    >>> pairs, sample = reach_pairs(3)
    >>> len(pairs), sample == pairs
    (6, True)
    >>> pairs, sample = reach_pairs(100)
    >>> len(pairs), len(sample), len({src for src, _ in sample})
    (9900, 380, 100)
    """
    targets = stages.namespaces(n)
    pairs = [(a, ip) for a, _ in targets for b, ip in targets if a != b]
    if len(pairs) <= REACH_PAIRS:
        return pairs, pairs
    step = len(pairs) / REACH_PAIRS
    return pairs, [pairs[int(i * step)] for i in range(REACH_PAIRS)]


def reach_shell(n: int) -> Sample:
    """Time sequential pings, pair after pair (a sample beyond REACH_PAIRS, extrapolated)."""
    _build(n)
    pairs, sample = reach_pairs(n)
    failed = done = 0
    start = time.perf_counter()
    for src, ip in sample:
        argv = ["ip", "netns", "exec", src, "ping", "-n", "-c1", "-W1", ip]
        failed += subprocess.run(argv, stdout=subprocess.DEVNULL).returncode != 0
        done += 1
        if time.perf_counter() - start > REACH_BUDGET:
            break
    elapsed = time.perf_counter() - start
    if done < len(pairs):
        elapsed *= len(pairs) / done
        notes = [f"shell: {done} pairs measured, extrapolated to {len(pairs)}"]
    else:
        notes = [f"shell: all {len(pairs)} pairs measured"]
    if failed:
        notes.append(f"shell: {failed} of {done} pings failed")
    return Sample(elapsed, "; ".join(notes), failed)


def reset_labkit(n: int) -> Sample:
    """Time :meth:`Lab.reset` of the bridge stage with n namespaces.

    Both ways reset a lab that was built and then left alone until the
    kernel's own work after a build (IPv6 link-local addresses, duplicate
    address detection, router solicitations on every new interface) is
    done, as an instructor's lab is; :func:`settle` waits for that, untimed.
    """
    _build(n)
    settle(n)
    lab = Lab(namespaces=n)
    start = time.perf_counter()
    lab.reset()
    return Sample(time.perf_counter() - start)


def reset_shell(n: int) -> Sample:
    """Time deleting the host-side veths, the bridge and the namespaces with ``ip``."""
    _build(n)
    settle(n)
    names = [name for name, _ in stages.namespaces(n)]
    start = time.perf_counter()
    for name in names:
        _run(["ip", "link", "delete", f"veth-{name}-br"])
    _run(["ip", "link", "delete", "v-net-0"])
    for name in names:
        _run(["ip", "netns", "delete", name])
    return Sample(time.perf_counter() - start)


def draw_labkit(n: int) -> Sample:
    """Time :func:`labkit.draw.save` of the bridge stage's graph to a PNG."""
    _build(n)
    graph = observe.to_graph(observe.snapshot())
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        labkit.draw.save(graph, os.path.join(tmp, "lab.png"))
        return Sample(time.perf_counter() - start)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_labkit(n: int) -> Sample:
    """Peak RSS (MiB) of this sandboxed process after building n namespaces with labkit."""
    _build(n)
    return Sample(_peak_mib())


def memory_shell(n: int) -> Sample:
    """Peak RSS (MiB) of this sandboxed process after building n namespaces with ``ip``."""
    for command in _shell_build_commands(n):
        _run(command.split())
    return Sample(_peak_mib())


Way = Callable[[int], Sample]
WAYS: dict[str, tuple[Way, Way | None]] = {
    "build": (build_labkit, build_shell),
    "observe": (observe_labkit, observe_shell),
    "reach": (reach_labkit, reach_shell),
    "reset": (reset_labkit, reset_shell),
    "draw": (draw_labkit, None),
    "memory": (memory_labkit, memory_shell),
}

# -- settling between measurements -------------------------------------------

#: seconds spent settling in this run, and how many settles found the CPUs still busy
_settled = {"seconds": 0.0, "count": 0, "busy": 0}


def _cpu_times() -> tuple[int, int] | None:
    """(all, idle) jiffies of all CPUs so far, from /proc/stat; None if unreadable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return sum(fields), fields[3] + fields[4]  # idle + iowait


def settle(namespaces: int, quiet_max: float = QUIET_MAX_S) -> float:
    """Wait for the kernel to free the namespaces of the sandbox that just ended.

    Sleeps :data:`SETTLE_S_PER_NS` per namespace, then until the CPUs are
    quiet (busy below :data:`QUIET_BUSY` over :data:`QUIET_WINDOW_S`), at
    most ``quiet_max`` seconds. Returns the seconds waited.
    """
    start = time.monotonic()
    time.sleep(namespaces * SETTLE_S_PER_NS)
    deadline = time.monotonic() + quiet_max
    before, quiet = (_cpu_times() if quiet_max > 0 else None), False
    while before is not None and not quiet and time.monotonic() < deadline:
        time.sleep(QUIET_WINDOW_S)
        after = _cpu_times()
        if after is None:
            before = None
            break
        total, idle = after[0] - before[0], after[1] - before[1]
        quiet = total > 0 and 1 - idle / total < QUIET_BUSY
        before = after
    waited = time.monotonic() - start
    _settled["seconds"] += waited
    _settled["count"] += 1
    _settled["busy"] += before is not None and not quiet
    return waited


# -- running -----------------------------------------------------------------


def _median(way: Way, n: int, repeat: int, quiet_max: float) -> tuple[float, list[str], int]:
    """The median of ``repeat`` sandboxed runs of ``way(n)``, their notes, the most failures."""
    samples = []
    for _ in range(repeat):
        samples.append(Sample(*run_in_lab(way, n)))
        settle(n + WORLD_NAMESPACES, quiet_max)
    notes = sorted({s.note for s in samples if s.note})
    return statistics.median(s.value for s in samples), notes, max(s.failed for s in samples)


def measure(op: str, n: int, repeat: int, quiet_max: float = QUIET_MAX_S) -> dict[str, Any]:
    """One row: both ways of ``op`` at size ``n``, medians of ``repeat`` runs each.

    When a way raises, the row keeps null values and says why in ``error``
    and ``note`` (and the run exits with status 1 after printing).
    """
    labkit_way, shell_way = WAYS[op]
    row: dict[str, Any] = {"op": op, "n": n, "labkit_s": None, "shell_s": None, "ratio": None}
    notes = [NOTES[op]] if op in NOTES else []
    try:
        labkit_s, labkit_notes, labkit_failed = _median(labkit_way, n, repeat, quiet_max)
        shell_s, shell_notes, shell_failed = None, [], 0
        if shell_way is not None:
            shell_s, shell_notes, shell_failed = _median(shell_way, n, repeat, quiet_max)
    except Exception as err:  # noqa: BLE001 - the other ops still run; the exit status says so
        row["error"] = f"{type(err).__name__}: {err}".splitlines()[0]
        row["note"] = "; ".join([*notes, "error: " + row["error"]])
        return row
    row["labkit_s"] = round(labkit_s, 6)
    row["shell_s"] = None if shell_s is None else round(shell_s, 6)
    if shell_s is not None and labkit_s > 0:
        row["ratio"] = round(shell_s / labkit_s, 3)
    if labkit_failed:
        row["labkit_failed"] = labkit_failed
    if shell_failed:
        row["shell_failed"] = shell_failed
    notes += labkit_notes + shell_notes
    if notes:
        row["note"] = "; ".join(dict.fromkeys(notes))
    return row


def plan(ops: list[str], sizes: list[int] | None) -> list[tuple[str, int]]:
    """The (op, n) pairs to measure: ``sizes`` for every op, else :data:`DEFAULT_PLAN`.

    Examples
    --------
    >>> plan(["build", "draw"], None)
    [('build', 100), ('build', 1000), ('draw', 100), ('draw', 500)]
    >>> plan(["reach"], [3, 6])
    [('reach', 3), ('reach', 6)]
    """
    return [(op, n) for op in ops for n in (sizes or DEFAULT_PLAN[op])]


# -- the targets of issue 6 ---------------------------------------------------


def _target(
    name: str,
    n: int,
    goal: str,
    unit: str,
    value: float | None,
    ok: bool | None,
    problem: str | None = None,
) -> dict[str, Any]:
    if problem:
        status = "MISS"
    elif value is None:
        status = "NOT RUN"
    elif ok is None:
        status = "REPORT"
    else:
        status = "PASS" if ok else "MISS"
    row: dict[str, Any] = {
        "op": TARGET_PREFIX + name,
        "n": n,
        "labkit_s": None,
        "shell_s": None,
        "ratio": None,
        "goal": goal,
        "value": None if value is None else round(value, 3),
        "unit": unit,
        "status": status,
    }
    if problem:
        row["note"] = problem
    return row


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets of issue 6, from measured rows: each with its value and status.

    Status is PASS or MISS against the goal, REPORT where the issue only
    asks for the figure, NOT RUN where ``rows`` lack the measurement. A
    measurement that failed (an error, or labkit's pings that failed)
    makes its target a MISS, with a note. Pure: no kernel, no clock.

    Examples
    --------
    >>> rows = [{"op": "build", "n": 100, "labkit_s": 0.1, "shell_s": 0.8, "ratio": 8.0}]
    >>> [(t["op"], t["value"], t["status"]) for t in targets(rows)][:2]
    [('target:build-ratio', 8.0, 'PASS'), ('target:build-scale', None, 'NOT RUN')]
    """
    got = {(r["op"], r["n"]): r for r in rows if not str(r["op"]).startswith(TARGET_PREFIX)}

    def problem(*keys: tuple[str, int]) -> str | None:
        for key in keys:
            row = got.get(key)
            if row is None:
                continue
            if row.get("error"):
                return f"{key[0]} n={key[1]}: error: {row['error']}"
            if row.get("labkit_failed"):
                return f"{key[0]} n={key[1]}: labkit: {row['labkit_failed']} pings failed"
        return None

    def field(op: str, n: int, name: str) -> float | None:
        row = got.get((op, n))
        return None if row is None else row.get(name)

    def ratio_target(name: str, op: str, n: int, least: float) -> dict[str, Any]:
        value = field(op, n, "ratio")
        goal = f"{op} N={n}: shell_s / labkit_s >= {least:g}"
        ok = None if value is None else value >= least
        return _target(name, n, goal, "x", value, ok, problem((op, n)))

    small, large = field("build", 100, "labkit_s"), field("build", 1000, "labkit_s")
    scale = None if not small or large is None else (large / 1000) / (small / 100)
    reset = field("reset", 1000, "labkit_s")
    return [
        ratio_target("build-ratio", "build", 100, 5),
        _target(
            "build-scale",
            1000,
            "build: labkit s/namespace, N=1000 over N=100 <= 1.5",
            "x",
            scale,
            None if scale is None else scale <= 1.5,
            problem(("build", 100), ("build", 1000)),
        ),
        ratio_target("observe-ratio", "observe", 100, 5),
        ratio_target("reach-ratio", "reach", 100, 10),
        _target(
            "reset-1000",
            1000,
            "reset N=1000: labkit_s < 1",
            "s",
            reset,
            None if reset is None else reset < 1,
            problem(("reset", 1000)),
        ),
        *(
            _target(
                f"draw-{n}",
                n,
                f"draw N={n}: labkit_s (report)",
                "s",
                field("draw", n, "labkit_s"),
                None,
                problem(("draw", n)),
            )
            for n in (100, 500)
        ),
        _target(
            "memory-1000",
            1000,
            "memory N=1000: labkit peak RSS (report)",
            "MiB",
            field("memory", 1000, "labkit_s"),
            None,
            problem(("memory", 1000)),
        ),
    ]


# -- printing, plotting --------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    """The measured rows as a text table, notes at the end of each line.

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


def targets_text(rows: list[dict[str, Any]]) -> str:
    """The target rows as text: name, goal, measured value, status.

    Examples
    --------
    >>> rows = [{"op": "reset", "n": 1000, "labkit_s": 0.8, "shell_s": 20.0, "ratio": 25.0}]
    >>> print(targets_text(targets(rows)[4:6]))  # doctest: +NORMALIZE_WHITESPACE
    target         goal                                         value  status
    reset-1000     reset N=1000: labkit_s < 1                 0.800 s  PASS
    draw-100       draw N=100: labkit_s (report)                    -  NOT RUN
    """
    lines = [f"{'target':14} {'goal':52} {'value':>12}  status"]
    for t in rows:
        value = "-"
        if t["value"] is not None:
            value = f"{t['value']:.3f}" + {"x": "x", "s": " s", "MiB": " MiB"}[t["unit"]]
        line = f"{t['op'][len(TARGET_PREFIX) :]:14} {t['goal']:52} {value:>12}  {t['status']}"
        lines.append(line + (f"  ({t['note']})" if t.get("note") else ""))
    return "\n".join(lines)


def _plain(value: float, _pos: int) -> str:
    """Tick label: 0.5, 20, 1000."""
    return f"{value:g}"


def _two_five(value: float, _pos: int) -> str:
    """Tick label for 2 and 5 times a power of ten, none for the others."""
    mantissa = value / 10 ** math.floor(math.log10(value))
    return f"{value:g}" if round(mantissa) in (2, 5) else ""


def plot(rows: list[dict[str, Any]], path: Path, repeat: int | None = None) -> None:
    """Write time (memory for ``memory``) against N for both ways, one panel per op.

    Log scales on both axes (memory: linear MiB); each shell point is
    labelled with its ratio shell/labkit.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    rows = [r for r in rows if not r["op"].startswith(TARGET_PREFIX) and r["labkit_s"] is not None]
    ops = list(dict.fromkeys(r["op"] for r in rows)) or ["(nothing measured)"]
    cols = min(3, len(ops))
    nrows = -(-len(ops) // cols)
    fig = Figure(figsize=(4.3 * cols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, op in zip(axes, ops, strict=False):
        mine = sorted((r for r in rows if r["op"] == op), key=lambda r: r["n"])
        ns = [r["n"] for r in mine]
        ax.plot(ns, [r["labkit_s"] for r in mine], "o-", color="tab:blue", label="labkit")
        shell = [r for r in mine if r["shell_s"] is not None]
        if shell:
            xs, ys = [r["n"] for r in shell], [r["shell_s"] for r in shell]
            ax.plot(xs, ys, "s--", color="tab:orange", label="shell (ip)")
            for r in shell:
                if r["ratio"] is not None and op != "memory":
                    ax.annotate(
                        f"×{r['ratio']:.1f}",
                        (r["n"], r["shell_s"]),
                        textcoords="offset points",
                        xytext=(6, 4),
                        fontsize=8,
                    )
        ax.set_xscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.2, y=0.15)
        values = [v for r in mine for v in (r["labkit_s"], r["shell_s"]) if v]
        if op == "memory":
            ax.set_ylim(0, 1.25 * max(values))
        else:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(_plain))
            span = max(values) / min(values)  # within a few decades, label minor ticks too
            if span < 30:
                ax.yaxis.set_minor_formatter(FuncFormatter(_plain if span < 3 else _two_five))
            else:
                ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title({"reach": "reach (shell extrapolated)"}.get(op, op))
        ax.set_xlabel("namespaces N")
        ax.set_ylabel("peak RSS (MiB)" if op == "memory" else "seconds")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(ops) :]:
        ax.set_visible(False)
    median = f", median of {repeat}" if repeat else ""
    fig.suptitle(f"labkit vs the shell way, time against N{median}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)


def _sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        try:
            n = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of namespaces: {part!r}") from None
        if n < 2:
            raise argparse.ArgumentTypeError(f"a lab has at least 2 namespaces, not {n}")
        if n > stages.MAX_NAMESPACES:
            print(
                f"note: a lab holds at most {stages.MAX_NAMESPACES} namespaces "
                f"({stages.TUTORIAL_MAX} in {stages.SUBNET}.0/{stages.PREFIX}, the rest "
                f"in {stages.WIDE_NETWORK}); measuring {stages.MAX_NAMESPACES} instead of {n}",
                file=sys.stderr,
            )
            n = stages.MAX_NAMESPACES
        sizes.append(n)
    return sorted(set(sizes))


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and the targets (or JSON), write the plot.

    Returns 1 when a measurement raised (its row says why), else 0; a
    missed target does not change the exit status.

    Examples
    --------
    $ python bench/run.py
    $ python bench/run.py --ops build --sizes 10,100,1000 --repeat 1
    $ python bench/run.py --quick --json
    """
    default_plan = ", ".join(
        f"{op} at {' and '.join(map(str, sizes))}" for op, sizes in DEFAULT_PLAN.items()
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help=f"namespace counts, comma-separated, for every chosen op (default: {default_plan}; "
        f"at most {stages.MAX_NAMESPACES})",
    )
    parser.add_argument("--repeat", type=int, default=None, help="runs per value (median; 3)")
    parser.add_argument(
        "--quick", action="store_true", help=f"sizes {QUICK_SIZES}, 1 repeat (CI smoke)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON rows (measurements, then targets)"
    )
    parser.add_argument("--plot", type=Path, default=ROOT / "out" / "bench.png", help="PNG file")
    parser.add_argument("--ops", default=",".join(OPS), help=f"which ops (default {','.join(OPS)})")
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else None)
    repeat = args.repeat or (1 if args.quick else 3)
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    ops = [op for op in args.ops.split(",") if op]
    unknown = set(ops) - set(OPS)
    if unknown or not ops:
        parser.error(f"unknown ops {sorted(unknown)}: choose from {OPS}")
    todo = plan(ops, sizes)
    rows = []
    started = time.perf_counter()
    for i, (op, n) in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {op} n={n} ...", file=sys.stderr, flush=True)
        rows.append(measure(op, n, repeat, 0 if args.quick else QUIET_MAX_S))
        if rows[-1].get("error"):
            print(f"  {op} n={n} failed: {rows[-1]['error']}", file=sys.stderr, flush=True)
    goals = targets(rows)
    plot(rows, args.plot, repeat)
    if args.json:
        print(json.dumps(rows + goals, indent=1))
        print(targets_text(goals), file=sys.stderr)
    else:
        print(table(rows))
        print()
        print(targets_text(goals))
    print(
        f"repeat {repeat} (median); took {time.perf_counter() - started:.1f} s "
        f"({_settled['seconds']:.1f} s of it settling); plot: {args.plot}",
        file=sys.stderr,
    )
    if _settled["busy"]:
        print(
            f"warning: after {_settled['busy']} of {_settled['count']} runs the CPUs were still "
            f"busy after {QUIET_MAX_S:g} s (something else runs on this machine?): the "
            "figures may be disturbed",
            file=sys.stderr,
        )
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
