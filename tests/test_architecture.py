"""The package's shape: imports point one way, modules stay small, every subpackage ships.

The layer order is read from ``docs/architecture.md`` (the ``layers`` block), so the document and
the code cannot drift apart: a module may import modules of its own layer or of lower layers, and
the import graph (imports made inside functions included) has no cycle.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnnconv"
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Every cnnconv module -> the cnnconv modules it imports (anywhere in its source)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path.name == "__init__.py", node)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def layers() -> list[list[str]]:
    """The layer table of docs/architecture.md, lowest layer first."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```layers block"
    rows = []
    for line in block.group(1).splitlines():
        line = line.split("#")[0].strip()
        if line:
            number, _, names = line.partition(":")
            assert int(number) == len(rows), f"layers are numbered 0, 1, 2, ...: got {line!r}"
            rows.append(names.split())
    return rows


def layer_of(module: str, table: list[list[str]]) -> int:
    best, level = "", -1
    for i, names in enumerate(table):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, i
    return level


def test_every_module_has_a_layer():
    table = layers()
    missing = [m for m in _modules() if m != "cnnconv" and layer_of(m, table) < 0]
    assert not missing, f"modules missing from the layers block of docs/architecture.md: {missing}"


def test_no_lower_layer_imports_a_higher_one():
    table = layers()
    bad = []
    for module, targets in import_graph().items():
        if module == "cnnconv":
            continue  # the package root loads submodules lazily by name, for users only
        for target in targets:
            if target == "cnnconv":
                bad.append(f"{module} -> cnnconv (import the defining module instead)")
            elif layer_of(target, table) > layer_of(module, table):
                bad.append(f"{module} (layer {layer_of(module, table)}) -> {target} (layer {layer_of(target, table)})")
    assert not bad, "imports that point upward:\n" + "\n".join(sorted(bad))


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_import_graph_is_acyclic():
    graph = {m: t for m, t in import_graph().items() if m != "cnnconv"}
    # a package's __init__ that re-exports its submodules is one node with them
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_planted_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"


def test_every_subpackage_ships():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    packages = {_module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert packages <= listed, f"subpackages missing from pyproject's packages: {sorted(packages - listed)}"
