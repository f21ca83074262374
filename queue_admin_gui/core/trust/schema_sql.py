"""SQL of schema objects, normalized so that two spellings of one definition compare equal.

SQLite keeps each table's, index's, trigger's and view's ``CREATE`` statement as it was
typed. Two files made by different code can spell one definition differently: other
whitespace, comments, keyword case, or quotes around names. :func:`normalized_sql` removes
just those differences and nothing else: string literals, numbers and operators are kept as
they are, and a quoted name that is also an SQL keyword keeps its quotes, so that
``"NOT" NULL`` (a type name followed by NULL) never reads as ``NOT NULL``. SQLite itself
compares names without regard to ASCII case, so names are folded to lower case here.

:func:`table_items` (and :func:`table_parts`, as text) splits a ``CREATE TABLE`` into its
column definitions, its table constraints and what follows the closing parenthesis, and
:func:`column_clauses` splits a column definition into its clauses, so that what SQLite's
PRAGMAs report can be told from what only the text says, and a difference can be named.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: SQLite's keywords: a quoted name spelled like one keeps its quotes when normalized.
SQL_KEYWORDS = frozenset("""
abort action add after all alter always analyze and as asc attach autoincrement before begin
between by cascade case cast check collate column commit conflict constraint create cross
current current_date current_time current_timestamp database default deferrable deferred
delete desc detach distinct do drop each else end escape except exclude exclusive exists
explain fail filter first following for foreign from full generated glob group groups having
if ignore immediate in index indexed initially inner insert instead intersect into is isnull
join key last left like limit match materialized natural no not nothing notnull null nulls of
offset on or order others outer over partition plan pragma preceding primary query raise range
recursive references regexp reindex release rename replace restrict returning right rollback
row rows savepoint select set table temp temporary then ties to transaction trigger unbounded
union unique update using vacuum values view virtual when where window with without
""".split())

#: Words that begin a table constraint rather than a column definition.
_CONSTRAINT_WORDS = frozenset({"constraint", "primary", "unique", "check", "foreign"})
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_NUMBER = re.compile(r"(?:0[xX][0-9A-Fa-f]+|\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATORS = ("->>", "->", "||", "<=", ">=", "<>", "!=", "==", "<<", ">>")
_CLOSING = {'"': '"', "`": "`", "[": "]"}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_case(text: str) -> str:
    """Lower-case ASCII letters only, as SQLite does when it compares names."""
    return text.translate(_ASCII_LOWER)


def name_token(name: str) -> str:
    """One spelling for a name however it was quoted: bare when it can be, else in quotes."""
    folded = fold_case(name)
    if _PLAIN_NAME.fullmatch(folded) and folded not in SQL_KEYWORDS:
        return folded
    return '"' + folded.replace('"', '""') + '"'


def _quoted(sql: str, start: int) -> tuple[str, int]:
    """The text inside the quotes opening at ``start`` (doubled quotes undone) and its end."""
    opening = sql[start]
    closing = _CLOSING.get(opening, opening)
    parts: list[str] = []
    index = start + 1
    while index < len(sql):
        char = sql[index]
        if char == closing:
            if closing != "]" and sql.startswith(closing, index + 1):
                parts.append(closing)
                index += 2
                continue
            return "".join(parts), index + 1
        parts.append(char)
        index += 1
    return "".join(parts), index


def sql_tokens(sql: str | None) -> tuple[str, ...]:
    """The tokens of ``sql`` with comments and whitespace gone, names and keywords folded.

    String literals keep their quotes and case; every quoted name is spelled as
    :func:`name_token` spells it. None (an automatic index) gives no tokens.
    """
    if not sql:
        return ()
    tokens: list[str] = []
    index, length = 0, len(sql)
    while index < length:
        char = sql[index]
        if char.isspace():
            index += 1
        elif sql.startswith("--", index):
            end = sql.find("\n", index)
            index = length if end < 0 else end + 1
        elif sql.startswith("/*", index):
            end = sql.find("*/", index + 2)
            index = length if end < 0 else end + 2
        elif char == "'":
            text, index = _quoted(sql, index)
            tokens.append("'" + text.replace("'", "''") + "'")
        elif char in _CLOSING:
            text, index = _quoted(sql, index)
            tokens.append(name_token(text))
        elif (number := _NUMBER.match(sql, index)) is not None:
            tokens.append(number.group())
            index = number.end()
        elif (word := _WORD.match(sql, index)) is not None:
            tokens.append(fold_case(word.group()))
            index = word.end()
        else:
            operator = next((op for op in _OPERATORS if sql.startswith(op, index)), char)
            tokens.append(operator)
            index += len(operator)
    return tuple(tokens)


def normalized_sql(sql: str | None) -> str:
    """``sql`` as one line of tokens, equal for any two spellings of one definition."""
    return " ".join(sql_tokens(sql))


@dataclass(frozen=True)
class TableItems:
    """A ``CREATE TABLE`` split into tokens: columns, table constraints, what follows.

    ``options`` is what follows the closing parenthesis (``WITHOUT ROWID``, ``STRICT``).
    """

    columns: dict[str, tuple[str, ...]]
    constraints: tuple[tuple[str, ...], ...]
    options: tuple[str, ...]


def group_end(tokens: Sequence[str], opening: int) -> int:
    """The position just after the parenthesis closing the one at ``opening``."""
    depth = 0
    for position in range(opening, len(tokens)):
        if tokens[position] == "(":
            depth += 1
        elif tokens[position] == ")":
            depth -= 1
            if depth == 0:
                return position + 1
    return len(tokens)


def table_items(sql: str | None) -> TableItems | None:
    """Split a ``CREATE TABLE name (...) options`` into tokens; None when it has no such shape."""
    tokens = sql_tokens(sql)
    try:
        opening = tokens.index("(")
    except ValueError:
        return None
    items: list[list[str]] = [[]]
    depth = 0
    for position in range(opening + 1, len(tokens)):
        part = tokens[position]
        if part == "(":
            depth += 1
        elif part == ")":
            if depth == 0:
                break
            depth -= 1
        elif part == "," and depth == 0:
            items.append([])
            continue
        items[-1].append(part)
    else:
        return None
    columns: dict[str, tuple[str, ...]] = {}
    constraints: list[tuple[str, ...]] = []
    for item in items:
        if item and item[0] not in _CONSTRAINT_WORDS and item[0] not in columns:
            columns[item[0]] = tuple(item)
        else:
            constraints.append(tuple(item))
    return TableItems(columns, tuple(constraints), tokens[position + 1:])


@dataclass(frozen=True)
class TableParts:
    """A ``CREATE TABLE`` split up: column definitions by name, table constraints, the rest."""

    columns: dict[str, str]
    constraints: tuple[str, ...]
    options: str


def table_parts(sql: str | None) -> TableParts | None:
    """Split a ``CREATE TABLE name (...) options`` into text; None when it has no such shape."""
    items = table_items(sql)
    if items is None:
        return None
    return TableParts({name: " ".join(tokens) for name, tokens in items.columns.items()},
                      tuple(" ".join(tokens) for tokens in items.constraints),
                      " ".join(items.options))


#: Words that begin a clause of a column definition (everything before the first is its type).
_COLUMN_CLAUSE_WORDS = frozenset({
    "constraint", "primary", "not", "null", "unique", "check", "default", "collate",
    "references", "generated", "as",
})


def _after_conflict(tokens: Sequence[str], position: int) -> int:
    """Past an ``ON CONFLICT resolution`` at ``position``, if one is there."""
    if tuple(tokens[position:position + 2]) == ("on", "conflict"):
        return min(position + 3, len(tokens))
    return position


def _after_term(tokens: Sequence[str], position: int) -> int:
    """Past one DEFAULT value: a parenthesized expression or an optionally signed literal."""
    if position < len(tokens) and tokens[position] == "(":
        return group_end(tokens, position)
    if position < len(tokens) and tokens[position] in ("+", "-"):
        position += 1
    return min(position + 1, len(tokens))


def _after_references(tokens: Sequence[str], position: int) -> int:
    """Past a foreign-key clause: up to the next clause of the column, at the same depth."""
    position += 1
    while position < len(tokens):
        word = tokens[position]
        if word == "(":
            position = group_end(tokens, position)
            continue
        if word == "set":  # SET NULL, SET DEFAULT: actions, not clauses
            position += 2
            continue
        if word == "not" and tuple(tokens[position:position + 2]) == ("not", "deferrable"):
            position += 2
            continue
        if word in _COLUMN_CLAUSE_WORDS:
            return position
        position += 1
    return position


def _clause_end(tokens: Sequence[str], start: int) -> int:
    """Where the column clause beginning at ``start`` ends."""
    word = tokens[start]
    position = start + 1
    if word in ("constraint", "collate"):
        return min(position + 1, len(tokens))
    if word == "not" and position < len(tokens) and tokens[position] == "null":
        return _after_conflict(tokens, position + 1)
    if word in ("null", "unique"):
        return _after_conflict(tokens, position)
    if word == "primary" and position < len(tokens) and tokens[position] == "key":
        position += 1
        if position < len(tokens) and tokens[position] in ("asc", "desc"):
            position += 1
        position = _after_conflict(tokens, position)
        if position < len(tokens) and tokens[position] == "autoincrement":
            position += 1
        return position
    if word == "check" and position < len(tokens) and tokens[position] == "(":
        return group_end(tokens, position)
    if word == "default":
        return _after_term(tokens, position)
    if word == "references":
        return _after_references(tokens, start)
    if word in ("generated", "as"):
        if word == "generated":
            position = min(position + 2, len(tokens))  # ALWAYS AS
        if position < len(tokens) and tokens[position] == "(":
            position = group_end(tokens, position)
        if position < len(tokens) and tokens[position] in ("stored", "virtual"):
            position += 1
        return position
    return position


def column_clauses(definition: Sequence[str]) -> list[tuple[str, ...]]:
    """The clauses of a column definition (its tokens), after its name and type, in order.

    A token that begins no clause SQLite knows is a clause of its own, so nothing of the
    definition is lost.
    """
    position = 1
    while position < len(definition) and definition[position] not in _COLUMN_CLAUSE_WORDS:
        position = (group_end(definition, position) if definition[position] == "("
                    else position + 1)
    clauses: list[tuple[str, ...]] = []
    while position < len(definition):
        end = max(_clause_end(definition, position), position + 1)
        clauses.append(tuple(definition[position:end]))
        position = end
    return clauses


def uses_autoincrement(sql: str | None) -> bool:
    """True when a ``CREATE TABLE`` declares an AUTOINCREMENT key."""
    return "autoincrement" in sql_tokens(sql)


def is_virtual_table(sql: str | None) -> bool:
    """True when the statement creates a virtual table (one a module, not SQLite, stores)."""
    return sql_tokens(sql)[:3] == ("create", "virtual", "table")
