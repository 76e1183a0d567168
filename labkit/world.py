"""The course's outside world (LAN, router, internet), built in a fresh sandbox.

A sandbox (:mod:`labkit.kernel.sandbox`) is bare: a private host and
nothing else. Every lab of the course starts with the same world around
that host (see :mod:`labkit.core.stages`), which :func:`build` makes. The
CLI and the Jupyter kernel build it in each sandbox they start, and
:func:`run_in_lab` runs one call in a fresh sandbox that has it (what the
tests and benchmarks use).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from labkit.errors import LabkitError
from labkit.kernel import sandbox

_T = TypeVar("_T")


def build() -> None:
    """Build the outside world (LAN, router, internet) in this sandbox; say so if it fails.

    A failure is one line on stderr, not an exception: the sandbox stays
    usable, and ``labkit doctor`` says what is missing.

    Examples
    --------
    >>> build()  # doctest: +SKIP
    """
    from labkit.lab import Lab  # not at the top: the kernel launcher starts without networkx

    try:
        Lab().reset()
    except LabkitError as err:
        print(
            f"labkit: the outside world (LAN, router, internet) is incomplete: {err} "
            "(`labkit doctor` checks the tools)",
            file=sys.stderr,
        )


def _built_then(fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    build()
    return fn(*args, **kwargs)


def run_in_lab(fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """Run ``fn(*args, **kwargs)`` in a fresh sandbox with the world built; return its result.

    Like :func:`labkit.kernel.sandbox.run_in_sandbox` (a forked child, the
    result or the exception pickled back, everything gone afterwards), but
    the sandbox starts as every lab does: with the outside world.

    Examples
    --------
    >>> from labkit import Lab
    >>> run_in_lab(lambda: Lab().stage())  # doctest: +SKIP
    'reset'
    """
    return sandbox.run_in_sandbox(_built_then, fn, *args, **kwargs)
