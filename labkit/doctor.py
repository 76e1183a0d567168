"""Check whether this machine can run labkit, and say how to fix what is missing.

:func:`check` looks at the machine and returns a list of :class:`Finding`;
:func:`report` turns them into text (``labkit doctor`` prints it). Every
check only *reads* the machine: files under ``/proc`` and ``/sys``, ``PATH``,
the accounts, ``iptables -S FORWARD``, ``modprobe --dry-run``; the
br_netfilter check starts (and ends) a throwaway sandbox, which never
touches the machine's network (as root, starting it loads the course's
kernel modules, as starting any sandbox does).

A finding is ``ok``, a warning (not ok; labs still run, but something
will not work or may surprise) or a failure (not ok and ``blocking``:
labkit cannot work here at all).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass

from labkit import jupyter
from labkit.kernel import modules, preflight, probe, sandbox

#: The tools the course uses, and the Debian/Ubuntu package of each.
TOOLS: dict[str, str] = {
    "ip": "iproute2",
    "iptables": "iptables",
    "ping": "iputils-ping",
    "arp": "net-tools",
    "route": "net-tools",
    "curl": "curl",
    "nft": "nftables",
}

#: The modules without which no lab can be built at all (the others: iptables and NAT).
ESSENTIAL_MODULES = ("veth", "bridge")

_BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


@dataclass(frozen=True)
class Finding:
    """One result of :func:`check`: what was checked, how it went, the fix.

    Parameters
    ----------
    name
        What was checked, in a few words (``"sandbox"``, ``"tool ip"``).
    ok
        True when nothing needs doing.
    detail
        What was found, in a sentence or two.
    fix
        What to do about it (empty when ``ok``).
    blocking
        True when labkit cannot work at all until this is fixed.

    Examples
    --------
    >>> f = Finding("tool curl", False, "curl is not on PATH", "apt-get install -y curl")
    >>> f.ok, f.blocking
    (False, False)
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = False

    @property
    def level(self) -> str:
        """``"ok"``, ``"warn"`` or ``"FAIL"``.

        Examples
        --------
        >>> Finding("sandbox", False, "no user namespaces", "sysctl ...", blocking=True).level
        'FAIL'
        """
        if self.ok:
            return "ok"
        return "FAIL" if self.blocking else "warn"


def _read(path: str) -> str | None:
    """The stripped text of ``path``, or None when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _initial_userns() -> bool:
    """True when this process is in the machine's own user namespace."""
    return (_read("/proc/self/uid_map") or "").split() == ["0", "0", "4294967295"]


def _can_load_modules() -> bool:
    return os.geteuid() == 0 and _initial_userns()


def check_user() -> Finding:
    """Say who runs labkit: root of the machine, root of a container, or a user.

    Whoever it is, each sandbox has a user namespace of its own, in which
    the learner is root; :func:`check_containment` says who that is on the
    machine.

    Examples
    --------
    >>> check_user().name
    'user'
    """
    uid = os.geteuid()
    if uid == 0 and _initial_userns():
        detail = (
            "running as root: each sandbox still has a user namespace, whose root is an "
            "unprivileged uid on the machine (see containment)"
        )
    elif uid == 0:
        detail = (
            "running as root of a user namespace (a container or a sandbox): each sandbox "
            "nests a user namespace of its own in it"
        )
    else:
        detail = (
            f"running as user {uid} (not root): each sandbox has a user namespace in which "
            "you are root, and nowhere else"
        )
    return Finding("user", True, detail)


def check_sandbox() -> Finding:
    """Say whether a labkit sandbox can start here (the one check that blocks).

    Examples
    --------
    >>> check_sandbox().name
    'sandbox'
    """
    why = preflight.why_not()
    if why is None:
        return Finding("sandbox", True, "a labkit sandbox can start here")
    # The paragraph the CLI, the kernel and the Python API show, cut in two.
    detail, fix = preflight.why_and_fix(why)
    return Finding("sandbox", False, detail, fix, blocking=True)


def check_userns() -> Finding:
    """Check the sysctls that allow user namespaces, which every sandbox uses.

    For an ordinary user each of :data:`labkit.kernel.preflight.USERNS_SYSCTLS` can
    forbid them. Root may create them whatever
    ``kernel.unprivileged_userns_clone`` and
    ``kernel.apparmor_restrict_unprivileged_userns`` say, but not when
    ``user.max_user_namespaces`` is 0: that one forbids them to everyone.

    Examples
    --------
    >>> check_userns().name
    'user namespaces'
    """
    found: list[str] = []
    fixes: list[str] = []
    for name, value, forbids, allowing in preflight.userns_sysctls():
        found.append(f"{name}={value}")
        if forbids:
            fixes.append(f"sysctl -w {name}={allowing}")
    values = ", ".join(found) or "no user namespace sysctls found"
    if os.geteuid() == 0:
        fixes = [c for c in fixes if c.startswith("sysctl -w user.max_user_namespaces=")]
        if not fixes:
            return Finding(
                "user namespaces",
                True,
                f"root may create them, and every sandbox uses one ({values})",
            )
        return Finding(
            "user namespaces",
            False,
            "user.max_user_namespaces=0 forbids user namespaces to everyone, root included, "
            f"and every sandbox uses one ({values})",
            f"as root: `{fixes[0]}` (to keep it after a reboot, put the setting in "
            "/etc/sysctl.d/99-labkit.conf)",
        )
    if not fixes:
        return Finding("user namespaces", True, f"unprivileged user namespaces allowed ({values})")
    fix = (
        "as root: "
        + "; ".join(f"`{c}`" for c in fixes)
        + " (to keep it after a reboot, put the setting in /etc/sysctl.d/99-labkit.conf)"
    )
    return Finding(
        "user namespaces", False, f"unprivileged user namespaces are not allowed ({values})", fix
    )


def check_tools() -> list[Finding]:
    """One finding per tool the course uses (ip, iptables, ping, ...).

    Examples
    --------
    >>> [f.name for f in check_tools()][:2]
    ['tool ip', 'tool iptables']
    """
    out = []
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for tool, package in TOOLS.items():
        where = shutil.which(tool, path=path)
        if where:
            out.append(Finding(f"tool {tool}", True, where))
        else:
            out.append(
                Finding(
                    f"tool {tool}",
                    False,
                    f"{tool} is not installed (package {package}); the course uses it",
                    f"as root: `apt-get install -y {package}`",
                )
            )
    return out


def check_forward() -> Finding:
    """Read the machine's iptables FORWARD policy (Docker sets it to DROP).

    It does not apply to labs, which have their own network namespace;
    the finding says so, so nobody changes the machine for nothing.

    Examples
    --------
    >>> check_forward().ok
    True
    """
    name = "machine FORWARD policy"
    iptables = shutil.which("iptables", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if iptables is None:
        return Finding(name, True, "iptables is not installed: nothing to read")
    try:
        proc = subprocess.run(
            [iptables, "-S", "FORWARD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as err:
        return Finding(name, True, f"could not run `iptables -S FORWARD`: {err}")
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no output"])[0]
        return Finding(name, True, f"could not read it (`iptables -S FORWARD`: {why})")
    if "-P FORWARD DROP" in proc.stdout.split("\n"):
        return Finding(
            name,
            True,
            "the machine's FORWARD policy is DROP (Docker sets this). It does not apply "
            "to labkit's labs: they run in their own network namespace, with their own "
            "iptables (empty, policy ACCEPT). Bridged traffic between lab namespaces meets "
            "iptables only through br_netfilter, and then the sandbox's (see below).",
        )
    return Finding(name, True, "the machine's FORWARD policy is ACCEPT")


def _bridge_nf_in_sandbox() -> str | None:
    """bridge-nf-call-iptables as a lab sees it (in a sandbox's host namespace)."""
    if preflight.inside():
        return _read(_BRIDGE_NF)
    try:
        return sandbox.run_in_sandbox(_read, _BRIDGE_NF)  # a bare one: no world needed
    except Exception:  # noqa: BLE001 - the sandbox check reports why
        return None


def check_br_netfilter() -> Finding:
    """Warn when bridged frames between lab namespaces go through iptables.

    With ``br_netfilter`` loaded and ``net.bridge.bridge-nf-call-iptables=1``,
    frames that the lab's bridge ``v-net-0`` forwards (red to blue) pass the
    iptables FORWARD chain of the sandbox's host namespace. That chain is
    empty with policy ACCEPT, so labs work, until someone sets a DROP
    policy there. The value is read in a throwaway sandbox: since Linux 5.3
    each network namespace has its own (and a new one starts at 1), and
    labkit turns it off in the sandbox's host, so this warns only where
    that fails.

    Examples
    --------
    >>> check_br_netfilter().name
    'br_netfilter'
    """
    name = "br_netfilter"
    in_sandbox = _bridge_nf_in_sandbox()
    machine = _read(_BRIDGE_NF)
    if in_sandbox is None and machine is None:
        return Finding(
            name, True, "br_netfilter is not loaded: bridged frames do not go through iptables"
        )
    value = in_sandbox if in_sandbox is not None else machine
    if value != "1":
        where = (
            " in a sandbox's host, where labkit turns it off: v-net-0 forwards frames "
            "without iptables"
            if in_sandbox is not None
            else ""
        )
        return Finding(
            name, True, f"br_netfilter is loaded, but bridge-nf-call-iptables={value} (off){where}"
        )
    where = "in a sandbox" if in_sandbox is not None else "on the machine"
    detail = (
        f"br_netfilter is loaded and net.bridge.bridge-nf-call-iptables=1 {where}: "
        "frames the lab's bridge v-net-0 forwards between namespaces (red to blue) pass "
        "the iptables FORWARD chain of the sandbox's host. It starts empty with policy "
        "ACCEPT, so labs work; but after `iptables -P FORWARD DROP` (or DROP rules) there, "
        "pings across the bridge fail too."
    )
    if in_sandbox is not None:
        fix = (
            "if that happens, inside the sandbox: `sysctl -w net.bridge.bridge-nf-call-iptables=0` "
            "(each network namespace has its own setting, so this leaves the machine alone); or, "
            "as root on the machine, `modprobe -r br_netfilter` if nothing needs it (Docker and "
            "Kubernetes do)"
        )
    else:
        fix = (
            "as root: `sysctl -w net.bridge.bridge-nf-call-iptables=0` (on this kernel the "
            "setting is global: it changes the machine too), or `modprobe -r br_netfilter` if "
            "nothing needs it (Docker and Kubernetes do)"
        )
    return Finding(name, False, detail, fix)


def _modprobe_finds(names: list[str]) -> bool | None:
    """Whether ``modprobe --dry-run`` finds every module in ``names`` (None: no modprobe).

    A dry run resolves the modules and their dependencies and loads nothing.
    """
    modprobe = shutil.which("modprobe", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if modprobe is None:
        return None
    try:
        proc = subprocess.run(
            [modprobe, "--dry-run", "-q", "-a", *names],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def _what_fails(names: list[str]) -> str:
    """What a lab cannot do without the modules ``names``, in a few words."""
    uses = []
    if "veth" in names:
        uses.append("veth pairs")
    if "bridge" in names:
        uses.append("the bridge v-net-0")
    if any(n not in ESSENTIAL_MODULES for n in names):
        uses.append("iptables rules and NAT")
    if len(uses) == 1:
        return uses[0]
    return ", ".join(uses[:-1]) + " and " + uses[-1]


def check_modules() -> Finding:
    """Check the kernel modules the course needs (:data:`labkit.kernel.modules.MODULES`).

    A sandbox cannot load kernel modules itself (no user namespace may run
    ``modprobe``; the kernel loads some on demand where the machine allows
    it, which labkit does not count on), so they should be loaded or built
    in before it starts. labkit, started by root
    on the machine, loads them itself first; this check only looks (it
    asks ``modprobe --dry-run`` whether root could). A missing ``veth``
    or ``bridge`` that nobody can load blocks every lab; the others only
    NAT and firewall steps.

    Examples
    --------
    >>> check_modules().name
    'kernel modules'
    """
    name = "kernel modules"
    gone = modules.missing()
    names = " ".join(gone)
    if not gone:
        if _read("/proc/modules") is None:
            return Finding(
                name,
                True,
                "this kernel loads no modules (no /proc/modules), and none of those the "
                "course needs is known to be missing",
            )
        return Finding(name, True, f"loaded or built in: {', '.join(modules.MODULES)}")
    cannot = (
        "a sandbox cannot load kernel modules itself (a user namespace may not run modprobe; "
        f"the kernel may load some on demand, not everywhere), so {_what_fails(gone)} "
        "may fail in a lab"
    )
    fix = f"as root on the machine (for a container: on its host): `modprobe -a {names}`"
    if _can_load_modules():
        found = _modprobe_finds(gone)
        if found:
            return Finding(
                name,
                True,
                f"not loaded yet: {', '.join(gone)}; labkit loads them as root before a "
                "sandbox starts (a sandbox cannot load modules itself)",
            )
        why = "modprobe is not installed" if found is None else "modprobe cannot find them"
        if found is None:
            fix = f"as root: `apt-get install -y kmod`, then `modprobe -a {names}`"
        detail = f"not loaded: {', '.join(gone)}, and {why}; {cannot}"
    else:
        detail = f"not loaded: {', '.join(gone)}; {cannot}"
    blocking = any(m in gone for m in ESSENTIAL_MODULES)
    return Finding(name, False, detail, fix, blocking=blocking)


def _accounts(first: int, count: int) -> list[str]:
    """The accounts whose uid is one of ``first`` to ``first + count - 1``."""
    names = []
    try:
        names.append(pwd.getpwuid(first).pw_name)
    except KeyError:
        pass
    names += [p.pw_name for p in pwd.getpwall() if first < p.pw_uid < first + count and p.pw_name]
    return names


def _terminals() -> tuple[str, str]:
    """What JupyterLab's terminals do here, and the fix when they are not sandboxed."""
    if importlib.util.find_spec("jupyter_server") is None:
        return "no JupyterLab in this environment", ""
    if jupyter.server_config_installed():
        return "terminals join the notebook's lab", ""
    return (
        "JupyterLab terminals are NOT sandboxed: this environment lacks labkit's Jupyter "
        "settings, so a terminal is a shell on the machine",
        f"`{sys.executable} -m labkit.jupyter install`",
    )


def check_containment() -> Finding:
    """Say who the learner's root is on the machine, and whether terminals are sandboxed.

    Started by root, a sandbox maps its root to
    :data:`labkit.kernel.preflight.SANDBOX_UID` (a uid no account should use; 65536
    ids from it); started by an ordinary user, to that user
    (:func:`labkit.kernel.preflight.learner_ids`). A warning when an account owns
    one of those uids (the learner would own its files) or when
    JupyterLab's terminals would not be sandboxed; a failure when those
    uids do not exist here (a container that maps too few ids), because
    then no sandbox can start.

    Examples
    --------
    >>> check_containment().name
    'containment'
    """
    name = "containment"
    if preflight.inside():
        return Finding(
            name, True, "this is a labkit sandbox: its root is an unprivileged user outside"
        )
    uid, gid, count = preflight.learner_ids()
    where = "on this machine" if _initial_userns() else "in this user namespace"
    fixes: list[str] = []
    blocking = False
    if os.geteuid() != 0:
        who = f"learner root is you (uid {uid}) {where}"
    elif not preflight.learner_ids_exist():
        blocking = True
        who = (
            f"learner root would be uid {uid} {where}, but ids {uid}-{uid + count - 1} do "
            "not exist here (a container that maps fewer ids), so no sandbox can start"
        )
        fixes.append(
            f"map {count} more ids into the container than its accounts use, and set "
            f"{preflight.UID_ENV} to the first of {count} mapped ids that no account uses"
        )
    elif owners := _accounts(uid, count):
        who = (
            f"learner root is uid {uid} {where}, but account {owners[0]} has a uid in "
            f"{uid}-{uid + count - 1}: a learner would own its files"
        )
        fixes.append(f"set {preflight.UID_ENV} to the first of {count} uids that no account uses")
    else:
        who = f"learner root is uid {uid} {where} (no account has it)"
    terminals, fix = _terminals()
    if fix:
        fixes.append(fix)
    detail = f"{who}; {terminals}"
    if not fixes:
        return Finding(name, True, detail)
    return Finding(name, False, detail, "; ".join(fixes), blocking=blocking)


def check_neighbour_table() -> Finding:
    """The machine's ARP table limit, shared by every namespace.

    Examples
    --------
    >>> check_neighbour_table().name
    'neighbour table'
    """
    name = "neighbour table"
    limit = _read("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
    used = probe.neighbour_stats().get("entries")
    if limit is None or not limit.isdigit():
        return Finding(
            name,
            True,
            "its limit shows only in the machine's own network namespace, and this is "
            "another one (a sandbox's or a container's)",
        )
    size = int(limit)
    now = f"{used} in use now" if used is not None else "use unknown"
    detail = (
        f"the machine's IPv4 neighbour (ARP) table holds at most {size} entries for all "
        f"namespaces together ({now}); each pair of namespaces that talk needs two. "
        "labkit's reachability stays within it by working in waves; your own pings "
        "between dozens of namespaces at once may fail with 'No buffer space available'"
    )
    fix = (
        "if that happens and the machine is yours: "
        "sysctl -w net.ipv4.neigh.default.gc_thresh3=8192 "
        "(labkit never changes it for you)"
    )
    if size < 512 or (used is not None and used > size // 2):
        return Finding(name, False, detail, fix)
    return Finding(name, True, detail)


def findings() -> list[Finding]:
    """Run every check; read-only on the machine.

    The sandbox check starts a throwaway sandbox in a child process; call
    this from a single-threaded process (the CLI) if you can.

    Examples
    --------
    >>> from labkit import doctor
    >>> found = doctor.findings()
    >>> found[1].name
    'sandbox'
    """
    return [
        check_user(),
        check_sandbox(),
        check_containment(),
        check_userns(),
        *check_tools(),
        check_modules(),  # before the br_netfilter check's sandbox, which loads them as root
        check_forward(),
        check_br_netfilter(),
        check_neighbour_table(),
    ]


def report(findings: list[Finding]) -> str:
    """Findings as text: one line each, the fix indented below when not ok.

    The last line sums up whether labkit can work here.

    Examples
    --------
    >>> print(report([Finding("sandbox", True, "a labkit sandbox can start here"),
    ...               Finding("tool curl", False, "curl is not installed",
    ...                       "as root: `apt-get install -y curl`")]))
    [ok]   sandbox: a labkit sandbox can start here
    [warn] tool curl: curl is not installed
           fix: as root: `apt-get install -y curl`
    <BLANKLINE>
    labkit can run here (1 warning).
    """
    lines = []
    for f in findings:
        lines.append(f"{'[' + f.level + ']':<6} {f.name}: {f.detail}")
        if not f.ok and f.fix:
            lines.append(f"{'':6} fix: {f.fix}")
    failed = [f for f in findings if f.blocking and not f.ok]
    warned = [f for f in findings if not f.ok and not f.blocking]
    lines.append("")
    if failed:
        lines.append(f"labkit cannot run here: fix {', '.join(f.name for f in failed)} first.")
    elif warned:
        n = len(warned)
        lines.append(f"labkit can run here ({n} warning{'s' if n != 1 else ''}).")
    else:
        lines.append("labkit can run here.")
    return "\n".join(lines)


def can_run(findings: list[Finding]) -> bool:
    """True when no finding blocks labkit (``labkit doctor`` exits 0 then).

    Examples
    --------
    >>> can_run([Finding("sandbox", True, "")])
    True
    """
    return not any(f.blocking and not f.ok for f in findings)
