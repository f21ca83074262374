"""Restore against PrismQ itself: its queue, its worker loop (no heartbeat row), its views.

The CLI runs as its own process, as an administrator runs it. PrismQ's workers are seen by
the file they keep open and the leases they hold; once they stop, the restore goes at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prismq import (
    PRISMQ_VIEWS,
    PrismQWorker,
    executed_twice,
    make_prismq_queue,
)

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.database import QueueDatabase
from queue_admin_gui.core.measurements.holders import find_holders

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 60.0


def run_cli(backup_dir: Path, *argv: str | Path) -> tuple[int, dict[str, Any], str]:
    """``queue-admin-cli --json ...`` as its own process: exit code, JSON, stderr."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                      env.get("PYTHONPATH")]))
    env["QUEUE_ADMIN_BACKUP_DIR"] = str(backup_dir)
    done = subprocess.run([sys.executable, "-m", "queue_admin_gui.cli", "--json",
                           *map(str, argv)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    return done.returncode, json.loads(done.stdout), done.stderr


def read_one(path: Path, sql: str) -> Any:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchone()[0]
    finally:
        connection.close()


def views(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return sorted(str(row[0]) for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'view'"))
    finally:
        connection.close()


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_prismq_workers_refuse_the_cli_restore_and_it_goes_once_they_stop(
        tmp_path: Path) -> None:
    live, folder = tmp_path / "queue.db", tmp_path / "backups"
    make_prismq_queue(live, tasks=300)
    backup = QueueBackup(live, folder).create_backup("before")
    workers = [PrismQWorker(live, f"engine-{n}", tmp_path / f"engine-{n}.log",
                            work_seconds=0.05) for n in (1, 2)]
    try:
        for worker in workers:
            worker.wait_started()
        wait_until(lambda: sum(len(w.executed()) for w in workers) >= 10, "work to start")
        code, data, _ = run_cli(folder, "restore", backup, "--yes", "--db", live)
        done_when_refused = sum(len(w.executed()) for w in workers)
        wait_until(lambda: sum(len(w.executed()) for w in workers) > done_when_refused + 5,
                   "the workers to go on after the refusal")
    finally:
        for worker in workers:
            worker.stop()
    assert code == 1 and data["kind"] == "workers_active"
    for worker in workers:
        assert f"(PID {worker.process.pid})" in data["error"]
    assert "2 programs have the file open" in data["error"]
    assert executed_twice(workers) == []
    assert all(worker.errors() == [] for worker in workers)
    assert not (folder / "pre-restore").exists() or not list(
        (folder / "pre-restore").glob("*.db")), "a refused restore took a safety backup"
    completed = read_one(live, "SELECT count(*) FROM task_queue WHERE status = 'completed'")
    assert completed >= done_when_refused

    # The workers have stopped (their connections closed): the restore goes at once.
    code, data, err = run_cli(folder, "restore", backup, "--yes", "--db", live)
    assert code == 0, err
    assert data["check_problems"] == [] and data["workers_seen"] == []
    assert read_one(live, "SELECT count(*) FROM task_queue WHERE status = 'completed'") == 0
    assert views(live) == sorted(PRISMQ_VIEWS)
    assert read_one(Path(data["safety_backup"]),
                    "SELECT count(*) FROM task_queue WHERE status = 'completed'") == completed


@pytest.mark.slow
def test_a_crashed_prismq_workers_lease_is_reported_and_does_not_block(tmp_path: Path) -> None:
    """kill -9 leaves an unexpired lease that no program holds: named, not waited for."""
    live, folder = tmp_path / "queue.db", tmp_path / "backups"
    make_prismq_queue(live, tasks=20)
    backup = QueueBackup(live, folder).create_backup("before")
    worker = PrismQWorker(live, "engine-crashed", tmp_path / "crashed.log", work_seconds=600,
                          lease_seconds=3600)
    try:
        worker.wait_started()
        wait_until(lambda: read_one(live, "SELECT count(*) FROM task_queue "
                                          "WHERE status = 'leased'") == 1, "a lease")
    finally:
        worker.kill()
    code, data, err = run_cli(folder, "restore", backup, "--yes", "--db", live)
    if find_holders(live).hidden_processes:
        # Processes of other users could hold the file unseen: the lease must count.
        assert code == 1 and data["kind"] == "workers_active"
        assert "1 lease held by engine-crashed until" in data["error"]
        return
    assert code == 0, err
    seen = " ".join(data["workers_seen"])
    assert "1 lease held by engine-crashed until" in seen and "stopped" in seen
    assert read_one(live, "SELECT count(*) FROM task_queue WHERE status = 'leased'") == 0


@pytest.mark.slow
def test_a_heartbeat_older_than_a_few_seconds_does_not_hold_the_restore(
        tmp_path: Path) -> None:
    """A worker that reported 20 s ago and has let go of the file: no minute-long wait."""
    live, folder = tmp_path / "queue.db", tmp_path / "backups"
    make_prismq_queue(live, tasks=5)
    backup = QueueBackup(live, folder).create_backup("before")
    connection = sqlite3.connect(live)
    connection.execute("INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
                       "VALUES ('reporter', '{}', datetime('now', '-20 seconds'))")
    connection.commit()
    connection.close()
    code, data, err = run_cli(folder, "restore", backup, "--yes", "--db", live)
    assert code == 0, err
    assert any("reporter" in note for note in data["workers_seen"])
    # A heartbeat of this very moment still holds it: someone is at work.
    connection = sqlite3.connect(live)
    connection.execute("INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
                       "VALUES ('reporter-now', '{}', datetime('now'))")
    connection.commit()
    connection.close()
    code, data, _ = run_cli(folder, "restore", backup, "--yes", "--db", live)
    assert code == 1 and data["kind"] == "workers_active"
    assert "reporter-now" in data["error"]


WRITER = r'''
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
log = open(sys.argv[2], "a", buffering=1)
stop = sys.argv[3]
import os
n = 0
print("ready", flush=True)
while not os.path.exists(stop):
    try:
        cursor = connection.execute(
            "INSERT INTO task_queue (type, payload, idempotency_key) VALUES ('w', ?, ?)",
            ('{"n": %d}' % n, "w-%d" % n))
        log.write(f"{cursor.lastrowid} w-{n}\n")
        n += 1
    except sqlite3.Error as error:
        log.write(f"error {error}\n")
    time.sleep(0.002)
'''


def committed_keys(log: Path) -> list[tuple[int, str]]:
    pairs = []
    for line in log.read_text(encoding="utf-8").splitlines():
        assert not line.startswith("error"), line
        task_id, key = line.split()
        pairs.append((int(task_id), key))
    return pairs


def keys_in(path: Path) -> dict[int, str]:
    connection = sqlite3.connect(path)
    try:
        return {int(row[0]): str(row[1]) for row in connection.execute(
            "SELECT id, idempotency_key FROM task_queue WHERE type = 'w'")}
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.parametrize("bigger", ["backup", "live"])
def test_restore_in_rollback_journal_mode_with_a_writer_loses_no_commit(
        tmp_path: Path, bigger: str) -> None:
    """journal_mode=DELETE and a commit every 2 ms: the restore holds one lock the whole way."""
    live, source, folder = tmp_path / "queue.db", tmp_path / "source.db", tmp_path / "backups"
    make_prismq_queue(live, tasks=4000 if bigger == "live" else 300)
    make_prismq_queue(source, tasks=4000 if bigger == "backup" else 300, task_type="old")
    backup = QueueBackup(source, folder).create_backup("source")
    connection = sqlite3.connect(live)
    assert connection.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    connection.close()
    log, stop = tmp_path / "writer.log", tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(live), str(log), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 50,
                   "the writer's commits")
        refused_code, refused, _ = run_cli(folder, "restore", backup, "--yes", "--db", live)
        code, data, err = run_cli(folder, "restore", backup, "--yes", "--db", live,
                                  "--wait", "10", "--allow-live-workers")
        count = len(log.read_text().splitlines())
        wait_until(lambda: len(log.read_text().splitlines()) >= count + 50,
                   "commits after the restore")
    finally:
        stop.touch()
        writer.communicate(timeout=60)
    assert refused_code == 1 and refused["kind"] == "workers_active"
    assert f"(PID {writer.pid})" in refused["error"]
    assert code == 0, err
    assert data["check_problems"] == []
    committed = committed_keys(log)
    kept, now = keys_in(Path(data["safety_backup"])), keys_in(live)
    lost = [pair for pair in committed if kept.get(pair[0]) != pair[1]
            and now.get(pair[0]) != pair[1]]
    assert lost == []
    after = [task_id for task_id, key in committed if now.get(task_id) == key]
    assert after and min(after) > max(kept)
    assert read_one(live, "SELECT count(*) FROM task_queue WHERE type = 'old'") == (
        4000 if bigger == "backup" else 300)
    assert read_one(live, "PRAGMA integrity_check") == "ok"


@pytest.fixture(params=["prismq", "tool"])
def queue_backup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[str]]:
    """A verified backup of 50 tasks, and the views it holds: PrismQ's queue, the tool's."""
    if request.param == "tool":
        source = tmp_path / "source.db"
        with QueueDatabase(source) as db:
            db.initialize_schema()
            with db.transaction() as connection:
                connection.executemany("INSERT INTO task_queue (type, payload) VALUES (?, ?)",
                                       [("render", "{}")] * 50)
        return QueueBackup(source, tmp_path / "backups").create_backup("tool"), views(source)
    source = make_prismq_queue(tmp_path / "source.db", tasks=50)
    return (QueueBackup(source, tmp_path / "backups").create_backup("prismq"),
            sorted(PRISMQ_VIEWS))


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is no database at all\n" * 400)


def _truncated(path: Path) -> None:
    make_prismq_queue(path, tasks=2000)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def _schema_broken(path: Path) -> None:
    make_prismq_queue(path, tasks=10)
    connection = sqlite3.connect(path)
    connection.execute("DROP TABLE workers")
    connection.commit()
    connection.close()


def test_restore_into_a_missing_database_creates_it(
        tmp_path: Path, queue_backup: tuple[Path, list[str]]) -> None:
    backup, expected_views = queue_backup
    live = tmp_path / "new place" / "queue.db"
    live.parent.mkdir()
    code, data, err = run_cli(tmp_path / "backups", "restore", backup, "--yes",
                              "--db", live)
    assert code == 0, err
    assert data["created"] is True and data["check_problems"] == []
    assert read_one(live, "SELECT count(*) FROM task_queue") == 50
    assert views(live) == expected_views
    assert read_one(live, "PRAGMA journal_mode") == "wal"


@pytest.mark.slow
@pytest.mark.parametrize("spoil", [_garbage, _truncated, _schema_broken])
def test_restore_into_a_damaged_database_keeps_it_aside(
        tmp_path: Path, queue_backup: tuple[Path, list[str]], spoil: Any) -> None:
    backup, expected_views = queue_backup
    live = tmp_path / "queue.db"
    spoil(live)
    spoiled = live.read_bytes()
    code, data, err = run_cli(tmp_path / "backups", "restore", backup, "--yes",
                              "--db", live)
    assert code == 0, err
    assert data["check_problems"] == []
    kept = [Path(path) for path in data["moved_aside"]]
    assert kept and kept[0].read_bytes() == spoiled, "the damaged file was not kept whole"
    assert read_one(live, "SELECT count(*) FROM task_queue") == 50
    assert views(live) == expected_views


@pytest.mark.slow
def test_restore_refuses_a_database_that_is_no_queue_at_all(
        tmp_path: Path, queue_backup: tuple[Path, list[str]]) -> None:
    backup, _ = queue_backup
    live = tmp_path / "inventory.db"
    connection = sqlite3.connect(live)
    connection.execute("CREATE TABLE parts (id INTEGER PRIMARY KEY, name TEXT)")
    connection.commit()
    connection.close()
    code, data, _ = run_cli(tmp_path / "backups", "restore", backup, "--yes",
                            "--db", live)
    assert code == 2 and data["kind"] == "not_a_queue"
    assert read_one(live, "SELECT count(*) FROM parts") == 0
    assert not list(tmp_path.glob("inventory.db.corrupt-*"))
