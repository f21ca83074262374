"""Small SQLite files crafted to make a check of them slow, as a hostile sender might.

Every page is sound and every index agrees with its table, so SQLite's full check ends
with "ok"; but the index's expression, rewritten through ``writable_schema`` after the index
was built cheaply, builds and rewrites a string of megabytes for every row. A file of a few
dozen KB then keeps an unbounded ``integrity_check`` busy for about a minute, and SQLite's
progress handler (called every few thousand steps) fires only every few hundred rows.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: Rows of the stalling file; each costs SQLite tens of milliseconds to check.
STALLING_ROWS = 1500
#: Characters of the string built for every row.
STALLING_WIDTH = 3_000_000


def stalling_file(path: Path, rows: int = STALLING_ROWS, width: int = STALLING_WIDTH) -> Path:
    """Write a small, sound SQLite file whose full check takes very long; return its path."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE numbers(x INTEGER)")
        connection.executemany("INSERT INTO numbers VALUES (?)", [(i,) for i in range(rows)])
        connection.execute("CREATE INDEX ix_numbers ON numbers((x + 0))")
        connection.commit()
        slow = ("CREATE INDEX ix_numbers ON numbers((length(replace(printf('%.*c', "
                f"{int(width)} + x % 2, 'x'), 'x', 'yy')) * 0 + x + 0))")
        connection.execute("PRAGMA writable_schema=ON")
        connection.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'ix_numbers'",
                           (slow,))
        connection.commit()
    finally:
        connection.close()
    return path
