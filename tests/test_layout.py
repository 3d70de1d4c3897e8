"""The packages' layout (docs/design.md, "Map"): no import cycle, rooms that import only downward, short modules.

The import graph is read from the sources with ``ast``: every ``import`` and ``from ... import``, at module
level or inside a function, relative or absolute, of a module of ``dlfa_kernels`` or ``dlfa_models``.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dlfa_kernels", "dlfa_models")
MAX_LINES = 400
# the rooms, lowest first: a module imports modules of its own room and of rooms with a lower rank only
RANKS = {"kernels": 0, "encoders": 1, "data": 1, "models": 2, "reports": 3, "training": 4, "entry": 5}
SUBPACKAGE_ROOMS = ("encoders", "data", "reports", "training")
# the thin modules that keep ``python -m dlfa_models.<name>`` working; nothing imports them
ENTRY_MODULES = {"dlfa_models.train", "dlfa_models.e5_offline"}


def package_modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file of ``packages`` under ``root``."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _ours(name: str, known) -> Optional[str]:
    """The longest prefix of the dotted ``name`` that is one of our modules (None for other packages)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def imported_modules(module: str, path: Path, known) -> set[str]:
    """Our modules that ``module`` imports anywhere in its source; ``from p import m`` names the submodule
    ``p.m`` when there is one, else ``p``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets |= {_ours(alias.name, known) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in known else _ours(base, known))
    return targets - {None, module}


def import_graph(root: Path = ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    modules = package_modules(root, packages)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a, b, ..., a) per edge that closes one in a depth-first walk; empty when there is none."""
    found, state = [], {}  # state: 1 on the current path, 2 finished

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, path)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [])
    return found


def room(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "dlfa_kernels":
        return "kernels"
    if module in ENTRY_MODULES:
        return "entry"
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGE_ROOMS else "models"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{a} ({room(a)}) imports {b} ({room(b)})" for a in sorted(graph) for b in sorted(graph[a])
            if room(a) != room(b) and RANKS[room(b)] >= RANKS[room(a)]]


# ----------------------------------------------------------------------------- the packages

def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_rooms_import_only_downward():
    found = upward_imports(import_graph())
    assert not found, "imports against the rooms' order " + str(RANKS) + ":\n" + "\n".join(found)


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in package_modules(ROOT).values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_every_module_is_on_the_map():
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    missing = [str(p.relative_to(ROOT)) for p in package_modules(ROOT).values()
               if f"`{p.relative_to(ROOT)}`" not in design]
    assert not missing, f"missing from the map in docs/design.md: {missing}"


# ----------------------------------------------------------------------------- the checker itself

def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_graph_reads_relative_absolute_and_function_level_imports(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from .a import f\n",
        "pkg/a.py": "import os\n\ndef f():\n    from .sub import b\n    return b\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/b.py": "from .. import a\nfrom ..sub.c import g\n",
        "pkg/sub/c.py": "def g():\n    import pkg.a\n    from pkg.sub import nothing_here\n",
    })
    graph = import_graph(tmp_path, ("pkg",))
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.sub.b"}, "pkg.sub": set(),
                     "pkg.sub.b": {"pkg.a", "pkg.sub.c"}, "pkg.sub.c": {"pkg.a", "pkg.sub"}}
    assert sorted(map(tuple, cycles(graph))) == [("pkg.a", "pkg.sub.b", "pkg.a"),
                                                 ("pkg.a", "pkg.sub.b", "pkg.sub.c", "pkg.a")]


@pytest.mark.parametrize("importer, imported, allowed", [
    ("dlfa_models.training.run", "dlfa_models.reports.summary", True),
    ("dlfa_models.modeling_dlfa", "dlfa_models.encoders.resolve", True),
    ("dlfa_models.train", "dlfa_models.training.run", True),
    ("dlfa_models.encoders.resolve", "dlfa_models.encoders.e5_offline", True),
    ("dlfa_models.reports.model_card", "dlfa_models.data.tasks", True),
    ("dlfa_models.data.tasks", "dlfa_models.encoders.names", False),
    ("dlfa_models.encoders.resolve", "dlfa_models", False),
    ("dlfa_models.reports.tables", "dlfa_models.training.runs", False),
    ("dlfa_kernels.ops", "dlfa_models.gate_init", False),
    ("dlfa_models.training.run", "dlfa_models.train", False),
])
def test_the_rooms_order(importer, imported, allowed):
    assert (upward_imports({importer: {imported}}) == []) is allowed
