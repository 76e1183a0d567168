"""The package's layout is its architecture: layers, no cycles, no private reach-ins.

Walks every module of ``labkit`` with :mod:`ast` (imports inside functions
included) and checks:

* the layers: ``core`` imports nothing of labkit but ``errors`` (and
  itself); ``kernel`` only ``core``; ``draw`` only ``core``; and in
  general nothing imports a module of a higher layer (:data:`LAYERS`);
* no import cycle, of any length;
* no private name (``_x``) of one module used by another;
* no module much over 600 lines, no class over 300, unless its docstring
  says why it must be larger.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "labkit"

#: from the bottom up; a module may import its own layer and those below
LAYERS: list[tuple[str, ...]] = [
    ("labkit.errors", "labkit.version", "labkit.pcap"),
    ("labkit.core",),
    ("labkit.kernel",),
    ("labkit.draw", "labkit.progress"),
    ("labkit.checks", "labkit.packets", "labkit.trace", "labkit.capture"),
    ("labkit.lab",),
    ("labkit.why", "labkit.exercises", "labkit.world", "labkit.ui"),
    ("labkit.cli", "labkit.shell", "labkit.doctor", "labkit.jupyter"),
    ("labkit", "labkit.__main__", "labkit.server", "labkit.webapp", "labkit.threads"),
]
#: what each lower layer may import, exactly
ONLY = {
    "labkit.core": ("labkit.errors", "labkit.core"),
    "labkit.kernel": ("labkit.errors", "labkit.core", "labkit.kernel"),
    "labkit.draw": ("labkit.errors", "labkit.core", "labkit.draw"),
}
MAX_MODULE_LINES = 650
MAX_CLASS_LINES = 300
#: a docstring that explains a larger size says so with these words
BIGGER_BECAUSE = "larger because"


def _name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(ROOT.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text()) for name, path in MODULES.items()}


def _resolve(name: str) -> str:
    """The module a dotted import names (``labkit.kernel.netns.get`` -> ``labkit.kernel.netns``)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports(module: str) -> set[str]:
    """Every labkit module ``module`` imports, anywhere in its code.

    Examples
    --------
    >>> "labkit.errors" in imports("labkit.core.plan")
    True
    """
    found = set()
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name) for a in node.names if a.name.startswith("labkit")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            if not base.startswith("labkit"):
                continue
            for alias in node.names:
                found.add(_resolve(f"{base}.{alias.name}"))
    return found - {module}


def _layer(module: str) -> int:
    best = None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (i, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    mine = _layer(module)
    for prefix, allowed in ONLY.items():
        if module == prefix or module.startswith(prefix + "."):
            bad = sorted(
                m
                for m in imports(module)
                if not any(m == a or m.startswith(a + ".") for a in allowed)
            )
            assert not bad, f"{module} may import only {', '.join(allowed)}; it imports {bad}"
    up = sorted(m for m in imports(module) if _layer(m) > mine)
    assert not up, f"{module} (layer {mine}) imports higher layers: {up}"


def test_no_import_cycle():
    graph = {m: imports(m) for m in MODULES}
    # a package's __init__ re-exporting its own modules is not a cycle
    for m in graph:
        if MODULES[m].name == "__init__.py":
            graph[m] = {d for d in graph[m] if not d.startswith(m + ".")}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _defined_private(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_of_another_module(module):
    tree = TREES[module]
    mine = _defined_private(tree)
    bad = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labkit"):
            bad |= {a.name for a in node.names if a.name.startswith("_") and a.name[:2] != "__"}
        elif isinstance(node, ast.Import):
            bad |= {a.name for a in node.names if any(p.startswith("_") for p in a.name.split("."))}
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            if not node.attr.startswith("__") and node.attr not in mine:
                bad.add(node.attr)
    # names of the standard library's own conventions
    bad -= {"_asdict", "_replace", "_fields", "_make", "_exit", "_current_frames"}
    assert not bad, f"{module} uses private names of other modules: {sorted(bad)}"


def _explains(node: ast.AST) -> bool:
    doc = ast.get_docstring(node) or ""  # type: ignore[arg-type]
    return BIGGER_BECAUSE in " ".join(doc.split()).lower()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_classes_stay_small(module):
    tree = TREES[module]
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES or _explains(tree), (
        f"{module} has {lines} lines (limit {MAX_MODULE_LINES}): split it, or say in its "
        f"docstring why it is {BIGGER_BECAUSE!r} than that"
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            size = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            assert size <= MAX_CLASS_LINES or _explains(node), (
                f"{module}.{node.name} has {size} lines (limit {MAX_CLASS_LINES})"
            )


def test_the_checks_can_fail():
    """The walker sees a function-level import, and the layer rule catches it."""
    tree = ast.parse("def f():\n    from labkit.lab import Lab\n")
    TREES["labkit.core.fake"], MODULES["labkit.core.fake"] = tree, ROOT / "core" / "fake.py"
    try:
        assert "labkit.lab" in imports("labkit.core.fake")
        with pytest.raises(AssertionError, match="may import only"):
            test_imports_go_down_the_layers("labkit.core.fake")
    finally:
        del TREES["labkit.core.fake"], MODULES["labkit.core.fake"]
