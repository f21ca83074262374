"""A backup's schema is compared with the queue schema and the live database's own.

Having the queue's columns is not enough: a backup whose task_queue carries a trigger, or
whose queue tables are views, would bring that SQL into the live queue.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.manifest import BackupManifest, manifest_path_for
from queue_admin_gui.core.backups.verify import check_backup_file
from queue_admin_gui.core.database import QueueDatabase, closing_connection
from queue_admin_gui.core.errors import ErrorKind, QueueBackupError
from queue_admin_gui.core.files.durable import file_sha256
from queue_admin_gui.core.schema import SCHEMA_SQL

#: Deletes every other row of the queue whenever a task is updated (a requeue, say).
WIPING_TRIGGER = """CREATE TRIGGER tidy_up AFTER UPDATE ON task_queue
BEGIN DELETE FROM task_queue WHERE id % 2 = 0; END"""


@pytest.fixture
def engine(queue_db: Path, tmp_path: Path) -> QueueBackup:
    with QueueDatabase(queue_db) as db, db.transaction() as connection:
        connection.executemany("INSERT INTO task_queue(type, payload) VALUES ('t', ?)",
                               [(json.dumps({"n": i}),) for i in range(50)])
    return QueueBackup(queue_db, tmp_path / "backups")


@pytest.fixture
def good(engine: QueueBackup) -> Path:
    return engine.create_backup("good")


def altered(good: Path, label: str, *statements: str) -> Path:
    """A copy of ``good`` changed by ``statements``, with a manifest that matches it."""
    bad = good.with_name(f"queue_backup_{label}_20200101_000000.db")
    bad.write_bytes(good.read_bytes())
    with closing_connection(sqlite3.connect(bad)) as connection:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    manifest = BackupManifest.read(manifest_path_for(good))
    replace(manifest, name=bad.name, sha256=file_sha256(bad),
            size_bytes=bad.stat().st_size).write(bad)
    return bad


def view_queue(good: Path) -> Path:
    """A queue file whose task_queue is a view over a table of another name."""
    bad = good.with_name("queue_backup_view_20200101_000000.db")
    schema = SCHEMA_SQL.replace("task_queue", "tasks_hidden")
    with closing_connection(sqlite3.connect(bad)) as connection:
        connection.executescript(schema)
        connection.execute("CREATE VIEW task_queue AS SELECT * FROM tasks_hidden")
        connection.commit()
    return bad


def test_a_trigger_that_deletes_rows_on_update_is_refused(good: Path, queue_db: Path) -> None:
    bad = altered(good, "trigger", WIPING_TRIGGER)
    for report in (check_backup_file(bad), check_backup_file(bad, live_path=queue_db)):
        assert not report.ok and report.kind is ErrorKind.NOT_A_QUEUE
        assert any("trigger 'tidy_up' on task_queue" in problem for problem in report.problems)
    with_live = check_backup_file(bad, live_path=queue_db)
    assert any("neither the queue schema nor the live database" in problem
               for problem in with_live.problems)


def test_a_restore_refuses_the_trigger_and_leaves_the_queue_as_it_was(
        engine: QueueBackup, good: Path, queue_db: Path) -> None:
    bad = altered(good, "trigger", WIPING_TRIGGER)
    with pytest.raises(QueueBackupError, match="tidy_up") as caught:
        engine.restore_backup(bad)
    assert caught.value.kind is ErrorKind.NOT_A_QUEUE
    with QueueDatabase(queue_db) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
                          ).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM task_queue").fetchone()[0] == 50


def test_a_queue_table_that_is_a_view_is_refused(good: Path, queue_db: Path) -> None:
    bad = view_queue(good)
    report = check_backup_file(bad, live_path=queue_db)
    assert not report.ok and report.kind is ErrorKind.NOT_A_QUEUE
    assert any("task_queue is a view, not a table" in problem for problem in report.problems)


def test_a_trigger_the_live_database_also_has_is_accepted(good: Path, queue_db: Path) -> None:
    audit = ("CREATE TRIGGER audit_done AFTER UPDATE OF status ON task_queue "
             "WHEN new.status = 'completed' BEGIN "
             "INSERT INTO task_logs(task_id, level, message) VALUES (new.id, 'info', 'done'); "
             "END")
    with QueueDatabase(queue_db) as db:
        db.execute(audit)
    bad = altered(good, "audit", audit)
    accepted = check_backup_file(bad, live_path=queue_db)
    assert accepted.ok, accepted.problems
    assert not check_backup_file(bad).ok  # without the live schema it stays refused


def test_a_trigger_of_the_same_name_but_other_sql_is_refused(good: Path,
                                                             queue_db: Path) -> None:
    with QueueDatabase(queue_db) as db:
        db.execute("CREATE TRIGGER tidy_up AFTER UPDATE ON task_queue BEGIN SELECT 1; END")
    bad = altered(good, "trigger", WIPING_TRIGGER)
    report = check_backup_file(bad, live_path=queue_db)
    assert not report.ok and any("tidy_up" in problem for problem in report.problems)


def test_an_unreadable_live_database_leaves_only_the_queue_schema(good: Path,
                                                                  tmp_path: Path) -> None:
    bad = altered(good, "trigger", WIPING_TRIGGER)
    report = check_backup_file(bad, live_path=tmp_path / "nowhere" / "queue.db")
    assert not report.ok and any("tidy_up" in problem for problem in report.problems)
    assert any("could not be read" in note for note in report.notes)
