"""What a restore will do, decided before it runs: shared by the restore wizard and the CLI.

An administrator restoring during an incident must see what the restore costs before it
happens: which tasks are lost, which run again, which were in flight in the backup, whether
workers still run, whether another program would block the write, and whether the disks have
room. These steps only read (the write-lock probe rolls back at once); the restore itself is
:meth:`queue_admin_gui.core.backup.QueueBackup.restore_backup`.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .database import (
    check_queue_schema,
    closing_connection,
    file_size,
    open_read_only,
    task_counts,
    wal_path,
)
from .disk import free_bytes, nearest_existing_folder, same_drive
from .errors import (
    ErrorKind,
    QueueAdminError,
    QueueBackupError,
    drive_label,
    format_bytes,
    translate_error,
)
from .leases import LeaseManager, WorkerInfo
from .progress import CancelCheck, ProgressCallback, interruptible, raise_if_cancelled, report
from .restore import TargetState, inspect_target
from .schema import DEAD_STATUSES, IN_FLIGHT_STATUSES, STATUS_COMPLETED, STATUS_QUEUED
from .verify import open_backup_file
from .write_access import PROBE_BUSY_TIMEOUT_MS, probe_write_access

#: Seconds since the last heartbeat within which a worker counts as running.
ACTIVE_WORKER_SECONDS = 60
#: Rows between two progress reports (and cancellation checks) while comparing.
_COMPARE_STEP = 5000

_NEWEST_SQL = "SELECT datetime(max(julianday(created_at_utc))) FROM task_queue"
_ROWS_SQL = "SELECT id, status, created_at_utc FROM task_queue ORDER BY id"
_IN_FLIGHT_SQL = (
    "SELECT id, type, status, locked_by FROM task_queue "
    "WHERE status IN ('leased', 'processing') ORDER BY id"
)
_WAITING = (STATUS_QUEUED, *IN_FLIGHT_STATUSES)


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
            sentences.append(f"The live file is not a queue database ({live.problem}); the "
                             "backup will replace its contents.")
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


@dataclass
class SpaceNeed:
    """Free space one drive must have for the restore, and what it has."""

    folder: Path
    needed_bytes: int
    free_bytes: int

    @property
    def ok(self) -> bool:
        """True when the drive has room."""
        return self.free_bytes >= self.needed_bytes


@dataclass
class Preflight:
    """What stands in the way of a restore right now."""

    live: QueueSnapshot
    active_workers: list[WorkerInfo] = field(default_factory=list)
    blocked_reason: str | None = None
    backup_size: int = 0
    safety_size: int = 0
    live_folder: Path | None = None
    backup_dir: Path | None = None
    free_bytes: dict[str, int] = field(default_factory=dict)
    same_drive: bool = True

    @property
    def blocked(self) -> bool:
        """True when another program holds a write lock or a long transaction."""
        return self.blocked_reason is not None

    def space_needs(self, safety_backup: bool = True) -> list[SpaceNeed]:
        """Room needed per drive for the staged copy, the backup's pages and the safety backup.

        The restore first copies the backup beside the live database to check it, then
        writes its pages into the live database's WAL: twice the backup's size on the live
        drive. The safety backup goes to the backup folder; on one drive all add up.
        """
        if self.live_folder is None or self.backup_dir is None:
            return []
        safety = self.safety_size if safety_backup else 0
        live_free = self.free_bytes.get("live", 0)
        on_live = 2 * self.backup_size
        if self.same_drive:
            return [SpaceNeed(self.live_folder, on_live + safety, live_free)]
        needs = [SpaceNeed(self.live_folder, on_live, live_free)]
        if safety:
            needs.append(SpaceNeed(self.backup_dir, safety, self.free_bytes.get("backup", 0)))
        return needs

    def space_problem(self, safety_backup: bool = True) -> str | None:
        """One sentence when a drive is too full for the restore, else None."""
        for need in self.space_needs(safety_backup):
            if not need.ok:
                return (f"Restore refused: not enough free space on {drive_label(need.folder)}: "
                        f"need {format_bytes(need.needed_bytes)}, "
                        f"{format_bytes(need.free_bytes)} free; free some space first.")
        return None


def running_workers(live_path: str | Path) -> list[WorkerInfo]:
    """Workers a restore must treat as running.

    That is a heartbeat in the last minute, or one that cannot be read as a time (then
    nobody can tell that the worker stopped). A file too damaged to list its workers has
    none that count (a damaged database is moved aside whole); any other failure to read
    them (a lock, an I/O error) is raised, so a restore never goes ahead because the check
    could not be made.
    """
    try:
        workers = LeaseManager(live_path).list_workers()
    except QueueAdminError as error:
        if error.kind in (ErrorKind.CORRUPT, ErrorKind.NOT_A_DATABASE, ErrorKind.NOT_A_QUEUE):
            return []
        raise
    return [worker for worker in workers
            if not math.isfinite(worker.heartbeat_age_seconds)
            or worker.heartbeat_age_seconds <= ACTIVE_WORKER_SECONDS]


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
                if _kind_of(error) not in (ErrorKind.CORRUPT, ErrorKind.NOT_A_DATABASE):
                    raise
                # It opened and its schema reads: a restore writes into it in place.
                return QueueSnapshot(path, TargetState.DAMAGED, str(error))
    except (sqlite3.Error, OSError, QueueAdminError) as error:
        return _snapshot_of_error(path, error)
    return QueueSnapshot(path, TargetState.HEALTHY, "", counts, newest)


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
                    if _kind_of(error) in (ErrorKind.CANCELLED, ErrorKind.LOCKED):
                        raise
                    comparison.live = _snapshot_of_error(live_path, error)
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


def preflight(live_path: str | Path, backup_dir: str | Path,
              backup_path: str | Path | None = None,
              progress: ProgressCallback | None = None,
              cancelled: CancelCheck | None = None) -> Preflight:
    """Check the live database, its workers, its locks and the free space before a restore.

    The live file is judged exactly as the restore will judge it (a whole-file quick check),
    so what this says about moving a damaged file aside is what the restore then does.
    """
    live_path, backup_dir = Path(live_path), Path(backup_dir)
    try:
        target = inspect_target(live_path, progress=progress, cancelled=cancelled,
                                busy_timeout_ms=PROBE_BUSY_TIMEOUT_MS)
        live = QueueSnapshot(live_path, target.state, "; ".join(target.problems))
    except QueueAdminError as error:
        if error.kind is not ErrorKind.LOCKED:
            raise
        live = QueueSnapshot(live_path, TargetState.HEALTHY)
    result = Preflight(live)
    if result.live.ok:
        result.active_workers = running_workers(live_path)
    result.blocked_reason = probe_write_access(live_path)
    result.backup_size = file_size(backup_path) if backup_path is not None else 0
    result.safety_size = file_size(live_path) + file_size(wal_path(live_path))
    result.live_folder = nearest_existing_folder(live_path.parent)
    result.backup_dir = backup_dir
    result.free_bytes = {"live": free_bytes(result.live_folder) or 0,
                         "backup": free_bytes(backup_dir) or 0}
    result.same_drive = same_drive(result.live_folder, backup_dir)
    return result


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
                   cancelled: CancelCheck | None = None) -> RestoredCheck:
    """Integrity, schema and in-flight tasks of the database just restored (read-only)."""
    live_path = Path(live_path)
    result = RestoredCheck(live_path)
    report(progress, 0, 1, "Checking the restored database")
    try:
        with closing_connection(open_read_only(live_path)) as connection:
            with interruptible(connection, cancelled):
                rows = connection.execute("PRAGMA integrity_check(20)").fetchall()
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


def _snapshot_of_error(path: Path, error: BaseException) -> QueueSnapshot:
    kind, text = _kind_of(error), str(error)
    if kind is ErrorKind.NOT_FOUND and not path.exists():
        return QueueSnapshot(path, TargetState.MISSING, "the file does not exist")
    if isinstance(error, QueueAdminError) and error.__cause__ is not None:
        text = str(error.__cause__)
    return QueueSnapshot(path, TargetState.CORRUPT, text)


def _kind_of(error: BaseException) -> ErrorKind:
    if isinstance(error, QueueAdminError):
        return error.kind
    return translate_error(error, "Inspecting").kind


def _tasks(count: int) -> str:
    return f"{count} task" if count == 1 else f"{count} tasks"
