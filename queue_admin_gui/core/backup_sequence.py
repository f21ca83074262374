"""A backup's id counters (``sqlite_sequence``), read and judged before a restore trusts them.

An AUTOINCREMENT table hands out ids above the larger of its counter and its highest id.
A counter that is text reads as 0 (ids already handed out come again), one below the
table's highest id is not what SQLite itself would have written, and one near the top of
the 64-bit range leaves no id to hand out (every insert then fails as "database or disk is
full"). A counter for a table the file does not have, or for one without AUTOINCREMENT, is
not something SQLite writes either. Each such counter is named in one sentence.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .schema_sql import is_virtual_table, uses_autoincrement

#: Counters at or above this leave too few ids to run a queue with (SQLite stops at 2**63-1).
MAX_COUNTER = 2 ** 62
#: Rows of sqlite_sequence read at most: a real file has one per AUTOINCREMENT table.
MAX_COUNTERS_READ = 100
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
    """The counters read from a file; ``too_many`` when it had more than could be read."""

    rows: list[Counter]
    too_many: bool = False


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_counters(connection: sqlite3.Connection) -> Counters:
    """Read ``sqlite_sequence`` and the highest id of each AUTOINCREMENT table it names."""
    tables = {str(name): sql for name, sql in connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
    if "sqlite_sequence" not in tables:
        return Counters([])
    rows = connection.execute("SELECT name, seq FROM sqlite_sequence LIMIT ?",
                              (MAX_COUNTERS_READ + 1,)).fetchall()
    counters: list[Counter] = []
    for name, seq in rows[:MAX_COUNTERS_READ]:
        sql = tables.get(name) if isinstance(name, str) else None
        exists = isinstance(name, str) and name in tables
        autoincrement = (exists and not is_virtual_table(sql) and uses_autoincrement(sql))
        highest = None
        if autoincrement:
            query = f"SELECT max(rowid) FROM {_quote(str(name))}"  # noqa: S608 - quoted name
            value = connection.execute(query).fetchone()[0]
            highest = value if isinstance(value, int) else None
        counters.append(Counter(name, seq, exists, autoincrement, highest))
    return Counters(counters, too_many=len(rows) > MAX_COUNTERS_READ)


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
        return (f"for {_shown(name)} is {seq}, so close to the largest id SQLite allows that "
                "the restored queue could accept few or no new rows")
    if counter.highest_id is not None and seq < counter.highest_id:
        return (f"for {_shown(name)} is {seq}, below the highest id in use there "
                f"({counter.highest_id}), which SQLite itself never writes")
    return None


def counter_problems(counters: Counters) -> list[str]:
    """One sentence per unsound counter of a backup; empty when every counter is sound."""
    sentences = [f"The file's id counter (sqlite_sequence) {problem}; restoring it would "
                 "leave the queue's ids unsound, so use another backup."
                 for problem in map(_problem, counters.rows) if problem is not None]
    if counters.too_many:
        sentences.append(f"The file's sqlite_sequence holds more than {MAX_COUNTERS_READ} "
                         "counters, far more than a queue has tables; it was not made by "
                         "SQLite for a queue, so use another backup.")
    return sentences
