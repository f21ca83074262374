"""Every object of a backup must be defined as the queue schema or the live database define it.

A backup with the queue's column names can still restore into an unsound queue: a column
that deletes other tasks on conflict, a key that hands ids out again, a CHECK or a foreign
key that stops leasing, a virtual table, an extra unique index or a dropped one. Each is
refused by verify and by restore with a sentence naming the object and what differs; real
queue files (the tool's own, the demo queue, other spellings of the same schema, a live
database on an older or newer version) are accepted.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.manifest import BackupManifest, manifest_path_for
from queue_admin_gui.core.backups.verify import VerifyReport, check_backup_file
from queue_admin_gui.core.database import QueueDatabase, closing_connection
from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.core.errors import ErrorKind, QueueBackupError
from queue_admin_gui.core.files.durable import file_sha256
from queue_admin_gui.core.schema import REQUIRED_COLUMNS, SCHEMA_SQL

TABLE_SQL, _, REST_SQL = SCHEMA_SQL.partition("CREATE TABLE IF NOT EXISTS workers")
INDEX_SQL = "CREATE INDEX" + SCHEMA_SQL.partition("CREATE INDEX")[2]
COLUMNS = ("id, type, priority, payload, compatibility, status, attempts, max_attempts, "
           "run_after_utc, locked_by, idempotency_key, created_at_utc, updated_at_utc")


@pytest.fixture
def engine(queue_db: Path, tmp_path: Path) -> QueueBackup:
    with QueueDatabase(queue_db) as db, db.transaction() as connection:
        connection.executemany("INSERT INTO task_queue(type, payload) VALUES (?, ?)",
                               [(f"kind{i}", json.dumps({"n": i})) for i in range(20)])
    return QueueBackup(queue_db, tmp_path / "backups")


@pytest.fixture
def good(engine: QueueBackup) -> Path:
    return engine.create_backup("good")


def changed(good: Path, label: str, script: str) -> Path:
    """A copy of ``good`` changed by ``script``, with a manifest that matches it."""
    bad = good.with_name(f"queue_backup_{label}_20200101_000000.db")
    bad.write_bytes(good.read_bytes())
    with closing_connection(sqlite3.connect(bad)) as connection:
        connection.executescript(script)
    manifest = BackupManifest.read(manifest_path_for(good))
    replace(manifest, name=bad.name, sha256=file_sha256(bad),
            size_bytes=bad.stat().st_size).write(bad)
    return bad


def with_task_table(good: Path, label: str, old: str, new: str) -> Path:
    """``good`` with task_queue rebuilt from its definition with ``old`` replaced by ``new``."""
    table = TABLE_SQL.replace("IF NOT EXISTS ", "")
    assert old in table
    return changed(good, label, f"""
        PRAGMA foreign_keys = OFF;
        PRAGMA legacy_alter_table = ON;
        ALTER TABLE task_queue RENAME TO tasks_before;
        {table.replace(old, new)}
        INSERT INTO task_queue({COLUMNS}) SELECT {COLUMNS} FROM tasks_before;
        DROP TABLE tasks_before;
        {INDEX_SQL}""")


def refused(report: VerifyReport, *phrases: str) -> str:
    """The one problem naming every phrase; fails unless the report refuses the file."""
    assert not report.ok and report.kind is ErrorKind.NOT_A_QUEUE, report.problems
    matching = [problem for problem in report.problems
                if all(phrase in problem for phrase in phrases)]
    assert matching, report.problems
    return matching[0]


HOSTILE_COLUMNS = [
    ("status TEXT NOT NULL DEFAULT 'queued'",
     "status TEXT NOT NULL DEFAULT 'queued' UNIQUE ON CONFLICT REPLACE", "column status"),
    ("AUTOINCREMENT", "", "column id"),
    ("status TEXT NOT NULL DEFAULT 'queued'",
     "status TEXT NOT NULL DEFAULT 'queued' CHECK (status NOT IN ('leased', 'processing'))",
     "column status"),
    ("locked_by TEXT", "locked_by TEXT REFERENCES workers(worker_id) ON DELETE CASCADE",
     "column locked_by"),
    ("status TEXT NOT NULL", 'status TEXT "NOT" NULL', "column status"),
    ("format TEXT GENERATED ALWAYS AS (json_extract(payload, '$.format')) VIRTUAL\n",
     "format TEXT GENERATED ALWAYS AS (json_extract(payload, '$.format')) VIRTUAL,\n"
     "    UNIQUE (type)\n", "adds the table constraint `unique ( type )`"),
]


@pytest.mark.parametrize(("old", "new", "named"), HOSTILE_COLUMNS,
                         ids=["unique-replace", "no-autoincrement", "check", "cascade",
                              "quoted-not", "table-unique"])
def test_a_task_table_defined_otherwise_is_refused(good: Path, queue_db: Path, old: str,
                                                   new: str, named: str) -> None:
    bad = with_task_table(good, "column", old, new)
    for live in (queue_db, None):
        problem = refused(check_backup_file(bad, live_path=live), "table 'task_queue'", named)
        assert "differs from the queue schema's" in problem
    assert len(check_backup_file(bad, live_path=queue_db).problems) == 1


def test_a_restore_refuses_a_task_table_that_deletes_on_conflict(
        engine: QueueBackup, good: Path, queue_db: Path) -> None:
    bad = with_task_table(good, "replace", "status TEXT NOT NULL DEFAULT 'queued'",
                          "status TEXT NOT NULL DEFAULT 'queued' UNIQUE ON CONFLICT REPLACE")
    before = queue_db.read_bytes()
    with pytest.raises(QueueBackupError, match="column status") as caught:
        engine.restore_backup(bad)
    assert caught.value.kind is ErrorKind.NOT_A_QUEUE
    with QueueDatabase(queue_db) as db:
        assert db.execute("SELECT count(*) FROM task_queue").fetchone()[0] == 20
        assert "UNIQUE" not in db.execute("SELECT sql FROM sqlite_master "
                                          "WHERE name = 'task_queue'").fetchone()[0]
    assert queue_db.read_bytes() == before


def test_a_task_table_named_in_other_letter_case_is_refused(good: Path,
                                                            queue_db: Path) -> None:
    bad = changed(good, "case", """PRAGMA legacy_alter_table = ON;
        ALTER TABLE task_queue RENAME TO tasks_moving;
        ALTER TABLE tasks_moving RENAME TO Task_Queue;""")
    refused(check_backup_file(bad, live_path=queue_db), "table 'Task_Queue'",
            "letter case differs")


def test_a_virtual_task_table_is_refused(good: Path, queue_db: Path) -> None:
    columns = ", ".join(REQUIRED_COLUMNS["task_queue"])
    bad = changed(good, "fts", f"""PRAGMA foreign_keys = OFF;
        DROP TABLE task_queue;
        CREATE VIRTUAL TABLE task_queue USING fts5({columns});""")
    report = check_backup_file(bad, live_path=queue_db)
    refused(report, "task_queue is a virtual table (using fts5), not a table")
    refused(report, "table 'task_queue_data'", "neither the queue schema nor the live")


def test_an_extra_unique_index_is_refused(good: Path, queue_db: Path) -> None:
    bad = changed(good, "unique", "CREATE UNIQUE INDEX ux_type ON task_queue(type);")
    refused(check_backup_file(bad, live_path=queue_db), "index 'ux_type' on task_queue",
            "in neither the queue schema nor the live database")


def test_a_dropped_idempotency_index_is_refused(good: Path, queue_db: Path) -> None:
    bad = changed(good, "dropped", "DROP INDEX uq_task_idempotency;")
    for live in (queue_db, None):
        refused(check_backup_file(bad, live_path=live),
                "lacks index 'uq_task_idempotency' on task_queue", "duplicate values")


def test_an_index_on_other_columns_is_refused(good: Path, queue_db: Path) -> None:
    bad = changed(good, "columns", """DROP INDEX ix_task_type_status;
        CREATE INDEX ix_task_type_status ON task_queue(status, type);""")
    refused(check_backup_file(bad, live_path=queue_db), "index 'ix_task_type_status'",
            "( status , type )")


def test_another_spelling_of_the_queue_schema_is_accepted(tmp_path: Path) -> None:
    spelled = (SCHEMA_SQL.replace("    ", "\t").replace("task_queue", '"task_queue"')
               .replace("NOT NULL", "not  null").replace("workers (", "[workers](")
               .replace("details TEXT", "details TEXT -- free text\n"))
    made = tmp_path / "spelled.db"
    with closing_connection(sqlite3.connect(made)) as connection:
        connection.executescript(spelled)
        connection.execute("INSERT INTO task_queue(type, payload) VALUES ('t', '{}')")
        connection.commit()
        connection.execute("ANALYZE")
    report = check_backup_file(made)
    assert report.ok, report.problems


def test_the_demo_queue_and_its_backup_are_accepted(tmp_path: Path) -> None:
    demo = tmp_path / "demo.db"
    create_demo_queue(demo, tasks=200, seed=3)
    backup = QueueBackup(demo, tmp_path / "backups").create_backup("demo")
    for live in (demo, None):
        report = check_backup_file(backup, live_path=live)
        assert report.ok, report.problems


def test_a_live_database_on_another_version_lets_its_own_objects_through(
        engine: QueueBackup, queue_db: Path) -> None:
    newer = """ALTER TABLE task_queue ADD COLUMN tenant TEXT;
        CREATE INDEX ix_task_tenant ON task_queue(tenant);
        CREATE TABLE task_tags (task_id INTEGER NOT NULL, tag TEXT NOT NULL);
        DROP INDEX ix_task_format;"""
    with closing_connection(sqlite3.connect(queue_db)) as connection:
        connection.executescript(newer)
    backup = engine.create_backup("newer")
    accepted = check_backup_file(backup, live_path=queue_db)
    assert accepted.ok, accepted.problems
    alone = check_backup_file(backup)  # against the queue schema only
    refused(alone, "table 'task_queue'", "extra column `tenant text`")
    refused(alone, "index 'ix_task_tenant' on task_queue", "table 'task_tags'")
    refused(alone, "lacks index 'ix_task_format'")


def test_a_same_named_object_must_equal_the_live_one(good: Path, queue_db: Path) -> None:
    with closing_connection(sqlite3.connect(queue_db)) as connection:
        connection.execute("CREATE INDEX ix_extra ON task_queue(priority)")
    bad = changed(good, "extra", "CREATE INDEX ix_extra ON task_queue(priority DESC);")
    refused(check_backup_file(bad, live_path=queue_db), "index 'ix_extra'",
            "differs from the live database's", "priority desc")
