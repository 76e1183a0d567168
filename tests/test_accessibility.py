"""Accessible figures: a text alternative on every picture, and no meaning by colour alone.

The pictures come from a real sandbox, built stage by stage with
:class:`labkit.Lab` and shown the way a notebook shows them (IPython's
display formatter with the labkit kernel's formatters); a real packet
trace goes through the host's and the router's NAT. The legend and the
palette are checked on figures drawn from hand-made graphs.
"""

from __future__ import annotations

import io
import re
from itertools import combinations
from typing import Any

import nbformat
import networkx as nx
import pytest
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D
from matplotlib.offsetbox import DrawingArea
from matplotlib.patches import Patch
from nbconvert import HTMLExporter

from labkit.draw import describe, draw, save, style
from labkit.world import run_in_lab

#: Okabe and Ito (2008), "Color Universal Design": the published values.
OKABE_ITO = {
    "#000000",
    "#e69f00",
    "#56b4e9",
    "#009e73",
    "#f0e442",
    "#0072b2",
    "#d55e00",
    "#cc79a7",
}
MAC = re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b")
STAGES = ["reset", "veth", "bridge", "portforward"]


# -- shown in a notebook, from a real sandbox -------------------------------------------


def shown(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a notebook cell ending in ``obj`` stores: IPython's display
    formatter with the labkit kernel's formatters registered."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from labkit.jupyter import _figures_inline

    config = Config()
    config.HistoryManager.enabled = False  # no history thread: later tests fork sandboxes
    shell = InteractiveShell(config=config)
    _figures_inline(shell)
    return shell.display_formatter.format(obj)


def in_the_sandbox() -> dict[str, Any]:
    """Every stage drawn twice (with traffic between), the live graph's
    changes from veth to bridge, and a traced ping to the internet."""
    from labkit import Lab, trace
    from labkit.ui.live import LiveGraph

    lab = Lab()
    out: dict[str, Any] = {}
    live = LiveGraph()
    for stage in STAGES:
        if stage != "reset":
            lab.goto(stage)
        if stage == "veth":
            live.update()
        if stage == "bridge":
            live.update()
            out["changes"] = shown(live.figure())
        first = shown(lab.draw())
        lab.ping("lan-pc", "192.168.1.2", count=1)  # packets through the rules: counters move
        if stage == "portforward":
            lab.http("lan-pc", "http://192.168.1.2/")
        out[stage] = (first, shown(lab.draw()))
    lab.goto("internet")
    t = trace.trace("red", "203.0.113.8")
    out["trace"] = shown(t.draw())
    out["trace-upto"] = shown(t.draw(upto=4))
    return out


@pytest.fixture(scope="module")
def outputs() -> dict[str, Any]:
    return run_in_lab(in_the_sandbox)


def alt_of(html: str) -> str:
    m = re.search(r'<img alt="([^"]*)" src="data:image/png;base64,', html)
    assert m, html[:200]
    return m.group(1)


@pytest.mark.parametrize("stage", STAGES)
def test_lab_draw_shows_its_description_as_text_and_as_the_pictures_alt(outputs, stage):
    (data, meta), (again, _) = outputs[stage]
    assert sorted(data) == ["image/png", "text/html", "text/plain"]
    text = data["text/plain"]
    assert text.startswith("Network diagram: the host")
    assert "the outside world: router, lan-pc, internet" in text
    assert "host: eth0 192.168.1.2/24" in text
    assert "Cables: " in text and "host eth0 to router lan-host" in text
    # one sentence in the picture's alt, in the HTML and in the PNG's metadata
    one_line = " ".join(text.splitlines())
    assert alt_of(data["text/html"]) == one_line
    assert meta["image/png"]["alt"] == one_line
    assert data["text/html"].endswith(data["image/png"] + '"/>')  # the same picture
    # stable for nbval: the same text after traffic, nothing that varies
    assert again["text/plain"] == text
    assert not MAC.search(text) and "pkt" not in text


def test_each_stage_says_what_it_built(outputs):
    text = {stage: outputs[stage][0][0]["text/plain"] for stage in STAGES}
    assert "red" not in text["reset"].splitlines()[0]
    assert "red: veth-red 192.168.15.1/24." in text["veth"]
    assert "red veth-red to blue veth-blue" in text["veth"]
    assert "bridge v-net-0 with ports veth-blue-br, veth-red-br" in text["bridge"]
    assert "red veth-red to host veth-red-br" in text["bridge"]
    assert "PREROUTING DNAT 192.168.1.2:80 \u2192 192.168.15.2:80" in text["portforward"]
    assert "blue: veth-blue 192.168.15.2/24; web :80" in text["portforward"]


def test_the_live_graph_says_what_changed_with_the_pictures_marks(outputs):
    data, _ = outputs["changes"]
    changed = data["text/plain"].splitlines()[1]
    assert changed.startswith("Since the last picture: + added ")
    assert "host v-net-0" in changed and "host veth-red-br" in changed
    assert "cable red veth-red to host veth-red-br" in changed
    assert "host veth-red-br as a port of v-net-0" in changed
    assert "\u2212 removed cable red veth-red to blue veth-blue" in changed
    assert changed in alt_of(data["text/html"])


def test_a_trace_lists_its_hops_in_order_request_then_reply(outputs):
    data, meta = outputs["trace"]
    lines = data["text/plain"].splitlines()
    assert lines[1] == "Packet trace, red pings 203.0.113.8: 16 hops, the reply came back."
    request, reply = lines[2], lines[3]
    assert request.startswith(
        "Request (circles, solid arrows): 1 red veth-red out, 192.168.15.1 \u2192 203.0.113.8; "
    )
    assert "4 host eth0 out, source now 192.168.1.2" in request  # the host's MASQUERADE
    assert "source now 198.51.100.2" in request  # the router's
    assert reply.startswith("Reply (squares, dashed arrows): 9 internet eth0 out")
    assert reply.endswith("16 red veth-red in.")
    numbers = [int(n) for n in re.findall(r"(?:: |; )(\d+) ", request + reply)]
    assert numbers == list(range(1, 17))
    assert "203.0.113.8" in meta["image/png"]["alt"]
    upto = outputs["trace-upto"][0]["text/plain"].splitlines()
    assert upto[1].startswith("Packet trace, hop 4 of 16: host eth0 out")
    assert upto[1].endswith("hops 1 to 4 drawn.")
    assert "; 4 host eth0 out" in upto[2] and "5 " not in upto[2]


def test_the_html_export_writes_the_description_as_the_images_alt(outputs):
    nb = nbformat.v4.new_notebook()
    for key in ["veth", "trace"]:
        data, meta = outputs[key] if key == "trace" else outputs[key][0]
        cell = nbformat.v4.new_code_cell("lab.draw()", execution_count=1)
        cell.outputs = [
            nbformat.v4.new_output("execute_result", data, metadata=meta, execution_count=1)
        ]
        nb.cells.append(cell)
    html, _ = HTMLExporter().from_notebook_node(nb)
    alts = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', html)
    assert len(alts) == 2
    assert alts[0].startswith("Network diagram: the host, 2 lab namespaces: red, blue")
    assert "Packet trace, red pings 203.0.113.8" in alts[1]
    assert "No description has been provided" not in html


# -- hand-made graphs ------------------------------------------------------------------


def small_graph() -> nx.Graph:
    g = nx.Graph()
    g.add_node("ns:host", kind="netns", name="host")
    g.add_node("if:host/br0", kind="iface", ns="host", name="br0", type="bridge", up=False)
    for ns, n in [("red", 1), ("blue", 2)]:
        g.add_node(f"ns:{ns}", kind="netns", name=ns)
        g.add_node(
            f"if:{ns}/v-{ns}", kind="iface", ns=ns, name=f"v-{ns}", type="veth",
            addrs=[f"10.0.0.{n}/24"],
        )  # fmt: skip
        g.add_node(f"if:host/v-{ns}-br", kind="iface", ns="host", name=f"v-{ns}-br", type="veth")
        g.add_edge(f"if:{ns}/v-{ns}", f"if:host/v-{ns}-br", kind="veth")
        g.add_edge(f"if:host/v-{ns}-br", "if:host/br0", kind="port")
    return g


def hand_trace() -> Any:
    from labkit.trace import Sighting, Trace

    a, b = "10.0.0.1", "10.0.0.2"
    return Trace(
        "red",
        b,
        [
            Sighting(0.0, "red", "v-red", "out", a, b, "request"),
            Sighting(0.1, "host", "v-red-br", "in", a, b, "request"),
            Sighting(0.2, "blue", "v-blue", "in", "10.0.0.5", b, "request"),
            Sighting(0.3, "blue", "v-blue", "out", b, "10.0.0.5", "reply"),
            Sighting(0.4, "red", "v-red", "in", b, a, "reply"),
        ],
        answered=True,
    )


def everything() -> Any:
    """A figure with every mark: changes of each kind, a trace up to a hop."""
    from labkit.ui.live import diff_graphs

    old, new = small_graph(), small_graph()
    new.remove_node("if:host/v-blue-br")
    new.add_node("ns:green", kind="netns", name="green")
    new.nodes["if:red/v-red"]["addrs"] = ["10.0.0.9/24"]
    return draw(new, changes=diff_graphs(old, new), trace=hand_trace(), upto=3)


def samples(legend: Any) -> list[list[Any]]:
    """The artists of each legend entry's sample, in order."""

    def areas(box: Any) -> list[Any]:
        found = []
        for child in box.get_children():
            if isinstance(child, DrawingArea):
                found.append(child)
            elif hasattr(child, "get_children"):
                found += areas(child)
        return found

    return [area.get_children() for area in areas(legend._legend_handle_box)]


def signature(sample: list[Any]) -> tuple[Any, ...]:
    """A drawn legend sample, everything but its colours."""
    out: list[Any] = []
    for a in sample:
        if isinstance(a, Patch):
            dashes = a._dash_pattern[1]  # a Patch keeps its line style only as dashes
            out.append(("patch", tuple(dashes) if dashes else None, a.get_facecolor() == (1,) * 4))
        elif isinstance(a, Line2D):
            face = a.get_markerfacecolor()
            hollow = isinstance(face, str) and face in ("white", "none")
            line = a.get_linestyle()
            width = round(a.get_linewidth(), 2) if line != "None" else 0
            out.append(
                ("line", line, width, a.get_marker(), hollow, round(a.get_markeredgewidth(), 2))
            )
    return tuple(out)


def test_no_legend_entry_differs_from_another_by_colour_alone():
    cues = {name: key.cues() for name, key in style.LEGEND.items()}
    for (a, ca), (b, cb) in combinations(cues.items(), 2):
        assert ca != cb, f"{a} and {b} differ by colour only"
    ax = everything().axes[0]
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    # every entry in order (no rule made by hand here)
    assert labels == [key.label for name, key in style.LEGEND.items() if name != "by-hand"]
    drawn = [signature(sample) for sample in samples(legend)]
    assert len(drawn) == len(labels) and len(set(drawn)) == len(drawn), drawn
    # the text marks of the changes are in the picture too: beside what was
    # added or changed, before the name of what was removed
    words = [t.get_text() for t in ax.texts]
    assert {"+", "~"} <= set(words) and "\u2212 v-blue-br" in words


def test_the_legend_has_the_dashed_bridge_and_every_style_it_draws():
    g = small_graph()
    ax = draw(g).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "bridge, down" in labels and "cable or port, an end down" in labels
    bridge = next(p for p in ax.patches if p.get_gid() == "if:host/br0")
    assert bridge.get_linestyle() == "--"  # br0 is down
    sample = ax.get_legend().legend_handles[labels.index("bridge, down")]
    assert isinstance(sample, Patch) and sample._dash_pattern[1]  # dashed (as a Patch keeps it)
    styles = {str(line.get_linestyle()) for line in ax.lines if line.get_gid()}
    assert styles <= {"-", "--", "None"}  # solid, dashed, or marks alone: all in the legend


def test_changes_and_hops_each_have_a_second_cue_in_the_picture():
    ax = everything().axes[0]
    by_gid = {str(a.get_gid()): a for a in [*ax.lines, *ax.patches, *ax.texts]}
    assert by_gid["added:ns:green"].get_linestyle() == "-"
    assert by_gid["changed:if:red/v-red"].get_linestyle() == style.DOTS
    assert by_gid["removed:if:host/v-blue-br"].get_linestyle() == style.DASH
    assert by_gid["mark:added:ns:green"].get_text() == "+"
    assert by_gid["mark:changed:if:red/v-red"].get_text() == "~"
    assert {by_gid[f"hop-mark:{n}"].get_marker() for n in (1, 2, 3)} == {"o"}
    whole = draw(small_graph(), trace=hand_trace()).axes[0]
    marks = {str(a.get_gid()): a for a in [*whole.lines, *whole.patches]}
    assert {marks[f"hop-mark:{n}"].get_marker() for n in (4, 5)} == {"s"}
    assert marks["hop-arrow:1-2"].get_linestyle() == "-"
    assert marks["hop-arrow:4-5"].get_linestyle() == "--"


def test_the_palette_is_okabe_ito():
    assert {c.lower() for c in style.OKABE_ITO.values()} == OKABE_ITO
    meaning = [c.colour for c in style.CHANGES.values()] + [h.colour for h in style.HOPS.values()]
    meaning.append(style.CURRENT_HOP)
    assert {c.lower() for c in meaning} <= OKABE_ITO
    assert len(set(meaning[:5])) == 5  # one colour per meaning
    ax = everything().axes[0]
    for a in [*ax.lines, *ax.patches]:
        gid = str(a.get_gid())
        if gid.startswith(("added:", "changed:", "removed:")):
            edge = a.get_markeredgecolor() if isinstance(a, Line2D) else a.get_edgecolor()
            colour = a.get_color() if gid.count("|") else edge
            assert to_hex(colour) in OKABE_ITO, (gid, colour)
        if gid.startswith("hop-mark:"):
            assert to_hex(a.get_markerfacecolor()) in OKABE_ITO


def font_sizes(fig: Any) -> dict[str, float]:
    ax = fig.axes[0]
    sizes = {t.get_text(): t.get_fontsize() for t in ax.texts}
    sizes["title"] = ax.title.get_fontsize()
    sizes["legend"] = ax.get_legend().get_texts()[0].get_fontsize()
    return sizes


def test_scale_enlarges_text_and_lines_for_a_projector():
    g = small_graph()
    normal, large = draw(g, title="t"), draw(g, title="t", scale=1.5)
    a, b = font_sizes(normal), font_sizes(large)
    assert font_sizes(draw(g, title="t", scale=1)) == a  # the default is unchanged
    assert b["title"] == pytest.approx(1.5 * a["title"])
    assert b["v-red\n10.0.0.1/24"] == pytest.approx(1.5 * a["v-red\n10.0.0.1/24"])
    assert a["legend"] < b["legend"] <= 1.2 * a["legend"] + 1e-9  # it must fit beside the host
    lw = {str(x.get_gid()): x.get_linewidth() for fig in (normal, large) for x in fig.axes[0].lines}
    cable = "veth:if:host/v-red-br|if:red/v-red"
    thin = next(x for x in normal.axes[0].lines if x.get_gid() == cable).get_linewidth()
    assert lw[cable] == pytest.approx(1.5 * thin)
    for bad in (0, 10, True, "big"):
        with pytest.raises(ValueError, match="scale must be a number"):
            draw(g, scale=bad)


def test_a_figure_drawn_into_gets_its_alt_and_a_saved_png_its_description(tmp_path):
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure()
    left, right = fig.subplots(1, 2)
    g = small_graph()
    draw(g, ax=left)
    draw(g, ax=right, title="again")
    assert fig.labkit_alt.count("Network diagram") == 2
    data, meta = shown(fig)
    assert "text/html" not in data  # an ordinary Figure: the kernel's PNG, with its alt
    assert meta["image/png"]["alt"].startswith("Network diagram: the host")
    save(g, tmp_path / "lab.png")
    info = Image.open(tmp_path / "lab.png").info
    assert info["Description"] == describe(g)


def test_hundreds_of_namespaces_are_summed_up_in_a_few_lines():
    g = nx.Graph()
    g.add_node("ns:host", kind="netns", name="host")
    for i in range(10, 310):
        g.add_node(f"ns:ns{i}", kind="netns", name=f"ns{i}")
        g.add_node(
            f"if:ns{i}/eth0", kind="iface", ns=f"ns{i}", name="eth0", type="veth",
            addrs=[f"10.1.{i // 256}.{i % 256}/16"], up=i != 42,
        )  # fmt: skip
        g.add_node(f"if:host/p{i}", kind="iface", ns="host", name=f"p{i}", type="veth")
        g.add_edge(f"if:ns{i}/eth0", f"if:host/p{i}", kind="veth")
    text = describe(g)
    assert len(text.splitlines()) <= 5 and len(text) < 1500, text
    assert "300 lab namespaces: ns10, ns11" in text and "(300 in all)" in text
    assert "300 interfaces, 1 down; addresses 10.1.0.10/16 to 10.1.1.53/16" in text
    assert "300 cables from the lab namespaces to the host (1 with an end down)" in text


def test_png_of_a_labkit_figure_is_what_the_notebook_shows():
    fig = draw(small_graph())
    data, _ = fig._repr_mimebundle_()
    import base64

    from matplotlib.image import imread

    picture = imread(io.BytesIO(base64.b64decode(data["image/png"])))
    assert picture.shape[0] > 300 and picture.shape[1] > 400
    assert data["text/plain"] == fig.labkit_alt == describe(small_graph())


# -- on the labkit kernel, end to end ----------------------------------------------------


def test_a_notebook_on_the_labkit_kernel_exports_its_figures_with_alt_text():
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from nbclient import NotebookClient

    try:
        KernelSpecManager().get_kernel_spec("labkit")
    except NoSuchKernel:
        pytest.skip("the 'labkit' kernelspec is not installed: python -m labkit.jupyter install")
    cells = [
        "import labkit\nlab = labkit.Lab()\nlab.goto('veth');",
        "lab.draw()",
        "%matplotlib inline\nlab.draw(scale=1.5)",  # pyplot's own formatter registered too
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name="labkit", timeout=60).execute()
    for cell in nb.cells[1:]:
        (out,) = cell.outputs
        assert sorted(out.data) == ["image/png", "text/html", "text/plain"]
        assert out.data["text/plain"].startswith("Network diagram: the host, 2 lab namespaces")
        assert out.data["text/html"].endswith(out.data["image/png"] + '"/>')  # drawn once
    html, _ = HTMLExporter().from_notebook_node(nb)
    alts = re.findall(r'<img alt="([^"]+)"', html)
    assert len(alts) == 2 and all("red: veth-red 192.168.15.1/24." in alt for alt in alts)
    assert "No description has been provided" not in html


def test_the_live_graph_describes_the_picture_it_would_draw():
    from labkit.ui.live import LiveGraph

    live = LiveGraph()
    live.update(small_graph())
    changed = small_graph()
    changed.nodes["if:red/v-red"]["up"] = False
    live.update(changed)
    text = live.describe()
    assert text == live.figure().labkit_alt
    assert "~ changed red v-red (state)" in text and "red: v-red 10.0.0.1/24 (down)." in text
    assert "Since the last picture" not in live.describe(highlight=False)
