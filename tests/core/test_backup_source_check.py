"""The full check of a backup runs on the copied snapshot itself, beside the copy.

The checker is a second connection proven to read the state the copy reads (no commit fell
between the two transactions' beginnings); when that cannot be shown, the closed copy is
checked as before. Either way a damaged source never yields a verified backup.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups import snapshot
from queue_admin_gui.core.database import QueueDatabase, closing_connection, connect
from queue_admin_gui.core.errors import ErrorKind, QueueBackupError
from tests.core.test_backup_integrity import put_index_out_of_step


@pytest.fixture
def filled_db(queue_db: Path) -> Path:
    with QueueDatabase(queue_db) as db, db.transaction() as connection:
        connection.executemany("INSERT INTO task_queue(type, status, payload) VALUES (?, ?, ?)",
                               [(f"type{i % 5}", "queued", "{}") for i in range(300)])
    return queue_db


class CommitsOnBegin:
    """The copy's connection, with another connection committing a task as it begins."""

    def __init__(self, connection: sqlite3.Connection, path: Path, times: int) -> None:
        self.connection = connection
        self.path = path
        self.times = times

    @property
    def in_transaction(self) -> bool:
        return self.connection.in_transaction

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = self.connection.execute(sql, *args)
        if sql == "BEGIN" and self.times > 0:
            self.times -= 1
            with closing_connection(connect(self.path)) as writer:
                writer.execute("INSERT INTO task_queue(type, payload) VALUES ('late', '{}')")
        return cursor


def tasks_seen(connection: Any) -> int:
    return int(connection.execute("SELECT count(*) FROM task_queue").fetchone()[0])


def test_a_commit_between_the_beginnings_is_never_checked_as_the_copied_state(
        filled_db: Path) -> None:
    copying = CommitsOnBegin(connect(filled_db), filled_db, times=2)
    check = snapshot.begin_pinned(copying, filled_db, 5000)  # type: ignore[arg-type]
    try:
        assert check is not None and copying.times == 0  # two tries were refused
        # the checker's connection is busy with its check until it ends; its read
        # transaction (the pinned snapshot) stays open after it
        assert check.running.wait(None, "Checking").rows == ["ok"]
        assert tasks_seen(copying) == tasks_seen(check.connection) == 302
    finally:
        if check is not None:
            check.close()
        copying.connection.close()


def test_without_a_quiet_moment_the_copy_begins_alone(filled_db: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "PIN_TRIES", 3)
    copying = CommitsOnBegin(connect(filled_db), filled_db, times=10)
    try:
        assert snapshot.begin_pinned(copying, filled_db, 5000) is None  # type: ignore[arg-type]
        assert copying.in_transaction
    finally:
        copying.connection.close()


def test_the_backup_checks_the_snapshot_beside_the_copy(filled_db: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    original = snapshot.check_beside

    def spy(*args: Any, **kwargs: Any) -> Any:
        checked.append("closed copy")
        return original(*args, **kwargs)

    monkeypatch.setattr(snapshot, "check_beside", spy)
    made = QueueBackup(filled_db, tmp_path / "backups").backup()
    assert checked == []  # the copy was not read again for the check
    assert made.task_counts is not None and made.task_counts["queued"] == 300


@pytest.mark.parametrize("tries", [snapshot.PIN_TRIES, 0])
def test_a_damaged_source_is_never_verified_whichever_way_it_is_checked(
        filled_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tries: int) -> None:
    monkeypatch.setattr(snapshot, "PIN_TRIES", tries)
    put_index_out_of_step(filled_db)
    engine = QueueBackup(filled_db, tmp_path / "backups")
    with pytest.raises(QueueBackupError) as caught:
        engine.backup()
    assert caught.value.kind is ErrorKind.CORRUPT
    assert list(engine.backup_dir.iterdir()) == []


def test_a_cancel_during_the_backup_stops_the_source_check(filled_db: Path,
                                                           tmp_path: Path) -> None:
    engine = QueueBackup(filled_db, tmp_path / "backups")
    with pytest.raises(Exception, match="cancel"):
        engine.backup(cancelled=lambda: True)
    assert list(engine.backup_dir.iterdir()) == []
    with closing_connection(connect(filled_db)) as writer:  # no read transaction is left
        writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
