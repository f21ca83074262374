"""The live queue against a past state, task by task, computed in SQLite.

The past file is attached read-only to a connection on the live queue and three set-based
statements fill one temporary table, ``temp.rescue_diff``, one row per task that differs:

- ``removed``: in the past state, not in the live queue;
- ``changed``: in both, with some stored column different (which ones are listed); its
  ``changed_at`` is the newest of the live row's time columns, the nearest to when it changed;
- ``added``: in the live queue, not in the past state (created after it).

Everything else (grouping by type, by status change, by minute) is a GROUP BY over that table,
so a diff of two million-task files costs a few passes over their primary keys, never a
Python loop over their rows. :mod:`.merge` builds the same table inside its write transaction.
"""

# SQL text here is built from this package's constants and from column names SQLite itself
# reported for the queue's tables (quoted); every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..database import closing_connection
from ..errors import translate_error
from ..progress import CancelCheck, ProgressCallback, interruptible, report
from .past import PastState
from .sql import (
    HELD_STATUSES,
    PAST,
    RescueError,
    attach_read_only,
    guard_untrusted,
    open_live,
    shared_columns,
)

KIND_REMOVED = "removed"
KIND_CHANGED = "changed"
KIND_ADDED = "added"
KINDS = (KIND_REMOVED, KIND_CHANGED, KIND_ADDED)
STAGE_DIFF = "Comparing the live queue with the past state"
#: Shown for a status a task has no value for (a removed task now, an added one then).
NO_STATUS = "-"


@dataclass(frozen=True)
class DiffGroup:
    """The tasks of one type with one change of status: a leaf of the admin's tree."""

    kind: str
    type: str
    status_then: str | None
    status_now: str | None
    ids: tuple[int, ...]

    @property
    def count(self) -> int:
        """How many tasks the group holds."""
        return len(self.ids)

    @property
    def status_change(self) -> str:
        """``queued -> failed``; a removed task shows ``-`` now, an added one ``-`` then."""
        return f"{self.status_then or NO_STATUS} -> {self.status_now or NO_STATUS}"


@dataclass(frozen=True)
class QueueDiff:
    """What differs between the live queue and a past state, counts first, ids behind them."""

    live: Path
    past: str
    removed: int
    changed: int
    added: int
    #: Type -> status change -> ids, ordered by type, kind and count.
    groups: tuple[DiffGroup, ...]
    #: Minute of change (``YYYY-MM-DD HH:MM`` UTC) -> kind -> count; removed tasks carry no
    #: time of removal and are left out.
    by_minute: dict[str, dict[str, int]]
    #: Stored column -> how many changed tasks differ in it.
    changed_columns: dict[str, int]
    #: Changed tasks a worker holds now (a rescue leaves them alone).
    held_now: int
    #: Task ids salvage could not read (a damaged past state only), else 0.
    unreadable_ids: int = 0
    seconds: float = 0.0

    @property
    def by_type(self) -> dict[str, dict[str, int]]:
        """Type -> kind -> count."""
        counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
        for group in self.groups:
            counts[group.type][group.kind] += group.count
        return dict(sorted(counts.items()))

    @property
    def by_status_change(self) -> dict[str, dict[str, int]]:
        """Kind -> status change -> count."""
        counts: dict[str, dict[str, int]] = {kind: defaultdict(int) for kind in KINDS}
        for group in self.groups:
            counts[group.kind][group.status_change] += group.count
        return {kind: dict(sorted(changes.items(), key=lambda item: -item[1]))
                for kind, changes in counts.items()}

    def ids_of(self, kind: str) -> list[int]:
        """Every id of one kind, ascending."""
        return sorted(task_id for group in self.groups if group.kind == kind
                      for task_id in group.ids)

    def as_dict(self, *, with_ids: bool = False) -> dict[str, Any]:
        """Plain data for ``--json``: counts by kind, type, status change and minute."""
        data: dict[str, Any] = {
            "live": str(self.live), "past": self.past, "removed": self.removed,
            "changed": self.changed, "added": self.added, "held_now": self.held_now,
            "unreadable_ids": self.unreadable_ids, "by_type": self.by_type,
            "by_status_change": self.by_status_change, "by_minute": self.by_minute,
            "changed_columns": self.changed_columns,
            "groups": [{"type": group.type, "kind": group.kind,
                        "status_then": group.status_then, "status_now": group.status_now,
                        "count": group.count, **({"ids": list(group.ids)} if with_ids else {})}
                       for group in self.groups],
        }
        return data


def diff_queue(live: str | Path, past: PastState, progress: ProgressCallback | None = None,
               cancelled: CancelCheck | None = None) -> QueueDiff:
    """Compare the live queue with ``past`` (see the module docstring); reads only.

    The live queue is read in one read transaction, so the diff is one consistent moment of
    it while writers go on.
    """
    live = Path(live)
    started = time.monotonic()
    action = f"Comparing '{live}' with {past.label}"
    with closing_connection(open_live(live, action)) as connection:
        attach_read_only(connection, past.path, PAST, action)
        guard_untrusted(connection)
        report(progress, 0, 1, STAGE_DIFF)
        try:
            with interruptible(connection, cancelled):
                connection.execute("BEGIN")
                try:
                    build_diff_table(connection, unreadable=unreadable_ranges(past))
                    diff = read_diff(connection, live, past.label)
                finally:
                    connection.execute("ROLLBACK")
        except sqlite3.Error as error:
            raise translate_error(error, action, RescueError) from error
    report(progress, 1, 1, STAGE_DIFF)
    unreadable = past.salvage.unreadable_ids if past.salvage is not None else 0
    return replace(diff, unreadable_ids=unreadable, seconds=time.monotonic() - started)


def unreadable_ranges(past: PastState) -> list[tuple[int, int]]:
    """Task id ranges a damaged past state could not give (none for a backup or an instant)."""
    if past.salvage is None:
        return []
    return list(past.salvage.unreadable_ranges.get("task_queue", []))


def build_diff_table(connection: sqlite3.Connection, *, with_added: bool = True,
                     only: str | None = None,
                     unreadable: list[tuple[int, int]] | None = None) -> list[str]:
    """Fill ``temp.rescue_diff`` (see the module docstring); return the compared columns.

    ``only`` names a table of ids (column ``id``) to compare instead of every task.
    ``unreadable`` are id ranges the past state could not read (a damaged file): a live task
    there is not known to be new, so it is not listed as added.

    Columns: id, kind, type (the past type, the live one for an added task), status_then,
    status_now, changed_at (UTC text), columns (the changed ones, comma separated), held
    (a worker holds it now), same_task (the live row is the same task: same creation
    time and type; a task never changes its type).
    """
    columns = shared_columns(connection, "task_queue")
    if "id" not in columns:
        raise RescueError("The past state has no task ids to compare; it is not a queue.")
    compared = [name for name in columns if name != "id"]

    def rows_of(table: str, alias: str) -> str:
        """Every row of ``table``, or only the listed ids (driven from the list)."""
        if only:
            return f"{only} AS c CROSS JOIN {table} AS {alias} ON {alias}.id = c.id"
        return f"{table} AS {alias}"

    def missing_from(first: str, second: str, alias: str) -> str:
        """Rows of ``first`` whose id ``second`` lacks.

        Over the whole queue this is a set difference of two id lists, which SQLite reads
        from the smallest index of each table instead of the rows themselves.
        """
        if only:
            return (f"{rows_of(first, alias)} WHERE NOT EXISTS"
                    f" (SELECT 1 FROM {second} AS o WHERE o.id = {alias}.id)")
        return (f"{first} AS {alias} WHERE {alias}.id IN"
                f" (SELECT id FROM {first} EXCEPT SELECT id FROM {second})")

    connection.execute("DROP TABLE IF EXISTS temp.rescue_diff")
    connection.execute(
        "CREATE TEMP TABLE rescue_diff (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, type TEXT,"
        " status_then TEXT, status_now TEXT, changed_at TEXT, columns TEXT,"
        " held INTEGER NOT NULL DEFAULT 0, same_task INTEGER NOT NULL DEFAULT 1)")
    connection.execute(
        "INSERT INTO temp.rescue_diff (id, kind, type, status_then)"
        f" SELECT p.id, '{KIND_REMOVED}', p.type, p.status"
        f" FROM {missing_from(PAST + '.task_queue', 'main.task_queue', 'p')}")
    differs = " OR ".join(f'l."{name}" IS NOT p."{name}"' for name in compared)
    which = " || ".join(f"""CASE WHEN l."{name}" IS NOT p."{name}" THEN '{name},' ELSE '' END"""
                        for name in compared)
    times = [name for name in ("updated_at_utc", "reserved_at_utc", "processing_started_utc",
                               "finished_at_utc") if name in columns]
    changed_at = ("(SELECT max(v) FROM (" + " UNION ALL ".join(
        f'SELECT l."{name}" AS v' for name in times) + "))") if times else "NULL"
    held = (f"(l.status IN {HELD_STATUSES!r} AND coalesce("
            "julianday(l.lease_until_utc) > julianday('now'), 1))")
    identity = [f'l."{name}" IS p."{name}"' for name in ("created_at_utc", "type")
                if name in columns]
    same = "(" + " AND ".join(identity) + ")" if identity else "1"
    connection.execute(
        "INSERT INTO temp.rescue_diff (id, kind, type, status_then, status_now, changed_at,"
        " columns, held, same_task)"
        f" SELECT l.id, '{KIND_CHANGED}', p.type, p.status, l.status, {changed_at},"
        f" rtrim({which}, ','), {held}, {same}"
        f" FROM {rows_of('main.task_queue', 'l')} JOIN {PAST}.task_queue AS p ON p.id = l.id"
        f" WHERE {differs}")
    if with_added:
        created = '"created_at_utc"' if "created_at_utc" in columns else "NULL"
        connection.execute(
            "INSERT INTO temp.rescue_diff (id, kind, type, status_now, changed_at, held)"
            f" SELECT l.id, '{KIND_ADDED}', l.type, l.status, l.{created}, {held}"
            f" FROM {missing_from('main.task_queue', PAST + '.task_queue', 'l')}")
        if unreadable:
            connection.execute("DROP TABLE IF EXISTS temp.rescue_unreadable")
            connection.execute("CREATE TEMP TABLE rescue_unreadable (first INTEGER, last INTEGER)")
            connection.executemany("INSERT INTO temp.rescue_unreadable VALUES (?, ?)",
                                   unreadable)
            connection.execute(
                f"DELETE FROM temp.rescue_diff WHERE kind = '{KIND_ADDED}' AND EXISTS (SELECT 1"
                " FROM temp.rescue_unreadable AS u WHERE rescue_diff.id BETWEEN u.first"
                " AND u.last)")
    return columns


def read_diff(connection: sqlite3.Connection, live: Path, past_label: str) -> QueueDiff:
    """Group ``temp.rescue_diff`` the way an admin reads it."""
    totals = dict.fromkeys(KINDS, 0)
    for kind, count in connection.execute(
            "SELECT kind, count(*) FROM temp.rescue_diff GROUP BY kind"):
        totals[str(kind)] = int(count)
    groups = _groups(connection.execute(
        "SELECT type, kind, status_then, status_now, id FROM temp.rescue_diff"
        " ORDER BY type, kind, status_then, status_now, id"))
    by_minute: dict[str, dict[str, int]] = defaultdict(dict)
    for minute, kind, count in connection.execute(
            "SELECT substr(changed_at, 1, 16) AS minute, kind, count(*) FROM temp.rescue_diff"
            f" WHERE kind <> '{KIND_REMOVED}' AND changed_at IS NOT NULL"
            " GROUP BY minute, kind ORDER BY minute"):
        by_minute[str(minute)][str(kind)] = int(count)
    changed_columns: dict[str, int] = defaultdict(int)
    for columns, count in connection.execute(
            "SELECT columns, count(*) FROM temp.rescue_diff"
            f" WHERE kind = '{KIND_CHANGED}' GROUP BY columns"):
        for name in str(columns or "").split(","):
            if name:
                changed_columns[name] += int(count)
    held = connection.execute(
        f"SELECT count(*) FROM temp.rescue_diff WHERE kind = '{KIND_CHANGED}' AND held"
    ).fetchone()[0]
    return QueueDiff(live=live, past=past_label, removed=totals[KIND_REMOVED],
                     changed=totals[KIND_CHANGED], added=totals[KIND_ADDED],
                     groups=tuple(groups), by_minute=dict(by_minute),
                     changed_columns=dict(sorted(changed_columns.items(),
                                                 key=lambda item: -item[1])),
                     held_now=int(held))


def _groups(rows: Iterable[sqlite3.Row]) -> list[DiffGroup]:
    groups: list[DiffGroup] = []
    current: tuple[Any, ...] | None = None
    ids: list[int] = []
    for task_type, kind, then, now, task_id in rows:
        key = (task_type, kind, then, now)
        if key != current:
            if current is not None:
                groups.append(DiffGroup(current[1], str(current[0]), current[2], current[3],
                                        tuple(ids)))
            current, ids = key, []
        ids.append(int(task_id))
    if current is not None:
        groups.append(DiffGroup(current[1], str(current[0]), current[2], current[3], tuple(ids)))
    return groups


__all__ = ["KINDS", "KIND_ADDED", "KIND_CHANGED", "KIND_REMOVED", "DiffGroup", "QueueDiff",
           "build_diff_table", "diff_queue", "read_diff", "unreadable_ranges"]
