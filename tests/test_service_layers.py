"""The service's modules import each other as a DAG: no cycle, not even one hidden in a
function body (the routers take their shared request dependencies from ``deps``)."""

from __future__ import annotations

import ast
from pathlib import Path

import bastion.service

PACKAGE = "bastion.service"


def _imports(path: Path) -> set[str]:
    """Every ``bastion.service`` module that ``path`` imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == PACKAGE:
                found.update(f"{PACKAGE}.{a.name}" for a in node.names)
            elif node.module.startswith(PACKAGE + "."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PACKAGE + "."))
    return found


def _graph() -> dict[str, set[str]]:
    folder = Path(bastion.service.__file__).parent
    modules = {f"{PACKAGE}.{p.stem}": p for p in folder.glob("*.py") if p.stem != "__init__"}
    return {name: {m for m in _imports(path) if m in modules} - {name}
            for name, path in modules.items()}


def test_service_modules_form_a_dag() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_routers_take_their_dependencies_from_deps_not_the_app() -> None:
    graph = _graph()
    for router in ("proxy", "review", "web"):
        assert f"{PACKAGE}.app" not in graph[f"{PACKAGE}.{router}"]
        assert f"{PACKAGE}.deps" in graph[f"{PACKAGE}.{router}"]
