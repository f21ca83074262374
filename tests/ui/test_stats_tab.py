from __future__ import annotations

from pathlib import Path

import pytest
from _tab_fixtures import execute, lock_held, open_tab, presenter_of, query, tab_session, wait_idle
from PySide6.QtCore import Qt

from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.core.errors import format_bytes
from queue_admin_gui.core.files.db_files import file_size, shm_path, wal_path
from queue_admin_gui.ui.stats_tab import StatsTab


@pytest.fixture
def demo_path(tmp_path: Path) -> Path:
    path = tmp_path / "demo queue" / "queue.db"
    create_demo_queue(path, tasks=600, seed=9)
    return path


@pytest.fixture
def session(qtbot, demo_path):
    with tab_session(demo_path) as session:
        yield session


@pytest.fixture
def tab(qtbot, session):
    return open_tab(qtbot, session, StatsTab, size=(1100, 700), load=False)


def counts_on_disk(path: Path) -> dict[str, int]:
    return dict(query(path, "SELECT status, count(*) FROM task_queue GROUP BY status"))


def test_refresh_button_shows_sizes_pages_and_task_counts(qtbot, tab, session, demo_path):
    qtbot.mouseClick(tab.refresh_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    assert tab.files_grid.value("db_size") == format_bytes(file_size(demo_path))
    assert tab.files_grid.value("wal_size") == format_bytes(file_size(wal_path(demo_path)))
    assert tab.files_grid.value("shm_size") == format_bytes(file_size(shm_path(demo_path)))
    assert tab.pages_grid.value("page_size") == "4.0 KB"
    page_count = query(demo_path, "PRAGMA page_count")[0][0]
    assert tab.pages_grid.value("page_count") == f"{page_count:,}"
    assert tab.pages_grid.value("journal_mode") == "WAL"
    assert tab.pages_grid.value("sqlite_version").count(".") == 2
    for status, count in counts_on_disk(demo_path).items():
        assert tab.task_count_shown(status) == count
    assert tab.tasks_label.text() == "600 tasks in total."
    assert tab.path_label.text() == str(demo_path)


def test_timer_refreshes_only_while_shown(qtbot, tab, session, demo_path):
    tab.refresh_timer.setInterval(100)
    assert not tab.refresh_timer.isActive()
    tab.show()
    qtbot.waitExposed(tab)
    assert tab.refresh_timer.isActive()
    qtbot.waitUntil(lambda: tab.stats is not None, timeout=30_000)
    queued = counts_on_disk(demo_path)["queued"]
    execute(demo_path, "INSERT INTO task_queue (type, payload) VALUES ('render', '{}')")
    qtbot.waitUntil(lambda: tab.task_count_shown("queued") == queued + 1, timeout=30_000)
    tab.hide()
    assert not tab.refresh_timer.isActive()
    wait_idle(qtbot, session)


@pytest.mark.usefixtures("short_lock_wait")
def test_tick_skipped_while_previous_read_runs_and_failure_shown_in_tab(qtbot, tab, session,
                                                                        demo_path):
    started = []
    session.runner.job_started.connect(started.append)
    with lock_held(demo_path, "exclusive"):
        tab._on_refresh_tick()
        for _ in range(3):
            tab._on_refresh_tick()
        assert len(started) == 1 and tab.skipped_ticks == 3
        wait_idle(qtbot, session)
    assert tab.error_label.isVisibleTo(tab)
    assert "locked" in tab.error_label.text()
    assert presenter_of(session).messages == [], "a timed refresh must not pop up boxes"
    qtbot.mouseClick(tab.refresh_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    assert not tab.error_label.isVisibleTo(tab)
    assert tab.stats is not None


def test_plain_sqlite_file_has_no_task_counts(qtbot, tab, session, tmp_path):
    plain = tmp_path / "plain.db"
    execute(plain, "CREATE TABLE t (x)")
    session.set_database(plain, is_queue=False)
    wait_idle(qtbot, session)
    assert tab.tasks_model.rowCount() == 0
    assert "Not a queue database" in tab.tasks_label.text()
    assert tab.pages_grid.value("journal_mode") == "DELETE"
