"""labkit: learn Linux network namespaces by building them, for real.

Who does what:

* :mod:`labkit.kernel.sandbox` starts a private "host" (user, mount, PID and
  network namespaces) so a lab never touches the machine's own network;
* :mod:`labkit.core.stages` holds the course as the tutorial's shell commands;
  :mod:`labkit.core.model` simulates them into the state a stage should have;
* :mod:`labkit.kernel.observe` reads the live kernel into that same state and
  into a networkx graph; :mod:`labkit.draw` draws the graph;
* :mod:`labkit.kernel.apply` works out and makes the changes between the two,
  through :mod:`labkit.kernel.netns` (all netlink work, on one thread) and
  :mod:`labkit.kernel.rtnl` (the rtnetlink messages, many per system call);
* :mod:`labkit.kernel.probe` pings many pairs at once from raw sockets;
* :mod:`labkit.lab` ties them together as :class:`Lab`;
* :mod:`labkit.ui.live` redraws the graph with what changed marked, and
  :mod:`labkit.ui.panel` is a control panel of notebook widgets (:class:`Panel`);
* :mod:`labkit.cli`, :mod:`labkit.doctor` and :mod:`labkit.jupyter` are
  the command line, the machine check and the Jupyter kernel.

Examples
--------
>>> from labkit import Lab
>>> lab = Lab()
>>> lab.goto("bridge")  # doctest: +SKIP
>>> lab.ping("red", "192.168.15.2").ok  # doctest: +SKIP
True
"""

import importlib
from typing import Any

from labkit.errors import ConfigError, ConflictError, KernelError, LabkitError, SandboxError
from labkit.version import __version__ as __version__

__all__ = [
    "ConfigError",
    "ConflictError",
    "KernelError",
    "Lab",
    "LabkitError",
    "Panel",
    "PingResult",
    "Plan",
    "SandboxError",
]
_SHORT = {"stages": "labkit.core.stages", "live": "labkit.ui.live"}


def __getattr__(name: str) -> Any:
    # Lazy, so that small entry points (the web app, the kernel launcher)
    # start without importing networkx and matplotlib.
    if name in ("Lab", "PingResult", "Plan", "HttpResult"):
        from labkit import lab

        return getattr(lab, name)
    if name == "Panel":
        from labkit.ui.panel import Panel

        return Panel
    if name in _SHORT:  # the short names the notebooks use: labkit.stages, labkit.live
        return importlib.import_module(_SHORT[name])
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")
