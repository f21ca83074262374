"""A restore with a worker process committing throughout loses no committed write.

Every task the worker saw committed is either in the safety backup (committed before the
restore took the lock) or in the restored database (committed after it), and no task id
handed out before the restore is handed out again after it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

from queue_workload import DEADLINE_SECONDS, fill_queue, spawn, wait_ready

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.backup_store import STAGE_FINISH
from queue_admin_gui.core.backups.verify import STAGE_INTEGRITY
from queue_admin_gui.core.restore.gate import ALL_WORKERS
from queue_admin_gui.core.restore.staging import STAGE_STAGING


def _tokens(path: Path) -> dict[int, str]:
    connection = sqlite3.connect(path)
    try:
        return {int(row[0]): json.loads(row[1])["token"] for row in connection.execute(
            "SELECT id, payload FROM task_queue WHERE type = 'committed'")}
    finally:
        connection.close()


def _committed(log: Path) -> list[tuple[int, str]]:
    pairs = []
    for line in log.read_text(encoding="utf-8").splitlines():
        task_id, token = line.split()
        pairs.append((int(task_id), token))
    return pairs


def _wait_for_commits(log: Path, count: int, worker: subprocess.Popen[str],
                      at_most: float | None = None) -> None:
    """Wait until the worker has logged ``count`` commits.

    Without ``at_most`` the worker must get there; with it, waiting ends quietly after
    that many seconds (for a moment when the worker may rightly be held off).
    """
    deadline = time.monotonic() + (at_most or DEADLINE_SECONDS)
    while len(_committed(log)) < count:
        assert worker.poll() is None, "the worker stopped"
        if time.monotonic() >= deadline:
            assert at_most is not None, "the worker stopped committing"
            return
        time.sleep(0.01)


def test_restore_loses_no_write_committed_while_it_runs(tmp_path: Path) -> None:
    live, source = tmp_path / "queue.db", tmp_path / "other.db"
    folder = tmp_path / "backups"
    fill_queue(live, 3000, "old")
    fill_queue(source, 500, "new")
    backup = QueueBackup(source, folder).create_backup("new")
    stop, log = tmp_path / "stop", tmp_path / "commits.log"
    worker = spawn("committer", live, stop, log)
    try:
        wait_ready(worker)
        engine = QueueBackup(live, folder, pages_per_step=8)
        started = len(_committed(log))
        waited: set[str] = set()

        def progress(done: int, total: int, stage: str) -> None:
            # Before the restore holds the lock, let the worker commit more, so writes
            # land while the restore is under way and before it writes.
            if stage in (STAGE_STAGING, STAGE_INTEGRITY) and stage not in waited:
                waited.add(stage)
                _wait_for_commits(log, len(_committed(log)) + 10, worker)
            if stage == STAGE_FINISH and stage not in waited:
                # The safety backup is done. A restore that let workers commit from here
                # on would lose those writes; this one holds them off, so the worker may
                # commit nothing for the whole second.
                waited.add(stage)
                _wait_for_commits(log, len(_committed(log)) + 5, worker, at_most=1.0)

        result = engine.restore_backup(backup, progress=progress,
                                       accepted_workers=ALL_WORKERS)
        assert waited == {STAGE_STAGING, STAGE_INTEGRITY, STAGE_FINISH}
        _wait_for_commits(log, len(_committed(log)) + 20, worker)
    finally:
        stop.touch()
        worker.communicate(timeout=60)
    assert worker.returncode == 0
    committed = _committed(log)
    during = committed[started:]
    assert len(during) >= 20
    assert result.safety_backup is not None
    kept, now = _tokens(result.safety_backup), _tokens(live)
    lost = [(task_id, token) for task_id, token in committed
            if kept.get(task_id) != token and now.get(task_id) != token]
    assert lost == []
    # Ids are never handed out twice: the counter survived the restore.
    ids = [task_id for task_id, _ in committed]
    assert len(ids) == len(set(ids))
    after = [task_id for task_id, token in committed if now.get(task_id) == token]
    assert after, "the worker committed nothing after the restore"
    assert min(after) > max(kept)
    assert {token for _, token in during} & set(kept.values()), \
        "no write committed during the restore reached the safety backup"
    assert result.counters_kept["task_queue"] >= max(kept)


def test_workers_see_only_old_or_new_and_are_told_busy_at_most(tmp_path: Path) -> None:
    """The worker never fails: it waits within its busy timeout while the restore holds."""
    live, source = tmp_path / "queue.db", tmp_path / "other.db"
    fill_queue(live, 1000, "old")
    fill_queue(source, 200, "new")
    folder = tmp_path / "backups"
    backup = QueueBackup(source, folder).create_backup()
    stop, log = tmp_path / "stop", tmp_path / "commits.log"
    worker = spawn("committer", live, stop, log)
    try:
        wait_ready(worker)
        result = QueueBackup(live, folder).restore_backup(backup, accepted_workers=ALL_WORKERS)
    finally:
        stop.touch()
        _, errors = worker.communicate(timeout=60)
    assert worker.returncode == 0, errors
    assert result.held_seconds > 0


def _put_index_out_of_step(path: Path) -> None:
    """Damage only the agreement of one index with its table: the file opens and writes."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA writable_schema=ON")
        connection.execute(
            "UPDATE sqlite_master SET sql = replace(sql, 'task_queue(type, status)', "
            "'task_queue(status, type)') WHERE name = 'ix_task_type_status'")
        connection.commit()
    finally:
        connection.close()


def test_a_damaged_live_database_with_a_worker_writing_loses_nothing(tmp_path: Path) -> None:
    """Damaged, but open in a worker: written in place; every commit is kept somewhere."""
    live, source = tmp_path / "queue.db", tmp_path / "other.db"
    folder = tmp_path / "backups"
    fill_queue(live, 2000, "old")
    fill_queue(source, 300, "new")
    backup = QueueBackup(source, folder).create_backup("new")
    _put_index_out_of_step(live)
    stop, log = tmp_path / "stop", tmp_path / "commits.log"
    worker = spawn("committer", live, stop, log)
    try:
        wait_ready(worker)
        result = QueueBackup(live, folder, pages_per_step=8).restore_backup(
            backup, accepted_workers=ALL_WORKERS)
        _wait_for_commits(log, len(_committed(log)) + 10, worker)
    finally:
        stop.touch()
        _, errors = worker.communicate(timeout=60)
    assert worker.returncode == 0, errors
    assert result.moved_aside == [] and result.damaged_copy is not None
    kept, now = _tokens(result.damaged_copy), _tokens(live)
    committed = _committed(log)
    assert [pair for pair in committed
            if kept.get(pair[0]) != pair[1] and now.get(pair[0]) != pair[1]] == []
    after = [task_id for task_id, token in committed if now.get(task_id) == token]
    assert after and min(after) > max(kept)
    assert not list(tmp_path.glob("queue.db.corrupt-*"))
