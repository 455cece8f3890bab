"""The shape of the codebase, checked: which processes load what, and which packages may
import which (docs/architecture.md, "The rooms")."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "core", "db", "domain", "matching", "services", "tasks", "workers",
            "beat_schedule", "realtime")
MODULES = ("celery_app",)


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin",
                                                     "APP_ENV": "test"})
    return set(out.stdout.split())


@pytest.mark.parametrize("statement", [
    "import tasks, workers, domain, db",
    "import celery_app",  # what `celery -A celery_app worker` and beat load
    "import realtime.server",  # the Socket.IO process: the root, not the web app
])
def test_workers_load_nothing_of_the_web_layer(statement: str) -> None:
    loaded = _loaded_after(statement)
    web = sorted(m for m in loaded if m == "api" or m.startswith(("api.", "flask")))
    assert web == [], web


def _sources() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield package, path
    for module in MODULES:
        yield module, REPO / f"{module}.py"


def _type_checking_block(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING")


def _imported_roots(tree: ast.AST) -> Iterator[str]:
    """Top-level names of every import that runs, at module level or inside a function (an
    import hidden in a function is still a dependency); imports only for type checking are
    not counted."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_block(node):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]
        stack.extend(ast.iter_child_nodes(node))


def package_graph() -> dict[str, set[str]]:
    ours = set(PACKAGES) | set(MODULES)
    graph: dict[str, set[str]] = {name: set() for name in ours}
    for package, path in _sources():
        for root in _imported_roots(ast.parse(path.read_text(), str(path))):
            if root in ours and root != package:
                graph[package].add(root)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_package_import_graph_has_no_cycle() -> None:
    assert _cycle(package_graph()) is None, " -> ".join(_cycle(package_graph()) or [])


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_nothing_below_the_web_layer_imports_it() -> None:
    graph = package_graph()
    assert sorted(p for p, deps in graph.items() if "api" in deps) == []
