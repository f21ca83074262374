from __future__ import annotations

import sys

import pytest

from queue_admin_gui.app.messages import RecordingPresenter
from queue_admin_gui.core.demo.queue_file import demo_queue_path, is_demo_queue
from queue_admin_gui.ui.launch import create_window, parse_arguments


@pytest.fixture
def make_window(qtbot, settings):
    made = []

    def make(*argv: str):
        presenter = RecordingPresenter()
        window = create_window(parse_arguments(argv), settings=settings, presenter=presenter)
        qtbot.addWidget(window)
        made.append(window)
        return window, presenter

    yield make
    for window in made:
        window.health_timer.stop()
        assert window.session.runner.shutdown(30_000)
        window.stop_demo_workers()


def test_db_argument_opens_that_file(qtbot, make_window, demo_db, settings):
    window, presenter = make_window("--db", str(demo_db))
    qtbot.waitUntil(lambda: window.session.db_path == demo_db, timeout=30_000)
    assert window.session.is_queue
    assert settings.value("last_database") == str(demo_db)
    assert presenter.messages == []


def test_no_argument_reopens_the_last_database(qtbot, make_window, demo_db, settings):
    settings.setValue("last_database", str(demo_db))
    window, _ = make_window()
    qtbot.waitUntil(lambda: window.session.db_path == demo_db, timeout=30_000)


def test_no_argument_and_no_history_shows_the_start_page(qtbot, make_window, tmp_path,
                                                        settings):
    settings.setValue("last_database", str(tmp_path / "deleted.db"))
    window, presenter = make_window()
    assert window.stack.currentWidget() is window.start_page
    assert window.session.runner.active_jobs == []
    assert presenter.messages == []


def test_demo_creates_the_queue_runs_workers_and_stops_them_on_close(qtbot, make_window):
    window, presenter = make_window("--demo")
    path = demo_queue_path()
    qtbot.waitUntil(lambda: window.session.db_path == path, timeout=60_000)
    qtbot.waitUntil(lambda: window.demo_workers is not None, timeout=30_000)
    assert is_demo_queue(path)
    workers = window.demo_workers
    qtbot.waitUntil(lambda: workers.stats.completed > 0, timeout=30_000)
    assert window.close()
    assert not workers.is_running
    assert window.demo_workers is None


def test_demo_reuses_an_existing_demo_queue(qtbot, make_window):
    from queue_admin_gui.core.demo.queue_file import create_demo_queue

    path = demo_queue_path()
    create_demo_queue(path, tasks=50, seed=1)
    inode = path.stat().st_ino
    window, _ = make_window("--demo")
    qtbot.waitUntil(lambda: window.session.db_path == path, timeout=60_000)
    assert path.stat().st_ino == inode


def test_a_bad_command_line_is_a_usage_error_not_a_print_and_exit():
    from queue_admin_gui.ui.launch import UsageError

    with pytest.raises(UsageError) as caught:
        parse_arguments(["--db", "a.db", "--demo"])
    assert caught.value.exit_code == 2
    assert "not allowed with argument" in str(caught.value)
    with pytest.raises(UsageError) as caught:
        parse_arguments(["--version"])
    assert caught.value.exit_code == 0
    assert str(caught.value).startswith("queue-admin ")


@pytest.mark.qt_no_exception_capture
def test_a_bug_in_a_slot_reaches_the_user_with_its_traceback(qtbot, make_window, monkeypatch):
    from PySide6.QtCore import QTimer

    from queue_admin_gui.app.messages import Level
    from queue_admin_gui.ui.launch import install_crash_reporter

    monkeypatch.setattr("sys.excepthook", sys.excepthook)
    window, presenter = make_window()
    install_crash_reporter(window.session.messages)

    def broken_slot():
        raise ZeroDivisionError("division by zero in a slot")

    QTimer.singleShot(0, broken_slot)
    qtbot.waitUntil(lambda: any(m.level is Level.BUG for m in presenter.messages),
                    timeout=10_000)
    bug = next(m for m in presenter.messages if m.level is Level.BUG)
    assert "ZeroDivisionError" in bug.text
    assert "broken_slot" in bug.details
