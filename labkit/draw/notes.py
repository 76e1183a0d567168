"""What is written inside a namespace's box besides its name: pure text.

``forwarding`` when it forwards IPv4, the labkit web apps listening there
(``web :80``), its routes through a gateway (``default via 192.168.1.1``)
and its NAT rules with their packet counters (:func:`rule_text`). A rule
labkit did not make (one added by hand) starts with ``*``.

Examples
--------
>>> from labkit.draw.notes import notes
>>> notes({"forwarding": True, "services": [80]}, short_rules=False)
(['web :80', 'forwarding'], [], False)
"""

from __future__ import annotations

from typing import Any

from labkit.draw.graph import natural

__all__ = ["MAX_ROUTES", "MAX_RULES", "notes", "rule_text"]

#: At most this many routes are noted in one box.
MAX_ROUTES = 3
#: At most this many NAT rules are noted in one box.
MAX_RULES = 4


def _counter(packets: Any) -> str:
    n = int(packets or 0)
    return f"[{n} pkt]" if n == 1 else f"[{n} pkts]"


def rule_text(rule: dict[str, Any], short: bool = False, counter: bool = True) -> str:
    """A firewall rule in a few words: chain, target, matches, counter.

    ``-m`` module names are dropped, ``/32`` is left out of addresses, a
    DNAT by destination and port reads ``ADDR:PORT → TO``, and a rule that
    labkit did not make starts with ``*``. ``short`` writes ``NAT:``
    instead of the chain (for the router); ``counter=False`` leaves the
    packet counter out (for a text that must not change with traffic).

    Examples
    --------
    >>> spec = "-d 192.168.1.2/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:80"
    >>> rule_text({"chain": "PREROUTING", "spec": spec, "marked": True, "packets": 2})
    'PREROUTING DNAT 192.168.1.2:80 → 10.0.0.2:80 [2 pkts]'
    >>> rule_text({"chain": "POSTROUTING", "spec": "-o wan0 -j MASQUERADE", "marked": False,
    ...            "packets": 1}, short=True)
    '* NAT: MASQUERADE -o wan0 [1 pkt]'
    """
    words = str(rule.get("spec", "")).split()
    target, to, matches, rest = "", "", [], []
    opts: dict[str, str] = {}
    i = 0
    while i < len(words):
        word, value = words[i], words[i + 1] if i + 1 < len(words) else ""
        if target:  # the target's own options
            if word.startswith("--to") and value:
                to, i = value, i + 2
            else:
                rest.append(word)
                i += 1
        elif word in ("-j", "-g") and value:
            target, i = value, i + 2
        elif word == "-m" and value:
            i += 2
        elif word.startswith("-") and value and not value.startswith("-"):
            opts[word] = value.removesuffix("/32")
            matches += [word, opts[word]]
            i += 2
        else:
            matches.append(word)
            i += 1
    if (
        target == "DNAT"
        and "--dport" in opts
        and "!" not in matches
        and set(opts) <= {"-d", "-p", "--dport"}
    ):
        where = f"{opts.get('-d', '')}:{opts['--dport']}"
        if opts.get("-p", "tcp") != "tcp":
            where = f"{opts['-p']} {where}"
        body = [where]
    else:
        body = matches
    if to:
        body += ["\u2192", to]
    head = "NAT:" if short else str(rule.get("chain", ""))
    count = [_counter(rule.get("packets"))] if counter else []
    text = " ".join([head, target or "-", *body, *rest, *count])
    return text if rule.get("marked", True) else "* " + text


def notes(
    d: dict[str, Any], short_rules: bool, show_routes: bool = True, counters: bool = True
) -> tuple[list[str], list[str], bool]:
    """The notes of a namespace node: general ones, firewall rules, and
    whether a rule made by hand is among them.

    The general notes are the web apps, ``forwarding`` and the routes
    through a gateway (the default one first, at most :data:`MAX_ROUTES`).
    The rules are the NAT rules (see :func:`rule_text`; at most
    :data:`MAX_RULES`) and the number of rules in other tables;
    ``counters=False`` leaves their packet counters out.

    Examples
    --------
    >>> d = {"routes": [{"dst": "10.9.0.0/16", "via": "10.0.0.9"},
    ...                 {"dst": "default", "via": "10.0.0.1"}, {"dst": "10.0.0.0/24"}],
    ...      "rules": [{"table": "filter", "marked": False}]}
    >>> notes(d, short_rules=True)
    (['default via 10.0.0.1', '10.9.0.0/16 via 10.0.0.9'], ['+ 1 filter rule'], True)
    """
    lines: list[str] = []
    ports = sorted({int(p) for p in d.get("services") or []})
    if ports:
        lines.append("web " + " ".join(f":{p}" for p in ports))
    if d.get("forwarding"):
        lines.append("forwarding")
    routes = sorted(
        (r for r in (d.get("routes") or [] if show_routes else []) if r.get("via")),
        key=lambda r: (r.get("dst") != "default", natural(str(r.get("dst"))), str(r["via"])),
    )
    lines += [f"{r.get('dst')} via {r['via']}" for r in routes[:MAX_ROUTES]]
    if len(routes) > MAX_ROUTES:
        lines.append(f"+ {len(routes) - MAX_ROUTES} more routes")
    rules = list(d.get("rules") or [])
    nat = [r for r in rules if r.get("table") == "nat"]
    shown = nat if len(nat) <= MAX_RULES else nat[: MAX_RULES - 1]
    texts = [rule_text(r, short_rules, counters) for r in shown]
    if len(shown) < len(nat):
        texts.append(f"+ {len(nat) - len(shown)} more NAT rules")
    others: dict[str, int] = {}
    for r in rules:
        if r.get("table") != "nat":
            others[str(r.get("table"))] = others.get(str(r.get("table")), 0) + 1
    texts += [f"+ {n} {table} rule{'s' if n > 1 else ''}" for table, n in sorted(others.items())]
    by_hand = any(not r.get("marked", True) for r in rules if r in shown or r not in nat)
    return lines, texts, by_hand
