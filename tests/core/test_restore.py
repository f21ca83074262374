"""Restore: the composed QueueBackup.restore_backup and each step of core/restore/writing.py."""

from __future__ import annotations

import json
import os
import random
import sqlite3
from pathlib import Path

import pytest
from test_verify import BAD_KINDS, make_bad

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.database import QueueDatabase
from queue_admin_gui.core.errors import ErrorKind, OperationCancelled, QueueBackupError
from queue_admin_gui.core.files.db_files import file_size, wal_path
from queue_admin_gui.core.restore.writing import (
    RestoreResult,
    TargetState,
    inspect_target,
    move_aside,
    write_into,
)

# Nothing here tells workers at work: the gate watches for commits a moment, not a second.
pytestmark = pytest.mark.usefixtures("short_commit_watch")

WRITE = "Writing the backup into the database"


def make_queue(path: Path, count: int, marker: str) -> Path:
    with QueueDatabase(path) as db:
        db.initialize_schema()
        with db.transaction() as connection:
            connection.executemany(
                "INSERT INTO task_queue(type, payload) VALUES (?, ?)",
                [(marker, json.dumps({"format": "mp4", "pad": "y" * 300}))] * count)
    return path


def state(path: Path) -> tuple[int, list[str], str]:
    connection = sqlite3.connect(path)
    try:
        count = connection.execute("SELECT count(*) FROM task_queue").fetchone()[0]
        types = [row[0] for row in connection.execute(
            "SELECT DISTINCT type FROM task_queue ORDER BY type")]
        check = connection.execute("PRAGMA integrity_check").fetchone()[0]
        return count, types, check
    finally:
        connection.close()


def journal_mode(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        connection.close()


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return make_queue(tmp_path / "live dir" / "queue.db", 1200, "old")


@pytest.fixture
def engine(live: Path, tmp_path: Path) -> QueueBackup:
    return QueueBackup(live, tmp_path / "backups", pages_per_step=8, busy_timeout_ms=300)


@pytest.fixture
def new_backup(engine: QueueBackup, tmp_path: Path) -> Path:
    source = make_queue(tmp_path / "source.db", 800, "new")
    return QueueBackup(source, engine.backup_dir).create_backup("new")


OLD = (1200, ["old"], "ok")
NEW = (800, ["new"], "ok")


@pytest.mark.slow
def test_restore_replaces_the_live_database_after_a_safety_backup(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    stages: list[str] = []
    result = engine.restore_backup(new_backup, progress=lambda d, t, s: stages.append(s))
    assert isinstance(result, RestoreResult)
    assert result.restored_from == new_backup and result.target == live
    assert result.moved_aside == [] and result.seconds >= 0
    assert state(live) == NEW
    assert journal_mode(live) == "wal"
    assert result.safety_backup is not None
    assert result.safety_backup.name.startswith("queue_backup_pre_restore_")
    assert state(result.safety_backup) == OLD
    assert engine.verify_backup(result.safety_backup)
    assert stages.index("Checking integrity") < stages.index("Copying pages") < stages.index(WRITE)


@pytest.mark.slow
def test_restore_without_safety_backup_checks_the_target_instead(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    result = engine.restore_backup(new_backup, safety_backup=False)
    assert result.safety_backup is None
    assert state(live) == NEW
    assert [info.path for info in engine.list_backups()] == [new_backup]


def test_restore_into_a_missing_target_creates_it_in_wal_mode(
        engine: QueueBackup, new_backup: Path, tmp_path: Path) -> None:
    target = tmp_path / "fresh folder" / "restored.db"
    target.parent.mkdir()
    result = engine.restore_backup(new_backup, target=target)
    assert result.target == target and result.safety_backup is None
    assert state(target) == NEW
    assert journal_mode(target) == "wal"


@pytest.mark.slow
def test_restore_into_an_empty_file_leaves_a_wal_queue(
        engine: QueueBackup, new_backup: Path, tmp_path: Path) -> None:
    target = tmp_path / "empty.db"
    target.write_bytes(b"")
    result = engine.restore_backup(new_backup, target=target)
    assert result.safety_backup is None and result.moved_aside == []
    assert state(target) == NEW
    assert journal_mode(target) == "wal"


def _damage_pages(live: Path) -> bytes:
    """Garble two pages of the task table: the file still opens and its schema reads."""
    data = bytearray(live.read_bytes())
    data[4096 * 3: 4096 * 5] = random.Random(5).randbytes(8192)
    live.write_bytes(bytes(data))
    return bytes(data)


@pytest.mark.slow
def test_a_damaged_database_that_opens_is_written_in_place_and_a_copy_kept(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    data = _damage_pages(live)
    result = engine.restore_backup(new_backup)
    assert result.safety_backup is None and result.moved_aside == []
    copy = result.damaged_copy
    assert copy is not None and copy.parent == engine.backup_dir / "pre-restore"
    assert copy.name.startswith("queue_damaged_")
    assert copy.read_bytes()[4096:] == data[4096:]  # every page but the header's, as it was
    assert [info.path for info in engine.list_backups()] == [new_backup]
    assert state(live) == NEW
    assert not list(live.parent.glob("queue.db.corrupt-*"))


@pytest.mark.slow
def test_cancel_over_a_damaged_database_changes_nothing_and_keeps_no_copy(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    data = _damage_pages(live)
    writing = []

    def progress(done: int, total: int, stage: str) -> None:
        if stage.startswith("Writing"):
            writing.append(done)

    with pytest.raises(OperationCancelled) as caught:
        engine.restore_backup(new_backup, progress=progress, cancelled=lambda: bool(writing))
    # Nothing was written, so the copy taken under the lock is not needed and is removed.
    assert not list((engine.backup_dir / "pre-restore").glob("queue_*"))
    assert "nothing was changed" in str(caught.value)
    assert live.read_bytes() == data


def test_restore_over_random_bytes_moves_them_aside(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    live.write_bytes(random.Random(1).randbytes(20000))
    for side in ("-wal", "-shm"):
        Path(f"{live}{side}").unlink(missing_ok=True)
    result = engine.restore_backup(new_backup, safety_backup=False)
    assert len(result.moved_aside) == 1 and result.moved_aside[0].stat().st_size == 20000
    assert state(live) == NEW


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_restore_refuses_every_bad_backup_and_changes_nothing(
        engine: QueueBackup, live: Path, new_backup: Path, kind: str) -> None:
    bad, _ = make_bad(kind, new_backup)
    before = sorted(p.name for p in engine.backup_dir.iterdir())
    with pytest.raises(QueueBackupError, match="refused: the backup failed verification"):
        engine.restore_backup(bad)
    assert state(live) == OLD
    assert sorted(p.name for p in engine.backup_dir.iterdir()) == before  # no safety backup


@pytest.mark.slow
def test_restore_refuses_a_target_that_is_not_a_queue(
        engine: QueueBackup, new_backup: Path, tmp_path: Path) -> None:
    other = tmp_path / "accounts.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE accounts(id)")
    connection.close()
    with pytest.raises(QueueBackupError) as caught:
        engine.restore_backup(new_backup, target=other)
    assert caught.value.kind is ErrorKind.NOT_A_QUEUE
    with sqlite3.connect(other) as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == [("accounts",)]
    connection.close()


def test_restore_refuses_a_backup_onto_itself(engine: QueueBackup, new_backup: Path) -> None:
    with pytest.raises(QueueBackupError, match="same file"):
        engine.restore_backup(new_backup, target=new_backup)


@pytest.mark.slow
def test_cancel_in_the_middle_of_writing_leaves_the_old_database(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    writes: list[int] = []

    def progress(done: int, total: int, stage: str) -> None:
        if stage == WRITE:
            writes.append(done)

    with pytest.raises(OperationCancelled) as caught:
        engine.restore_backup(new_backup, progress=progress, cancelled=lambda: len(writes) >= 5)
    assert len(writes) == 5
    assert state(live) == OLD
    assert journal_mode(live) == "wal"
    # Nothing changed, so the safety copy it had started is removed, not left unsaid.
    assert not list((engine.backup_dir / "pre-restore").glob("queue_*"))
    assert "nothing was changed" in str(caught.value)
    assert not list(live.parent.glob(".queue-admin-restore-*"))


@pytest.mark.slow
def test_a_locked_database_is_waited_for_then_reported(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    holder = sqlite3.connect(live, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO task_queue(type, payload) VALUES ('held', '{}')")
        with pytest.raises(QueueBackupError) as caught:
            engine.restore_backup(new_backup)
        assert caught.value.kind is ErrorKind.LOCKED
        assert "locked by another program; close it or retry" in str(caught.value)
        holder.execute("COMMIT")
    finally:
        holder.close()
    assert state(live) == (1201, ["held", "old"], "ok")


def test_inspect_target_tells_every_state(live: Path, tmp_path: Path) -> None:
    assert inspect_target(tmp_path / "none.db").state is TargetState.MISSING
    inspected = inspect_target(live)
    assert inspected.state is TargetState.HEALTHY and inspected.journal_mode == "wal"
    assert not inspected.needs_moving_aside
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert inspect_target(empty).state is TargetState.EMPTY
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE x(y)")
    connection.close()
    inspected = inspect_target(other)
    assert inspected.state is TargetState.NOT_A_QUEUE and inspected.problems
    junk = tmp_path / "junk.db"
    junk.write_bytes(random.Random(2).randbytes(9000))
    inspected = inspect_target(junk)
    assert inspected.state is TargetState.CORRUPT and inspected.needs_moving_aside


def test_inspect_target_finds_damage_only_when_asked_to_check(live: Path) -> None:
    with sqlite3.connect(live) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.close()
    data = bytearray(live.read_bytes())
    at = (pages // 2) * 4096
    data[at: at + 4096] = random.Random(9).randbytes(4096)
    live.write_bytes(bytes(data))
    assert inspect_target(live, check=False).state is TargetState.HEALTHY
    checked = inspect_target(live)
    assert checked.state is TargetState.DAMAGED and checked.problems
    assert not checked.needs_moving_aside  # it opens: a restore writes into it in place


def test_move_aside_renames_the_file_and_its_side_files(tmp_path: Path) -> None:
    target = tmp_path / "q.db"
    target.write_bytes(b"db")
    Path(f"{target}-wal").write_bytes(b"wal")
    Path(f"{target}-shm").write_bytes(b"shm")
    moved = move_aside(target, when="20261129_120000")
    assert sorted(p.name for p in moved) == [
        "q.db.corrupt-20261129_120000", "q.db.corrupt-20261129_120000-shm",
        "q.db.corrupt-20261129_120000-wal"]
    assert not target.exists() and not Path(f"{target}-wal").exists()
    target.write_bytes(b"again")
    again = move_aside(target, when="20261129_120000")
    assert [p.name for p in again] == ["q.db.corrupt-20261129_120000_2"]
    assert again[0].read_bytes() == b"again"
    assert move_aside(tmp_path / "absent.db") == []


def test_write_into_reports_pages_and_refuses_leftover_journals(
        new_backup: Path, tmp_path: Path) -> None:
    target = tmp_path / "w.db"
    seen: list[tuple[int, int]] = []
    pages = write_into(new_backup, target, lambda d, t, s: seen.append((d, t)), pages_per_step=16)
    assert seen[-1] == (pages, pages) and len(seen) == -(-pages // 16)
    assert state(target) == NEW
    orphan = tmp_path / "orphan.db"
    Path(f"{orphan}-wal").write_bytes(b"stale")
    with pytest.raises(QueueBackupError, match="leftover"):
        write_into(new_backup, orphan)
    assert not orphan.exists()


def test_write_into_a_new_file_cancelled_leaves_no_file(new_backup: Path,
                                                         tmp_path: Path) -> None:
    target = tmp_path / "cancelled.db"
    with pytest.raises(OperationCancelled):
        write_into(new_backup, target, cancelled=lambda: True, pages_per_step=4)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("cancelled")) == []


@pytest.mark.slow
def test_restore_leaves_no_large_wal_behind(engine: QueueBackup, live: Path,
                                            new_backup: Path) -> None:
    # An idle worker stays connected, as in production, so no last close resets the WAL.
    worker = sqlite3.connect(live, isolation_level=None)
    try:
        worker.execute("SELECT count(*) FROM task_queue").fetchone()
        engine.restore_backup(new_backup, safety_backup=False)
        assert file_size(wal_path(live)) == 0
        assert worker.execute("SELECT count(*) FROM task_queue").fetchone()[0] == NEW[0]
    finally:
        worker.close()
    assert state(live) == NEW


def _insert(path: Path, table: str) -> int:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        if table == "task_queue":
            cursor = connection.execute(
                "INSERT INTO task_queue(type, payload) VALUES ('after', '{}')")
        else:
            cursor = connection.execute(
                "INSERT INTO task_logs(task_id, level, message) VALUES (1, 'info', 'after')")
        return int(cursor.lastrowid)
    finally:
        connection.close()


@pytest.mark.slow
def test_no_task_or_log_id_is_handed_out_twice_after_a_restore(
        engine: QueueBackup, live: Path) -> None:
    older = engine.create_backup("older")
    for _ in range(30):
        _insert(live, "task_queue")
        _insert(live, "task_logs")
    highest_task, highest_log = 1230, 30
    result = engine.restore_backup(older)
    assert state(live)[0] == 1200
    assert result.counters_kept == {"task_queue": highest_task, "task_logs": highest_log}
    assert _insert(live, "task_queue") == highest_task + 1
    assert _insert(live, "task_logs") == highest_log + 1
    # The backup file itself was never changed to carry the counters.
    assert QueueBackup(live, engine.backup_dir).verify_backup(older) is True
    connection = sqlite3.connect(older)
    try:
        assert connection.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'task_queue'").fetchone()[0] == 1200
    finally:
        connection.close()


@pytest.mark.slow
def test_safety_backups_are_kept_apart_with_their_own_retention(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    from queue_admin_gui.core.measurements.health import latest_backup_time
    from queue_admin_gui.core.restore.execute import SAFETY_KEEP_COUNT
    from queue_admin_gui.core.restore.keep import safety_folder

    regular = engine.list_backups()
    assert [info.path for info in regular] == [new_backup]
    made_at = latest_backup_time(engine.backup_dir)[0]
    safeties = [engine.restore_backup(new_backup).safety_backup
                for _ in range(SAFETY_KEEP_COUNT + 1)]
    assert all(path is not None and path.parent == safety_folder(engine.backup_dir)
               for path in safeties)
    # They count neither as regular backups nor toward "keep newest N" nor backup age.
    assert [info.path for info in engine.list_backups()] == [new_backup]
    assert engine.prune_backups(1) == []
    assert latest_backup_time(engine.backup_dir)[0] == made_at
    kept = sorted(safety_folder(engine.backup_dir).glob("queue_backup_*.db"))
    assert len(kept) == SAFETY_KEEP_COUNT
    assert safeties[0] not in kept and safeties[-1] in kept


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_backup_named_like_a_live_side_file_is_refused_unopened(
        engine: QueueBackup, live: Path, new_backup: Path, suffix: str) -> None:
    side = live.with_name(live.name + suffix)
    existed = side.exists()
    before = side.read_bytes() if existed else None
    if not existed:
        side.write_bytes(new_backup.read_bytes())
        before = side.read_bytes()
    with pytest.raises(QueueBackupError, match=f"{suffix} file of the live database") as caught:
        engine.restore_backup(side)
    assert caught.value.kind is ErrorKind.INVALID
    assert side.read_bytes() == before
    assert state(live) == OLD


def test_a_damaged_database_with_a_name_at_the_limit_is_moved_aside(tmp_path: Path) -> None:
    folder = tmp_path / "long"
    folder.mkdir()
    path = folder / ("q" * 240 + ".db")  # 243 bytes: ".corrupt-<stamp>" would not fit
    path.write_bytes(b"not a database at all" * 300)
    Path(f"{path}-wal").write_bytes(b"leftover wal")
    moved = move_aside(path)
    assert not path.exists() and not Path(f"{path}-wal").exists()
    assert len(moved) == 2 and all(len(p.name.encode()) <= 255 for p in moved)
    assert moved[0].read_bytes() == b"not a database at all" * 300
    assert moved[1].name == moved[0].name + "-wal"
    # A second damaged file at the same second gets its own name.
    path.write_bytes(b"again")
    again = move_aside(path, when=moved[0].name.rsplit("corrupt-", 1)[-1][:15])
    assert again[0] != moved[0] and again[0].read_bytes() == b"again"


@pytest.mark.slow
def test_a_live_database_outside_wal_mode_is_restored_with_its_safety_backup(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    connection = sqlite3.connect(live, isolation_level=None)
    try:
        assert connection.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
        connection.execute("INSERT INTO task_queue(type, payload) VALUES ('old', '{}')")
    finally:
        connection.close()
    result = engine.restore_backup(new_backup)
    assert result.safety_backup is not None and state(result.safety_backup)[0] == 1201
    assert result.counters_kept == {"task_queue": 1201}
    assert state(live) == NEW
    assert _insert(live, "task_queue") == 1202


@pytest.mark.slow
def test_staging_left_by_a_killed_restore_is_removed_by_the_next(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    leftover = live.parent / f".queue-admin-restore-{dead_pid}-1"
    leftover.mkdir()
    (leftover / new_backup.name).write_bytes(new_backup.read_bytes())
    ours = live.parent / f".queue-admin-restore-{os.getpid()}-1"  # a restore still running
    ours.mkdir()
    engine.restore_backup(new_backup)
    assert not leftover.exists()
    assert ours.exists()
    assert [p.name for p in live.parent.glob(".queue-admin-restore-*")] == [ours.name]
