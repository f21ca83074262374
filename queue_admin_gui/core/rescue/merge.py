"""Putting chosen tasks back as they were in a past state, beside running workers.

A rescue runs in two passes over the same SQL (:func:`.diff.build_diff_table`):

1. The plan, in a read transaction: the diff, the selection applied, and the skips
   (a task a worker holds now, an id that now belongs to another task, an idempotency key
   another live task has taken). A dry run stops here.
2. One ``BEGIN IMMEDIATE`` transaction re-checks exactly the planned tasks against the
   live rows of that moment, writes the live rows it will replace into the undo file, and
   puts the tasks back: a changed task gets its past row, a removed one is inserted with its
   id and its task_logs rows; the id counters end at or above both files'. Workers wait for
   that one short transaction (their busy timeout covers it) and never see half of it.

Before anything is written the whole queue is kept as it was, one of two ways. When an
archiver is archiving this queue, the transaction, once it holds the write lock, asks it to
prove that the archive holds every commit so far (:mod:`..archive.safety_point`): the
archive's instant is then the safety copy. Its generation is checked in full on another
thread while the tasks are put back, and the transaction commits only if that check finds
the instant restorable. Otherwise (no archiver, no proof within two seconds, a failed check:
the transaction is rolled back) a safety backup is taken first with the engine's backup,
while workers go on, and the rescue runs again.

Never touched: a task a worker holds now (``leased``/``processing`` with a lease that has not
expired, or none that can be read), a task added after the past state, a task outside the
selection. The undo file holds the live rows as they were just before, for :mod:`.undo`.
"""

# SQL text here is built from this package's constants and from column names SQLite itself
# reported for the queue's tables (quoted); every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..archive.safety_point import (
    NOT_PROVEN,
    KnownDigest,
    SafetyPoint,
    archiving_this,
    confirm_safety_point,
    hash_snapshot_ahead,
    prove_archived,
)
from ..backups.backup_store import BackupStore
from ..database import closing_connection
from ..errors import OperationCancelled, QueueAdminError, translate_error
from ..progress import CancelCheck, ProgressCallback, interruptible, raise_if_cancelled, report
from .diff import (
    KIND_ADDED,
    KIND_CHANGED,
    KIND_REMOVED,
    build_diff_table,
    unreadable_ranges,
)
from .past import PastState
from .sql import (
    PAST,
    RescueError,
    attach_read_only,
    guard_untrusted,
    has_table,
    open_live,
    quoted,
    shared_columns,
)
from .undo_file import (
    UNDO_SCHEMA,
    RescueSkip,
    create_undo_file,
    publish_undo_file,
    remove_partial_undo,
    undo_file_name,
)

#: Sub-folders of the backup folder: safety backups taken before a rescue, and undo files.
SAFETY_FOLDER_NAME = "pre-rescue"
UNDO_FOLDER_NAME = "rescue-undo"
SAFETY_BACKUP_NAME = "pre_rescue"
#: Safety backups kept in ``pre-rescue``; older ones are pruned after each rescue or undo.
SAFETY_KEEP_COUNT = 5
STAGE_PLAN = "Working out what to put back"
STAGE_SAFETY = "Taking the safety backup"
STAGE_WRITE = "Putting the tasks back"

SKIP_HELD = "held_by_worker"
SKIP_CONFLICT = "idempotency_conflict"
SKIP_ID_REUSED = "id_reused"
SKIP_ADDED = "added_after_past"
SKIP_UNCHANGED = "unchanged"
SKIP_NOT_FOUND = "not_found"
SKIP_OUTSIDE = "outside_selection"
SKIP_UNREADABLE = "unreadable_in_past"


@dataclass(frozen=True)
class RescueSelection:
    """Which of the differing tasks to put back; empty filters let everything through.

    ``status_now`` and the time window apply to changed tasks (a removed task has neither a
    status now nor a known time of removal); ``removed`` / ``changed`` choose the kinds.
    """

    types: frozenset[str] = frozenset()
    removed: bool = True
    changed: bool = True
    status_now: frozenset[str] = frozenset()
    changed_after: datetime | None = None
    changed_before: datetime | None = None
    ids: frozenset[int] | None = None

    def describe(self) -> str:
        """One phrase: what this selection takes."""
        kinds = ("removed and changed" if self.removed and self.changed
                 else "removed" if self.removed else "changed" if self.changed else "no")
        parts = [f"{kinds} tasks"]
        if self.types:
            parts.append("of type " + ", ".join(sorted(self.types)))
        if self.status_now:
            parts.append("now " + " or ".join(sorted(self.status_now)))
        if self.changed_after:
            parts.append(f"changed after {_utc_text(self.changed_after)} UTC")
        if self.changed_before:
            parts.append(f"changed before {_utc_text(self.changed_before)} UTC")
        if self.ids is not None:
            parts.append(f"among {len(self.ids)} listed ids")
        return " ".join(parts)


@dataclass
class RescueReport:
    """What a rescue put back, what it skipped and why, and what it kept for an undo."""

    live: Path
    past: str
    selection: str
    dry_run: bool
    put_back_removed: tuple[int, ...] = ()
    put_back_changed: tuple[int, ...] = ()
    logs_put_back: int = 0
    skipped: tuple[RescueSkip, ...] = ()
    #: Differing tasks the selection left out (never touched).
    outside_selection: int = 0
    #: Tasks added after the past state (never touched).
    added_since: int = 0
    #: Task rows of a damaged past file that could not be read: those tasks keep their
    #: live state (from the backup restored into it, say).
    unreadable_in_past: int = 0
    safety_backup: Path | None = None
    #: The archive's instant that holds the queue as it was just before (instead of a
    #: safety backup), when an archiver proved it had every commit.
    safety_point: SafetyPoint | None = None
    #: Why the archive, though asked, was not the safety copy (a safety backup was taken).
    archive_problem: str | None = None
    undo_file: Path | None = None
    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    held_seconds: float = 0.0

    @property
    def put_back(self) -> int:
        """How many tasks were (or, in a dry run, would be) put back."""
        return len(self.put_back_removed) + len(self.put_back_changed)

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        """Reason code -> how many tasks were skipped for it."""
        return dict(Counter(skip.reason for skip in self.skipped))

    @property
    def shortfall(self) -> str | None:
        """The activity log's result when tasks were skipped ("skipped 3 of 72"), else None."""
        if not self.skipped or self.dry_run:
            return None
        return f"skipped {len(self.skipped)} of {len(self.skipped) + self.put_back}"

    @property
    def headline(self) -> str:
        """One sentence for the CLI, the window and the activity log."""
        verb = "would put back" if self.dry_run else "put back"
        logs = "" if self.dry_run else f", {self.logs_put_back} log row(s)"
        text = (f"Rescue from {self.past} {verb} {self.put_back} task(s) "
                f"({len(self.put_back_removed)} removed, {len(self.put_back_changed)} "
                f"changed{logs})")
        if self.skipped:
            reasons = ", ".join(f"{count} {reason.replace('_', ' ')}"
                                for reason, count in sorted(self.skipped_by_reason.items()))
            text += f" and skipped {len(self.skipped)} ({reasons})"
        else:
            text += " and skipped none"
        if self.unreadable_in_past:
            text += (f"; {self.unreadable_in_past} task row(s) of the damaged file could not "
                     "be read, so those tasks keep their live state")
        if self.undo_file is not None:
            text += f"; undo file: {self.undo_file}"
        if self.safety_point is not None and not self.dry_run:
            text += f"; {self.safety_point.describe()}"
        elif self.archive_problem and not self.dry_run:
            text += (f"; the point-in-time archive was not used as the safety copy: "
                     f"{self.archive_problem}")
        return text + "."

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and the undo file."""
        return {
            "live": str(self.live), "past": self.past, "selection": self.selection,
            "dry_run": self.dry_run, "put_back": self.put_back,
            "put_back_removed": list(self.put_back_removed),
            "put_back_changed": list(self.put_back_changed),
            "logs_put_back": self.logs_put_back,
            "skipped": [{"id": skip.task_id, "type": skip.type, "reason": skip.reason,
                         "detail": skip.detail} for skip in self.skipped],
            "skipped_by_reason": self.skipped_by_reason,
            "outside_selection": self.outside_selection, "added_since": self.added_since,
            "unreadable_in_past": self.unreadable_in_past,
            "safety_backup": None if self.safety_backup is None else str(self.safety_backup),
            "safety_point": None if self.safety_point is None else self.safety_point.to_dict(),
            "archive_problem": self.archive_problem,
            "undo_file": None if self.undo_file is None else str(self.undo_file),
            "counters": self.counters, "seconds": round(self.seconds, 3),
            "held_seconds": round(self.held_seconds, 3),
        }


@dataclass
class _Plan:
    removed: list[int]
    changed: list[int]
    skipped: list[RescueSkip]
    outside: int
    added: int


def rescue_tasks(live: str | Path, past: PastState, selection: RescueSelection, *,
                 backup_dir: str | Path, dry_run: bool = False, safety_backup: bool = True,
                 archive_dir: str | Path | None = None,
                 progress: ProgressCallback | None = None,
                 cancelled: CancelCheck | None = None) -> RescueReport:
    """Put the selected tasks back as they were in ``past`` (see the module docstring).

    ``backup_dir`` is the backup folder: the safety backup goes to its ``pre-rescue``
    sub-folder, the undo file to ``rescue-undo``. ``archive_dir`` is the point-in-time
    archive, which serves as the safety copy when an archiver proves it holds every commit
    of the live queue. Raises :class:`RescueError` (or
    :class:`OperationCancelled`) with the live queue unchanged when the rescue cannot be
    done; skipped tasks are not an error, they are in the report.
    """
    live, backup_dir = Path(live), Path(backup_dir)
    started = time.monotonic()
    action = f"Rescuing tasks of '{live}' from {past.label}"
    outcome = RescueReport(live=live, past=past.label, selection=selection.describe(),
                           dry_run=dry_run, unreadable_in_past=(
                               past.salvage.unreadable_ids if past.salvage is not None else 0))
    report(progress, 0, 3, STAGE_PLAN)
    with closing_connection(open_live(live, action)) as connection:
        attach_read_only(connection, past.path, PAST, action)
        guard_untrusted(connection)
        plan = in_one_transaction(connection, action, cancelled,
                    lambda: _plan(connection, selection, explain_ids=True,
                                  unreadable=unreadable_ranges(past)), write=False)
    outcome.skipped = tuple(plan.skipped)
    outcome.outside_selection, outcome.added_since = plan.outside, plan.added
    if dry_run or not (plan.removed or plan.changed):
        outcome.put_back_removed = tuple(plan.removed)
        outcome.put_back_changed = tuple(plan.changed)
        outcome.seconds = time.monotonic() - started
        return outcome
    raise_if_cancelled(cancelled, action)
    undo_folder = backup_dir / UNDO_FOLDER_NAME
    written = False
    if safety_backup and archive_dir is not None and archiving_this(live, Path(archive_dir)):
        # The snapshot's hash, the longest part of the archive's check, is taken before the
        # lock, so that workers wait for the frame logs' check alone.
        known = hash_snapshot_ahead(archive_dir)
        report(progress, 2, 4, STAGE_WRITE)
        written = _write(live, past, selection, plan, outcome, undo_folder, action, cancelled,
                         archive_dir=Path(archive_dir), known=known)
    if not written:
        if safety_backup:
            report(progress, 1, 4, STAGE_SAFETY)
            outcome.safety_backup = take_safety_backup(live, backup_dir, action, progress,
                                                       cancelled)
        report(progress, 2, 4, STAGE_WRITE)
        _write(live, past, selection, plan, outcome, undo_folder, action, cancelled)
    report(progress, 4, 4, STAGE_WRITE)
    outcome.seconds = time.monotonic() - started
    return outcome


def _write(live: Path, past: PastState, selection: RescueSelection, plan: _Plan,
           outcome: RescueReport, undo_folder: Path, action: str,
           cancelled: CancelCheck | None, *, archive_dir: Path | None = None,
           known: KnownDigest | None = None) -> bool:
    """The one write transaction: re-check the planned tasks, keep the undo, put them back.

    With ``archive_dir``, the archive must first prove (under the write lock) that it holds
    every commit; without that proof nothing is written and False is returned.
    """
    undo_path = undo_file_name(undo_folder)
    committed = False
    with closing_connection(open_live(live, action)) as connection:
        attach_read_only(connection, past.path, PAST, action)
        task_columns = shared_columns(connection, "task_queue")
        partial = create_undo_file(undo_path, task_columns)
        try:
            connection.execute(f"ATTACH DATABASE ? AS {UNDO_SCHEMA}", (str(partial),))
            guard_untrusted(connection)
            candidates = plan.removed + plan.changed

            def work() -> bool:
                nonlocal committed
                locked_at = time.monotonic()
                checking: Future[SafetyPoint] | None = None
                if archive_dir is not None:
                    point = prove_archived(live, archive_dir, cancelled=cancelled)
                    if point is None:
                        outcome.archive_problem = NOT_PROVEN
                        return False
                    # Checked in full on another thread while the tasks are put back; the
                    # rescue commits only once the archive is known to rebuild that instant.
                    checking = checker.submit(confirm_safety_point, point, known)
                connection.execute("DROP TABLE IF EXISTS temp.rescue_candidates")
                connection.execute("CREATE TEMP TABLE rescue_candidates"
                                   " (id INTEGER PRIMARY KEY)")
                connection.executemany("INSERT INTO temp.rescue_candidates VALUES (?)",
                                       ((task_id,) for task_id in candidates))
                now = _plan(connection, selection, explain_ids=False,
                            only="temp.rescue_candidates")
                late = _vanished(connection, candidates, now)
                _apply(connection, task_columns, outcome, now)
                if checking is not None:
                    point = checking.result()
                    if not point.confirmed:
                        outcome.archive_problem = f"it failed its check ({point.problem})"
                        return False
                    outcome.safety_point = point
                connection.execute("COMMIT")
                committed = True
                outcome.held_seconds = time.monotonic() - locked_at
                outcome.skipped = tuple(plan.skipped + now.skipped + late)
                return True

            with ThreadPoolExecutor(max_workers=1,
                                    thread_name_prefix="queue-admin-archive-check") as checker:
                if not in_one_transaction(connection, action, cancelled, work, write=True):
                    return False
        finally:
            if not committed:
                remove_partial_undo(undo_path)
    try:
        publish_undo_file(undo_path)
    except OSError as error:
        raise RescueError(f"{action}: the tasks were put back, but the undo file could not "
                          f"be named '{undo_path}' ({error}); it is kept as "
                          f"'{undo_path}.partial'.") from error
    outcome.undo_file = undo_path
    return True


def _apply(connection: sqlite3.Connection, task_columns: list[str], outcome: RescueReport,
           plan: _Plan) -> None:
    """Inside the write transaction: undo rows first, then the tasks, logs and counters."""
    cols, past_cols = quoted(task_columns), quoted(task_columns, "p.")
    connection.execute("DROP TABLE IF EXISTS temp.rescue_go")
    connection.execute("CREATE TEMP TABLE rescue_go (id INTEGER PRIMARY KEY, kind TEXT)")
    connection.executemany("INSERT INTO temp.rescue_go VALUES (?, ?)",
                           [(task_id, KIND_REMOVED) for task_id in plan.removed]
                           + [(task_id, KIND_CHANGED) for task_id in plan.changed])
    connection.execute(f"INSERT INTO {UNDO_SCHEMA}.before_tasks ({cols}) SELECT {cols}"
                       " FROM main.task_queue WHERE id IN (SELECT id FROM temp.rescue_go"
                       f" WHERE kind = '{KIND_CHANGED}')")
    connection.execute(f"INSERT INTO {UNDO_SCHEMA}.rescued SELECT id, kind FROM temp.rescue_go")
    others = [name for name in task_columns if name != "id"]
    connection.execute(
        f"UPDATE main.task_queue SET ({quoted(others)}) = (SELECT {quoted(others, 'p.')}"
        f" FROM {PAST}.task_queue AS p WHERE p.id = task_queue.id)"
        f" WHERE id IN (SELECT id FROM temp.rescue_go WHERE kind = '{KIND_CHANGED}')")
    connection.execute(
        f"INSERT INTO main.task_queue ({cols}) SELECT {past_cols} FROM {PAST}.task_queue AS p"
        f" WHERE p.id IN (SELECT id FROM temp.rescue_go WHERE kind = '{KIND_REMOVED}')")
    logs = 0
    if has_table(connection, PAST, "task_logs") and has_table(connection, "main", "task_logs"):
        log_cols = shared_columns(connection, "task_logs")
        if "log_id" in log_cols and "task_id" in log_cols:
            missing = (f" FROM {PAST}.task_logs AS p WHERE p.task_id IN"
                       " (SELECT id FROM temp.rescue_go) AND NOT EXISTS"
                       " (SELECT 1 FROM main.task_logs AS m WHERE m.log_id = p.log_id)")
            connection.execute(f"INSERT INTO {UNDO_SCHEMA}.inserted_logs SELECT p.log_id"
                               + missing)
            logs = connection.execute(
                f"INSERT INTO main.task_logs ({quoted(log_cols)})"
                f" SELECT {quoted(log_cols, 'p.')}" + missing).rowcount
    connection.execute(f"INSERT INTO {UNDO_SCHEMA}.after_tasks ({cols}) SELECT {cols}"
                       " FROM main.task_queue WHERE id IN (SELECT id FROM temp.rescue_go)")
    outcome.counters = _raise_counters(connection)
    outcome.put_back_removed = tuple(plan.removed)
    outcome.put_back_changed = tuple(plan.changed)
    outcome.logs_put_back = max(0, logs)
    meta = {**outcome.as_dict(), "skipped": [skip.__dict__ for skip in plan.skipped],
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    connection.executemany(f"INSERT OR REPLACE INTO {UNDO_SCHEMA}.meta VALUES (?, ?)",
                           [("live", str(outcome.live.resolve())), ("past", outcome.past),
                            ("report", json.dumps(meta, default=str))])


def _vanished(connection: sqlite3.Connection, candidates: list[int],
              now: _Plan) -> list[RescueSkip]:
    """Planned tasks the write transaction found no longer to be put back, and why."""
    kept = set(now.removed) | set(now.changed) | {skip.task_id for skip in now.skipped}
    gone = sorted(set(candidates) - kept)
    if not gone:
        return []
    still_differs = {int(task_id): str(task_type) for task_id, task_type in connection.execute(
        "SELECT id, type FROM temp.rescue_diff")}
    return [RescueSkip(task_id, still_differs[task_id], SKIP_OUTSIDE,
                       "it changed again after the plan and no longer matches the selection")
            if task_id in still_differs else
            RescueSkip(task_id, "", SKIP_UNCHANGED,
                       "it already matched the past state when the rescue ran")
            for task_id in gone]


def _raise_counters(connection: sqlite3.Connection) -> dict[str, int]:
    """Keep every id counter at or above both the live and the past file's; return them."""
    if not has_table(connection, "main", "sqlite_sequence"):
        return {}
    if has_table(connection, PAST, "sqlite_sequence"):
        connection.execute(
            f"UPDATE main.sqlite_sequence SET seq = (SELECT p.seq FROM {PAST}.sqlite_sequence"
            " AS p WHERE p.name = sqlite_sequence.name) WHERE EXISTS (SELECT 1 FROM"
            f" {PAST}.sqlite_sequence AS p WHERE p.name = sqlite_sequence.name"
            " AND typeof(p.seq) = 'integer' AND p.seq > sqlite_sequence.seq)")
    return {str(name): int(seq) for name, seq in
            connection.execute("SELECT name, seq FROM main.sqlite_sequence")
            if isinstance(seq, int)}


def _plan(connection: sqlite3.Connection, selection: RescueSelection, *, explain_ids: bool,
          only: str | None = None, unreadable: list[tuple[int, int]] | None = None) -> _Plan:
    """Diff, select and sort out the skips, all in SQL over ``temp.rescue_diff``.

    A selection by ids compares only those tasks; otherwise the whole queue is compared
    (``only`` narrows it to the planned tasks, under the write lock).
    """
    if selection.ids is not None:
        connection.execute("DROP TABLE IF EXISTS temp.rescue_asked")
        connection.execute("CREATE TEMP TABLE rescue_asked (id INTEGER PRIMARY KEY)")
        connection.executemany("INSERT OR IGNORE INTO temp.rescue_asked VALUES (?)",
                               ((task_id,) for task_id in selection.ids))
    build_diff_table(connection, with_added=explain_ids,
                     only=only or ("temp.rescue_asked" if selection.ids is not None else None),
                     unreadable=unreadable)
    where, params = _selection_sql(connection, selection)
    connection.execute("DROP TABLE IF EXISTS temp.rescue_pick")
    connection.execute("CREATE TEMP TABLE rescue_pick AS SELECT d.id, d.kind, d.type, d.held,"
                       " d.same_task, d.status_now FROM temp.rescue_diff AS d"
                       f" WHERE d.kind IN ('{KIND_REMOVED}', '{KIND_CHANGED}') AND {where}",
                       params)
    skipped: list[RescueSkip] = []
    held = connection.execute(
        "SELECT k.id, k.type, l.status, l.lease_until_utc, l.locked_by FROM temp.rescue_pick"
        f" AS k JOIN main.task_queue AS l ON l.id = k.id WHERE k.kind = '{KIND_CHANGED}'"
        " AND k.held ORDER BY k.id").fetchall()
    skipped += [RescueSkip(int(task_id), str(kind), SKIP_HELD,
                           f"a worker holds it now ({status}, locked by {locked or 'unknown'}, "
                           f"lease until {lease or 'unknown'})")
                for task_id, kind, status, lease, locked in held]
    reused = connection.execute(
        "SELECT k.id, k.type, l.created_at_utc, l.type FROM temp.rescue_pick AS k JOIN"
        f" main.task_queue AS l ON l.id = k.id WHERE k.kind = '{KIND_CHANGED}'"
        " AND NOT k.held AND NOT k.same_task ORDER BY k.id").fetchall()
    skipped += [RescueSkip(int(task_id), str(kind), SKIP_ID_REUSED,
                           f"its id now belongs to another task (type {live_type}, created "
                           f"{created})")
                for task_id, kind, created, live_type in reused]
    taken = {skip.task_id for skip in skipped}
    conflicts = connection.execute(
        f"SELECT k.id, k.type, p.idempotency_key, o.id FROM temp.rescue_pick AS k JOIN"
        f" {PAST}.task_queue AS p ON p.id = k.id JOIN main.task_queue AS o"
        " ON o.idempotency_key = p.idempotency_key AND o.id <> k.id"
        " WHERE p.idempotency_key IS NOT NULL ORDER BY k.id").fetchall()
    for task_id, kind, key, other in conflicts:
        if int(task_id) not in taken:
            taken.add(int(task_id))
            skipped.append(RescueSkip(int(task_id), str(kind), SKIP_CONFLICT,
                                      f"its idempotency key {key!r} is taken by live task "
                                      f"{other}"))
    removed, changed = [], []
    for task_id, kind in connection.execute("SELECT id, kind FROM temp.rescue_pick ORDER BY id"):
        if int(task_id) not in taken:
            (removed if kind == KIND_REMOVED else changed).append(int(task_id))
    differing = connection.execute(
        "SELECT count(*) FROM temp.rescue_diff"
        f" WHERE kind IN ('{KIND_REMOVED}', '{KIND_CHANGED}')").fetchone()[0]
    picked = connection.execute("SELECT count(*) FROM temp.rescue_pick").fetchone()[0]
    added = connection.execute(
        f"SELECT count(*) FROM temp.rescue_diff WHERE kind = '{KIND_ADDED}'").fetchone()[0]
    if explain_ids and selection.ids is not None:
        skipped += _explain_asked_ids(connection)
    return _Plan(removed, changed, skipped, int(differing) - int(picked), int(added))


def _selection_sql(connection: sqlite3.Connection,
                   selection: RescueSelection) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (over ``d``, a row of ``temp.rescue_diff``) and its parameters."""
    clauses, params = ["1"], {}
    kinds = [kind for kind, wanted in ((KIND_REMOVED, selection.removed),
                                       (KIND_CHANGED, selection.changed)) if wanted]
    params["kinds"] = json.dumps(kinds)
    clauses.append("d.kind IN (SELECT value FROM json_each(:kinds))")
    if selection.types:
        params["types"] = json.dumps(sorted(selection.types))
        clauses.append("d.type IN (SELECT value FROM json_each(:types))")
    if selection.status_now:
        params["status_now"] = json.dumps(sorted(selection.status_now))
        clauses.append(f"(d.kind <> '{KIND_CHANGED}' OR d.status_now IN"
                       " (SELECT value FROM json_each(:status_now)))")
    if selection.changed_after is not None:
        params["after"] = _utc_bound(selection.changed_after)
        clauses.append(f"(d.kind <> '{KIND_CHANGED}' OR"
                       " julianday(d.changed_at) >= julianday(:after))")
    if selection.changed_before is not None:
        params["before"] = _utc_bound(selection.changed_before)
        clauses.append(f"(d.kind <> '{KIND_CHANGED}' OR"
                       " julianday(d.changed_at) < julianday(:before))")
    if selection.ids is not None:
        clauses.append("d.id IN (SELECT id FROM temp.rescue_asked)")
    return " AND ".join(clauses), params


def _explain_asked_ids(connection: sqlite3.Connection) -> list[RescueSkip]:
    """Listed ids the rescue will not put back for a reason other than a skip above."""
    rows = connection.execute(
        "SELECT a.id, d.kind, d.type, l.type, p.type FROM temp.rescue_asked AS a"
        " LEFT JOIN temp.rescue_diff AS d ON d.id = a.id"
        " LEFT JOIN main.task_queue AS l ON l.id = a.id"
        f" LEFT JOIN {PAST}.task_queue AS p ON p.id = a.id"
        " WHERE a.id NOT IN (SELECT id FROM temp.rescue_pick) ORDER BY a.id").fetchall()
    skips = []
    for task_id, kind, diff_type, live_type, past_type in rows:
        task_type = str(diff_type or live_type or past_type or "")
        if kind == KIND_ADDED:
            skips.append(RescueSkip(int(task_id), task_type, SKIP_ADDED,
                                    "it was added after the past state"))
        elif kind is not None:
            skips.append(RescueSkip(int(task_id), task_type, SKIP_OUTSIDE,
                                    "it is listed but outside the other filters"))
        elif live_type is not None and past_type is None:
            skips.append(RescueSkip(int(task_id), task_type, SKIP_UNREADABLE,
                                    "its row in the damaged past state could not be read"))
        elif live_type is not None or past_type is not None:
            skips.append(RescueSkip(int(task_id), task_type, SKIP_UNCHANGED,
                                    "it is the same as in the past state"))
        else:
            skips.append(RescueSkip(int(task_id), "", SKIP_NOT_FOUND,
                                    "no such task, now or in the past state"))
    return skips


def in_one_transaction(connection: sqlite3.Connection, action: str, cancelled: CancelCheck | None,
         work: Any, *, write: bool) -> Any:
    """Run ``work`` inside one transaction (``BEGIN IMMEDIATE`` to write); roll back on error."""
    try:
        with interruptible(connection, cancelled):
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = work()
            finally:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
    except OperationCancelled:
        raise
    except sqlite3.Error as error:
        raise translate_error(error, f"{action} failed; nothing was changed",
                              RescueError) from error
    return result


def take_safety_backup(live: Path, backup_dir: Path, action: str,
                       progress: ProgressCallback | None, cancelled: CancelCheck | None) -> Path:
    """A verified backup of the live queue, in the backup folder's ``pre-rescue``."""
    try:
        store = BackupStore(live, backup_dir / SAFETY_FOLDER_NAME)
        made = store.backup(SAFETY_BACKUP_NAME, progress, cancelled).path
    except QueueAdminError as error:
        if isinstance(error, OperationCancelled):
            raise
        raise RescueError(f"{action} stopped: the safety backup failed "
                          f"({error.message.rstrip('.')}); nothing was changed.",
                          error.kind) from error
    with contextlib.suppress(QueueAdminError):
        store.prune(SAFETY_KEEP_COUNT)
    return made


def _utc_bound(moment: datetime) -> str:
    """An instant as SQLite's julianday() reads it, to the microsecond (a window's bound)."""
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _utc_text(moment: datetime) -> str:
    """An instant as the queue writes times: UTC ``YYYY-MM-DD HH:MM:SS``."""
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


__all__ = [
    "SAFETY_FOLDER_NAME",
    "UNDO_FOLDER_NAME",
    "RescueReport",
    "RescueSelection",
    "rescue_tasks",
    "take_safety_backup",
]
