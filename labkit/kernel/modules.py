"""The kernel modules the course needs, loaded before a sandbox starts.

A user namespace cannot load kernel modules itself (``modprobe`` fails
there). The kernel may still load one on demand for a request that needs
it (``ip link add ... type veth`` asks for ``rtnl-link-veth``), where the
machine allows it; labkit does not count on that. So labkit, when it runs
as root, loads them first (:func:`load`), and ``labkit doctor`` names any
that is missing (:func:`missing`) with the command that loads it.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import subprocess

#: module -> the kernel config options that build it in (any one is enough)
MODULES: dict[str, tuple[str, ...]] = {
    "veth": ("CONFIG_VETH",),
    "bridge": ("CONFIG_BRIDGE",),
    "nf_tables": ("CONFIG_NF_TABLES",),
    "nft_compat": ("CONFIG_NFT_COMPAT",),
    "nft_chain_nat": ("CONFIG_NFT_NAT",),
    "nf_nat": ("CONFIG_NF_NAT",),
    "nf_conntrack": ("CONFIG_NF_CONNTRACK",),
    "xt_comment": ("CONFIG_NETFILTER_XT_MATCH_COMMENT",),
    "xt_MASQUERADE": ("CONFIG_NETFILTER_XT_TARGET_MASQUERADE", "CONFIG_IP_NF_TARGET_MASQUERADE"),
    "xt_nat": ("CONFIG_NETFILTER_XT_NAT",),
    "xt_tcpudp": ("CONFIG_NETFILTER_XTABLES",),
}


def _modprobe() -> str | None:
    return shutil.which("modprobe", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _loaded() -> set[str] | None:
    """Names in /proc/modules, or None when this kernel cannot load modules at all."""
    try:
        with open("/proc/modules") as f:
            return {line.split()[0] for line in f if line.strip()}
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def _built_in() -> frozenset[str]:
    """Modules built into the kernel (modules.builtin, else /proc/config.gz)."""
    names: set[str] = set()
    release = os.uname().release
    try:
        with open(f"/lib/modules/{release}/modules.builtin") as f:
            for line in f:
                base = os.path.basename(line.strip())
                names.add(base.removesuffix(".ko").replace("-", "_"))
    except OSError:
        pass
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            config = {line.split("=")[0] for line in f if line.rstrip().endswith("=y")}
    except OSError:
        config = set()
    for module, options in MODULES.items():
        if any(option in config for option in options):
            names.add(module)
    return frozenset(names)


def missing() -> list[str]:
    """The course's modules that are neither loaded nor built in.

    An empty list when nothing can be told (no /proc/modules and no
    kernel config): labkit then finds out inside the sandbox.

    Examples
    --------
    >>> isinstance(missing(), list)
    True
    """
    loaded = _loaded()
    built_in = _built_in()
    if loaded is None and not built_in:
        return []
    have = (loaded or set()) | built_in
    # /sys/module/NAME exists for loaded modules and many built-in ones
    have |= {m for m in MODULES if os.path.isdir(f"/sys/module/{m}")}
    return [m for m in MODULES if m not in have]


def load() -> list[str]:
    """As root, load the modules the course needs; return those still missing.

    Quiet and quick when everything is there already (one read of
    /proc/modules); never fails: what cannot be loaded is reported by
    ``labkit doctor``.

    Examples
    --------
    >>> load()  # doctest: +SKIP
    []
    """
    todo = missing()
    modprobe = _modprobe()
    if todo and modprobe and os.geteuid() == 0 and _loaded() is not None:
        try:
            subprocess.run(
                [modprobe, "-q", "-a", *todo],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            pass
        todo = missing()
    return todo
