"""The layers of docs/ARCHITECTURE.md: widgets and Qt services never talk to SQLite themselves.

(That the core never imports Qt is checked in tests/core/test_database.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "queue_admin_gui"
#: The docs' screenshot tool is left out: it plays another program writing to the queue (a
#: writer and a long reader) to show the window's starvation view, so it uses SQLite itself.
NOT_THE_WINDOW = {PACKAGE / "ui" / "screenshots.py"}
QT_MODULES = [path for package in ("app", "ui") for path in sorted((PACKAGE / package).glob("*.py"))
              if path not in NOT_THE_WINDOW]


def _sqlite_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name == "sqlite3"]
        elif isinstance(node, ast.ImportFrom) and node.module == "sqlite3":
            found.append("from sqlite3")
        elif (isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany",
                                                                 "executescript")):
            found.append(f".{node.attr}() at line {node.lineno}")
    return found


def test_qt_modules_never_run_sql_themselves() -> None:
    offenders = {path.name: uses for path in QT_MODULES if (uses := _sqlite_uses(path))}
    assert not offenders, f"SQL outside the core: {offenders}"


def _notify_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "notify"]


def test_no_widget_announces_changes_by_hand() -> None:
    """Writes are operations; the session announces what they change, never a widget."""
    widgets = sorted((PACKAGE / "ui").glob("*.py"))
    offenders = {path.name: lines for path in widgets if (lines := _notify_calls(path))}
    assert not offenders, f".notify( called in ui/: {offenders}"


def _import_cycles() -> list[list[str]]:
    """Groups of modules that import each other at run time (imports for type checkers only
    are left out), found as the strongly connected components of the import graph."""
    import grimp

    graph = grimp.build_graph("queue_admin_gui", exclude_type_checking_imports=True)
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in order:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], order[imported])
        if low[module] == order[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in order:
            visit(module)
    return cycles


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert _import_cycles() == []
