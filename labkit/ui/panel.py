"""A control panel for a notebook: step through the course and watch the kernel.

:class:`Panel` is made of ipywidgets: a stage stepper (Back, Next, Reset
and a drop-down of every stage and step), the live graph with what changed
since the last picture marked (:mod:`labkit.ui.live`) and toggles for
addresses, MACs and routes, "ping from A to B" and "HTTP from A to URL",
tables of routes, ARP entries and NAT counters, a progress bar and a
status line (``stage: veth``).

Work never runs on the notebook's event loop: a worker thread, started
when the panel is made, runs the jobs the buttons queue and updates the
widgets when each is done. Make the panel on the kernel's main thread
(a notebook cell does): in the labkit kernel only that thread, and the
threads it starts, are inside the sandbox's network namespace.

Examples
--------
>>> import labkit
>>> panel = labkit.Panel()  # doctest: +SKIP
>>> panel  # doctest: +SKIP
labkit control panel
>>> panel.next(); panel.wait(); panel.stage  # doctest: +SKIP
'netns'
"""

from __future__ import annotations

import html
import queue
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import networkx as nx

from labkit.core import stages
from labkit.core.model import HOST
from labkit.errors import LabkitError
from labkit.ui.live import LiveGraph

__all__ = ["Panel"]


def _table(head: list[str], rows: list[list[Any]]) -> str:
    """An HTML table (cells escaped)."""
    if not rows:
        return "<i>none</i>"
    th = "".join(f"<th style='text-align:left;padding:0 8px'>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(f"<td style='padding:0 8px'>{html.escape(str(c))}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def tables(graph: nx.Graph) -> dict[str, str]:
    """HTML tables of a graph's routes, ARP entries and NAT counters, per namespace.

    Examples
    --------
    >>> g = nx.Graph()
    >>> g.add_node("ns:red", kind="netns", name="red", neigh=[], rules=[], routes=[
    ...     {"dst": "192.168.15.0/24", "via": None, "dev": "veth-red", "proto": "kernel"}])
    >>> t = tables(g)
    >>> "192.168.15.0/24" in t["routes"], t["arp"]
    (True, '<i>none</i>')
    """
    routes, arp, nat = [], [], []
    names = [str(d.get("name")) for _, d in graph.nodes(data=True) if d.get("kind") == "netns"]
    lab = sorted(n for n in names if n != HOST and n not in stages.WORLD)
    order = [n for n in [HOST, *lab, *stages.WORLD] if n in names]
    for name in order:
        d = graph.nodes[f"ns:{name}"]
        for r in d.get("routes") or []:
            routes.append(
                [name, r.get("dst"), r.get("via") or "", r.get("dev") or "", r.get("proto")]
            )
        for n in d.get("neigh") or []:
            if n.get("mac") and n.get("state") not in ("FAILED", "INCOMPLETE", "NOARP"):
                arp.append([name, n.get("ip"), n.get("mac"), n.get("dev") or "", n.get("state")])
        for r in d.get("rules") or []:
            if r.get("table") == "nat":
                nat.append([name, r.get("chain"), r.get("spec"), r.get("packets", 0)])
    return {
        "routes": _table(["namespace", "to", "via", "dev", "proto"], routes),
        "arp": _table(["namespace", "address", "MAC", "dev", "state"], arp),
        "nat": _table(["namespace", "chain", "rule", "packets"], nat),
    }


class Panel:
    """A control panel of widgets for a lab: stepper, live graph, probes, tables.

    Parameters
    ----------
    lab : labkit.Lab, optional
        The lab to drive (by default ``Lab()``).

    Attributes
    ----------
    widget : ipywidgets.VBox
        The whole panel (displaying the panel displays it).
    status : ipywidgets.HTML
        The status line: ``stage: NAME`` (``stage: unknown`` after changes
        by hand that match no step), and the job running.
    image : ipywidgets.Image
        The live graph as a PNG.
    result : ipywidgets.HTML
        What the last ping or HTTP request reported.
    progress : ipywidgets.IntProgress
        Steps done of the current job.

    Examples
    --------
    >>> import labkit
    >>> panel = labkit.Panel(labkit.Lab(namespaces=20))  # doctest: +SKIP
    >>> panel.go("bridge"); panel.wait()  # doctest: +SKIP
    >>> panel.stage, panel.progress.value == panel.progress.max  # doctest: +SKIP
    ('bridge', True)
    """

    def __init__(self, lab: Any = None) -> None:
        if lab is None:
            from labkit.lab import Lab

            lab = Lab()
        self.lab = lab
        self.live = LiveGraph()
        self.stage: str = "reset"
        self._pos = 0  # where the stepper is in self.sequence, when the kernel says nothing
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self.errors: list[str] = []
        _build(self)
        self._refresh()  # the first picture, before the panel shows
        self._worker = threading.Thread(target=self._serve, name="labkit-panel", daemon=True)
        self._worker.start()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = "labkit control panel"
        return bundle

    def __repr__(self) -> str:
        return "labkit control panel"

    def _nodes(self) -> list[str]:
        """Where probes can start: the host, the lab's namespaces, the world's machines."""
        g = self.live.graph if self.live.graph is not None else nx.Graph()
        names = {str(d.get("name")) for _, d in g.nodes(data=True) if d.get("kind") == "netns"}
        lab = [n for n, _ in self._lab_names() if n in names]
        others = sorted(names - {HOST, *lab, *stages.WORLD})
        return [HOST, *lab, *others, *stages.WORLD]

    def _lab_names(self) -> list[tuple[str, str]]:
        return stages.namespaces(self.lab.count)

    # -- the worker ------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception as err:  # noqa: BLE001 - shown in the panel, the worker goes on
                text = str(err) if isinstance(err, LabkitError) else f"{type(err).__name__}: {err}"
                self.errors.append(text)
                self.busy.value = ""
                self.result.value = f"<pre style='color:#c62828'>{html.escape(str(text))}</pre>"
                try:
                    self._refresh()
                except Exception:  # noqa: BLE001 - the error above is the one to show
                    pass
            finally:
                self._jobs.task_done()

    def _submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every queued job is done.

        Examples
        --------
        >>> panel.next(); panel.wait()  # doctest: +SKIP
        """
        if timeout is None:
            self._jobs.join()
            return
        done = threading.Event()
        threading.Thread(target=lambda: (self._jobs.join(), done.set()), daemon=True).start()
        done.wait(timeout)

    # -- reading the kernel ----------------------------------------------------

    def _refresh(self) -> None:
        """Read the kernel: stage, graph (changes marked), tables, choices."""
        stage = self.lab.stage()
        self.stage = stage if stage is not None else "unknown"
        if stage is not None:
            self._pos = self._index(stage)
        self.live.update()
        self._repaint()
        t = tables(self.live.graph)
        self.routes_table.value = t["routes"]
        self.arp_table.value = t["arp"]
        self.nat_table.value = t["nat"]
        names = self._nodes()
        for box in (self.ping_src, self.http_src):
            if list(box.options) != names:
                keep = box.value if box.value in names else HOST
                box.options = names
                box.value = keep
        self.status.value = f"stage: {self.stage}"

    def _repaint(self) -> None:
        """Draw the last graph again with the toggles as they are now."""
        self.live.show_addresses = bool(self.show_addresses.value)
        self.live.show_macs = bool(self.show_macs.value)
        self.live.show_routes = bool(self.show_routes.value)
        self.image.value = self.live.png()
        g = self.live.graph
        spaces = sum(1 for _, d in g.nodes(data=True) if d.get("kind") == "netns")
        changed = self.live.changes.summary()
        alt = f"Live graph at stage {self.stage}: {spaces} namespaces (host and world included)"
        alt += "; changed since the last picture: " + "; ".join(changed) if changed else ""
        # (no tooltip: ipywidgets 8 breaks an Image view that has one)
        shown = changed[:8] + ([f"... {len(changed) - 8} more"] if len(changed) > 8 else [])
        self.caption.value = (
            "<small>"
            + html.escape(alt.split(";")[0])
            + ("<br>changed: " + html.escape("; ".join(shown)) if changed else "")
            + "</small><details><summary><small>The picture in words</small></summary>"
            + f"<pre>{html.escape(self.live.describe())}</pre></details>"
        )

    def _index(self, stage: str) -> int:
        if stage in self.sequence:
            return self.sequence.index(stage)
        # a stage name is the last step of that stage
        last = [i for i, s in enumerate(self.sequence) if s.partition(":")[0] == stage]
        return last[-1] if last else 0

    def refresh(self) -> None:
        """Read the kernel again and redraw (after a change made by hand).

        Examples
        --------
        >>> panel.refresh(); panel.wait()  # doctest: +SKIP
        """
        self._submit(self._refresh)

    def figure(self) -> Any:
        """The current picture as a matplotlib Figure (a static copy to keep).

        Examples
        --------
        >>> panel.figure()  # doctest: +SKIP
        <LabkitFigure size 900x700 with 1 Axes>
        """
        return self.live.figure()

    @property
    def graph(self) -> nx.Graph:
        """The graph of the last picture (as :meth:`labkit.Lab.observe` read it).

        Examples
        --------
        >>> "ns:host" in panel.graph  # doctest: +SKIP
        True
        """
        return self.live.graph

    # -- changing the kernel -----------------------------------------------------

    def _walk(self, target: str) -> None:
        """Go to ``target`` step by step, the progress bar following."""
        self.busy.value = f"going to {html.escape(target)} ..."
        current = self.lab.stage()
        start = self._index(current) if current is not None else self._pos
        end = self._index(target)
        if target == "reset" or current is None:
            path = [target]
        elif end >= start:
            path = self.sequence[start + 1 : end + 1]
        else:
            path = list(reversed(self.sequence[end:start]))
        if path and path[-1] != target and self._index(path[-1]) == end:
            path[-1] = target
        self.progress.max = max(1, len(path))
        self.progress.value = 0
        for i, step in enumerate(path, 1):
            self.lab.goto(step)
            self.progress.value = i
        self._pos = end
        self.busy.value = ""
        self._refresh()

    def go(self, target: str) -> None:
        """Go to a stage or ``stage:step`` (or ``"reset"``), step by step.

        Examples
        --------
        >>> panel.go("veth"); panel.wait(); panel.stage  # doctest: +SKIP
        'veth'
        """
        if target != "reset":
            stages.find(target, self.lab.count)  # a clear error now, not in the worker
        self._submit(lambda: self._walk(target))

    def next(self) -> None:
        """Go to the next step (from ``reset``: the first).

        Examples
        --------
        >>> panel.next(); panel.wait(); panel.stage  # doctest: +SKIP
        'netns'
        """

        def job() -> None:
            current = self.lab.stage()
            at = self._index(current) if current is not None else self._pos
            self._walk(self.sequence[min(at + 1, len(self.sequence) - 1)])

        self._submit(job)

    def back(self) -> None:
        """Go back one step (to ``reset`` from the first).

        Examples
        --------
        >>> panel.back(); panel.wait()  # doctest: +SKIP
        """

        def job() -> None:
            current = self.lab.stage()
            at = self._index(current) if current is not None else self._pos
            self._walk(self.sequence[max(at - 1, 0)])

        self._submit(job)

    def reset(self) -> None:
        """Back to a fresh sandbox (``stage: reset``).

        Examples
        --------
        >>> panel.reset(); panel.wait(); panel.stage  # doctest: +SKIP
        'reset'
        """
        self._submit(lambda: self._walk("reset"))

    # -- probes --------------------------------------------------------------------

    def _show(self, text: str, ok: bool) -> None:
        colour = "#2e7d32" if ok else "#c62828"
        self.result.value = f"<pre style='color:{colour}'>{html.escape(text)}</pre>"

    def ping(self, src: str, dst: str) -> None:
        """Ping ``dst`` from ``src``; the result shows under the buttons.

        Examples
        --------
        >>> panel.ping("red", "192.168.15.2"); panel.wait()  # doctest: +SKIP
        >>> panel.result.value  # doctest: +SKIP
        "<pre style='color:#2e7d32'>red -&gt; 192.168.15.2: 3/3 replies, 0% loss</pre>"
        """

        def job() -> None:
            r = self.lab.ping(src, dst)
            self._show(str(r), r.ok)
            self._refresh()  # ARP entries and counters changed

        self._submit(job)

    def http(self, src: str, url: str) -> None:
        """HTTP GET ``url`` from ``src``; the result shows under the buttons.

        Examples
        --------
        >>> panel.http("lan-pc", "http://192.168.1.2/"); panel.wait()  # doctest: +SKIP
        """

        def job() -> None:
            r = self.lab.http(src, url)
            self._show(str(r), r.ok)
            self._refresh()

        self._submit(job)


def _build(panel: Panel) -> None:
    """Make the panel's widgets and wire them to its actions."""
    panel.sequence = ["reset", *panel.lab.steps()]
    panel.back_button = w.Button(description="Back", icon="step-backward", tooltip="back a step")
    panel.next_button = w.Button(description="Next", icon="step-forward", tooltip="next step")
    panel.reset_button = w.Button(description="Reset", icon="undo", tooltip="back to reset")
    panel.target = w.Dropdown(
        options=panel.sequence, value="reset", description="go to", layout={"width": "260px"}
    )
    panel.go_button = w.Button(description="Go", tooltip="go to the chosen stage or step")
    panel.refresh_button = w.Button(
        description="Refresh", icon="refresh", tooltip="read the kernel again"
    )
    panel.status = w.HTML(value="stage: reset")
    panel.busy = w.HTML(value="")
    panel.progress = w.IntProgress(value=0, min=0, max=1, description="progress")
    panel.show_addresses = w.Checkbox(value=True, description="addresses", indent=False)
    panel.show_macs = w.Checkbox(value=False, description="MACs", indent=False)
    panel.show_routes = w.Checkbox(value=True, description="routes", indent=False)
    panel.image = w.Image(format="png", layout={"max_width": "900px", "width": "100%"})
    panel.caption = w.HTML(value="")
    names = panel._nodes()
    panel.ping_src = w.Dropdown(options=names, description="ping from")
    panel.ping_dst = w.Text(value=stages.namespaces(2)[1][1], description="to")
    panel.ping_button = w.Button(description="Ping")
    panel.http_src = w.Dropdown(options=names, description="HTTP from")
    panel.http_url = w.Text(value=f"http://{stages.HOST_LAN_IP}/", description="URL")
    panel.http_button = w.Button(description="HTTP")
    panel.result = w.HTML(value="")
    panel.routes_table = w.HTML()
    panel.arp_table = w.HTML()
    panel.nat_table = w.HTML()
    scroll = {"max_height": "320px", "overflow": "auto"}
    panel.tables = w.Tab(
        children=[
            w.Box([panel.routes_table], layout=scroll),
            w.Box([panel.arp_table], layout=scroll),
            w.Box([panel.nat_table], layout=scroll),
        ],
        titles=("routes", "ARP", "NAT counters"),
    )
    panel.back_button.on_click(lambda _b: panel.back())
    panel.next_button.on_click(lambda _b: panel.next())
    panel.reset_button.on_click(lambda _b: panel.reset())
    panel.go_button.on_click(lambda _b: panel.go(str(panel.target.value)))
    panel.refresh_button.on_click(lambda _b: panel.refresh())
    panel.ping_button.on_click(lambda _b: panel.ping(panel.ping_src.value, panel.ping_dst.value))
    panel.http_button.on_click(lambda _b: panel.http(panel.http_src.value, panel.http_url.value))
    for box in (panel.show_addresses, panel.show_macs, panel.show_routes):
        box.observe(lambda _change: panel._submit(panel._repaint), names="value")
    panel.widget = w.VBox(
        [
            w.HBox(
                [panel.back_button, panel.next_button, panel.reset_button, panel.refresh_button]
            ),
            w.HBox([panel.target, panel.go_button]),
            panel.status,
            w.HBox([panel.progress, panel.busy]),
            w.HBox([panel.show_addresses, panel.show_macs, panel.show_routes]),
            panel.image,
            panel.caption,
            w.HBox([panel.ping_src, panel.ping_dst, panel.ping_button]),
            w.HBox([panel.http_src, panel.http_url, panel.http_button]),
            panel.result,
            panel.tables,
        ]
    )
