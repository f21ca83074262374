"""The restore wizard's gate against PrismQ's own workers, clicked through real widgets.

PrismQ's worker loop writes no heartbeat row: the prepare page must still see both workers
(by the file they keep open), keep Restore disabled while they work, count down to its next
look, and let the restore go as soon as they stopped, not a minute later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from prismq import PRISMQ_VIEWS, PrismQWorker, executed_twice, make_prismq_queue
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from queue_admin_gui.app.jobs import JobRunner
from queue_admin_gui.app.messages import Messages, RecordingPresenter
from queue_admin_gui.app.session import Session
from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.ui.restore_wizard import (
    PAGE_CHECK,
    PAGE_DONE,
    PAGE_PREPARE,
    PAGE_RESTORE,
    RestoreWizard,
)

TIMEOUT_MS = 60_000
#: Well under the minute a heartbeat once held the gate for.
GATE_LETS_GO_MS = 30_000
NEXT = QWizard.WizardButton.NextButton


def completed(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute(
            "SELECT count(*) FROM task_queue WHERE status = 'completed'").fetchone()[0])
    finally:
        connection.close()


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return make_prismq_queue(tmp_path / "queue.db", tasks=300)


@pytest.fixture
def session(live: Path, tmp_path: Path) -> Iterator[Session]:
    runner = JobRunner()
    config = MaintenanceConfig(backup_dir=tmp_path / "backups")
    session = Session(runner, Messages(RecordingPresenter()), config, live)
    yield session
    assert runner.shutdown(TIMEOUT_MS)


def click_next(qtbot, wizard: RestoreWizard, expected_page: int) -> None:
    button = wizard.button(NEXT)
    qtbot.waitUntil(lambda: button.isVisible() and button.isEnabled(), timeout=TIMEOUT_MS)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: wizard.currentId() == expected_page, timeout=TIMEOUT_MS)


@pytest.mark.slow
def test_the_gate_names_prismq_workers_counts_down_and_lets_go_once_they_stop(
        qtbot, session: Session, live: Path, tmp_path: Path) -> None:
    backup = QueueBackup(live, session.backup_dir).create_backup("before")
    # A worker that reported 10 s ago: the old gate held the restore for its whole minute.
    connection = sqlite3.connect(live)
    connection.execute("INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
                       "VALUES ('old-reporter', '{}', datetime('now', '-10 seconds'))")
    connection.commit()
    connection.close()
    workers = [PrismQWorker(live, f"engine-{n}", tmp_path / f"engine-{n}.log",
                            work_seconds=0.05) for n in (1, 2)]
    try:
        for worker in workers:
            worker.wait_started()
        wizard = RestoreWizard(session, backup)
        qtbot.addWidget(wizard)
        wizard.show()
        click_next(qtbot, wizard, PAGE_CHECK)
        click_next(qtbot, wizard, PAGE_PREPARE)
        page = wizard.prepare_page
        qtbot.waitUntil(lambda: wizard.state.preflight is not None and not page.busy,
                        timeout=TIMEOUT_MS)
        text = page.workers_label.text()
        assert text.startswith("Waiting for the workers to stop: 2 programs have the file open")
        for worker in workers:
            assert f"(PID {worker.process.pid})" in text
        assert not wizard.button(NEXT).isEnabled()
        assert page.countdown_label.isVisible()
        first = page.countdown_label.text()
        assert first.startswith("Checking again")
        qtbot.waitUntil(lambda: page.countdown_label.text() != first, timeout=TIMEOUT_MS)
        assert not wizard.button(NEXT).isEnabled()
    finally:
        for worker in workers:
            worker.stop()
    assert executed_twice(workers) == []
    done = completed(live)

    qtbot.waitUntil(lambda: wizard.button(NEXT).isEnabled(), timeout=GATE_LETS_GO_MS)
    assert page.workers_label.text().startswith("No worker is at work on the queue.")
    assert "old-reporter" in page.workers_label.text()
    assert not page.countdown_label.isVisible()
    qtbot.mouseClick(wizard.button(NEXT), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE and not wizard.busy,
                    timeout=TIMEOUT_MS)
    assert completed(live) == 0
    assert completed(wizard.state.outcome.result.safety_backup) == done
    seen = wizard.done_page.seen_label
    assert seen.isVisible() and "older heartbeats from old-reporter" in seen.text()
    connection = sqlite3.connect(live)
    names = {row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'view'")}
    connection.close()
    assert names == set(PRISMQ_VIEWS)


@pytest.mark.slow
def test_prismq_workers_starting_after_the_prepare_page_refuse_the_restore(
        qtbot, session: Session, live: Path, tmp_path: Path) -> None:
    backup = QueueBackup(live, session.backup_dir).create_backup("before")
    wizard = RestoreWizard(session, backup)
    qtbot.addWidget(wizard)
    wizard.show()
    click_next(qtbot, wizard, PAGE_CHECK)
    click_next(qtbot, wizard, PAGE_PREPARE)
    page = wizard.prepare_page
    qtbot.waitUntil(lambda: wizard.button(NEXT).isEnabled(), timeout=TIMEOUT_MS)
    assert page.workers_label.text() == "No worker is at work on the queue."
    workers = [PrismQWorker(live, f"late-{n}", tmp_path / f"late-{n}.log", work_seconds=0.05)
               for n in (1, 2)]
    try:
        for worker in workers:
            worker.wait_started()
        qtbot.mouseClick(wizard.button(NEXT), Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: wizard.currentId() == PAGE_RESTORE and not wizard.busy,
                        timeout=TIMEOUT_MS)
    finally:
        for worker in workers:
            worker.stop()
    text = wizard.restore_page.result_label.text()
    assert "refused: workers are at work on the queue: 2 programs have the file open" in text
    for worker in workers:
        assert f"(PID {worker.process.pid})" in text
    assert wizard.state.outcome is None
    assert executed_twice(workers) == []
