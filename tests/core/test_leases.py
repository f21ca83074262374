"""LeaseManager: stale leases, requeue, dead letters, workers, on real queue files."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from queue_admin_gui.core.database import closing_connection, connect
from queue_admin_gui.core.errors import (
    ErrorKind,
    NotAQueueDatabaseError,
    QueueMaintenanceError,
)
from queue_admin_gui.core.leases.manager import LeaseManager, RequeueResult


def add_task(path: Path, status: str = "leased", lease_offset: str | None = "-600 seconds",
             attempts: int = 0, max_attempts: int = 5, worker: str | None = "worker-1",
             reserved_offset: str | None = "-900 seconds", error: str | None = None) -> int:
    """Insert one task; offsets are SQLite modifiers relative to now (UTC)."""
    with closing_connection(connect(path)) as connection:
        cursor = connection.execute(
            "INSERT INTO task_queue (type, payload, status, attempts, max_attempts, "
            "lease_until_utc, reserved_at_utc, processing_started_utc, locked_by, "
            "error_message) VALUES ('render', '{\"format\": \"png\"}', ?, ?, ?, "
            "CASE WHEN ? IS NULL THEN NULL ELSE datetime('now', ?) END, "
            "CASE WHEN ? IS NULL THEN NULL ELSE datetime('now', ?) END, "
            "datetime('now', '-900 seconds'), ?, ?)",
            (status, attempts, max_attempts, lease_offset, lease_offset, reserved_offset,
             reserved_offset, worker, error),
        )
        return int(cursor.lastrowid or 0)


def task_row(path: Path, task_id: int) -> sqlite3.Row:
    with closing_connection(connect(path)) as connection:
        return connection.execute("SELECT *, run_after_utc <= datetime('now') AS runnable "
                                  "FROM task_queue WHERE id = ?", (task_id,)).fetchone()


def logs_of(path: Path, task_id: int) -> list[sqlite3.Row]:
    with closing_connection(connect(path)) as connection:
        return connection.execute("SELECT * FROM task_logs WHERE task_id = ? ORDER BY log_id",
                                  (task_id,)).fetchall()


def add_worker(path: Path, worker_id: str, heartbeat_offset: str) -> None:
    with closing_connection(connect(path)) as connection:
        connection.execute("INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
                           "VALUES (?, '{\"gpu\": false}', datetime('now', ?))",
                           (worker_id, heartbeat_offset))


@pytest.fixture
def plain_sqlite(tmp_path: Path) -> Path:
    path = tmp_path / "other.db"
    with closing_connection(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.commit()
    return path


def test_in_flight_tasks_lists_both_spellings_and_marks_stale_ones(queue_db: Path) -> None:
    stale = add_task(queue_db, "leased", "-400 seconds")
    fresh = add_task(queue_db, "processing", "+120 seconds", worker="worker-2")
    recently_expired = add_task(queue_db, "leased", "-30 seconds")
    add_task(queue_db, "queued", None, worker=None)
    add_task(queue_db, "completed", "-4000 seconds")
    tasks = {task.id: task for task in LeaseManager(queue_db).in_flight_tasks(300)}
    assert set(tasks) == {stale, fresh, recently_expired}
    assert tasks[stale].stale and tasks[stale].expired_seconds is not None
    assert 399 <= tasks[stale].expired_seconds < 500
    assert not tasks[fresh].stale and tasks[fresh].expired_seconds is None
    assert tasks[fresh].status == "processing" and tasks[fresh].locked_by == "worker-2"
    assert not tasks[recently_expired].stale
    assert [task.id for task in LeaseManager(queue_db).in_flight_tasks(300)][0] == stale


def test_find_stale_leases_uses_the_timeout_and_falls_back_to_the_claim_time(
        queue_db: Path) -> None:
    expired_long_ago = add_task(queue_db, "leased", "-400 seconds")
    processing = add_task(queue_db, "processing", "-3600 seconds")
    no_lease_old_claim = add_task(queue_db, "leased", None, reserved_offset="-2 hours")
    add_task(queue_db, "leased", None, reserved_offset="-10 seconds")
    add_task(queue_db, "leased", "-200 seconds")
    add_task(queue_db, "leased", "+60 seconds")
    add_task(queue_db, "completed", "-9000 seconds")
    add_task(queue_db, "failed", "-9000 seconds")
    manager = LeaseManager(queue_db)
    found = manager.find_stale_leases(300)
    assert [task.id for task in found] == [expired_long_ago, processing, no_lease_old_claim]
    assert all(task.stale for task in found)
    assert len(manager.find_stale_leases(0)) == 5
    assert len(manager.find_stale_leases(3000)) == 2


def test_requeue_moves_stale_tasks_back_and_logs_who_held_them(queue_db: Path) -> None:
    stale = add_task(queue_db, "leased", "-400 seconds", attempts=1, worker="pc-07")
    old_spelling = add_task(queue_db, "processing", "-400 seconds", worker="pc-08")
    fresh = add_task(queue_db, "leased", "+300 seconds")
    result = LeaseManager(queue_db).requeue_stale_leases(300)
    assert result == RequeueResult(2, 2, 0, [stale, old_spelling], [stale, old_spelling], [],
                                   False)
    row = task_row(queue_db, stale)
    assert row["status"] == "queued" and row["attempts"] == 2
    assert row["lease_until_utc"] is None and row["locked_by"] is None
    assert row["reserved_at_utc"] is None and row["processing_started_utc"] is None
    assert row["runnable"] == 1
    assert task_row(queue_db, old_spelling)["status"] == "queued"
    untouched = task_row(queue_db, fresh)
    assert (untouched["status"], untouched["attempts"]) == ("leased", 0)
    (log,) = logs_of(queue_db, stale)
    assert log["level"] == "WARNING"
    assert "pc-07" in log["message"] and "requeued" in log["message"]
    assert "attempt 2 of 5" in log["message"]
    details = json.loads(log["details"])
    assert (details["action"], details["worker"], details["attempts"]) == ("requeue", "pc-07", 2)
    assert logs_of(queue_db, fresh) == []


def test_a_task_out_of_attempts_goes_to_the_dead_letters(queue_db: Path) -> None:
    last_try = add_task(queue_db, "leased", "-400 seconds", attempts=4, max_attempts=5,
                        worker="pc-09")
    result = LeaseManager(queue_db).requeue_stale_leases(300)
    assert (result.stale, result.requeued, result.dead_lettered) == (1, 0, 1)
    assert result.dead_lettered_ids == [last_try]
    row = task_row(queue_db, last_try)
    assert (row["status"], row["attempts"]) == ("failed", 5)
    assert row["error_message"] == ("Lease expired 5 times (worker died); moved to dead "
                                    "letters after 5 attempts.")
    assert row["finished_at_utc"] is not None and row["locked_by"] is None
    (log,) = logs_of(queue_db, last_try)
    assert "dead letters" in log["message"] and "pc-09" in log["message"]


def test_a_second_cleanup_finds_nothing_to_requeue(queue_db: Path) -> None:
    ids = [add_task(queue_db, "leased", "-1000 seconds") for _ in range(5)]
    manager = LeaseManager(queue_db)
    assert manager.requeue_stale_leases(300).task_ids == ids
    assert manager.requeue_stale_leases(300) == RequeueResult()
    assert [task_row(queue_db, task_id)["attempts"] for task_id in ids] == [1] * 5
    assert all(len(logs_of(queue_db, task_id)) == 1 for task_id in ids)


def test_dry_run_previews_without_changing_anything(queue_db: Path) -> None:
    requeue = add_task(queue_db, "leased", "-400 seconds", attempts=0)
    dead = add_task(queue_db, "processing", "-400 seconds", attempts=2, max_attempts=3)
    before = queue_db.read_bytes()
    preview = LeaseManager(queue_db).requeue_stale_leases(300, dry_run=True)
    assert preview.dry_run
    assert (preview.stale, preview.requeued, preview.dead_lettered) == (2, 1, 1)
    assert (preview.requeued_ids, preview.dead_lettered_ids) == ([requeue], [dead])
    assert task_row(queue_db, requeue)["status"] == "leased"
    assert task_row(queue_db, dead)["attempts"] == 2
    assert logs_of(queue_db, requeue) == []
    assert queue_db.read_bytes() == before


def test_requeue_tasks_takes_chosen_in_flight_tasks_even_before_expiry(queue_db: Path) -> None:
    leased = add_task(queue_db, "leased", "+600 seconds")
    processing = add_task(queue_db, "processing", "+600 seconds")
    completed = add_task(queue_db, "completed", None)
    other = add_task(queue_db, "leased", "+600 seconds")
    result = LeaseManager(queue_db).requeue_tasks([processing, leased, completed, leased])
    assert result.task_ids == [leased, processing]
    assert result.requeued == 2 and not result.dry_run
    assert task_row(queue_db, completed)["status"] == "completed"
    assert task_row(queue_db, other)["status"] == "leased"
    assert LeaseManager(queue_db).requeue_tasks([]) == RequeueResult()


def test_workers_show_heartbeat_age_and_held_tasks(queue_db: Path) -> None:
    add_worker(queue_db, "alive", "-5 seconds")
    add_worker(queue_db, "silent", "-10 minutes")
    add_task(queue_db, "leased", "+60 seconds", worker="alive")
    add_task(queue_db, "processing", "+60 seconds", worker="alive")
    add_task(queue_db, "completed", None, worker="alive")
    add_task(queue_db, "leased", "-900 seconds", worker="silent")
    manager = LeaseManager(queue_db)
    workers = {worker.worker_id: worker for worker in manager.list_workers()}
    assert workers["alive"].leased_tasks == 2 and workers["silent"].leased_tasks == 1
    assert 4 <= workers["alive"].heartbeat_age_seconds < 60
    assert 599 <= workers["silent"].heartbeat_age_seconds < 700
    assert workers["alive"].capabilities == '{"gpu": false}'
    assert [worker.worker_id for worker in manager.active_workers(60)] == ["alive"]
    assert len(manager.active_workers(3600)) == 2


def test_dead_tasks_lists_both_spellings_newest_first(queue_db: Path) -> None:
    first = add_task(queue_db, "failed", None, attempts=5, error="boom")
    second = add_task(queue_db, "dead_letter", None, attempts=3, max_attempts=3)
    add_task(queue_db, "completed", None)
    with closing_connection(connect(queue_db)) as connection:
        connection.execute("UPDATE task_queue SET updated_at_utc = datetime('now', '-1 hour') "
                           "WHERE id = ?", (first,))
    manager = LeaseManager(queue_db)
    dead = manager.dead_tasks()
    assert [task.id for task in dead] == [second, first]
    assert dead[1].error_message == "boom" and dead[0].status == "dead_letter"
    assert [task.id for task in manager.dead_tasks(limit=1)] == [second]


def test_retry_dead_tasks_requeues_with_attempts_reset_and_keeps_the_error(
        queue_db: Path) -> None:
    dead = add_task(queue_db, "failed", None, attempts=5, error="disk full on render node")
    old_spelling = add_task(queue_db, "dead_letter", None, attempts=3, max_attempts=3)
    leased = add_task(queue_db, "leased", "+60 seconds")
    manager = LeaseManager(queue_db)
    assert manager.retry_dead_tasks([dead, old_spelling, leased]) == 2
    row = task_row(queue_db, dead)
    assert (row["status"], row["attempts"], row["error_message"]) == ("queued", 0, None)
    assert row["runnable"] == 1
    (log,) = logs_of(queue_db, dead)
    assert json.loads(log["details"])["previous_error"] == "disk full on render node"
    assert task_row(queue_db, leased)["status"] == "leased"
    assert manager.retry_dead_tasks([dead]) == 0
    assert manager.retry_dead_tasks([]) == 0


def test_queue_operations_refuse_a_file_that_is_not_a_queue(plain_sqlite: Path) -> None:
    manager = LeaseManager(plain_sqlite)
    for operation in (manager.find_stale_leases, manager.requeue_stale_leases,
                      manager.list_workers, manager.dead_tasks):
        with pytest.raises(NotAQueueDatabaseError, match="not a PrismQ queue database"):
            operation()
    with pytest.raises(NotAQueueDatabaseError):
        manager.retry_dead_tasks([1])


def test_bad_arguments_and_missing_files_are_clear_errors(queue_db: Path,
                                                          tmp_path: Path) -> None:
    manager = LeaseManager(queue_db)
    with pytest.raises(QueueMaintenanceError, match="timeout"):
        manager.find_stale_leases(-1)
    with pytest.raises(QueueMaintenanceError, match="timeout"):
        manager.requeue_stale_leases("soon")  # type: ignore[arg-type]
    with pytest.raises(QueueMaintenanceError, match="whole numbers"):
        manager.requeue_tasks(["seven"])  # type: ignore[list-item]
    missing = LeaseManager(tmp_path / "nowhere" / "queue.db")
    with pytest.raises(QueueMaintenanceError) as caught:
        missing.requeue_stale_leases()
    assert caught.value.kind is ErrorKind.NOT_FOUND
    with pytest.raises(QueueMaintenanceError) as caught:
        missing.find_stale_leases()
    assert caught.value.kind is ErrorKind.NOT_FOUND



def test_bad_arguments_are_invalid_input_not_a_disk_error(queue_db: Path) -> None:
    """The kind picks the CLI's exit code and the window's wording: bad input is INVALID."""
    manager = LeaseManager(queue_db)
    for call in (lambda: manager.find_stale_leases(-1),
                 lambda: manager.requeue_stale_leases("soon"),  # type: ignore[arg-type]
                 lambda: manager.requeue_tasks(["seven"])):  # type: ignore[list-item]
        with pytest.raises(QueueMaintenanceError) as caught:
            call()
        assert caught.value.kind is ErrorKind.INVALID

HOLD_WRITE_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
"""


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another program holds the file's write lock for the duration of the block."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.communicate("\n", timeout=30)


def test_requeue_on_a_locked_queue_waits_then_says_so(queue_db: Path) -> None:
    add_task(queue_db, "leased", "-900 seconds")
    manager = LeaseManager(queue_db, busy_timeout_ms=200)
    with write_lock_held(queue_db):
        with pytest.raises(QueueMaintenanceError) as caught:
            manager.requeue_stale_leases(300)
        assert len(manager.find_stale_leases(300)) == 1  # readers are not blocked in WAL mode
    assert caught.value.kind is ErrorKind.LOCKED
    assert "the database is locked by another program; close it or retry" in str(caught.value)
    assert manager.requeue_stale_leases(300).requeued == 1


def test_many_stale_leases_are_requeued_in_one_pass(queue_db: Path) -> None:
    with closing_connection(connect(queue_db)) as connection:
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO task_queue (type, payload, status, attempts, lease_until_utc, "
            "locked_by) VALUES ('t', '{}', 'leased', ?, datetime('now', '-1 hour'), ?)",
            [(number % 5, f"w{number % 3}") for number in range(5000)],
        )
        connection.execute("COMMIT")
    result = LeaseManager(queue_db).requeue_stale_leases(300)
    assert (result.stale, result.requeued, result.dead_lettered) == (5000, 4000, 1000)
    with closing_connection(connect(queue_db)) as connection:
        assert connection.execute("SELECT count(*) FROM task_logs").fetchone()[0] == 5000
        assert connection.execute(
            "SELECT count(*) FROM task_queue WHERE status IN ('leased', 'processing')"
        ).fetchone()[0] == 0


# -- rule 8: a task is abandoned only when its worker is silent too ----------------------

def test_an_expired_lease_of_a_live_worker_is_not_stale_but_listed_apart(queue_db: Path) -> None:
    add_worker(queue_db, "alive", "-2 seconds")
    add_worker(queue_db, "silent", "-20 minutes")
    alive = add_task(queue_db, "leased", "-900 seconds", worker="alive")
    silent = add_task(queue_db, "processing", "-900 seconds", worker="silent")
    unknown = add_task(queue_db, "leased", "-900 seconds", worker="never-registered")
    nobody = add_task(queue_db, "leased", "-900 seconds", worker=None)
    alive_in_time = add_task(queue_db, "leased", "+60 seconds", worker="alive")
    manager = LeaseManager(queue_db)

    assert [task.id for task in manager.find_stale_leases(300)] == [silent, unknown, nobody]
    assert [task.id for task in manager.find_expired_live_leases(300)] == [alive]
    tasks = {task.id: task for task in manager.in_flight_tasks(300)}
    assert tasks[alive].lease_overdue and tasks[alive].worker_alive
    assert tasks[alive].expired_worker_alive and not tasks[alive].stale
    assert 1 <= tasks[alive].worker_heartbeat_age_seconds < 60
    assert tasks[silent].stale and not tasks[silent].worker_alive
    assert tasks[silent].worker_known and tasks[silent].worker_heartbeat_age_seconds >= 1199
    assert tasks[unknown].stale and not tasks[unknown].worker_known
    assert tasks[nobody].stale and not tasks[nobody].worker_known
    assert not tasks[alive_in_time].lease_overdue and not tasks[alive_in_time].stale
    assert not tasks[alive_in_time].expired_worker_alive
    # A silence shorter than the timeout keeps the worker alive; a shorter timeout does not.
    assert [task.id for task in manager.find_stale_leases(1)] == [alive, silent, unknown, nobody]


def test_requeue_and_its_preview_leave_the_task_of_a_live_worker_alone(queue_db: Path) -> None:
    add_worker(queue_db, "alive", "-2 seconds")
    add_worker(queue_db, "silent", "-20 minutes")
    alive = add_task(queue_db, "leased", "-900 seconds", worker="alive")
    silent = add_task(queue_db, "leased", "-900 seconds", worker="silent")
    manager = LeaseManager(queue_db)

    preview = manager.requeue_stale_leases(300, dry_run=True)
    assert (preview.task_ids, preview.expired_worker_alive_ids) == ([silent], [alive])
    result = manager.requeue_stale_leases(300)
    assert (result.task_ids, result.expired_worker_alive_ids) == ([silent], [alive])
    row = task_row(queue_db, alive)
    assert (row["status"], row["attempts"], row["locked_by"]) == ("leased", 0, "alive")
    assert logs_of(queue_db, alive) == []
    assert task_row(queue_db, silent)["status"] == "queued"


def test_a_heartbeat_text_sqlite_cannot_read_counts_as_silent(queue_db: Path) -> None:
    with closing_connection(connect(queue_db)) as connection:
        connection.execute("INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
                           "VALUES ('garbled', '{}', 'yesterday-ish')")
    task = add_task(queue_db, "leased", "-900 seconds", worker="garbled")
    assert [found.id for found in LeaseManager(queue_db).find_stale_leases(300)] == [task]


def test_heartbeats_in_iso_form_are_compared_as_times_not_text(queue_db: Path) -> None:
    """'2024-01-01T10:00:00' sorts after '2024-01-01 10:00:00' as text; as a time it is equal."""
    with closing_connection(connect(queue_db)) as connection:
        connection.execute("INSERT INTO workers (worker_id, capabilities, heartbeat_utc) VALUES "
                           "('iso-old', '{}', strftime('%Y-%m-%dT%H:%M:%S', 'now', '-1 hour'))")
    task = add_task(queue_db, "leased", "-900 seconds", worker="iso-old")
    assert [found.id for found in LeaseManager(queue_db).find_stale_leases(300)] == [task]


def test_requeue_tasks_can_spare_the_tasks_of_live_workers(queue_db: Path) -> None:
    add_worker(queue_db, "alive", "-2 seconds")
    add_worker(queue_db, "silent", "-20 minutes")
    alive = add_task(queue_db, "leased", "+600 seconds", worker="alive")
    silent = add_task(queue_db, "leased", "+600 seconds", worker="silent")
    unknown = add_task(queue_db, "leased", "-600 seconds", worker="unknown")
    manager = LeaseManager(queue_db)

    split = manager.task_workers([alive, silent, unknown, 999], 60)
    assert [task.id for task in split.alive] == [alive]
    assert [task.id for task in split.gone] == [silent, unknown]
    result = manager.requeue_tasks([alive, silent, unknown], spare_workers_seen_within=60)
    assert result.task_ids == [silent, unknown]
    assert task_row(queue_db, alive)["status"] == "leased"
    assert manager.requeue_tasks([alive]).task_ids == [alive]
