"""The archiver's hold on the WAL: read transactions that keep it from being reset behind its back.

SQLite resets ("restarts") the log only when no reader holds a mark in read slots 1..N, and
a reader that began when the log was fully copied into the database (slot 0) blocks every
further copy, so at most one reset can happen while it holds. Two connections take turns: a
new read transaction begins before the old one ends, so there is never a moment without one,
and the archiver copies everything in the log between the two (see :mod:`.archiver`), so any
reset that slips through happens exactly where the archive already ends.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from ..files.db_files import sqlite_uri


def open_connection(database: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A plain connection for the archiver (autocommit; it never writes to the queue)."""
    connection = sqlite3.connect(sqlite_uri(database, mode="rw"), uri=True,
                                 isolation_level=None, check_same_thread=False,
                                 timeout=busy_timeout_ms / 1000)
    connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    return connection


class WalPins:
    """Two read transactions taking turns on the live database."""

    def __init__(self, database: Path, busy_timeout_ms: int = 1000) -> None:
        self._connections = [open_connection(database, busy_timeout_ms) for _ in range(2)]
        self._active: int | None = None

    @property
    def holding(self) -> bool:
        """True while a read transaction is open."""
        return self._active is not None

    def begin_next(self) -> None:
        """Begin a read transaction on the idle connection (the other one keeps its own)."""
        index = 0 if self._active is None else 1 - self._active
        connection = self._connections[index]
        connection.execute("BEGIN")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        self._pending = index

    def end_previous(self) -> None:
        """End the older read transaction, leaving the one begun by :meth:`begin_next`."""
        if self._active is not None and self._active != self._pending:
            self._end(self._active)
        self._active = self._pending

    def release(self) -> None:
        """End every read transaction (the WAL may now be reset by someone else)."""
        for index in range(2):
            self._end(index)
        self._active = None

    def close(self) -> None:
        """Release and close both connections."""
        with contextlib.suppress(sqlite3.Error):
            self.release()
        for connection in self._connections:
            connection.close()

    def _end(self, index: int) -> None:
        connection = self._connections[index]
        if connection.in_transaction:
            connection.execute("COMMIT")
