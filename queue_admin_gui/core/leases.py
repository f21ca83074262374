"""Stale leases, requeue, dead letters and workers.

A worker that dies holding a task leaves it in flight ('leased', or 'processing' in older
code) with a lease that expires; the task starves until it is requeued. Requeueing is one
guarded UPDATE inside ``BEGIN IMMEDIATE`` (DESIGN.md, data-safety rule 5): the WHERE clause
re-checks status and expiry, so a task a worker completes meanwhile is never touched and a
second cleanup finds nothing left to requeue. Times are UTC text compared with SQLite's own
datetime functions.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .database import (
    BUSY_TIMEOUT_MS,
    QueueDatabase,
    closing_connection,
    connect,
    database_path_of,
    open_read_only,
    require_queue_schema,
    write_transaction,
    writer_lock,
)
from .errors import (
    ErrorKind,
    NotAQueueDatabaseError,
    QueueAdminError,
    QueueMaintenanceError,
    translate_error,
)
from .schema import STATUS_QUEUED

# The SQL below is written out in full, never assembled from input: values travel as
# parameters. 'leased'/'processing' are in flight and 'failed'/'dead_letter' dead (SCHEMA.md).
# A task's lease ran out at lease_until_utc; without one it counts from the claim.

_SELECT_IN_FLIGHT = """
SELECT id, type, status, locked_by, lease_until_utc, reserved_at_utc, attempts, max_attempts,
       (julianday('now') - julianday(COALESCE(lease_until_utc, reserved_at_utc, updated_at_utc)))
           * 86400.0 AS overdue,
       datetime(COALESCE(lease_until_utc, reserved_at_utc, updated_at_utc))
           < datetime('now', :offset) AS stale
FROM task_queue
WHERE status IN ('leased', 'processing')
ORDER BY overdue DESC, id
"""

_SELECT_STALE = """
SELECT id, type, status, locked_by, lease_until_utc, reserved_at_utc, attempts, max_attempts,
       (julianday('now') - julianday(COALESCE(lease_until_utc, reserved_at_utc, updated_at_utc)))
           * 86400.0 AS overdue,
       1 AS stale
FROM task_queue
WHERE status IN ('leased', 'processing')
  AND datetime(COALESCE(lease_until_utc, reserved_at_utc, updated_at_utc))
      < datetime('now', :offset)
ORDER BY id
"""

#: Chooses the tasks to requeue: stale past :cutoff, or the ids in the JSON array :ids.
_REQUEUE_GUARD = """
status IN ('leased', 'processing')
AND ((:cutoff IS NOT NULL
      AND datetime(COALESCE(lease_until_utc, reserved_at_utc, updated_at_utc)) < :cutoff)
     OR (:ids IS NOT NULL AND id IN (SELECT value FROM json_each(:ids))))
"""

_LOG_REQUEUE = """
INSERT INTO task_logs (task_id, at_utc, level, message, details)
SELECT id, :now, 'WARNING',
       CASE WHEN attempts + 1 >= max_attempts
            THEN printf('Lease held by worker ''%s'' expired; moved to dead letters after '
                        || '%d attempts.', COALESCE(locked_by, '(unknown)'), attempts + 1)
            ELSE printf('Lease held by worker ''%s'' expired; task requeued (attempt %d of %d).',
                        COALESCE(locked_by, '(unknown)'), attempts + 1, max_attempts)
       END,
       json_object('action', CASE WHEN attempts + 1 >= max_attempts
                                  THEN 'dead_letter' ELSE 'requeue' END,
                   'worker', locked_by, 'previous_status', status,
                   'lease_until_utc', lease_until_utc, 'attempts', attempts + 1)
FROM task_queue
WHERE """ + _REQUEUE_GUARD

_UPDATE_REQUEUE = """
UPDATE task_queue SET
    attempts = attempts + 1,
    status = CASE WHEN attempts + 1 >= max_attempts THEN 'failed' ELSE 'queued' END,
    error_message = CASE WHEN attempts + 1 >= max_attempts
        THEN printf('Lease expired %d times (worker died); moved to dead letters after %d '
                    || 'attempts.', attempts + 1, max_attempts)
        ELSE error_message END,
    finished_at_utc = CASE WHEN attempts + 1 >= max_attempts THEN :now ELSE finished_at_utc END,
    run_after_utc = CASE WHEN attempts + 1 >= max_attempts THEN run_after_utc ELSE :now END,
    lease_until_utc = NULL, reserved_at_utc = NULL, processing_started_utc = NULL,
    locked_by = NULL, updated_at_utc = :now
WHERE """ + _REQUEUE_GUARD + """
RETURNING id, status
"""

_SELECT_WORKERS = """
SELECT w.worker_id, w.capabilities, w.heartbeat_utc,
       (julianday('now') - julianday(w.heartbeat_utc)) * 86400.0 AS age,
       COALESCE(held.tasks, 0) AS tasks
FROM workers AS w
LEFT JOIN (SELECT locked_by, count(*) AS tasks FROM task_queue
           WHERE status IN ('leased', 'processing') GROUP BY locked_by) AS held
       ON held.locked_by = w.worker_id
ORDER BY age, w.worker_id
"""

_SELECT_DEAD = """
SELECT id, type, status, attempts, max_attempts, error_message, finished_at_utc, updated_at_utc
FROM task_queue
WHERE status IN ('failed', 'dead_letter')
ORDER BY updated_at_utc DESC, id DESC
LIMIT :limit
"""

_RETRY_GUARD = """
status IN ('failed', 'dead_letter') AND id IN (SELECT value FROM json_each(:ids))
"""

_LOG_RETRY = """
INSERT INTO task_logs (task_id, at_utc, level, message, details)
SELECT id, datetime('now'), 'INFO',
       'Retried from dead letters by an administrator; attempts reset to 0.',
       json_object('action', 'retry', 'previous_status', status,
                   'previous_attempts', attempts, 'previous_error', error_message)
FROM task_queue
WHERE """ + _RETRY_GUARD

_UPDATE_RETRY = """
UPDATE task_queue SET
    status = 'queued', attempts = 0, error_message = NULL, finished_at_utc = NULL,
    lease_until_utc = NULL, reserved_at_utc = NULL, processing_started_utc = NULL,
    locked_by = NULL, run_after_utc = datetime('now'), updated_at_utc = datetime('now')
WHERE """ + _RETRY_GUARD


@dataclass
class LeasedTask:
    """A task a worker holds (or held before it died), with how long its lease is overdue."""

    id: int
    type: str
    status: str
    locked_by: str | None
    lease_until_utc: str | None
    reserved_at_utc: str | None
    attempts: int
    max_attempts: int
    expired_seconds: float | None
    stale: bool


@dataclass
class RequeueResult:
    """What a requeue did, or in a dry run would do (then nothing was changed)."""

    stale: int = 0
    requeued: int = 0
    dead_lettered: int = 0
    task_ids: list[int] = field(default_factory=list)
    requeued_ids: list[int] = field(default_factory=list)
    dead_lettered_ids: list[int] = field(default_factory=list)
    dry_run: bool = False


@dataclass
class WorkerInfo:
    """A registered worker, how long ago it last reported, and how many tasks it holds."""

    worker_id: str
    capabilities: str
    heartbeat_utc: str
    heartbeat_age_seconds: float
    leased_tasks: int


@dataclass
class DeadTask:
    """A task that ran out of attempts ('failed' or the older 'dead_letter')."""

    id: int
    type: str
    status: str
    attempts: int
    max_attempts: int
    error_message: str | None
    finished_at_utc: str | None
    updated_at_utc: str | None


class LeaseManager:
    """Finds and recovers in-flight tasks whose worker is gone, and retries dead tasks.

    Every method opens its own connection and closes it, so one manager may serve several
    threads; writes are serialised per database file inside the engine.
    """

    def __init__(self, db: QueueDatabase | str | Path, *,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.db = db
        self.db_path = database_path_of(db)
        self.busy_timeout_ms = busy_timeout_ms

    def in_flight_tasks(self, timeout_seconds: int = 300) -> list[LeasedTask]:
        """Every leased or processing task, most overdue first, marked stale past the timeout."""
        offset = _offset(_check_timeout(timeout_seconds))
        rows = self._read(_SELECT_IN_FLIGHT, {"offset": offset}, "Listing in-flight tasks")
        return [_leased_task(row) for row in rows]

    def find_stale_leases(self, timeout_seconds: int = 300) -> list[LeasedTask]:
        """In-flight tasks whose lease expired more than ``timeout_seconds`` ago."""
        offset = _offset(_check_timeout(timeout_seconds))
        rows = self._read(_SELECT_STALE, {"offset": offset}, "Looking for stale leases")
        return [_leased_task(row) for row in rows]

    def requeue_stale_leases(self, timeout_seconds: int = 300,
                             dry_run: bool = False) -> RequeueResult:
        """Requeue (or dead-letter at max_attempts) every stale lease; a dry run only previews."""
        timeout = _check_timeout(timeout_seconds)
        if dry_run:
            stale = self.find_stale_leases(timeout)
            return _preview([task.id for task in stale],
                            [task.attempts + 1 >= task.max_attempts for task in stale])
        return self._requeue(_offset(timeout), None, "Requeueing stale leases")

    def requeue_tasks(self, task_ids: list[int]) -> RequeueResult:
        """Requeue chosen in-flight tasks at once, expired or not (after a restore, say)."""
        ids = _check_ids(task_ids)
        if not ids:
            return RequeueResult()
        return self._requeue(None, json.dumps(ids), "Requeueing the chosen tasks")

    def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker with its heartbeat age and in-flight task count."""
        rows = self._read(_SELECT_WORKERS, {}, "Listing workers")
        return [
            WorkerInfo(str(row[0]), str(row[1]), str(row[2]),
                       float(row[3]) if row[3] is not None else float("inf"), int(row[4]))
            for row in rows
        ]

    def active_workers(self, within_seconds: int = 60) -> list[WorkerInfo]:
        """Workers whose last heartbeat is at most ``within_seconds`` old."""
        return [worker for worker in self.list_workers()
                if worker.heartbeat_age_seconds <= within_seconds]

    def dead_tasks(self, limit: int = 500) -> list[DeadTask]:
        """Dead-lettered tasks, most recently changed first."""
        rows = self._read(_SELECT_DEAD, {"limit": max(0, int(limit))}, "Listing dead tasks")
        return [DeadTask(int(row[0]), str(row[1]), str(row[2]), int(row[3]), int(row[4]),
                         row[5], row[6], row[7]) for row in rows]

    def retry_dead_tasks(self, task_ids: list[int]) -> int:
        """Send chosen dead tasks back to 'queued' with attempts reset; the old error is logged."""
        ids = _check_ids(task_ids)
        if not ids:
            return 0
        params = {"ids": json.dumps(ids)}
        with self._writing("Retrying dead tasks") as connection, write_transaction(connection):
            connection.execute(_LOG_RETRY, params)
            return connection.execute(_UPDATE_RETRY, params).rowcount

    def _requeue(self, offset: str | None, ids_json: str | None, action: str) -> RequeueResult:
        """Log and requeue the chosen in-flight tasks in one write transaction.

        The clock is read once, so the log rows and the UPDATE choose the same tasks; the
        write lock taken by BEGIN IMMEDIATE keeps every other writer out between the two
        statements, and the UPDATE re-checks status and expiry itself.
        """
        with self._writing(action) as connection, write_transaction(connection):
            clock = connection.execute(
                "SELECT datetime('now'), datetime('now', :offset)",
                {"offset": offset or "+0 seconds"},
            ).fetchone()
            params = {"now": clock[0], "cutoff": clock[1] if offset else None, "ids": ids_json}
            connection.execute(_LOG_REQUEUE, params)
            changed = connection.execute(_UPDATE_REQUEUE, params).fetchall()
        changed.sort(key=lambda row: int(row[0]))
        task_ids = [int(row[0]) for row in changed]
        requeued = [int(row[0]) for row in changed if row[1] == STATUS_QUEUED]
        dead = [int(row[0]) for row in changed if row[1] != STATUS_QUEUED]
        return RequeueResult(len(changed), len(requeued), len(dead), task_ids, requeued, dead,
                             False)

    def _read(self, sql: str, params: dict[str, object], action: str) -> list[sqlite3.Row]:
        """Run one query on a read-only connection to a queue file, translating errors."""
        try:
            connection = open_read_only(self.db_path, busy_timeout_ms=self.busy_timeout_ms,
                                        error_class=QueueMaintenanceError)
            with closing_connection(connection) as conn:
                require_queue_schema(conn, self.db_path, action)
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise translate_error(error, action, QueueMaintenanceError) from error

    def _writing(self, action: str) -> _WriteSession:
        return _WriteSession(self.db_path, action, self.busy_timeout_ms)


class _WriteSession:
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


def _check_timeout(timeout_seconds: int) -> int:
    try:
        timeout = int(timeout_seconds)
    except (TypeError, ValueError):
        timeout = -1
    if timeout < 0:
        raise QueueMaintenanceError(
            f"Stale lease timeout {timeout_seconds!r} is not a whole number of seconds >= 0; "
            "use for example 300.",
            ErrorKind.INVALID,
        )
    return timeout


def _check_ids(task_ids: list[int]) -> list[int]:
    try:
        return sorted({int(task_id) for task_id in task_ids})
    except (TypeError, ValueError) as error:
        raise QueueMaintenanceError(
            f"Task ids must be whole numbers ({error}); choose the tasks again.",
            ErrorKind.INVALID,
        ) from error


def _offset(timeout: int) -> str:
    return f"-{timeout} seconds"


def _leased_task(row: sqlite3.Row) -> LeasedTask:
    overdue = float(row[8]) if row[8] is not None else None
    return LeasedTask(
        id=int(row[0]), type=str(row[1]), status=str(row[2]), locked_by=row[3],
        lease_until_utc=row[4], reserved_at_utc=row[5], attempts=int(row[6]),
        max_attempts=int(row[7]),
        expired_seconds=overdue if overdue is not None and overdue > 0 else None,
        stale=bool(row[9]),
    )


def _preview(task_ids: list[int], would_die: list[bool]) -> RequeueResult:
    requeued = [task_id for task_id, dies in zip(task_ids, would_die, strict=True) if not dies]
    dead = [task_id for task_id, dies in zip(task_ids, would_die, strict=True) if dies]
    return RequeueResult(len(task_ids), len(requeued), len(dead), list(task_ids),
                         requeued, dead, True)
