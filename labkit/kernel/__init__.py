"""The effects: sandboxes, netlink, namespaces, processes, reading and changing the kernel.

Modules here import only :mod:`labkit.core`, :mod:`labkit.errors` and each other.

Examples
--------
>>> from labkit.kernel import preflight
>>> isinstance(preflight.inside(), bool)
True
"""
