from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from queue_admin_gui.app.messages import Level
from queue_admin_gui.core.measurements.health import HealthLevel
from queue_admin_gui.ui.main_window import TAB_SPECS, MainWindow

LEFT = Qt.MouseButton.LeftButton


def test_start_page_until_a_database_is_open(qtbot, window, demo_db, open_db, settings):
    assert window.stack.currentWidget() is window.start_page
    assert not window.window_actions.backup.isEnabled()
    assert window.window_actions.backup.toolTip() == "Open a database first."
    open_db(demo_db)
    assert window.stack.currentWidget() is window.tabs
    assert window.session.is_queue is True
    assert window.windowTitle().startswith("queue.db")
    assert window.status.path_label.text() == str(demo_db)
    assert settings.value("last_database") == str(demo_db)
    assert window.recent_files() == [demo_db]
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [
        spec[2] for spec in TAB_SPECS]
    for key, tab_class, _title, _icon in TAB_SPECS:
        tab = window.tab_widgets[key]
        assert type(tab) is tab_class
        assert tab.progress_panel is not None


def test_open_dialog_button_opens_the_chosen_file(qtbot, window, demo_db):
    window.choose_database_file = lambda parent, start: str(demo_db)
    qtbot.mouseClick(window.start_page.open_button, LEFT)
    qtbot.waitUntil(lambda: window.session.db_path == demo_db, timeout=30_000)


def test_missing_file_is_one_sentence_and_the_start_page_stays(qtbot, window, open_db,
                                                              tmp_path, presenter):
    missing = tmp_path / "gone" / "queue.db"
    open_db(missing)
    errors = presenter.texts(Level.ERROR)
    assert len(errors) == 1 and "not found" in errors[0]
    assert window.session.db_path is None
    assert window.stack.currentWidget() is window.start_page
    assert window.start_page.problem_label.text() == errors[0]
    assert presenter.texts(Level.BUG) == []


def test_a_file_that_is_not_sqlite(qtbot, window, open_db, tmp_path, presenter):
    text_file = tmp_path / "notes.db"
    text_file.write_text("these are notes, not a database\n" * 20)
    open_db(text_file)
    errors = presenter.texts(Level.ERROR)
    assert len(errors) == 1 and "not an SQLite database" in errors[0]
    assert window.session.db_path is None
    assert text_file.read_text().startswith("these are notes")


def test_an_sqlite_file_that_is_not_a_queue(qtbot, window, open_db, tmp_path, presenter):
    other = tmp_path / "other.db"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE things (id INTEGER PRIMARY KEY)")
    connection.commit()
    connection.close()
    open_db(other)
    assert window.session.db_path == other
    assert window.session.is_queue is False
    warnings = presenter.texts(Level.WARNING)
    assert len(warnings) == 1 and "not a PrismQ queue" in warnings[0]
    assert "backup, checkpoint, VACUUM and integrity checks work" in warnings[0]
    assert window.backups_tab.backup_button.isEnabled()
    leases = window.tab_widgets["leases"]
    queue_only = [b for b in leases.findChildren(type(window.backups_tab.backup_button))
                  if "not a PrismQ queue database" in b.toolTip()]
    assert queue_only and not any(b.isEnabled() for b in queue_only)


def test_health_badge_and_sizes_appear(qtbot, window, demo_db, open_db):
    open_db(demo_db)
    qtbot.waitUntil(lambda: window.health is not None, timeout=30_000)
    assert window.status.size_label.text().startswith("DB: ")
    assert window.status.backup_label.text() == "Last backup: none yet"
    assert window.status.badge.level is HealthLevel.CRITICAL
    assert "no backup" in window.status.badge.toolTip()


def test_ctrl_b_backs_up_and_the_activity_log_records_it(qtbot, window, demo_db, open_db,
                                                        activity_log, backup_dir):
    window.show()
    open_db(demo_db)
    qtbot.waitUntil(lambda: not window.backups_tab.loading, timeout=30_000)
    with qtbot.waitSignal(window.session.backup_done, timeout=60_000):
        QTest.keyClick(window, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    assert len(list(backup_dir.glob("queue_backup_*.db"))) == 1
    qtbot.waitUntil(lambda: window.status.backup_label.text() == "Last backup: just now",
                    timeout=30_000)
    actions = [entry.action for entry in window.activity_dock.entries]
    assert "Back up" in actions and "Read health" not in actions
    saved = activity_log.read()
    backup_entry = [e for e in saved if e.action == "Back up"][0]
    assert backup_entry.result == "succeeded"
    assert backup_entry.parameters["folder"] == str(backup_dir)
    assert backup_entry.duration_seconds is not None
    assert backup_entry.database == str(demo_db)


def test_every_action_has_a_tooltip_and_main_ones_a_shortcut(window):
    actions = window.window_actions
    for action in actions.all_actions():
        assert action.toolTip(), action.text()
    assert actions.backup.shortcut().toString() == "Ctrl+B"
    assert actions.restore.shortcut().toString() == "Ctrl+R"
    assert actions.open.shortcut().toString() == "Ctrl+O"
    assert "F5" in [s.toString() for s in actions.refresh.shortcuts()]
    assert not window.windowIcon().isNull()


def test_window_layout_is_remembered(qtbot, session, settings, activity_log):
    first = MainWindow(session, settings, activity_log)
    qtbot.addWidget(first)
    first.resize(700, 500)
    first.activity_dock.hide()
    first.save_layout()
    second = MainWindow(session, settings, activity_log)
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == (700, 500)
    assert second.activity_dock.isHidden()


def test_closing_with_a_running_job_asks_then_cancels_and_waits(qtbot, window, demo_db,
                                                               open_db, presenter):
    open_db(demo_db)
    entered = threading.Event()

    def stubborn(progress, cancelled):
        entered.set()
        while not cancelled():
            threading.Event().wait(0.01)
        from queue_admin_gui.core.errors import OperationCancelled
        raise OperationCancelled("Long job was cancelled; nothing was changed.")

    job = window.session.run("Long job", stubborn, writes=True)
    assert entered.wait(10)
    presenter.answer = False
    assert not window.close()
    assert "Long job" in presenter.questions[-1].text
    assert not job.is_finished and not job.cancel_requested
    assert not window.window_actions.backup.isEnabled()
    assert "Long job" in window.window_actions.backup.toolTip()

    presenter.answer = True
    assert window.close()
    assert job.cancel_requested
    assert job.wait(0), "close returned before the worker thread ended"


def test_opening_is_refused_while_a_write_job_runs(qtbot, window, demo_db, open_db,
                                                  presenter, tmp_path):
    open_db(demo_db)
    release = threading.Event()
    job = window.session.run("Hold", lambda p, c: release.wait(30), writes=True)
    try:
        assert window.open_database(tmp_path / "x.db") is None
        assert "cannot be opened while a maintenance job runs" in presenter.texts(
            Level.WARNING)[-1]
        assert not window.window_actions.open.isEnabled()
    finally:
        release.set()
    qtbot.waitUntil(lambda: job.is_finished, timeout=10_000)
    qtbot.waitUntil(lambda: window.window_actions.open.isEnabled(), timeout=10_000)


def test_settings_saved_from_the_window_reach_the_health(qtbot, window, demo_db, open_db):
    open_db(demo_db)
    qtbot.waitUntil(lambda: window.health is not None, timeout=30_000)
    dialog = window.open_settings()
    dialog.inputs["backup_age_warning_hours"].setValue(1)
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    assert window.session.config.backup_age_warning_hours == 1
    assert Path(dialog.config_path).exists()


def test_ctrl_r_opens_the_restore_wizard_on_the_selected_backup(qtbot, window, demo_db,
                                                                open_db):
    open_db(demo_db)
    tab = window.backups_tab
    qtbot.waitUntil(lambda: not tab.loading, timeout=30_000)
    with qtbot.waitSignal(window.session.backup_done, timeout=60_000) as blocker:
        qtbot.mouseClick(tab.backup_button, LEFT)
    qtbot.waitUntil(lambda: tab.selected_backup() is not None, timeout=30_000)
    QTest.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    wizard = window.restore_wizard
    assert wizard is not None and wizard.isVisible()
    assert wizard.state.backup_path == blocker.args[0].path
    qtbot.waitUntil(lambda: not wizard.busy, timeout=30_000)
    wizard.reject()


def test_opening_another_database_stops_the_demo_workers(qtbot, window, demo_db, open_db,
                                                        tmp_path):
    open_db(demo_db)
    window.start_demo_workers(demo_db)
    workers = window.demo_workers
    assert workers.is_running
    other = tmp_path / "other.db"
    import shutil
    shutil.copyfile(demo_db, other)
    open_db(other)
    assert window.demo_workers is None
    assert not workers.is_running


@pytest.mark.slow
def test_live_plots_sit_in_their_tabs_and_receive_samples(qtbot, window, demo_db, open_db):
    from queue_admin_gui.core.files.db_files import wal_path

    assert window.wal_plot.parent() is not None
    assert window.tab_widgets["wal"].isAncestorOf(window.wal_plot)
    assert window.tab_widgets["stats"].isAncestorOf(window.stats_plots)
    open_db(demo_db)
    window.show_tab("wal")
    qtbot.waitUntil(lambda: len(window.sampler.history) >= 2, timeout=30_000)
    latest = window.sampler.last_sample
    assert latest is not None
    assert latest.wal_bytes == wal_path(demo_db).stat().st_size
    qtbot.waitUntil(lambda: window.wal_plot.curve.getData()[0] is not None
                    and len(window.wal_plot.curve.getData()[0]) >= 2, timeout=30_000)


def test_a_non_queue_file_raises_no_error_from_the_queue_tabs(qtbot, window, open_db,
                                                              tmp_path, presenter):
    other = tmp_path / "plain.db"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE things (id INTEGER PRIMARY KEY)")
    connection.commit()
    connection.close()
    open_db(other)
    leases = window.tab_widgets["leases"]
    window.show_tab("leases")
    qtbot.waitUntil(lambda: not window.session.runner.busy, timeout=30_000)
    assert presenter.texts(Level.ERROR) == []
    assert len(presenter.texts(Level.WARNING)) == 1
    assert "not a PrismQ queue" in leases.summary_label.text()
    assert not leases.refresh_button.isEnabled()
    assert "not a PrismQ queue database" in leases.refresh_button.toolTip()


def test_a_job_failing_while_the_window_closes_opens_no_box_after_it(
        qtbot, window, demo_db, open_db, presenter, activity_log):
    from queue_admin_gui.core.errors import ErrorKind, QueueMaintenanceError

    open_db(demo_db)
    entered = threading.Event()

    def waits_on_a_lock(progress, cancelled):
        entered.set()
        while not cancelled():
            threading.Event().wait(0.01)
        raise QueueMaintenanceError("VACUUM failed: the database is locked by another "
                                    "program; close it or retry.", ErrorKind.LOCKED)

    job = window.session.run("VACUUM", waits_on_a_lock, writes=True)
    assert entered.wait(10)
    presenter.answer = True
    with qtbot.waitSignal(window.session.runner.job_finished, timeout=30_000):
        assert window.close()
    assert job.state.name == "FAILED"
    assert presenter.texts(Level.ERROR) == [], "a box popped up after the window had closed"
    assert [e.result for e in activity_log.read() if e.action == "VACUUM"] == ["failed"]
