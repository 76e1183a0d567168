"""How labkit names places, and how a command reaches each place.

The sandbox's own network namespace is called ``host`` throughout (the
tutorial's "host"); every other namespace by its name. A command for the
host runs as is; for another namespace, ``ip -n NS`` (iproute2) or
``ip netns exec NS`` (anything else). One place for these words, so every
sentence and every command says it the same way.

Examples
--------
>>> in_ns("red", "sysctl -w net.ipv4.ip_forward=1")
'ip netns exec red sysctl -w net.ipv4.ip_forward=1'
"""

from __future__ import annotations

import re

from labkit.errors import ConfigError

#: the sandbox's own network namespace
HOST = "host"


def where(ns: str) -> str:
    """``the host``, or the namespace's name, for a sentence.

    Examples
    --------
    >>> where("host"), where("red")
    ('the host', 'red')
    """
    return "the host" if ns == HOST else ns


def place(ns: str) -> str:
    """``the host``, or ``namespace NAME``, for a sentence that needs the word.

    Examples
    --------
    >>> place("red")
    'namespace red'
    """
    return "the host" if ns == HOST else f"namespace {ns}"


def ip(ns: str) -> str:
    """The iproute2 command that acts in ``ns``: ``ip`` or ``ip -n NS``.

    Examples
    --------
    >>> ip("host"), ip("red")
    ('ip', 'ip -n red')
    """
    return "ip" if ns == HOST else f"ip -n {ns}"


def in_ns(ns: str, command: str) -> str:
    """``command`` as run in ``ns`` (with ``ip netns exec`` unless it is the host).

    Examples
    --------
    >>> in_ns("host", "iptables -t nat -S")
    'iptables -t nat -S'
    """
    return command if ns == HOST else f"ip netns exec {ns} {command}"


_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
IFNAMSIZ = 15


def check_netns_name(name: str) -> str:
    """Return ``name`` if it is a usable namespace name, else raise ConfigError.

    Examples
    --------
    >>> check_netns_name("red")
    'red'
    >>> check_netns_name("red; rm -rf /")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labkit.errors.ConfigError: 'red; rm -rf /' is not a valid namespace name: use letters, ...
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > 64:
        raise ConfigError(
            f"{name!r} is not a valid namespace name: use letters, digits, '_', '-' "
            "and '.', at most 64 characters, not starting with '-' or '.'"
        )
    return name


def check_ifname(name: str) -> str:
    """Return ``name`` if the kernel accepts it as an interface name.

    Examples
    --------
    >>> check_ifname("veth-red")
    'veth-red'
    >>> check_ifname("veth-very-long-name")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labkit.errors.ConfigError: interface name 'veth-very-long-name' has 19 characters; ...
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or "/" in name:
        raise ConfigError(
            f"{name!r} is not a valid interface name: use letters, digits, '_', '-' and '.'"
        )
    if len(name) > IFNAMSIZ:
        raise ConfigError(
            f"interface name {name!r} has {len(name)} characters; the kernel allows "
            f"at most {IFNAMSIZ}"
        )
    return name
