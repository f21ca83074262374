"""QueueBackup: creating, listing, pruning and deleting backups of real queue files."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups import backup_store as backup_module
from queue_admin_gui.core.backups.backup_store import BackupResult
from queue_admin_gui.core.backups.manifest import BackupInfo, manifest_path_for
from queue_admin_gui.core.backups.retention import PruneStopped
from queue_admin_gui.core.database import QueueDatabase, task_counts
from queue_admin_gui.core.errors import ErrorKind, OperationCancelled, QueueBackupError


def add_tasks(path: Path, count: int, status: str = "queued") -> None:
    with QueueDatabase(path) as db, db.transaction() as connection:
        connection.executemany(
            "INSERT INTO task_queue(type, payload, status) VALUES ('t', ?, ?)",
            [(json.dumps({"format": "mp4", "pad": "p" * 200}), status)] * count)


@pytest.fixture
def queue(queue_db: Path) -> Path:
    add_tasks(queue_db, 1500)
    add_tasks(queue_db, 20, "completed")
    return queue_db


@pytest.fixture
def engine(queue: Path, tmp_path: Path) -> QueueBackup:
    return QueueBackup(queue, tmp_path / "my backups", pages_per_step=8)


def test_constructor_keeps_what_was_passed_and_creates_the_folder(queue: Path,
                                                                  tmp_path: Path) -> None:
    db = QueueDatabase(queue)
    folder = tmp_path / "new" / "folder"
    engine = QueueBackup(db, str(folder))
    assert engine.db is db and engine.db_path == queue
    assert engine.backup_dir == folder and folder.is_dir()
    assert QueueBackup(str(queue), folder).db_path == queue


def test_default_folder_exists(queue: Path) -> None:
    engine = QueueBackup(queue)
    assert engine.backup_dir.is_dir()
    try:
        from queue_admin_gui.core.settings.config import MaintenanceConfig
    except ImportError:
        assert engine.backup_dir == queue.parent / "backups"
    else:
        assert engine.backup_dir == Path(MaintenanceConfig.load().backup_dir)


def test_backup_is_one_self_contained_verified_file_with_a_manifest(
        engine: QueueBackup, queue: Path) -> None:
    progress: list[tuple[int, int, str]] = []
    result = engine.backup("nightly", progress=lambda *args: progress.append(args))
    assert isinstance(result, BackupResult)
    assert result.path.parent == engine.backup_dir
    assert result.path.name.startswith("queue_backup_nightly_")
    assert result.size_bytes == result.path.stat().st_size == result.page_count * 4096
    assert result.restarts == 0 and result.seconds >= 0
    assert result.task_counts["queued"] == 1500 and result.task_counts["completed"] == 20
    header = result.path.read_bytes()[:20]
    assert header[18] == 1 and header[19] == 1  # rollback journal, not WAL
    assert sorted(p.name for p in engine.backup_dir.iterdir()) == [
        result.path.name, manifest_path_for(result.path).name]
    manifest = json.loads(manifest_path_for(result.path).read_text(encoding="utf-8"))
    assert manifest["sha256"] == result.sha256 and manifest["page_count"] == result.page_count
    assert manifest["source_path"] == str(queue)
    assert manifest["sqlite_version"] == sqlite3.sqlite_version
    assert manifest["created_at"].endswith("+00:00")
    copies = [(done, total) for done, total, stage in progress if stage == "Copying pages"]
    assert len(copies) == -(-result.page_count // 8)
    assert [done for done, _ in copies] == sorted({done for done, _ in copies})
    assert {stage for *_, stage in progress} >= {"Checking the copy", "Computing the checksum",
                                                  "Finishing the backup"}
    with sqlite3.connect(result.path) as copy:
        assert task_counts(copy) == result.task_counts
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert engine.verify_backup(result.path) is True


def test_create_backup_returns_the_path(engine: QueueBackup) -> None:
    path = engine.create_backup()
    assert path.is_file() and path.name.startswith("queue_backup_2")


def test_names_stay_unique_within_one_second(engine: QueueBackup) -> None:
    paths = [engine.create_backup("same") for _ in range(4)]
    assert len(set(paths)) == 4
    stems = sorted(p.name for p in paths)
    assert any(name.endswith("_2.db") for name in stems)


def test_two_threads_backing_up_at_once_both_succeed(engine: QueueBackup) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            start.wait()
            results.append(engine.create_backup("threaded"))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(set(results)) == 2
    assert all(engine.verify_backup(path) for path in results)


def test_an_unusable_name_is_refused_before_anything_is_written(engine: QueueBackup) -> None:
    with pytest.raises(QueueBackupError) as caught:
        engine.backup("..\\..\\windows\\evil")
    assert caught.value.kind is ErrorKind.INVALID
    assert list(engine.backup_dir.iterdir()) == []


def test_cancel_during_the_copy_removes_everything(engine: QueueBackup) -> None:
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(OperationCancelled):
        engine.backup(cancelled=cancelled)
    assert list(engine.backup_dir.iterdir()) == []


@pytest.mark.parametrize("stage", ["Computing the checksum", "Finishing the backup"])
def test_cancel_after_the_copy_removes_everything(engine: QueueBackup, stage: str) -> None:
    flag = threading.Event()

    def progress(done: int, total: int, current: str) -> None:
        if current == stage:
            flag.set()

    with pytest.raises(OperationCancelled):
        engine.backup(progress=progress, cancelled=flag.is_set)
    assert list(engine.backup_dir.iterdir()) == []


def test_too_little_free_space_is_refused_with_the_drive(engine: QueueBackup,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_module, "SPACE_MARGIN_BYTES", 1 << 60)
    with pytest.raises(QueueBackupError) as caught:
        engine.backup()
    assert caught.value.kind is ErrorKind.DISK_FULL
    assert "not enough free space" in str(caught.value)
    assert list(engine.backup_dir.iterdir()) == []


def test_missing_database_is_reported(tmp_path: Path) -> None:
    engine = QueueBackup(tmp_path / "nothing.db", tmp_path / "b")
    with pytest.raises(QueueBackupError) as caught:
        engine.backup()
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert list((tmp_path / "b").iterdir()) == []


def test_a_source_that_is_not_sqlite_raises_a_backup_error(tmp_path: Path) -> None:
    """Scripts written for the original API catch QueueBackupError around create_backup."""
    source = tmp_path / "not a db.db"
    source.write_bytes(b"plain text, not SQLite " * 400)
    with pytest.raises(QueueBackupError) as caught:
        QueueBackup(source, tmp_path / "b").create_backup()
    assert caught.value.kind is ErrorKind.NOT_A_DATABASE
    assert list((tmp_path / "b").iterdir()) == []
    assert source.read_bytes() == b"plain text, not SQLite " * 400


def test_a_plain_sqlite_file_is_backed_up_without_task_counts(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes(x)")
    result = QueueBackup(other, tmp_path / "b").backup()
    assert result.task_counts is None and result.manifest.task_counts is None
    assert result.path.is_file()


def test_list_backups_newest_first_with_old_backups_and_without_partials(
        engine: QueueBackup, queue: Path) -> None:
    old = engine.backup_dir / "queue_backup_20200101_010101.db"
    with sqlite3.connect(queue) as source, sqlite3.connect(old) as target:
        source.backup(target)
    (engine.backup_dir / "queue_backup_20991231_235959.db.partial").write_bytes(b"half")
    (engine.backup_dir / "queue_backup_20991231_235959.manifest.json").write_text("{}")
    (engine.backup_dir / "unrelated.db").write_bytes(b"")
    first = engine.create_backup("a")
    second = engine.create_backup("a")
    listed = engine.list_backups()
    assert [info.path for info in listed] == [second, first, old]
    assert all(isinstance(info, BackupInfo) for info in listed)
    assert [info.has_manifest for info in listed] == [True, True, False]
    assert listed[0].task_counts["queued"] == 1500
    assert engine.get_latest_backup().path == second


def test_empty_folder_lists_nothing(engine: QueueBackup) -> None:
    assert engine.list_backups() == []
    assert engine.get_latest_backup() is None


def test_prune_keeps_the_newest_and_deletes_manifests(engine: QueueBackup) -> None:
    made = [engine.create_backup("p") for _ in range(4)]
    deleted = engine.prune_backups(2)
    assert deleted == [made[1], made[0]]
    assert [info.path for info in engine.list_backups()] == [made[3], made[2]]
    assert not manifest_path_for(made[0]).exists()
    assert engine.cleanup_old_backups(keep_count=1) == 1
    assert engine.cleanup_old_backups() == 0
    assert [info.path for info in engine.list_backups()] == [made[3]]


@pytest.mark.parametrize("keep", [-1, 1.5, True])
def test_prune_refuses_a_bad_keep_count(engine: QueueBackup, keep: object) -> None:
    with pytest.raises(QueueBackupError) as caught:
        engine.prune_backups(keep)  # type: ignore[arg-type]
    assert caught.value.kind is ErrorKind.INVALID


def test_prune_removes_old_leftovers_of_interrupted_backups_only(engine: QueueBackup) -> None:
    kept = engine.create_backup("kept")
    folder = engine.backup_dir
    old_partial = folder / "queue_backup_20200101_000000.db.partial"
    young_partial = folder / "queue_backup_20991231_000000.db.partial"
    orphan = folder / "queue_backup_crashed_20200101_000000.manifest.json"
    unrelated = folder / "notes.partial"
    for path in (old_partial, young_partial, orphan, unrelated):
        path.write_bytes(b"left over")
    long_ago = time.time() - 7 * 3600
    for path in (old_partial, orphan, unrelated):
        os.utime(path, (long_ago, long_ago))

    assert engine.prune_backups(5) == []
    assert not old_partial.exists() and not orphan.exists()
    assert young_partial.exists() and unrelated.exists()
    assert kept.exists() and manifest_path_for(kept).exists()


def test_delete_backup_removes_the_file_and_its_manifest(engine: QueueBackup) -> None:
    path = engine.create_backup()
    engine.delete_backup(path)
    assert list(engine.backup_dir.iterdir()) == []
    with pytest.raises(QueueBackupError) as caught:
        engine.delete_backup(path)
    assert caught.value.kind is ErrorKind.NOT_FOUND


def test_delete_backup_refuses_anything_but_a_backup(engine: QueueBackup, queue: Path) -> None:
    with pytest.raises(QueueBackupError) as caught:
        engine.delete_backup(queue)
    assert caught.value.kind is ErrorKind.INVALID
    assert queue.is_file()
    disguised = engine.backup_dir / "queue_backup_live.db"
    disguised.symlink_to(queue)
    live_engine = QueueBackup(disguised, engine.backup_dir)
    with pytest.raises(QueueBackupError, match="live database"):
        live_engine.delete_backup(disguised)
    assert queue.is_file()


def test_verify_backup_raises_not_found_for_a_missing_file(engine: QueueBackup) -> None:
    with pytest.raises(QueueBackupError, match="not found") as caught:
        engine.verify_backup(engine.backup_dir / "queue_backup_20200101_000000.db")
    assert caught.value.kind is ErrorKind.NOT_FOUND


# -- a bad manifest affects only its own backup; a prune that stops says what it did -------

def _break_manifest(backup: Path, content: bytes) -> None:
    manifest_path_for(backup).write_bytes(content)


@pytest.mark.parametrize("content", [
    b"[" * 50_000 + b"]" * 50_000,
    b'{"created_at": "0001-01-01T00:00:00+00:00"}',
    b"\xff\xfe not text",
], ids=["deeply nested", "year 1", "not UTF-8"])
def test_one_bad_manifest_leaves_the_other_backups_listed(engine: QueueBackup,
                                                          content: bytes) -> None:
    first, bad, last = (engine.create_backup(label) for label in ("a", "b", "c"))
    _break_manifest(bad, content)
    listed = {info.path: info for info in engine.list_backups()}
    assert set(listed) == {first, bad, last}
    assert listed[bad].manifest_unreadable and listed[bad].task_counts is None
    for good in (first, last):
        assert not listed[good].manifest_unreadable
        assert listed[good].task_counts is not None


def test_prune_never_deletes_nor_counts_a_backup_with_an_unreadable_manifest(
        engine: QueueBackup) -> None:
    oldest, older, bad, newest = (engine.create_backup(label) for label in "wxyz")
    _break_manifest(bad, b'{"created_at": "0001-01-01T00:00:00+00:00"}')
    done = engine.prune(2)
    assert done.deleted == [oldest]
    assert done.kept == [newest, older]
    assert [info.path for info in done.skipped] == [bad]
    assert bad.is_file() and manifest_path_for(bad).is_file()
    assert engine.prune_backups(0) == [newest, older]
    assert [info.path for info in engine.list_backups()] == [bad]


def test_prune_that_stops_part_way_says_what_it_deleted(engine: QueueBackup) -> None:
    from undeletable import undeletable

    made = [engine.create_backup("p") for _ in range(4)]
    with undeletable(made[1]), pytest.raises(PruneStopped) as caught:
        engine.prune(1)
    stopped = caught.value
    assert stopped.deleted == [made[2]]
    assert stopped.not_deleted == [made[1], made[0]]
    assert stopped.kind is ErrorKind.PERMISSION
    message = str(stopped)
    assert f"at '{made[1].name}'" in message
    assert f"Deleted before stopping: 1 backup(s) ({made[2].name})" in message
    assert "2 backup(s) due for deletion were not deleted" in message
    assert not made[2].exists() and made[1].exists() and made[0].exists()


def test_check_backup_reports_the_live_wal_without_opening_it(tmp_path: Path) -> None:
    from queue_admin_gui.core.database import QueueDatabase

    live = tmp_path / "queue.db"
    with QueueDatabase(live) as db:
        db.initialize_schema()
        db.execute("INSERT INTO task_queue(type, payload) VALUES ('x', '{}')")
        wal = Path(f"{live}-wal")
        before = wal.read_bytes()
        report = QueueBackup(live, tmp_path / "backups").check_backup(wal)
        assert not report.ok and "-wal file of the live database" in report.problems[0]
        assert wal.read_bytes() == before
