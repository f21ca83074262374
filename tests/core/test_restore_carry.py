"""A full restore that keeps the tasks created after the backup (core/restore/carry.py).

Real PrismQ queue files in tmp_path: a backup is taken, then the queue goes on (tasks
completed, deleted, new tasks with logs added), and the backup is restored with
``keep_newer_tasks``. The newer tasks must come through with their ids, rows and logs, the
rest must be the backup's, and no id may be handed out twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prismq import PrismQWorker, add_prismq_tasks, executed_twice, make_prismq_queue, prismq_connect

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.database import closing_connection
from queue_admin_gui.core.errors import QueueBackupError
from queue_admin_gui.core.restore.carry import NewerTasks, count_newer_tasks
from queue_admin_gui.core.restore.execute import ALL_WORKERS

# Nothing here tells workers at work: the gate watches for commits a moment, not a second.
pytestmark = pytest.mark.usefixtures("short_commit_watch")

OLD_TASKS = 30
NEW_TASKS = 20
WAIT_SECONDS = 60.0


def rows(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing_connection(sqlite3.connect(path, timeout=30)) as connection:
        return [tuple(row) for row in connection.execute(sql, params)]


def tasks(path: Path, where: str = "1") -> list[tuple[Any, ...]]:
    return rows(path, "SELECT id, type, payload, status, attempts, idempotency_key, "  # noqa: S608
                f"created_at_utc, finished_at_utc FROM task_queue WHERE {where} ORDER BY id")


def logs(path: Path, where: str = "1") -> list[tuple[Any, ...]]:
    return rows(path, "SELECT log_id, task_id, level, message FROM task_logs "  # noqa: S608
                f"WHERE {where} ORDER BY log_id")


def add_logs(connection: sqlite3.Connection, task_ids: list[int], per_task: int) -> None:
    connection.executemany("INSERT INTO task_logs(task_id, level, message) VALUES (?, ?, ?)",
                           [(task_id, "INFO", f"step {n} of {task_id}")
                            for task_id in task_ids for n in range(per_task)])
    connection.commit()


def counter(path: Path, table: str = "task_queue") -> int:
    return int(rows(path, "SELECT seq FROM sqlite_sequence WHERE name = ?", table)[0][0])


@pytest.fixture
def incident(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A queue, its backup, and the queue after a bad night: (live, backup folder, backup)."""
    live = make_prismq_queue(tmp_path / "queue dir" / "queue.db", OLD_TASKS, "old")
    folder = tmp_path / "backups"
    with closing_connection(prismq_connect(live)) as connection:
        add_logs(connection, [1, 2, 3], 2)
    backup = QueueBackup(live, folder).create_backup("before")
    with closing_connection(prismq_connect(live)) as connection:
        connection.execute("UPDATE task_queue SET status = 'failed', error_message = 'bad "
                           "deploy' WHERE id <= 10")
        connection.execute("DELETE FROM task_logs WHERE task_id BETWEEN 11 AND 15")
        connection.execute("DELETE FROM task_queue WHERE id BETWEEN 11 AND 15")
        connection.commit()
        add_prismq_tasks(connection, NEW_TASKS, task_type="new", key_prefix="new")
        add_logs(connection, list(range(OLD_TASKS + 1, OLD_TASKS + NEW_TASKS + 1)), 3)
        connection.execute("UPDATE task_queue SET status = 'completed', finished_at_utc = "
                           "datetime('now') WHERE id > ? AND id % 2 = 0", (OLD_TASKS,))
        connection.commit()
    return live, folder, backup


def test_newer_tasks_are_kept_with_ids_rows_and_logs(
        incident: tuple[Path, Path, Path]) -> None:
    live, folder, backup = incident
    newer = f"id > {OLD_TASKS}"
    newer_rows, newer_logs = tasks(live, newer), logs(live, f"task_id > {OLD_TASKS}")
    backup_rows, backup_logs = tasks(backup), logs(backup)
    live_counter = counter(live)
    assert count_newer_tasks(backup, live) == NewerTasks(OLD_TASKS, NEW_TASKS)

    done = QueueBackup(live, folder).restore_backup(backup, keep_newer_tasks=True)

    assert done.check is not None and done.check.ok, done.check
    assert done.carried is not None and done.carry_problem is None
    assert (done.carried.tasks, done.carried.logs, done.carried.above_id) == (
        NEW_TASKS, NEW_TASKS * 3, OLD_TASKS)
    assert done.carried.task_ids == list(range(OLD_TASKS + 1, OLD_TASKS + NEW_TASKS + 1))
    assert tasks(live, newer) == newer_rows and len(newer_rows) == NEW_TASKS
    assert logs(live, f"task_id > {OLD_TASKS}") == newer_logs
    assert tasks(live, f"id <= {OLD_TASKS}") == backup_rows  # the rest is the backup's
    assert logs(live, f"task_id <= {OLD_TASKS}") == backup_logs
    assert counter(live) >= live_counter
    with closing_connection(prismq_connect(live)) as connection:
        add_prismq_tasks(connection, 1, task_type="after", key_prefix="after")
    assert rows(live, "SELECT id FROM task_queue WHERE type = 'after'") == [(live_counter + 1,)]
    # The safety backup holds the queue exactly as it was before the restore.
    assert done.safety_backup is not None
    assert tasks(done.safety_backup, newer) == newer_rows
    assert rows(done.safety_backup, "SELECT count(*) FROM task_queue WHERE status = "
                "'failed'") == [(10,)]


def test_without_the_option_the_newer_tasks_go(incident: tuple[Path, Path, Path]) -> None:
    live, folder, backup = incident
    done = QueueBackup(live, folder).restore_backup(backup)
    assert done.carried is None
    assert tasks(live) == tasks(backup)


def test_the_mark_is_the_counter_not_the_highest_id(tmp_path: Path) -> None:
    live = make_prismq_queue(tmp_path / "queue.db", 10, "old")
    with closing_connection(prismq_connect(live)) as connection:
        connection.execute("DELETE FROM task_queue WHERE id > 8")  # 9 and 10 handed out
        connection.commit()
    backup = QueueBackup(live, tmp_path / "b").create_backup()
    with closing_connection(prismq_connect(live)) as connection:
        add_prismq_tasks(connection, 3, task_type="new", key_prefix="new")
    assert rows(live, "SELECT min(id) FROM task_queue WHERE type = 'new'") == [(11,)]
    assert count_newer_tasks(backup, live) == NewerTasks(10, 3)
    done = QueueBackup(live, tmp_path / "b").restore_backup(backup, keep_newer_tasks=True)
    assert done.carried is not None and done.carried.task_ids == [11, 12, 13]
    assert rows(live, "SELECT id FROM task_queue ORDER BY id") == [
        (n,) for n in (*range(1, 9), 11, 12, 13)]


def test_a_newer_task_whose_key_a_restored_task_holds_is_not_kept(tmp_path: Path) -> None:
    live = make_prismq_queue(tmp_path / "queue.db", 10, "old")
    backup = QueueBackup(live, tmp_path / "b").create_backup()
    with closing_connection(prismq_connect(live)) as connection:
        connection.execute("DELETE FROM task_queue WHERE id = 5")
        connection.commit()
        # The producer submits the deleted task's key again, and one new task.
        connection.execute("INSERT INTO task_queue(type, payload, idempotency_key) "
                           "VALUES ('again', '{}', 'k-5')")
        connection.execute("INSERT INTO task_queue(type, payload, idempotency_key) "
                           "VALUES ('fresh', '{}', 'fresh-1')")
        connection.commit()
        add_logs(connection, [11, 12], 2)
    done = QueueBackup(live, tmp_path / "b").restore_backup(backup, keep_newer_tasks=True)
    assert done.carried is not None
    assert done.carried.task_ids == [12]
    assert [c.as_dict() for c in done.carried.conflicts] == [
        {"id": 11, "type": "again", "idempotency_key": "k-5", "restored_task_id": 5}]
    assert "belongs to restored task 5" in done.carried.sentence()
    assert rows(live, "SELECT id, type FROM task_queue WHERE idempotency_key = 'k-5'") == [
        (5, "old")]
    assert logs(live, "task_id = 11") == [] and len(logs(live, "task_id = 12")) == 2
    # The skipped task's id is never handed out again; it stays in the safety backup.
    assert counter(live) == 12
    assert done.safety_backup is not None
    assert rows(done.safety_backup, "SELECT type FROM task_queue WHERE id = 11") == [("again",)]


def test_a_log_id_the_backup_already_used_gets_a_new_one(tmp_path: Path) -> None:
    """A file of another lineage: the live logs' ids overlap the backup's."""
    backup_source = make_prismq_queue(tmp_path / "other.db", 5, "old")
    with closing_connection(prismq_connect(backup_source)) as connection:
        add_logs(connection, [1, 2], 2)  # log ids 1..4
    backup = QueueBackup(backup_source, tmp_path / "b").create_backup()
    live = make_prismq_queue(tmp_path / "queue.db", 7, "mine")
    with closing_connection(prismq_connect(live)) as connection:
        add_logs(connection, [6, 7], 1)  # log ids 1..2, colliding with the backup's
    done = QueueBackup(live, tmp_path / "b").restore_backup(backup, keep_newer_tasks=True)
    assert done.carried is not None
    assert (done.carried.task_ids, done.carried.logs, done.carried.logs_renumbered) == (
        [6, 7], 2, 2)
    assert [row[1:] for row in logs(live, "task_id > 5")] == [
        (6, "INFO", "step 0 of 6"), (7, "INFO", "step 0 of 7")]
    assert len(logs(live)) == 6 and len({row[0] for row in logs(live)}) == 6


def test_a_missing_live_database_carries_nothing(tmp_path: Path) -> None:
    source = make_prismq_queue(tmp_path / "source.db", 5, "old")
    backup = QueueBackup(source, tmp_path / "b").create_backup()
    target = tmp_path / "new" / "queue.db"
    done = QueueBackup(target, tmp_path / "b").restore_backup(backup, keep_newer_tasks=True)
    assert done.created and done.carry_problem is None
    assert len(tasks(target)) == 5


def test_a_live_file_that_cannot_be_opened_says_nothing_was_kept(tmp_path: Path) -> None:
    source = make_prismq_queue(tmp_path / "source.db", 5, "old")
    backup = QueueBackup(source, tmp_path / "b").create_backup()
    target = tmp_path / "queue.db"
    target.write_bytes(b"not a database at all" * 200)
    done = QueueBackup(target, tmp_path / "b").restore_backup(backup, keep_newer_tasks=True)
    assert done.moved_aside and done.carried is None
    assert done.carry_problem is not None and "salvage" in done.carry_problem


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_newer_tasks_are_kept_while_a_prismq_worker_works(tmp_path: Path) -> None:
    """The worker's completions of newer tasks survive the restore; none runs twice."""
    live = make_prismq_queue(tmp_path / "queue.db", OLD_TASKS, "old")
    with closing_connection(prismq_connect(live)) as connection:
        connection.execute("UPDATE task_queue SET status = 'completed'")
        connection.commit()
    folder = tmp_path / "backups"
    backup = QueueBackup(live, folder).create_backup()
    with closing_connection(prismq_connect(live)) as connection:
        add_prismq_tasks(connection, NEW_TASKS, task_type="new", key_prefix="new")
    worker = PrismQWorker(live, "w1", tmp_path / "w1.log", work_seconds=0.05)
    try:
        worker.wait_started()
        wait_for(lambda: len(worker.executed()) >= 5, "the worker to complete tasks")
        done = QueueBackup(live, folder).restore_backup(
            backup, keep_newer_tasks=True, accepted_workers=ALL_WORKERS)
        assert done.carried is not None and done.carried.tasks == NEW_TASKS
        ids = [row[0] for row in rows(live, "SELECT id FROM task_queue ORDER BY id")]
        assert ids == list(range(1, OLD_TASKS + NEW_TASKS + 1))
        wait_for(lambda: rows(live, "SELECT count(*) FROM task_queue WHERE status = "
                              "'completed'") == [(OLD_TASKS + NEW_TASKS,)],
                 "the worker to complete every newer task")
    finally:
        worker.stop()
    assert worker.errors() == []
    assert executed_twice([worker]) == []
    assert sorted(worker.executed()) == list(range(OLD_TASKS + 1, OLD_TASKS + NEW_TASKS + 1))
    assert rows(live, "PRAGMA integrity_check") == [("ok",)]


def test_newer_tasks_are_kept_outside_wal_mode(tmp_path: Path) -> None:
    """Outside WAL mode the restore holds the exclusive lock and reads the file unlocked."""
    live = make_prismq_queue(tmp_path / "queue.db", OLD_TASKS, "old")
    backup = QueueBackup(live, tmp_path / "b").create_backup()
    with closing_connection(sqlite3.connect(live)) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
        add_prismq_tasks(connection, NEW_TASKS, task_type="new", key_prefix="new")
        add_logs(connection, [OLD_TASKS + 1], 2)
    newer_rows = tasks(live, f"id > {OLD_TASKS}")
    done = QueueBackup(live, tmp_path / "b").restore_backup(backup, keep_newer_tasks=True)
    assert done.carried is not None and (done.carried.tasks, done.carried.logs) == (NEW_TASKS, 2)
    assert tasks(live, f"id > {OLD_TASKS}") == newer_rows
    assert rows(live, "PRAGMA journal_mode") == [("delete",)]


def test_a_carry_that_fails_leaves_the_live_database_as_it_was(
        incident: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The carry is part of the restore's transaction: when it fails, nothing is written."""
    live, folder, backup = incident
    before, before_logs = tasks(live), logs(live)

    def refuse(*_args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr("queue_admin_gui.core.restore.carry._carry_logs", refuse)
    with pytest.raises(QueueBackupError) as raised:
        QueueBackup(live, folder).restore_backup(backup, keep_newer_tasks=True)
    assert "could not be carried" in raised.value.message
    assert "nothing was changed" in raised.value.message
    assert tasks(live) == before and logs(live) == before_logs
    assert not list((folder / "pre-restore").glob("*.db"))  # the unneeded safety copy is gone
