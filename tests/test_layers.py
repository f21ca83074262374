"""The layers of DESIGN.md: widgets and Qt glue never talk to SQLite themselves.

(That the core never imports Qt is checked in tests/core/test_database.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "queue_admin_gui"
QT_MODULES = [PACKAGE / "jobs.py", PACKAGE / "monitor.py", PACKAGE / "session.py",
              PACKAGE / "app.py", *sorted((PACKAGE / "ui").glob("*.py"))]


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
