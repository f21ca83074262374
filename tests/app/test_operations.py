from __future__ import annotations

import os
from pathlib import Path

import pytest

from queue_admin_gui.app.jobs import JobRunner, JobState
from queue_admin_gui.app.messages import Level, Messages, RecordingPresenter
from queue_admin_gui.app.operations import (
    LEFTOVERS_ACTION,
    TOPIC_BACKUPS,
    TOPIC_LEASES,
    TOPIC_STATS,
    Operation,
    back_up,
    verify_backup,
)
from queue_admin_gui.app.session import Session
from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.errors import QueueBackupError
from queue_admin_gui.core.settings.config import MaintenanceConfig


@pytest.fixture
def presenter() -> RecordingPresenter:
    return RecordingPresenter()


@pytest.fixture
def session(qtbot, tmp_path: Path, presenter: RecordingPresenter):
    runner = JobRunner()
    session = Session(runner, Messages(presenter),
                      MaintenanceConfig(backup_dir=tmp_path / "backups"))
    yield session
    assert runner.shutdown(30_000)


def _announced(session: Session) -> list[str]:
    topics: list[str] = []
    session.changed.connect(topics.append)
    return topics


def test_a_succeeded_operation_announces_exactly_its_topics_after_the_callers_handler(
        qtbot, session):
    topics = _announced(session)
    order = []
    operation = Operation("Requeue", lambda progress, cancelled: 3, writes=True,
                          changes=frozenset({TOPIC_LEASES, TOPIC_STATS}))
    session.changed.connect(lambda topic: order.append(f"changed {topic}"))
    job = session.run_operation(
        operation, on_success=lambda result: order.append(f"handled {result}"))
    with qtbot.waitSignal(job.finished, timeout=10_000):
        pass
    assert job.state is JobState.SUCCEEDED
    assert topics == [TOPIC_LEASES, TOPIC_STATS]
    assert order == ["handled 3", f"changed {TOPIC_LEASES}", f"changed {TOPIC_STATS}"]


def test_a_failed_operation_announces_nothing_and_reports_the_error(qtbot, session,
                                                                     presenter):
    topics = _announced(session)
    errors: list[BaseException] = []

    def fail(progress, cancelled):
        raise QueueBackupError("The backup folder is full.")

    operation = Operation("Back up", fail, writes=True, changes=frozenset({TOPIC_BACKUPS}))
    job = session.run_operation(operation, on_error=errors.append)
    with qtbot.waitSignal(job.finished, timeout=10_000):
        pass
    assert job.state is JobState.FAILED
    assert topics == []
    assert [str(error) for error in errors] == ["The backup folder is full."]
    assert presenter.texts(Level.ERROR) == ["The backup folder is full."]


def test_a_real_backup_announces_the_backup_list_and_a_verify_announces_nothing(
        qtbot, session, queue_db):
    topics = _announced(session)
    folder = session.backup_dir
    backed_up = session.run_operation(back_up(queue_db, folder, "nightly"))
    with qtbot.waitSignal(backed_up.finished, timeout=30_000):
        pass
    assert backed_up.state is JobState.SUCCEEDED, backed_up.error
    assert backed_up.result.path.is_file()
    assert backed_up.parameters == {"name": "nightly", "database": str(queue_db),
                                    "folder": str(folder)}
    assert topics == [TOPIC_BACKUPS]

    verified = session.run_operation(verify_backup(queue_db, folder, backed_up.result.path))
    with qtbot.waitSignal(verified.finished, timeout=30_000):
        pass
    assert verified.state is JobState.SUCCEEDED, verified.error
    assert verified.result.ok
    assert topics == [TOPIC_BACKUPS]


def test_a_window_backup_first_clears_what_a_killed_backup_left(qtbot, session, queue_db):
    """A partial no running backup holds (older than the grace period) goes, and is logged."""
    folder = session.backup_dir
    folder.mkdir(parents=True)
    leftover = folder / "queue_backup_20250101_000000.db.partial"
    leftover.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    os.utime(leftover, (1_600_000_000, 1_600_000_000))
    backed_up = session.run_operation(back_up(queue_db, folder, None))
    with qtbot.waitSignal(backed_up.finished, timeout=30_000):
        pass
    assert backed_up.state is JobState.SUCCEEDED, backed_up.error
    assert not leftover.exists()
    entries = [entry for entry in ActivityLog().read(50) if entry.action == LEFTOVERS_ACTION]
    assert len(entries) == 1 and leftover.name in entries[0].message
