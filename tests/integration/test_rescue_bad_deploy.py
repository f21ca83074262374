"""The bad deploy, with real processes: rescue from an archive instant while workers run.

The archive runs on a PrismQ queue. After instant T a script fails every queued ``alpha``
task and deletes 200 ``beta`` tasks (with their logs), while a PrismQ worker process keeps
completing ``gamma`` tasks and a producer process keeps adding ``delta`` tasks. Then
``queue-admin-cli rescue --at T --archive DIR --type alpha --type beta --yes``, run as its own
process while the worker and the producer go on, must put every damaged task back exactly as
it was at T, keep every completion and every new task, reuse no id, cost the worker no error,
and its undo must put the pre-rescue rows back exactly.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prismq import (
    PrismQWorker,
    add_prismq_tasks,
    executed_twice,
    make_prismq_queue,
    prismq_connect,
)
from rescue_scenario import task_rows

from queue_admin_gui.core.archive import Archiver, archive_status, rebuild_to_time

pytestmark = pytest.mark.slow

TIMEOUT = 120.0
REPO_ROOT = Path(__file__).resolve().parents[2]

#: A producer as PrismQ's clients enqueue: one task per IMMEDIATE transaction, its id logged.
PRODUCER_SCRIPT = r'''
import os, sqlite3, sys, time
db_path, stop_file, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
connection = sqlite3.connect(db_path, timeout=5.0, isolation_level=None)
connection.execute("PRAGMA busy_timeout = 5000")
n = 0
with open(log_path, "a", buffering=1) as log:
    log.write("started\n")
    while not os.path.exists(stop_file):
        n += 1
        try:
            connection.execute("BEGIN IMMEDIATE")
            new_id = connection.execute(
                "INSERT INTO task_queue (type, payload, compatibility, idempotency_key)"
                " VALUES ('delta', ?, '{}', ?) RETURNING id",
                (f'{{"n": {n}}}', f"delta-{os.getpid()}-{n}")).fetchone()[0]
            connection.execute("COMMIT")
            log.write(f"{new_id}\n")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            log.write(f"error {error}\n")
        time.sleep(0.01)
    log.write("stopped\n")
'''

#: The bad deploy: every queued alpha task failed, 200 beta tasks deleted with their logs.
BAD_SCRIPT = r'''
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=5.0, isolation_level=None)
connection.execute("PRAGMA foreign_keys = ON")
connection.execute("BEGIN IMMEDIATE")
connection.execute("UPDATE task_queue SET status = 'failed', attempts = attempts + 1,"
                   " error_message = 'handler v2 crashed', updated_at_utc = datetime('now')"
                   " WHERE type = 'alpha' AND status = 'queued'")
doomed = "SELECT id FROM task_queue WHERE type = 'beta' ORDER BY id LIMIT 200"
connection.execute(f"DELETE FROM task_logs WHERE task_id IN ({doomed})")
connection.execute(f"DELETE FROM task_queue WHERE id IN ({doomed})")
connection.execute("COMMIT")
'''


def wait_until(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def produced(path: Path) -> list[int]:
    return [int(line) for line in lines(path) if line.isdigit()]


def rows_of_types(path: Path, *types: str) -> dict[int, tuple]:
    rows = task_rows(path)
    return {task_id: row for task_id, row in rows.items() if row[1] in types}


def run_cli(*argv: object) -> subprocess.CompletedProcess[str]:
    """``queue-admin-cli`` as its own process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "queue_admin_gui.cli", *map(str, argv)],
                          capture_output=True, text=True, env=env, timeout=TIMEOUT,
                          check=False)


@pytest.mark.slow
def test_rescue_from_an_instant_puts_back_only_the_damage_while_workers_run(
        tmp_path: Path) -> None:
    live = make_prismq_queue(tmp_path / "queue" / "queue.db")
    connection = prismq_connect(live)
    add_prismq_tasks(connection, 300, "alpha", key_prefix="alpha")
    add_prismq_tasks(connection, 400, "beta", key_prefix="beta")
    add_prismq_tasks(connection, 400, "gamma", key_prefix="gamma")
    connection.execute("BEGIN IMMEDIATE")
    # alpha and beta are scheduled for later: the worker only runs gamma (and new) tasks
    connection.execute("UPDATE task_queue SET run_after_utc = datetime('now', '+1 day')"
                       " WHERE type IN ('alpha', 'beta')")
    connection.execute("INSERT INTO task_logs (task_id, level, message) SELECT id, 'info',"
                       " 'scheduled' FROM task_queue WHERE type = 'beta'")
    connection.commit()
    connection.close()

    folder, backups = tmp_path / "archive", tmp_path / "backups"
    archiver = Archiver(live, folder)
    archiver.start()
    stop = tmp_path / "stop"
    producer_log = tmp_path / "producer.log"
    producer_script = tmp_path / "producer.py"
    producer_script.write_text(PRODUCER_SCRIPT, encoding="utf-8")
    worker = PrismQWorker(live, "worker-1", tmp_path / "worker.log", work_seconds=0.005)
    producer = subprocess.Popen([sys.executable, str(producer_script), str(live), str(stop),
                                 str(producer_log)])
    try:
        wait_until(lambda: archiver.status().generation is not None
                   and not archiver.status().snapshot_pending, "a restorable generation")
        worker.wait_started()
        wait_until(lambda: len(worker.executed()) >= 20 and len(produced(producer_log)) >= 20,
                   "work before the deploy")
        at_t = rows_of_types(live, "alpha", "beta")
        moment = time.time()
        time.sleep(0.2)  # T lies clearly between two commits of the workload
        bad = subprocess.run([sys.executable, "-c", BAD_SCRIPT, str(live)], timeout=TIMEOUT,
                             check=False)
        assert bad.returncode == 0
        pre_rescue = rows_of_types(live, "alpha", "beta")
        assert len(pre_rescue) == 300 + 200
        done_before_rescue = len(worker.executed())
        wait_until(lambda: len(worker.executed()) >= done_before_rescue + 20,
                   "work after the deploy")
        wait_until(lambda: (archive_status(folder).latest or 0) > moment + 0.5,
                   "the archive to pass T")

        instant = datetime.fromtimestamp(moment, timezone.utc).isoformat()
        rescue = run_cli("--db", live, "rescue", "--at", instant, "--archive", folder,
                         "--type", "alpha", "--type", "beta", "--yes", "--dir", backups,
                         "--json")
        assert rescue.returncode == 0, rescue.stdout + rescue.stderr
        report = json.loads(rescue.stdout)
        executed_at_rescue = set(worker.executed())
        produced_at_rescue = set(produced(producer_log))
        after_rescue = rows_of_types(live, "alpha", "beta")
        wait_until(lambda: len(worker.executed()) >= len(executed_at_rescue) + 20,
                   "work after the rescue")

        undo = run_cli("--db", live, "rescue", "--undo", report["undo_file"], "--yes",
                       "--dir", backups, "--json")
        assert undo.returncode == 0, undo.stdout + undo.stderr
        after_undo = rows_of_types(live, "alpha", "beta")
        wait_until(lambda: len(produced(producer_log)) >= len(produced_at_rescue) + 20,
                   "new tasks after the undo")
    finally:
        stop.touch()
        producer.wait(TIMEOUT)
        worker.stop()
        archiver.stop()

    # every damaged task is back exactly as it was at T; nothing else was touched
    assert after_rescue == at_t
    assert report["put_back"] == 300 + 200 and report["skipped"] == []
    assert len(report["put_back_removed"]) == 200 and len(report["put_back_changed"]) == 300
    assert report["logs_put_back"] == 200
    # every completion and every new task is kept, and no id was used twice
    final = task_rows(live)
    for task_id in executed_at_rescue:
        assert final[task_id][5] == "completed", task_id
    new_ids = produced(producer_log)
    assert len(new_ids) == len(set(new_ids))
    assert all(final[task_id][1] == "delta" for task_id in new_ids)
    assert not set(new_ids) & set(at_t)
    check = sqlite3.connect(live)
    seq = check.execute("SELECT seq FROM sqlite_sequence WHERE name = 'task_queue'").fetchone()
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
    assert seq[0] >= max(final)
    # the workers never saw an error, and no task ran twice
    assert worker.errors() == []
    assert not [line for line in lines(producer_log) if line.startswith("error")]
    assert executed_twice([worker]) == []
    # the undo put the pre-rescue rows back exactly
    assert after_undo == pre_rescue
    # the archive ran, so its proven instant is the safety copy, and it holds the pre-rescue rows
    assert report["safety_backup"] is None
    point = report["safety_point"]
    assert point["confirmed"] is True and point["problem"] is None, point
    rebuilt = tmp_path / "safety.db"
    assert rebuild_to_time(Path(point["archive"]), point["at"], rebuilt, live_path=live).check.ok
    assert rows_of_types(rebuilt, "alpha", "beta") == pre_rescue
