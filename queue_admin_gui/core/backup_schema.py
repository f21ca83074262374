"""Comparing a backup's schema with the queue schema and the live database's own.

Having the queue's columns is not enough to be restorable: a backup whose ``task_queue``
is a view, or which carries a trigger that deletes rows on UPDATE, would put that SQL into
the live queue, where it runs on every change the workers and this tool make. Queue tables
must be tables, and a trigger or view is accepted only when the queue schema has it or the
live database already has the same one (same kind, same name, same SQL).
"""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path

from .database import closing_connection, open_read_only
from .errors import QueueAdminError
from .schema import QUEUE_TABLES, SCHEMA_SQL
from .untrusted import SchemaObject, read_schema

#: Schema objects that hold SQL run on other statements' behalf.
SQL_CARRYING_TYPES = ("trigger", "view")
#: Names listed in one sentence before the rest are counted.
MAX_LISTED_OBJECTS = 5
_MAX_NAME_CHARS = 60


@functools.lru_cache(maxsize=1)
def queue_schema() -> tuple[SchemaObject, ...]:
    """The objects the queue schema itself creates, as SQLite stores them."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.executescript(SCHEMA_SQL)
        return tuple(read_schema(connection))
    finally:
        connection.close()


def _carries_sql(schema: list[SchemaObject] | tuple[SchemaObject, ...]) -> set[tuple]:
    return {(item.type, item.name.lower(), item.sql) for item in schema
            if item.type in SQL_CARRYING_TYPES}


def live_schema_for(live: Path | None, backup: list[SchemaObject]
                    ) -> tuple[list[SchemaObject] | None, str | None]:
    """The live database's schema when the backup has triggers or views to compare with it.

    Returns the schema (None without a live database, or when it cannot be read) and, when
    it could not be read, a note saying so. The live file is opened read-only.
    """
    if live is None or not _carries_sql(backup):
        return None, None
    try:
        with closing_connection(open_read_only(live)) as connection:
            return read_schema(connection), None
    except (QueueAdminError, sqlite3.Error, OSError) as error:
        return None, (f"The live database '{live}' could not be read ({error}), so the "
                      "backup's triggers and views were compared with the queue schema only.")


def _shown(item: SchemaObject) -> str:
    """A schema object's kind and name, printable whatever characters the name holds."""
    name = "".join(char if char.isprintable() else "?" for char in item.name)
    if len(name) > _MAX_NAME_CHARS:
        name = name[:_MAX_NAME_CHARS] + "..."
    table = "".join(char if char.isprintable() else "?" for char in item.table)
    on = f" on {table[:_MAX_NAME_CHARS]}" if item.type == "trigger" else ""
    return f"{item.type} '{name}'{on}"


def schema_problems(backup: list[SchemaObject], live: list[SchemaObject] | None) -> list[str]:
    """Phrases naming what keeps ``backup``'s schema from being the queue's; empty when none.

    ``live`` is the live database's schema (None when there is none to compare with: then
    only the queue schema's own triggers and views are accepted).
    """
    phrases: list[str] = []
    by_name = {item.name.lower(): item for item in backup}
    for table in QUEUE_TABLES:
        found = by_name.get(table)
        if found is not None and found.type != "table":
            phrases.append(f"{table} is a {found.type}, not a table")
    allowed = _carries_sql(queue_schema()) | _carries_sql(live or [])
    strangers = [item for item in backup if item.type in SQL_CARRYING_TYPES
                 and (item.type, item.name.lower(), item.sql) not in allowed]
    if strangers:
        listed = ", ".join(_shown(item) for item in strangers[:MAX_LISTED_OBJECTS])
        more = len(strangers) - MAX_LISTED_OBJECTS
        if more > 0:
            listed += f" and {more} more"
        where = ("in neither the queue schema nor the live database" if live is not None
                 else "not in the queue schema (no live database to compare with)")
        phrases.append(f"{where}: {listed}")
    return phrases
