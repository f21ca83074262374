"""The undo file a rescue writes: the live rows it replaced and the rows it wrote.

An ordinary SQLite file (rollback journal, no side files once closed) with five tables:

- ``meta(key, value)``: the live database, the past state, the time, the report (JSON);
- ``before_tasks``: the live rows of the changed tasks as they were just before the rescue;
- ``after_tasks``: every row the rescue wrote, as it wrote it (undo touches a task only while
  it still holds exactly this row);
- ``rescued(id, kind)``: the tasks put back, ``removed`` (inserted) or ``changed`` (updated);
- ``inserted_logs(log_id)``: the task_logs rows the rescue inserted.

It is written as ``<name>.partial`` inside the rescue's own transaction and renamed once the
rescue committed, so a file with the final name always describes a rescue that happened.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..database import closing_connection
from ..errors import translate_error
from ..files.durable import fsync_file, retry_on_windows_lock
from ..files.side_files import JOURNAL_SUFFIX, side_file
from .sql import RescueError

UNDO_SCHEMA = "undo"
UNDO_FORMAT = "queue-admin rescue undo 1"
#: Tables an undo file must hold to be read.
UNDO_TABLES = ("meta", "before_tasks", "after_tasks", "rescued", "inserted_logs")


@dataclass(frozen=True)
class RescueSkip:
    """A task the rescue (or its undo) left alone, and why."""

    task_id: int
    type: str
    #: A short code: held_by_worker, idempotency_conflict, id_reused, added_after_past,
    #: unchanged, not_found, unreadable_in_past, changed_since_rescue, has_newer_logs
    #: (and idempotency_conflict for an undo too).
    reason: str
    #: One sentence for a person.
    detail: str


def undo_file_name(folder: Path) -> Path:
    """A new undo file name in ``folder``: ``rescue_undo_<YYYYMMDD_HHMMSS>[_n].db``."""
    stamp = time.strftime("%Y%m%d_%H%M%S")
    candidate = folder / f"rescue_undo_{stamp}.db"
    number = 2
    while candidate.exists() or partial_of(candidate).exists():
        candidate = folder / f"rescue_undo_{stamp}_{number}.db"
        number += 1
    return candidate


def partial_of(path: Path) -> Path:
    """Where an undo file is written before the rescue commits."""
    return path.with_name(path.name + ".partial")


def create_undo_file(path: Path, task_columns: list[str]) -> Path:
    """Create the empty ``.partial`` undo file with its tables; return its path."""
    partial = partial_of(path)
    columns = ", ".join(f'"{name}"' + (" INTEGER PRIMARY KEY" if name == "id" else "")
                        for name in task_columns)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing_connection(sqlite3.connect(partial, isolation_level=None)) as connection:
            connection.execute("PRAGMA journal_mode=DELETE")
            connection.executescript(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
                f"CREATE TABLE before_tasks ({columns});"
                f"CREATE TABLE after_tasks ({columns});"
                "CREATE TABLE rescued (id INTEGER PRIMARY KEY, kind TEXT NOT NULL);"
                "CREATE TABLE inserted_logs (log_id INTEGER PRIMARY KEY);")
            connection.execute("INSERT INTO meta VALUES ('format', ?)", (UNDO_FORMAT,))
    except (OSError, sqlite3.Error) as error:
        remove_partial_undo(path)
        raise translate_error(error, f"Writing the undo file '{path}'", RescueError,
                              path=path) from error
    return partial


def publish_undo_file(path: Path) -> None:
    """Flush the committed ``.partial`` to disk and give it its final name."""
    partial = partial_of(path)
    fsync_file(partial)
    retry_on_windows_lock(lambda: os.replace(partial, path))


def remove_partial_undo(path: Path) -> None:
    """Remove an undo file that describes no rescue (the rescue did not commit)."""
    for leftover in (partial_of(path), side_file(partial_of(path), JOURNAL_SUFFIX)):
        with contextlib.suppress(OSError):
            retry_on_windows_lock(leftover.unlink)
