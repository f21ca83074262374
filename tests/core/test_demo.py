"""Simulated workers: they really claim, renew, complete, fail with back-off and die."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from queue_admin_gui.core.database import QueueDatabase, closing_connection, connect
from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.core.demo.workers import (
    MAX_BACKOFF_SECONDS,
    DemoStats,
    DemoWorkers,
    backoff_seconds,
    run_demo,
)

DEADLINE_SECONDS = 30.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds, failing after a generous deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def demo_path(tmp_path: Path) -> Path:
    return create_demo_queue(tmp_path / "demo queue" / "queue.db", tasks=300, seed=5).path


@pytest.fixture
def running() -> Iterator[list[DemoWorkers]]:
    """Workers started by a test; all are stopped at the end whatever happens."""
    started: list[DemoWorkers] = []
    yield started
    for demo in started:
        assert demo.stop(timeout=15)


def _start(running: list[DemoWorkers], path: Path, workers: int = 3, **options: object
           ) -> DemoWorkers:
    demo = DemoWorkers(path, workers, seed=11, **options)  # type: ignore[arg-type]
    running.append(demo)
    demo.start()
    assert demo.is_running
    return demo


def _scalar(path: Path, sql: str) -> object:
    with closing_connection(connect(path)) as connection:
        return connection.execute(sql).fetchone()[0]


def test_workers_claim_complete_fail_and_die(demo_path: Path, running: list[DemoWorkers]
                                             ) -> None:
    completed_before = _scalar(demo_path, "SELECT count(*) FROM task_queue "
                                          "WHERE status = 'completed'")
    demo = _start(running, demo_path, workers=3, die_probability=0.2, fail_probability=0.3,
                  work_seconds=(0.01, 0.03), arrival_per_second=50)
    wait_for(lambda: demo.stats.completed >= 5 and demo.stats.failed >= 2
             and demo.stats.died >= 2 and demo.stats.arrived >= 10 and demo.stats.renewed >= 2,
             "workers to complete, fail, die, renew and tasks to arrive")
    assert demo.stop(timeout=10)
    stats = demo.stats
    assert stats.claimed >= stats.completed + stats.failed + stats.died
    assert stats.errors == 0, stats.last_error
    completed_after = _scalar(demo_path, "SELECT count(*) FROM task_queue "
                                         "WHERE status = 'completed'")
    assert completed_after - completed_before == stats.completed  # type: ignore[operator]
    retried = _scalar(demo_path, "SELECT count(*) FROM task_queue WHERE status = 'queued' "
                                 "AND error_message LIKE 'Demo failure%' AND attempts >= 1 "
                                 "AND run_after_utc > datetime('now', '-60 seconds')")
    assert retried >= 1  # type: ignore[operator]
    orphaned = _scalar(demo_path, "SELECT count(*) FROM task_queue WHERE status = 'leased' "
                                  "AND locked_by LIKE 'demo-%' AND locked_by NOT LIKE "
                                  "'demo-lost-%' AND locked_by NOT LIKE 'demo-worker-%'")
    assert orphaned == stats.died  # a dead worker keeps its lease; a stopped one gives it back
    workers = _scalar(demo_path, "SELECT count(*) FROM workers WHERE "
                                 "heartbeat_utc >= datetime('now', '-120 seconds')")
    assert workers >= 3 + stats.died  # type: ignore[operator]
    assert _scalar(demo_path, "PRAGMA integrity_check") == "ok"


@pytest.mark.slow
def test_dead_worker_leases_expire_into_stale_leases(demo_path: Path,
                                                     running: list[DemoWorkers]) -> None:
    demo = _start(running, demo_path, workers=2, die_probability=1.0, lease_seconds=1,
                  work_seconds=(0.01, 0.02), arrival_per_second=0)
    wait_for(lambda: demo.stats.died >= 3, "three workers to die")
    assert demo.stop(timeout=10)
    wait_for(lambda: _scalar(demo_path, "SELECT count(*) FROM task_queue WHERE status = "
                                        "'leased' AND locked_by NOT LIKE 'demo-lost-%' AND "
                                        "locked_by NOT LIKE 'demo-worker-%' AND "
                                        "lease_until_utc < datetime('now')") == demo.stats.died,
             "the dead workers' leases to expire")


def test_failure_at_max_attempts_dead_letters(tmp_path: Path, running: list[DemoWorkers]
                                              ) -> None:
    path = tmp_path / "queue.db"
    with QueueDatabase(path) as db:
        db.initialize_schema()
        with db.transaction() as connection:
            connection.executemany(
                "INSERT INTO task_queue (type, payload, max_attempts) VALUES (?, ?, 1)",
                [("render", '{"format": "png"}')] * 5,
            )
    demo = _start(running, path, workers=2, fail_probability=1.0, die_probability=0,
                  work_seconds=(0.0, 0.01), arrival_per_second=0)
    wait_for(lambda: demo.stats.dead_lettered == 5, "all five tasks to fail for good")
    assert demo.stop(timeout=10)
    assert _scalar(path, "SELECT count(*) FROM task_queue WHERE status = 'failed' "
                         "AND attempts = 1 AND error_message IS NOT NULL "
                         "AND lease_until_utc IS NULL") == 5


def test_stop_is_prompt_and_gives_held_tasks_back(demo_path: Path,
                                                  running: list[DemoWorkers]) -> None:
    leased_before = _scalar(demo_path, "SELECT count(*) FROM task_queue WHERE status='leased'")
    demo = _start(running, demo_path, workers=4, die_probability=0, work_seconds=(600, 600),
                  arrival_per_second=0)
    wait_for(lambda: demo.stats.claimed == 4, "every worker to hold a task")
    assert _scalar(demo_path, "SELECT count(*) FROM task_queue WHERE status='leased'"
                   ) == leased_before + 4  # type: ignore[operator]
    assert demo.stop(timeout=10)  # each worker is in the middle of a 5-minute half-task
    assert not demo.is_running
    assert _scalar(demo_path, "SELECT count(*) FROM task_queue WHERE status='leased'"
                   ) == leased_before
    assert demo.stats.completed == 0


def test_busy_database_is_waited_out(demo_path: Path, running: list[DemoWorkers]) -> None:
    demo = _start(running, demo_path, workers=2, die_probability=0, fail_probability=0,
                  work_seconds=(0.0, 0.01), arrival_per_second=20, busy_timeout_ms=50)
    wait_for(lambda: demo.stats.completed >= 1, "a first completed task")
    with closing_connection(connect(demo_path)) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        wait_for(lambda: demo.stats.busy_retries >= 3, "workers to meet the lock")
        completed_while_locked = demo.stats.completed
        blocker.execute("COMMIT")
    wait_for(lambda: demo.stats.completed >= completed_while_locked + 5,
             "workers to resume after the lock")
    assert demo.stop(timeout=10)
    assert demo.stats.errors == 0, demo.stats.last_error


def test_run_demo_runs_for_a_while_then_stops(demo_path: Path) -> None:
    stats = run_demo(demo_path, workers=2, seconds=0.5, arrival_per_second=20,
                     work_seconds=(0.0, 0.01))
    assert isinstance(stats, DemoStats)
    assert stats.claimed >= 1
    assert stats.errors == 0, stats.last_error


def test_missing_file_is_counted_not_crashed(tmp_path: Path, running: list[DemoWorkers]
                                             ) -> None:
    demo = _start(running, tmp_path / "missing.db", workers=1, arrival_per_second=5)
    wait_for(lambda: demo.stats.errors >= 2, "both threads to report the missing file")
    assert "not found" in (demo.stats.last_error or "")
    assert demo.stop(timeout=10)


@pytest.mark.parametrize(("attempts", "expected"), [(1, 1.0), (2, 2.0), (4, 8.0), (9, 256.0),
                                                    (10, MAX_BACKOFF_SECONDS), (30, 300.0)])
def test_backoff_doubles_and_is_capped(attempts: int, expected: float) -> None:
    rng = random.Random(1)
    delays = [backoff_seconds(attempts, rng) for _ in range(200)]
    assert all(expected * 0.9 <= delay <= expected * 1.1 for delay in delays)
    assert max(delays) - min(delays) > expected * 0.1  # jitter really varies
