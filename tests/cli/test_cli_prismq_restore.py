"""A backup of PrismQ's own queue, taken while PrismQ workers work it, restores and works.

The queue comes from PrismQ's ``initialize_schema()`` (:func:`prismq.make_prismq_queue`:
table-level foreign key, five views) and the workers from :class:`prismq.PrismQWorker`.
``queue-admin-cli`` runs as its own process, as a scheduled task runs it. The backup must
verify on its own once the live file is gone, restore into that path and into a scratch
queue, and the restored queue must be PrismQ's again: the same schema and views, its tasks,
counters that never hand an id out twice, and workers that take new tasks from it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _cli_helpers import Run
from prismq import (
    PRISMQ_VIEWS,
    PrismQWorker,
    add_prismq_tasks,
    executed_twice,
    make_prismq_queue,
    prismq_connect,
)

from queue_admin_gui.core.database import closing_connection
from queue_admin_gui.core.trust.schema_sql import normalized_sql

CliRunner = Callable[..., Run]
TASKS = 120
WAIT_SECONDS = 60.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Block until ``condition()`` holds (a generous deadline, never a fixed sleep)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def query(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing_connection(sqlite3.connect(path, timeout=30)) as connection:
        return connection.execute(sql, params).fetchall()


def schema_of(path: Path) -> set[tuple[str, str, str]]:
    return {(kind, name, normalized_sql(sql)) for kind, name, sql in query(
        path, "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%'")}


@pytest.fixture
def workers() -> Iterator[list[PrismQWorker]]:
    """The workers a test starts; every one is stopped (or killed) at the end."""
    started: list[PrismQWorker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


def start_worker(workers: list[PrismQWorker], db: Path, tmp_path: Path,
                 name: str) -> PrismQWorker:
    worker = PrismQWorker(db, name, tmp_path / f"{name}.log", work_seconds=0.005)
    workers.append(worker)
    worker.wait_started()
    return worker


@pytest.mark.slow
def test_a_backup_taken_while_prismq_works_restores_after_the_live_file_is_lost(
        cli_process: CliRunner, tmp_path: Path, workers: list[PrismQWorker]) -> None:
    live = make_prismq_queue(tmp_path / "prismq queue" / "queue.db", tasks=TASKS)
    schema = schema_of(live)
    team = [start_worker(workers, live, tmp_path, f"engine-{n}") for n in (1, 2)]
    wait_for(lambda: sum(len(worker.executed()) for worker in team) >= 10,
             "the workers to execute tasks")
    made = cli_process("--db", live, "--json", "backup", "--dir", tmp_path / "backups")
    assert made.code == 0, made.err
    backup = Path(made.data["path"])
    for worker in team:
        assert worker.stop() == 0 and worker.errors() == []
    assert executed_twice(team) == []
    in_backup = query(backup, "SELECT count(*), max(id) FROM task_queue")[0]
    (counter,), = query(backup, "SELECT seq FROM sqlite_sequence WHERE name = 'task_queue'")
    assert in_backup == (TASKS, TASKS) and counter == TASKS
    (in_flight,), = query(backup, "SELECT count(*) FROM task_queue WHERE status = 'leased'")

    scratch = make_prismq_queue(tmp_path / "scratch" / "queue.db", tasks=3)
    into_scratch = cli_process("--db", scratch, "--json", "restore", backup, "--yes")
    assert into_scratch.code == 0, into_scratch.out

    for suffix in ("", "-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    alone = cli_process("--json", "verify", backup)
    assert alone.code == 0 and alone.data["problems"] == [], alone.out
    into_lost = cli_process("--db", live, "--json", "restore", backup, "--yes")
    assert into_lost.code == 0, into_lost.out
    assert into_lost.data["check_problems"] == []

    for restored in (live, scratch):
        assert schema_of(restored) == schema
        assert {name for (kind, name, _) in schema_of(restored) if kind == "view"} == set(
            PRISMQ_VIEWS)
        assert query(restored, "PRAGMA integrity_check") == [("ok",)]
        assert query(restored, "SELECT count(*) FROM task_queue") == [(TASKS,)]
        with closing_connection(prismq_connect(restored)) as producer:
            add_prismq_tasks(producer, 5, task_type="late", key_prefix="late")
        late = [row[0] for row in query(restored, "SELECT id FROM task_queue "
                                                  "WHERE type = 'late' ORDER BY id")]
        assert len(late) == 5 and min(late) > TASKS  # no id handed out twice
        finisher = start_worker(workers, restored, tmp_path, f"finisher-{restored.parent.name}")
        wait_for(lambda path=restored: query(
            path, "SELECT count(*) FROM task_queue WHERE status = 'queued'") == [(0,)],
            "the workers to take every task from the restored queue")
        assert finisher.stop() == 0 and finisher.errors() == []
        assert set(late) <= set(finisher.executed())
        # tasks leased when the backup was taken stay leased until their lease expires
        assert dict(query(restored, "SELECT status, task_count FROM v_queue_status_summary")
                    ) == {"completed": TASKS + 5 - in_flight} | (
            {"leased": in_flight} if in_flight else {})
