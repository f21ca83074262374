"""A backup whose sqlite_sequence is gone from its schema is not a queue anyone can add to.

SQLite keeps the AUTOINCREMENT counters in ``sqlite_sequence``. A file whose schema row for
it was deleted (through ``writable_schema``) still passes SQLite's integrity check, and every
table, index and view left in it is the queue's; but every insert into ``task_queue`` then
fails ("database disk image is malformed"), so the restored queue takes no new task.
Verify must refuse it, alone and against the live database, and a restore must leave the
queue it was asked to replace as it was.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from prismq import add_prismq_tasks, make_prismq_queue, prismq_connect

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.manifest import BackupManifest, manifest_path_for
from queue_admin_gui.core.backups.verify import check_backup_file
from queue_admin_gui.core.database import closing_connection
from queue_admin_gui.core.errors import ErrorKind, QueueBackupError
from queue_admin_gui.core.files.durable import file_sha256

TASKS = 6


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return make_prismq_queue(tmp_path / "prismq queue" / "queue.db", tasks=TASKS)


@pytest.fixture
def without_sequence(live: Path, tmp_path: Path) -> Path:
    """A tool-made backup of ``live`` with sqlite_sequence's schema row deleted."""
    backup = QueueBackup(live, tmp_path / "backups").create_backup("no_sequence")
    with closing_connection(sqlite3.connect(backup, isolation_level=None)) as connection:
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute("DELETE FROM sqlite_master WHERE name = 'sqlite_sequence'")
    manifest = BackupManifest.read(manifest_path_for(backup))
    replace(manifest, sha256=file_sha256(backup), size_bytes=backup.stat().st_size).write(backup)
    return backup


def test_sqlite_passes_it_and_prismq_cannot_add_to_it(without_sequence: Path,
                                                       tmp_path: Path) -> None:
    trial = tmp_path / "trial.db"
    trial.write_bytes(without_sequence.read_bytes())
    with closing_connection(sqlite3.connect(trial)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with closing_connection(prismq_connect(trial)) as producer, pytest.raises(
            sqlite3.DatabaseError, match="malformed"):
        add_prismq_tasks(producer, 1, key_prefix="new")


def test_verify_refuses_it_alone_and_against_the_live_file(without_sequence: Path,
                                                            live: Path) -> None:
    for live_path in (None, live):
        report = check_backup_file(without_sequence, live_path=live_path)
        assert not report.ok, f"verified against {live_path}"
        assert report.kind is ErrorKind.NOT_A_QUEUE, report.problems
        assert any("sqlite_sequence" in problem for problem in report.problems), (
            report.problems)


def test_a_restore_of_it_leaves_the_queue_as_it_was(without_sequence: Path,
                                                    tmp_path: Path) -> None:
    scratch = make_prismq_queue(tmp_path / "scratch" / "queue.db", tasks=2)
    with pytest.raises(QueueBackupError) as refused:
        QueueBackup(scratch, tmp_path / "scratch backups").restore_backup(without_sequence)
    assert refused.value.kind is ErrorKind.NOT_A_QUEUE
    with closing_connection(prismq_connect(scratch)) as producer:
        add_prismq_tasks(producer, 1, key_prefix="after")
        assert producer.execute("SELECT count(*) FROM task_queue").fetchone()[0] == 3


def test_a_deleted_counter_row_that_hid_handed_out_ids_is_refused(live: Path,
                                                                   tmp_path: Path) -> None:
    with closing_connection(prismq_connect(live)) as connection:
        connection.execute("DELETE FROM task_queue WHERE id > ?", (TASKS - 2,))
        connection.commit()  # ids TASKS-1 and TASKS were handed out; the counter keeps them
    backup = QueueBackup(live, tmp_path / "backups").create_backup("no_counter")
    with closing_connection(sqlite3.connect(backup, isolation_level=None)) as connection:
        connection.execute("DELETE FROM sqlite_sequence WHERE name = 'task_queue'")
    manifest = BackupManifest.read(manifest_path_for(backup))
    replace(manifest, sha256=file_sha256(backup), size_bytes=backup.stat().st_size).write(backup)
    trial = tmp_path / "trial.db"  # what restoring it in place of a lost live file leaves
    trial.write_bytes(backup.read_bytes())
    with closing_connection(prismq_connect(trial)) as producer:
        add_prismq_tasks(producer, 1, key_prefix="new")
        (new_id,), = producer.execute("SELECT max(id) FROM task_queue").fetchall()
    assert new_id == TASKS - 1  # an id already handed out, handed out again
    report = check_backup_file(backup)
    assert not report.ok and report.kind is ErrorKind.CORRUPT, report.problems
