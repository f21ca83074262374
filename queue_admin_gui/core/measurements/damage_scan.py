"""The check's damage scan in slices: a file too big for one budget is read over several runs.

SQLite's ``quick_check`` cannot be resumed: on a queue of millions of tasks it never ends
within the check's budget, so the file would never be covered. Once a whole quick check has
run out of time, the check scans in slices instead and remembers where it stopped, in the
tool's state folder (one small JSON file per database). A pass reads every b-tree in
``sqlite_schema`` order: each table's rows in rowid order, every stored column of them
(overflow pages included), a batch at a time; each index in one covering walk. With
``cell_size_check`` on, SQLite checks each page's cells as it loads the page, so damage in
any page read raises SQLITE_CORRUPT, which the scan reports in SQLite's own words. When the
last b-tree is read the pass has ended: its end time is kept and the next pass starts over.

A slice reads only (the state file is the tool's own, never beside the database). It is a
page-by-page read, not every comparison of ``integrity_check``: the full check stays the
``integrity`` command's, in a quiet hour.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..files.bounded_json import UnreadableJson, read_json_object
from ..files.durable import write_json_atomically
from ..settings.folders import user_state_dir

#: Rows of a table read by one statement; the clock is looked at between batches.
BATCH_ROWS = 5000
#: SQLite virtual-machine steps between two looks at the clock inside a batch.
_CLOCK_STEPS = 1000
_STATE_FOLDER = "damage-scan"
_STATE_VERSION = 1


@dataclass
class ScanState:
    """Where the scan of one database stands, as kept between runs."""

    database: str
    #: True once a whole quick check ran out of its budget: from then on, slices.
    sliced: bool = False
    #: The b-tree being read (a table or index name) and, in a table, the last rowid read.
    tree: str | None = None
    after_rowid: int | None = None
    pass_started_at: str | None = None
    last_full_pass_started_at: str | None = None
    last_full_pass_ended_at: str | None = None
    #: Indexes the last pass could not walk on their own (named so the report can say so).
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON kept in the state file."""
        return {"version": _STATE_VERSION, **asdict(self)}


@dataclass(frozen=True)
class SliceOutcome:
    """What one run's slice did."""

    damage: str | None
    #: True when this run read the last b-tree, so a full pass ended.
    pass_ended: bool
    #: What was read, e.g. "task_queue rows 1-5000, ix_task_type_status".
    read: str
    #: Where the next run starts ("task_logs after row 20000"); "" when a pass just ended.
    next_position: str
    #: True when the whole pass fit in this one run (the whole quick check would, too).
    one_run: bool = False


def state_file(db_path: Path) -> Path:
    """The state file of ``db_path``: named by a digest of its absolute, case-folded path."""
    key = os.path.normcase(os.path.abspath(db_path))
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return user_state_dir() / _STATE_FOLDER / f"{digest}.json"


def load_state(db_path: Path) -> ScanState:
    """The kept state of ``db_path``'s scan, or a fresh one when none can be used."""
    fresh = ScanState(database=os.path.abspath(db_path))
    try:
        data = read_json_object(state_file(db_path), max_bytes=64 * 1024, max_depth=4)
    except (OSError, UnreadableJson):
        return fresh
    if data.get("version") != _STATE_VERSION or data.get("database") != fresh.database:
        return fresh
    try:
        state = ScanState(**{key: value for key, value in data.items() if key != "version"})
    except TypeError:
        return fresh
    texts = (state.tree, state.pass_started_at, state.last_full_pass_started_at,
             state.last_full_pass_ended_at)
    if not isinstance(state.sliced, bool) or not all(
            value is None or isinstance(value, str) for value in texts) or not (
            state.after_rowid is None or type(state.after_rowid) is int) or not (
            isinstance(state.skipped, list) and all(isinstance(n, str) for n in state.skipped)):
        return fresh
    return state


def save_state(db_path: Path, state: ScanState) -> str | None:
    """Keep ``state`` for the next run; the reason when it could not be written, else None."""
    target = state_file(db_path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(target, state.as_dict())
    except OSError as error:
        return f"where the damage scan stopped could not be kept in '{target}' " \
               f"({error.strerror or error})"
    return None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Tree:
    kind: str  # "table", "table without rowid" or "index"
    name: str
    table: str
    statement: str


def _trees(connection: sqlite3.Connection) -> list[_Tree]:
    """Every b-tree of the file in ``sqlite_schema`` order, with the statement that reads it.

    Names are quoted; a partial index's condition is the file's own, which SQLite already
    evaluates on every write, read here through a read-only connection.
    """
    trees = [_Tree("table", "sqlite_schema", "sqlite_schema",
                   "SELECT count(*), max(r), total(length(CAST(s AS BLOB))) FROM "
                   "(SELECT rowid AS r, sql AS s FROM sqlite_schema WHERE rowid > ? "
                   "ORDER BY rowid LIMIT ?)")]
    rows = connection.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema "
        "WHERE type IN ('table', 'index') AND rootpage > 0 ORDER BY rowid").fetchall()
    for kind, name, table, sql in rows:
        if kind == "index":
            where = _partial_condition(sql)
            condition = f" WHERE {where}" if where else ""
            statement = (f"SELECT count(*), total(_rowid_) FROM {_quoted(table)} "  # noqa: S608
                         f"INDEXED BY {_quoted(name)}{condition}")
            trees.append(_Tree("index", name, table, statement))
            continue
        columns = [str(row[1]) for row in connection.execute(
            "SELECT * FROM pragma_table_info(?)", (name,))]
        width = " + ".join(f"coalesce(length(CAST({_quoted(column)} AS BLOB)), 0)"
                           for column in columns) or "0"
        if _has_rowid(connection, name):
            statement = (f"SELECT count(*), max(r), total(w) FROM (SELECT _rowid_ AS r, "  # noqa: S608
                         f"{width} AS w FROM {_quoted(name)} WHERE _rowid_ > ? "
                         "ORDER BY _rowid_ LIMIT ?)")
            trees.append(_Tree("table", name, name, statement))
        else:
            statement = f"SELECT count(*), total({width}) FROM {_quoted(name)}"  # noqa: S608
            trees.append(_Tree("table without rowid", name, name, statement))
    return trees


def _has_rowid(connection: sqlite3.Connection, table: str) -> bool:
    try:
        connection.execute(f"SELECT _rowid_ FROM {_quoted(table)} LIMIT 0")  # noqa: S608
    except sqlite3.OperationalError:
        return False
    return True


def _partial_condition(sql: str | None) -> str | None:
    """The ``WHERE`` condition of a partial index's SQL, or None for a full index."""
    if not sql:
        return None
    upper = sql.upper()
    position = upper.rfind(" WHERE ")
    for separator in ("\nWHERE ", "\tWHERE ", ")WHERE "):
        position = max(position, upper.rfind(separator))
    return sql[position + len(" WHERE "):].strip() if position >= 0 else None


class _OutOfTime(Exception):
    """The budget ran out inside a statement."""


def scan_slice(connection: sqlite3.Connection, state: ScanState, budget: float,
               now: datetime | None = None) -> SliceOutcome:
    """Read from where ``state`` stopped until the budget runs out or the pass ends.

    ``state`` is updated in place (the caller keeps it). The first step of a run is always
    completed, however small the budget, so every run moves the scan on. Damage stops the
    slice without moving past it: the next run reads the same place again.
    """
    connection.execute("PRAGMA cell_size_check = ON")
    started = time.monotonic()
    deadline = started + budget
    stamp = (now or datetime.now(timezone.utc)).isoformat()
    trees = _trees(connection)
    names = [tree.name for tree in trees]
    fresh = state.tree not in names or state.pass_started_at is None
    if fresh:
        state.tree, state.after_rowid = names[0], None
        state.pass_started_at, state.skipped = stamp, []
    index = names.index(state.tree)
    read: dict[str, str] = {}  # by b-tree: batches of one table make one entry
    first = True
    while True:
        tree = trees[index]
        try:
            done, text = _step(connection, tree, state, None if first else deadline)
        except _OutOfTime:
            break
        except sqlite3.DatabaseError as error:
            if _is_damage(error):
                return SliceOutcome(f"{error} (in {tree.name})", False,
                                    _joined(list(read.values())), _position(state))
            if tree.kind != "index":
                raise
            state.skipped.append(tree.name)  # an index SQLite will not walk on its own
            done, text = True, ""
        first = False
        if text:
            read[tree.name] = text
        if done:
            index += 1
            if index == len(trees):
                state.last_full_pass_started_at = state.pass_started_at
                state.last_full_pass_ended_at = (now or datetime.now(timezone.utc)).isoformat()
                state.tree, state.after_rowid, state.pass_started_at = None, None, None
                return SliceOutcome(None, True, _joined(list(read.values())), "", one_run=fresh)
            state.tree, state.after_rowid = trees[index].name, None
        if time.monotonic() >= deadline:
            break
    return SliceOutcome(None, False, _joined(list(read.values())), _position(state))


def _step(connection: sqlite3.Connection, tree: _Tree, state: ScanState,
          deadline: float | None) -> tuple[bool, str]:
    """Read one batch of a table, or one whole index; (b-tree finished, what was read)."""
    if tree.kind == "table":
        after = state.after_rowid if state.after_rowid is not None else -(2 ** 63)
        count, last, _width = _bounded(connection, tree.statement, (after, BATCH_ROWS),
                                       deadline)
        if not count:
            return True, ""
        state.after_rowid = int(last)
        return int(count) < BATCH_ROWS, f"{tree.name} to row id {int(last):,}"
    _bounded(connection, tree.statement, (), deadline)
    return True, tree.name


def _bounded(connection: sqlite3.Connection, statement: str, parameters: tuple[Any, ...],
             deadline: float | None) -> tuple[Any, ...]:
    """One row of ``statement``, stopped (raising _OutOfTime) when ``deadline`` passes."""
    if deadline is None:
        return tuple(connection.execute(statement, parameters).fetchone())
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _OutOfTime
    connection.set_progress_handler(lambda: time.monotonic() > deadline, _CLOCK_STEPS)
    alarm = threading.Timer(remaining, connection.interrupt)
    alarm.daemon = True
    alarm.start()
    try:
        return tuple(connection.execute(statement, parameters).fetchone())
    except sqlite3.OperationalError as error:
        if "interrupt" in str(error).lower():
            raise _OutOfTime from error
        raise
    finally:
        alarm.cancel()
        alarm.join()
        connection.set_progress_handler(None, 0)


def _is_damage(error: sqlite3.DatabaseError) -> bool:
    code = getattr(error, "sqlite_errorname", "")
    text = str(error).lower()
    return code in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or code.startswith(
        "SQLITE_CORRUPT") or "malformed" in text or "not a database" in text


def _position(state: ScanState) -> str:
    if state.tree is None:
        return ""
    if state.after_rowid is None:
        return f"{state.tree} from its start"
    return f"{state.tree} after row {state.after_rowid:,}"


def _joined(parts: list[str]) -> str:
    if len(parts) <= 4:
        return ", ".join(parts)
    return ", ".join([*parts[:2], f"... {len(parts) - 3} more", parts[-1]])


__all__ = ["BATCH_ROWS", "ScanState", "SliceOutcome", "load_state", "save_state",
           "scan_slice", "state_file"]
