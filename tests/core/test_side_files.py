"""The side files of a database: named by one helper, and named as SQLite names them."""

from __future__ import annotations

import ast
import re
import sqlite3
from pathlib import Path

from queue_admin_gui.core.files import side_files as helper
from queue_admin_gui.core.files.side_files import (
    JOURNAL_SUFFIX,
    SHM_SUFFIX,
    SIDE_FILE_SUFFIXES,
    WAL_SUFFIX,
    side_file,
    side_files,
)

PACKAGE = Path(__file__).resolve().parents[2] / "queue_admin_gui"
#: A string that is, or ends a path with, a side file's suffix: ``"-wal"``, ``"*.db-shm"``.
SPELLED_SUFFIX = re.compile(r"\S*-(wal|shm|journal)")


def test_the_helper_names_the_files_sqlite_makes_beside_a_database(tmp_path: Path) -> None:
    database = tmp_path / "queue.db"
    wal = sqlite3.connect(database, isolation_level=None)
    wal.execute("PRAGMA journal_mode=WAL")
    wal.execute("CREATE TABLE t (x)")
    wal.execute("INSERT INTO t VALUES (1)")
    assert side_file(database, WAL_SUFFIX).is_file()
    assert side_file(str(database), SHM_SUFFIX).is_file()
    assert not side_file(database, JOURNAL_SUFFIX).exists()
    wal.close()

    rollback = tmp_path / "rollback.db"
    journal = sqlite3.connect(rollback, isolation_level=None)
    journal.execute("PRAGMA journal_mode=DELETE")
    journal.execute("CREATE TABLE t (x)")
    journal.execute("BEGIN IMMEDIATE")
    journal.execute("INSERT INTO t VALUES (1)")
    assert side_file(rollback, JOURNAL_SUFFIX).is_file()  # held until the commit
    journal.execute("COMMIT")
    journal.close()

    named = side_files(database)
    assert list(named) == list(SIDE_FILE_SUFFIXES)
    assert [path.name for path in named.values()] == [
        "queue.db-wal", "queue.db-journal", "queue.db-shm"]
    assert list(side_files(database, (SHM_SUFFIX,)).values()) == [tmp_path / "queue.db-shm"]


def _spelled_suffixes(path: Path) -> list[str]:
    """String constants in ``path`` that spell a side file's suffix (f-string parts too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"line {node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and SPELLED_SUFFIX.fullmatch(node.value)]


def test_no_module_but_the_helper_spells_a_side_file_suffix() -> None:
    """``"-wal"``, ``f"{path}-shm"``, ``len("-journal")``: each belongs in ``side_files``."""
    helper_file = Path(helper.__file__).resolve()
    offenders = {str(path.relative_to(PACKAGE)): found
                 for path in sorted(PACKAGE.rglob("*.py"))
                 if path.resolve() != helper_file and (found := _spelled_suffixes(path))}
    assert not offenders, f"side-file suffixes spelled outside core/files/side_files.py: " \
                          f"{offenders}"
    assert _spelled_suffixes(helper_file), "the helper no longer spells the suffixes"
