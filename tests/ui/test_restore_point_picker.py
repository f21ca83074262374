"""The wizard's "a point in time" path over a real archive made by a real archiver."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWizard

from queue_admin_gui.app.jobs import JobRunner
from queue_admin_gui.app.messages import Messages, RecordingPresenter
from queue_admin_gui.app.monitor import Sampler
from queue_admin_gui.app.session import Session
from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.archive.controller import ArchiveController, default_archive_dir
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.ui.palette import AMBER
from queue_admin_gui.ui.restore_wizard import (
    PAGE_CHECK,
    PAGE_CHOOSE,
    PAGE_DONE,
    PAGE_PREPARE,
    PAGE_RESTORE,
    RestoreWizard,
)

TIMEOUT_MS = 60_000
LEFT = Qt.MouseButton.LeftButton


def rows(path: Path) -> list[tuple[int, str, str]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(
            "SELECT id, type, status FROM task_queue ORDER BY id").fetchall()
    finally:
        connection.close()


def commit(path: Path, kind: str, count: int) -> None:
    """One transaction adding ``count`` tasks and completing the oldest queued one."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO task_queue (type, payload) VALUES (?, '{}')",
                               [(kind,)] * count)
        connection.execute("UPDATE task_queue SET status = 'completed' WHERE id = "
                           "(SELECT min(id) FROM task_queue WHERE status = 'queued')")
        connection.execute("COMMIT")
    finally:
        connection.close()


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    return tmp_path / "backup folder"


@pytest.fixture
def session(queue_db: Path, backups: Path) -> Iterator[Session]:
    runner = JobRunner()
    config = MaintenanceConfig(backup_dir=backups)
    yield Session(runner, Messages(RecordingPresenter()), config, queue_db)
    assert runner.shutdown(TIMEOUT_MS)


@pytest.fixture
def archiver(queue_db: Path, backups: Path) -> Iterator[ArchiveController]:
    controller = ArchiveController(queue_db, default_archive_dir(backups))
    controller.start()
    yield controller
    controller.stop()


def wait_for(qtbot, condition) -> None:
    qtbot.waitUntil(condition, timeout=TIMEOUT_MS)


def archived(qtbot, archiver: ArchiveController, count: int) -> float:
    """Wait until the archiver saw ``count`` transactions; the instant it saw the last."""
    wait_for(qtbot, lambda: archiver.status().transactions >= count)
    seen = archiver.status().last_seen_commit_at
    assert seen is not None
    return seen


def later_than(qtbot, stamp: float, seconds: float) -> float:
    """Let the clock pass ``stamp + seconds``; returns the instant it did."""
    wait_for(qtbot, lambda: time.time() > stamp + seconds)
    return time.time()


def open_wizard(qtbot, session: Session) -> RestoreWizard:
    wizard = RestoreWizard(session)
    qtbot.addWidget(wizard)
    wizard.resize(1024, 700)
    wizard.show()
    picker = wizard.choose_page.point_picker
    wait_for(qtbot, lambda: picker.status is not None and not wizard.busy)
    return wizard


def click_next(qtbot, wizard: RestoreWizard, expected: int) -> None:
    button = wizard.button(QWizard.WizardButton.NextButton)
    wait_for(qtbot, lambda: button.isVisible() and button.isEnabled())
    qtbot.mouseClick(button, LEFT)
    wait_for(qtbot, lambda: wizard.currentId() == expected)


@pytest.mark.slow
def test_the_wizard_restores_exactly_the_state_at_the_chosen_instant(
        qtbot, session: Session, queue_db: Path, archiver: ArchiveController) -> None:
    wait_for(qtbot, lambda: archiver.status().generation is not None
             and not archiver.status().snapshot_pending)
    commit(queue_db, "first", 3)
    first_seen = archived(qtbot, archiver, 1)
    commit(queue_db, "second", 2)
    second_seen = archived(qtbot, archiver, 2)
    expected = rows(queue_db)
    taken = QueueBackup(queue_db, session.backup_dir).create_backup()
    instant = later_than(qtbot, second_seen, 0.3)
    later_than(qtbot, instant, 0.3)
    commit(queue_db, "third", 4)
    third_seen = archived(qtbot, archiver, 3)
    later_than(qtbot, third_seen, 1.2)  # a heartbeat stamps the archive past the last commit
    assert first_seen < second_seen < instant < third_seen
    wizard = open_wizard(qtbot, session)
    picker = wizard.choose_page.point_picker
    assert picker.instant_edit.isEnabled()
    assert picker.timeline.spans and not picker.timeline.gaps
    assert "1 generation, 0 gaps" in picker.summary_label.text()
    backup_at = QueueBackup(queue_db, session.backup_dir).list_backups()[0].created_at
    assert taken.name == QueueBackup(queue_db, session.backup_dir).list_backups()[0].path.name
    assert picker.timeline.backups == [backup_at.timestamp()]  # a tick on the timeline
    assert picker.instant_edit.minimumDateTime().toMSecsSinceEpoch() / 1000 <= instant
    picker.set_instant(instant)
    assert abs(picker.chosen_instant() - instant) < 0.002

    qtbot.mouseClick(picker.rebuild_button, LEFT)
    wait_for(qtbot, lambda: wizard.currentId() == PAGE_CHECK)
    rebuilt = wizard.state.backup_path
    assert rebuilt is not None and rebuilt.parent == session.backup_dir
    assert rebuilt.name.startswith("queue_backup_at_")
    assert rows(rebuilt) == expected
    wait_for(qtbot, lambda: wizard.check_page.isComplete())
    assert wizard.check_page.consequences_label.text().startswith(
        "4 tasks created after this backup will be lost; 1 task completed after it will run "
        "again.")
    archiver.stop()  # the restore then holds the live database alone
    click_next(qtbot, wizard, PAGE_PREPARE)
    click_next(qtbot, wizard, PAGE_RESTORE)
    wait_for(qtbot, lambda: wizard.currentId() == PAGE_DONE and not wizard.busy)

    assert rows(queue_db) == expected
    assert [kind for _, kind, _ in expected].count("second") == 2
    assert "third" not in {kind for _, kind, _ in rows(queue_db)}


@pytest.mark.slow
def test_an_instant_in_a_gap_is_refused_with_the_nearest_instants(
        qtbot, session: Session, queue_db: Path, archiver: ArchiveController) -> None:
    wait_for(qtbot, lambda: not archiver.status().snapshot_pending
             and archiver.status().generation is not None)
    commit(queue_db, "first", 1)
    archived(qtbot, archiver, 1)
    archiver.stop()
    stopped = time.time()
    commit(queue_db, "unarchived", 1)
    later_than(qtbot, stopped, 1.0)
    archiver.start()
    wait_for(qtbot, lambda: not archiver.status().snapshot_pending
             and archiver.status().generation is not None)
    later_than(qtbot, time.time(), 1.2)
    wizard = open_wizard(qtbot, session)
    page = wizard.choose_page
    picker = page.point_picker
    wait_for(qtbot, lambda: bool(picker.timeline.gaps))
    gap = picker.status.gaps[0]
    assert "1 gap)" in picker.summary_label.text()
    picker.set_instant((gap.after + gap.before) / 2)

    qtbot.mouseClick(picker.rebuild_button, LEFT)
    wait_for(qtbot, lambda: page.job is not None and page.job.is_finished)

    assert wizard.currentId() == PAGE_CHOOSE
    text = page.stage_label.text()
    assert "falls in a gap of the archive; the nearest restorable instants are" in text
    assert not list(session.backup_dir.glob("queue_backup_at_*"))


@pytest.mark.slow
def test_the_timeline_shows_the_monitors_wal_and_queue_history(
        qtbot, session: Session, queue_db: Path, archiver: ArchiveController) -> None:
    sampler = Sampler(session, capacity=1000)
    assert session.histories == (sampler.history, sampler.tasks)
    wait_for(qtbot, lambda: archiver.status().generation is not None
             and not archiver.status().snapshot_pending)
    start = time.time()
    for step in range(20):  # what the monitor recorded while the archive ran
        moment = start + step * 0.05
        sampler.history.append((moment, 1000.0 * step, 0, 0, 0, 0, 0, 0))
        sampler.tasks.append((moment, 40.0 - step, 0, 0, 0, 0, 0))
    commit(queue_db, "first", 1)
    archived(qtbot, archiver, 1)
    later_than(qtbot, start + 1.0, 0.2)
    wizard = open_wizard(qtbot, session)
    timeline = wizard.choose_page.point_picker.timeline
    assert timeline.wal_history is not None and timeline.queued_history is not None
    times, wal = timeline.wal_history
    assert list(wal[:20]) == [1000.0 * step for step in range(20)]
    assert list(timeline.queued_history[1][:20]) == [40.0 - step for step in range(20)]
    image = timeline.grab().toImage()
    amber = QColor(AMBER)
    assert any(image.pixelColor(x, y).name() == amber.name()
               for x in range(image.width()) for y in range(image.height() - 20,
                                                             image.height()))
