"""Keeping the tasks created after a past state through a full restore ("keep newer work").

Which tasks are newer is decided by id, never by clock: a task is newer when its id is above
the past state's id high-water mark, the larger of its ``task_queue`` AUTOINCREMENT counter
and its highest task id. SQLite never hands out an AUTOINCREMENT id at or below that counter
again, so every task inserted after the past state was taken has an id above it, and every
task that existed then has an id at or below it. ``created_at_utc`` cannot say the same: it
has a resolution of one second, is written by the producer (whose clock may step, or which
may set it itself), and several tasks share the second the backup was taken in.

The same rule makes collisions impossible: every task of the past state has an id at or below
the mark, every carried task one above it. The carried tasks keep their ids, their rows (the
stored columns both files have) and their ``task_logs`` rows. A log row keeps its id unless
the past state already holds that id (a file of another lineage); it then gets a new one.

A newer task whose idempotency key a task of the past state already holds is a conflict: the
restored task keeps the key and the newer one is not carried (it stays in the safety backup
and is reported), because the restore puts back the state the administrator chose and a
key names one task.

:func:`carry_newer_tasks` runs inside the restore's first write step, holding the live write
lock, and writes through the connection the backup API reads from: the carried rows reach the
live file in the restore's one transaction, so other programs see the queue before the
restore or after it with the newer tasks in it, never in between.
"""

# SQL text here is built from column names SQLite itself reported for the queue's tables
# (quoted); every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..database import closing_connection, open_read_only
from ..errors import QueueAdminError, QueueBackupError, translate_error
from ..trust.untrusted import open_backup_file

TASKS = "task_queue"
LOGS = "task_logs"
_KEY = "idempotency_key"
#: Rows read and written per batch while carrying.
_BATCH = 2000


@dataclass(frozen=True)
class CarryConflict:
    """A newer task not carried: a task of the past state holds its idempotency key."""

    task_id: int
    task_type: str
    idempotency_key: str
    restored_task_id: int

    def sentence(self) -> str:
        """One sentence: which task was left out, and why."""
        return (f"task {self.task_id} ({self.task_type}) was not carried: its idempotency key "
                f"{self.idempotency_key!r} belongs to restored task {self.restored_task_id}")

    def as_dict(self) -> dict[str, Any]:
        """The conflict for JSON output."""
        return {"id": self.task_id, "type": self.task_type,
                "idempotency_key": self.idempotency_key,
                "restored_task_id": self.restored_task_id}


@dataclass
class CarryResult:
    """What a restore carried over from the live queue into the restored one."""

    #: Tasks with an id above this existed only in the live queue (the past state's mark).
    above_id: int
    task_ids: list[int] = field(default_factory=list)
    logs: int = 0
    #: Log rows whose id the past state already used; they were given new ids.
    logs_renumbered: int = 0
    conflicts: list[CarryConflict] = field(default_factory=list)

    @property
    def tasks(self) -> int:
        """How many tasks were carried."""
        return len(self.task_ids)

    def sentence(self) -> str:
        """What was carried, in one sentence (and the conflicts, if any)."""
        text = (f"{self.tasks} task{'' if self.tasks == 1 else 's'} created after the backup "
                f"(ids above {self.above_id}) {'was' if self.tasks == 1 else 'were'} kept with "
                f"their ids and {self.logs} log row{'' if self.logs == 1 else 's'}")
        if self.conflicts:
            text += (f"; {len(self.conflicts)} newer task(s) were not kept because a restored "
                     "task holds their idempotency key: "
                     + "; ".join(conflict.sentence() for conflict in self.conflicts[:5]))
        return text

    def as_dict(self) -> dict[str, Any]:
        """The result for JSON output."""
        return {"above_id": self.above_id, "tasks": self.tasks, "task_ids": self.task_ids,
                "logs": self.logs, "logs_renumbered": self.logs_renumbered,
                "conflicts": [conflict.as_dict() for conflict in self.conflicts]}


@dataclass(frozen=True)
class NewerTasks:
    """The live tasks a restore of a past state would drop, by the id rule above."""

    above_id: int
    count: int


def id_mark(connection: sqlite3.Connection, schema: str = "main") -> int:
    """The past state's id high-water mark: its task counter or its highest task id."""
    highest = connection.execute(f"SELECT max(id) FROM {schema}.{TASKS}").fetchone()[0]
    counter = None
    if connection.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' "
                          "AND name = 'sqlite_sequence'").fetchone() is not None:
        row = connection.execute(f"SELECT seq FROM {schema}.sqlite_sequence WHERE name = ?",
                                 (TASKS,)).fetchone()
        counter = row[0] if row is not None else None
    return max(v for v in (highest, counter, 0) if isinstance(v, int))


def count_newer_tasks(past: str | Path, live: str | Path) -> NewerTasks:
    """How many live tasks were created after ``past`` (a backup or rebuilt instant).

    Both files are only read (the past one as an untrusted backup). Raises
    :class:`QueueBackupError` when either cannot be read.
    """
    action = "Counting the tasks created after the backup"
    try:
        with open_backup_file(Path(past)) as backup:
            mark = id_mark(backup)
        with closing_connection(open_read_only(Path(live))) as connection:
            count = connection.execute(f"SELECT count(*) FROM {TASKS} WHERE id > ?",
                                       (mark,)).fetchone()[0]
    except sqlite3.Error as error:
        raise translate_error(error, action, QueueBackupError) from error
    return NewerTasks(mark, int(count))


def carry_newer_tasks(staged: sqlite3.Connection, live: Path, action: str, *,
                      unlocked: bool = False) -> CarryResult:
    """Copy the live tasks newer than the staged past state (and their logs) into it.

    ``staged`` is the read-write connection on the private staging copy that the restore
    writes into the live file; ``unlocked`` reads the live file without a lock, for a
    caller holding its exclusive lock (outside WAL mode). Runs in one transaction on
    ``staged``; raises :class:`QueueBackupError` (nothing carried, nothing changed) when the
    live rows cannot be read.
    """
    result = CarryResult(above_id=id_mark(staged))
    try:
        reader = open_read_only(live, immutable=unlocked)
    except QueueAdminError as error:
        raise _unreadable(action, error) from error
    with closing_connection(reader):
        try:
            reader.execute("BEGIN")
            task_columns = _shared_columns(reader, staged, TASKS)
            log_columns = (_shared_columns(reader, staged, LOGS)
                           if _has_table(reader, LOGS) and _has_table(staged, LOGS) else [])
            staged.execute("BEGIN IMMEDIATE")
            try:
                _carry_tasks(reader, staged, task_columns, result)
                if log_columns and result.task_ids:
                    _carry_logs(reader, staged, log_columns, result)
                staged.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    staged.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise _unreadable(action, error) from error
    return result


def _carry_tasks(reader: sqlite3.Connection, staged: sqlite3.Connection, columns: list[str],
                 result: CarryResult) -> None:
    names = ", ".join(f'"{name}"' for name in columns)
    marks = ", ".join("?" for _ in columns)
    key_at = columns.index(_KEY) if _KEY in columns else None
    id_at, type_at = columns.index("id"), columns.index("type") if "type" in columns else None
    rows = reader.execute(f"SELECT {names} FROM {TASKS} WHERE id > ? ORDER BY id",
                          (result.above_id,))
    insert = f"INSERT INTO {TASKS} ({names}) VALUES ({marks})"
    while batch := rows.fetchmany(_BATCH):
        carried = []
        for row in batch:
            key = row[key_at] if key_at is not None else None
            holder = None if key is None else staged.execute(
                f"SELECT id FROM {TASKS} WHERE {_KEY} = ?", (key,)).fetchone()
            if holder is not None:
                result.conflicts.append(CarryConflict(
                    int(row[id_at]), str(row[type_at]) if type_at is not None else "",
                    str(key), int(holder[0])))
                continue
            carried.append(tuple(row))
            result.task_ids.append(int(row[id_at]))
        staged.executemany(insert, carried)


def _carry_logs(reader: sqlite3.Connection, staged: sqlite3.Connection, columns: list[str],
                result: CarryResult) -> None:
    names = ", ".join(f'"{name}"' for name in columns)
    marks = ", ".join("?" for _ in columns)
    id_column = _primary_key(reader, LOGS)
    skipped = {conflict.task_id for conflict in result.conflicts}
    rows = reader.execute(f"SELECT {names} FROM {LOGS} WHERE task_id > ? ORDER BY rowid",
                          (result.above_id,))
    id_at = columns.index(id_column) if id_column in columns else None
    task_at = columns.index("task_id")
    insert = f"INSERT INTO {LOGS} ({names}) VALUES ({marks})"
    while batch := rows.fetchmany(_BATCH):
        kept = []
        for row in batch:
            if row[task_at] in skipped:
                continue
            values = list(row)
            if id_at is not None and values[id_at] is not None and staged.execute(
                    f'SELECT 1 FROM {LOGS} WHERE "{id_column}" = ?',
                    (values[id_at],)).fetchone() is not None:
                values[id_at] = None
                result.logs_renumbered += 1
            kept.append(values)
        staged.executemany(insert, kept)
        result.logs += len(kept)


def _stored_columns(connection: sqlite3.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in connection.execute(
        "SELECT * FROM pragma_table_xinfo(?)", (table,)) if int(row[6]) == 0]


def _shared_columns(reader: sqlite3.Connection, staged: sqlite3.Connection,
                    table: str) -> list[str]:
    theirs = set(_stored_columns(staged, table))
    return [name for name in _stored_columns(reader, table) if name in theirs]


def _primary_key(connection: sqlite3.Connection, table: str) -> str | None:
    keys = [str(row[1]) for row in connection.execute(
        "SELECT * FROM pragma_table_info(?)", (table,)) if int(row[5]) > 0]
    return keys[0] if len(keys) == 1 else None


def _has_table(connection: sqlite3.Connection, table: str) -> bool:
    return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                              (table,)).fetchone() is not None


def _unreadable(action: str, error: QueueAdminError | sqlite3.Error) -> QueueBackupError:
    if isinstance(error, QueueAdminError):
        cause, kind = error.message.rstrip("."), error.kind
    else:
        cause, kind = str(error), translate_error(error, action, QueueBackupError).kind
    return QueueBackupError(
        f"{action} refused: the tasks created after the backup could not be carried from the "
        f"live database into the restored one ({cause}); nothing was changed; restore "
        "without keeping them, or put back only the damaged tasks.", kind)


__all__ = ["CarryConflict", "CarryResult", "NewerTasks", "carry_newer_tasks",
           "count_newer_tasks", "id_mark"]
