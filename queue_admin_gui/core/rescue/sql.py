"""What every part of a rescue shares: its error, the live connection, attaching a past file.

A past file (a verified backup, a rebuilt instant, a salvaged file, an undo file) is attached
to a connection on the live queue read-only (``mode=ro``, ``immutable=1``: SQLite takes no
lock and creates no file beside it), and the connection is then guarded as the engine guards
every untrusted file: ``trusted_schema`` off and an authorizer that refuses functions able to
reach outside the database and any further ATTACH. SQLite before 3.45 does not mark its JSON
functions innocuous, and the queue's generated columns use them: there ``trusted_schema``
stays on and the authorizer alone keeps those functions out.
"""

# SQL text here is built from this package's constants and from column names SQLite itself
# reported for the queue's tables (quoted); every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..database import UNSAFE_FUNCTIONS, connect, require_queue_schema
from ..errors import ErrorKind, QueueAdminError, translate_error
from ..files.db_files import sqlite_uri

#: The schema name a past state is attached under.
PAST = "past"
#: The statuses of a task a worker holds (both spellings real files contain).
HELD_STATUSES = ("leased", "processing")


class RescueError(QueueAdminError):
    """A diff, a rescue or an undo was refused or failed; the live queue is as it was."""

    default_kind = ErrorKind.IO


def open_live(live: Path, action: str) -> sqlite3.Connection:
    """A connection on the live queue with the writers' PRAGMAs; refused if it is no queue."""
    connection = connect(live)
    try:
        require_queue_schema(connection, live, action)
    except BaseException:
        connection.close()
        raise
    return connection


def attach_read_only(connection: sqlite3.Connection, path: Path, alias: str,
                     action: str) -> None:
    """Attach a closed file read-only and immutable under ``alias``."""
    try:
        connection.execute(f"ATTACH DATABASE ? AS {alias}",
                           (sqlite_uri(path, mode="ro", immutable="1"),))
        connection.execute(f"SELECT count(*) FROM {alias}.sqlite_master").fetchone()
    except sqlite3.Error as error:
        raise translate_error(error, f"{action}: opening '{path}'", RescueError,
                              path=path) from error


def guard_untrusted(connection: sqlite3.Connection) -> None:
    """``trusted_schema`` off (where SQLite allows it for the queue) and the untrusted authorizer.

    Call after every ATTACH: the authorizer refuses further ones.
    """
    connection.execute("PRAGMA trusted_schema=OFF")
    try:
        connection.execute("SELECT region, format FROM main.task_queue LIMIT 1").fetchall()
    except sqlite3.OperationalError as error:
        if "unsafe use of" not in str(error):
            raise
        connection.execute("PRAGMA trusted_schema=ON")
    connection.set_authorizer(_authorize)


def _authorize(action: int, arg1: str | None, arg2: str | None,
               database: str | None, source: str | None) -> int:
    if action == sqlite3.SQLITE_ATTACH:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in UNSAFE_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def stored_columns(connection: sqlite3.Connection, schema: str, table: str) -> list[str]:
    """The columns a row of ``table`` stores (generated columns left out), in table order."""
    return [str(row[1]) for row in connection.execute(
        "SELECT * FROM pragma_table_xinfo(?, ?)", (table, schema)) if int(row[6]) == 0]


def shared_columns(connection: sqlite3.Connection, table: str) -> list[str]:
    """The stored columns of ``table`` in both the live queue and the past state."""
    past = set(stored_columns(connection, PAST, table))
    return [name for name in stored_columns(connection, "main", table) if name in past]


def has_table(connection: sqlite3.Connection, schema: str, table: str) -> bool:
    """True when ``schema`` holds a table named ``table``."""
    return connection.execute(
        f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?",
        (table,)).fetchone() is not None


def quoted(names: list[str], prefix: str = "") -> str:
    """Column names quoted for SQL, each with an optional table prefix, comma separated."""
    return ", ".join(f'{prefix}"{name}"' for name in names)
