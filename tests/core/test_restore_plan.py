"""What a restore will cost, decided on real files before anything is written."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.errors import OperationCancelled, QueueBackupError, drive_label
from queue_admin_gui.core.restore.file_summary import QueueSnapshot, inspect_database
from queue_admin_gui.core.restore.plan import check_restored, compare_backup_with_live
from queue_admin_gui.core.restore.preflight import Preflight, preflight
from queue_admin_gui.core.restore.write_access import (
    blocked_sentence,
    probe_write_access,
    wait_for_write_access,
)
from queue_admin_gui.core.restore.writing import TargetState

_HOLDER = r"""
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
connection.execute("BEGIN IMMEDIATE")
print("ready", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
connection.close()
"""


def run_sql(path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(sql, params)
    finally:
        connection.close()


def add_tasks(path: Path, count: int, status: str = "queued", **extra: str) -> None:
    """Insert ``count`` tasks with one status (and a worker for in-flight ones)."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO task_queue (type, payload, status, locked_by) VALUES (?, ?, ?, ?)",
            [("render", "{}", status, extra.get("locked_by")) for _ in range(count)],
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


def corrupt(path: Path) -> None:
    """Overwrite every page after the first with garbage, as a failing disk would."""
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(4096)
        handle.write(b"\xa5" * (size - 4096))


@pytest.fixture
def write_lock_holder() -> Iterator[callable]:
    """Start another process that holds a write lock on a file until the test ends."""
    processes: list[subprocess.Popen[str]] = []

    def hold(path: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        return process

    yield hold
    for process in processes:
        if process.poll() is None:
            process.communicate("\n", timeout=30)


@pytest.fixture
def backed_up(queue_db: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A live queue with 20 queued, 5 completed and 3 leased tasks, and a backup of it."""
    add_tasks(queue_db, 20)
    add_tasks(queue_db, 5, "completed")
    add_tasks(queue_db, 3, "leased", locked_by="worker-7")
    backup = QueueBackup(queue_db, tmp_path / "backups").create_backup()
    return queue_db, backup


def test_consequences_match_what_changed_after_the_backup(backed_up: tuple[Path, Path]) -> None:
    live, backup = backed_up
    add_tasks(live, 4)  # created after the backup: lost
    run_sql(live, "UPDATE task_queue SET status = 'completed' WHERE id IN (1, 2, 3)")
    run_sql(live, "UPDATE task_queue SET status = 'completed' WHERE id = 26")  # was leased
    run_sql(live, "UPDATE task_queue SET status = 'failed' WHERE id = 4")
    run_sql(live, "DELETE FROM task_queue WHERE id = 21")  # completed before; comes back

    comparison = compare_backup_with_live(backup, live)

    assert comparison.backup.counts["queued"] == 20
    assert comparison.backup.counts["leased"] == 3
    assert comparison.live.counts["completed"] == 5 - 1 + 4
    assert comparison.live.total == 28 + 4 - 1
    assert comparison.lost_after_backup == 4
    assert comparison.rerun_after_backup == 4
    assert comparison.retried_after_backup == 1
    assert comparison.returning_after_backup == 1
    assert [task.id for task in comparison.in_flight_in_backup] == [26, 27, 28]
    assert comparison.in_flight_in_backup[0].locked_by == "worker-7"
    sentences = comparison.consequences()
    assert sentences[0] == ("4 tasks created after this backup will be lost; "
                            "4 tasks completed after it will run again.")
    assert "1 task that failed after this backup will be tried again." in sentences
    assert "1 task deleted after this backup will come back." in sentences
    assert sentences[-1].startswith("3 tasks were in flight when the backup was taken")


def test_newest_task_time_is_read_on_both_sides(backed_up: tuple[Path, Path]) -> None:
    live, backup = backed_up
    run_sql(live, "INSERT INTO task_queue (type, payload, created_at_utc) "
                  "VALUES ('late', '{}', '2999-01-02 03:04:05')")
    comparison = compare_backup_with_live(backup, live)
    assert comparison.live.newest_created_at == "2999-01-02 03:04:05"
    assert comparison.backup.newest_created_at is not None
    assert comparison.backup.newest_created_at < "2999"


def test_nothing_changed_says_so(backed_up: tuple[Path, Path]) -> None:
    live, backup = backed_up
    comparison = compare_backup_with_live(backup, live)
    assert comparison.consequences()[0] == ("0 tasks created after this backup will be lost; "
                                            "0 tasks completed after it will run again.")


def test_progress_is_reported_and_cancel_stops_the_comparison(
        backed_up: tuple[Path, Path]) -> None:
    live, backup = backed_up
    seen: list[tuple[int, int, str]] = []
    compare_backup_with_live(backup, live, progress=lambda *args: seen.append(args))
    assert seen[-1] == (56, 56, "Comparing tasks")
    with pytest.raises(OperationCancelled):
        compare_backup_with_live(backup, live, cancelled=lambda: True)


def test_missing_live_database_is_not_an_error(backed_up: tuple[Path, Path]) -> None:
    live, backup = backed_up
    live.unlink()
    comparison = compare_backup_with_live(backup, live)
    assert comparison.live.state is TargetState.MISSING
    assert comparison.consequences()[0] == ("The live database does not exist; the backup will "
                                            "be restored to its path and nothing can be lost.")


def test_corrupt_live_database_is_reported_with_sqlites_reason(
        backed_up: tuple[Path, Path]) -> None:
    live, backup = backed_up
    corrupt(live)
    comparison = compare_backup_with_live(backup, live)
    # It opens and its schema reads, so the restore writes into it in place.
    assert comparison.live.state is TargetState.DAMAGED
    assert "malformed" in comparison.live.problem
    assert "written into it in one transaction" in comparison.consequences()[0]


def test_a_live_file_that_cannot_be_opened_is_to_be_moved_aside(
        backed_up: tuple[Path, Path]) -> None:
    live, backup = backed_up
    for side in ("-wal", "-shm"):
        Path(f"{live}{side}").unlink(missing_ok=True)
    live.write_bytes(b"\xa5" * 20000)
    comparison = compare_backup_with_live(backup, live)
    assert comparison.live.state is TargetState.CORRUPT
    assert "moved aside" in comparison.consequences()[0]


def test_a_bad_backup_raises_a_sentence(backed_up: tuple[Path, Path]) -> None:
    live, backup = backed_up
    corrupt(backup)
    with pytest.raises(QueueBackupError, match="choose another backup"):
        compare_backup_with_live(backup, live)


def test_inspect_database_tells_empty_and_foreign_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    assert inspect_database(empty).state is TargetState.EMPTY
    other = tmp_path / "other.db"
    run_sql(other, "CREATE TABLE notes (text TEXT)")
    snapshot = inspect_database(other)
    assert snapshot.state is TargetState.NOT_A_QUEUE
    assert "task_queue" in snapshot.problem


@pytest.mark.slow
def test_preflight_lists_active_workers_and_space(backed_up: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    live, backup = backed_up
    run_sql(live, "INSERT INTO workers (worker_id, capabilities) VALUES ('alive', '{}')")
    run_sql(live, "INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
                  "VALUES ('gone', '{}', datetime('now', '-10 minutes'))")
    result = preflight(live, tmp_path / "backups", backup)
    assert result.live.ok
    assert [worker.worker_id for worker in result.active_workers] == ["alive"]
    assert not result.blocked
    assert result.backup_size == backup.stat().st_size
    assert result.safety_size >= live.stat().st_size
    needs = result.space_needs(safety_backup=True)
    assert needs[0].needed_bytes == 2 * result.backup_size + result.safety_size
    assert result.space_needs(safety_backup=False)[0].needed_bytes == 2 * result.backup_size
    assert result.space_problem() is None


def test_space_problem_names_the_drive_and_the_numbers(tmp_path: Path) -> None:
    result = Preflight(QueueSnapshot(tmp_path / "q.db", TargetState.HEALTHY),
                       backup_size=3 * 1024**3, safety_size=1024**3, live_folder=tmp_path,
                       backup_dir=tmp_path, free_bytes={"live": 2 * 1024**3})
    assert result.space_problem() == (
        f"Restore refused: not enough free space on {drive_label(tmp_path)}: "
        "need 7.0 GB, 2.0 GB free; free some space first.")


@pytest.mark.slow
def test_preflight_on_missing_and_corrupt_live(backed_up: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    live, backup = backed_up
    corrupt(live)
    damaged = preflight(live, tmp_path / "backups", backup)
    assert damaged.live.state is TargetState.DAMAGED
    assert damaged.live.problem
    assert not damaged.blocked
    live.unlink()
    missing = preflight(live, tmp_path / "backups", backup)
    assert missing.live.state is TargetState.MISSING
    assert missing.safety_size == 0
    assert not missing.blocked


@pytest.mark.slow
def test_another_programs_write_lock_is_seen_and_waited_for(
        backed_up: tuple[Path, Path], tmp_path: Path, write_lock_holder) -> None:
    live, backup = backed_up
    holder = write_lock_holder(live)
    assert "another program" in (probe_write_access(live) or "")
    assert preflight(live, tmp_path / "backups", backup).blocked
    ticks: list[float] = []
    started = time.monotonic()
    assert not wait_for_write_access(live, 1.0, ticks.append)
    assert time.monotonic() - started >= 1.0
    assert ticks[0] > ticks[-1] >= 0
    holder.communicate("\n", timeout=30)
    assert probe_write_access(live) is None
    assert wait_for_write_access(live, 5.0)


def test_waiting_ends_when_the_other_program_lets_go(
        backed_up: tuple[Path, Path], write_lock_holder) -> None:
    live, _ = backed_up
    holder = write_lock_holder(live)
    released: list[float] = []

    def tick(remaining: float) -> None:
        if not released:
            released.append(remaining)
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.flush()

    assert wait_for_write_access(live, 60.0, tick)
    assert released


def test_waiting_can_be_cancelled(backed_up: tuple[Path, Path], write_lock_holder) -> None:
    live, _ = backed_up
    write_lock_holder(live)
    with pytest.raises(OperationCancelled):
        wait_for_write_access(live, 60.0, cancelled=lambda: True)


def test_blocked_sentence_says_what_happened_and_what_to_do(tmp_path: Path) -> None:
    text = blocked_sentence(tmp_path / "queue.db", 29.6)
    assert "'queue.db' for 30 seconds" in text
    assert "nothing was changed" in text
    assert "then try again. No other program has the database open" in text


def test_check_restored_lists_in_flight_tasks(backed_up: tuple[Path, Path]) -> None:
    live, _ = backed_up
    result = check_restored(live)
    assert result.ok
    assert result.counts["queued"] == 20
    assert [task.id for task in result.in_flight] == [26, 27, 28]
