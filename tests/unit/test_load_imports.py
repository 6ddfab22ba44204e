"""load/ modules import each other without a circle (function-level imports count too)."""

from __future__ import annotations

import ast
from pathlib import Path

LOAD = Path(__file__).resolve().parents[2] / "load"


def imports_of(path: Path) -> set[str]:
    """The `load.*` modules a file imports anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("load.")}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "load":
                found |= {f"load.{alias.name}" for alias in node.names}
            elif node.module.startswith("load."):
                found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {f"load.{path.stem}": imports_of(path) for path in sorted(LOAD.glob("*.py"))}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, as the path that closes it."""
    found: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        for imported in sorted(edges.get(module, ())):
            if imported in path:
                found.append([*path[path.index(imported) :], imported])
            elif imported in edges:
                visit(imported, [*path, imported])

    for module in edges:
        visit(module, [module])
    return found


def test_load_modules_import_without_a_circle() -> None:
    edges = graph()
    assert "load.read" in edges["load.__main__"]  # the scan sees what it should
    assert cycles(edges) == []


def test_the_cycle_check_would_see_one() -> None:
    assert cycles({"load.a": {"load.b"}, "load.b": {"load.a"}}) == [
        ["load.a", "load.b", "load.a"],
        ["load.b", "load.a", "load.b"],
    ]
