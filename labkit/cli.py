"""The ``labkit`` command line.

``labkit shell`` and ``labkit run -- CMD`` start a fresh sandbox (see
:mod:`labkit.kernel.sandbox`); inside it, ``labkit up STAGE``, ``down``, ``reset``,
``status``, ``graph`` and ``ping`` build and inspect the course's
topology, and ``capture NODE -w FILE -- CMD`` records what NODE's
interfaces see while CMD runs. ``plan``, ``stages`` and ``doctor`` work
anywhere: they change nothing.

The module is larger because it holds every subcommand's parser and help
text, so that ``labkit --help`` and this file say the same.

Every error labkit raises on purpose ends as one line,
``labkit: error: MESSAGE``, and exit status 1; usage errors exit 2 and
Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence

import networkx as nx

from labkit import shell
from labkit.core import stages
from labkit.core.model import HOST
from labkit.errors import LabkitError
from labkit.kernel import preflight
from labkit.lab import Lab
from labkit.version import __version__

PROG = shell.PROG

_Handler = Callable[[argparse.Namespace], int]


# -- helpers ------------------------------------------------------------------


def _require_inside(command: str, example: str) -> None:
    # Outside a sandbox: where none can start, the paragraph says why and how to fix it.
    preflight.require(
        f"`labkit {command}` works only inside a labkit sandbox, and this is not one: "
        f"start one with `labkit shell`, or run `labkit run -- labkit {example}`"
    )


def _print_commands(args: argparse.Namespace, commands: list[str], nothing: str) -> None:
    if not commands:
        shell.say(args, nothing)
    for command in commands:
        shell.say(args, f"+ {command}")


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(namespaces=getattr(args, "namespaces", None))


# -- subcommands --------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    shell.enter()
    return shell.exec_argv(args.cmd)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from labkit import doctor

    findings = doctor.findings()
    if args.quiet:
        findings = [f for f in findings if not f.ok]
    if findings:
        print(doctor.report(findings))
    return 0 if doctor.can_run(findings) else 1


def _cmd_up(args: argparse.Namespace) -> int:
    lab = _lab(args)
    if args.stage != "reset":
        stages.find(args.stage, lab.count)  # a bad name is an error outside too
    _require_inside("up", f"up {args.stage}")
    commands = lab.goto(args.stage, progress=True)  # a bar only on a terminal
    _print_commands(args, commands, f"already at {args.stage}")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    _require_inside("down", "down")
    lab = _lab(args)
    commands = lab.down()
    _print_commands(args, commands, "nothing to undo: the lab is empty")
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    _require_inside("reset", "reset")
    commands = _lab(args).reset(progress=True)
    _print_commands(args, commands, "nothing to reset: the lab is empty")
    return 0


def _ns_order(name: str) -> tuple[int, int, str]:
    fixed = {HOST: 0, "red": 1, "blue": 2}
    if name in fixed:
        return (fixed[name], 0, name)
    m = stages.EXTRA_RE.fullmatch(name)
    return (3, int(m.group(1)), name) if m else (4, 0, name)


def _if_state(d: dict[str, object]) -> str:
    if not d.get("up"):
        return "down"
    return "up" if d.get("oper") in ("UP", "UNKNOWN") else "up, no carrier"


def status_lines(graph: nx.Graph, stage: str | None) -> list[str]:
    """The text of ``labkit status``: the stage, then each namespace's interfaces.

    Parameters
    ----------
    graph
        A graph from :func:`labkit.kernel.observe.to_graph`.
    stage
        What :meth:`labkit.Lab.stage` says (``None``: matches no step).

    Examples
    --------
    >>> from labkit.kernel.observe import Snapshot, to_graph
    >>> links = {"host": [{"index": 1, "name": "lo", "kind": "loopback", "peer_index": None,
    ...                    "peer_nsid": None, "master": None, "up": True, "oper": "UNKNOWN",
    ...                    "mac": ""}]}
    >>> g = to_graph(Snapshot(links=links, addrs={"host": [{"index": 1, "cidr": "127.0.0.1/8"}]}))
    >>> print("\\n".join(status_lines(g, "reset")))
    stage: reset (nothing built yet)
    host (the sandbox itself)
      lo  loopback  up  127.0.0.1/8
    """
    if stage is None:
        head = "stage: none (this matches no step: changed by hand?)"
    elif stage == "reset":
        head = "stage: reset (nothing built yet)"
    else:
        head = f"stage: {stage}"
    lines = [head]
    names = [d["name"] for _, d in graph.nodes(data=True) if d.get("kind") == "netns"]
    for ns in sorted(names, key=_ns_order):
        lines.append(f"{ns} (the sandbox itself)" if ns == HOST else ns)
        rows = []
        ifaces = [
            (node, d)
            for node, d in graph.nodes(data=True)
            if d.get("kind") == "iface" and d.get("ns") == ns
        ]
        ifaces.sort(key=lambda item: (item[1]["type"] != "loopback", item[1]["name"]))
        for node, d in ifaces:
            extra = []
            if d.get("master"):
                extra.append(f"port of {d['master']}")
            for other in graph.neighbors(node):
                if graph.edges[node, other].get("kind") == "veth":
                    o = graph.nodes[other]
                    extra.append(f"cable to {o['ns']}/{o['name']}")
            rows.append(
                [
                    d["name"],
                    d["type"],
                    _if_state(d),
                    " ".join(d.get("addrs") or []) or "-",
                    ", ".join(extra),
                ]
            )
        if not rows:
            lines.append("  (no interfaces)")
            continue
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            cells = [r[i].ljust(widths[i]) for i in range(4)] + [r[4]]
            lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def _cmd_status(args: argparse.Namespace) -> int:
    _require_inside("status", "status")
    lab = _lab(args)
    stage = lab.stage()
    print("\n".join(status_lines(lab.observe(), stage)))
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    print(_lab(args).plan(args.stage))
    return 0


def _cmd_stages(args: argparse.Namespace) -> int:
    count = 2 if args.namespaces is None else args.namespaces  # -n 0 is an error, not 2
    all_stages = stages.course(count)[1:]  # the world is there from the start
    steps = [s for st in all_stages for s in st.steps if s.commands]
    width = max(len(s.id) for s in steps) + 2
    for st in all_stages:
        print(f"{st.name:<{width}}{st.title}")
        for s in st.steps:
            if s.commands:
                print(f"  {s.id:<{width}}{s.title}")
    print(
        f"{'reset':<{width}}Back to a fresh sandbox: only the outside world (LAN, router, internet)"
    )
    return 0


def _cmd_graph(args: argparse.Namespace) -> int:
    _require_inside("graph", f"graph -o {args.output}")
    try:
        from labkit import draw
    except ImportError as err:
        raise LabkitError(f"drawing needs labkit.draw and matplotlib: {err}") from None
    graph = _lab(args).observe()
    try:
        draw.save(graph, args.output)
    except OSError as err:
        raise LabkitError(f"cannot write {args.output}: {err.strerror or err}") from None
    shell.say(args, f"wrote {args.output}")
    return 0


def _cmd_ping(args: argparse.Namespace) -> int:
    _require_inside("ping", f"ping {args.src} {args.dst}")
    result = _lab(args).ping(args.src, args.dst, count=args.count, timeout=args.timeout)
    shell.say(args, str(result))
    return 0 if result.ok else 1


def _cmd_why(args: argparse.Namespace) -> int:
    from labkit import why

    _require_inside("why", f"why {args.src} {args.dst}")
    host, colon, port = args.dst.partition(":")
    if colon and not (port.isascii() and port.isdigit()):  # not '', '²' or '٣'
        args.parser.error(f"{args.dst!r}: the port after ':' must be a number, like 10.0.0.1:80")
    result = why.why(args.src, host, int(port) if port else None, confirm=not args.no_check)
    shell.say(args, str(result))
    return 0 if result.ok else 1


def _cmd_exec(args: argparse.Namespace) -> int:
    _require_inside("exec", f"exec {args.node} -- CMD")
    if args.cmd[:1] == ["--"]:
        args.cmd = args.cmd[1:]
    if not args.cmd or not args.cmd[0]:
        args.parser.error("exec needs a command: labkit exec NODE -- CMD [ARG...]")
    argv = _lab(args).argv_in(args.node) + args.cmd
    return shell.exec_argv(argv)


def _cmd_http(args: argparse.Namespace) -> int:
    _require_inside("http", f"http {args.src} {args.url}")
    result = _lab(args).http(args.src, args.url, timeout=args.timeout)
    print(str(result))
    return 0 if result.ok else 1


def _cmd_reach(args: argparse.Namespace) -> int:
    _require_inside("reach", "reach")
    print(_lab(args).reachability())
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    _require_inside("publish", f"publish {args.host_port} {args.ns}")
    for command in _lab(args).publish(args.host_port, args.ns, args.port):
        shell.say(args, f"+ {command}")
    return 0


_CAPTURE_USAGE = "labkit capture [-h] [-q] NODE[:IFACE] -w FILE [-c COUNT] -- CMD [ARG...]"


def _capture_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-w", "--write", metavar="FILE", help="FILE.pcapng (names kept) or FILE.pcap")
    p.add_argument("-c", "--count", type=int, help="keep only the first COUNT packets")


def _capture_words(args: argparse.Namespace) -> tuple[str, str | None, list[str]]:
    # argparse hands all from NODE on to one REMAINDER: the options before -- are parsed here
    words = list(args.words)
    if "--" not in words:
        args.parser.error("capture needs -- and a command: labkit capture NODE -w FILE -- CMD")
    inner = argparse.ArgumentParser(prog="labkit capture", usage=_CAPTURE_USAGE, add_help=False)
    inner.add_argument("target")
    inner.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    _capture_options(inner)
    inner.parse_args(words[: words.index("--")], namespace=args)
    cmd = words[words.index("--") + 1 :]
    if args.write is None or not cmd or not cmd[0]:
        args.parser.error("capture needs -w FILE and a command: labkit capture NODE -w FILE -- CMD")
    node, colon, iface = args.target.replace("/", ":", 1).partition(":")
    if colon and not iface:
        args.parser.error(f"{args.target!r}: after ':' comes an interface of NODE, like host:eth0")
    return node, iface or None, cmd


def _cmd_capture(args: argparse.Namespace) -> int:
    from labkit import capture

    node, iface, cmd = _capture_words(args)  # usage errors and --help work anywhere
    _require_inside("capture", f"capture {args.target} -w {args.write} -- {shlex.join(cmd)}")
    cap = capture.start(node, iface, path=args.write, count=args.count)
    try:
        status = capture.run(cmd, cap)
    except OSError as err:
        why = "command not found" if isinstance(err, FileNotFoundError) else err.strerror
        print(f"{PROG}: error: {cmd[0]}: {why} (nothing was written)", file=sys.stderr)
        return 127 if isinstance(err, FileNotFoundError) else 126
    shell.say(args, f"{PROG}: {cap.summary(args.write)}", err=True)
    return status


# -- the parser -----------------------------------------------------------------


def _quiet_parent() -> argparse.ArgumentParser:
    """-q/--quiet, also accepted after the subcommand."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print only results and errors",
    )
    return parent


def _namespaces_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-n",
        "--namespaces",
        type=int,
        metavar="N",
        default=None,
        help="how many namespaces join the bridge (at least 2: red, blue, then ns10, "
        "ns11, ...); default: what the sandbox has, or 2",
    )


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0 (not -1, 0, nan or inf).

    Examples
    --------
    >>> _seconds("0.5")
    0.5
    >>> _seconds("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: '-1' is not a number of seconds above 0, like 1 or 0.5
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds above 0, like 1 or 0.5"
        )
    return value


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``labkit`` command, with every subcommand.

    Examples
    --------
    >>> args = build_parser().parse_args(["up", "bridge:fix", "-n", "3"])
    >>> args.command, args.stage, args.namespaces
    ('up', 'bridge:fix', 3)
    """
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="labkit: learn Linux network namespaces by building them, for real, "
        "in a sandbox that never touches this machine's network.",
        epilog=_examples(
            "labkit doctor            # can labkit run here?",
            "labkit shell             # a shell in a fresh sandbox",
            "labkit up veth           # (in the sandbox) build a stage",
            "labkit run -- sh -c 'labkit up bridge && labkit ping red 192.168.15.2'",
        )
        + "\n\nRun `labkit COMMAND --help` for the details of a command.",
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"labkit {__version__}")
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=False, help="print only results and errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    quiet = [_quiet_parent()]

    def add(
        name: str, handler: _Handler, help_: str, description: str, epilog: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_,
            description=description,
            epilog=epilog,
            formatter_class=fmt,
            parents=quiet,
        )
        p.set_defaults(handler=handler, parser=p)
        return p

    p = add(
        "shell",
        shell.command,
        "an interactive shell in a fresh sandbox, or in a running lab",
        "Start an interactive shell ($SHELL, or bash) in a fresh sandbox: a private host "
        "with its own network, where `ip netns`, `sudo ip ...` and `labkit up STAGE` work "
        "and change nothing outside. `exit` ends the sandbox and everything in it. "
        "With --join, the shell joins a running lab instead (a notebook's, for example): "
        "it sees and changes that lab, and ends with it. JupyterLab's terminals run "
        "`labkit shell --auto`.",
        _examples(
            "labkit shell",
            "(labkit) root@host:~# labkit up veth",
            "labkit shell --list       # the running labs",
            "labkit shell --join 4242  # a shell in lab 4242",
        ),
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--list", action="store_true", help="list the running labs (id, notebook, stage, age)"
    )
    how.add_argument("--join", metavar="ID", help="join the running lab ID (see --list)")
    how.add_argument(
        "--auto",
        action="store_true",
        help="join the most recently started notebook's lab, or start a fresh sandbox",
    )
    p = add(
        "run",
        _cmd_run,
        "run a command in a fresh sandbox",
        "Run CMD in a fresh sandbox and exit with its exit status. The sandbox and "
        "everything in it end when CMD does.",
        _examples(
            "labkit run -- ip netns list",
            "labkit run -- sh -c 'sudo ip netns add red && ip netns'",
            "labkit run -- sh -c 'labkit up veth && ip netns exec red ping -c1 192.168.15.2'",
        ),
    )
    p.usage = "labkit run [-h] [-q] -- CMD [ARG...]"
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command and its arguments")
    add(
        "doctor",
        _cmd_doctor,
        "check whether labkit can run here",
        "Check this machine (read-only): root or not, whether a sandbox can start, user "
        "namespaces, the tools the course uses, iptables and kernel modules. Each problem "
        "comes with its fix. Exits 0 when a sandbox can start, 1 otherwise.",
        _examples("labkit doctor", "labkit doctor -q    # only what is not ok"),
    )
    p = add(
        "up",
        _cmd_up,
        "build a stage (in a sandbox)",
        "Bring the lab to STAGE (or STAGE:STEP), from whatever state it is in, forward "
        "or backward, and print the shell commands that equal the changes (`+ ...`). "
        "Works only inside a sandbox. `labkit stages` lists the stages.",
        _examples("labkit up veth", "labkit up bridge:as-written", "labkit up bridge -n 4"),
    )
    p.add_argument("stage", metavar="STAGE", help="a stage, or STAGE:STEP, or 'reset'")
    _namespaces_arg(p)
    add(
        "down",
        _cmd_down,
        "go back one stage (in a sandbox)",
        "Go back one stage (from the first stage, to an empty lab) and print the shell "
        "commands that equal the changes. Works only inside a sandbox.",
        _examples("labkit down"),
    )
    add(
        "reset",
        _cmd_reset,
        "remove the lab, keep the outside world (in a sandbox)",
        "Remove every namespace, link, address, route, firewall rule and web app of the "
        "sandbox that is not the outside world's, hand-made ones included, ending the "
        "processes in removed namespaces; lan-pc, router, internet and the host's eth0 "
        "stay, and the world is repaired. Works only inside a sandbox.",
        _examples("labkit reset"),
    )
    add(
        "status",
        _cmd_status,
        "show the stage and the interfaces (in a sandbox)",
        "Show which stage the lab is at, then each namespace with its interfaces: type, "
        "state, addresses, bridge and cable. Works only inside a sandbox.",
        _examples("labkit status"),
    )
    p = add(
        "plan",
        _cmd_plan,
        "show the shell commands of a stage",
        "Show the steps of STAGE and the exact shell commands they equal. Changes "
        "nothing, so it works anywhere.",
        _examples("labkit plan bridge", "labkit plan bridge -n 4"),
    )
    p.add_argument("stage", metavar="STAGE", help="a stage (or STAGE:STEP: its whole stage)")
    _namespaces_arg(p)
    p = add(
        "stages",
        _cmd_stages,
        "list the stages and their steps",
        "List the stages of the course and their steps, with what each builds. Any "
        "STAGE or STAGE:STEP shown works with `labkit up`. Works anywhere.",
        _examples("labkit stages", "labkit stages -n 4"),
    )
    _namespaces_arg(p)
    p = add(
        "graph",
        _cmd_graph,
        "draw the lab as a PNG (in a sandbox)",
        "Draw the live lab (namespaces, cables, bridge, addresses) and write a PNG. "
        "Works only inside a sandbox; the file is written to the normal file system.",
        _examples("labkit graph -o lab.png"),
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE.png", help="where to write")
    p = add(
        "why",
        _cmd_why,
        "why a packet does (not) arrive (in a sandbox)",
        "Follow a packet from node SRC to DST (an address, optionally :PORT for TCP) through "
        "the live kernel: routes, cables, bridges, forwarding, firewall, NAT, a listening "
        "socket, and the way back. Prints the root cause of what stops it and the commands "
        "that fix it, in order, then sends a real packet to check. Exits 0 when the path "
        "is fine.",
        _examples(
            "labkit why red 203.0.113.8",
            "labkit why lan-pc 192.168.1.2:80",
            "labkit why host 192.168.15.1 --no-check",
        ),
    )
    p.add_argument("src", metavar="SRC", help="a namespace, 'host' or a world machine")
    p.add_argument("dst", metavar="DST[:PORT]", help="an IPv4 address, with a TCP port or not")
    p.add_argument("--no-check", action="store_true", help="do not send a real packet to check")
    p = add(
        "ping",
        _cmd_ping,
        "ping from a namespace (in a sandbox)",
        "Ping DST from namespace SRC ('host' for the sandbox itself). Exits 0 when every "
        "reply came back, 1 otherwise. Works only inside a sandbox.",
        _examples("labkit ping red 192.168.15.2", "labkit ping host 192.168.15.1 -c 1"),
    )
    p.add_argument("src", metavar="SRC", help="a namespace, or 'host'")
    p.add_argument("dst", metavar="DST", help="an IP address")
    p.add_argument("-c", "--count", type=int, default=3, help="packets to send (default 3)")
    p.add_argument(
        "-W", "--timeout", type=_seconds, default=1.0, help="seconds to wait for each reply"
    )
    p = add(
        "exec",
        _cmd_exec,
        "run a command on a machine of the lab (in a sandbox)",
        "Run CMD on NODE: a lab namespace (red, blue, ...), 'host', or a machine of the "
        "outside world: 'lan-pc' (192.168.1.3), 'router' (192.168.1.1) or 'internet' "
        "(the server 203.0.113.8). Exits with CMD's status. Works only inside a sandbox.",
        _examples(
            "labkit exec lan-pc -- curl -s http://192.168.1.2/",
            "labkit exec router -- iptables -t nat -S",
        ),
    )
    p.usage = "labkit exec [-h] [-q] NODE -- CMD [ARG...]"
    p.add_argument("node", metavar="NODE", help="a namespace, 'host', lan-pc, router, internet")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command and its arguments")
    p = add(
        "http",
        _cmd_http,
        "HTTP GET from a machine of the lab (in a sandbox)",
        "GET URL from SRC with curl and print the status and the answer. Exits 0 on a 2xx "
        "answer, 1 otherwise. Works only inside a sandbox.",
        _examples("labkit http lan-pc http://192.168.1.2/", "labkit http red http://203.0.113.8/"),
    )
    p.add_argument("src", metavar="SRC", help="a namespace, 'host', or a world machine")
    p.add_argument("url", metavar="URL", help="an http:// URL")
    p.add_argument("-m", "--timeout", type=_seconds, default=3.0, help="seconds to wait")
    add(
        "reach",
        _cmd_reach,
        "who reaches whom, by ping (in a sandbox)",
        "Ping every machine of the lab from every other, all at once, and print the "
        "table. Works only inside a sandbox.",
        _examples("labkit reach"),
    )
    p = add(
        "publish",
        _cmd_publish,
        "forward a host port to a web app in a namespace (in a sandbox)",
        "Start labkit's web app in NS (on --port, default 80) and forward the host's "
        "HOST_PORT to it (DNAT from the LAN, the bridge and the host itself). Needs the "
        "nat stage or later. The next `labkit up` removes it. Works only inside a sandbox.",
        _examples("labkit publish 8080 red", "labkit publish 8081 ns10 --port 8000"),
    )
    p.add_argument("host_port", metavar="HOST_PORT", type=int, help="the port on 192.168.1.2")
    p.add_argument("ns", metavar="NS", help="a lab namespace")
    p.add_argument("--port", type=int, default=80, help="the app's port in NS (default 80)")
    p = add(
        "capture",
        _cmd_capture,
        "capture packets while a command runs, for Wireshark (in a sandbox)",
        "Capture what NODE's interfaces (or IFACE only) see while CMD runs, and write FILE "
        "for Wireshark or `tcpdump -r`: .pcapng names each interface NODE/IFACE and keeps "
        "each packet's direction, .pcap keeps only packets and times. NODE is a namespace or "
        "'host'. CMD runs in the sandbox's host, like a command typed in `labkit shell` (in a "
        "namespace: `ip netns exec NS CMD`). Stops when CMD ends, says on stderr how many "
        "packets each interface saw, and exits with CMD's status. Works only inside a sandbox.",
        _examples(
            "labkit capture host -w web.pcapng -- ip netns exec lan-pc curl -s http://192.168.1.2/",
            "labkit capture blue:veth-blue -w ping.pcap -c 10 -- labkit ping red 192.168.15.2",
        ),
    )
    p.usage = _CAPTURE_USAGE
    _capture_options(p)
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="NODE[:IFACE] -- CMD [ARG...]")
    return parser


def _one_line(err: BaseException) -> str:
    return re.sub(r"\s*\n\s*", " ", str(err)).strip() or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``labkit`` command line; return the exit status.

    Parameters
    ----------
    argv
        The arguments (without the program name); ``None`` means
        ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 1 on an error labkit reports, 2 on a usage error,
        130 after Ctrl-C; ``run`` and ``shell`` pass their command's status
        through.

    Examples
    --------
    >>> main(["plan", "netns"])
    # netns: Two network namespaces, red and blue
    ## Create the namespaces
    ip netns add red
    ip netns add blue
    0
    >>> main(["up", "veth"])  # doctest: +SKIP
    labkit: error: `labkit up` works only inside a labkit sandbox, ...
    1
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command == "run":
        if args.cmd[:1] == ["--"]:
            args.cmd = args.cmd[1:]
        if not args.cmd:
            try:
                args.parser.error("a command is required: labkit run -- CMD [ARG...]")
            except SystemExit as exit_:
                return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return args.handler(args)
    except LabkitError as err:
        print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
