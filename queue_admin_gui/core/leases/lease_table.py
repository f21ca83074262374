"""The Leases tab's lists, read compactly: a few arrays for 100,000 tasks, not 100,000 objects.

A queue whose workers died can hold a hundred thousand in-flight tasks. Read as one Python
object per task, such a list costs tens of megabytes, keeps the garbage collector busy in
every thread and takes long to drop again. Here each column is one array (ids, attempts, the
lease's end as seconds since 1970, flags) and each text column is a short list of distinct
values plus one small code per task, so a list is a handful of objects whatever its length,
and a window refreshing it keeps its memory flat. :meth:`LeaseTable.task` builds the
:class:`~.leases.LeasedTask` of one row when someone needs it.

The rule for an abandoned task is the one of :mod:`.lease_queries` (data-safety rule 8); the
queries here only choose which columns come back. Every list is read in one read
transaction against one reading of the clock.
"""

from __future__ import annotations

import sqlite3
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..database import BUSY_TIMEOUT_MS, closing_connection, open_read_only, require_queue_schema
from ..errors import OperationCancelled, QueueMaintenanceError, translate_error
from .lease_queries import (
    CLOCK,
    COUNT_DEAD,
    SELECT_DEAD,
    SELECT_IN_FLIGHT_COLUMNS,
    SELECT_REQUEUE_PLAN,
)
from .manager import DeadTask, LeasedTask, checked_timeout, timeout_modifier

#: What a stale-lease requeue would do to a task (codes of :attr:`RequeuePlan.actions`).
REQUEUE, DEAD_LETTER, LEAVE_ALONE = 1, 2, 3
#: Rows read between two looks at ``cancelled()``.
_CHECK_EVERY = 5_000


class _Codes:
    """Distinct values of a text column, each stored once; rows hold the value's number."""

    def __init__(self) -> None:
        self.numbers: dict[str | None, int] = {}

    def code(self, value: str | None) -> int:
        return self.numbers.setdefault(value, len(self.numbers))

    def values(self) -> list[str | None]:
        return list(self.numbers)


@dataclass(eq=False)
class LeaseTable:
    """In-flight tasks as columns, most overdue first, judged against one timeout.

    ``overdue`` is NaN for a lease that has not run out; ``heartbeat_age`` is NaN for a task
    whose worker has no ``workers`` row and infinite for one whose heartbeat is unreadable.
    ``lease_until`` is NaN when there is no lease or its text is not a time; the text of
    the latter is kept in ``lease_text`` by row.
    """

    ids: np.ndarray
    type_codes: np.ndarray
    types: list[str | None]
    status_codes: np.ndarray
    statuses: list[str | None]
    owner_codes: np.ndarray
    owners: list[str | None]
    lease_until: np.ndarray
    lease_text: dict[int, str]
    attempts: np.ndarray
    max_attempts: np.ndarray
    overdue: np.ndarray
    heartbeat_age: np.ndarray
    lease_overdue: np.ndarray
    worker_alive: np.ndarray
    timeout_seconds: int
    read_at: float

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def stale(self) -> np.ndarray:
        """Per row: abandoned (lease overdue, worker silent or unknown), requeued by a cleanup."""
        return self.lease_overdue & ~self.worker_alive

    @property
    def expired_worker_alive(self) -> np.ndarray:
        """Per row: lease overdue while the worker heartbeats; never requeued from here."""
        return self.lease_overdue & self.worker_alive

    def task(self, row: int) -> LeasedTask:
        """The task of one row as the rest of the engine knows it (without its claim time)."""
        overdue = float(self.overdue[row])
        age = float(self.heartbeat_age[row])
        lease_overdue, alive = bool(self.lease_overdue[row]), bool(self.worker_alive[row])
        return LeasedTask(
            id=int(self.ids[row]), type=str(self.types[self.type_codes[row]]),
            status=str(self.statuses[self.status_codes[row]]),
            locked_by=self.owners[self.owner_codes[row]],
            lease_until_utc=self.lease_until_text(row), reserved_at_utc=None,
            attempts=int(self.attempts[row]), max_attempts=int(self.max_attempts[row]),
            expired_seconds=None if overdue != overdue else overdue,
            stale=lease_overdue and not alive, lease_overdue=lease_overdue,
            worker_alive=alive, worker_heartbeat_age_seconds=None if age != age else age)

    def lease_until_text(self, row: int) -> str | None:
        """The lease's end as UTC text ("2026-05-01 10:41:07"), or None without a lease."""
        moment = float(self.lease_until[row])
        if moment != moment:
            return self.lease_text.get(row)
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(round(moment)))


@dataclass(eq=False)
class DeadTaskTable:
    """The newest dead tasks as plain row tuples, and how many dead tasks there are in all."""

    rows: list[tuple[int, str, str, int, int, str | None, str | None, str | None]]
    total: int

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def truncated(self) -> bool:
        """True when the queue holds more dead tasks than were read."""
        return self.total > len(self.rows)

    def task(self, row: int) -> DeadTask:
        """The dead task of one row."""
        return DeadTask(*self.rows[row])


@dataclass(eq=False)
class LeaseLists:
    """In-flight tasks and dead tasks, read in one read transaction."""

    in_flight: LeaseTable
    dead: DeadTaskTable


@dataclass(eq=False)
class RequeuePlan:
    """What a stale-lease requeue would do, by task id (ascending), read without changing."""

    ids: np.ndarray
    actions: np.ndarray
    timeout_seconds: int

    def ids_of(self, action: int) -> np.ndarray:
        """The ids a requeue would treat as ``action`` (REQUEUE, DEAD_LETTER, LEAVE_ALONE)."""
        return self.ids[self.actions == action]

    def count(self, action: int) -> int:
        """How many tasks a requeue would treat as ``action``."""
        return int(np.count_nonzero(self.actions == action))

    @property
    def touched_ids(self) -> np.ndarray:
        """The ids a requeue would change: back to the queue or to the dead letters."""
        return self.ids[self.actions != LEAVE_ALONE]


def read_lease_lists(db_path: Path, timeout_seconds: int, dead_limit: int,
                     cancelled: Callable[[], bool] = lambda: False,
                     busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> LeaseLists:
    """In-flight tasks judged against the timeout, and the newest ``dead_limit`` dead tasks."""
    offset = timeout_modifier(checked_timeout(timeout_seconds))

    def read(connection: sqlite3.Connection, now: str, cutoff: str) -> LeaseLists:
        rows = connection.execute(SELECT_IN_FLIGHT_COLUMNS, {"now": now, "cutoff": cutoff})
        in_flight = _lease_table(rows, timeout_seconds, cancelled)
        (total,) = connection.execute(COUNT_DEAD).fetchone()
        dead = connection.execute(SELECT_DEAD, {"limit": max(0, int(dead_limit))}).fetchall()
        return LeaseLists(in_flight, DeadTaskTable(
            [(int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), r[5], r[6], r[7])
             for r in dead], int(total)))

    return _in_read_transaction(db_path, offset, "Listing in-flight tasks", read,
                                busy_timeout_ms)


def plan_requeue(db_path: Path, timeout_seconds: int,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> RequeuePlan:
    """What a stale-lease requeue would do now to each overdue task; nothing is changed."""
    timeout = checked_timeout(timeout_seconds)

    def read(connection: sqlite3.Connection, now: str, cutoff: str) -> RequeuePlan:
        ids, actions = array("q"), array("b")
        for task_id, action in connection.execute(SELECT_REQUEUE_PLAN, {"cutoff": cutoff}):
            ids.append(task_id)
            actions.append(action)
        return RequeuePlan(np.frombuffer(ids, dtype=np.int64).copy(),
                           np.frombuffer(actions, dtype=np.int8).copy(), timeout)

    return _in_read_transaction(db_path, timeout_modifier(timeout), "Previewing a requeue", read,
                                busy_timeout_ms)


def _in_read_transaction(db_path: Path, offset: str, action: str,
                         read: Callable[[sqlite3.Connection, str, str], object],
                         busy_timeout_ms: int) -> object:
    try:
        connection = open_read_only(db_path, busy_timeout_ms=busy_timeout_ms,
                                    error_class=QueueMaintenanceError)
        with closing_connection(connection) as conn:
            require_queue_schema(conn, db_path, action)
            conn.execute("BEGIN")
            try:
                now, cutoff = conn.execute(CLOCK, {"offset": offset}).fetchone()
                return read(conn, now, cutoff)
            finally:
                conn.execute("COMMIT")
    except sqlite3.Error as error:
        raise translate_error(error, action, QueueMaintenanceError) from error


def _lease_table(rows: Iterable[tuple], timeout_seconds: int,
                 cancelled: Callable[[], bool]) -> LeaseTable:
    """Fill the columns row by row, so no list of row objects is ever held."""
    types, statuses, owners = _Codes(), _Codes(), _Codes()
    ids, attempts, max_attempts = array("q"), array("q"), array("q")
    type_codes, status_codes, owner_codes = array("l"), array("l"), array("l")
    lease_until, overdue, heartbeat_age = array("d"), array("d"), array("d")
    flags = array("b")
    lease_text: dict[int, str] = {}
    nan = float("nan")
    for row, (task_id, kind, status, owner, until, until_text, tries, most, late,
              lease_over, alive, known, age) in enumerate(rows):
        if row % _CHECK_EVERY == 0 and cancelled():
            raise OperationCancelled("Listing in-flight tasks was cancelled.")
        ids.append(task_id)
        type_codes.append(types.code(kind))
        status_codes.append(statuses.code(status))
        owner_codes.append(owners.code(owner))
        if until is None:
            lease_until.append(nan)
            if until_text is not None:
                lease_text[row] = str(until_text)
        else:
            lease_until.append(until)
        attempts.append(tries)
        max_attempts.append(most)
        overdue.append(late if late is not None and late > 0 else nan)
        heartbeat_age.append(nan if not known else (age if age is not None else float("inf")))
        flags.append((1 if lease_over else 0) | (2 if alive else 0))
    flag_values = np.frombuffer(flags, dtype=np.int8) if flags else np.zeros(0, np.int8)
    return LeaseTable(
        ids=_column(ids, np.int64), type_codes=_column(type_codes, np.int_),
        types=types.values(), status_codes=_column(status_codes, np.int_),
        statuses=statuses.values(), owner_codes=_column(owner_codes, np.int_),
        owners=owners.values(), lease_until=_column(lease_until, np.float64),
        lease_text=lease_text, attempts=_column(attempts, np.int64),
        max_attempts=_column(max_attempts, np.int64), overdue=_column(overdue, np.float64),
        heartbeat_age=_column(heartbeat_age, np.float64),
        lease_overdue=(flag_values & 1).astype(bool),
        worker_alive=(flag_values & 2).astype(bool),
        timeout_seconds=int(timeout_seconds), read_at=time.time())


def _column(values: array, dtype: type) -> np.ndarray:
    """An array's values as a numpy column of its own (the array may then be dropped)."""
    if not values:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(values, dtype=np.dtype(values.typecode)).astype(dtype, copy=True)
