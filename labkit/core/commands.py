"""The shell commands a change equals, shown as a one-line summary.

:meth:`labkit.Lab.goto`, ``reset`` and ``down`` return :class:`Commands`:
the commands that the changes they made equal, in order.
"""

from __future__ import annotations

from typing import Any


class Commands(list):
    """The shell commands a change equals: a list, shown as a short summary.

    A notebook shows ``lab.goto(...)``'s result as one line: how many
    commands, grouped by what they do. ``print()`` gives every command,
    one per line, in the order they ran. It is a ``list`` in every other
    way.

    Examples
    --------
    >>> cmds = Commands(["ip netns add red", "ip netns add blue", "ip -n red link set lo up"])
    >>> cmds.summary()
    '3 commands: ip netns add ×2, ip link set ×1. print() lists them.'
    >>> print(cmds)
    ip netns add red
    ip netns add blue
    ip -n red link set lo up
    >>> cmds == ["ip netns add red", "ip netns add blue", "ip -n red link set lo up"]
    True
    """

    def summary(self) -> str:
        """One line: the number of commands and what kinds they are.

        Examples
        --------
        >>> Commands([]).summary()
        'Nothing to change: already there.'
        """
        if not self:
            return "Nothing to change: already there."
        kinds: dict[str, int] = {}
        for command in self:
            kind = _kind(command)
            kinds[kind] = kinds.get(kind, 0) + 1
        groups = ", ".join(f"{kind} ×{n}" for kind, n in kinds.items())
        noun = "command" if len(self) == 1 else "commands"
        return f"{len(self)} {noun}: {groups}. print() lists them."

    def __str__(self) -> str:
        return "\n".join(self)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary())


def _kind(command: str) -> str:
    """What a command does, without its names: ``ip link add``, ``iptables -t nat -A``.

    Examples
    --------
    >>> _kind("ip netns exec red ip route add default via 192.168.15.5")
    'ip route add'
    >>> _kind("iptables -t nat -A POSTROUTING -s 192.168.15.0/24 -j MASQUERADE")
    'iptables -t nat -A POSTROUTING'
    >>> _kind("sysctl -w net.ipv4.ip_forward=1")
    'sysctl -w'
    """
    words = command.split()
    if words[:3] == ["ip", "netns", "exec"] and len(words) > 4:
        words = words[4:]
    if words[:2] == ["ip", "-n"]:
        words = ["ip", *words[3:]]
    if words[0] == "ip":
        return " ".join(words[:3])
    if words[0] == "iptables":
        return " ".join(words[: 5 if words[1:2] == ["-t"] else 3])
    return " ".join(words[:2]) if len(words) > 1 and words[1].startswith("-") else words[0]
