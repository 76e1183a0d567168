"""The exceptions labkit raises.

One base class, :class:`LabkitError`, so a notebook or the CLI can catch
everything labkit says with one ``except``. Every message names the object
that is wrong and says how to fix it.
"""

from __future__ import annotations


class LabkitError(Exception):
    """Base class of every error labkit raises on purpose.

    Examples
    --------
    >>> try:
    ...     raise LabkitError("something went wrong - try this")
    ... except LabkitError as err:
    ...     print(err)
    something went wrong - try this
    """


class SandboxError(LabkitError):
    """No sandbox can be started here, or the code runs outside one.

    Examples
    --------
    >>> isinstance(SandboxError("not in a sandbox"), LabkitError)
    True
    """


class ConfigError(LabkitError, ValueError):
    """Bad input: an unknown stage, an invalid name, address or count.

    Examples
    --------
    >>> isinstance(ConfigError("unknown stage 'x'"), ValueError)
    True
    """


class NamespaceGone(ConfigError):
    """A network namespace that is not there (any more): never made, or deleted.

    Work over many namespaces skips one that vanished while it looked;
    asked for by name, it is bad input like any other :class:`ConfigError`.

    Examples
    --------
    >>> isinstance(NamespaceGone("network namespace 'red' does not exist"), ConfigError)
    True
    """


class ConflictError(LabkitError):
    """The kernel holds something, made by hand, that blocks the request.

    Examples
    --------
    >>> str(ConflictError("address 192.168.15.1 is in use"))
    'address 192.168.15.1 is in use'
    """


class KernelError(LabkitError):
    """The kernel refused a change; the message says which and why.

    Examples
    --------
    >>> str(KernelError("ip link add v-net-0 type bridge: File exists"))
    'ip link add v-net-0 type bridge: File exists'
    """
