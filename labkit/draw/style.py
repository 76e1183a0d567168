"""One table of the picture's sizes, fonts and colours, by name.

A size that depends on how crowded the picture is (see
:func:`labkit.draw.layout.density`) is a :class:`Sized`: one value per
density. Font and marker sizes are in points for a default figure
(:data:`PPU` points per data unit); the painter shrinks them with a small
Axes. Line widths are in points; lengths and offsets in data units. No
matplotlib here: :func:`labkit.draw.shapes.colours` tints a box by its name.

Examples
--------
>>> from labkit.draw import style
>>> style.CABLE_WIDTH.at("full"), style.CABLE_WIDTH.at("dense")
(1.8, 0.45)
>>> style.BRIDGE.at("medium")  # width, height
(1.5, 0.45)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Sized(Generic[T]):
    """A value for each density: full, medium, compact, and dense (as
    compact unless given).

    Examples
    --------
    >>> s = Sized(3.0, 2.0, 1.0)
    >>> s.at("full"), s.at("dense"), Sized(3.0, 2.0, 1.0, dense=0.5).at("dense")
    (3.0, 1.0, 0.5)
    """

    full: T
    medium: T
    compact: T
    dense: T | None = None

    def at(self, density: str) -> T:
        """The value for ``density`` (``"full"``, ``"medium"``, ``"compact"``, ``"dense"``)."""
        values = {"full": self.full, "medium": self.medium, "compact": self.compact}
        values["dense"] = self.compact if self.dense is None else self.dense
        return values[density]


# -- the figure ----------------------------------------------------------------------

#: Default figure size in inches (width, height): the same for every graph.
FIGSIZE = (9.0, 7.0)
#: Points per data unit in a default figure: font sizes are meant for it.
PPU = 34.0
#: A character's width, in font sizes (to fit a text in a width).
CHAR_WIDTH = 0.62
#: Room left below the lowest box or point.
VIEW_MARGIN = Sized(0.4, 0.3, 0.15)
TITLE_FONT = 11

# -- namespaces ----------------------------------------------------------------------

#: A lab namespace's box edge; a box drawn behind others (the host, the world,
#: one with a bridge) has BEHIND_EDGE; the cloud CLOUD_EDGE.
BOX_EDGE = Sized(1.4, 1.1, 0.6)
BEHIND_EDGE = 1.8
CLOUD_EDGE = 1.6
#: A namespace's name (red, blue and the world: FIXED_NAME_FONT), shrunk to fit
#: its box down to NAME_SMALLEST.
NAME_FONT = Sized(11.0, 8.0, 5.5)
FIXED_NAME_FONT = 11.0
NAME_SMALLEST = Sized(8.0, 6.0, 4.0)
#: Notes inside a box (ADDRESS_FONT: a medium box's addresses), down to NOTE_SMALLEST.
NOTE_FONT = 6.5
ADDRESS_FONT = 5.5
NOTE_SMALLEST = 4.0
#: The host's and the router's name at the top left, their notes and the
#: host's rules panel, down to TITLED_SMALLEST.
TITLED_NAME_FONT = 11
TITLED_NOTE_FONT = 7.0
RULES_FONT = 6.8
TITLED_SMALLEST = 4.5
#: Dense rows: the names at their ends, never below ROW_SMALLEST.
ROW_FONT = 6.5
ROW_SMALLEST = 3.0

# -- cables and interfaces -----------------------------------------------------------

CABLE_WIDTH = Sized(1.8, 1.2, 0.55, dense=0.45)
CABLE_ALPHA = Sized(1.0, 1.0, 0.6, dense=0.5)
PORT_WIDTH = Sized(1.2, 0.8, 0.35, dense=0.3)
PORT_ALPHA = Sized(1.0, 1.0, 0.6, dense=0.5)
#: An interface's dot (marker size) and its edge; dense tiles' dots are TILE_DOT.
DOT = Sized(6.5, 4.5, 2.4)
DOT_EDGE = Sized(1.2, 0.9, 0.5)
TILE_DOT = 1.8
TILE_DOT_EDGE = 0.4
#: The label at a cable end (END_FONT), or along a host's cable (ALONG_FONT).
END_FONT = 7.5
ALONG_FONT = 7.0
#: A bridge's switch shape: (width, height) in data units.
BRIDGE = Sized((1.7, 0.5), (1.5, 0.45), (1.3, 0.4))
BRIDGE_EDGE = 1.3
BRIDGE_LIGHTS = 6
BRIDGE_LIGHT_SIZE = 1.6
BRIDGE_NAME_FONT = 8.0
BRIDGE_NAME_SMALLEST = 5.0
BRIDGE_ADDRESS_FONT = 7.5

# -- what changed since the last picture (labkit.draw.overlays) ------------------------

#: The ring around an added or changed box, and around a ghost (removed) box;
#: how far a ring sits outside its box.
RING_EDGE = Sized(3.0, 2.4, 1.4)
GHOST_RING_EDGE = Sized(1.6, 1.2, 0.8)
RING_GROW = Sized(0.08, 0.05, 0.03)
#: The ring around an interface (marker size), its edge, and a ghost's edge.
RING_DOT = Sized(13.0, 9.0, 5.0)
RING_DOT_EDGE = Sized(2.2, 1.6, 0.9)
GHOST_DOT_EDGE = Sized(1.4, 1.0, 0.6)
BRIDGE_RING_EDGE = 2.4
#: An added cable's halo, a removed cable's dashed ghost.
ADDED_CABLE = Sized(6.0, 4.0, 2.0)
GHOST_CABLE = Sized(1.6, 1.1, 0.6)
GHOST_NAME_FONT = 9.0
GHOST_NAME_SMALLEST = 4.0
GHOST_IFACE_FONT = 6.5
#: The text mark beside what changed (+, ~, −).
CHANGE_MARK_FONT = 7.0

# -- a packet trace (labkit.draw.overlays) -------------------------------------------

#: A hop number's circle (marker size), its number, a NAT label.
HOP_SIZE = 11.0
HOP_FONT = 6.5
NAT_FONT = 6.8
HOP_ARROW_HEAD = 9
HOP_ARROW_SHRINK = 4
HOP_ARROW_WIDTH = 1.4
#: The current hop's circle, number and edge, this much larger.
CURRENT_HOP_GROW = 1.2
CURRENT_HOP_FONT_GROW = 1.15
HOP_EDGE = 0.8
CURRENT_HOP_EDGE = 2.0

# -- the legend ----------------------------------------------------------------------

LEGEND_FONT = 6.5
#: With a larger ``scale``, the legend grows this much at most (it must fit left of the host).
LEGEND_MAX_SCALE = 1.2
LEGEND_DOT = 5.5
LEGEND_BRIDGE = 7
LEGEND_HOP = 8

# -- colours -------------------------------------------------------------------------

#: The Okabe-Ito palette (Okabe and Ito, "Color Universal Design", 2008): eight
#: colours that people with the common colour-vision deficiencies tell apart.
#: Every colour that carries a meaning (what changed, request or reply) is one
#: of them, and every meaning has a second cue besides (see :data:`LEGEND`).
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}

INK = "#263238"
NOTE = "#37474f"
CABLE = "#37474f"
PORT = "#607d8b"
HOST_FACE, HOST_EDGE = "#eceff1", "#78909c"
HOST_TITLE = "#546e7a"
OTHER_FACE, OTHER_EDGE = "#f1efe2", "#7d7a5c"
#: The world's boxes: face, edge.
WORLD_COLOURS = {
    "router": ("#fff6e0", "#b07d12"),
    "lan-pc": ("#eef2e8", "#6f8a5e"),
    "internet": ("#e3f0fb", "#3f86c4"),
}
BRIDGE_FACE, BRIDGE_LIGHT = "#263238", "#80cbc4"
#: A cable with an end down, a ghost.
DASH: Any = (0, (3.5, 2.5))
#: A changed thing's ring.
DOTS: Any = (0, (1.0, 1.6))
#: What changed since the last picture (see labkit.ui.live): added, removed, changed.
ADDED = OKABE_ITO["bluish green"]
REMOVED = OKABE_ITO["vermillion"]
CHANGED = OKABE_ITO["orange"]
#: A packet trace (see labkit.trace): the request's hops, the reply's; the current hop's ring.
HOP = {"request": OKABE_ITO["blue"], "reply": OKABE_ITO["reddish purple"]}
CURRENT_HOP = OKABE_ITO["black"]
LEGEND_EDGE = "#cfd8dc"


@dataclass(frozen=True)
class Change:
    """How one kind of change is drawn: a colour, a line style and a text mark.

    Examples
    --------
    >>> CHANGES["removed"].mark, CHANGES["removed"].line == DASH
    ('\u2212', True)
    """

    colour: str
    line: Any
    mark: str


#: What changed since the last picture, each kind with its own line style and
#: text mark (written beside what changed), so that colour is never the only cue.
CHANGES = {
    "added": Change(ADDED, "-", "+"),
    "changed": Change(CHANGED, DOTS, "~"),
    "removed": Change(REMOVED, DASH, "\u2212"),
}


@dataclass(frozen=True)
class Hop:
    """How the hops of one packet are drawn: colour, marker, number colour, arrow style.

    Examples
    --------
    >>> HOPS["request"].marker, HOPS["reply"].marker
    ('o', 's')
    """

    colour: str
    marker: str
    number: str
    arrow: Any


#: A trace's request and reply: circles and solid arrows, squares and dashed arrows.
HOPS = {
    "request": Hop(HOP["request"], "o", "white", "-"),
    "reply": Hop(HOP["reply"], "s", "black", "--"),
}


@dataclass(frozen=True)
class Key:
    """One entry of the legend: its label, its colour, and its cues that are not colour.

    ``line`` is a matplotlib line style (``""`` for none), ``width`` its
    width in points, ``marker`` a matplotlib marker (``""`` for none) and
    ``fill`` how the marker is filled (``"full"``, ``"none"``) or ringed
    (``"ringed"``); ``edge`` is the line style of a patch's edge (a
    bridge's); ``mark`` is the text written beside what it marks in the
    picture. :meth:`cues` is everything but the colour: no two entries of
    :data:`LEGEND` have the same.

    Examples
    --------
    >>> LEGEND["cable"].cues() != LEGEND["cable-down"].cues()
    True
    """

    label: str
    colour: str
    line: Any = ""
    width: float = 0.0
    marker: str = ""
    fill: str = "full"
    edge: Any = "-"
    mark: str = ""

    def cues(self) -> tuple[Any, ...]:
        """What tells this entry from another without its colour."""
        return (str(self.line), self.width, self.marker, self.fill, str(self.edge), self.mark)


def _change(kind: str, label: str, width: float) -> Key:
    c = CHANGES[kind]
    return Key(label, c.colour, line=c.line, width=width, mark=c.mark)


def _hop(kind: str, label: str) -> Key:
    h = HOPS[kind]
    return Key(label, h.colour, line=h.arrow, width=1.2, marker=h.marker)


#: Every entry the legend can have, by name, in the legend's order. The
#: painter draws its legend from this table: the marks always, the
#: changes with ``changes=``, the trace's with ``trace=`` (and the current
#: hop with ``upto=``), the ``*`` note when a rule was made by hand.
LEGEND = {
    "cable": Key("cable, both ends up", CABLE, line="-", width=1.6),
    "cable-down": Key("cable or port, an end down", CABLE, line=DASH, width=1.6),
    "port": Key("bridge port (thinner)", PORT, line="-", width=0.9),
    "iface": Key("interface up", CABLE, marker="o"),
    "iface-down": Key("interface down", CABLE, marker="o", fill="none"),
    "bridge": Key("bridge", BRIDGE_FACE, marker="s"),
    "bridge-down": Key("bridge, down", BRIDGE_FACE, marker="s", fill="none", edge="--"),
    "by-hand": Key("* rule made by hand", INK, mark="*"),
    "added": _change("added", "added since last picture", 3.0),
    "removed": _change("removed", "removed (ghost)", 1.6),
    "changed": _change("changed", "changed (address, state, route)", 2.4),
    "request": _hop("request", "hop of the request (in order)"),
    "reply": _hop("reply", "hop of the reply"),
    "nat": Key("NAT: an address rewritten", HOP["request"], marker="s", fill="none", mark="\u2192"),
    "current": Key("the hop shown (larger, ringed)", HOP["request"], marker="o", fill="ringed"),
}
