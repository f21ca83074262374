"""Requeue racing real worker processes and other cleanups (data-safety rule 5).

Every actor is a separate process on the same file. Each reports what it changed; the test
then checks the file: a task a worker completed was never requeued, no task was requeued
twice (attempts went up by exactly one and exactly one log row says so), and every task
ended up either completed or recovered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from queue_admin_gui.core.database import closing_connection, connect
from queue_admin_gui.core.leases.manager import LeaseManager

REPO_ROOT = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 120

# A worker as the real ones behave: on "go" it takes the tasks it holds and, one by one,
# works a little, then completes each one (only while it is still 'leased'), sometimes
# renewing the lease first. It prints the ids it really completed or renewed.
WORKER = r"""
import json, random, sqlite3, sys, time
path, worker_id, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
connection = sqlite3.connect(path, timeout=30, isolation_level=None)
connection.execute("PRAGMA busy_timeout=30000")
print("ready", flush=True)
sys.stdin.readline()
held = [row[0] for row in connection.execute(
    "SELECT id FROM task_queue WHERE locked_by = ? ORDER BY id", (worker_id,))]
rng.shuffle(held)
completed, renewed = [], []
for task_id in held:
    time.sleep(rng.uniform(0.0, 0.02))  # the simulated work itself
    connection.execute("BEGIN IMMEDIATE")
    if rng.random() < 0.2:
        cursor = connection.execute(
            "UPDATE task_queue SET lease_until_utc = datetime('now', '+60 seconds'), "
            "updated_at_utc = datetime('now') WHERE id = ? AND status = 'leased' "
            "AND locked_by = ?", (task_id, worker_id))
        if cursor.rowcount == 1:
            renewed.append(task_id)
    cursor = connection.execute(
        "UPDATE task_queue SET status = 'completed', finished_at_utc = datetime('now'), "
        "updated_at_utc = datetime('now') WHERE id = ? AND status = 'leased'", (task_id,))
    if cursor.rowcount == 1:
        completed.append(task_id)
    connection.execute("COMMIT")
connection.close()
print(json.dumps({"completed": completed, "renewed": renewed}), flush=True)
"""

# A cleanup: on "go" it requeues stale leases, round after round, until nothing is in
# flight any more (or a deadline passes), and prints every id it requeued or dead-lettered.
CLEANUP = r"""
import json, sys, time
from queue_admin_gui.core.leases.manager import LeaseManager
path, timeout, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
manager = LeaseManager(path, busy_timeout_ms=30000)
print("ready", flush=True)
sys.stdin.readline()
requeued, dead, deadline = [], [], time.monotonic() + 90
for _ in range(rounds):
    result = manager.requeue_stale_leases(timeout)
    requeued += result.requeued_ids
    dead += result.dead_lettered_ids
    if rounds > 1 and not manager.in_flight_tasks(timeout):
        break
    if time.monotonic() > deadline:
        break
    time.sleep(0.01)  # the cadence of a scheduled cleanup, sped up
print(json.dumps({"requeued": requeued, "dead": dead}), flush=True)
"""


# A worker that is alive but never renews its lease: it registers, then heartbeats every
# 200 ms (as real workers do, with an upsert on `workers`) until told to stop, and prints how
# many heartbeats it wrote.
HEARTBEAT = r"""
import json, sqlite3, sys, threading
path, worker_id = sys.argv[1], sys.argv[2]
connection = sqlite3.connect(path, timeout=30, isolation_level=None)
connection.execute("PRAGMA busy_timeout=30000")
def beat():
    connection.execute(
        "INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
        "VALUES (?, '{}', datetime('now')) ON CONFLICT(worker_id) "
        "DO UPDATE SET heartbeat_utc = excluded.heartbeat_utc", (worker_id,))
beat()
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
print("ready", flush=True)
beats = 1
while not stop.wait(0.2):
    beat()
    beats += 1
connection.close()
print(json.dumps({"beats": beats}), flush=True)
"""


def start(script: str, *arguments: object) -> subprocess.Popen[str]:
    """Start an actor and wait until it says it is ready (its imports and opens are done)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, arguments)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
        env=environment,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "ready":
        _, errors = process.communicate(timeout=DEADLINE_SECONDS)
        raise AssertionError(f"actor failed to start: {errors}")
    return process


def go_and_collect(processes: list[subprocess.Popen[str]]) -> list[dict[str, list[int]]]:
    """Release every actor at once, then gather what each reports."""
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    reports = []
    for process in processes:
        output, errors = process.communicate(timeout=DEADLINE_SECONDS)
        assert process.returncode == 0, errors
        reports.append(json.loads(output.strip().splitlines()[-1]))
    return reports


def add_leased_tasks(path: Path, workers: list[str], per_worker: int,
                     lease_expiry: str) -> dict[int, int]:
    """Tasks held by ``workers``; ``lease_expiry`` is an SQL expression of the task number.

    Every fifth task is on its last attempt, so its requeue dead-letters it. Returns the
    attempts each task started with.
    """
    rows = []
    for worker_number, worker in enumerate(workers):
        for number in range(per_worker):
            attempts = 2 if number % 5 == 0 else 0
            rows.append((attempts, worker, worker_number * per_worker + number))
    with closing_connection(connect(path)) as connection:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO task_queue (type, payload, status, attempts, max_attempts, "
            "reserved_at_utc, lease_until_utc, locked_by) VALUES ('render', '{}', 'leased', "
            f"?1, 3, datetime('now', '-1 hour'), {lease_expiry}, ?2)",
            [(attempts, worker, number) for attempts, worker, number in rows],
        )
        connection.execute("COMMIT")
        return {int(row[0]): int(row[1])
                for row in connection.execute("SELECT id, attempts FROM task_queue")}


def final_state(path: Path) -> tuple[dict[int, tuple[str, int]], dict[int, int]]:
    with closing_connection(connect(path)) as connection:
        tasks = {int(row[0]): (str(row[1]), int(row[2])) for row in connection.execute(
            "SELECT id, status, attempts FROM task_queue")}
        logs = {int(row[0]): int(row[1]) for row in connection.execute(
            "SELECT task_id, count(*) FROM task_logs GROUP BY task_id")}
    return tasks, logs


@pytest.mark.slow
def test_workers_completing_while_cleanups_requeue(queue_db: Path) -> None:
    workers = ["worker-a", "worker-b", "worker-c"]
    actors = [start(WORKER, queue_db, worker, seed) for seed, worker in enumerate(workers)]
    actors += [start(CLEANUP, queue_db, 0, 10_000) for _ in range(2)]
    # Leases run out in waves over the next few seconds, while the workers are busy.
    started_with = add_leased_tasks(queue_db, workers, 120,
                                    "datetime('now', '+' || (?3 % 4) || ' seconds')")
    reports = go_and_collect(actors)

    completed = [task for report in reports[:3] for task in report["completed"]]
    renewed = {task for report in reports[:3] for task in report["renewed"]}
    recovered = [task for report in reports[3:] for task in report["requeued"] + report["dead"]]
    dead = {task for report in reports[3:] for task in report["dead"]}
    assert len(completed) == len(set(completed))
    assert len(recovered) == len(set(recovered)), "a task was requeued twice"
    assert not set(completed) & set(recovered), "a completed task was requeued"
    assert set(completed) | set(recovered) == set(started_with)
    assert completed and recovered  # both sides of the race really happened

    tasks, logs = final_state(queue_db)
    for task in completed:
        assert tasks[task] == ("completed", started_with[task])
        assert task not in logs
    for task in recovered:
        status, attempts = tasks[task]
        assert attempts == started_with[task] + 1
        assert status == ("failed" if task in dead else "queued")
        assert logs[task] == 1
    assert dead == {task for task in recovered if started_with[task] == 2}
    assert renewed <= set(completed) | set(recovered)


@pytest.mark.slow
def test_cleanups_racing_each_other_requeue_each_task_once(queue_db: Path) -> None:
    workers = ["gone-1", "gone-2"]
    started_with = add_leased_tasks(queue_db, workers, 1000,
                                    "datetime('now', '-' || (600 + ?3) || ' seconds')")
    cleanups = [start(CLEANUP, queue_db, 300, 3) for _ in range(3)]
    reports = go_and_collect(cleanups)

    recovered = [task for report in reports for task in report["requeued"] + report["dead"]]
    assert sorted(recovered) == sorted(started_with), "each task requeued exactly once"
    tasks, logs = final_state(queue_db)
    assert all(tasks[task][1] == started_with[task] + 1 for task in started_with)
    assert logs == dict.fromkeys(started_with, 1)
    assert sum(status == "failed" for status, _ in tasks.values()) == 400


def stop(process: subprocess.Popen[str]) -> dict[str, int]:
    """Tell a heartbeating worker to stop and return what it reports."""
    output, errors = process.communicate("stop\n", timeout=DEADLINE_SECONDS)
    assert process.returncode == 0, errors
    return json.loads(output.strip().splitlines()[-1])


def held_by(path: Path) -> dict[str, int]:
    with closing_connection(connect(path)) as connection:
        return {str(row[0]): int(row[1]) for row in connection.execute(
            "SELECT locked_by, id FROM task_queue")}


@pytest.mark.slow
def test_a_heartbeating_worker_keeps_its_expired_lease_while_a_silent_one_loses_it(
        queue_db: Path) -> None:
    """Rule 8 against real processes: expired leases everywhere, only silence decides."""
    timeout = 2
    add_leased_tasks(queue_db, ["alive", "silent", "unregistered"], 1,
                     "datetime('now', '-1 hour', '+' || ?3 || ' seconds')")
    task = held_by(queue_db)
    alive = start(HEARTBEAT, queue_db, "alive")
    try:
        stop(start(HEARTBEAT, queue_db, "silent"))  # registered, then fell silent
        manager = LeaseManager(queue_db, busy_timeout_ms=30000)
        first = manager.requeue_stale_leases(timeout)
        assert first.task_ids == [task["unregistered"]], "an unknown worker counts as silent"
        assert task["alive"] in first.expired_worker_alive_ids
        recovered = list(first.task_ids)
        deadline = time.monotonic() + DEADLINE_SECONDS
        # Cleanup rounds until the silent worker's heartbeat is older than the timeout; all
        # that time the live worker's lease is as expired as the silent one's.
        while task["silent"] not in recovered and time.monotonic() < deadline:
            result = manager.requeue_stale_leases(timeout)
            assert task["alive"] not in result.task_ids, "a live worker's task was requeued"
            recovered += result.task_ids
            time.sleep(0.05)  # the cadence of a scheduled cleanup, sped up
        assert recovered == [task["unregistered"], task["silent"]]
        assert [t.id for t in manager.find_expired_live_leases(timeout)] == [task["alive"]]
    finally:
        beats = stop(alive)["beats"]
    assert beats >= 2 * timeout  # it really heartbeat throughout, every ~200 ms
    tasks, logs = final_state(queue_db)
    assert tasks[task["alive"]] == ("leased", 2) and task["alive"] not in logs
    assert logs[task["silent"]] == logs[task["unregistered"]] == 1
