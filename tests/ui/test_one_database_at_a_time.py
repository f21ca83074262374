"""One database at a time: opening another file (or failing to) leaves nothing of the last.

The admin opens queue A (tasks held by dead workers), then a damaged file, then queue B; at
each step every tab, the badge, the tray and the enabled actions show that file and only it.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from queue_admin_gui.app.messages import Level
from queue_admin_gui.core.database import QueueDatabase
from queue_admin_gui.ui.tray import QueueTray

JOB_MS = 30_000


def damage_task_pages(path: Path) -> None:
    """Overwrite the middle of two leaf pages of ``task_queue``: the schema stays readable."""
    connection = sqlite3.connect(path)
    try:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        root = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'task_queue'").fetchone()[0]
    finally:
        connection.close()
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        interior = handle.read(page_size)
    assert interior[0] == 5, "the demo queue's task table spans several pages"
    children = [int.from_bytes(interior[8:12], "big")]
    with open(path, "r+b") as handle:
        for page in (root, *children):
            handle.seek((page - 1) * page_size + 16)
            handle.write(b"\xa5" * (page_size - 32))


@pytest.fixture
def queue_b(tmp_path: Path) -> Path:
    """A second, small queue with three queued tasks and nothing in flight."""
    path = tmp_path / "queue b" / "queue.db"
    with QueueDatabase(path) as db:
        db.initialize_schema()
    connection = sqlite3.connect(path)
    connection.executemany("INSERT INTO task_queue (type, payload) VALUES ('b', '{}')",
                           [()] * 3)
    connection.commit()
    connection.close()
    return path


@pytest.fixture
def damaged(tmp_path: Path, demo_db: Path) -> Path:
    path = tmp_path / "damaged" / "queue.db"
    path.parent.mkdir()
    shutil.copyfile(demo_db, path)
    damage_task_pages(path)
    return path


@pytest.fixture
def tray(qtbot, window):
    tray = QueueTray(window)
    yield tray
    QApplication.setQuitOnLastWindowClosed(True)


def idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.session.runner.active_jobs, timeout=JOB_MS)


def visit_every_tab(qtbot, window) -> None:
    for key in window.tab_widgets:
        window.show_tab(key)
        idle(qtbot, window)


def test_switching_from_a_queue_to_a_damaged_file_to_another_queue(
        qtbot, window, tray, open_db, demo_db, damaged, queue_b, presenter):
    leases = window.tab_widgets["leases"]
    stats = window.tab_widgets["stats"]
    optimize = window.tab_widgets["optimize"]
    wal = window.tab_widgets["wal"]

    # -- queue A: tasks in flight, some stale; the requeue can run --------------------------
    open_db(demo_db)
    visit_every_tab(qtbot, window)
    qtbot.waitUntil(lambda: leases.in_flight_model.rowCount() > 0, timeout=JOB_MS)
    assert leases.requeue_button.isEnabled()
    assert stats.path_label.text() == str(demo_db)
    checkpoint = window.session.run_checkpoint("PASSIVE")
    qtbot.waitUntil(lambda: checkpoint.is_finished, timeout=JOB_MS)
    assert wal.result_grid.value("mode") == "PASSIVE"
    qtbot.waitUntil(lambda: window.status.badge.level is not None, timeout=JOB_MS)

    # -- the damaged file: one message, red "Damaged", nothing of A -------------------------
    open_db(damaged)
    qtbot.waitUntil(lambda: optimize.findings.count() > 0, timeout=JOB_MS)
    visit_every_tab(qtbot, window)
    assert window.status.path_label.text() == str(damaged)
    assert window.status.badge.text_label.text() == "Health: Damaged"
    errors = presenter.texts(Level.ERROR)
    assert len(errors) == 1, errors
    assert str(damaged) in errors[0] and "restore it from the newest backup" in errors[0]
    assert errors[0].count("malformed") <= 1
    assert leases.in_flight_model.rowCount() == 0
    assert leases.workers_model.rowCount() == 0
    assert "could not be read" in leases.summary_label.text()
    assert not leases.requeue_button.isEnabled()
    assert stats.path_label.text() == str(damaged)
    assert str(demo_db) not in stats.path_label.text()
    assert wal.result_grid.value("mode") == "\u2013"  # A's checkpoint is not this file's
    findings = [optimize.findings.item(i).text() for i in range(optimize.findings.count())]
    assert any(text.startswith("task_queue (table): page") for text in findings), findings
    assert not optimize.restore_button.isHidden()
    assert not optimize.vacuum_button.isEnabled()
    assert "damaged" in optimize.vacuum_button.toolTip()
    assert "damaged" in tray.icon.toolTip().lower()

    # -- queue B: its own figures, no trace of the damage -----------------------------------
    open_db(queue_b)
    visit_every_tab(qtbot, window)
    qtbot.waitUntil(lambda: stats.task_count_shown("queued") == 3, timeout=JOB_MS)
    assert window.session.damage is None
    assert leases.in_flight_model.rowCount() == 0
    assert "0 tasks in flight" in leases.summary_label.text()
    assert leases.requeue_button.isEnabled()
    assert stats.path_label.text() == str(queue_b)
    assert optimize.findings.count() == 0
    assert optimize.integrity_label.text() == "Not checked yet from this window."
    assert optimize.restore_button.isHidden()
    assert optimize.vacuum_button.isEnabled()
    qtbot.waitUntil(lambda: window.status.badge.level is not None, timeout=JOB_MS)
    assert "Damaged" not in window.status.badge.text_label.text()
    assert "damaged" not in window.status.badge.toolTip()
    assert "damaged" not in tray.icon.toolTip().lower()
    assert all("damaged" not in condition.text
               for condition in tray.notifier.tracker.active.values())
    assert len(presenter.texts(Level.ERROR)) == 1  # nothing more was told about the old file


def test_a_file_that_cannot_be_opened_closes_the_one_that_was_open(
        qtbot, window, open_db, demo_db, tmp_path, presenter):
    leases = window.tab_widgets["leases"]
    open_db(demo_db)
    window.show_tab("leases")
    qtbot.waitUntil(lambda: leases.in_flight_model.rowCount() > 0, timeout=JOB_MS)
    missing = tmp_path / "gone" / "queue.db"
    open_db(missing)
    assert window.session.db_path is None
    assert window.stack.currentWidget() is window.start_page
    assert leases.in_flight_model.rowCount() == 0
    assert not leases.requeue_button.isEnabled()
    assert window.status.path_label.text() == "No database open"
    [error] = presenter.texts(Level.ERROR)
    assert window.start_page.problem_label.text() == error


def test_a_read_still_running_for_the_last_file_is_not_shown_for_the_new_one(
        qtbot, window, open_db, demo_db, queue_b):
    leases = window.tab_widgets["leases"]
    open_db(demo_db)
    window.show_tab("leases")
    idle(qtbot, window)
    leases.refresh()  # a read of A still running when B opens
    job = window.open_database(queue_b)
    qtbot.waitUntil(lambda: job.is_finished, timeout=JOB_MS)
    idle(qtbot, window)
    assert window.session.db_path == queue_b
    assert leases.in_flight_model.rowCount() == 0
    assert "0 tasks in flight" in leases.summary_label.text()


def test_a_file_whose_schema_is_damaged_opens_as_an_incident_to_restore(
        qtbot, window, open_db, demo_db, tmp_path, presenter):
    broken = tmp_path / "broken" / "queue.db"
    broken.parent.mkdir()
    shutil.copyfile(demo_db, broken)
    with open(broken, "r+b") as handle:  # page 1 after its header: the schema is unreadable
        handle.seek(100)
        handle.write(b"\xa5" * 3000)
    open_db(demo_db)
    open_db(broken)
    assert window.session.db_path == broken
    assert window.stack.currentWidget() is window.tabs
    assert window.status.badge.text_label.text() == "Health: Damaged"
    [error] = presenter.texts(Level.ERROR)
    assert str(broken) in error and error.count("malformed") == 1
    leases = window.tab_widgets["leases"]
    window.show_tab("leases")
    idle(qtbot, window)
    assert leases.in_flight_model.rowCount() == 0
    assert not leases.requeue_button.isEnabled()
    assert window.backups_tab.restore_button.toolTip() != "Open a database first."
