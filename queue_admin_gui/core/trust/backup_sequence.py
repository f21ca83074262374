"""A backup's id counters (``sqlite_sequence``), read and judged before a restore trusts them.

An AUTOINCREMENT table hands out ids above the larger of its counter and its highest id.
A counter that is text reads as 0 (ids already handed out come again), one below the
table's highest id is not what SQLite itself would have written, and one near the top of
the 64-bit range leaves no id to hand out (every insert then fails as "database or disk is
full"). A counter for a table the file does not have, or for one without AUTOINCREMENT, is
not something SQLite writes either, and neither is a table holding rows with no counter
row at all. Each such counter is named in one sentence.

Room is judged on the highest id of every AUTOINCREMENT table too, whether or not it has
a counter row: a file whose ``task_queue`` holds id 2^63-1 and no ``sqlite_sequence`` row
for it has just as little room. "No room" means at or above :data:`MAX_COUNTER` (2^62): a
real queue never comes near it, and below it more than 4.6 * 10^18 ids remain.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from .schema_sql import is_virtual_table, uses_autoincrement

#: Counters or ids at or above this leave too few ids to run a queue with (SQLite stops at
#: 2**63-1; below this bound more than 4.6 * 10**18 remain).
MAX_COUNTER = 2 ** 62
#: The largest id SQLite hands out.
LARGEST_ID = 2 ** 63 - 1
#: Rows of sqlite_sequence read at most: a real file has one per AUTOINCREMENT table.
MAX_COUNTERS_READ = 100
#: Table definitions longer than this are never tokenized (a queue table's is about 2,000
#: characters; a hostile file's can be megabytes, which would hold a check for seconds).
MAX_PARSED_SQL_CHARS = 20_000
_MAX_SHOWN_CHARS = 40


@dataclass(frozen=True)
class Counter:
    """One row of ``sqlite_sequence`` with what the file says about the table it names.

    ``highest_id`` is the table's largest rowid (None when the table is empty or was not
    looked at); ``table_exists`` and ``autoincrement`` describe the table of that exact name.
    """

    name: object
    seq: object
    table_exists: bool
    autoincrement: bool
    highest_id: int | None


@dataclass
class Counters:
    """The counters read from a file; ``too_many`` when it had more than could be read.

    ``highest_ids`` holds the largest id of each AUTOINCREMENT table of the file that has
    rows, by table name, whether or not ``sqlite_sequence`` has a row for it.
    """

    rows: list[Counter]
    too_many: bool = False
    highest_ids: dict[str, int] = field(default_factory=dict)
    #: False when the file has no sqlite_sequence table at all (judged elsewhere).
    rows_read: bool = True


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _autoincrement(sql: str | None) -> bool:
    """True when a table's definition uses AUTOINCREMENT (an ordinary table, not virtual).

    The word itself is looked for first, so most definitions are never tokenized; a huge one
    that names it counts as AUTOINCREMENT without tokenizing, which only adds checks.
    """
    if sql is None or "autoincrement" not in sql.lower():
        return False
    if len(sql) > MAX_PARSED_SQL_CHARS:
        return [word.lower() for word in sql.split(None, 2)[1:2]] != ["virtual"]
    return not is_virtual_table(sql) and uses_autoincrement(sql)


def _highest_ids(connection: sqlite3.Connection,
                 tables: dict[str, str | None]) -> dict[str, int]:
    """The largest rowid of each AUTOINCREMENT table that has rows (at most the first 100)."""
    highest: dict[str, int] = {}
    for name, sql in tables.items():
        if len(highest) >= MAX_COUNTERS_READ:
            break
        if not _autoincrement(sql):
            continue
        query = f"SELECT max(rowid) FROM {_quote(name)}"  # noqa: S608 - a quoted name
        value = connection.execute(query).fetchone()[0]
        if isinstance(value, int):
            highest[name] = value
    return highest


def read_counters(connection: sqlite3.Connection) -> Counters:
    """Read ``sqlite_sequence`` and the highest id of each AUTOINCREMENT table."""
    tables = {str(name): None if sql is None else str(sql) for name, sql in connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
    highest_ids = _highest_ids(connection, tables)
    if "sqlite_sequence" not in tables:
        return Counters([], highest_ids=highest_ids, rows_read=False)
    rows = connection.execute("SELECT name, seq FROM sqlite_sequence LIMIT ?",
                              (MAX_COUNTERS_READ + 1,)).fetchall()
    counters: list[Counter] = []
    for name, seq in rows[:MAX_COUNTERS_READ]:
        sql = tables.get(name) if isinstance(name, str) else None
        exists = isinstance(name, str) and name in tables
        autoincrement = exists and _autoincrement(sql)
        highest = highest_ids.get(str(name)) if autoincrement else None
        counters.append(Counter(name, seq, exists, autoincrement, highest))
    return Counters(counters, too_many=len(rows) > MAX_COUNTERS_READ,
                    highest_ids=highest_ids)


def _shown(value: object) -> str:
    text = "".join(char if char.isprintable() else "?" for char in repr(value))
    return text if len(text) <= _MAX_SHOWN_CHARS else text[:_MAX_SHOWN_CHARS] + "..."


def _problem(counter: Counter) -> str | None:
    """What is wrong with one counter, as the end of a sentence; None when it is sound."""
    name, seq = counter.name, counter.seq
    if not counter.table_exists:
        return f"names {_shown(name)}, which is not a table of the file"
    if not counter.autoincrement:
        return f"names {_shown(name)}, a table that does not use AUTOINCREMENT"
    if not isinstance(seq, int):
        return (f"for {_shown(name)} is {_shown(seq)}, not a whole number, which SQLite "
                "reads as 0, so ids already handed out would be handed out again")
    if seq < 0:
        return f"for {_shown(name)} is {seq}, below zero"
    if seq >= MAX_COUNTER:
        return (f"for {_shown(name)} is {seq}, so close to the largest id SQLite allows "
                f"({LARGEST_ID}) that the restored queue could accept few or no new rows "
                f"(a queue needs its counters below 2^62 = {MAX_COUNTER})")
    if counter.highest_id is not None and seq < counter.highest_id:
        return (f"for {_shown(name)} is {seq}, below the highest id in use there "
                f"({counter.highest_id}), which SQLite itself never writes")
    return None


def _no_room(table: str, highest: int, counted: bool) -> str:
    """A sentence saying a table's highest id leaves no room for new rows."""
    counter = ("" if counted else
               " (and sqlite_sequence has no counter for it, so nothing else records "
               "where its ids stand)")
    return (f"The file's table {_shown(table)} already holds id {highest}{counter}, at or "
            f"above 2^62 = {MAX_COUNTER} and so close to the largest id SQLite allows "
            f"({LARGEST_ID}) that the restored queue would have little or no room for new "
            "rows: once its ids run out every insert fails with \"database or disk is "
            "full\"; use another backup.")


def _uncounted(table: str, highest: int) -> str:
    """A sentence saying a table holding rows has no counter row, which SQLite never leaves."""
    return (f"The file's table {_shown(table)} holds rows (up to id {highest}) but "
            "sqlite_sequence has no counter for it, which SQLite itself never leaves: the "
            "file was altered, and the ids handed out above its highest row would be handed "
            "out again after a restore; use another backup.")


def counter_problems(counters: Counters) -> list[str]:
    """One sentence per unsound counter, and per table whose ids leave no room for new rows.

    Empty when every counter is sound and every AUTOINCREMENT table's highest id is below
    :data:`MAX_COUNTER`.
    """
    sentences = [f"The file's id counter (sqlite_sequence) {problem}; restoring it would "
                 "leave the queue's ids unsound, so use another backup."
                 for problem in map(_problem, counters.rows) if problem is not None]
    counted = {counter.name for counter in counters.rows}
    at_the_top = {counter.name for counter in counters.rows
                  if isinstance(counter.seq, int) and counter.seq >= MAX_COUNTER}
    sentences += [_no_room(table, highest, table in counted)
                  for table, highest in counters.highest_ids.items()
                  if highest >= MAX_COUNTER and table not in at_the_top]
    sentences += [_uncounted(table, highest) for table, highest in counters.highest_ids.items()
                  if table not in counted and highest < MAX_COUNTER and counters.rows_read]
    if counters.too_many:
        sentences.append(f"The file's sqlite_sequence holds more than {MAX_COUNTERS_READ} "
                         "counters, far more than a queue has tables; it was not made by "
                         "SQLite for a queue, so use another backup.")
    return sentences
