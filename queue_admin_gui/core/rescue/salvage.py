"""Reading every row still readable from a damaged queue file into a fresh one.

SQLite refuses a whole query as soon as it meets a damaged page, so the rows are read by
ranges of their integer keys (``rowid``): a range that reads cleanly is copied; one that
fails is cut in two and each half tried again, down to single ids. Only the ids whose own
page is damaged are lost. The fresh file gets the queue schema and the rows exactly as they
were (same ids, same values); its id counters end at or above the damaged file's.

How many rows were lost: every index of ``task_queue`` holds each task's id, usually on other
pages than the table's own rows, so the ids an index still lists but the table no longer
gives are the rows that could not be read. When no index can be read either, the count is
the ids in the ranges that failed, which may include ids that never held a task; the report
says which count it is.
"""

# SQL text here is built from the queue's table names and from column names SQLite itself
# reported for them (quoted); every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..database import closing_connection, open_read_only
from ..errors import ErrorKind, QueueAdminError, translate_error
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from ..schema import SCHEMA_SQL
from .sql import RescueError, quoted, stored_columns

#: The queue's tables, salvaged in this order (tasks before their logs).
SALVAGED_TABLES = ("task_queue", "task_logs", "workers")
#: Ids read per query while the file reads cleanly.
CHUNK_IDS = 20_000
STAGE_SALVAGE = "Reading the rows still readable"


@dataclass
class SalvageReport:
    """What salvage read from a damaged file and what it could not."""

    source: Path
    output: Path
    #: Table -> rows copied into the fresh file.
    rows_read: dict[str, int] = field(default_factory=dict)
    #: Table -> rows that could not be read (see ``counted_from_index``).
    rows_unreadable: dict[str, int] = field(default_factory=dict)
    #: Table -> id ranges ``(first, last)`` that could not be read.
    unreadable_ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    #: Table -> True when the lost rows were counted from an intact index (exact), False
    #: when they are the ids of the failed ranges (an upper bound).
    counted_from_index: dict[str, bool] = field(default_factory=dict)
    #: Sentences for tables that could not be read at all.
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def unreadable_ids(self) -> int:
        """Tasks that could not be read."""
        return self.rows_unreadable.get("task_queue", 0)

    @property
    def headline(self) -> str:
        """One sentence: what was read and what was lost."""
        tasks = self.rows_read.get("task_queue", 0)
        exact = self.counted_from_index.get("task_queue", False)
        lost = (f"{self.unreadable_ids} task(s) could not be read" if exact else
                f"up to {self.unreadable_ids} task id(s) could not be read")
        return f"Salvage read {tasks} task(s) from '{self.source}'; {lost}."


def salvage_queue(damaged: str | Path, output: str | Path,
                  progress: ProgressCallback | None = None,
                  cancelled: CancelCheck | None = None) -> SalvageReport:
    """Copy every readable row of ``damaged`` into the new file ``output`` (see the module).

    ``damaged`` is only read (read-only, immutable, untrusted). Raises :class:`RescueError`
    when not even the file's list of tables can be read, or ``output`` exists.
    """
    damaged, output = Path(damaged), Path(output)
    started = time.monotonic()
    action = f"Salvaging the rows of '{damaged}'"
    if output.exists():
        raise RescueError(f"{action} refused: '{output}' already exists; choose a new file.",
                          ErrorKind.ALREADY_EXISTS)
    outcome = SalvageReport(source=damaged, output=output)
    try:
        source = open_read_only(damaged, error_class=RescueError, immutable=True)
    except QueueAdminError as error:
        raise RescueError(f"{action} failed: the file cannot be opened at all "
                          f"({error.message.rstrip('.')}); use a backup or an archive "
                          "instant instead.", error.kind) from error
    try:
        with closing_connection(source), closing_connection(_fresh_queue(output, action)) \
                as target:
            try:
                present = {str(row[0]) for row in source.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.Error as error:
                raise translate_error(error, f"{action}: reading its list of tables",
                                      RescueError, path=damaged) from error
            if "task_queue" not in present:
                raise RescueError(f"{action} failed: it has no readable task_queue table; "
                                  "use a backup or an archive instant instead.",
                                  ErrorKind.NOT_A_QUEUE)
            for table in SALVAGED_TABLES:
                if table in present:
                    _salvage_table(source, target, table, outcome, progress, cancelled, action)
            _carry_counters(source, target)
            target.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(OSError):
            output.unlink()
        raise
    outcome.seconds = time.monotonic() - started
    return outcome


def _fresh_queue(output: Path, action: str) -> sqlite3.Connection:
    """A new file with the queue schema, in one open transaction."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(output, isolation_level=None)
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.executescript(SCHEMA_SQL)
        connection.execute("BEGIN")
    except (OSError, sqlite3.Error) as error:
        raise translate_error(error, f"{action}: creating '{output}'", RescueError,
                              path=output) from error
    return connection


def _salvage_table(source: sqlite3.Connection, target: sqlite3.Connection, table: str,
                   outcome: SalvageReport, progress: ProgressCallback | None,
                   cancelled: CancelCheck | None, action: str) -> None:
    try:
        wanted = set(stored_columns(target, "main", table))
        columns = [name for name in stored_columns(source, "main", table) if name in wanted]
    except sqlite3.Error as error:
        outcome.problems.append(f"The columns of {table} could not be read ({error}).")
        return
    listed = _ids_from_an_index(source, table)
    last = _highest_id(source, table, listed)
    if not columns or last is None:
        outcome.problems.append(f"No row of {table} could be located; none was read.")
        return
    # A table whose key is not one of its columns (workers) keeps its rowid too.
    keys = ["rowid"] if _rowid_alias(source, table) not in columns else []
    select = (f"SELECT {quoted(keys + columns)} FROM main.\"{table}\""
              " WHERE rowid BETWEEN ? AND ?")
    single = select.replace("rowid BETWEEN ? AND ?", "rowid = ?")
    insert = (f"INSERT OR IGNORE INTO main.\"{table}\" ({quoted(keys + columns)})"
              f" VALUES ({', '.join('?' * (len(keys) + len(columns)))})")
    key_at = 0 if keys else columns.index(_rowid_alias(source, table) or "")
    read_ids: set[int] = set()
    failed: list[tuple[int, int]] = []
    first = _lowest_id(source, table, listed)
    pending = [(low, min(low + CHUNK_IDS - 1, last))
               for low in range(first, last + 1, CHUNK_IDS)]
    pending.reverse()
    span = max(1, last - first + 1)
    while pending:
        low, high = pending.pop()
        raise_if_cancelled(cancelled, action)
        try:
            # One id is looked up by equality: a range scan would step on to the next page.
            rows = (source.execute(single, (low,)) if low == high
                    else source.execute(select, (low, high))).fetchall()
        except sqlite3.DatabaseError:
            if low == high:
                _note_failed(failed, low)
            else:
                middle = (low + high) // 2
                pending += [(middle + 1, high), (low, middle)]
            continue
        target.executemany(insert, [tuple(row) for row in rows])
        read_ids.update(int(row[key_at]) for row in rows)
        report(progress, min(span, high - first + 1), span, f"{STAGE_SALVAGE} ({table})")
    outcome.rows_read[table] = len(read_ids)
    outcome.unreadable_ranges[table] = failed
    if listed is not None:
        outcome.rows_unreadable[table] = len(listed - read_ids)
        outcome.counted_from_index[table] = True
    else:
        outcome.rows_unreadable[table] = sum(high - low + 1 for low, high in failed)
        outcome.counted_from_index[table] = False


def _rowid_alias(source: sqlite3.Connection, table: str) -> str | None:
    """The INTEGER PRIMARY KEY column that is the table's rowid, if it has one."""
    keys = [(str(row[1]), str(row[2]).upper()) for row in source.execute(
        "SELECT * FROM pragma_table_info(?)", (table,)) if int(row[5])]
    return keys[0][0] if len(keys) == 1 and keys[0][1] == "INTEGER" else None


def _note_failed(failed: list[tuple[int, int]], task_id: int) -> None:
    """Add one unreadable id, merging it into the previous range when adjacent."""
    if failed and failed[-1][1] == task_id - 1:
        failed[-1] = (failed[-1][0], task_id)
    else:
        failed.append((task_id, task_id))


def _ids_from_an_index(source: sqlite3.Connection, table: str) -> set[int] | None:
    """Every rowid one intact index of ``table`` lists, or None when none reads cleanly."""
    try:
        indexes = [str(row[1]) for row in source.execute(
            "SELECT * FROM pragma_index_list(?)", (table,)) if not int(row[4] or 0)]
    except sqlite3.Error:
        return None
    for index in indexes:
        with contextlib.suppress(sqlite3.Error):
            return {int(row[0]) for row in source.execute(
                f'SELECT rowid FROM main."{table}" INDEXED BY "{index}"')}
    return None


def _highest_id(source: sqlite3.Connection, table: str, listed: set[int] | None) -> int | None:
    """The highest rowid that may hold a row: from the counter, the table or an index."""
    found = [max(listed)] if listed else []
    for query, params in ((f'SELECT max(rowid) FROM main."{table}"', ()),
                          ("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,))):
        with contextlib.suppress(sqlite3.Error, TypeError):
            value = source.execute(query, params).fetchone()
            if value is not None and isinstance(value[0], int):
                found.append(int(value[0]))
    return max(found) if found else None


def _lowest_id(source: sqlite3.Connection, table: str, listed: set[int] | None) -> int:
    """The lowest rowid to read from (1 unless the file says otherwise)."""
    lowest = [min(listed)] if listed else []
    with contextlib.suppress(sqlite3.Error):
        value = source.execute(f'SELECT min(rowid) FROM main."{table}"').fetchone()
        if value is not None and isinstance(value[0], int):
            lowest.append(int(value[0]))
    return min([1, *lowest])


def _carry_counters(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    """The fresh file's id counters at or above the damaged file's, where those read."""
    with contextlib.suppress(sqlite3.Error):
        for name, seq in source.execute("SELECT name, seq FROM sqlite_sequence").fetchall():
            if isinstance(seq, int):
                target.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?",
                               (seq, name))
                target.execute("INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT"
                               " EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)"
                               " AND EXISTS (SELECT 1 FROM sqlite_master WHERE name = ?)",
                               (name, seq, name, name))
