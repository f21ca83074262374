"""The tool on a queue PrismQ's own code made, while PrismQ-style workers work it.

The queue comes from :func:`prismq.make_prismq_queue` (PrismQ's ``initialize_schema()``:
the table-level foreign key and the five views) and the workers from
:class:`prismq.PrismQWorker` (lease claims, one open connection, no heartbeat row). Backup,
standalone verify (the live file gone), verify against the live file, the lease listing and
``check`` must all work on it as on the tool's own queues.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prismq import (
    PRISMQ_SCHEMA_STATEMENTS,
    PRISMQ_VIEWS,
    PrismQWorker,
    add_prismq_tasks,
    executed_twice,
    make_prismq_queue,
    prismq_connect,
)

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.manifest import manifest_path_for
from queue_admin_gui.core.backups.verify import check_backup_file
from queue_admin_gui.core.database import QueueDatabase, closing_connection
from queue_admin_gui.core.trust.schema_sql import normalized_sql

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 60.0
TASKS = 400


@dataclass
class Run:
    """One run of the CLI as its own process."""

    code: int
    out: str
    err: str

    @property
    def data(self) -> dict[str, Any]:
        parsed = json.loads(self.out)
        assert isinstance(parsed, dict)
        return parsed


def cli(*argv: str | Path) -> Run:
    """Run ``python -m queue_admin_gui.cli`` as a real process, as a scheduled task does."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                      env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "queue_admin_gui.cli", *map(str, argv)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    return Run(done.returncode, done.stdout, done.stderr)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Block until ``condition()`` holds (a generous deadline, never a fixed sleep)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def query(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing_connection(sqlite3.connect(path, timeout=30)) as connection:
        return connection.execute(sql, params).fetchall()


def schema_rows(path: Path) -> set[tuple[str, str, str, str]]:
    return {(kind, name, table, normalized_sql(sql)) for kind, name, table, sql in query(
        path, "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE "
              "'sqlite_stat%'")}


def views(path: Path) -> set[str]:
    return {row[0] for row in query(path, "SELECT name FROM sqlite_master WHERE type = 'view'")}


def drop_live_files(live: Path) -> None:
    """The disaster: the live database and its side files are gone."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return make_prismq_queue(tmp_path / "prismq queue" / "queue.db", tasks=TASKS)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[PrismQWorker]]:
    """The workers a test starts; every one is stopped (or killed) at the end."""
    started: list[PrismQWorker] = []
    yield started
    for worker in started:
        try:
            worker.stop()
        except subprocess.TimeoutExpired:
            worker.kill()


def start_worker(workers: list[PrismQWorker], live: Path, tmp_path: Path, name: str,
                 work_seconds: float = 0.005, lease_seconds: int = 60) -> PrismQWorker:
    worker = PrismQWorker(live, name, tmp_path / f"{name}.log", work_seconds, lease_seconds)
    workers.append(worker)
    worker.wait_started()
    return worker


def test_the_tools_own_queue_is_the_queue_prismq_makes(live: Path, tmp_path: Path) -> None:
    own = tmp_path / "own" / "queue.db"
    with QueueDatabase(own) as db:
        db.initialize_schema()
    assert schema_rows(own) == schema_rows(live)
    assert views(own) == set(PRISMQ_VIEWS)
    reference = tmp_path / "reference.db"
    with closing_connection(sqlite3.connect(reference)) as connection:
        for statement in PRISMQ_SCHEMA_STATEMENTS:
            connection.execute(statement)
    own_backup = QueueBackup(own, tmp_path / "own backups").create_backup("own")
    report = check_backup_file(own_backup, live_path=reference)
    assert report.ok, report.problems


@pytest.mark.slow
def test_a_backup_of_a_prismq_queue_keeps_its_views_and_verifies_alone(
        live: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    made = cli("--db", live, "--json", "backup", "--dir", folder)
    assert made.code == 0, made.err
    backup = Path(made.data["path"])
    assert views(backup) == set(PRISMQ_VIEWS)
    assert query(backup, "SELECT status, task_count FROM v_queue_status_summary") == [
        ("queued", TASKS)]

    against_live = cli("--db", live, "--json", "verify", backup)
    assert against_live.code == 0, against_live.out
    assert against_live.data["ok"] is True and against_live.data["problems"] == []

    drop_live_files(live)
    alone = cli("--json", "verify", backup)  # no --db, and the live file is gone
    assert alone.code == 0, alone.out
    assert alone.data["ok"] is True and alone.data["problems"] == []
    human = cli("verify", backup)
    assert human.code == 0, human.out
    assert "The backup is intact and can be restored." in human.out


def test_a_view_added_to_a_prismq_backup_is_still_refused(live: Path, tmp_path: Path) -> None:
    backup = QueueBackup(live, tmp_path / "backups").create_backup("views")
    with closing_connection(sqlite3.connect(backup)) as connection:
        connection.execute("CREATE VIEW v_payloads AS SELECT payload FROM task_queue")
        connection.commit()
    manifest_path_for(backup).unlink()
    for argv in (("verify", backup), ("--db", live, "verify", backup)):
        run = cli("--json", *argv)
        assert run.code == 1, run.out
        assert len(run.data["problems"]) == 1, run.data["problems"]
        assert "view 'v_payloads'" in run.data["problems"][0]


@pytest.mark.slow
def test_backup_and_verify_while_prismq_workers_work(live: Path, tmp_path: Path,
                                                     workers: list[PrismQWorker]) -> None:
    team = [start_worker(workers, live, tmp_path, f"engine-{n}") for n in (1, 2)]

    def executed() -> int:
        return sum(len(worker.executed()) for worker in team)

    wait_for(lambda: executed() >= 20, "the workers to execute tasks")
    engine = QueueBackup(live, tmp_path / "backups", pages_per_step=1)
    seen_at_start: list[int] = []

    def progress(done: int, total: int, stage: str) -> None:
        if stage == "Copying pages" and not seen_at_start:
            seen_at_start.append(executed())
            # Hold the copy until the workers have visibly gone on working through it.
            wait_for(lambda: executed() >= seen_at_start[0] + 20, "work during the backup")

    backup = engine.backup("while working", progress=progress).path
    for live_path in (live, None):
        report = check_backup_file(backup, live_path=live_path)
        assert report.ok, report.problems
    by_process = cli("--db", live, "--json", "backup", "--dir", tmp_path / "more backups")
    assert by_process.code == 0, by_process.err
    assert cli("--json", "verify", by_process.data["path"]).code == 0
    assert cli("--db", live, "--json", "verify", by_process.data["path"]).code == 0

    with closing_connection(prismq_connect(live)) as producer:
        add_prismq_tasks(producer, 30, task_type="late", key_prefix="late")
    wait_for(lambda: query(live, "SELECT count(*) FROM task_queue WHERE type = 'late' "
                                 "AND status = 'completed'") == [(30,)],
             "the workers to take tasks enqueued after the backups")
    for worker in team:
        assert worker.stop() == 0
        assert worker.errors() == []
    assert executed_twice(team) == []
    for path in (backup, Path(by_process.data["path"])):
        assert views(path) == set(PRISMQ_VIEWS)
        assert query(path, "SELECT count(*) FROM task_queue") == [(TASKS,)]
        completed = {row[0] for row in query(
            path, "SELECT id FROM task_queue WHERE status = 'completed'")}
        assert completed, "the backup should hold the tasks completed before it"
        assert completed <= {task for worker in team for task in worker.executed()}


@pytest.mark.slow
def test_leases_and_check_on_a_prismq_queue_with_its_workers(
        live: Path, tmp_path: Path, workers: list[PrismQWorker]) -> None:
    folder = tmp_path / "backups"
    QueueBackup(live, folder).create_backup("nightly")
    steady = start_worker(workers, live, tmp_path, "steady", work_seconds=0.05)
    wait_for(lambda: len(steady.executed()) >= 3, "the steady worker to work")
    healthy = cli("--db", live, "--json", "check", "--dir", folder)
    assert healthy.code == 0, healthy.out
    assert healthy.data["state"] == "OK"
    assert steady.stop() == 0

    crashing = start_worker(workers, live, tmp_path, "crashing", work_seconds=600,
                            lease_seconds=1)
    wait_for(lambda: query(live, "SELECT count(*) FROM task_queue WHERE status = 'leased' "
                                 "AND locked_by = 'crashing'") == [(1,)],
             "the crashing worker's claim")
    crashing.kill()
    (held,), = query(live, "SELECT id FROM task_queue WHERE locked_by = 'crashing'")
    wait_for(lambda: query(live, "SELECT count(*) FROM task_queue WHERE status = 'leased' "
                                 "AND lease_until_utc < datetime('now')") == [(1,)],
             "the abandoned lease to expire")

    listed = cli("--db", live, "--json", "leases", "--timeout", "0")
    assert listed.code == 0, listed.out
    assert listed.data["stale"] == 1 and listed.data["task_ids"] == [held]
    graded = cli("--db", live, "--json", "check", "--dir", folder, "--lease-timeout", "0",
                 "--stale-warning", "1", "--stale-critical", "5")
    assert graded.code == 1, graded.out
    assert graded.data["state"] == "WARNING"
    assert "1 stale leases" in graded.data["status_line"]

    requeued = cli("--db", live, "--json", "leases", "--timeout", "0", "--requeue")
    assert requeued.code == 0, requeued.out
    assert requeued.data["requeued"] == 1 and requeued.data["task_ids"] == [held]
    assert query(live, "SELECT status, locked_by FROM task_queue WHERE id = ?", held) == [
        ("queued", None)]
    finisher = start_worker(workers, live, tmp_path, "finisher")
    wait_for(lambda: held in finisher.executed(), "the requeued task to run")
    assert finisher.stop() == 0
    assert executed_twice([steady, crashing, finisher]) == []
    assert finisher.errors() == [] and steady.errors() == []


def test_a_prismq_backup_with_no_room_for_new_ids_is_refused(live: Path, tmp_path: Path) -> None:
    backup = QueueBackup(live, tmp_path / "backups").create_backup("crafted")
    with closing_connection(sqlite3.connect(backup)) as connection:
        connection.execute("INSERT INTO task_queue(id, type, payload) "
                           "VALUES (9223372036854775807, 'render', '{}')")
        connection.execute("DELETE FROM sqlite_sequence WHERE name = 'task_queue'")
        connection.commit()
    manifest_path_for(backup).unlink()
    trial = tmp_path / "trial.db"
    trial.write_bytes(backup.read_bytes())
    with closing_connection(prismq_connect(trial)) as producer, pytest.raises(
            sqlite3.OperationalError, match="database or disk is full"):
        add_prismq_tasks(producer, 1, key_prefix="new")  # what restoring it would leave
    for argv in (("verify", backup), ("--db", live, "verify", backup)):
        run = cli("--json", *argv)
        assert run.code == 1, run.out
        assert run.data["kind"] == "corrupt"
        assert len(run.data["problems"]) == 1, run.data["problems"]
        assert "already holds id 9223372036854775807" in run.data["problems"][0]
        assert "2^62" in run.data["problems"][0]
