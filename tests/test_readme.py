"""README.md's examples, run as written and in the order written.

The fenced code blocks of README.md are read in order. A block runs unless
the line just before it (blank lines aside) is a visible marker with its
reason, ``<!-- readme-test: skip (REASON) -->``: the commands that install,
serve JupyterLab or JupyterHub, build images or run benchmarks have one.
Blocks in other languages (``text``) are not code and are not run.

* Shell blocks (``sh``) run one after the other in **one** fresh sandbox,
  through ``labkit run``, each with ``bash -e -x`` (the first failing
  command fails the block), stdin empty, in a folder of their own that
  holds the clone's ``.venv`` (where a reader of the README stands).
* Python blocks (``python``) run one after the other on **one** ``labkit``
  kernel (a fresh sandbox of its own), as notebook cells (``!`` lines
  included), with every expression's value shown, as the README's
  comments describe each line. A block fails when it raises, or when it
  shows a ping that lost a packet or an HTTP request without a 2xx answer.

A failing block fails the test with its line in README.md, its text and
its output. ``test_a_broken_example_fails`` breaks copies of the README
(the stage an example needs, left out) and checks that the runners fail on
the block that breaks, and only there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV = Path(sys.executable).parent.parent
KERNEL = "labkit"
#: seconds for one block (a Python block draws, pings, traces)
BLOCK_TIMEOUT = 300
MARKER = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>.+)\)\s*-->")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
RUNNERS = {"sh": "shell", "python": "python"}


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it opens (1-based line), its language, text, skip reason."""

    line: int
    lang: str
    text: str
    skip: str | None = None

    def report(self, output: str) -> str:
        """The message of a failed block: where, what, and what it printed."""
        return (
            f"README.md line {self.line}: this {self.lang} block failed:\n"
            f"{self.text}\n--- its output ---\n{output}"
        )


def blocks(markdown: str) -> list[Block]:
    """The fenced code blocks of ``markdown``, in order, with their skip markers.

    Examples
    --------
    >>> md = "x\\n<!-- readme-test: skip (serves) -->\\n\\n```sh\\nrun\\n```\\n"
    >>> md += "```python\\n1\\n```\\n"
    >>> [(b.line, b.lang, b.text, b.skip) for b in blocks(md)]
    [(4, 'sh', 'run\\n', 'serves'), (7, 'python', '1\\n', None)]
    """
    found: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        before = [ln for ln in lines[:i] if ln.strip()][-1:]
        marker = MARKER.fullmatch(before[0].strip()) if before else None
        text = "".join(ln + "\n" for ln in lines[i + 1 : end])
        found.append(Block(i + 1, opening["lang"], text, marker["reason"] if marker else None))
        i = end + 1
    return found


def to_run(markdown: str, runner: str) -> list[Block]:
    """The blocks of one runner (``shell`` or ``python``) that are not skipped."""
    return [b for b in blocks(markdown) if RUNNERS.get(b.lang) == runner and not b.skip]


# -- shell blocks: one sandbox, through labkit run ---------------------------------

DRIVER = """\
for block in blocks/*.sh; do
  bash -e -o pipefail -x "$block" > "${block%.sh}.out" 2>&1 < /dev/null
  echo $? > "${block%.sh}.rc"
  [ "$(cat "${block%.sh}.rc")" = 0 ] || exit 1
done
"""


def run_shell(todo: list[Block], workdir: Path) -> list[tuple[Block, int | None, str]]:
    """Run ``todo`` in order in one fresh sandbox; (block, exit status, output) per block.

    The status is None for blocks after a failed one (not run).
    """
    (workdir / "blocks").mkdir()
    for n, block in enumerate(todo):
        (workdir / "blocks" / f"{n:03}.sh").write_text(block.text)
    (workdir / "driver.sh").write_text(DRIVER)
    (workdir / ".venv").symlink_to(VENV)
    for path in [workdir, workdir / "blocks"]:
        path.chmod(0o777)  # the sandbox's learner writes the outputs (and lab.png)
    env = {**os.environ, "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "run", "--", "bash", "driver.sh"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT * max(1, len(todo)),
    )
    results = []
    for n, block in enumerate(todo):
        rc_file = workdir / "blocks" / f"{n:03}.rc"
        out_file = workdir / "blocks" / f"{n:03}.out"
        status = int(rc_file.read_text()) if rc_file.exists() else None
        output = out_file.read_text() if out_file.exists() else ""
        if status:
            output += f"(exit status {status})\n"
        results.append((block, status, output))
    if all(status is None for _, status, _ in results):  # the sandbox itself failed
        results[0] = (todo[0], proc.returncode or -1, proc.stdout + proc.stderr)
    return results


# -- Python blocks: one labkit kernel -----------------------------------------------

PING = re.compile(r"PingResult\(src='[^']*', dst='([^']*)', sent=(\d+), received=(\d+)")
HTTP = re.compile(r"HttpResult\(src='[^']*', url='([^']*)', status=(\d+)")


def failed_results(text: str) -> list[str]:
    """The pings that lost a packet and HTTP requests without a 2xx answer, in ``text``.

    Examples
    --------
    >>> failed_results("PingResult(src='red', dst='192.168.1.3', sent=0, received=0, output='')")
    ['ping to 192.168.1.3: 0 of 0 replies']
    >>> failed_results("HttpResult(src='lan-pc', url='http://192.168.1.2/', status=200, body='')")
    []
    """
    bad = [
        f"ping to {dst}: {got} of {sent} replies"
        for dst, sent, got in PING.findall(text)
        if int(sent) == 0 or int(got) < int(sent)
    ]
    bad += [
        f"HTTP {url}: status {status}"
        for url, status in HTTP.findall(text)
        if not 200 <= int(status) < 300
    ]
    return bad


def run_python(todo: list[Block], workdir: Path) -> list[tuple[Block, int | None, str]]:
    """Run ``todo`` in order on one labkit kernel; (block, 0 or 1, output) per block.

    Stops at the first failing block (None for those after it).
    """
    from jupyter_client.manager import start_new_kernel

    workdir.chmod(0o777)
    km, kc = start_new_kernel(kernel_name=KERNEL, cwd=str(workdir), startup_timeout=60)
    results: list[tuple[Block, int | None, str]] = []
    try:
        kc.execute_interactive(
            'get_ipython().ast_node_interactivity = "all"', timeout=BLOCK_TIMEOUT
        )
        for block in todo:
            if results and results[-1][1] != 0:
                results.append((block, None, ""))
                continue
            parts: list[str] = []

            def keep(msg: dict, parts: list[str] = parts) -> None:
                content = msg["content"]
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    parts.append(content["text"])
                elif kind in ("execute_result", "display_data"):
                    parts.append(content["data"].get("text/plain", "") + "\n")
                elif kind == "error":
                    parts.append("\n".join(content["traceback"]) + "\n")

            reply = kc.execute_interactive(block.text, timeout=BLOCK_TIMEOUT, output_hook=keep)
            output = "".join(parts)
            bad = failed_results(output)
            if bad:
                output += "--- failed checks ---\n" + "\n".join(bad) + "\n"
            ok = reply["content"]["status"] == "ok" and not bad
            results.append((block, 0 if ok else 1, output))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return results


def kernel_installed() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        return False
    return True


needs_kernel = pytest.mark.skipif(
    not kernel_installed(),
    reason="the 'labkit' kernelspec is not installed: python -m labkit.jupyter install",
)


def first_failure(results: list[tuple[Block, int | None, str]]) -> str | None:
    """The report of the first block that failed, or None."""
    for block, status, output in results:
        if status not in (0, None):
            return block.report(output)
    return None


# -- the tests ------------------------------------------------------------------------


def test_every_block_runs_or_says_why_not() -> None:
    found = blocks(README.read_text())
    assert found, "README.md has no code blocks"
    for block in found:
        assert block.lang in (*RUNNERS, "text"), f"line {block.line}: a ```{block.lang} block"
        if block.skip:
            assert len(block.skip) > 10, f"line {block.line}: say why it is skipped"
    shell, python = to_run(README.read_text(), "shell"), to_run(README.read_text(), "python")
    # the usage blocks are among those that run, not skipped
    assert any("labkit up bridge" in b.text for b in shell)
    assert any("labkit run --" in b.text for b in shell)
    assert any("lab.goto(" in b.text for b in python)
    assert any("lab.publish(" in b.text for b in python)
    assert len(shell) >= 3 and len(python) >= 4, (len(shell), len(python))


@pytest.mark.slow
def test_shell_blocks_run_in_order_in_one_sandbox(tmp_path: Path) -> None:
    todo = to_run(README.read_text(), "shell")
    results = run_shell(todo, tmp_path)
    failure = first_failure(results)
    assert failure is None, failure
    assert [status for _, status, _ in results] == [0] * len(todo)
    # what the usage block promises, in its output: the web app answered lan-pc
    usage = next(out for b, _, out in results if "labkit up portforward" in b.text)
    assert "Hello from blue! You came from 192.168.1.3." in usage, usage


@needs_kernel
@pytest.mark.slow
def test_python_blocks_run_in_order_on_the_labkit_kernel(tmp_path: Path) -> None:
    todo = to_run(README.read_text(), "python")
    results = run_python(todo, tmp_path)
    failure = first_failure(results)
    assert failure is None, failure
    assert [status for _, status, _ in results] == [0] * len(todo)
    checks = next(out for b, _, out in results if "lab.publish(" in b.text)
    assert "Hello from red! You came from 192.168.1.3." in checks, checks


def without(markdown: str, line: str) -> str:
    """``markdown`` without the one line that starts with ``line``."""
    lines = markdown.splitlines(keepends=True)
    hits = [n for n, ln in enumerate(lines) if ln.startswith(line)]
    assert len(hits) == 1, f"{line!r} is on {len(hits)} lines of README.md"
    del lines[hits[0]]
    return "".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("runner", "removed", "fails_in", "says"),
    [
        # the web app comes with portforward: without it lan-pc's curl is refused (exit 7)
        ("shell", "labkit up portforward", "labkit exec lan-pc", "+ labkit exec lan-pc"),
        # publish needs forwarding and red's way back (nat or later): at veth, a ConfigError
        ("python", 'lab.goto("internet")', "lab.publish(", "ConfigError"),
    ],
)
def test_a_broken_example_fails(
    tmp_path: Path, runner: str, removed: str, fails_in: str, says: str
) -> None:
    if runner == "python" and not kernel_installed():
        pytest.skip("the 'labkit' kernelspec is not installed")
    broken = without(README.read_text(), removed)
    todo = to_run(broken, runner)
    # only the blocks up to the broken one: what follows does not matter here
    upto = next(n for n, b in enumerate(todo) if fails_in in b.text)
    results = (run_shell if runner == "shell" else run_python)(todo[: upto + 1], tmp_path)
    assert [status for _, status, _ in results[:upto]] == [0] * upto
    failure = first_failure(results)
    assert failure is not None, results
    assert failure.startswith(f"README.md line {todo[upto].line}: this "), failure
    assert fails_in in failure and says in failure, failure
