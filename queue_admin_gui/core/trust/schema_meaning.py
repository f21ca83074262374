"""What a schema object means to SQLite, read from SQLite itself rather than from its SQL text.

Two files can define one queue in different words: PrismQ writes ``task_logs``' foreign key
as a table constraint, other code writes it on the column; a primary key or a UNIQUE can be
said on the column or after the columns. SQLite reads both the same way, so the comparison
of a backup's schema asks SQLite what it made of each object:

- a table: ``PRAGMA table_xinfo`` (each column's name, declared type, NOT NULL, default,
  place in the primary key, and whether it is generated, virtual or stored),
  ``foreign_key_list`` (each foreign key with its actions), and ``index_list`` /
  ``index_xinfo`` of the indexes its PRIMARY KEY and UNIQUE constraints make (uniqueness,
  columns, order, collation);
- an index: ``index_list`` / ``index_xinfo`` (uniqueness, key columns, order, collation),
  with the text of indexed expressions and of a partial index's WHERE condition, normalized;
- a view: its normalized definition (see :mod:`.schema_sql`), and for PrismQ's five views
  the names of its columns as ``PRAGMA table_xinfo`` reports them, letter case and all
  (normalizing folds the case of an alias such as ``AS Active_Tasks``, but SQLite names the
  column so, and PrismQ reads them by name). That PRAGMA compiles the view, which a file
  can make cost a fraction of a second per view (views over views, expanded up to SQLite's
  limit), so it runs for those five names only;
- a trigger: its normalized definition.

What no PRAGMA reports is kept as normalized text, so it still has to match exactly: a
column's CHECK, COLLATE, AUTOINCREMENT, conflict clause or generating expression, a table's
CHECK, a constraint with a conflict clause, a deferrable foreign key, ``WITHOUT ROWID`` and
``STRICT``. Anything the splitting does not recognise stays in that text too, and an object
SQLite cannot describe (a virtual table, or one whose PRAGMAs fail) is compared by its
normalized SQL only, so reading by meaning never accepts what the text would refuse for a
reason SQLite does not report.

Normalizing is sound only where SQLite splits the text as the normalizer does. Two
characters it does not: a NUL (SQLite reads a schema statement only up to it, so ``--``
and a NUL hide the rest of a view or of an index's condition from SQLite alone) and a space
other than an ASCII one (SQLite counts only ASCII spaces as spaces; U+00A0 before ``datetime``
makes a function name no SQLite has). An object whose SQL holds either is judged by its
exact text (:class:`ExactText`), which only an identical object matches; so is one whose
SQL is longer than :data:`MAX_READ_SQL_CHARS` (the queue's longest is under 2,000
characters), since reading megabytes token by token would take far longer than the file's
size explains, in a loop no cancel reaches.

Normalizing also folds letter case, which SQLite keeps in one place that matters: a
double-quoted name that names no column is a string to SQLite, case and all (and ``"true"``
is text where TRUE is 1). Every meaning therefore also carries, in ``quoted``, the
double-quoted names whose case or quotes may count (:func:`case_kept_names`).
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from ..schema import QUEUE_VIEWS
from .schema_sql import (
    SQL_KEYWORDS,
    column_clauses,
    fold_case,
    group_end,
    is_virtual_table,
    name_token,
    normalized_sql,
    sql_tokens,
    table_items,
)

_NO_ACTION = "NO ACTION"
#: The only characters SQLite's tokenizer counts as spaces.
SQLITE_SPACES = frozenset(" \t\n\f\r")
#: Longest definition read by meaning; a longer one is judged by its exact text.
MAX_READ_SQL_CHARS = 20_000
#: A NUL, or a character that normalizing would skip as a space and SQLite does not.
_MISREAD = re.compile(r"\x00|[^\S \t\n\f\r]")
#: Comments, strings and quoted names, so that a double-quoted name is found only where it
#: is one (its content, doubled quotes and all, in the group).
_QUOTED_PIECES = re.compile(
    r"--[^\n]*|/\*.*?(?:\*/|\Z)|'(?:[^']|'')*(?:'|\Z)|\[[^\]]*(?:\]|\Z)|`(?:[^`]|``)*(?:`|\Z)"
    r'|"((?:[^"]|"")*)(?:"|\Z)', re.DOTALL)
_LOWER_NAME = re.compile(r"[a-z_][a-z0-9_$]*")
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
#: Words that are values, not names, where SQLite expects a value.
_VALUE_WORDS = frozenset({"true", "false"})


@dataclass(frozen=True)
class ColumnMeaning:
    """One column as ``PRAGMA table_xinfo`` reports it, with the clauses it does not report.

    ``name`` and ``type`` are folded and normalized; ``default`` is the normalized default
    expression ("" without one); ``primary_key`` the column's place in the primary key (0
    when not in it); ``hidden`` 2 or 3 for a virtual or stored generated column; ``clauses``
    the normalized text of what no PRAGMA reports (CHECK, COLLATE, AUTOINCREMENT, conflict
    clauses, the generating expression).
    """

    name: str
    type: str
    not_null: bool
    default: str
    primary_key: int
    hidden: int
    clauses: str


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key as ``PRAGMA foreign_key_list`` reports it, however it was written."""

    columns: tuple[str, ...]
    table: str
    references: tuple[str, ...]
    on_update: str
    on_delete: str
    match: str


@dataclass(frozen=True)
class IndexKey:
    """One key column of an index: its column (None for an expression), order and collation."""

    column: str | None
    descending: bool
    collation: str


@dataclass(frozen=True)
class ImpliedIndex:
    """An index SQLite makes for a PRIMARY KEY (``origin`` "pk") or UNIQUE ("u") constraint."""

    origin: str
    unique: bool
    keys: tuple[IndexKey, ...]


@dataclass(frozen=True)
class TableMeaning:
    """A table as SQLite reads it; equal for every spelling of one definition."""

    columns: tuple[ColumnMeaning, ...]
    foreign_keys: tuple[ForeignKey, ...]
    implied_indexes: tuple[ImpliedIndex, ...]
    constraints: tuple[str, ...]
    options: str
    quoted: tuple[str, ...] = ()


@dataclass(frozen=True)
class IndexMeaning:
    """An index created by ``CREATE INDEX``: uniqueness, keys, expressions, partial condition."""

    unique: bool
    keys: tuple[IndexKey, ...]
    expressions: str
    where: str
    quoted: tuple[str, ...] = ()


@dataclass(frozen=True)
class DefinitionMeaning:
    """An object judged by its normalized definition: a view, a trigger, a virtual table."""

    sql: str
    quoted: tuple[str, ...] = ()


@dataclass(frozen=True)
class ViewMeaning:
    """A view: its normalized definition and its columns' names exactly as SQLite gives them."""

    sql: str
    columns: tuple[str, ...]
    quoted: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExactText:
    """An object judged by its exact text, which only an identical object matches.

    Its SQL holds a character SQLite reads otherwise than it looks, or is too long to be
    read token by token.
    """

    sql: str


SchemaMeaning = TableMeaning | IndexMeaning | ViewMeaning | DefinitionMeaning | ExactText


def misread_character(sql: str | None) -> str | None:
    """The first character of ``sql`` that SQLite reads otherwise than it looks, or None.

    That is a NUL (SQLite reads no further) or a space that is not ASCII (to SQLite, part
    of a name); normalized text would skip both.
    """
    found = _MISREAD.search(sql or "")
    return None if found is None else found.group()


def case_kept_names(sql: str | None) -> tuple[str, ...]:
    """The double-quoted names of ``sql`` whose letter case or quotes may count, in order.

    SQLite reads a double-quoted name that names no column as a string, letter case and all,
    and ``"true"`` as that text where a bare TRUE is 1; normalizing would fold the one and
    unquote the other. A quoted name in lower case other than those two means what it means
    bare, and is left out.
    """
    found: list[str] = []
    for piece in _QUOTED_PIECES.finditer(sql or ""):
        content = piece.group(1)
        if content is None:
            continue
        content = content.replace('""', '"')
        if not _LOWER_NAME.fullmatch(content) or content in _VALUE_WORDS:
            found.append(content)
    return tuple(found)


def read_exactly(sql: str | None) -> bool:
    """True when ``sql`` is judged by its exact text: too long, or misread by normalizing."""
    return sql is not None and (len(sql) > MAX_READ_SQL_CHARS
                                or misread_character(sql) is not None)


def _default_text(default: object) -> str:
    """A column's default, normalized; a bare name there is a string, kept in its case."""
    text = _text(default).strip()
    if (_BARE_NAME.fullmatch(text) and fold_case(text) not in SQL_KEYWORDS
            and fold_case(text) not in _VALUE_WORDS):
        return "'" + text + "'"
    return normalized_sql(text)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _column_clauses(definition: Sequence[str]) -> str:
    """The normalized clauses of a column definition that no PRAGMA reports."""
    kept: list[str] = []
    for clause in column_clauses(definition):
        head = clause[0]
        if head in ("constraint", "default") or clause in (("not", "null"),
                                                           ("primary", "key"), ("unique",)):
            continue  # a name, or reported by table_xinfo / index_list
        if head == "references" and "deferrable" not in clause:
            continue  # reported by foreign_key_list
        if clause[:2] == ("generated", "always"):
            clause = clause[2:]
        if clause[:1] == ("as",) and clause[-1] in ("stored", "virtual"):
            clause = clause[:-1]  # reported by table_xinfo's hidden
        kept.append(" ".join(clause))
    return " ".join(kept)


def _constraint_clause(tokens: tuple[str, ...]) -> str | None:
    """A table constraint's normalized text, or None when the PRAGMAs report all of it."""
    if tokens[:1] == ("constraint",):
        tokens = tokens[2:]
    if tokens[:2] == ("foreign", "key") and "deferrable" not in tokens:
        return None
    if (tokens[:1] == ("unique",) or tokens[:2] == ("primary", "key")) and "(" in tokens:
        opening = tokens.index("(")
        if group_end(tokens, opening) == len(tokens) and "autoincrement" not in tokens:
            return None
    return " ".join(tokens)


def _index_keys(connection: sqlite3.Connection, index: str) -> tuple[IndexKey, ...]:
    rows = connection.execute(
        'SELECT name, "desc", coll FROM pragma_index_xinfo(?, \'main\') WHERE key = 1 '
        "ORDER BY seqno", (index,)).fetchall()
    return tuple(IndexKey(None if name is None else fold_case(str(name)), bool(descending),
                          fold_case(_text(collation)))
                 for name, descending, collation in rows)


def _table_meaning(connection: sqlite3.Connection, name: str,
                   sql: str | None) -> SchemaMeaning:
    items = table_items(sql)
    if items is None:
        return DefinitionMeaning(normalized_sql(sql))
    columns: list[ColumnMeaning] = []
    for column, declared, not_null, default, primary_key, hidden in connection.execute(
            'SELECT name, type, "notnull", dflt_value, pk, hidden '
            "FROM pragma_table_xinfo(?, 'main') ORDER BY cid", (name,)):
        definition = (items.columns.get(name_token(str(column)))
                      or items.columns.get(fold_case(str(column))))
        if definition is None:
            return DefinitionMeaning(normalized_sql(sql))
        columns.append(ColumnMeaning(
            fold_case(str(column)), normalized_sql(_text(declared)), bool(not_null),
            _default_text(default), int(primary_key), int(hidden),
            _column_clauses(definition)))
    if len(columns) != len(items.columns):
        return DefinitionMeaning(normalized_sql(sql))
    keys: dict[int, list[tuple[str, str | None, str, str, str, str]]] = {}
    for key, target, source, destination, on_update, on_delete, match in connection.execute(
            "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete, \"match\" "
            "FROM pragma_foreign_key_list(?, 'main') ORDER BY id, seq", (name,)):
        keys.setdefault(int(key), []).append(
            (fold_case(_text(target)), None if source is None else fold_case(str(source)),
             fold_case(_text(destination)), _text(on_update).upper(),
             _text(on_delete).upper(), _text(match).upper()))
    foreign_keys = sorted(
        (ForeignKey(tuple(_text(row[1]) for row in rows), rows[0][0],
                    tuple(row[2] for row in rows), rows[0][3], rows[0][4], rows[0][5])
         for rows in keys.values()), key=repr)
    implied = sorted(
        (ImpliedIndex(str(origin), bool(unique), _index_keys(connection, str(index)))
         for index, unique, origin in connection.execute(
             "SELECT name, \"unique\", origin FROM pragma_index_list(?, 'main') "
             "WHERE origin <> 'c'", (name,)).fetchall()), key=repr)
    constraints = sorted(text for text in map(_constraint_clause, items.constraints)
                         if text is not None)
    return TableMeaning(tuple(columns), tuple(foreign_keys), tuple(implied),
                        tuple(constraints), " ".join(items.options))


def _index_meaning(connection: sqlite3.Connection, name: str, table: str,
                   sql: str) -> SchemaMeaning:
    tokens = sql_tokens(sql)
    if "(" not in tokens:
        return DefinitionMeaning(normalized_sql(sql))
    opening = tokens.index("(")
    closing = group_end(tokens, opening)
    unique = [bool(row[0]) for row in connection.execute(
        "SELECT \"unique\" FROM pragma_index_list(?, 'main') WHERE name = ?", (table, name))]
    if len(unique) != 1:
        return DefinitionMeaning(normalized_sql(sql))
    keys = _index_keys(connection, name)
    expressions = (" ".join(tokens[opening:closing])
                   if any(key.column is None for key in keys) else "")
    return IndexMeaning(unique[0], keys, expressions, " ".join(tokens[closing:]))


def _view_meaning(connection: sqlite3.Connection, name: str, sql: str) -> SchemaMeaning:
    columns = tuple(str(row[0]) for row in connection.execute(
        "SELECT name FROM pragma_table_xinfo(?, 'main') ORDER BY cid", (name,)))
    return ViewMeaning(normalized_sql(sql), columns)


def read_meaning(connection: sqlite3.Connection, kind: str, name: str, table: str,
                 sql: str | None) -> SchemaMeaning:
    """What SQLite made of one object of ``connection``'s main schema.

    Tables and indexes are read through their PRAGMAs; a view by its normalized SQL (and,
    for PrismQ's five views, its columns' names); triggers, virtual tables and anything
    whose PRAGMAs fail (a view SQLite cannot compile, say) are described by their normalized
    SQL; an object whose SQL holds a character SQLite reads otherwise than it looks, or that
    is too long to read token by token, by its exact text. Each meaning but the last also
    carries the double-quoted names whose letter case may count.
    """
    if sql is not None and read_exactly(sql):
        return ExactText(sql)
    meaning = _structured_meaning(connection, kind, name, table, sql)
    quoted = case_kept_names(sql)
    if quoted and not isinstance(meaning, ExactText):
        meaning = dataclasses.replace(meaning, quoted=quoted)
    return meaning


def _structured_meaning(connection: sqlite3.Connection, kind: str, name: str, table: str,
                        sql: str | None) -> SchemaMeaning:
    try:
        if kind == "table" and not is_virtual_table(sql):
            return _table_meaning(connection, name, sql)
        if kind == "index" and sql is not None:
            return _index_meaning(connection, name, table, sql)
        if kind == "view" and sql is not None and fold_case(name) in QUEUE_VIEWS:
            return _view_meaning(connection, name, sql)
    except sqlite3.Error:
        pass
    return DefinitionMeaning(normalized_sql(sql))


def _columns_text(columns: Sequence[str]) -> str:
    return ", ".join(columns)


def _key_text(key: IndexKey) -> str:
    parts = [key.column or "(expression)"]
    if key.collation and key.collation != "binary":
        parts.append(f"collate {key.collation}")
    if key.descending:
        parts.append("desc")
    return " ".join(parts)


def implied_index_text(index: ImpliedIndex) -> str:
    """The constraint an implied index stands for, as ``unique ( a , b )`` would be written."""
    head = "primary key" if index.origin == "pk" else "unique"
    return f"{head} ( {' , '.join(map(_key_text, index.keys))} )"


def foreign_key_text(key: ForeignKey) -> str:
    """A foreign key in words: its columns, what it refers to, and any actions it takes."""
    word = "column" if len(key.columns) == 1 else "columns"
    target = f"{key.table}({_columns_text([column for column in key.references if column])})"
    actions = [f"on {event} {action.lower()}" for event, action in
               (("update", key.on_update), ("delete", key.on_delete)) if action != _NO_ACTION]
    if key.match not in ("NONE", ""):
        actions.append(f"match {key.match.lower()}")
    return (f"from {word} {_columns_text(key.columns)} to {target}"
            + (f" ({', '.join(actions)})" if actions else ""))


_COLUMN_FIELDS = (("type", "declared type"), ("not_null", "NOT NULL"), ("default", "default"),
                  ("primary_key", "place in the primary key"),
                  ("hidden", "kind of generated column"), ("clauses", "constraints"))


def column_field_differences(mine: ColumnMeaning, theirs: ColumnMeaning) -> list[str]:
    """The names of what differs between two columns of one name."""
    return [label for attribute, label in _COLUMN_FIELDS
            if getattr(mine, attribute) != getattr(theirs, attribute)]
