"""The :class:`Lab`: build, reset and inspect the course's topology.

A lab is a number of namespaces (red, blue and optionally ``ns10``,
``ns11``, ...) inside the current sandbox. It has no memory of its own:
every call reads the kernel, works out what differs from the requested
stage (:mod:`labkit.kernel.apply`) and changes only that. So ``goto`` works
from any state, forward or backward, twice in a row, and after a learner
changed things by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from labkit import capture as capture_mod
from labkit import checks
from labkit import progress as progress_mod
from labkit.core import plan, stages
from labkit.core.commands import Commands
from labkit.core.model import State
from labkit.core.ops import Op
from labkit.errors import ConfigError
from labkit.kernel import apply, observe, preflight
from labkit.packets import PacketTests


@dataclass(frozen=True)
class Plan:
    """The steps of a stage and the exact shell commands they equal.

    Examples
    --------
    >>> print(Lab().plan("netns"))
    # netns: Two network namespaces, red and blue
    ## Create the namespaces
    ip netns add red
    ip netns add blue
    """

    stage: stages.Stage

    @property
    def commands(self) -> list[str]:
        """The commands, in order.

        Examples
        --------
        >>> Lab().plan("host").commands
        ['ip addr add 192.168.15.5/24 dev v-net-0']
        """
        return self.stage.commands

    def __str__(self) -> str:
        lines = [f"# {self.stage.name}: {self.stage.title}"]
        for step in self.stage.steps:
            if not step.commands:
                continue
            lines.append(f"## {step.title}")
            lines.extend(step.commands)
            if step.note:
                lines.append(f"# {step.note}")
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


class Lab(PacketTests):
    """The course's topology in the current sandbox.

    Parameters
    ----------
    namespaces
        How many namespaces join the bridge (at least 2: red and blue;
        further ones are ``ns10``, ``ns11``, ...). ``None`` reads the
        number from the kernel (what is there already, or 2).

    Examples
    --------
    >>> from labkit import Lab
    >>> lab = Lab()
    >>> lab.stages
    ['netns', 'veth', 'bridge', 'host', 'nat', 'internet', 'portforward']
    >>> lab.goto("veth")  # doctest: +SKIP
    >>> lab.ping("red", "192.168.15.2").ok  # doctest: +SKIP
    True
    """

    def __init__(self, namespaces: int | None = None) -> None:
        if namespaces is not None:
            stages.check_count(namespaces)
        self._count = namespaces

    @property
    def count(self) -> int:
        """How many namespaces join the bridge.

        Examples
        --------
        >>> Lab(5).count
        5
        """
        if self._count is not None:
            return self._count
        if not preflight.inside():
            return 2
        return stages.count_from(self.netns_names())

    @property
    def namespaces(self) -> list[str]:
        """The lab's namespaces that exist now (red, blue, ns10, ...), not the world's.

        Examples
        --------
        >>> Lab().namespaces  # doctest: +SKIP
        ['red', 'blue']
        """
        present = set(self.netns_names())
        return [name for name, _ in stages.namespaces(self.count) if name in present]

    @property
    def stages(self) -> list[str]:
        """The stage names, in the tutorial's order.

        Examples
        --------
        >>> Lab().stages[0]
        'netns'
        """
        return list(stages.STAGE_NAMES)

    def steps(self, stage: str | None = None) -> list[str]:
        """Every ``stage:step`` name (of one stage, or of all).

        Examples
        --------
        >>> Lab().steps("veth")
        ['veth:cable', 'veth:address', 'veth:up']
        """
        all_stages = stages.course(self.count)[1:]  # not the world
        if stage is not None:
            i, _ = stages.find(stage, self.count)
            all_stages = stages.course(self.count)[i : i + 1]
        return [s.id for st in all_stages for s in st.steps if s.commands]

    def plan(self, stage: str) -> Plan:
        """The steps of ``stage`` and the exact shell commands they equal.

        Examples
        --------
        >>> Lab().plan("veth").commands[0]
        'ip link add veth-red type veth peer name veth-blue'
        """
        i, _ = stages.find(stage, self.count)
        return Plan(stages.course(self.count)[i])

    # -- reading the kernel ------------------------------------------------

    def state(self) -> State:
        """The kernel's state, as labkit compares it.

        Examples
        --------
        >>> sorted(Lab().state().namespaces)  # doctest: +SKIP
        ['blue', 'red']
        """
        preflight.require()
        return observe.to_state(observe.snapshot())

    def observe(self) -> nx.Graph:
        """The live topology as a networkx graph (see :mod:`labkit.kernel.observe`).

        Examples
        --------
        >>> g = Lab().observe()  # doctest: +SKIP
        >>> "ns:red" in g  # doctest: +SKIP
        True
        """
        preflight.require()
        return observe.graph()

    def draw(self, **kwargs: Any) -> Any:
        """Draw the live topology; returns a matplotlib Figure with a text alternative.

        Its ``labkit_alt`` says in words what it shows, and a notebook shows
        that with it; ``scale=1.5`` enlarges it for a projector.

        Examples
        --------
        >>> fig = Lab().draw(scale=1.5)  # doctest: +SKIP
        >>> print(fig.labkit_alt.splitlines()[0])  # doctest: +SKIP
        Network diagram: the host, 2 lab namespaces: red, blue; the outside world: ...
        """
        from labkit import draw  # matplotlib only when a picture is asked for

        return draw.draw(self.observe(), **kwargs)

    def stage(self) -> str | None:
        """Which stage (or ``stage:step``) the kernel is at now.

        ``"reset"`` when the lab has nothing; ``None`` when the state
        matches no step (for example after a change made by hand).

        Examples
        --------
        >>> Lab().stage()  # doctest: +SKIP
        'veth'
        """
        preflight.require()
        return plan.stage_of(self.state(), self.count)

    # -- changing the kernel -------------------------------------------------

    def goto(self, target: str, progress: bool | progress_mod.Callback = False) -> Commands:
        """Bring the kernel to ``target`` (``stage`` or ``stage:step``).

        Works from any state, forward or backward; changes only what
        differs. Returns the shell commands that the changes equal, as
        :class:`Commands`: a list that a notebook shows as a one-line
        summary, and ``print()`` shows in full.
        ``"reset"`` removes everything. ``progress=True`` shows a progress
        bar (a widget in a notebook, a line on a terminal); a callable gets
        ``(done, total)`` instead.

        Examples
        --------
        >>> lab = Lab()
        >>> lab.goto("veth")  # doctest: +SKIP
        8 commands: ip netns add ×2, ip link add ×1, ip link set ×4, ip addr add ×2. print() ...
        >>> lab.goto("veth")  # doctest: +SKIP
        Nothing to change: already there.
        """
        if target == "reset":
            return self.reset(progress)
        before, ops = self._changes(target)
        if not ops:
            return Commands()
        bar = progress_mod.bar(f"{target}:", progress)
        try:
            apply.run(ops, bar)
        except Exception:
            self._restore(before)
            raise
        finally:
            progress_mod.close(bar)
        return Commands(c for op in ops for c in op.commands)

    def changes(self, target: str) -> list[Op]:
        """The changes :meth:`goto` would make now to reach ``target``.

        Raises :class:`~labkit.errors.ConflictError` when something made by
        hand is in the way.

        Examples
        --------
        >>> [op.kind for op in Lab().changes("netns")]  # doctest: +SKIP
        ['netns_add', 'netns_add']
        """
        return self._changes(target)[1]

    def _changes(self, target: str) -> tuple[State, list[Op]]:
        count = self.count  # read from the kernel once
        stages.find(target, count)  # a clear error before anything else
        preflight.require()
        state = self.state()
        own = stages.owned(max(count, stages.count_from(state.namespaces)))
        return state, plan.diff(state, stages.desired(target, count), own, set(own.routes))

    def _restore(self, before: State) -> None:
        """After a failed goto, put back what the lab owned before."""
        own = stages.owned(max(self.count, stages.count_from(before.namespaces)))
        target = before.project(set(own.namespaces), set(own.ifaces), own.routes)
        try:
            ops = plan.diff(self.state(), target, own, set(own.routes))
            apply.run(ops)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass

    def reset(self, progress: bool | progress_mod.Callback = False) -> Commands:
        """Back to a fresh sandbox: only the outside world is left.

        Removes every namespace, link, route, firewall rule and web app
        that is not the world's, hand-made ones included, ends the
        processes in removed namespaces, and repairs the world. Safe to
        call twice. ``progress`` as in :meth:`goto`.

        Examples
        --------
        >>> Lab().reset()  # doctest: +SKIP
        3 commands: ip netns delete ×2, ip link delete ×1. print() lists them.
        """
        preflight.require()
        doomed = set(self.netns_names()) - set(stages.WORLD)
        bar = progress_mod.bar("reset:", progress) if doomed else None
        try:
            return Commands(apply.reset(bar))
        finally:
            progress_mod.close(bar)

    def down(self) -> Commands:
        """Go back one stage (to ``reset`` from the first).

        Examples
        --------
        >>> print(Lab().down())  # doctest: +SKIP
        ip addr del 192.168.15.5/24 dev v-net-0
        """
        current = self.stage()
        if current in (None, "reset"):
            return self.reset()
        i = self.stages.index(current.partition(":")[0])
        if i == 0:
            return self.reset()
        return self.goto(self.stages[i - 1])

    def capture(self, node: str, path: str | None = None, iface: str | None = None) -> Any:
        """Capture what ``node`` (or its ``iface``) sees; see :func:`labkit.capture.start`.

        Examples
        --------
        >>> with Lab().capture("host", "web.pcapng") as cap:  # doctest: +SKIP
        ...     Lab().http("lan-pc", "http://192.168.1.2/")
        """
        return capture_mod.start(node, iface, path)

    def check(self, target: str, probe: bool = True) -> Any:
        """Say in plain words what is right or missing for ``target``.

        Returns a :class:`labkit.checks.Report` (print it). Each problem
        comes with the command that fixes it; when nothing is missing, real
        packets confirm it works.

        Examples
        --------
        >>> print(Lab().check("veth"))  # doctest: +SKIP
        Not yet: 1 thing differs from the veth stage.
          - veth-blue in blue is down.
            fix: ip -n blue link set veth-blue up
        """
        return checks.compare(target, self, probe)

    # -- checks from real packets -------------------------------------------

    def publish(self, host_port: int, ns: str, port: int = 80) -> list[str]:
        """Start a web app in ``ns`` and forward the host's ``host_port`` to it.

        Like the ``portforward`` stage, for any namespace on the bridge and
        any port: DNAT in PREROUTING (from the LAN and the bridge) and in
        OUTPUT (from the host itself). It needs forwarding and the
        namespace's way back, so the lab must be at ``internet`` or
        later. The next ``goto`` removes it. Returns the commands run.

        Examples
        --------
        >>> lab = Lab()
        >>> lab.goto("internet")  # doctest: +SKIP
        >>> lab.publish(8080, "red")  # doctest: +SKIP
        ['iptables -t nat -A OUTPUT -d 192.168.1.2/32 -p tcp -m tcp --dport 8080 ...', ...]
        """
        preflight.require()
        for what, value in (("host port", host_port), ("port", port)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
                raise ConfigError(f"{what} must be a whole number from 1 to 65535, not {value!r}")
        self.argv_in(ns)
        ops = plan.publish(self.state(), host_port, ns, port, self.count)
        apply.run(ops)
        return [c for op in ops for c in op.commands]
