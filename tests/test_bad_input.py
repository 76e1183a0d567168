"""Bad input, through the Python API and the CLI: a clear error, and nothing changed.

Each case runs in a fresh sandbox with a stage built (so there is state to
lose), records the lab's state, the namespace list, the host's links, its
iptables rules and the web apps, makes one bad call, and checks:

* the API raises the specific error class and its message says what to do
  (an example, or the allowed values);
* the CLI exits 1 with exactly one line ``labkit: error: ...`` (or 2 with
  argparse's usage and one error line), no traceback, nothing on stdout;
* everything recorded is the same afterwards.

A case marked ``xfail(strict=True)`` is a bug in a module this test does not
own; the reason says what is wrong. When it is fixed the case passes, and
strict makes that an error until the mark is removed.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from labkit import ConfigError, Lab, LabkitError, why
from labkit.core.names import check_ifname, check_netns_name

#: what the hints in the messages look like
NAME_HINT = "use letters, digits"
MISSING_HINT = "the namespaces are"
IP_HINT = "like 192.168.15.2"
PORT_HINT = "from 1 to 65535"
URL_HINT = "like http://203.0.113.8/"
STAGES_HINT = "the stages are netns, veth, bridge, host, nat, internet, portforward"
NODES_HINT = "the nodes are"


def run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def machine() -> dict[str, Any]:
    """What a bad call must not change: the lab, namespaces, host links, rules, apps."""
    links = json.loads(run(["ip", "-j", "-d", "link"]).stdout)
    iptables = run(["iptables-save"]).stdout
    return {
        "state": Lab().state(),
        "netns": sorted(
            line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines()
        ),
        "links": sorted(
            (
                link["ifname"],
                link.get("master"),
                "UP" in link["flags"],
                link.get("linkinfo", {}).get("info_kind"),
                link.get("address"),
            )
            for link in links
        ),
        # no comments (dates) and no counters
        "iptables": [
            re.sub(r" \[\d+:\d+\]$", "", line)
            for line in iptables.splitlines()
            if not line.startswith("#")
        ],
        "apps": sorted(run(["pgrep", "-af", "labkit.webapp"]).stdout.splitlines()),
    }


# -- the Python API -------------------------------------------------------------------


@dataclass(frozen=True)
class Api:
    call: Callable[[Lab], object]
    error: type[Exception]
    hints: tuple[str, ...]
    stage: str


def api(
    name: str,
    call: Callable[[Lab], object],
    *hints: str,
    error: type[Exception] = ConfigError,
    stage: str = "portforward",
    bug: str = "",
) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
    return pytest.param(Api(call, error, hints, stage), id=name, marks=marks)


API_CASES = [
    # -- names of namespaces and nodes
    api("ping from ''", lambda lab: lab.ping("", "192.168.15.2"), NAME_HINT),
    api("ping from None", lambda lab: lab.ping(None, "192.168.15.2"), NAME_HINT),
    api("ping from ../etc", lambda lab: lab.ping("../etc", "192.168.15.2"), NAME_HINT),
    api("ping from 'red blue'", lambda lab: lab.ping("red blue", "1.2.3.4"), NAME_HINT),
    api("ping from unicode", lambda lab: lab.ping("rëd", "192.168.15.2"), NAME_HINT),
    api("ping from -n", lambda lab: lab.ping("-n", "192.168.15.2"), NAME_HINT),
    api("ping from 65 chars", lambda lab: lab.ping("r" * 65, "1.2.3.4"), "at most 64"),
    api("ping from missing", lambda lab: lab.ping("green", "1.2.3.4"), MISSING_HINT),
    api("routes of an int", lambda lab: lab.routes(7), NAME_HINT),
    api("neighbours of ''", lambda lab: lab.neighbours(""), NAME_HINT),
    api("neighbours missing", lambda lab: lab.neighbours("ns10"), MISSING_HINT),
    api("nat_counters of a/b", lambda lab: lab.nat_counters("a/b"), NAME_HINT),
    api("check_netns_name tab", lambda lab: check_netns_name("red\t"), NAME_HINT),
    # -- interface names (the kernel's limit is 15 characters)
    api("ifname 16 chars", lambda lab: check_ifname("veth-0123456789a"), "at most 15"),
    api("ifname ''", lambda lab: check_ifname(""), NAME_HINT),
    api("ifname with space", lambda lab: check_ifname("eth 0"), NAME_HINT),
    api("ifname ../x", lambda lab: check_ifname("../x"), NAME_HINT),
    api("ifname None", lambda lab: check_ifname(None), NAME_HINT),
    # -- addresses and prefixes
    api("ping 300.1.1.1", lambda lab: lab.ping("red", "300.1.1.1"), IP_HINT),
    api("ping notanip", lambda lab: lab.ping("red", "notanip"), IP_HINT),
    api("ping ''", lambda lab: lab.ping("red", ""), IP_HINT),
    api("ping None", lambda lab: lab.ping("red", None), IP_HINT),
    api("ping /33", lambda lab: lab.ping("red", "192.168.15.2/33"), IP_HINT),
    api("ping /24", lambda lab: lab.ping("red", "192.168.15.0/24"), IP_HINT),
    # -- counts and timeouts
    api("ping count 0", lambda lab: lab.ping("red", "192.168.15.2", count=0), "1 and 100"),
    api("ping count 101", lambda lab: lab.ping("red", "1.2.3.4", count=101), "1 and 100"),
    api(
        "ping count True",
        lambda lab: lab.ping("red", "192.168.15.2", count=True),
        "1 and 100",
    ),
    api(
        "ping count '3'",
        lambda lab: lab.ping("red", "192.168.15.2", count="3"),
        "1 and 100",
    ),
    api(
        "ping timeout -1",
        lambda lab: lab.ping("red", "192.168.15.2", count=1, timeout=-1),
        "seconds",
    ),
    api("Lab(1015)", lambda lab: Lab(namespaces=1015), "at most 1014"),
    api("Lab(1)", lambda lab: Lab(namespaces=1), "at least 2"),
    api("Lab(0)", lambda lab: Lab(namespaces=0), "at least 2"),
    api("Lab(-3)", lambda lab: Lab(namespaces=-3), "at least 2"),
    api("Lab(10**30)", lambda lab: Lab(namespaces=10**30), "at most 1014"),
    api("Lab(True)", lambda lab: Lab(namespaces=True), "whole number"),
    api("Lab('3')", lambda lab: Lab(namespaces="3"), "whole number"),
    api("Lab(2.5)", lambda lab: Lab(namespaces=2.5), "whole number"),
    # -- stages and steps
    api("goto nosuchstage", lambda lab: lab.goto("nosuchstage"), STAGES_HINT),
    api("goto reset:foo", lambda lab: lab.goto("reset:foo"), STAGES_HINT),
    api("goto veth:nope", lambda lab: lab.goto("veth:nope"), "its steps are cable"),
    api("goto ''", lambda lab: lab.goto(""), STAGES_HINT),
    api("goto ':'", lambda lab: lab.goto(":"), STAGES_HINT),
    api("goto VETH", lambda lab: lab.goto("VETH"), STAGES_HINT),
    api("goto None", lambda lab: lab.goto(None), "named by a string"),
    api("goto a list", lambda lab: lab.goto(["veth"]), "named by a string"),
    api("plan veth:nope", lambda lab: lab.plan("veth:nope"), "its steps are"),
    api("steps nosuch", lambda lab: lab.steps("nosuch"), STAGES_HINT),
    api("check nosuch", lambda lab: lab.check("nosuch"), STAGES_HINT),
    # -- commands
    api("exec []", lambda lab: lab.exec("red", []), "non-empty list of strings"),
    api("exec None", lambda lab: lab.exec("red", None), "non-empty list of strings"),
    api("exec [ip, 1]", lambda lab: lab.exec("red", ["ip", 1]), "list of strings"),
    api("exec in missing", lambda lab: lab.exec("nosuchns", ["true"]), MISSING_HINT),
    api(
        "exec a string",
        lambda lab: lab.exec("red", "ip addr"),
        "list of strings",
    ),
    api(
        "exec ['']",
        lambda lab: lab.exec("red", [""]),
        "list of strings",
    ),
    # -- URLs
    api("http ftp://x", lambda lab: lab.http("red", "ftp://x"), URL_HINT),
    api("http 'http://x y'", lambda lab: lab.http("red", "http://x y"), URL_HINT),
    api("http ''", lambda lab: lab.http("red", ""), URL_HINT),
    api("http None", lambda lab: lab.http("red", None), URL_HINT),
    api("http http://", lambda lab: lab.http("red", "http://"), URL_HINT),
    api("http javascript:", lambda lab: lab.http("red", "javascript:1"), URL_HINT),
    api("http from missing", lambda lab: lab.http("ns10", "http://1.2.3.4/"), MISSING_HINT),
    api(
        "http newline",
        lambda lab: lab.http("red", "http://192.168.15.2/\n", timeout=1),
        URL_HINT,
    ),
    api(
        "http timeout -1",
        lambda lab: lab.http("red", "http://192.168.15.2/", timeout=-1),
        "seconds",
    ),
    # -- ports and publishing
    api("publish port 0", lambda lab: lab.publish(0, "red"), PORT_HINT),
    api("publish port 65536", lambda lab: lab.publish(65536, "red"), PORT_HINT),
    api("publish port '80'", lambda lab: lab.publish("80", "red"), PORT_HINT),
    api("publish port True", lambda lab: lab.publish(True, "red"), PORT_HINT),
    api("publish port 8080.0", lambda lab: lab.publish(8080.0, "red"), PORT_HINT),
    api("publish app port 0", lambda lab: lab.publish(8080, "red", 0), PORT_HINT),
    api("publish taken port", lambda lab: lab.publish(80, "red"), "pick another port"),
    api("publish in host", lambda lab: lab.publish(8080, "host"), "lab namespace"),
    api("publish in lan-pc", lambda lab: lab.publish(8080, "lan-pc"), "lab namespace"),
    api("publish in missing", lambda lab: lab.publish(8080, "ns10"), MISSING_HINT),
    api(
        "publish too early",
        lambda lab: lab.publish(8080, "red"),
        "nat stage first",
        stage="bridge",
    ),
    # -- reachability
    api(
        "reach target notanip",
        lambda lab: lab.reachability(targets={"x": "notanip"}),
        IP_HINT,
    ),
    api(
        "reach target /33",
        lambda lab: lab.reachability(targets={"x": "192.168.15.2/33"}),
        IP_HINT,
    ),
    api(
        "reach target None",
        lambda lab: lab.reachability(targets={"x": None}),
        IP_HINT,
    ),
    api("reach node missing", lambda lab: lab.reachability(nodes=["ns10"]), MISSING_HINT),
    api("reach node None", lambda lab: lab.reachability(nodes=[None]), NAME_HINT),
    api(
        "reach nodes a string",
        lambda lab: lab.reachability(nodes="red"),
        "'red'",
    ),
    api(
        "reach targets a list",
        lambda lab: lab.reachability(targets=["192.168.15.2"]),
        IP_HINT,
    ),
    api(
        "reach target an int",
        lambda lab: lab.reachability(nodes=["red"], targets={"x": 5}),
        IP_HINT,
    ),
    # -- why
    api("why from missing", lambda lab: why.why("green", "192.168.15.2"), NODES_HINT),
    api("why from None", lambda lab: why.why(None, "192.168.15.2"), NODES_HINT),
    api("why to 300.1.1.1", lambda lab: why.why("red", "300.1.1.1"), IP_HINT),
    api("why to /24", lambda lab: why.why("red", "192.168.15.0/24"), IP_HINT),
    api("why to ''", lambda lab: why.why("red", ""), IP_HINT),
    api("why port 0", lambda lab: why.why("red", "192.168.15.2", 0), PORT_HINT),
    api("why port 65536", lambda lab: why.why("red", "192.168.15.2", 65536), PORT_HINT),
    api("why port '80'", lambda lab: why.why("red", "192.168.15.2", "80"), PORT_HINT),
    api("why port True", lambda lab: why.why("red", "192.168.15.2", True), PORT_HINT),
    api(
        "why to an int",
        lambda lab: why.why("red", 5),
        IP_HINT,
    ),
]  # fmt: skip


@pytest.mark.sandbox
@pytest.mark.parametrize("case", API_CASES)
def test_api_rejects_bad_input_and_changes_nothing(case: Api) -> None:
    lab = Lab()
    lab.goto(case.stage)
    before = machine()
    with pytest.raises(case.error) as info:
        case.call(lab)
    assert isinstance(info.value, LabkitError)  # so the CLI and notebooks catch it
    message = str(info.value)
    for hint in case.hints:
        assert hint in message, message
    assert machine() == before


# -- the CLI ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cli:
    argv: tuple[str, ...]
    status: int
    hints: tuple[str, ...]
    stage: str


def cli(
    argv: str | list[str], status: int, *hints: str, stage: str = "portforward", bug: str = ""
) -> Any:
    words = argv.split() if isinstance(argv, str) else argv
    marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
    return pytest.param(Cli(tuple(words), status, hints, stage), id=" ".join(words), marks=marks)


CLI_CASES = [
    # -- stages and counts
    cli("up nosuchstage", 1, STAGES_HINT),
    cli("up reset:foo", 1, STAGES_HINT),
    cli("up veth:nope", 1, "its steps are cable"),
    cli(["up", ""], 1, STAGES_HINT),
    cli("up bridge -n 0", 1, "at least 2"),
    cli("up bridge -n -5", 1, "at least 2"),
    cli("up bridge -n 1015", 1, "at most 1014"),
    cli("up bridge -n 99999999999999999999", 1, "at most 1014"),
    cli("up bridge -n x", 2, "invalid int value"),
    cli("up bridge -n 2.5", 2, "invalid int value"),
    cli("plan nosuch", 1, STAGES_HINT),
    cli("stages -n 0", 1, "at least 2"),
    cli("stages -n 1015", 1, "at most 1014"),
    # -- ping: names, addresses, counts
    cli("ping red notanip", 1, IP_HINT),
    cli("ping red 300.1.1.1", 1, IP_HINT),
    cli("ping red 192.168.15.2/33", 1, IP_HINT),
    cli("ping nosuchns 192.168.15.2", 1, MISSING_HINT),
    cli(["ping", "red blue", "192.168.15.2"], 1, NAME_HINT),
    cli("ping ../etc 192.168.15.2", 1, NAME_HINT),
    cli("ping réd 192.168.15.2", 1, NAME_HINT),
    cli("ping red 192.168.15.2 -c 0", 1, "1 and 100"),
    cli("ping red 192.168.15.2 -c x", 2, "invalid int value"),
    cli("ping red 192.168.15.2 -W -1", 2, "seconds above 0"),
    cli("ping red 192.168.15.2 -W nan", 2, "seconds above 0"),
    # -- exec: nodes and commands
    cli("exec nosuchns -- true", 1, MISSING_HINT),
    cli("exec ../etc -- true", 1, NAME_HINT),
    cli("exec red", 2, "exec needs a command"),
    cli("exec red --", 2, "exec needs a command"),
    cli(["exec", "red", "--", ""], 2, "exec needs a command"),
    # -- http: URLs and timeouts
    cli("http red ftp://x", 1, URL_HINT),
    cli(["http", "red", "http://x y"], 1, URL_HINT),
    cli(["http", "red", ""], 1, URL_HINT),
    cli("http nosuchns http://192.168.15.2/", 1, MISSING_HINT),
    cli("http red http://192.168.15.2/ -m -1", 2, "seconds above 0"),
    cli("http red http://192.168.15.2/ -m 0", 2, "seconds above 0"),
    # -- why: nodes, addresses, ports
    cli("why red 1.2.3.4:x", 2, "like 10.0.0.1:80"),
    cli("why red 1.2.3.4:", 2, "like 10.0.0.1:80"),
    cli("why red 1.2.3.4:²", 2, "like 10.0.0.1:80"),
    cli("why red 1.2.3.4:٣", 2, "like 10.0.0.1:80"),
    cli("why red 1.2.3.4:-1", 2, "like 10.0.0.1:80"),
    cli("why red 1.2.3.4:0", 1, PORT_HINT),
    cli("why red 1.2.3.4:65536", 1, PORT_HINT),
    cli("why nosuch 1.2.3.4", 1, NODES_HINT),
    cli("why red notanip", 1, IP_HINT),
    cli("why red :80", 1, IP_HINT),
    # -- publish: ports and namespaces
    cli("publish 0 red", 1, PORT_HINT),
    cli("publish 65536 red", 1, PORT_HINT),
    cli("publish x red", 2, "invalid int value"),
    cli("publish 8080 red --port 0", 1, PORT_HINT),
    cli("publish 80 blue", 1, "pick another port"),
    cli("publish 8080 host", 1, "lab namespace"),
    cli("publish 8080 nosuchns", 1, MISSING_HINT),
    cli("publish 8080 red", 1, "nat stage first", stage="bridge"),
    # -- graph
    cli("graph -o /nonexistent/dir/lab.png", 1, "cannot write"),
]  # fmt: skip


@pytest.mark.sandbox
@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_rejects_bad_input_with_one_line_and_changes_nothing(case: Cli) -> None:
    Lab().goto(case.stage)
    before = machine()
    proc = run(["labkit", *case.argv])
    assert proc.returncode == case.status, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == "", proc.stdout
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, proc.stderr
    if case.status == 1:  # labkit's own errors: one line and nothing else
        assert lines == errors and errors[0].startswith("labkit: error: "), proc.stderr
    else:  # usage errors: argparse's usage, then its one error line
        assert lines[0].startswith("usage: labkit") and lines[-1] == errors[0], proc.stderr
    for hint in case.hints:
        assert hint in errors[0], errors[0]
    assert machine() == before


def test_there_are_at_least_30_distinct_bad_inputs_each_way() -> None:
    assert len({p.id for p in API_CASES}) == len(API_CASES) >= 30
    assert len({p.id for p in CLI_CASES}) == len(CLI_CASES) >= 30
