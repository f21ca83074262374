"""Stale leases, requeue, dead letters and workers.

A worker that dies holding a task leaves it in flight ('leased', or 'processing' in older
code) with a lease that expires; the task starves until it is requeued. A task counts as
abandoned (stale) only when its lease ran out more than the timeout ago AND its worker has
been silent for more than the timeout, or is unknown (docs/ARCHITECTURE.md, data-safety
rule 8). A task whose lease ran out while its worker still heartbeats is listed apart as
"lease expired, worker alive" (a lease-renewal problem) and is never requeued by the
stale-lease cleanup.

Requeueing is one guarded UPDATE inside ``BEGIN IMMEDIATE`` (rule 5): its WHERE clause
re-checks status, lease expiry and the worker's silence, so a task a worker completes
meanwhile is never touched, a worker heartbeating meanwhile keeps its task, and a second
cleanup finds nothing left to requeue. The SQL lives in :mod:`.lease_queries`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from ..database import (
    BUSY_TIMEOUT_MS,
    QueueDatabase,
    closing_connection,
    database_path_of,
    open_read_only,
    require_queue_schema,
    write_transaction,
)
from ..errors import ErrorKind, QueueMaintenanceError, translate_error
from ..schema import STATUS_QUEUED
from ..write_session import WriteSession
from .lease_queries import (
    CLOCK,
    COUNT_LEASES,
    LOG_REQUEUE,
    LOG_RETRY,
    SELECT_ABANDONED,
    SELECT_CHOSEN,
    SELECT_DEAD,
    SELECT_EXPIRED_WORKER_ALIVE,
    SELECT_IN_FLIGHT,
    SELECT_SPARED_IDS,
    SELECT_WORKERS,
    UPDATE_REQUEUE,
    UPDATE_RETRY,
)

__all__ = [
    "DeadTask",
    "LeaseCounts",
    "LeaseManager",
    "LeasedTask",
    "RequeueResult",
    "TaskWorkers",
    "WorkerInfo",
]


@dataclass
class LeasedTask:
    """A task a worker holds (or held before it died), its lease and its worker's state.

    Judged against one timeout: ``lease_overdue`` when the lease ran out more than the
    timeout ago, ``worker_alive`` when the worker heartbeat within the timeout. ``stale``
    (abandoned, requeued by the cleanup) is overdue with the worker silent or unknown.
    """

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
    lease_overdue: bool = False
    worker_alive: bool = False
    #: Seconds since the worker's last heartbeat; None when it has no ``workers`` row.
    worker_heartbeat_age_seconds: float | None = None

    @property
    def worker_known(self) -> bool:
        """True when the task's worker has a row in ``workers``."""
        return self.worker_heartbeat_age_seconds is not None

    @property
    def expired_worker_alive(self) -> bool:
        """Lease overdue while the worker still heartbeats: a renewal problem, not requeued."""
        return self.lease_overdue and self.worker_alive


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
    #: Tasks whose lease is overdue but whose worker still heartbeats: left alone.
    expired_worker_alive_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class LeaseCounts:
    """How many tasks are in flight, abandoned (stale), and overdue with a live worker."""

    in_flight: int = 0
    stale: int = 0
    expired_worker_alive: int = 0


@dataclass
class TaskWorkers:
    """Chosen in-flight tasks split by whether their worker is still heartbeating.

    ``gone``: the worker has been silent for longer than the window, or is unknown.
    ``alive``: the worker heartbeat within the window; it may still be running the task.
    Tasks no longer in flight are in neither list.
    """

    gone: list[LeasedTask] = field(default_factory=list)
    alive: list[LeasedTask] = field(default_factory=list)


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
        """Every leased or processing task, most overdue first, judged against the timeout."""
        return self._leased(SELECT_IN_FLIGHT, timeout_seconds, "Listing in-flight tasks")

    def find_stale_leases(self, timeout_seconds: int = 300) -> list[LeasedTask]:
        """Abandoned tasks: lease overdue by the timeout AND worker silent that long or unknown."""
        return self._leased(SELECT_ABANDONED, timeout_seconds, "Looking for stale leases")

    def find_expired_live_leases(self, timeout_seconds: int = 300) -> list[LeasedTask]:
        """Tasks whose lease is overdue by the timeout while their worker still heartbeats.

        The worker is alive but did not renew its lease: a problem to look into on that
        worker. These tasks are never requeued by :meth:`requeue_stale_leases`.
        """
        return self._leased(SELECT_EXPIRED_WORKER_ALIVE, timeout_seconds,
                            "Looking for expired leases of live workers")

    def lease_counts(self, timeout_seconds: int = 300) -> LeaseCounts:
        """The numbers behind :meth:`in_flight_tasks`, counted in one cheap pass."""
        offset = timeout_modifier(checked_timeout(timeout_seconds))
        (row,) = self._read(COUNT_LEASES, {"offset": offset}, "Counting stale leases",
                            with_clock=True)
        return LeaseCounts(int(row[0]), int(row[1]), int(row[2]))

    def requeue_stale_leases(self, timeout_seconds: int = 300,
                             dry_run: bool = False) -> RequeueResult:
        """Requeue (or dead-letter at max_attempts) every abandoned task; a dry run previews.

        Tasks of workers that still heartbeat are left alone and listed in
        ``expired_worker_alive_ids``.
        """
        timeout = checked_timeout(timeout_seconds)
        if dry_run:
            stale = self.find_stale_leases(timeout)
            preview = _preview([task.id for task in stale],
                               [task.attempts + 1 >= task.max_attempts for task in stale])
            preview.expired_worker_alive_ids = [
                task.id for task in self.find_expired_live_leases(timeout)]
            return preview
        return self._requeue(timeout_modifier(timeout), None, None, "Requeueing stale leases")

    def requeue_tasks(self, task_ids: list[int], *,
                      spare_workers_seen_within: int | None = None) -> RequeueResult:
        """Requeue chosen in-flight tasks at once, expired or not (after a restore, say).

        With ``spare_workers_seen_within`` (seconds), a task whose worker heartbeat within
        that window is left alone, checked inside the same guarded UPDATE.
        """
        ids = _check_ids(task_ids)
        if not ids:
            return RequeueResult()
        spare = None
        if spare_workers_seen_within is not None:
            spare = timeout_modifier(checked_timeout(spare_workers_seen_within))
        return self._requeue(None, json.dumps(ids), spare, "Requeueing the chosen tasks")

    def task_workers(self, task_ids: list[int], timeout_seconds: int = 300) -> TaskWorkers:
        """Split chosen in-flight tasks by whether their worker heartbeat within the timeout."""
        ids = _check_ids(task_ids)
        if not ids:
            return TaskWorkers()
        tasks = self._leased(SELECT_CHOSEN, timeout_seconds, "Looking at the tasks' workers",
                             {"ids": json.dumps(ids)})
        return TaskWorkers([task for task in tasks if not task.worker_alive],
                           [task for task in tasks if task.worker_alive])

    def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker with its heartbeat age and in-flight task count."""
        rows = self._read(SELECT_WORKERS, {}, "Listing workers")
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
        rows = self._read(SELECT_DEAD, {"limit": max(0, int(limit))}, "Listing dead tasks")
        return [DeadTask(int(row[0]), str(row[1]), str(row[2]), int(row[3]), int(row[4]),
                         row[5], row[6], row[7]) for row in rows]

    def retry_dead_tasks(self, task_ids: list[int]) -> int:
        """Send chosen dead tasks back to 'queued' with attempts reset; the old error is logged."""
        ids = _check_ids(task_ids)
        if not ids:
            return 0
        params = {"ids": json.dumps(ids)}
        with self._writing("Retrying dead tasks") as connection, write_transaction(connection):
            connection.execute(LOG_RETRY, params)
            return connection.execute(UPDATE_RETRY, params).rowcount

    def _requeue(self, offset: str | None, ids_json: str | None, spare_offset: str | None,
                 action: str) -> RequeueResult:
        """Log and requeue the chosen in-flight tasks in one write transaction.

        The clock is read once, so the log rows and the UPDATE choose the same tasks; the
        write lock taken by BEGIN IMMEDIATE keeps every other writer out between the two
        statements, and the UPDATE re-checks status, expiry and the worker's silence itself.
        """
        with self._writing(action) as connection, write_transaction(connection):
            now, cutoff = connection.execute(CLOCK, {"offset": offset or "+0 seconds"}
                                             ).fetchone()
            spare_cutoff = None
            if spare_offset is not None:
                spare_cutoff = connection.execute(CLOCK, {"offset": spare_offset}).fetchone()[1]
            params = {"now": now, "cutoff": cutoff if offset else None, "ids": ids_json,
                      "spare_cutoff": spare_cutoff}
            connection.execute(LOG_REQUEUE, params)
            changed = connection.execute(UPDATE_REQUEUE, params).fetchall()
            spared = [int(row[0]) for row in connection.execute(SELECT_SPARED_IDS, params)]
        changed.sort(key=lambda row: int(row[0]))
        task_ids = [int(row[0]) for row in changed]
        requeued = [int(row[0]) for row in changed if row[1] == STATUS_QUEUED]
        dead = [int(row[0]) for row in changed if row[1] != STATUS_QUEUED]
        return RequeueResult(len(changed), len(requeued), len(dead), task_ids, requeued, dead,
                             False, spared)

    def _leased(self, sql: str, timeout_seconds: int, action: str,
                extra: dict[str, object] | None = None) -> list[LeasedTask]:
        """In-flight tasks chosen by ``sql``, judged against one reading of the clock."""
        offset = timeout_modifier(checked_timeout(timeout_seconds))
        rows = self._read(sql, {"offset": offset, **(extra or {})}, action, with_clock=True)
        return [_leased_task(row) for row in rows]

    def _read(self, sql: str, params: dict[str, object], action: str,
              with_clock: bool = False) -> list[sqlite3.Row]:
        """Run one query on a read-only connection to a queue file, translating errors.

        ``with_clock`` reads ``:now`` and ``:cutoff`` (now moved by ``:offset``) once, in the
        same read transaction, so every row is judged against the same instant.
        """
        try:
            connection = open_read_only(self.db_path, busy_timeout_ms=self.busy_timeout_ms,
                                        error_class=QueueMaintenanceError)
            with closing_connection(connection) as conn:
                require_queue_schema(conn, self.db_path, action)
                if not with_clock:
                    return conn.execute(sql, params).fetchall()
                conn.execute("BEGIN")
                try:
                    now, cutoff = conn.execute(CLOCK, {"offset": params["offset"]}).fetchone()
                    return conn.execute(sql, {**params, "now": now, "cutoff": cutoff}
                                        ).fetchall()
                finally:
                    conn.execute("COMMIT")
        except sqlite3.Error as error:
            raise translate_error(error, action, QueueMaintenanceError) from error

    def _writing(self, action: str) -> WriteSession:
        return WriteSession(self.db_path, action, self.busy_timeout_ms)


def checked_timeout(timeout_seconds: int) -> int:
    """The stale lease timeout as whole seconds >= 0, or QueueMaintenanceError (INVALID)."""
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


def timeout_modifier(timeout: int) -> str:
    """The SQLite date modifier that goes ``timeout`` seconds back: "-300 seconds"."""
    return f"-{timeout} seconds"


def _leased_task(row: sqlite3.Row) -> LeasedTask:
    overdue = float(row[8]) if row[8] is not None else None
    lease_overdue, worker_alive = bool(row[9]), bool(row[10])
    heartbeat_age = None
    if row[11]:
        heartbeat_age = float(row[12]) if row[12] is not None else float("inf")
    return LeasedTask(
        id=int(row[0]), type=str(row[1]), status=str(row[2]), locked_by=row[3],
        lease_until_utc=row[4], reserved_at_utc=row[5], attempts=int(row[6]),
        max_attempts=int(row[7]),
        expired_seconds=overdue if overdue is not None and overdue > 0 else None,
        stale=lease_overdue and not worker_alive, lease_overdue=lease_overdue,
        worker_alive=worker_alive, worker_heartbeat_age_seconds=heartbeat_age,
    )


def _preview(task_ids: list[int], would_die: list[bool]) -> RequeueResult:
    requeued = [task_id for task_id, dies in zip(task_ids, would_die, strict=True) if not dies]
    dead = [task_id for task_id, dies in zip(task_ids, would_die, strict=True) if dies]
    return RequeueResult(len(task_ids), len(requeued), len(dead), list(task_ids),
                         requeued, dead, True)
