"""Normalized SQL: two spellings of one definition are equal, two definitions never are."""

from __future__ import annotations

import sqlite3

import pytest

from queue_admin_gui.core.trust.schema_sql import (
    column_clauses,
    is_virtual_table,
    normalized_sql,
    sql_tokens,
    table_parts,
    uses_autoincrement,
)

QUEUE_LIKE = ("CREATE TABLE task_queue (id INTEGER PRIMARY KEY AUTOINCREMENT, "
              "payload TEXT, status TEXT NOT NULL DEFAULT 'queued', "
              "region TEXT GENERATED ALWAYS AS "
              "(json_extract(payload, '$.region')) VIRTUAL)")


@pytest.mark.parametrize("spelling", [
    QUEUE_LIKE.lower(),
    QUEUE_LIKE.replace(" (", "(\n    ").replace(", ", ",\n    "),
    QUEUE_LIKE.replace("task_queue", '"task_queue"').replace("status", "[status]"),
    QUEUE_LIKE.replace("id INTEGER", "`id` integer /* the key */").replace(
        "VIRTUAL)", "VIRTUAL -- computed\n)"),
])
def test_spellings_of_one_definition_are_equal(spelling: str) -> None:
    assert normalized_sql(spelling) == normalized_sql(QUEUE_LIKE)


@pytest.mark.parametrize("other", [
    QUEUE_LIKE.replace("'queued'", "'Queued'"),           # literals keep their case
    QUEUE_LIKE.replace(" AUTOINCREMENT", ""),
    QUEUE_LIKE.replace("TEXT NOT NULL", 'TEXT "NOT" NULL'),  # a type name, then NULL
    QUEUE_LIKE.replace("'queued'", "'queued' UNIQUE ON CONFLICT REPLACE"),
    QUEUE_LIKE.replace("'queued'", '"queued"'),            # a name, not a string
    QUEUE_LIKE.replace("(payload", "(status"),
])
def test_different_definitions_stay_different(other: str) -> None:
    assert normalized_sql(other) != normalized_sql(QUEUE_LIKE)


def test_a_quoted_keyword_is_a_type_name_to_sqlite_too() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute(QUEUE_LIKE.replace("TEXT NOT NULL", 'TEXT "NOT" NULL'))
    connection.execute("INSERT INTO task_queue(status) VALUES (NULL)")  # not NOT NULL at all
    connection.close()


def test_table_parts_name_columns_constraints_and_options() -> None:
    parts = table_parts("CREATE TABLE t (a INTEGER PRIMARY KEY, \"b\" TEXT CHECK (b <> 'x'), "
                        "UNIQUE (a, b), FOREIGN KEY (b) REFERENCES u(v)) STRICT")
    assert parts is not None
    assert parts.columns == {"a": "a integer primary key", "b": "b text check ( b <> 'x' )"}
    assert parts.constraints == ("unique ( a , b )",
                                 "foreign key ( b ) references u ( v )")
    assert parts.options == "strict"
    assert table_parts("CREATE TABLE t AS SELECT 1") is None


def test_autoincrement_and_virtual_tables_are_told_apart() -> None:
    assert uses_autoincrement(QUEUE_LIKE)
    assert not uses_autoincrement(QUEUE_LIKE.replace(" AUTOINCREMENT", ""))
    assert not uses_autoincrement("CREATE TABLE t (a TEXT DEFAULT 'autoincrement')")
    assert is_virtual_table("create  VIRTUAL table task_queue USING fts5(type)")
    assert not is_virtual_table(QUEUE_LIKE)


def test_column_clauses_keep_every_token_and_split_where_sqlite_does() -> None:
    definition = sql_tokens(
        "x VARCHAR(10) CONSTRAINT c NOT NULL ON CONFLICT FAIL DEFAULT NULL "
        "REFERENCES t(y) ON DELETE SET NULL ON UPDATE SET DEFAULT NOT DEFERRABLE "
        "CHECK (x <> 'a') COLLATE nocase GENERATED ALWAYS AS (y || 'z') STORED UNIQUE")
    clauses = column_clauses(definition)
    assert clauses == [
        ("constraint", "c"), ("not", "null", "on", "conflict", "fail"), ("default", "null"),
        ("references", "t", "(", "y", ")", "on", "delete", "set", "null", "on", "update",
         "set", "default", "not", "deferrable"),
        ("check", "(", "x", "<>", "'a'", ")"), ("collate", "nocase"),
        ("generated", "always", "as", "(", "y", "||", "'z'", ")", "stored"), ("unique",),
    ]
    assert sum(len(clause) for clause in clauses) == len(definition) - 5  # name and type
