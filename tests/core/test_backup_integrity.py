"""A backup is called verified only after SQLite's full integrity check of the closed copy.

The source here has an index that disagrees with its table: every page is sound, so the
quick check passes, and only the full check (which compares each index with its table)
finds it. Such a source must never yield a "verified" backup, and such a backup must never
be restored.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from queue_admin_gui.cli import main
from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.manifest import BackupManifest, manifest_path_for
from queue_admin_gui.core.database import QueueDatabase, closing_connection, open_read_only
from queue_admin_gui.core.errors import ErrorKind, QueueBackupError
from queue_admin_gui.core.files.durable import file_sha256


def put_index_out_of_step(path: Path) -> None:
    """Make ``ix_task_type_status`` disagree with task_queue without damaging any page."""
    with closing_connection(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA writable_schema=ON")
        connection.execute(
            "UPDATE sqlite_master SET sql = replace(sql, 'task_queue(type, status)', "
            "'task_queue(status, type)') WHERE name = 'ix_task_type_status'")
        connection.commit()


def full_check(path: Path) -> list[str]:
    with closing_connection(open_read_only(path)) as connection:
        return [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]


@pytest.fixture
def filled_db(queue_db: Path) -> Path:
    with QueueDatabase(queue_db) as db, db.transaction() as connection:
        connection.executemany(
            "INSERT INTO task_queue(type, status, payload) VALUES (?, ?, ?)",
            [(f"type{i % 7}", ("queued", "completed")[i % 2], json.dumps({"n": i}))
             for i in range(400)])
    return queue_db


@pytest.fixture
def engine(filled_db: Path, tmp_path: Path) -> QueueBackup:
    return QueueBackup(filled_db, tmp_path / "backups")


def test_the_damage_is_one_only_the_full_check_sees(filled_db: Path) -> None:
    put_index_out_of_step(filled_db)
    with closing_connection(open_read_only(filled_db)) as connection:
        assert connection.execute("PRAGMA quick_check").fetchall()[0][0] == "ok"
    assert full_check(filled_db) != ["ok"]


def test_a_backup_of_a_damaged_source_is_reported_corrupt_not_verified(
        engine: QueueBackup, filled_db: Path) -> None:
    put_index_out_of_step(filled_db)
    with pytest.raises(QueueBackupError) as caught:
        engine.backup("nightly")
    assert caught.value.kind is ErrorKind.CORRUPT
    assert "full integrity check" in caught.value.message
    assert "REINDEX" in caught.value.message and "restore" in caught.value.message
    assert list(engine.backup_dir.iterdir()) == []  # no backup, no partial, no manifest


def test_the_cli_backup_of_a_damaged_source_exits_1_and_never_says_verified(
        filled_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put_index_out_of_step(filled_db)
    code = main(["--db", str(filled_db), "backup", "--dir", str(tmp_path / "backups")])
    said = capsys.readouterr()
    assert code == 1
    assert "REINDEX" in said.err
    assert "verified" not in (said.out + said.err).lower()
    code = main(["--db", str(filled_db), "--json", "backup", "--dir", str(tmp_path / "b2")])
    answer = json.loads(capsys.readouterr().out)
    assert code == 1 and answer["kind"] == "corrupt"


def test_a_backup_whose_index_disagrees_is_not_restored(engine: QueueBackup,
                                                        filled_db: Path,
                                                        tmp_path: Path) -> None:
    good = engine.create_backup("good")
    bad = good.with_name("queue_backup_bad_20200101_000000.db")
    bad.write_bytes(good.read_bytes())
    put_index_out_of_step(bad)
    manifest = BackupManifest.read(manifest_path_for(good))
    replace(manifest, name=bad.name, sha256=file_sha256(bad),
            size_bytes=bad.stat().st_size).write(bad)  # a matching manifest proves nothing
    with QueueDatabase(filled_db) as db:
        before = db.execute("SELECT count(*) FROM task_queue").fetchone()[0]
    with pytest.raises(QueueBackupError, match="failed verification") as caught:
        engine.restore_backup(bad, safety_backup=False)
    assert caught.value.kind is ErrorKind.CORRUPT
    assert full_check(filled_db) == ["ok"]
    with QueueDatabase(filled_db) as db:
        assert db.execute("SELECT count(*) FROM task_queue").fetchone()[0] == before
