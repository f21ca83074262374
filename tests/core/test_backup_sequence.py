"""A backup's id counters must let the restored queue go on handing out fresh ids.

A counter that is text, negative, near the top of the id range, below its table's highest
id, or kept for a table the file lacks (or one without AUTOINCREMENT) is refused by verify
and by restore with a sentence naming it; sound counters pass. Also: a schema using SQL
this SQLite lacks is reported as the file's fault, never as a bug of the tool.
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

TASKS = 30


@pytest.fixture
def engine(queue_db: Path, tmp_path: Path) -> QueueBackup:
    with QueueDatabase(queue_db) as db, db.transaction() as connection:
        connection.executemany("INSERT INTO task_queue(type, payload) VALUES ('t', ?)",
                               [(json.dumps({"n": i}),) for i in range(TASKS)])
    return QueueBackup(queue_db, tmp_path / "backups")


@pytest.fixture
def good(engine: QueueBackup) -> Path:
    return engine.create_backup("good")


def changed(good: Path, label: str, *statements: str, writable: bool = False) -> Path:
    """A copy of ``good`` changed by ``statements``, with a manifest that matches it."""
    bad = good.with_name(f"queue_backup_{label}_20200101_000000.db")
    bad.write_bytes(good.read_bytes())
    with closing_connection(sqlite3.connect(bad, isolation_level=None)) as connection:
        if writable:
            connection.execute("PRAGMA writable_schema = ON")
        for statement in statements:
            connection.execute(statement)
    manifest = BackupManifest.read(manifest_path_for(good))
    replace(manifest, name=bad.name, sha256=file_sha256(bad),
            size_bytes=bad.stat().st_size).write(bad)
    return bad


UNSOUND = [
    ("UPDATE sqlite_sequence SET seq = 'abc' WHERE name = 'task_queue'",
     "for 'task_queue' is 'abc', not a whole number"),
    ("UPDATE sqlite_sequence SET seq = 9223372036854775807 WHERE name = 'task_queue'",
     "is 9223372036854775807, so close to the largest id"),
    ("UPDATE sqlite_sequence SET seq = 4611686018427387904 WHERE name = 'task_queue'",
     "is 4611686018427387904, so close to the largest id"),
    ("UPDATE sqlite_sequence SET seq = -5 WHERE name = 'task_queue'", "is -5, below zero"),
    ("UPDATE sqlite_sequence SET seq = 3 WHERE name = 'task_queue'",
     f"is 3, below the highest id in use there ({TASKS})"),
    ("UPDATE sqlite_sequence SET seq = 12.5 WHERE name = 'task_queue'", "not a whole number"),
    ("INSERT INTO sqlite_sequence(name, seq) VALUES ('ghosts', 7)",
     "names 'ghosts', which is not a table of the file"),
    ("INSERT INTO sqlite_sequence(name, seq) VALUES ('Task_Queue', 70)",
     "names 'Task_Queue', which is not a table of the file"),
    ("INSERT INTO sqlite_sequence(name, seq) VALUES ('workers', 7)",
     "names 'workers', a table that does not use AUTOINCREMENT"),
]


@pytest.mark.parametrize(("statement", "phrase"), UNSOUND,
                         ids=["text", "top", "2^62", "negative", "below", "real", "ghost",
                              "case", "workers"])
def test_an_unsound_counter_is_refused(good: Path, queue_db: Path, statement: str,
                                       phrase: str) -> None:
    bad = changed(good, "counter", statement)
    for live in (queue_db, None):
        report = check_backup_file(bad, live_path=live)
        assert not report.ok and report.kind is ErrorKind.CORRUPT, report.problems
        assert len(report.problems) == 1, report.problems
        assert "id counter (sqlite_sequence)" in report.problems[0]
        assert phrase in report.problems[0]


def test_sound_counters_pass(good: Path, queue_db: Path) -> None:
    ahead = changed(good, "ahead",  # ids handed out and deleted: counter above max(id)
                    "DELETE FROM task_queue WHERE id > 10",
                    "UPDATE sqlite_sequence SET seq = 4611686018427387903 "
                    "WHERE name = 'task_queue'")
    for path in (good, ahead):
        report = check_backup_file(path, live_path=queue_db)
        assert report.ok, report.problems


def test_a_restore_refuses_a_text_counter_and_keeps_the_live_queue(
        engine: QueueBackup, good: Path, queue_db: Path) -> None:
    bad = changed(good, "text", "UPDATE sqlite_sequence SET seq = 'abc' "
                                "WHERE name = 'task_queue'")
    with QueueDatabase(queue_db) as db:
        db.execute("INSERT INTO task_queue(type, payload) VALUES ('late', '{}')")
    with pytest.raises(QueueBackupError, match="not a whole number") as caught:
        engine.restore_backup(bad)
    assert caught.value.kind is ErrorKind.CORRUPT
    with QueueDatabase(queue_db) as db:
        assert db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'task_queue'"
                          ).fetchone()[0] == TASKS + 1
        assert db.execute("SELECT count(*) FROM task_queue").fetchone()[0] == TASKS + 1


def test_a_schema_with_an_unknown_collation_is_the_files_fault(good: Path,
                                                               queue_db: Path) -> None:
    bad = changed(good, "collation",
                  "UPDATE sqlite_master SET sql = replace(sql, 'status TEXT NOT NULL', "
                  "'status TEXT COLLATE nosuch NOT NULL') WHERE name = 'task_queue'",
                  writable=True)
    report = check_backup_file(bad, live_path=queue_db)
    assert not report.ok and report.kind is ErrorKind.NOT_A_QUEUE
    assert any("no such collation sequence: nosuch" in problem
               for problem in report.problems)


TOP = 2 ** 63 - 1
NO_ROOM = 2 ** 62


def take_one_more_task(path: Path) -> str | None:
    """Insert one task into a copy of ``path`` as a producer does; the error, or None."""
    copy = path.with_name(f"copy_of_{path.name}")
    copy.write_bytes(path.read_bytes())
    with closing_connection(sqlite3.connect(copy)) as connection:
        try:
            connection.execute("INSERT INTO task_queue(type, payload) VALUES ('new', '{}')")
            connection.commit()
        except sqlite3.Error as error:
            return str(error)
    return None


@pytest.mark.parametrize("keep_counter", [False, True], ids=["no-counter-row", "counter-below"])
def test_a_task_id_at_the_top_leaves_no_room_and_is_refused(
        good: Path, queue_db: Path, keep_counter: bool) -> None:
    statements = [f"INSERT INTO task_queue(id, type, payload) VALUES ({TOP}, 't', '{{}}')"]
    statements.append(f"UPDATE sqlite_sequence SET seq = {TASKS} WHERE name = 'task_queue'"
                      if keep_counter else
                      "DELETE FROM sqlite_sequence WHERE name = 'task_queue'")
    bad = changed(good, "top", *statements)
    assert take_one_more_task(bad) == "database or disk is full"  # what the reason says
    for live in (queue_db, None):
        report = check_backup_file(bad, live_path=live)
        assert not report.ok and report.kind is ErrorKind.CORRUPT, report.problems
        room = [problem for problem in report.problems
                if f"table 'task_queue' already holds id {TOP}" in problem]
        assert len(room) == 1, report.problems
        assert f"2^62 = {NO_ROOM}" in room[0] and "database or disk is full" in room[0]
        assert ("no counter for it" in room[0]) is not keep_counter


def test_a_counter_at_the_top_is_named_once(good: Path) -> None:
    bad = changed(good, "both", f"INSERT INTO task_queue(id, type, payload) "
                                f"VALUES ({TOP}, 't', '{{}}')")  # SQLite moves seq up too
    report = check_backup_file(bad)
    assert not report.ok and len(report.problems) == 1, report.problems
    assert f"for 'task_queue' is {TOP}, so close to the largest id" in report.problems[0]
    assert f"2^62 = {NO_ROOM}" in report.problems[0]


def test_a_task_log_id_at_the_top_is_refused_too(good: Path) -> None:
    bad = changed(good, "logs",
                  f"INSERT INTO task_logs(log_id, task_id, level) VALUES ({NO_ROOM}, 1, 'x')",
                  "DELETE FROM sqlite_sequence WHERE name = 'task_logs'")
    report = check_backup_file(bad)
    assert not report.ok and len(report.problems) == 1, report.problems
    assert f"table 'task_logs' already holds id {NO_ROOM}" in report.problems[0]


def test_ids_just_below_the_bound_leave_room(good: Path, queue_db: Path) -> None:
    high = changed(good, "high",
                   f"INSERT INTO task_queue(id, type, payload) VALUES ({NO_ROOM - 1}, 't', '{{}}')",
                   f"UPDATE sqlite_sequence SET seq = {NO_ROOM - 1} WHERE name = 'task_queue'")
    assert take_one_more_task(high) is None
    report = check_backup_file(high, live_path=queue_db)
    assert report.ok, report.problems
