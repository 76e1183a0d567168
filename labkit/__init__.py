"""labkit: learn Linux network namespaces by building them, for real.

The package in layers, from the bottom up; a module imports only its own
layer and those below (``tests/test_architecture.py`` checks it, imports
inside functions included, and that there is no cycle):

* :mod:`labkit.errors`, :mod:`labkit.version`, :mod:`labkit.pcap`: the
  exceptions; the version; the capture file formats (pcapng, pcap).
* :mod:`labkit.core`, pure (no kernel, no files):
  :mod:`~labkit.core.model` (a network :class:`State` and a simulator of
  the tutorial's commands), :mod:`~labkit.core.stages` (the course as those
  commands), :mod:`~labkit.core.ops` (every kind of change, in one table),
  :mod:`~labkit.core.plan` (the ops from one state to another),
  :mod:`~labkit.core.names` (how places are named and reached).
* :mod:`labkit.kernel`, the effects: :mod:`~labkit.kernel.sandbox`
  (entering and joining a sandbox; :mod:`~labkit.kernel.preflight` says
  whether one can start, :mod:`~labkit.kernel.mounts` gives it its
  files), :mod:`~labkit.kernel.labs` (the running labs),
  :mod:`~labkit.kernel.rtnl` (labkit's rtnetlink codec),
  :mod:`~labkit.kernel.netns` (the netlink thread and its sockets),
  :mod:`~labkit.kernel.nsfiles` (``ip netns add/delete``),
  :mod:`~labkit.kernel.procs`, :mod:`~labkit.kernel.services` (processes,
  web apps), :mod:`~labkit.kernel.observe` (the kernel read into a
  snapshot, a State and a graph), :mod:`~labkit.kernel.probe` (many pings
  at once), :mod:`~labkit.kernel.apply` (carrying out ops; reset).
* :mod:`labkit.draw`: pictures of the graph (positions in
  :mod:`~labkit.draw.layout`, without matplotlib; sizes and colours in
  :mod:`~labkit.draw.style`), and :mod:`labkit.progress`.
* :mod:`labkit.checks`, :mod:`labkit.packets`, :mod:`labkit.trace`,
  :mod:`labkit.capture`: what is right or missing, real packets, a
  packet's path, captures for Wireshark.
* :mod:`labkit.lab`: :class:`Lab`, which ties them together.
* :mod:`labkit.why`, :mod:`labkit.exercises`, :mod:`labkit.world` and
  :mod:`labkit.ui` (:mod:`~labkit.ui.live` redraws with changes marked,
  :mod:`~labkit.ui.panel` is the control panel :class:`Panel`,
  :mod:`~labkit.ui.steps` steps through a trace).
* :mod:`labkit.cli`, :mod:`labkit.shell`, :mod:`labkit.doctor`,
  :mod:`labkit.jupyter`: the command line, the machine check and the
  Jupyter kernel; :mod:`labkit.webapp`, :mod:`labkit.server` and
  :mod:`labkit.threads` (pyroute2 from a notebook cell) stand alone.

Examples
--------
>>> from labkit import Lab
>>> lab = Lab()
>>> lab.goto("bridge")  # doctest: +SKIP
>>> lab.ping("red", "192.168.15.2").ok  # doctest: +SKIP
True
"""

from __future__ import annotations

import importlib

from labkit.errors import ConfigError, ConflictError, KernelError, LabkitError, SandboxError
from labkit.version import __version__ as __version__

TYPE_CHECKING = False  # not typing's: the web app imports this package, and typing costs it 11 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Commands",
    "ConfigError",
    "ConflictError",
    "KernelError",
    "Lab",
    "LabkitError",
    "Panel",
    "PingResult",
    "Plan",
    "SandboxError",
    "in_thread",
]
_SHORT = {"stages": "labkit.core.stages", "live": "labkit.ui.live"}


def __getattr__(name: str) -> Any:
    # Lazy, so that small entry points (the web app, the kernel launcher)
    # start without importing networkx and matplotlib.
    if name in ("Commands", "Lab", "PingResult", "Plan", "HttpResult"):
        from labkit import lab

        return getattr(lab, name)
    if name == "in_thread":  # pyroute2 from a notebook cell (see labkit.threads)
        from labkit.threads import in_thread

        return in_thread
    if name == "Panel":
        from labkit.ui.panel import Panel

        return Panel
    if name in _SHORT:  # the short names the notebooks use: labkit.stages, labkit.live
        return importlib.import_module(_SHORT[name])
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")
