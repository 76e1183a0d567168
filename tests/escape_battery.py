"""Escape attempts a curious learner might make from inside a labkit sandbox.

Standard library only: it runs as a script (``python3 escape_battery.py
PARAMS_JSON OUT_JSON``, from ``labkit run`` or a terminal) and as a module
inside the labkit kernel itself (:func:`run`), where it also tries the
kernel's own threads and file descriptors.

Each attempt returns ``(refused, how)``: ``refused`` is True when the
kernel said no (the errno is in ``how``) or nothing of the machine was in
reach; False when the attempt *worked*, which is a containment failure.
``params`` (from the test, outside) names what to aim at: the machine's
network and user namespace inodes, a root-owned file, a named namespace
of the machine, a TCP port listening on the machine's loopback, the
machine's hostname and a block device.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import json
import os
import socket
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
SIOCGSKNS = 0x894C
SYS_FINIT_MODULE = 313  # x86_64
SYS_REBOOT = 169
SYS_CLOCK_SETTIME = 227
SYS_SYSLOG = 103

_libc = ctypes.CDLL(None, use_errno=True)


def _err(e: OSError) -> tuple[bool, str]:
    return True, errno.errorcode.get(e.errno or 0, str(e.errno))


def _call(result: int) -> tuple[bool, str]:
    if result == -1:
        return True, errno.errorcode.get(ctypes.get_errno(), "?")
    return False, f"returned {result}"


def _setns_path(path: str, nstype: int) -> tuple[bool, str]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return _err(e)
    try:
        refused, how = _call(_libc.setns(fd, nstype))
    finally:
        os.close(fd)
    if not refused and nstype == CLONE_NEWNET:
        _back_home()  # the next attempts start from the sandbox again
    return refused, how


def netns_via_pid1(p: dict) -> tuple[bool, str]:
    """nsenter --net=/proc/1/ns/net (PID 1 of the sandbox)."""
    return _setns_path("/proc/1/ns/net", CLONE_NEWNET)


def netns_via_any_proc(p: dict) -> tuple[bool, str]:
    """setns into every /proc/*/ns/net and /proc/*/task/*/ns/net that is not the sandbox's."""
    ours = {os.stat("/proc/self/ns/net").st_ino}
    for path in glob.glob("/run/netns/*"):
        try:
            ours.add(os.stat(path).st_ino)  # the lab's own namespaces may be entered
        except OSError:
            pass
    tried, reached = 0, []
    for path in glob.glob("/proc/[0-9]*/ns/net") + glob.glob("/proc/[0-9]*/task/*/ns/net"):
        try:
            if os.stat(path).st_ino in ours:
                continue
        except OSError:
            pass
        tried += 1
        refused, how = _setns_path(path, CLONE_NEWNET)
        if not refused:
            reached.append(path)
    if reached:
        return False, f"joined {reached}"
    return True, f"{tried} other namespaces tried, all refused"


_HOME_FD: list[int] = []


def _back_home() -> None:
    if _HOME_FD:
        _libc.setns(_HOME_FD[0], CLONE_NEWNET)


def machine_netns_visible(p: dict) -> tuple[bool, str]:
    """Any visible process in the machine's network namespace, by inode."""
    hits = []
    for path in glob.glob("/proc/[0-9]*/ns/net") + glob.glob("/proc/[0-9]*/task/*/ns/net"):
        try:
            if os.stat(path).st_ino == p["machine_netns"]:
                hits.append(path)
        except OSError:
            continue
    if hits:
        # visible is not reached: setns must still be refused
        return netns_via_any_proc(p)
    return True, "no visible process is in the machine's network namespace"


def netns_via_socket_fd(p: dict) -> tuple[bool, str]:
    """ioctl(SIOCGSKNS) on every socket fd this process holds (the kernel's ZMQ ports)."""
    tried, reached = 0, []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
        except OSError:
            continue
        tried += 1
        try:
            nsfd = fcntl.ioctl(fd, SIOCGSKNS)
        except OSError:
            continue
        try:
            if os.fstat(nsfd).st_ino == p["machine_netns"]:
                reached.append(fd)
        finally:
            os.close(nsfd)
    if reached:
        return False, f"socket fds {reached} gave the machine's network namespace"
    return True, f"{tried} socket fds, none gave the machine's namespace"


def machine_loopback(p: dict) -> tuple[bool, str]:
    """Connect to a TCP port listening on the machine's 127.0.0.1."""
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", p["machine_port"]))
    except OSError as e:
        return _err(e)
    finally:
        s.close()
    return False, "connected to the machine's loopback"


def machine_named_netns(p: dict) -> tuple[bool, str]:
    """Open the machine's named namespace, directly and through /proc/1/root."""
    name = p["machine_named_netns"]
    for path in (f"/run/netns/{name}", f"/proc/1/root/run/netns/{name}", f"/var/run/netns/{name}"):
        refused, how = _setns_path(path, CLONE_NEWNET)
        if not refused:
            return False, f"entered {path}"
    return True, "not visible (ENOENT) or refused"


def machine_userns(p: dict) -> tuple[bool, str]:
    """setns into the user namespace of PID 1 (and so toward the machine's)."""
    refused, how = _setns_path("/proc/1/ns/user", CLONE_NEWUSER)
    return refused, how


def write_etc(p: dict) -> tuple[bool, str]:
    """touch /etc/labkit-escape."""
    try:
        fd = os.open("/etc/labkit-escape", os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as e:
        return _err(e)
    os.close(fd)
    return False, "created /etc/labkit-escape"


def write_root_file(p: dict) -> tuple[bool, str]:
    """Append to a root-owned file outside the sandbox (0644 in /tmp)."""
    try:
        with open(p["root_file"], "a") as f:
            f.write("escaped\n")
    except OSError as e:
        return _err(e)
    return False, "wrote it"


def chmod_root_file(p: dict) -> tuple[bool, str]:
    """chmod 0666 a root-owned file outside the sandbox."""
    try:
        os.chmod(p["root_file"], 0o666)
    except OSError as e:
        return _err(e)
    return False, "changed its mode"


def set_clock(p: dict) -> tuple[bool, str]:
    """clock_settime(CLOCK_REALTIME) to now (like `date -s`)."""
    now = time.time()
    ts = struct.pack("qq", int(now), int((now % 1) * 1e9))
    buf = ctypes.create_string_buffer(ts)
    return _call(_libc.syscall(SYS_CLOCK_SETTIME, 0, buf))


def set_hostname(p: dict) -> tuple[bool, str]:
    """sethostname (like `hostname escaped`)."""
    return _call(_libc.sethostname(b"escaped", 7))


def machine_hostname_visible(p: dict) -> tuple[bool, str]:
    """The sandbox sees its own hostname, not the machine's."""
    name = socket.gethostname()
    if name == p["machine_hostname"]:
        return False, f"sees the machine's hostname {name!r}"
    return True, f"sees {name!r}"


def kernel_log(p: dict) -> tuple[bool, str]:
    """Read the kernel log (/dev/kmsg, and syslog(2) like dmesg)."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
        return False, "opened /dev/kmsg"
    except OSError as e:
        first = _err(e)[1]
    buf = ctypes.create_string_buffer(4096)
    refused, how = _call(_libc.syscall(SYS_SYSLOG, 3, buf, 4096))
    return refused, f"/dev/kmsg {first}, syslog {how}"


def load_module(p: dict) -> tuple[bool, str]:
    """finit_module(2) with /dev/null (like insmod)."""
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        return _call(_libc.syscall(SYS_FINIT_MODULE, fd, b"", 0))
    finally:
        os.close(fd)


def machine_sysctl(p: dict) -> tuple[bool, str]:
    """Write a machine-wide sysctl (vm.swappiness, its own value)."""
    path = "/proc/sys/vm/swappiness"
    try:
        with open(path) as f:
            value = f.read()
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        return _err(e)
    return False, "wrote vm.swappiness"


def _umount(path: str) -> tuple[bool, str]:
    return _call(_libc.umount2(path.encode(), 2))


def umount_run_netns(p: dict) -> tuple[bool, str]:
    """umount -l /run/netns."""
    return _umount("/run/netns")


def umount_sys(p: dict) -> tuple[bool, str]:
    """umount -l /sys."""
    return _umount("/sys")


def umount_proc(p: dict) -> tuple[bool, str]:
    """umount -l /proc."""
    return _umount("/proc")


def umount_run(p: dict) -> tuple[bool, str]:
    """umount -l /run."""
    return _umount("/run")


def read_pid1_memory(p: dict) -> tuple[bool, str]:
    """Open /proc/1/mem and /proc/1/environ (ptrace-like access to the sandbox's PID 1)."""
    for path in ("/proc/1/mem", "/proc/1/environ"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            continue_with = _err(e)
            continue
        os.close(fd)
        return False, f"opened {path}"
    return continue_with


def raw_disk(p: dict) -> tuple[bool, str]:
    """Open the machine's disk for reading."""
    try:
        fd = os.open(p["block_device"], os.O_RDONLY)
    except OSError as e:
        return _err(e)
    os.close(fd)
    return False, f"opened {p['block_device']}"


def reboot(p: dict) -> tuple[bool, str]:
    """reboot(2) with a bad command (refused before the command is looked at)."""
    # magic numbers right, command 0 (not a real one): EPERM if not allowed, EINVAL if allowed
    result = _libc.syscall(SYS_REBOOT, 0xFEE1DEAD, 672274793, 0x12345678, None)
    refused, how = _call(result)
    return refused and how == "EPERM", how


ATTEMPTS = [
    netns_via_pid1,
    netns_via_any_proc,
    machine_netns_visible,
    netns_via_socket_fd,
    machine_loopback,
    machine_named_netns,
    machine_userns,
    write_etc,
    write_root_file,
    chmod_root_file,
    set_clock,
    set_hostname,
    machine_hostname_visible,
    kernel_log,
    load_module,
    machine_sysctl,
    umount_run_netns,
    umount_sys,
    umount_proc,
    umount_run,
    read_pid1_memory,
    raw_disk,
    reboot,
]


def run(params: dict) -> list[dict]:
    """Make every attempt; one row each: name, what it tries, refused, how."""
    if not _HOME_FD:
        _HOME_FD.append(os.open("/proc/thread-self/ns/net", os.O_RDONLY))
    rows = []
    for attempt in ATTEMPTS:
        try:
            refused, how = attempt(params)
        except Exception as e:  # noqa: BLE001 - a crash of an attempt is reported, not hidden
            refused, how = False, f"the attempt crashed: {type(e).__name__}: {e}"
        rows.append(
            {
                "name": attempt.__name__,
                "what": (attempt.__doc__ or "").strip(),
                "refused": bool(refused),
                "how": how,
            }
        )
    return rows


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        params = json.load(f)
    rows = run(params)
    with open(sys.argv[2], "w") as f:
        json.dump(rows, f)
