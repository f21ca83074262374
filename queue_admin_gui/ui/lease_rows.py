"""How the Leases tab shows an in-flight task: its lease, its worker, and its state."""

from __future__ import annotations

from collections.abc import Callable

from ..core.leases import LeasedTask
from .widgets import Column, format_age


def utc_text(text: str | None) -> str:
    """A stored UTC time as shown, with its zone named; a dash when there is none."""
    return f"{text} UTC" if text else "\u2013"


def _overdue(task: LeasedTask) -> str:
    if task.expired_seconds is None:
        return "not yet"
    return format_age(task.expired_seconds)


def _worker_seen(task: LeasedTask) -> str:
    if task.worker_heartbeat_age_seconds is None:
        return "unknown worker"
    return f"{format_age(task.worker_heartbeat_age_seconds)} ago"


def lease_state(task: LeasedTask) -> str:
    """What the State column says: stale, expired with a live worker, or nothing."""
    if task.stale:
        return "stale"
    if task.expired_worker_alive:
        return "expired, worker alive"
    return ""


def ids_sentence(ids: list[int], limit: int = 30) -> str:
    """Task ids for a sentence: the first ``limit``, then how many more."""
    shown = ", ".join(str(task_id) for task_id in ids[:limit])
    more = len(ids) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def in_flight_columns(preview: Callable[[LeasedTask], str]) -> list[Column[LeasedTask]]:
    """The in-flight table's columns; ``preview`` says what a requeue would do to a task."""
    return [
        Column("ID", lambda t: str(t.id), numeric=True, sort_key=lambda t: t.id),
        Column("Type", lambda t: t.type),
        Column("Status", lambda t: t.status),
        Column("Owner (worker)", lambda t: t.locked_by or "\u2013"),
        Column("Lease expires", lambda t: utc_text(t.lease_until_utc)),
        Column("Overdue", _overdue, numeric=True,
               tooltip="How long ago the lease ran out."),
        Column("Attempts", lambda t: f"{t.attempts} of {t.max_attempts}", numeric=True),
        Column("Worker seen", _worker_seen, numeric=True,
               sort_key=lambda t: (t.worker_heartbeat_age_seconds
                                   if t.worker_heartbeat_age_seconds is not None
                                   else float("inf")),
               tooltip="When the task's worker last sent a heartbeat."),
        Column("State", lease_state,
               tooltip="stale: lease expired and worker silent for longer than the "
                       "timeout (or unknown), requeued by a requeue. expired, worker "
                       "alive: the worker still heartbeats but did not renew its lease; "
                       "never requeued from here."),
        Column("Requeue would", preview,
               tooltip="Filled in by Preview: what a requeue would do to this task."),
    ]
