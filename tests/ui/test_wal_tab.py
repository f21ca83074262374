from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from _tab_fixtures import lock_held, open_tab, presenter_of, query, tab_session, wait_idle
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QTabWidget

from queue_admin_gui.app.messages import Level
from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.database import connect
from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.core.errors import format_bytes
from queue_admin_gui.core.files.db_files import file_size, wal_path
from queue_admin_gui.ui.activity_log import ActivityLogDock
from queue_admin_gui.ui.wal_tab import WalTab


@pytest.fixture
def demo_path(tmp_path: Path) -> Path:
    path = tmp_path / "demo queue" / "queue.db"
    create_demo_queue(path, tasks=200, seed=5)
    return path


def add_tasks(connection: sqlite3.Connection, count: int) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(
        "INSERT INTO task_queue (type, payload) VALUES ('render', ?)",
        [(f'{{"format": "png", "note": "{"x" * 500}"}}',) for _ in range(count)])
    connection.execute("COMMIT")


@pytest.fixture
def writer(demo_path):
    """A writer that stays connected (so closing it does not checkpoint) and grows the WAL."""
    connection = connect(demo_path)
    connection.execute("PRAGMA wal_autocheckpoint=0")
    add_tasks(connection, 300)
    yield connection
    connection.close()


@pytest.fixture
def session(qtbot, demo_path):
    with tab_session(demo_path) as session:
        yield session


@pytest.fixture
def tab(qtbot, session):
    return open_tab(qtbot, session, WalTab)


def click_checkpoint(qtbot, tab, session, mode):
    with qtbot.waitSignal(session.checkpoint_done, timeout=60_000) as blocker:
        qtbot.mouseClick(tab.checkpoint_buttons[mode], Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    return blocker.args[0]


def test_shows_wal_size_and_settings(qtbot, writer, session, demo_path):
    tab = WalTab(session)
    qtbot.addWidget(tab)
    qtbot.mouseClick(tab.refresh_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    wal_bytes = file_size(wal_path(demo_path))
    assert wal_bytes > 100_000
    assert tab.wal_grid.value("wal_size").endswith(("KB", "MB"))
    assert tab.wal_grid.value("journal_mode") == "WAL"
    assert tab.wal_grid.value("wal_autocheckpoint").startswith("1,000 pages")
    assert tab.wal_grid.value("journal_size_limit") == "no limit (-1)"
    assert tab.plot_area.count() == 0


def test_truncate_without_reader_empties_the_wal(qtbot, writer, tab, session, demo_path):
    before = file_size(wal_path(demo_path))
    assert before > 0
    result = click_checkpoint(qtbot, tab, session, "TRUNCATE")
    assert result.busy == 0 and result.wal_bytes_before == before
    assert file_size(wal_path(demo_path)) == 0
    assert tab.result_grid.value("busy") == "yes"
    assert tab.result_grid.value("log_frames") == f"{result.log_frames:,}"
    assert "\u2192 0 bytes" in tab.result_grid.value("wal_bytes")
    assert "the -wal file is now empty" in tab.result_label.text()
    qtbot.waitUntil(lambda: tab.wal_grid.value("wal_size") == "0 bytes", timeout=30_000)
    assert any("Checkpoint TRUNCATE" in text for text in presenter_of(session).texts(Level.INFO))


def test_reader_keeps_frames_behind_and_user_is_told(qtbot, writer, tab, session, demo_path):
    with lock_held(demo_path, "read"):
        add_tasks(writer, 100)  # frames newer than the reader's snapshot
        result = click_checkpoint(qtbot, tab, session, "PASSIVE")
    assert result.busy == 0
    assert 0 < result.checkpointed_frames < result.log_frames
    left = result.log_frames - result.checkpointed_frames
    # not busy, yet not finished: frames were left behind
    assert tab.result_grid.value("busy") == (
        f"no: {left:,} of {result.log_frames:,} frames left")
    assert "because a reader is still using them" in tab.result_label.text()
    warnings = presenter_of(session).texts(Level.WARNING)
    assert len(warnings) == 1 and "reader" in warnings[0]


@pytest.mark.usefixtures("short_lock_wait")
def test_truncate_with_reader_reports_busy_and_keeps_the_wal(qtbot, writer, tab, session,
                                                               demo_path):
    with lock_held(demo_path, "read"):
        before = file_size(wal_path(demo_path))
        result = click_checkpoint(qtbot, tab, session, "TRUNCATE")
        assert file_size(wal_path(demo_path)) == before
    assert result.busy == 1
    assert tab.result_grid.value("busy").startswith("no: busy")
    assert "could not finish" in tab.result_label.text()
    assert "could not finish" in presenter_of(session).texts(Level.WARNING)[0]


@pytest.mark.usefixtures("short_lock_wait")
def test_locked_database_checkpoint_tells_user_and_changes_nothing(qtbot, writer, tab,
                                                                  session, demo_path):
    count = query(demo_path, "SELECT count(*) FROM task_queue")[0][0]
    before = file_size(wal_path(demo_path))
    with lock_held(demo_path, "write"):
        click_checkpoint(qtbot, tab, session, "FULL")
        assert file_size(wal_path(demo_path)) == before
    told = presenter_of(session).texts(Level.WARNING) + presenter_of(session).texts(Level.ERROR)
    assert len(told) == 1 and "could not finish" in told[0]
    assert query(demo_path, "SELECT count(*) FROM task_queue")[0][0] == count


def test_checkpoint_buttons_wait_for_another_write_job(qtbot, tab, session):
    release = threading.Event()
    job = session.run("VACUUM", lambda progress, cancelled: release.wait(30), writes=True)
    for button in tab.checkpoint_buttons.values():
        assert not button.isEnabled()
        assert "Another maintenance job is running: VACUUM" in button.toolTip()
    with qtbot.waitSignal(job.finished, timeout=30_000):
        release.set()
    assert all(button.isEnabled() for button in tab.checkpoint_buttons.values())


def wal_tab_behind_another(qtbot, session) -> tuple[QTabWidget, WalTab]:
    """The WAL tab, loaded once, in a tab widget that shows another tab in front of it."""
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    tabs.addTab(QLabel("another tab"), "Other")
    tab = WalTab(session)
    tabs.addTab(tab, "WAL")
    tabs.show()
    tab.refresh()
    wait_idle(qtbot, session)
    return tabs, tab


def test_coming_back_to_the_tab_shows_the_wal_as_it_is_now(qtbot, session, demo_path):
    tabs, tab = wal_tab_behind_another(qtbot, session)
    assert tab.wal_grid.value("wal_size") == "0 bytes"
    connection = connect(demo_path)
    try:
        connection.execute("PRAGMA wal_autocheckpoint=0")
        add_tasks(connection, 300)
        grown = file_size(wal_path(demo_path))
        assert grown > 0
        tabs.setCurrentWidget(tab)
        qtbot.waitUntil(lambda: tab.wal_grid.value("wal_size") != "0 bytes", timeout=30_000)
        wait_idle(qtbot, session)
        assert tab.wal_grid.value("wal_size") == format_bytes(grown)
    finally:
        connection.close()


def test_coming_back_to_the_tab_of_a_vanished_file_pops_no_box(qtbot, session, demo_path):
    tabs, tab = wal_tab_behind_another(qtbot, session)
    demo_path.unlink()
    with qtbot.waitSignal(session.runner.job_finished, timeout=30_000) as blocker:
        tabs.setCurrentWidget(tab)
    assert blocker.args[0].state.name == "FAILED"
    assert presenter_of(session).texts(Level.ERROR) == []
    qtbot.mouseClick(tab.refresh_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    [error] = presenter_of(session).texts(Level.ERROR)
    assert "not found" in error


@pytest.mark.usefixtures("short_lock_wait")
def test_a_checkpoint_that_could_not_finish_says_so_in_the_activity_log(
        qtbot, writer, tab, session, demo_path, tmp_path):
    dock = ActivityLogDock(session.runner, session.messages,
                           ActivityLog(tmp_path / "logs" / "activity.jsonl"))
    qtbot.addWidget(dock)
    with lock_held(demo_path, "read"):
        result = click_checkpoint(qtbot, tab, session, "TRUNCATE")
    wait_idle(qtbot, session)
    assert result.busy == 1
    [entry] = [e for e in dock.entries if e.action == "Checkpoint TRUNCATE"]
    assert "could not finish" in entry.message
    assert "could not finish" in dock.cell_text(dock.model.rowCount() - 1, 3)
    [saved] = [e for e in dock.log.read() if e.action == "Checkpoint TRUNCATE"]
    assert "could not finish" in saved.message
