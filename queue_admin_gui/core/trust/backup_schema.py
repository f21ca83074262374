"""Comparing a backup's schema with the queue schema and the live database's own.

Having the queue's columns is not enough to be restorable. Every table, index, trigger and
view of a backup is restored with it, and each changes what the workers' and this tool's
statements do: a column declared ``UNIQUE ON CONFLICT REPLACE`` deletes other tasks on an
insert, a key without AUTOINCREMENT hands out ids again, a CHECK can forbid leasing, an
extra unique index can refuse new tasks, a dropped one lets duplicates in. So each object
of the backup is accepted only when its definition is the queue schema's or the live
database's own (real deployments may run an older or newer version of the schema, and a
backup of them carries that version): same kind, exactly the same name and table, and the
same meaning as SQLite reports it (see :mod:`.schema_meaning`: columns, foreign keys and
indexes from SQLite's PRAGMAs, so a foreign key written on the column or after the columns
is one schema; views and triggers by their normalized definition; what no PRAGMA reports,
such as a CHECK or AUTOINCREMENT, by its normalized text). PrismQ's five observability views
are part of the queue schema. An index the queue schema has is required, unless the live
database runs without it too; ``sqlite_sequence`` is required whenever the file has an
AUTOINCREMENT table, since no insert into one works without it; a view is not required,
since the queue runs without it.
Names are looked up without regard to case, so that ``Task_Queue`` is reported as the
queue's table under another name rather than as an unknown one.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..database import closing_connection, open_read_only
from ..errors import QueueAdminError
from ..schema import QUEUE_TABLES, SCHEMA_SQL
from .schema_meaning import (
    MAX_READ_SQL_CHARS,
    ColumnMeaning,
    DefinitionMeaning,
    ExactText,
    SchemaMeaning,
    TableMeaning,
    ViewMeaning,
    column_field_differences,
    foreign_key_text,
    implied_index_text,
    misread_character,
    read_meaning,
)
from .schema_sql import (
    TableItems,
    fold_case,
    is_virtual_table,
    name_token,
    normalized_sql,
    sql_tokens,
    table_items,
    uses_autoincrement,
)
from .untrusted import SchemaObject, read_schema

#: Names listed in one sentence before the rest are counted.
MAX_LISTED_OBJECTS = 5
#: Differences named for one object before the rest are counted.
MAX_LISTED_DIFFERENCES = 4
_MAX_NAME_CHARS = 60
_MAX_SQL_CHARS = 160
#: Tokens shown on each side of where two long definitions part.
_CONTEXT_TOKENS = 6
#: The statistics table SQLite's ANALYZE creates in builds with STAT4 (ANALYZE adds stat1).
_STAT4_SQL = "CREATE TABLE sqlite_stat4(tbl,idx,neq,nlt,ndlt,sample)"
_RESTORED = "so use another backup"
_SEQUENCE_TABLE = "sqlite_sequence"


@functools.lru_cache(maxsize=1)
def queue_schema() -> tuple[SchemaObject, ...]:
    """The objects the queue schema creates, as SQLite stores them, with ANALYZE's tables."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.executescript(SCHEMA_SQL)
        connection.execute("ANALYZE")
        found = read_schema(connection)
        if all(item.name != "sqlite_stat4" for item in found):
            # This SQLite lacks STAT4; read the table's meaning from one of its shape.
            connection.execute(_STAT4_SQL.replace("sqlite_stat4", "stat4_shape"))
            meaning = read_meaning(connection, "table", "stat4_shape", "stat4_shape",
                                   _STAT4_SQL)
            found.append(SchemaObject("table", "sqlite_stat4", "sqlite_stat4", _STAT4_SQL,
                                      meaning))
    finally:
        connection.close()
    return tuple(found)


def read_live_schema(live: Path | None) -> tuple[list[SchemaObject] | None, str | None]:
    """The live database's schema, read read-only, to compare a backup's with.

    Returns the schema (None without a live database, or when it cannot be read) and, when
    it could not be read, a note saying the backup was compared with the queue schema only.
    """
    if live is None:
        return None, None
    try:
        with closing_connection(open_read_only(live)) as connection:
            return read_schema(connection), None
    except (QueueAdminError, sqlite3.Error, OSError) as error:
        return None, (f"The live database '{live}' could not be read ({error}), so the "
                      "backup's schema was compared with the queue schema only.")


def _printable(text: str, limit: int) -> str:
    shown = "".join(char if char.isprintable() else "?" for char in text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _shown(item: SchemaObject) -> str:
    """A schema object's kind and name (and table), printable whatever characters they hold."""
    name = _printable(item.name, _MAX_NAME_CHARS)
    on = (f" on {_printable(item.table, _MAX_NAME_CHARS)}"
          if item.type in ("trigger", "index") else "")
    return f"{item.type} '{name}'{on}"


def _sql(text: str) -> str:
    return f"`{_printable(text, _MAX_SQL_CHARS)}`"


def _listed(items: Sequence[str]) -> str:
    listed = ", ".join(items[:MAX_LISTED_OBJECTS])
    more = len(items) - MAX_LISTED_OBJECTS
    return listed + (f" and {more} more" if more > 0 else "")


def _key(item: SchemaObject) -> tuple[str, str, str, SchemaMeaning]:
    meaning = item.meaning or DefinitionMeaning(normalized_sql(item.sql))
    return item.type, item.name, item.table, meaning


def _by_folded_name(schema: Iterable[SchemaObject]) -> dict[str, SchemaObject]:
    return {fold_case(item.name): item for item in schema}


def _head_tokens(sql: str | None) -> tuple[str, ...]:
    """The tokens of the start of ``sql``: enough to tell its kind, however long it is."""
    return sql_tokens((sql or "")[:MAX_READ_SQL_CHARS])


def _kind(item: SchemaObject) -> str:
    tokens = _head_tokens(item.sql)
    if item.type == "table" and tokens[:3] == ("create", "virtual", "table"):
        module = tokens[tokens.index("using") + 1] if "using" in tokens[:-1] else "?"
        return f"a virtual table (using {_printable(module, _MAX_NAME_CHARS)})"
    return f"a {item.type}"


def _table_differences(item: SchemaObject, reference: SchemaObject) -> list[str]:
    """Name how one table differs from another in meaning: columns, keys, constraints."""
    mine, theirs = item.meaning, reference.meaning
    if not isinstance(mine, TableMeaning) or not isinstance(theirs, TableMeaning):
        return []
    mine_items, their_items = table_items(item.sql), table_items(reference.sql)
    if mine_items is None or their_items is None:
        return []

    def written(items: TableItems, column: ColumnMeaning) -> str:
        tokens = items.columns.get(name_token(column.name)) or items.columns.get(column.name)
        return " ".join(tokens or (column.name,))

    my_columns = {column.name: column for column in mine.columns}
    their_columns = {column.name: column for column in theirs.columns}
    found = [f"it lacks column {_printable(name, _MAX_NAME_CHARS)}"
             for name in their_columns if name not in my_columns]
    found += [f"it has the extra column {_sql(written(mine_items, column))}"
              for name, column in my_columns.items() if name not in their_columns]
    for name, column in my_columns.items():
        other = their_columns.get(name)
        if other is None or other == column:
            continue
        shown, expected = written(mine_items, column), written(their_items, other)
        if shown != expected:
            found.append(f"column {_printable(name, _MAX_NAME_CHARS)} is {_sql(shown)} "
                         f"instead of {_sql(expected)}")
        else:
            found.append(f"column {_printable(name, _MAX_NAME_CHARS)} differs in its "
                         f"{', '.join(column_field_differences(column, other))}")
    if not found and list(my_columns) != list(their_columns):
        found.append("its columns are in another order")
    found += [f"it adds a foreign key {_sql(foreign_key_text(key))}"
              for key in mine.foreign_keys if key not in theirs.foreign_keys]
    found += [f"it lacks the foreign key {_sql(foreign_key_text(key))}"
              for key in theirs.foreign_keys if key not in mine.foreign_keys]
    found += [f"it adds the table constraint {_sql(implied_index_text(index))}"
              for index in mine.implied_indexes if index not in theirs.implied_indexes]
    found += [f"it lacks the table constraint {_sql(implied_index_text(index))}"
              for index in theirs.implied_indexes if index not in mine.implied_indexes]
    found += [f"it adds the table constraint {_sql(text)}"
              for text in mine.constraints if text not in theirs.constraints]
    found += [f"it lacks the table constraint {_sql(text)}"
              for text in theirs.constraints if text not in mine.constraints]
    if mine.options != theirs.options:
        found.append(f"it ends with {_sql(mine.options or 'nothing')} instead of "
                     f"{_sql(theirs.options or 'nothing')}")
    return found


def _text_difference(mine: tuple[str, ...], theirs: tuple[str, ...]) -> str:
    """Name how two normalized definitions differ: whole when short, else where they part."""
    whole, expected = " ".join(mine), " ".join(theirs)
    if len(whole) <= _MAX_SQL_CHARS and len(expected) <= _MAX_SQL_CHARS:
        return (f"it is {_sql(whole or 'created by SQLite')} instead of "
                f"{_sql(expected or 'none')}")
    same = 0
    while same < min(len(mine), len(theirs)) and mine[same] == theirs[same]:
        same += 1
    start = max(0, same - _CONTEXT_TOKENS)

    def excerpt(tokens: tuple[str, ...]) -> str:
        shown = " ".join(tokens[start:same + _CONTEXT_TOKENS]) or "nothing"
        return ("... " if start else "") + shown + (
            " ..." if same + _CONTEXT_TOKENS < len(tokens) else "")

    return f"it reads {_sql(excerpt(mine))} where it should read {_sql(excerpt(theirs))}"


def _exact_text_difference(item: SchemaObject) -> str | None:
    """Why ``item`` was judged by its exact text: a character SQLite misreads, or its length."""
    if not isinstance(item.meaning, ExactText):
        return None
    char = misread_character(item.sql)
    if char is None:
        return (f"its SQL is {len(item.sql or '')} characters long, more than the "
                f"{MAX_READ_SQL_CHARS} read by meaning, and not exactly the schema's")
    if char == "\x00":
        return ("its SQL holds a NUL character, after which SQLite reads nothing, so SQLite "
                "does not read all that the text says")
    return (f"its SQL holds the character U+{ord(char):04X}, which looks like a space but "
            "which SQLite does not read as one (it reads a non-ASCII one as part of a name), "
            "so SQLite reads other names than the text shows")


def _view_column_difference(item: SchemaObject, reference: SchemaObject) -> str | None:
    """Name how a view's columns are named otherwise, when its definition reads the same."""
    mine, theirs = item.meaning, reference.meaning
    if (not isinstance(mine, ViewMeaning) or not isinstance(theirs, ViewMeaning)
            or mine.sql != theirs.sql or mine.columns == theirs.columns):
        return None
    shown = ", ".join(_printable(name, _MAX_NAME_CHARS) for name in mine.columns)
    expected = ", ".join(theirs.columns)
    return (f"SQLite names its columns {_sql(shown)} instead of {_sql(expected)} (the letter "
            "case of a column's name counts)")


def _quoted_difference(item: SchemaObject, reference: SchemaObject) -> str | None:
    """Name how the double-quoted names whose letter case counts differ, if they do."""
    mine = getattr(item.meaning, "quoted", ())
    theirs = getattr(reference.meaning, "quoted", ())
    if mine == theirs:
        return None

    def shown(names: tuple[str, ...]) -> str:
        return ", ".join(f'"{_printable(name, _MAX_NAME_CHARS)}"' for name in names) or "none"

    return (f"its double-quoted names whose letter case counts are {_sql(shown(mine))} "
            f"instead of {_sql(shown(theirs))} (SQLite reads a double-quoted name that names "
            "no column as a string, letter case and all, and \"true\" as text)")


def _differences(item: SchemaObject, reference: SchemaObject) -> list[str]:
    """Phrases naming how ``item`` differs from the object of that name it should equal."""
    if _kind(item) != _kind(reference):
        return [f"it is {_kind(item)}, not {_kind(reference)}"]
    found: list[str] = []
    if item.name != reference.name:
        found.append(f"it is named '{_printable(item.name, _MAX_NAME_CHARS)}' where the "
                     f"schema has '{reference.name}' (letter case differs)")
    if item.table != reference.table and item.type != "table":
        found.append(f"it belongs to '{_printable(item.table, _MAX_NAME_CHARS)}' instead "
                     f"of '{reference.table}'")
    if _key(item)[3] != _key(reference)[3]:
        exact = _exact_text_difference(item) or _view_column_difference(item, reference)
        details = ([exact] if exact is not None
                   else _table_differences(item, reference) if item.type == "table" else [])
        if not details:
            mine, theirs = sql_tokens(item.sql), sql_tokens(reference.sql)
            quoted = _quoted_difference(item, reference) if mine == theirs else None
            details = [quoted or _text_difference(mine, theirs)]
        found += details
    more = len(found) - MAX_LISTED_DIFFERENCES
    return found[:MAX_LISTED_DIFFERENCES] + ([f"{more} more differences"] if more > 0 else [])


def _differing(item: SchemaObject, reference: SchemaObject, whose: str) -> str:
    """One sentence naming an object of the backup and how it differs from the schema's."""
    name = _printable(item.name, _MAX_NAME_CHARS)
    if _kind(item) != _kind(reference):
        return (f"The file's {name} is {_kind(item)}, not {_kind(reference)} like "
                f"{whose}; restored, the queue's statements would run against something "
                f"else, {_RESTORED}.")
    return (f"The file's {_shown(item)} differs from {whose}: "
            f"{'; '.join(_differences(item, reference))}; restored, it would change what "
            f"the workers' and this tool's statements do, {_RESTORED}.")


def _missing(backup: Sequence[SchemaObject], live: Sequence[SchemaObject] | None) -> str | None:
    """A sentence naming the queue schema's indexes the backup lacks (None when none)."""
    present = {fold_case(item.name) for item in backup}
    tables = {fold_case(item.name) for item in backup if item.type == "table"}
    live_names = None if live is None else {item.name for item in live}
    lacking = [item for item in queue_schema()
               if item.type == "index" and item.sql is not None
               and fold_case(item.name) not in present and fold_case(item.table) in tables
               and (live_names is None or item.name in live_names)]
    if not lacking:
        return None
    unique = [item.name for item in lacking if sql_tokens(item.sql)[1] == "unique"]
    where = "the queue schema" + (" and the live database" if live is not None else "")
    loses = (f"; without {', '.join(unique)} duplicate values would be let in" if unique
             else "")
    return (f"The file lacks {_listed([_shown(item) for item in lacking])}, which {where} "
            f"{'have' if live is not None else 'has'}{loses}; restored, the queue would run "
            f"without {'it' if len(lacking) == 1 else 'them'}, {_RESTORED}.")


def _autoincrement(table: SchemaObject) -> bool:
    """True when a table of the file declares an AUTOINCREMENT key.

    Read from its meaning, so that no long definition is read token by token again; one
    too long to have been read by meaning is judged by its words.
    """
    meaning = table.meaning
    if isinstance(meaning, TableMeaning):
        return any("autoincrement" in text.split() for text in
                   [column.clauses for column in meaning.columns] + list(meaning.constraints))
    sql = table.sql or ""
    if len(sql) > MAX_READ_SQL_CHARS:
        return "autoincrement" in fold_case(sql)
    return not is_virtual_table(sql) and uses_autoincrement(sql)


def _lacking_counters(backup: Sequence[SchemaObject]) -> str | None:
    """A sentence when the backup has AUTOINCREMENT tables but no sqlite_sequence to count in.

    SQLite keeps those tables' counters in ``sqlite_sequence``; without it (its schema row
    deleted) the file still passes the integrity check, but every insert into them fails.
    """
    if any(fold_case(item.name) == _SEQUENCE_TABLE for item in backup):
        return None
    counted = [item.name for item in backup if item.type == "table" and _autoincrement(item)]
    if not counted:
        return None
    tables = _listed([f"'{_printable(name, _MAX_NAME_CHARS)}'" for name in counted])
    return (f"The file lacks table '{_SEQUENCE_TABLE}', where SQLite keeps the AUTOINCREMENT "
            f"counters of {tables}; restored, every insert into "
            f"{'it' if len(counted) == 1 else 'them'} would fail, so the queue could take no "
            f"new task, {_RESTORED}.")


def _implied(item: SchemaObject) -> bool:
    """An index SQLite made for a table's PRIMARY KEY or UNIQUE: judged with that table."""
    return (item.type == "index" and item.sql is None
            and item.name.startswith("sqlite_autoindex_"))


def _rank(item: SchemaObject) -> int:
    """Which differences are named first: the queue's tables, other tables, the rest."""
    if fold_case(item.name) in QUEUE_TABLES:
        return 0
    return {"table": 1, "view": 1, "index": 2}.get(item.type, 3)


def schema_problems(backup: list[SchemaObject], live: list[SchemaObject] | None) -> list[str]:
    """Sentences naming what keeps ``backup``'s schema from being the queue's; empty when none.

    ``live`` is the live database's schema (None when there is none to compare with: then
    only the queue schema's own objects are accepted).
    """
    queue = queue_schema()
    accepted = {_key(item) for item in queue} | {_key(item) for item in live or ()}
    queue_names, live_names = _by_folded_name(queue), _by_folded_name(live or ())
    differing: list[tuple[int, str]] = []
    strangers: list[SchemaObject] = []
    for item in backup:
        if _key(item) in accepted or _implied(item):
            continue
        folded = fold_case(item.name)
        reference = queue_names.get(folded) or live_names.get(folded)
        if reference is None:
            strangers.append(item)
            continue
        in_queue, in_live = folded in queue_names, folded in live_names
        whose = " and ".join(part for part, present in (
            ("the queue schema's", in_queue), ("the live database's", in_live)) if present)
        differing.append((_rank(item), _differing(item, reference, whose)))
    sentences = [sentence for _, sentence in sorted(differing, key=lambda pair: pair[0])]
    if len(sentences) > MAX_LISTED_OBJECTS:
        more = len(sentences) - MAX_LISTED_OBJECTS
        sentences = sentences[:MAX_LISTED_OBJECTS] + [
            f"{more} more of the file's objects differ from the queue schema's, {_RESTORED}."]
    if strangers:
        where = ("in neither the queue schema nor the live database" if live is not None
                 else "not in the queue schema (no live database to compare with)")
        sentences.append(f"The file has {_listed([_shown(item) for item in strangers])}, "
                         f"{where}; restoring it would bring that into the live queue, where "
                         f"it acts on the workers' and this tool's own changes, {_RESTORED}.")
    for lacking in (_missing(backup, live), _lacking_counters(backup)):
        if lacking is not None:
            sentences.append(lacking)
    return sentences
