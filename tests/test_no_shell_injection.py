"""No shell injection: no shell ever sees a learner's text, and names are checked first.

* Static: every ``labkit/*.py`` is parsed with :mod:`ast`; a call that runs a
  shell (``shell=True``, ``os.system``, ``os.popen``, ...), a command line
  built from strings (an f-string, ``+``, ``%`` or ``.format``), or an
  ``sh -c`` whose script is not a literal fails the test. A command given
  as one literal string is allowed (nothing of the learner's is in it).
* Dynamic: names such as ``red; touch /tmp/pwned-...`` go through every
  API entry point and CLI command that takes a name, address or URL. Each
  must raise a clear error, and the marker file must not exist afterwards.
  Where text is meant to reach a command (``exec``'s arguments, an URL's
  path) it must arrive literally.
"""

from __future__ import annotations

import ast
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import labkit
from labkit import ConfigError, Lab, why

LABKIT_DIR = Path(labkit.__file__).resolve().parent

#: calls that always go through a shell
SHELL_CALLS = {
    "os.system",
    "os.popen",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
    "asyncio.create_subprocess_shell",
}
#: calls that start a program from an argument vector (or, given shell=True, a shell)
SPAWN_CALLS = {
    "subprocess.run",
    "subprocess.Popen",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "asyncio.create_subprocess_exec",
    "pty.spawn",
    *(f"os.{name}" for name in ("execv", "execve", "execvp", "execvpe", "execl", "execlp")),
    *(f"os.{name}" for name in ("spawnv", "spawnvp", "spawnl", "spawnlp", "posix_spawn")),
    "os.posix_spawnp",
}
SHELLS = {"sh", "bash", "dash", "zsh", "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash"}


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _built_string(node: ast.AST) -> bool:
    """An expression that builds a string from pieces: f'', +, % or .format()."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return _is_str(node.left) or _built_string(node.left) or _built_string(node.right)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("format", "join")
        and (_is_str(node.func.value) or _built_string(node.func.value))
    )


class _Finder(ast.NodeVisitor):
    """Collect (line, what) for every shell use; note literal string commands."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.bad: list[tuple[int, str]] = []
        self.literal: list[tuple[int, str]] = []

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.aliases[a.asname or a.name.split(".")[0]] = (
                a.name if a.asname else a.name.split(".")[0]
            )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for a in node.names:
            self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def _name(self, func: ast.AST) -> str:
        if isinstance(func, ast.Name):
            return self.aliases.get(func.id, func.id)
        if isinstance(func, ast.Attribute):
            return f"{self._name(func.value)}.{func.attr}"
        return "?"

    def visit_Call(self, node: ast.Call) -> None:
        name = self._name(node.func)
        if name in SHELL_CALLS:
            self.bad.append((node.lineno, f"{name}() runs a shell"))
        if name in SPAWN_CALLS:
            for kw in node.keywords:
                if kw.arg == "shell" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    self.bad.append((node.lineno, f"{name}(..., shell={ast.unparse(kw.value)})"))
            command = node.args[0] if node.args else None
            command = next((kw.value for kw in node.keywords if kw.arg == "args"), command)
            if command is not None and _built_string(command):
                self.bad.append((node.lineno, f"{name}() with a built command line"))
            elif command is not None and _is_str(command) and name.startswith("subprocess."):
                self.literal.append((node.lineno, f"{name}({command.value!r})"))
        self.generic_visit(node)

    def visit_List(self, node: ast.List) -> None:
        items = node.elts
        for i in range(len(items) - 2):
            a, b, script = items[i], items[i + 1], items[i + 2]
            if _is_str(a) and a.value in SHELLS and _is_str(b) and b.value == "-c":
                if _is_str(script):
                    self.literal.append((node.lineno, f"{a.value} -c {script.value!r}"))
                else:
                    self.bad.append(
                        (node.lineno, f"{a.value} -c with a script that is not a literal")
                    )
        self.generic_visit(node)


def shell_uses(source: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(bad uses, literal uses) of a shell or a string command line in ``source``."""
    finder = _Finder()
    finder.visit(ast.parse(source))
    return finder.bad, finder.literal


# -- static ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "import subprocess\nsubprocess.run(cmd, shell=True)",
        "import subprocess\nsubprocess.Popen(['ip'], shell=flag)",
        "import subprocess as sp\nsp.check_output(f'ip netns add {name}')",
        "from subprocess import run as r\nr('ip netns add ' + name)",
        "import subprocess\nsubprocess.call('ip link del %s' % name)",
        "import subprocess\nsubprocess.run(args='ping {}'.format(dst))",
        "import os\nos.system('true')",
        "from os import popen\npopen('ip netns')",
        "import subprocess\nsubprocess.getoutput('ip netns')",
        "launcher = ['sh', '-c', f'ip netns add {name}']",
        "argv = ['ip', 'netns', 'exec', ns, 'bash', '-c', script]",
    ],
)
def test_the_static_check_finds_a_shell(source: str) -> None:
    bad, _ = shell_uses(source)
    assert len(bad) == 1, (source, bad)


@pytest.mark.parametrize(
    "source",
    [
        "import subprocess\nsubprocess.run(['ip', 'netns', 'add', name], check=True)",
        "import subprocess\nsubprocess.run([*prefix, 'ping', dst], shell=False)",
        "import os\nos.execvp(argv[0], argv)",
        "launcher = ['sh', '-c', 'exec \"$@\" &', 'sh', *argv]",
        "message = f'ip netns add {name}'  # shown, not run",
    ],
)
def test_the_static_check_passes_argument_vectors(source: str) -> None:
    bad, _ = shell_uses(source)
    assert bad == []


def test_no_shell_in_labkit() -> None:
    sources = sorted(LABKIT_DIR.glob("*.py"))
    assert len(sources) > 10 and LABKIT_DIR / "lab.py" in sources
    found = []
    for path in sources:
        bad, _ = shell_uses(path.read_text())
        found += [f"{path.name}:{line}: {what}" for line, what in bad]
    assert found == []


# -- dynamic ----------------------------------------------------------------------------


def payloads(marker: str) -> list[str]:
    """Names that run ``touch MARKER`` (or pass an option) if a shell sees them."""
    return [
        f"red; touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"red && touch {marker}",
        f"red | touch {marker}",
        f"red\ntouch {marker}",
        "-n red",
    ]


@pytest.fixture
def marker() -> Iterator[str]:
    """A path under /tmp, unique to this test; removed afterwards, whatever happened."""
    path = f"/tmp/pwned-{uuid.uuid4().hex}"
    yield path
    existed = os.path.exists(path)
    if existed:
        os.remove(path)
    assert not existed, f"{path} was created: a name reached a shell"


@pytest.mark.sandbox
def test_the_payloads_do_run_in_a_shell(marker: str) -> None:
    """The control: each payload but '-n red' would create the marker in a shell."""
    for text in payloads(marker)[:-1]:
        subprocess.run(f"echo {text}", shell=True, capture_output=True, check=True)
        assert os.path.exists(marker), text
        os.remove(marker)


NAME_HINT = "use letters, digits"
IP_HINT = "like 192.168.15.2"

#: (entry point, how it takes the name, what its error says)
API_ENTRIES: list[tuple[str, Callable[[Lab, str], Any], str]] = [
    ("goto", lambda lab, p: lab.goto(p), "the stages are"),
    ("plan", lambda lab, p: lab.plan(p), "the stages are"),
    ("steps", lambda lab, p: lab.steps(p), "the stages are"),
    ("check", lambda lab, p: lab.check(p), "the stages are"),
    ("ping src", lambda lab, p: lab.ping(p, "192.168.15.2"), NAME_HINT),
    ("ping dst", lambda lab, p: lab.ping("red", p), IP_HINT),
    ("exec node", lambda lab, p: lab.exec(p, ["true"]), NAME_HINT),
    ("http src", lambda lab, p: lab.http(p, "http://192.168.15.2/"), NAME_HINT),
    ("http url", lambda lab, p: lab.http("red", p), "http:// URL like"),
    ("http url host", lambda lab, p: lab.http("red", f"http://{p}/"), "http:// URL like"),
    ("why src", lambda lab, p: why.why(p, "192.168.15.2"), "the nodes are"),
    ("why dst", lambda lab, p: why.why("red", p), IP_HINT),
    ("reachability nodes", lambda lab, p: lab.reachability(nodes=[p]), NAME_HINT),
    ("reachability targets", lambda lab, p: lab.reachability(targets={"x": p}), IP_HINT),
    ("publish", lambda lab, p: lab.publish(8080, p), NAME_HINT),
    ("neighbours", lambda lab, p: lab.neighbours(p), NAME_HINT),
    ("routes", lambda lab, p: lab.routes(p), NAME_HINT),
    ("nat_counters", lambda lab, p: lab.nat_counters(p), NAME_HINT),
    ("Lab(namespaces)", lambda lab, p: Lab(namespaces=p), "whole number"),
]


@pytest.mark.sandbox
@pytest.mark.parametrize("entry", API_ENTRIES, ids=[e[0] for e in API_ENTRIES])
def test_api_refuses_shell_names(entry: tuple[str, Callable[[Lab, str], Any], str], marker: str):
    name, call, hint = entry
    lab = Lab()
    lab.goto("portforward")
    before = lab.state()
    for text in payloads(marker):
        with pytest.raises(ConfigError) as info:
            call(lab, text)
        assert hint in str(info.value), (name, text, str(info.value))
        assert repr(text)[1:-1] in str(info.value), str(info.value)  # names what is wrong
    assert not os.path.exists(marker)
    assert lab.state() == before


@pytest.mark.sandbox
def test_exec_passes_arguments_literally(marker: str) -> None:
    lab = Lab()
    lab.goto("veth")
    for text in payloads(marker):
        proc = lab.exec("red", ["echo", text])
        assert proc.returncode == 0 and proc.stdout == text + "\n", (text, proc)
        proc = lab.exec("host", ["printf", "%s", text])
        assert proc.stdout == text, (text, proc)
    assert not os.path.exists(marker)


@pytest.mark.sandbox
def test_http_sends_an_url_path_literally(marker: str) -> None:
    lab = Lab()
    lab.goto("portforward")  # blue's web app on 192.168.15.2:80
    for path in [f"$(touch$IFS{marker})", f";touch$IFS{marker}", f"`touch$IFS{marker}`"]:
        result = lab.http("red", f"http://192.168.15.2/{path}")
        assert result.status == 200 and result.body.count("Hello from blue") == 1, result
    assert not os.path.exists(marker)


@pytest.mark.sandbox
def test_http_fetches_an_url_with_brackets_once() -> None:
    lab = Lab()
    lab.goto("portforward")
    result = lab.http("red", "http://192.168.15.2/[1-3]")
    assert result.body.count("Hello from blue") == 1, result


#: (command, its arguments with {} for the name, exit status, what the error says)
CLI_ENTRIES: list[tuple[list[str], int, str]] = [
    (["up", "{}"], 1, "the stages are"),
    (["up", "veth", "-n", "{}"], 2, "invalid int value"),
    (["plan", "{}"], 1, "the stages are"),
    (["ping", "{}", "192.168.15.2"], 1, NAME_HINT),
    (["ping", "red", "{}"], 1, IP_HINT),
    (["exec", "{}", "--", "true"], 1, NAME_HINT),
    (["http", "{}", "http://192.168.15.2/"], 1, NAME_HINT),
    (["http", "red", "{}"], 1, "http:// URL like"),
    (["http", "red", "http://{}/"], 1, "http:// URL like"),
    (["why", "{}", "192.168.15.2"], 1, "the nodes are"),
    (["why", "red", "{}"], 1, IP_HINT),
    (["why", "red", "192.168.15.2:{}"], 2, "the port after ':' must be a number"),
    (["publish", "8080", "{}"], 1, NAME_HINT),
    (["publish", "{}", "red"], 2, "invalid int value"),
]


@pytest.mark.sandbox
@pytest.mark.parametrize("entry", CLI_ENTRIES, ids=[" ".join(e[0]) for e in CLI_ENTRIES])
def test_cli_refuses_shell_names(entry: tuple[list[str], int, str], marker: str) -> None:
    argv, status, hint = entry
    Lab().goto("portforward")
    before = Lab().state()
    runs = {}  # all payloads at once: each is a fresh python
    for text in payloads(marker):
        args = [a.replace("{}", text) for a in argv]
        runs[text] = subprocess.Popen(
            ["labkit", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for text, proc in runs.items():
        out, err = proc.communicate(timeout=60)
        want, words = status, hint
        if text.startswith("-n") and argv[0] in ("up", "plan"):
            want, words = 2, "argument -n/--namespaces"  # argparse: -n ' red', or -n missing
        assert proc.returncode == want, (text, proc.returncode, err)
        assert "Traceback" not in err and out == "", (text, out, err)
        errors = [line for line in err.splitlines() if ": error: " in line]
        assert len(errors) == 1, err  # a newline in the name is shown as \n
        assert words in errors[0], (text, err)
    assert not os.path.exists(marker)
    assert Lab().state() == before


@pytest.mark.sandbox
def test_cli_exec_passes_arguments_literally(marker: str) -> None:
    Lab().goto("veth")
    for text in payloads(marker):
        proc = subprocess.run(
            ["labkit", "exec", "red", "--", "echo", text], capture_output=True, text=True
        )
        assert proc.returncode == 0 and proc.stdout == text + "\n", (text, proc)
    assert not os.path.exists(marker)


@pytest.mark.sandbox
def test_cli_graph_writes_a_file_with_the_name_as_given(marker: str, tmp_path: Path) -> None:
    """A file name is not a shell word: it is written as given, or refused."""
    Lab().goto("veth")
    for i, text in enumerate(payloads(marker)):
        cwd = tmp_path / str(i)
        cwd.mkdir()
        proc = subprocess.run(
            ["labkit", "graph", "-o", text], capture_output=True, text=True, cwd=cwd
        )
        assert "Traceback" not in proc.stderr
        if "/" in text:  # its directory ('red; touch ' ...) does not exist
            assert proc.returncode == 1 and "cannot write" in proc.stderr, proc
        else:
            assert proc.returncode == 0, proc
            assert os.listdir(cwd) == [text]
            assert (cwd / text).read_bytes()[:4] == b"\x89PNG"
    assert not os.path.exists(marker)
