"""The house in wings: dependencies point one way and no two modules import each other in a circle.

Every import is counted, type-only ones (under ``TYPE_CHECKING``) and imports inside functions
included: ``from a.b import c`` is an edge to the module ``a.b.c`` when that is a module, else to
``a.b``. The wings, lowest first (a module may import its own wing and lower ones)::

    errors, config, data  ←  model  ←  checkpoint  ←  training  ←  explain  ←  bench, app.serving
                                                                           ←  app (UI)  ←  cli
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tada_core", "app")
RANKS = {
    "tada_core.errors": 0,
    "tada_core.config": 0,
    "tada_core.data": 0,
    "tada_core.model": 1,
    "tada_core.checkpoint": 2,
    "tada_core.training": 3,
    "tada_core.explain": 4,
    "tada_core.bench": 5,
    "app.serving": 5,
    "app": 6,
    "tada_core.cli": 7,
    "tada_core.__main__": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names
            ]
        else:
            continue
        edges.update(name for name in names if name in modules)
    return edges


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _wing(module: str) -> str | None:
    best = None
    for prefix in RANKS:
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_import_circles():
    assert _cycles(_graph()) == []


def test_dependencies_point_one_way():
    wrong = []
    for module, imported in _graph().items():
        if module in ("tada_core", "app"):
            continue  # the package façades re-export from below
        wing = _wing(module)
        assert wing is not None, f"{module} belongs to no wing; add it to RANKS"
        for other in imported:
            other_wing = _wing(other) or other
            if RANKS.get(other_wing, 0) > RANKS[wing]:
                wrong.append(f"{module} -> {other}")
    assert wrong == []


def test_a_hand_made_circle_is_found(tmp_path, monkeypatch):
    """The checker itself: two modules importing each other are reported."""
    package = tmp_path / "tada_core"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from tada_core.b import x\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tada_core.a import y\n"
    )
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGES", ("tada_core",))
    graph = _graph()
    assert graph["tada_core.a"] == {"tada_core.b"} and graph["tada_core.b"] == {"tada_core.a"}
    assert _cycles(graph) == [["tada_core.a", "tada_core.b"]]


def test_top_level_is_small_and_every_wing_says_what_it_holds():
    top = sorted(p.name for p in (ROOT / "tada_core").glob("*.py"))
    assert len(top) <= 8, top
    for package in PACKAGES:
        for init in (ROOT / package).rglob("__init__.py"):
            doc = ast.get_docstring(ast.parse(init.read_text()))
            assert doc and len(doc.splitlines()) >= 1, f"{init} has no docstring"
