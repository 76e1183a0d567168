"""Run blocking netlink code, such as pyroute2's, from a notebook cell.

pyroute2's synchronous classes (``IPRoute``, ``NetNS``) drive an asyncio
event loop of their own. In Jupyter, the kernel's event loop is already
running in the cell's thread, so a plain ``IPRoute()`` there fails with
``RuntimeError: This event loop is already running``. The same code works
in another thread, which has no running loop. :func:`in_thread` runs a
function there and waits for it, so the cell reads as ordinary code.

Threads started in a labkit kernel are inside its sandbox, like the cell:
the function sees the lab's namespaces and links, never the machine's.
"""

from __future__ import annotations

import concurrent.futures

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")


def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` in a worker thread and return its result.

    An exception in ``fn`` is raised here, with its own traceback. Use it
    for pyroute2 in a notebook: put the pyroute2 calls in a function and
    pass the function.

    Examples
    --------
    >>> in_thread(sum, [1, 2, 3])
    6
    >>> from pyroute2 import IPRoute
    >>> def loopback_state():
    ...     with IPRoute() as ipr:
    ...         (lo,) = ipr.link("get", ifname="lo")
    ...         return lo.get("operstate")
    >>> in_thread(loopback_state)  # doctest: +SKIP
    'UNKNOWN'
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()
