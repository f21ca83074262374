"""A backup's schema is judged by what SQLite makes of it, not by how its SQL is spelled.

Spellings SQLite reads alike (a foreign key on the column or after the columns, UNIQUE on
the column or as a table constraint, another layout of a partial index's condition) are one
schema; PrismQ's five views are part of it. Every change SQLite does read differently (a
foreign key's action, a changed view, a partial index's condition, a generated column's
expression or kind, a default, a collation, a deferrable key) is still refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from queue_admin_gui.core.backups.verify import VerifyReport, check_backup_file
from queue_admin_gui.core.database import closing_connection
from queue_admin_gui.core.errors import ErrorKind
from queue_admin_gui.core.schema import QUEUE_VIEWS, SCHEMA_SQL
from queue_admin_gui.core.trust.schema_meaning import TableMeaning, read_meaning

TABLE_FK = "    details TEXT,\n    FOREIGN KEY (task_id) REFERENCES task_queue(id)\n);"
COLUMN_FK_SCHEMA = (SCHEMA_SQL.replace(TABLE_FK, "    details TEXT\n);")
                    .replace("task_id INTEGER NOT NULL,",
                             "task_id INTEGER NOT NULL REFERENCES task_queue(id),"))
#: The schema this tool wrote before it carried PrismQ's views: column-level key, no views.
OLDER_TOOL_SCHEMA = COLUMN_FK_SCHEMA.partition("CREATE VIEW")[0]


def made(tmp_path: Path, label: str, script: str) -> Path:
    """A queue file created by ``script``, with one task."""
    path = tmp_path / f"queue_backup_{label}_20200101_000000.db"
    with closing_connection(sqlite3.connect(path)) as connection:
        connection.executescript(script)
        connection.execute("INSERT INTO task_queue(type, payload) VALUES ('t', '{}')")
        connection.commit()
    return path


def refused(report: VerifyReport, *phrases: str) -> None:
    assert not report.ok and report.kind is ErrorKind.NOT_A_QUEUE, report.problems
    assert any(all(phrase in problem for phrase in phrases) for problem in report.problems), (
        report.problems)


def test_the_schema_spells_the_foreign_key_as_prismq_does() -> None:
    assert TABLE_FK in SCHEMA_SQL and "REFERENCES task_queue(id)," not in SCHEMA_SQL
    assert COLUMN_FK_SCHEMA != SCHEMA_SQL and "FOREIGN KEY" not in COLUMN_FK_SCHEMA
    for view in QUEUE_VIEWS:
        assert f"CREATE VIEW IF NOT EXISTS {view} AS" in SCHEMA_SQL


def test_both_spellings_of_the_foreign_key_mean_the_same(tmp_path: Path) -> None:
    meanings = []
    for script in (SCHEMA_SQL, COLUMN_FK_SCHEMA):
        connection = sqlite3.connect(":memory:")
        connection.executescript(script)
        sql = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'task_logs'"
                                 ).fetchone()[0]
        meanings.append(read_meaning(connection, "table", "task_logs", "task_logs", sql))
        connection.close()
    assert isinstance(meanings[0], TableMeaning)
    assert meanings[0] == meanings[1]
    assert len(meanings[0].foreign_keys) == 1


@pytest.mark.parametrize("script", [SCHEMA_SQL, COLUMN_FK_SCHEMA, OLDER_TOOL_SCHEMA],
                         ids=["table-fk-and-views", "column-fk-and-views", "older-tool"])
def test_every_spelling_of_the_queue_verifies_alone_and_against_each_other(
        tmp_path: Path, script: str) -> None:
    backup = made(tmp_path, "spelling", script)
    for live_script in (SCHEMA_SQL, COLUMN_FK_SCHEMA, OLDER_TOOL_SCHEMA):
        live = tmp_path / "live.db"
        live.unlink(missing_ok=True)
        made(tmp_path, "live", live_script).rename(live)
        report = check_backup_file(backup, live_path=live)
        assert report.ok, report.problems
    alone = check_backup_file(backup)
    assert alone.ok, alone.problems


def test_unique_on_the_column_or_after_the_columns_is_one_schema(tmp_path: Path) -> None:
    on_column = made(tmp_path, "column", SCHEMA_SQL + "CREATE TABLE tags (tag TEXT UNIQUE);")
    after = made(tmp_path, "after", SCHEMA_SQL + "CREATE TABLE tags (tag TEXT, UNIQUE (tag));")
    assert check_backup_file(on_column, live_path=after).ok
    assert check_backup_file(after, live_path=on_column).ok
    other = made(tmp_path, "other", SCHEMA_SQL + "CREATE TABLE tags (tag TEXT);")
    refused(check_backup_file(other, live_path=after), "table 'tags'",
            "lacks the table constraint `unique ( tag )`")


SAME_MEANING = [
    ("region TEXT GENERATED ALWAYS AS (json_extract(compatibility, '$.region')) VIRTUAL",
     "region TEXT AS (json_extract(compatibility, '$.region'))"),
    ("worker_id TEXT PRIMARY KEY,\n    capabilities TEXT NOT NULL,\n    heartbeat_utc DATETIME "
     "NOT NULL DEFAULT (datetime('now'))\n",
     "worker_id TEXT,\n    capabilities TEXT CONSTRAINT caps_given NOT NULL,\n    heartbeat_utc "
     "DATETIME NOT NULL DEFAULT (datetime('now')),\n    CONSTRAINT worker_key PRIMARY KEY "
     "(worker_id)\n"),
    ("FOREIGN KEY (task_id) REFERENCES task_queue(id)",
     "CONSTRAINT log_task FOREIGN KEY (task_id) REFERENCES task_queue (id) ON DELETE NO ACTION"),
]


@pytest.mark.parametrize(("old", "new"), SAME_MEANING,
                         ids=["generated-short", "primary-key-after", "named-foreign-key"])
def test_spellings_sqlite_reads_alike_are_accepted(tmp_path: Path, old: str, new: str) -> None:
    assert old in SCHEMA_SQL
    spelled = made(tmp_path, "spelled", SCHEMA_SQL.replace(old, new))
    for live in (made(tmp_path, "live", SCHEMA_SQL), None):
        report = check_backup_file(spelled, live_path=live)
        assert report.ok, report.problems


def test_another_layout_of_the_partial_index_is_accepted(tmp_path: Path) -> None:
    spelled = SCHEMA_SQL.replace("WHERE idempotency_key IS NOT NULL",
                                 "where  [IDEMPOTENCY_KEY]IS not -- kept\n NULL")
    assert spelled != SCHEMA_SQL
    report = check_backup_file(made(tmp_path, "partial", spelled))
    assert report.ok, report.problems


CHANGED = [
    ("WHERE idempotency_key IS NOT NULL",
     "WHERE idempotency_key IS NOT NULL AND status = 'queued'", "index 'uq_task_idempotency'"),
    ("FOREIGN KEY (task_id) REFERENCES task_queue(id)",
     "FOREIGN KEY (task_id) REFERENCES task_queue(id) ON DELETE CASCADE",
     "adds a foreign key `from column task_id to task_queue(id) (on delete cascade)`"),
    ("FOREIGN KEY (task_id) REFERENCES task_queue(id)",
     "FOREIGN KEY (task_id) REFERENCES task_queue(id) DEFERRABLE INITIALLY DEFERRED",
     "adds the table constraint `foreign key ( task_id ) references task_queue ( id ) "
     "deferrable initially deferred`"),
    ("json_extract(compatibility, '$.region')", "json_extract(payload, '$.region')",
     "column region"),
    ("'$.format')) VIRTUAL", "'$.format')) STORED", "column format"),
    ("DEFAULT 'queued'", "DEFAULT 'leased'", "column status"),
    ("locked_by TEXT,", "locked_by TEXT COLLATE NOCASE,", "column locked_by"),
    ("LIMIT 100;", "LIMIT 1;", "view 'v_recent_failures'"),
    ("AND t.status = 'processing'", "AND t.status = 'leased'", "view 'v_worker_status'"),
    ("max_attempts INTEGER NOT NULL DEFAULT 5,",
     "max_attempts INTEGER NOT NULL DEFAULT 5 REFERENCES workers(worker_id) ON DELETE "
     "SET NULL CHECK (max_attempts < 9),", "column max_attempts"),
]


@pytest.mark.parametrize(("old", "new", "named"), CHANGED,
                         ids=["partial-condition", "cascade", "deferrable", "generated-expr",
                              "generated-kind", "default", "collate", "view-limit",
                              "view-where", "check-after-key"])
def test_a_change_sqlite_reads_differently_is_refused(tmp_path: Path, old: str, new: str,
                                                      named: str) -> None:
    assert old in SCHEMA_SQL
    live = made(tmp_path, "live", SCHEMA_SQL)
    bad = made(tmp_path, "changed", SCHEMA_SQL.replace(old, new))
    for against in (live, None):
        refused(check_backup_file(bad, live_path=against), named)


def test_a_view_beyond_the_queue_schema_is_refused_unless_the_live_one_has_it(
        tmp_path: Path) -> None:
    extra = "CREATE VIEW v_everything AS SELECT * FROM task_queue;"
    bad = made(tmp_path, "view", SCHEMA_SQL + extra)
    plain_live = made(tmp_path, "plain", SCHEMA_SQL)
    refused(check_backup_file(bad), "view 'v_everything'", "not in the queue schema")
    refused(check_backup_file(bad, live_path=plain_live), "view 'v_everything'",
            "in neither the queue schema nor the live database")
    live_with_it = made(tmp_path, "livewith", SCHEMA_SQL + extra)
    assert check_backup_file(bad, live_path=live_with_it).ok


def test_a_trigger_spelled_like_a_view_column_is_still_refused(tmp_path: Path) -> None:
    trigger = ("CREATE TRIGGER v_recent_failures_cleanup AFTER INSERT ON task_logs "
               "BEGIN DELETE FROM task_queue; END;")
    bad = made(tmp_path, "trigger", SCHEMA_SQL + trigger)
    refused(check_backup_file(bad), "trigger 'v_recent_failures_cleanup' on task_logs")
