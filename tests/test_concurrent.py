"""Many labs at once: 4 sandboxes build and probe at the same time, each sees only itself.

The test starts 4 separate Python processes; each enters a sandbox of its own
(:func:`labkit.kernel.sandbox.run_in_lab`) and runs :func:`worker`, which

1. marks its sandbox with things only it makes: a namespace ``only-wI``, a
   bridge ``markI`` with the address 10.77.I.1/24 in the host, and a
   firewall rule with the comment ``only-wI``;
2. waits until all 4 are inside (a file barrier, so the builds start together),
   builds its own stage with its own number of namespaces;
3. waits again, this time for the test, which meanwhile checks that the
   machine itself sees none of it; then all 4 probe at once (``reachability``,
   ``ping``, ``http``);
4. writes what it saw (namespaces, addresses, rules, web apps, probe results,
   timestamps, the inodes of its network and PID namespaces) to a JSON file.

The test then asserts that each saw exactly its own stage (namespaces,
addresses, rules, web apps as :func:`labkit.core.stages.desired` says, plus its
own marks) and nothing of the others', that every probe gave the answer its
stage must give (including the negative ones: in the veth stage red must
not reach the LAN), and that the four really ran at the same time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from labkit.core.model import HOST
from labkit.core.stages import desired, namespaces

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (stage, namespaces on the bridge, pings that must answer, (src, url, body) that must answer)
LABS = [
    ("veth", 2, [("red", "192.168.15.2"), ("blue", "192.168.15.1")], []),
    ("bridge", 12, [("red", "192.168.15.19"), ("ns19", "192.168.15.2")], []),
    (
        "internet",
        24,
        [("ns31", "203.0.113.8"), ("red", "192.168.1.3"), ("host", "192.168.15.31")],
        [("ns31", "http://203.0.113.8/", "Hello from internet! You came from 198.51.100.2.")],
    ),
    (
        "portforward",
        6,
        [("ns13", "203.0.113.8")],
        [
            ("lan-pc", "http://192.168.1.2/", "Hello from blue! You came from 192.168.1.3."),
            ("red", "http://203.0.113.8/", "Hello from internet! You came from 198.51.100.2."),
        ],
    ),
]
WORLD_TARGETS = ("host", "lan-pc", "router", "internet")
TIMEOUT = 60.0


def mark_rule(i: int) -> str:
    return f"-m comment --comment only-w{i} -j ACCEPT"


def _wait_for(paths: list[Path], timeout: float = TIMEOUT, procs: list | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        dead = [p for p in procs or [] if p.poll() is not None]
        if dead:
            raise AssertionError(f"a lab ended early: {dead[0].communicate()[0]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {[str(p) for p in paths]}")
        time.sleep(0.002)


def _sh(command: str) -> None:
    subprocess.run(command, shell=True, check=True, capture_output=True)


def worker(i: int, stage: str, count: int, pings: list, https: list, shared: str) -> None:
    """One lab in its own sandbox: mark, build, probe, write what it saw."""
    from labkit import Lab
    from labkit.kernel.observe import graph

    times = {"start": time.time()}
    box = Path(shared)
    _sh(f"ip netns add only-w{i}")
    _sh(f"ip link add mark{i} type bridge && ip addr add 10.77.{i}.1/24 dev mark{i}")
    _sh(f"iptables -A INPUT -s 10.77.{i}.0/24 {mark_rule(i)}")
    (box / f"inside-{i}").touch()
    _wait_for([box / f"inside-{j}" for j in range(len(LABS))])
    lab = Lab(count)
    times["build_start"] = time.time()
    lab.goto(stage)
    times["build_end"] = time.time()
    (box / f"built-{i}").touch()
    _wait_for([box / "go"])
    times["probe_start"] = time.time()
    reach = lab.reachability()
    ping = [[src, dst, lab.ping(src, dst, count=2).ok] for src, dst in pings]
    http = [[src, url, lab.http(src, url).body.strip()] for src, url, _ in https]
    times["probe_end"] = time.time()
    g = graph()
    seen = {
        "i": i,
        "netns_inode": os.stat("/proc/self/ns/net").st_ino,
        "pidns_inode": os.stat("/proc/self/ns/pid").st_ino,
        "netns": sorted(
            line.split()[0]
            for line in subprocess.run(
                ["ip", "netns", "list"], capture_output=True, text=True
            ).stdout.splitlines()
        ),
        "addrs": sorted(
            [d["ns"], d["name"], a]
            for _, d in g.nodes(data=True)
            if d["kind"] == "iface" and d["type"] != "loopback"
            for a in d["addrs"]
        ),
        "rules": sorted(
            [d["name"], r["table"], r["chain"], r["spec"]]
            for _, d in g.nodes(data=True)
            if d["kind"] == "netns"
            for r in d["rules"]
        ),
        "services": sorted(
            [d["name"], port]
            for _, d in g.nodes(data=True)
            if d["kind"] == "netns"
            for port in d["services"]
        ),
        "reach": reach.table,
        "ping": ping,
        "http": http,
    }
    times["end"] = time.time()
    seen["times"] = times
    (box / f"seen-{i}.json").write_text(json.dumps(seen))


def expected(i: int, stage: str, count: int) -> dict:
    """What worker ``i`` must see: its stage, built clean, and its own marks."""
    want = desired(stage, count)
    return {
        "netns": sorted(want.namespaces | {f"only-w{i}"}),
        "addrs": sorted(
            [[iface.ns, iface.name, a] for iface in want.ifaces.values() for a in iface.addrs]
            + [[HOST, f"mark{i}", f"10.77.{i}.1/24"]]
        ),
        "rules": sorted(
            [[r.ns, r.table, r.chain, r.spec] for r in want.rules]
            + [[HOST, "filter", "INPUT", f"-s 10.77.{i}.0/24 {mark_rule(i)}"]]
        ),
        "services": sorted([s.ns, s.port] for s in want.services),
    }


def machine_netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def test_four_labs_at_once_see_only_themselves(tmp_path):
    procs = []
    for i, (stage, count, pings, https) in enumerate(LABS):
        code = (
            f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
            "from labkit.world import run_in_lab\n"
            "import test_concurrent as t\n"
            f"run_in_lab(t.worker, {i}, {stage!r}, {count}, {pings!r}, {https!r}, "
            f"{str(tmp_path)!r})\n"
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:
        _wait_for([tmp_path / f"built-{i}" for i in range(len(LABS))], procs=procs)
        # All 4 labs are built and waiting: the machine has none of it.
        leaked = {n for n in machine_netns() if n.startswith("only-w") or n in ("red", "blue")}
        assert not leaked, leaked
        links = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        assert "10.77." not in links and "v-net-0" not in links and "192.168.15." not in links
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert "only-w" not in rules and "192.168.15.0/24" not in rules
        (tmp_path / "go").touch()
        outputs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
    finally:
        (tmp_path / "go").touch()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out
    seen = [json.loads((tmp_path / f"seen-{i}.json").read_text()) for i in range(len(LABS))]

    # Four different sandboxes.
    assert len({s["netns_inode"] for s in seen}) == len({s["pidns_inode"] for s in seen}) == 4
    for s, (stage, count, _, https) in zip(seen, LABS, strict=True):
        i = s["i"]
        want = expected(i, stage, count)
        others = [f"only-w{j}" for j in range(len(LABS)) if j != i]
        others += [f"10.77.{j}." for j in range(len(LABS)) if j != i]
        assert not [o for o in others if o in json.dumps(s)], f"lab {i} saw another lab"
        for key in ("netns", "addrs", "rules", "services"):
            assert s[key] == want[key], f"lab {i} ({stage}, {count}): {key}"
        # Every probe gave its stage's answer.
        assert all(ok for *_, ok in s["ping"]), s["ping"]
        assert [body for *_, body in s["http"]] == [body for *_, body in https], s["http"]
        lab_ns = [name for name, _ in namespaces(count)]
        assert sorted(s["reach"]) == sorted([*lab_ns, *WORLD_TARGETS])
        for src in lab_ns:
            row = s["reach"][src]
            assert all(row[dst] for dst in lab_ns if dst != src), (i, src, row)
            # Beyond the bridge only from the nat stage on: isolation, not luck.
            beyond = stage in ("internet", "portforward")
            assert [row[t] for t in WORLD_TARGETS] == [beyond] * 4, (i, src, row)

    # They really ran at the same time: the lives and the probes overlap, the
    # builds started together (within a few milliseconds, by the barrier).
    times = [s["times"] for s in seen]
    for phase in ("", "probe_"):
        start, end = f"{phase}start", f"{phase}end"
        assert max(t[start] for t in times) < min(t[end] for t in times), (phase, times)
    assert max(t["build_start"] for t in times) - min(t["build_start"] for t in times) < 0.5
