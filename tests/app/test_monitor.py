"""The sampler on a fake clock: ticks driven by hand, real files, real lock holders."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from queue_admin_gui.app.jobs import JobRunner
from queue_admin_gui.app.messages import Messages, RecordingPresenter
from queue_admin_gui.app.monitor import TASK_COUNT_INTERVAL_SECONDS, Sampler
from queue_admin_gui.app.session import Session
from queue_admin_gui.core import QueueMaintenance
from queue_admin_gui.core.database import QueueDatabase, connect
from queue_admin_gui.core.files.db_files import file_size, wal_path
from queue_admin_gui.core.settings.config import MaintenanceConfig


@pytest.fixture
def session(qtbot, queue_db: Path, tmp_path: Path):
    config = MaintenanceConfig(backup_dir=tmp_path / "backups")
    runner = JobRunner()
    presenter = RecordingPresenter()
    session = Session(runner, Messages(presenter), config, queue_db)
    session.presenter = presenter
    session.is_queue = True
    yield session
    assert runner.shutdown()


@pytest.fixture
def sampler(session: Session, clock):
    sampler = Sampler(session, clock=clock, capacity=100)
    yield sampler
    sampler.stop()


def sample_now(qtbot, sampler: Sampler) -> None:
    """One tick, waited for until its sample (or gap) has been handled."""
    with qtbot.waitSignal(sampler.handled, timeout=30_000):
        assert sampler.tick() is not None
    assert not sampler.busy


def write_rows(path: Path, rows: int) -> None:
    connection = connect(path)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO task_queue (type, payload) VALUES ('ocr', '{}')",
                               [() for _ in range(rows)])
        connection.execute("COMMIT")
    finally:
        connection.close()


def test_a_tick_records_a_sample_stamped_by_the_clock(qtbot, sampler, clock, queue_db):
    write_rows(queue_db, 25)
    with qtbot.waitSignal(sampler.sampled, timeout=30_000) as blocker:
        sampler.tick()
    sample = blocker.args[0]
    assert sample.time == clock.now
    assert sample.task_counts["queued"] == 25
    assert len(sampler.history) == 1
    assert sampler.history.row(0)[0] == clock.now
    assert sampler.history.column("page_count")[0] == sample.page_count
    assert sampler.tasks.column("queued").tolist() == [25]
    assert sampler.status == ""


def test_every_sample_is_read_on_one_worker_thread_without_jobs(qtbot, session, sampler,
                                                                monkeypatch):
    import threading

    from queue_admin_gui.app import monitor

    threads = []
    real_read = monitor.read_sample

    def recording_read(*args, **kwargs):
        threads.append(threading.get_ident())
        return real_read(*args, **kwargs)

    monkeypatch.setattr(monitor, "read_sample", recording_read)
    jobs = []
    session.runner.job_started.connect(jobs.append)
    for _ in range(5):
        sample_now(qtbot, sampler)
    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
    assert jobs == [] and len(sampler.history) == 5
    sampler.stop()
    assert not sampler.thread_running
    sample_now(qtbot, sampler)  # a later tick starts the worker again
    assert len(sampler.history) == 6


def test_task_counts_only_every_ten_seconds(qtbot, sampler, clock):
    for _ in range(int(TASK_COUNT_INTERVAL_SECONDS) + 1):
        sample_now(qtbot, sampler)
        clock.advance(1.0)
    assert len(sampler.history) == 11
    # taken at t=0 and t=10 only
    assert len(sampler.tasks) == 2
    assert sampler.tasks.column("time")[1] - sampler.tasks.column("time")[0] == 10.0


def test_a_tick_is_skipped_while_the_previous_sample_runs(qtbot, sampler):
    with qtbot.waitSignal(sampler.handled, timeout=30_000):
        assert sampler.tick() is not None and sampler.busy
        assert sampler.tick() is None
        assert sampler.skipped_ticks == 1
    assert not sampler.busy
    sample_now(qtbot, sampler)
    assert len(sampler.history) == 2


def test_sampling_never_pins_the_wal(qtbot, sampler, queue_db):
    write_rows(queue_db, 200)
    sample_now(qtbot, sampler)
    result = QueueMaintenance(queue_db).checkpoint("TRUNCATE")
    assert result["busy"] == 0
    assert file_size(wal_path(queue_db)) == 0


def test_missing_file_records_a_gap_then_sampling_resumes(qtbot, sampler, clock, queue_db,
                                                           tmp_path):
    sample_now(qtbot, sampler)
    parked = tmp_path / "parked"
    parked.mkdir()
    moved = [name for name in os.listdir(queue_db.parent) if name.startswith("queue.db")]
    for name in moved:
        shutil.move(queue_db.parent / name, parked / name)
    clock.advance(1)
    with qtbot.waitSignal(sampler.gap, timeout=30_000) as blocker:
        sampler.tick()
    assert "not found" in blocker.args[0]
    assert sampler.status.startswith("No sample at") and "not found" in sampler.status
    assert math.isnan(sampler.history.row(-1)[1])
    for name in moved:
        shutil.move(parked / name, queue_db.parent / name)
    clock.advance(1)
    sample_now(qtbot, sampler)
    assert sampler.status == ""
    assert not math.isnan(sampler.history.row(-1)[1])
    assert len(sampler.history) == 3


LOCK_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA locking_mode=EXCLUSIVE")
connection.execute("BEGIN EXCLUSIVE")
connection.execute("INSERT INTO workers (worker_id, capabilities) VALUES ('lock', '{}')")
print("locked", flush=True)
sys.stdin.read()
connection.execute("COMMIT")
connection.close()
"""


def test_locked_file_records_a_gap_and_says_so(qtbot, sampler, clock, queue_db):
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(queue_db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with qtbot.waitSignal(sampler.gap, timeout=30_000) as blocker:
            sampler.tick()
        assert "locked by another program" in blocker.args[0]
        assert "locked" in sampler.status
    finally:
        holder.stdin.close()
        holder.wait(30)
        holder.stdout.close()
    qtbot.waitUntil(lambda: not sampler.busy, timeout=30_000)
    clock.advance(1)
    sample_now(qtbot, sampler)
    assert sampler.status == ""
    assert [math.isnan(value) for value in sampler.history.column("wal_bytes")] == [True, False]


def test_replaced_file_records_a_gap_then_follows_the_new_file(qtbot, sampler, clock,
                                                               queue_db, tmp_path):
    sample_now(qtbot, sampler)
    other = tmp_path / "other.db"
    with QueueDatabase(other) as db:
        db.initialize_schema()
    write_rows(other, 7)
    for suffix in ("-wal", "-shm"):
        Path(f"{queue_db}{suffix}").unlink(missing_ok=True)
    os.replace(other, queue_db)
    clock.advance(1)
    with qtbot.waitSignal(sampler.gap, timeout=30_000) as blocker:
        sampler.tick()
    assert "was replaced by another file" in blocker.args[0]
    qtbot.waitUntil(lambda: not sampler.busy, timeout=30_000)
    clock.advance(TASK_COUNT_INTERVAL_SECONDS)
    sample_now(qtbot, sampler)
    assert sampler.status == ""
    assert sampler.last_sample.task_counts["queued"] == 7
    assert [math.isnan(value) for value in sampler.history.column("db_bytes")] == [
        False, True, False]


def test_session_events_reach_the_sampler(qtbot, session, sampler, clock, tmp_path):
    sample_now(qtbot, sampler)
    config = MaintenanceConfig(backup_dir=tmp_path / "b", sample_interval_seconds=2.5)
    session.set_config(config)
    assert sampler.interval_ms == 2500
    with qtbot.waitSignal(sampler.checkpoint_recorded) as blocker:
        session.checkpoint_done.emit({"mode": "FULL", "busy": 0, "log": 5, "checkpointed": 5})
    assert blocker.args[0].mode == "FULL" and blocker.args[0].time == clock.now
    with qtbot.waitSignal(sampler.cleared):
        session.set_database(tmp_path / "elsewhere.db")
    assert len(sampler.history) == 0 and not sampler.checkpoints


def test_start_samples_on_the_timer_until_stopped(qtbot, session):
    session.config.sample_interval_seconds = 0.05
    sampler = Sampler(session, capacity=50)
    sampler.start()
    try:
        qtbot.waitUntil(lambda: len(sampler.history) >= 3, timeout=30_000)
    finally:
        sampler.stop()
    qtbot.waitUntil(lambda: not sampler.busy, timeout=30_000)
    times = sampler.history.column("time")
    assert (times[1:] > times[:-1]).all()
    assert not sampler.is_running
