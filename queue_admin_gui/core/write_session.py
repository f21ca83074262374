"""A connection for one queue write, under the engine's per-file writer lock.

Opening the file, checking the queue schema and taking the lock happen together, and any
error on the way is one :class:`QueueMaintenanceError` sentence, so a caller writes only
``with WriteSession(path, action, timeout) as connection, write_transaction(connection):``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .database import connect, require_queue_schema, writer_lock
from .errors import (
    NotAQueueDatabaseError,
    QueueAdminError,
    QueueMaintenanceError,
    translate_error,
)


class WriteSession:
    """A connection for one write, under the engine's per-file writer lock, schema checked."""

    def __init__(self, path: Path, action: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._action = action
        self._lock = writer_lock(path)
        self._connection: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._connection = connect(self._path, busy_timeout_ms=self._busy_timeout_ms)
            require_queue_schema(self._connection, self._path, self._action)
        except BaseException as error:
            if self._connection is not None:
                self._connection.close()
            self._lock.release()
            if isinstance(error, (sqlite3.Error, OSError)):
                raise translate_error(error, self._action, QueueMaintenanceError) from error
            if isinstance(error, QueueAdminError):
                raise as_maintenance_error(error) from error
            raise
        return self._connection

    def __exit__(self, exc_type: object, error: BaseException | None,
                 traceback: object) -> None:
        try:
            if self._connection is not None:
                self._connection.close()
        finally:
            self._lock.release()
        if isinstance(error, (sqlite3.Error, OSError)):
            raise translate_error(error, self._action, QueueMaintenanceError) from error


def as_maintenance_error(error: QueueAdminError) -> QueueAdminError:
    """Re-label an error met while opening the file as a maintenance error, same sentence.

    A file that is not a queue keeps its :class:`NotAQueueDatabaseError`, which callers
    test for to offer plain SQLite maintenance instead.
    """
    if isinstance(error, (QueueMaintenanceError, NotAQueueDatabaseError)):
        return error
    return QueueMaintenanceError(error.message, error.kind)
