"""What a restore will do, decided before it runs: shared by the restore wizard and the CLI.

An administrator restoring during an incident must see what the restore costs before it
happens: which tasks are lost, which run again, which were in flight in the backup, whether
workers still run, whether another program would block the write, and whether the disks have
room. These steps only read (the write-lock probe rolls back at once); the restore itself is
:func:`.execute.execute_restore`.

This module compares the two files and checks the database just restored; summarising one
file is :mod:`.file_summary`, the live side's preflight :mod:`.preflight`. Callers
import their names from those modules.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..database import (
    check_queue_schema,
    closing_connection,
    open_read_only,
    task_counts,
)
from ..errors import (
    ErrorKind,
    QueueAdminError,
    QueueBackupError,
    translate_error,
)
from ..progress import CancelCheck, ProgressCallback, interruptible, raise_if_cancelled, report
from ..schema import DEAD_STATUSES, IN_FLIGHT_STATUSES, STATUS_COMPLETED, STATUS_QUEUED
from ..trust.untrusted import open_backup_file
from .file_summary import (
    QueueSnapshot,
    TaskRef,
    inspect_database,
    kind_of,
    snapshot_of_error,
)
from .writing import TargetState

__all__ = ["RestoreComparison", "RestoredCheck", "check_restored", "compare_backup_with_live"]

#: Rows between two progress reports (and cancellation checks) while comparing.
_COMPARE_STEP = 5000

_ROWS_SQL = "SELECT id, status, created_at_utc FROM task_queue ORDER BY id"
_IN_FLIGHT_SQL = (
    "SELECT id, type, status, locked_by FROM task_queue "
    "WHERE status IN ('leased', 'processing') ORDER BY id"
)
_WAITING = (STATUS_QUEUED, *IN_FLIGHT_STATUSES)


@dataclass
class RestoreComparison:
    """The backup against the live database, and the consequences of restoring it."""

    backup: QueueSnapshot
    live: QueueSnapshot
    lost_after_backup: int = 0
    rerun_after_backup: int = 0
    retried_after_backup: int = 0
    returning_after_backup: int = 0
    in_flight_in_backup: list[TaskRef] = field(default_factory=list)

    def consequences(self) -> list[str]:
        """What the restore costs, in plain sentences an administrator can weigh."""
        sentences: list[str] = []
        live = self.live
        if live.state in (TargetState.MISSING, TargetState.EMPTY):
            sentences.append(f"The live database {live.problem.removeprefix('the file ')}; "
                             "the backup will be restored to its path and nothing can be lost.")
        elif live.state is TargetState.CORRUPT:
            sentences.append(f"The live database cannot be opened ({live.problem}); it will be "
                             "moved aside with its -wal and -shm files (not deleted) and the "
                             "backup restored in its place, so changes since the backup cannot "
                             "be counted.")
        elif live.state is TargetState.DAMAGED:
            sentences.append(f"The live database is damaged ({live.problem}); the backup will "
                             "be written into it in one transaction, and an unchecked copy of "
                             "the damaged file kept with the safety backups, so changes since "
                             "the backup cannot be counted.")
        elif live.state is TargetState.NOT_A_QUEUE:
            sentences.append(f"The live file is not a queue database ({live.problem}); if "
                             "it holds any of the queue's tables it will be moved aside (not "
                             "deleted) and the backup restored in its place, otherwise the "
                             "restore refuses it.")
        else:
            sentences.append(
                f"{_tasks(self.lost_after_backup)} created after this backup will be lost; "
                f"{_tasks(self.rerun_after_backup)} completed after it will run again."
            )
            if self.retried_after_backup:
                sentences.append(f"{_tasks(self.retried_after_backup)} that failed after this "
                                 "backup will be tried again.")
            if self.returning_after_backup:
                sentences.append(f"{_tasks(self.returning_after_backup)} deleted after this "
                                 "backup will come back.")
        if self.in_flight_in_backup:
            count = len(self.in_flight_in_backup)
            sentences.append(f"{_tasks(count)} {'was' if count == 1 else 'were'} in flight "
                             "when the backup was taken; after the restore, those whose "
                             "workers no longer report can be requeued.")
        return sentences


def compare_backup_with_live(backup_path: str | Path, live_path: str | Path,
                             progress: ProgressCallback | None = None,
                             cancelled: CancelCheck | None = None) -> RestoreComparison:
    """Compare a backup with the live database task by task (both opened read-only).

    A task is matched by id and creation time, so a task id reused after the backup counts
    as a different task. A bad backup raises :class:`QueueBackupError`; a bad live file is
    reported in the result, because restoring over it is the point.
    """
    backup_path, live_path = Path(backup_path), Path(live_path)
    action = f"Comparing '{backup_path.name}' with the live database"
    backup = inspect_database(backup_path)
    if not backup.ok:
        raise QueueBackupError(f"{action} failed: the backup cannot be read "
                               f"({backup.problem}); choose another backup.",
                               ErrorKind.CORRUPT if backup.state is TargetState.CORRUPT
                               else ErrorKind.NOT_A_QUEUE)
    live = inspect_database(live_path)
    comparison = RestoreComparison(backup, live)
    try:
        with open_backup_file(backup_path) as b:
            comparison.in_flight_in_backup = [
                TaskRef(int(row[0]), str(row[1]), str(row[2]), row[3])
                for row in b.execute(_IN_FLIGHT_SQL)
            ]
            if live.ok:
                try:
                    _match_tasks(comparison, b, live_path, progress, cancelled, action)
                except (sqlite3.Error, QueueAdminError) as error:
                    if kind_of(error) in (ErrorKind.CANCELLED, ErrorKind.LOCKED):
                        raise
                    comparison.live = snapshot_of_error(live_path, error)
    except sqlite3.Error as error:
        raise translate_error(error, action, QueueBackupError) from error
    return comparison


def _match_tasks(comparison: RestoreComparison, backup_connection: sqlite3.Connection,
                 live_path: Path, progress: ProgressCallback | None,
                 cancelled: CancelCheck | None, action: str) -> None:
    """Walk both task tables in id order at once and count what the restore changes."""
    raise_if_cancelled(cancelled, action)
    total = comparison.backup.total + comparison.live.total
    done = 0
    with closing_connection(open_read_only(live_path)) as live_connection, \
            interruptible(live_connection, cancelled):
        backup_rows = _rows(backup_connection)
        live_rows = _rows(live_connection)
        old, new = next(backup_rows, None), next(live_rows, None)
        while old is not None or new is not None:
            if new is None or (old is not None and old[0] < new[0]):
                comparison.returning_after_backup += 1
                old, step = next(backup_rows, None), 1
            elif old is None or new[0] < old[0]:
                comparison.lost_after_backup += 1
                new, step = next(live_rows, None), 1
            else:
                if old[2] != new[2]:
                    comparison.returning_after_backup += 1
                    comparison.lost_after_backup += 1
                elif old[1] in _WAITING and new[1] == STATUS_COMPLETED:
                    comparison.rerun_after_backup += 1
                elif old[1] in _WAITING and new[1] in DEAD_STATUSES:
                    comparison.retried_after_backup += 1
                old, new, step = next(backup_rows, None), next(live_rows, None), 2
            done += step
            if done % _COMPARE_STEP < step:
                raise_if_cancelled(cancelled, action)
                report(progress, done, total, "Comparing tasks")
    report(progress, total, total, "Comparing tasks")


def _rows(connection: sqlite3.Connection) -> Iterator[tuple[int, str, str]]:
    for row in connection.execute(_ROWS_SQL):
        yield int(row[0]), str(row[1]), str(row[2])


@dataclass
class RestoredCheck:
    """The live database checked after a restore."""

    path: Path
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    in_flight: list[TaskRef] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the integrity check and the schema check passed."""
        return not self.problems


def check_restored(live_path: str | Path, progress: ProgressCallback | None = None,
                   cancelled: CancelCheck | None = None, *,
                   integrity: bool = True) -> RestoredCheck:
    """Integrity, schema and in-flight tasks of the database just restored (read-only).

    ``integrity=False`` leaves out SQLite's integrity check: only for a database proven
    page for page equal to a fully checked backup (:mod:`.page_proof`).
    """
    live_path = Path(live_path)
    result = RestoredCheck(live_path)
    report(progress, 0, 1, "Checking the restored database")
    try:
        with closing_connection(open_read_only(live_path)) as connection:
            with interruptible(connection, cancelled):
                rows = (connection.execute("PRAGMA integrity_check(20)").fetchall()
                        if integrity else [])
            result.problems = [str(row[0]) for row in rows if str(row[0]) != "ok"]
            result.problems += check_queue_schema(connection)
            if not result.problems:
                result.counts = task_counts(connection)
                result.in_flight = [TaskRef(int(row[0]), str(row[1]), str(row[2]), row[3])
                                    for row in connection.execute(_IN_FLIGHT_SQL)]
    except (sqlite3.Error, OSError) as error:
        raise translate_error(error, "Checking the restored database", QueueBackupError
                              ) from error
    report(progress, 1, 1, "Checking the restored database")
    return result


def _tasks(count: int) -> str:
    return f"{count} task" if count == 1 else f"{count} tasks"
