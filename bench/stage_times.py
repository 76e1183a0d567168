"""Time to build each stage from scratch: labkit vs the plan's shell commands.

Run (as root, or where user namespaces work):

    .venv/bin/python bench/stage_times.py [--repeat N] [--namespaces N]

Each measurement runs in a fresh sandbox; both ways are timed in the same
run, and the table gives medians and the ratio shell/labkit.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from labkit import Lab
from labkit.world import run_in_lab


def _labkit(stage: str, count: int) -> float:
    lab = Lab(namespaces=count)
    start = time.perf_counter()
    lab.goto(stage)
    return time.perf_counter() - start


def _shell(stage: str, count: int) -> float:
    lab = Lab(namespaces=count)
    commands = [
        c for name in lab.stages[: lab.stages.index(stage) + 1] for c in lab.plan(name).commands
    ]
    start = time.perf_counter()
    for command in commands:
        if command.endswith("&"):  # the web app: started the way a shell would
            subprocess.run(["sh", "-c", command.replace("python3", sys.executable, 1)], check=True)
        else:
            subprocess.run(command.split(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    """Print the table.

    Examples
    --------
    $ python bench/stage_times.py --repeat 5
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--namespaces", type=int, default=2)
    args = parser.parse_args()
    print(f"{'stage':8} {'labkit ms':>10} {'shell ms':>10} {'ratio':>6}")
    for stage in Lab().stages:
        lk = statistics.median(
            run_in_lab(_labkit, stage, args.namespaces) for _ in range(args.repeat)
        )
        sh = statistics.median(
            run_in_lab(_shell, stage, args.namespaces) for _ in range(args.repeat)
        )
        print(f"{stage:8} {lk * 1000:10.1f} {sh * 1000:10.1f} {sh / lk:6.2f}")


if __name__ == "__main__":
    main()
