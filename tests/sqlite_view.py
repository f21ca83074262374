"""The tests' oracle for what a database holds: SQLite's own reading of it."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def sqlite_view(path: Path) -> bytes:
    """The database as SQLite reads it now (its file and its log), as one file's bytes."""
    source = sqlite3.connect(path)
    copy = sqlite3.connect(":memory:")
    source.backup(copy)
    source.close()
    data = copy.serialize()
    copy.close()
    return data
