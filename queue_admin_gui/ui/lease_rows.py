"""How the Leases tab shows its tasks: the columns of its lists and sentences about many ids.

The columns read the compact lists of :mod:`..core.lease_table` one cell at a time, so only
the rows on screen are ever turned into text; each also gives the sort keys of every row at
once, as arrays. A sentence about tasks names a few ids or their range, never all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..core.leases.lease_table import DeadTaskTable, LeaseTable
from .table_model import ListColumn, category_keys
from .widgets import format_age

DASH = "\u2013"
#: Workers named at most in the sentence about expired leases of live workers.
WORKERS_NAMED = 10


def utc_text(text: str | None) -> str:
    """A stored UTC time as shown, with its zone named; a dash when there is none."""
    return f"{text} UTC" if text else DASH


def ids_sentence(ids: Sequence[int] | np.ndarray, limit: int = 30) -> str:
    """Task ids for a sentence: the first ``limit``, then how many more."""
    shown = ", ".join(str(int(task_id)) for task_id in ids[:limit])
    more = len(ids) - limit
    return f"{shown} and {more:,} more" if more > 0 else shown


def ids_summary(ids: Sequence[int] | np.ndarray) -> str:
    """How many tasks and the range of their ids: "100,000 tasks: IDs 17-100,016"."""
    values = np.asarray(ids, dtype=np.int64)
    if not values.size:
        return "no tasks"
    low, high = int(values.min()), int(values.max())
    if values.size == 1:
        return f"1 task: ID {low}"
    return f"{values.size:,} tasks: IDs {low:,}-{high:,}"


def renewal_sentence(table: LeaseTable) -> tuple[str, str] | None:
    """The sentence and tooltip about expired leases of live workers; None when there are none.

    The worker is alive but does not renew its leases: look at it; its tasks are not requeued.
    """
    renewal = table.expired_worker_alive
    count = int(np.count_nonzero(renewal))
    if not count:
        return None
    ids = np.sort(table.ids[renewal])
    workers = sorted(table.owners[code] or "?" for code in np.unique(table.owner_codes[renewal]))
    named = ", ".join(workers[:WORKERS_NAMED])
    if len(workers) > WORKERS_NAMED:
        named += f" and {len(workers) - WORKERS_NAMED:,} more workers"
    return (f"Lease expired, worker alive: {count:,} tasks (IDs {ids_sentence(ids)}) held by "
            f"{named}. Those workers still heartbeat but do not renew their leases; look into "
            "them. These tasks are not requeued.",
            f"Lease expired, worker alive: {ids_summary(ids)}.")


def state_text(table: LeaseTable, row: int) -> str:
    """What the State column says: stale, expired with a live worker, or nothing."""
    if not table.lease_overdue[row]:
        return ""
    return "expired, worker alive" if table.worker_alive[row] else "stale"


def is_stale(table: LeaseTable, row: int) -> bool:
    """True for an abandoned task (its row is highlighted)."""
    return bool(table.lease_overdue[row]) and not bool(table.worker_alive[row])


def _state_keys(table: LeaseTable) -> np.ndarray:
    return table.lease_overdue.astype(np.int8) * (2 - table.worker_alive.astype(np.int8))


def _overdue(table: LeaseTable, row: int) -> str:
    seconds = float(table.overdue[row])
    return "not yet" if seconds != seconds else format_age(seconds)


def _worker_seen(table: LeaseTable, row: int) -> str:
    age = float(table.heartbeat_age[row])
    return "unknown worker" if age != age else f"{format_age(age)} ago"


def _worker_seen_keys(table: LeaseTable) -> np.ndarray:
    return np.where(np.isnan(table.heartbeat_age), np.inf, table.heartbeat_age)


def _owner(table: LeaseTable, row: int) -> str:
    return table.owners[table.owner_codes[row]] or DASH


def in_flight_columns(preview: Callable[[int], str],
                      preview_keys: Callable[[np.ndarray], np.ndarray]) -> list[ListColumn]:
    """The in-flight list's columns; ``preview`` says what a requeue would do to a task id."""
    return [
        ListColumn("ID", lambda t, r: str(t.ids[r]), lambda t: t.ids, numeric=True),
        ListColumn("Type", lambda t, r: str(t.types[t.type_codes[r]]),
                   lambda t: category_keys(t.type_codes, t.types)),
        ListColumn("Status", lambda t, r: str(t.statuses[t.status_codes[r]]),
                   lambda t: category_keys(t.status_codes, t.statuses)),
        ListColumn("Owner (worker)", _owner, lambda t: category_keys(t.owner_codes, t.owners)),
        ListColumn("Lease expires", lambda t, r: utc_text(t.lease_until_text(r)),
                   lambda t: t.lease_until),
        ListColumn("Overdue", _overdue, lambda t: t.overdue, numeric=True,
                   tooltip="How long ago the lease ran out."),
        ListColumn("Attempts", lambda t, r: f"{t.attempts[r]} of {t.max_attempts[r]}",
                   lambda t: t.attempts, numeric=True),
        ListColumn("Worker seen", _worker_seen, _worker_seen_keys, numeric=True,
                   tooltip="When the task's worker last sent a heartbeat."),
        ListColumn("State", state_text, _state_keys,
                   tooltip="stale: lease expired and worker silent for longer than the "
                           "timeout (or unknown), requeued by a requeue. expired, worker "
                           "alive: the worker still heartbeats but did not renew its lease; "
                           "never requeued from here."),
        ListColumn("Requeue would", lambda t, r: preview(int(t.ids[r])),
                   lambda t: preview_keys(t.ids),
                   tooltip="Filled in by Preview: what a requeue would do to this task."),
    ]


def _dead_keys(position: int) -> Callable[[DeadTaskTable], np.ndarray]:
    return lambda table: np.array([row[position] for row in table.rows], dtype=np.int64)


def _finished(table: DeadTaskTable, row: int) -> str:
    values = table.rows[row]
    return utc_text(values[6] or values[7])


def dead_columns() -> list[ListColumn]:
    """The dead-task list's columns (rows are id, type, status, attempts, max, error, times)."""
    return [
        ListColumn("ID", lambda t, r: str(t.rows[r][0]), _dead_keys(0), numeric=True),
        ListColumn("Type", lambda t, r: t.rows[r][1]),
        ListColumn("Attempts", lambda t, r: f"{t.rows[r][3]} of {t.rows[r][4]}",
                   _dead_keys(3), numeric=True),
        ListColumn("Finished", _finished),
        ListColumn("Last error", lambda t, r: t.rows[r][5] or DASH),
    ]
