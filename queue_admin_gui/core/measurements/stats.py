"""Database statistics: what the monitor samples every second and ``stats`` prints.

Statistics are read through a read-only connection, so taking them never changes the file,
and without task counts they cost a handful of PRAGMAs and three ``stat`` calls (no table
scan), cheap enough to sample once a second beside a running backup.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..database import (
    BUSY_TIMEOUT_MS,
    check_queue_schema,
    closing_connection,
    open_read_only,
    task_counts,
)
from ..errors import QueueMaintenanceError, translate_error
from ..files.db_files import file_size, shm_path, wal_path

MEGABYTE = 1024 * 1024
_AUTO_VACUUM_NAMES = {0: "NONE", 1: "FULL", 2: "INCREMENTAL"}


@dataclass(frozen=True)
class DatabaseStats:
    """Sizes, page usage, journal settings and (for a queue) task counts of one SQLite file.

    ``is_queue`` and ``schema_problems`` say whether the file is a queue database;
    ``task_counts`` is None when not asked for or when it is not one.
    """

    path: str
    page_size: int
    page_count: int
    freelist_count: int
    fragmentation_percent: float
    db_size_bytes: int
    wal_size_bytes: int
    shm_size_bytes: int
    total_size_mb: float
    wal_size_mb: float
    wal_mode: bool
    journal_mode: str
    auto_vacuum: str
    wal_autocheckpoint: int
    journal_size_limit: int
    sqlite_version: str
    is_queue: bool
    schema_problems: list[str]
    task_counts: dict[str, int] | None

    @property
    def freelist_bytes(self) -> int:
        """Bytes held by free pages: what VACUUM would give back."""
        return self.freelist_count * self.page_size

    def as_dict(self) -> dict[str, Any]:
        """The dict :func:`database_stats` returns, keys in :data:`STATS_KEYS` order."""
        return {key: getattr(self, key) for key in STATS_KEYS}


def database_stats(db_path: str | Path, include_task_counts: bool = True,
                   busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> dict[str, Any]:
    """Sizes, page usage, journal settings and (for a queue) task counts of one SQLite file.

    The dict form of :func:`read_database_stats`, kept for scripts and the CLI's JSON.
    """
    return read_database_stats(db_path, include_task_counts, busy_timeout_ms).as_dict()


def read_database_stats(db_path: str | Path, include_task_counts: bool = True,
                        busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> DatabaseStats:
    """The statistics of one SQLite file, read through a read-only connection.

    Works on any SQLite file; the result's ``is_queue`` says whether it is a queue database.
    """
    path = Path(db_path)
    action = f"Reading statistics of '{path}'"
    connection = open_read_only(path, busy_timeout_ms=busy_timeout_ms,
                                error_class=QueueMaintenanceError)
    try:
        with closing_connection(connection):
            stats = _pragma_stats(connection)
            problems = check_queue_schema(connection)
            counts = task_counts(connection) if include_task_counts and not problems else None
    except sqlite3.Error as error:
        raise translate_error(error, action, QueueMaintenanceError) from error
    db_bytes = file_size(path)
    wal_bytes = file_size(wal_path(path))
    page_count = stats["page_count"]
    return DatabaseStats(
        path=str(path),
        fragmentation_percent=(stats["freelist_count"] / page_count * 100.0
                               if page_count else 0.0),
        db_size_bytes=db_bytes,
        wal_size_bytes=wal_bytes,
        shm_size_bytes=file_size(shm_path(path)),
        total_size_mb=(db_bytes + wal_bytes) / MEGABYTE,
        wal_size_mb=wal_bytes / MEGABYTE,
        wal_mode=stats["journal_mode"] == "wal",
        is_queue=not problems,
        schema_problems=problems,
        task_counts=counts,
        **stats,
    )


#: The keys of :func:`database_stats`, in the order the CLI prints them.
STATS_KEYS = (
    "path", "page_size", "page_count", "freelist_count", "fragmentation_percent",
    "db_size_bytes", "wal_size_bytes", "shm_size_bytes", "total_size_mb", "wal_size_mb",
    "wal_mode", "journal_mode", "auto_vacuum", "wal_autocheckpoint", "journal_size_limit",
    "sqlite_version", "is_queue", "schema_problems", "task_counts",
)


def _pragma_stats(connection: sqlite3.Connection) -> dict[str, Any]:
    def pragma(name: str) -> Any:
        row = connection.execute(f"PRAGMA {name}").fetchone()
        return row[0] if row is not None else None

    auto_vacuum = pragma("auto_vacuum")
    return {
        "page_size": int(pragma("page_size")),
        "page_count": int(pragma("page_count")),
        "freelist_count": int(pragma("freelist_count")),
        "journal_mode": str(pragma("journal_mode")).lower(),
        "auto_vacuum": _AUTO_VACUUM_NAMES.get(auto_vacuum, str(auto_vacuum)),
        "wal_autocheckpoint": int(pragma("wal_autocheckpoint")),
        "journal_size_limit": int(pragma("journal_size_limit")),
        "sqlite_version": str(connection.execute("SELECT sqlite_version()").fetchone()[0]),
    }
