"""One queue file summarised for a restore: its state, its task counts, its newest task.

Both sides of a restore are read this way (the backup and the live database), and reading
never raises for a bad or missing file: a restore must be planned for exactly those files.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from ..database import check_queue_schema, closing_connection, open_read_only, task_counts
from ..errors import ErrorKind, QueueAdminError, translate_error
from ..files.db_files import file_size
from .writing import TargetState

_NEWEST_SQL = "SELECT datetime(max(julianday(created_at_utc))) FROM task_queue"


@dataclass
class TaskRef:
    """One task as the wizard lists it."""

    id: int
    type: str
    status: str
    locked_by: str | None = None


@dataclass
class QueueSnapshot:
    """One side of the comparison: its state, task counts by status and newest task time."""

    path: Path
    state: TargetState
    problem: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    newest_created_at: str | None = None

    @property
    def total(self) -> int:
        """All tasks, whatever their status."""
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        """True when the file opened and holds a readable queue."""
        return self.state is TargetState.HEALTHY


def inspect_database(path: str | Path) -> QueueSnapshot:
    """Open a queue file read-only and summarise it; never raises for a bad or missing file."""
    path = Path(path)
    if not path.exists():
        return QueueSnapshot(path, TargetState.MISSING, "the file does not exist")
    if file_size(path) == 0:
        return QueueSnapshot(path, TargetState.EMPTY, "the file is empty")
    try:
        with closing_connection(open_read_only(path)) as connection:
            problems = check_queue_schema(connection)
            if problems:
                return QueueSnapshot(path, TargetState.NOT_A_QUEUE, "; ".join(problems))
            try:
                counts = task_counts(connection)
                newest = connection.execute(_NEWEST_SQL).fetchone()[0]
            except sqlite3.Error as error:
                if kind_of(error) not in (ErrorKind.CORRUPT, ErrorKind.NOT_A_DATABASE):
                    raise
                # It opened and its schema reads: a restore writes into it in place.
                return QueueSnapshot(path, TargetState.DAMAGED, str(error))
    except (sqlite3.Error, OSError, QueueAdminError) as error:
        return snapshot_of_error(path, error)
    return QueueSnapshot(path, TargetState.HEALTHY, "", counts, newest)


def snapshot_of_error(path: Path, error: BaseException) -> QueueSnapshot:
    """A file that could not be read, as a snapshot: missing, or corrupt with the cause."""
    kind, text = kind_of(error), str(error)
    if kind is ErrorKind.NOT_FOUND and not path.exists():
        return QueueSnapshot(path, TargetState.MISSING, "the file does not exist")
    if isinstance(error, QueueAdminError) and error.__cause__ is not None:
        text = str(error.__cause__)
    return QueueSnapshot(path, TargetState.CORRUPT, text)


def kind_of(error: BaseException) -> ErrorKind:
    """The kind of any error, sorted as the engine sorts SQLite's and the OS's codes."""
    if isinstance(error, QueueAdminError):
        return error.kind
    return translate_error(error, "Inspecting").kind
