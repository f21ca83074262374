"""Undoing a rescue from its undo file: the live rows go back to what they were before it.

Each task the rescue put back is looked at under the write lock, in one ``BEGIN IMMEDIATE``
transaction, after a safety backup:

- if its live row is still exactly the row the rescue wrote, a changed task gets its
  pre-rescue row back and a removed one is deleted again, together with the task_logs rows
  the rescue had inserted;
- if it changed after the rescue (a worker ran it, a script edited it), if a worker holds it,
  if its pre-rescue idempotency key now belongs to another live task, or if a removed one has
  log rows written after the rescue, it is left alone and reported.

Id counters are never lowered: ids the rescue used are not handed out again.
"""

# SQL text here is built from this package's constants and from column names SQLite itself
# reported for the queue's tables (quoted); every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..database import closing_connection
from ..errors import ErrorKind
from ..files.db_files import require_existing_file
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from .merge import in_one_transaction, take_safety_backup
from .sql import (
    HELD_STATUSES,
    RescueError,
    attach_read_only,
    guard_untrusted,
    has_table,
    open_live,
    quoted,
    stored_columns,
)
from .undo_file import UNDO_FORMAT, UNDO_SCHEMA, UNDO_TABLES, RescueSkip

STAGE_UNDO = "Putting the pre-rescue rows back"
SKIP_CHANGED_SINCE = "changed_since_rescue"
SKIP_NEWER_LOGS = "has_newer_logs"
SKIP_HELD = "held_by_worker"
SKIP_CONFLICT = "idempotency_conflict"
SKIP_AS_BEFORE = "already_as_before"


@dataclass
class UndoReport:
    """What an undo put back, and what it left alone and why."""

    live: Path
    undo_file: Path
    dry_run: bool
    #: Changed tasks whose pre-rescue live row is back.
    rows_put_back: tuple[int, ...] = ()
    #: Removed tasks the rescue had inserted, deleted again.
    removed_again: tuple[int, ...] = ()
    logs_removed: int = 0
    skipped: tuple[RescueSkip, ...] = ()
    safety_backup: Path | None = None
    seconds: float = 0.0

    @property
    def headline(self) -> str:
        """One sentence for the CLI and the activity log."""
        verb = "would put back" if self.dry_run else "put back"
        text = (f"Undo of the rescue {verb} the pre-rescue rows of {len(self.rows_put_back)} "
                f"task(s) and {'would remove' if self.dry_run else 'removed'} "
                f"{len(self.removed_again)} task(s) it had inserted")
        if self.skipped:
            reasons = Counter(skip.reason for skip in self.skipped)
            text += (f"; it left {len(self.skipped)} alone ("
                     + ", ".join(f"{count} {reason.replace('_', ' ')}"
                                 for reason, count in sorted(reasons.items())) + ")")
        return text + "."

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"live": str(self.live), "undo_file": str(self.undo_file),
                "dry_run": self.dry_run, "rows_put_back": list(self.rows_put_back),
                "removed_again": list(self.removed_again), "logs_removed": self.logs_removed,
                "skipped": [{"id": skip.task_id, "type": skip.type, "reason": skip.reason,
                             "detail": skip.detail} for skip in self.skipped],
                "safety_backup": None if self.safety_backup is None
                else str(self.safety_backup),
                "seconds": round(self.seconds, 3)}


def undo_rescue(live: str | Path, undo_file: str | Path, *, backup_dir: str | Path,
                dry_run: bool = False, safety_backup: bool = True,
                progress: ProgressCallback | None = None,
                cancelled: CancelCheck | None = None) -> UndoReport:
    """Put back the live rows a rescue replaced (see the module docstring).

    Raises :class:`RescueError` with the live queue unchanged when the undo file is not one
    or belongs to another database.
    """
    live, undo_file = Path(live), Path(undo_file)
    started = time.monotonic()
    action = f"Undoing the rescue recorded in '{undo_file}'"
    require_existing_file(undo_file, action, RescueError)
    outcome = UndoReport(live=live, undo_file=undo_file, dry_run=dry_run)
    report(progress, 0, 2, STAGE_UNDO)
    plan = _in_transaction(live, undo_file, action, cancelled, write=False)
    if dry_run or not (plan["changed"] or plan["removed"]):
        _fill(outcome, plan)
        outcome.seconds = time.monotonic() - started
        return outcome
    raise_if_cancelled(cancelled, action)
    if safety_backup:
        outcome.safety_backup = take_safety_backup(live, Path(backup_dir), action, progress,
                                               cancelled)
    done = _in_transaction(live, undo_file, action, cancelled, write=True)
    _fill(outcome, done)
    report(progress, 2, 2, STAGE_UNDO)
    outcome.seconds = time.monotonic() - started
    return outcome


def _fill(outcome: UndoReport, plan: dict[str, Any]) -> None:
    outcome.rows_put_back = tuple(plan["changed"])
    outcome.removed_again = tuple(plan["removed"])
    outcome.logs_removed = plan["logs"]
    outcome.skipped = tuple(plan["skipped"])


def _in_transaction(live: Path, undo_file: Path, action: str, cancelled: CancelCheck | None,
                    *, write: bool) -> dict[str, Any]:
    with closing_connection(open_live(live, action)) as connection:
        attach_read_only(connection, undo_file, UNDO_SCHEMA, action)
        guard_untrusted(connection)
        _check_undo_file(connection, live, undo_file)

        def work() -> dict[str, Any]:
            plan = _plan(connection)
            if write:
                plan["logs"] = _apply(connection, plan)
                connection.execute("COMMIT")
            return plan

        plan = in_one_transaction(connection, action, cancelled, work, write=write)
    return plan


def _check_undo_file(connection: sqlite3.Connection, live: Path, undo_file: Path) -> None:
    missing = [table for table in UNDO_TABLES if not has_table(connection, UNDO_SCHEMA, table)]
    meta = {} if "meta" in missing else dict(connection.execute(
        f"SELECT key, value FROM {UNDO_SCHEMA}.meta").fetchall())
    if missing or meta.get("format") != UNDO_FORMAT:
        raise RescueError(f"'{undo_file}' is not an undo file of a rescue; pass the file the "
                          "rescue reported.", ErrorKind.INVALID)
    recorded = meta.get("live")
    if recorded and Path(recorded).resolve() != live.resolve():
        raise RescueError(f"The undo file '{undo_file}' belongs to the rescue of '{recorded}', "
                          f"not '{live}'; pass --db {recorded}.", ErrorKind.INVALID)


def _plan(connection: sqlite3.Connection) -> dict[str, Any]:
    """Which rescued tasks still hold exactly what the rescue wrote, and which do not."""
    after = set(stored_columns(connection, UNDO_SCHEMA, "after_tasks"))
    columns = [name for name in stored_columns(connection, "main", "task_queue")
               if name in after]
    same = " AND ".join(f'l."{name}" IS a."{name}"' for name in columns)
    held = (f"(l.status IN {HELD_STATUSES!r} AND coalesce("
            "julianday(l.lease_until_utc) > julianday('now'), 1))")
    newer_logs = ("EXISTS (SELECT 1 FROM main.task_logs AS m WHERE m.task_id = r.id AND"
                  f" m.log_id NOT IN (SELECT log_id FROM {UNDO_SCHEMA}.inserted_logs))"
                  if has_table(connection, "main", "task_logs") else "0")
    key_taken = (f"(r.kind = 'changed' AND EXISTS (SELECT 1 FROM {UNDO_SCHEMA}.before_tasks"
                 " AS b JOIN main.task_queue AS o ON o.idempotency_key = b.idempotency_key"
                 " WHERE b.id = r.id AND b.idempotency_key IS NOT NULL AND o.id <> r.id))"
                 if "idempotency_key" in columns else "0")
    as_before = " AND ".join(f'l."{name}" IS b."{name}"' for name in columns)
    connection.execute("DROP TABLE IF EXISTS temp.undo_go")
    connection.execute(
        "CREATE TEMP TABLE undo_go AS SELECT r.id AS id, r.kind AS kind, a.type AS type,"
        f" l.id IS NOT NULL AS present, coalesce({same}, 0) AS same, coalesce({held}, 0)"
        f" AS held, {newer_logs} AS newer_logs, {key_taken} AS key_taken,"
        f" CASE WHEN r.kind = 'changed' THEN coalesce({as_before}, 0) ELSE l.id IS NULL END"
        " AS as_before"
        f" FROM {UNDO_SCHEMA}.rescued AS r JOIN {UNDO_SCHEMA}.after_tasks AS a ON a.id = r.id"
        " LEFT JOIN main.task_queue AS l ON l.id = r.id"
        f" LEFT JOIN {UNDO_SCHEMA}.before_tasks AS b ON b.id = r.id")
    skipped, changed, removed = [], [], []
    for task_id, kind, task_type, present, is_same, is_held, has_newer, taken, before in \
            connection.execute("SELECT id, kind, type, present, same, held, newer_logs,"
                               " key_taken, as_before FROM temp.undo_go ORDER BY id"):
        task_type = str(task_type)
        if not is_same and before:
            detail = ("it already holds its pre-rescue row" if kind == "changed"
                      else "it is no longer in the queue, as before the rescue")
            skipped.append(RescueSkip(int(task_id), task_type, SKIP_AS_BEFORE, detail))
        elif not is_same:
            detail = ("it changed after the rescue" if present
                      else "it was deleted after the rescue")
            skipped.append(RescueSkip(int(task_id), task_type, SKIP_CHANGED_SINCE, detail))
        elif is_held:
            skipped.append(RescueSkip(int(task_id), task_type, SKIP_HELD,
                                      "a worker holds it now"))
        elif taken:
            skipped.append(RescueSkip(int(task_id), task_type, SKIP_CONFLICT,
                                      "its pre-rescue idempotency key is taken by another "
                                      "live task now"))
        elif kind == "removed" and has_newer:
            skipped.append(RescueSkip(int(task_id), task_type, SKIP_NEWER_LOGS,
                                      "it has log rows written after the rescue"))
        else:
            (removed if kind == "removed" else changed).append(int(task_id))
    connection.execute("DELETE FROM temp.undo_go WHERE id NOT IN (SELECT value FROM"
                       " json_each(?))", (_json_ids(changed + removed),))
    logs = 0
    if has_table(connection, "main", "task_logs"):
        logs = connection.execute(
            f"SELECT count(*) FROM main.task_logs WHERE log_id IN (SELECT log_id FROM"
            f" {UNDO_SCHEMA}.inserted_logs) AND task_id IN (SELECT id FROM temp.undo_go)"
        ).fetchone()[0]
    return {"changed": changed, "removed": removed, "skipped": skipped, "logs": int(logs),
            "columns": columns}


def _apply(connection: sqlite3.Connection, plan: dict[str, Any]) -> int:
    columns = [name for name in plan["columns"] if name != "id"]
    logs = 0
    if has_table(connection, "main", "task_logs"):
        logs = connection.execute(
            f"DELETE FROM main.task_logs WHERE log_id IN (SELECT log_id FROM"
            f" {UNDO_SCHEMA}.inserted_logs) AND task_id IN (SELECT id FROM temp.undo_go)"
        ).rowcount
    connection.execute(
        f"UPDATE main.task_queue SET ({quoted(columns)}) = (SELECT {quoted(columns, 'b.')}"
        f" FROM {UNDO_SCHEMA}.before_tasks AS b WHERE b.id = task_queue.id)"
        " WHERE id IN (SELECT id FROM temp.undo_go WHERE kind = 'changed')")
    connection.execute("DELETE FROM main.task_queue WHERE id IN"
                       " (SELECT id FROM temp.undo_go WHERE kind = 'removed')")
    return max(0, logs)


def _json_ids(ids: list[int]) -> str:
    return "[" + ",".join(str(int(task_id)) for task_id in ids) + "]"
