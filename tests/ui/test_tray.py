"""The tray: its notifications (when they fire, when they stay quiet), its icon and menu."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from queue_admin_gui.core.activity import RESULT_FAILED, ActivityEntry
from queue_admin_gui.core.measurements.health import HealthLevel, HealthMeasurements, assess_health
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.ui.tray import HEALTH_COLOURS, HealthNotifier, QueueTray, health_icon

MB = 1024 * 1024
#: What the offscreen platform says when a window is shown or raised (it has no window system).
OFFSCREEN_NOISE = (r"This plugin does not support propagateSizeHints\(\)",
                   r"This plugin does not support raise\(\)")


def _report(**measured: object):
    return assess_health(MaintenanceConfig(), HealthMeasurements(
        has_backups=True, last_backup_at=datetime.now(timezone.utc), **measured))


def _centre_colour(icon) -> str:
    return icon.pixmap(32, 32).toImage().pixelColor(16, 16).name()


def test_notifier_fires_on_a_new_condition_and_stays_quiet_after(qtbot):
    notifier = HealthNotifier()
    with qtbot.waitSignal(notifier.notification) as fired:
        notifier.show_report(_report(wal_size_bytes=120 * MB))
    assert fired.args[0].worse and fired.args[0].level is HealthLevel.CRITICAL
    assert "The WAL file is 120.0 MB" in fired.args[0].message
    with qtbot.assertNotEmitted(notifier.notification):
        notifier.show_report(_report(wal_size_bytes=130 * MB))
        notifier.show_report(_report(wal_size_bytes=125 * MB))


def test_notifier_fires_once_on_recovery(qtbot):
    notifier = HealthNotifier()
    notifier.show_report(_report(stale_leases=60))
    with qtbot.waitSignal(notifier.notification) as fired:
        notifier.show_report(_report(stale_leases=0))
    assert not fired.args[0].worse
    assert fired.args[0].message == "No longer found: 60 stale leases. No other problem found."
    with qtbot.assertNotEmitted(notifier.notification):
        notifier.show_report(_report(stale_leases=0))


def test_notifier_is_quiet_for_a_healthy_queue_and_after_a_reset(qtbot):
    notifier = HealthNotifier()
    with qtbot.assertNotEmitted(notifier.notification):
        notifier.show_report(_report(wal_size_bytes=MB))
    notifier.show_report(_report(wal_size_bytes=120 * MB))
    notifier.reset()  # another database was opened: its predecessor's problems are not news
    with qtbot.assertNotEmitted(notifier.notification):
        notifier.show_report(_report(wal_size_bytes=MB))


@pytest.mark.parametrize("level", [None, *HealthLevel])
def test_the_icon_is_the_badge_colour(qtbot, level):
    assert _centre_colour(health_icon(level)) == QColor(HEALTH_COLOURS[level]).name()


@pytest.fixture
def tray(qtbot, window):
    tray = QueueTray(window)
    yield tray
    QApplication.setQuitOnLastWindowClosed(True)


def test_the_tray_follows_the_window_gradings(qtbot, window, tray, open_db, demo_db):
    assert tray.icon.toolTip() == "Queue Admin\nHealth: not measured yet"
    with qtbot.waitSignal(tray.notifier.notification, timeout=30_000) as fired:
        open_db(demo_db)
    assert fired.args[0].worse
    qtbot.waitUntil(lambda: window.health is not None, timeout=30_000)
    report = window.health.report
    badge_text = window.status.badge.text_label.text()
    assert tray.icon.toolTip() == f"Queue Admin \u2013 {demo_db.name}\n{badge_text}"
    assert _centre_colour(tray.icon.icon()) == QColor(HEALTH_COLOURS[report.level]).name()


def test_the_same_grading_again_stays_quiet(qtbot, window, tray):
    report = _report(wal_size_bytes=120 * MB)
    with qtbot.waitSignal(tray.notifier.notification):
        window.health_changed.emit(report)
    with qtbot.assertNotEmitted(tray.notifier.notification):
        for _ in range(5):
            window.health_changed.emit(dataclasses.replace(report))


def test_a_failed_scheduled_run_in_the_activity_log_notifies(qtbot, window, tray):
    log = window.activity_dock.log
    log.append(ActivityEntry.now("cli backup", result=RESULT_FAILED,
                                 message="Backup failed: the disk is full; free space on D:."))
    with qtbot.waitSignal(tray.notifier.notification, timeout=30_000) as fired:
        tray.read_activity()
    assert fired.args[0].message == ("Backup failed: the disk is full; free space on D: "
                                     "(a scheduled queue-admin-cli run).")
    job = tray.read_activity()
    with qtbot.assertNotEmitted(tray.notifier.notification, wait=200):
        qtbot.waitUntil(lambda: job.is_finished, timeout=30_000)
    log.append(ActivityEntry.now("cli backup", message="Backup written and verified."))
    with qtbot.waitSignal(tray.notifier.notification, timeout=30_000) as fired:
        tray.read_activity()
    assert fired.args[0].message == "No longer found: cli backup failed. No other problem found."


def test_the_menu_reopens_backs_up_and_quits(qtbot, window, tray):
    actions = tray.menu.actions()
    assert actions[0] is tray.open_action
    assert actions[1] is window.window_actions.backup
    assert actions[-1] is tray.quit_action
    assert tray.icon.contextMenu() is tray.menu


def test_the_tray_backup_is_the_backups_tab_operation(qtbot, window, tray, open_db, demo_db,
                                                      backup_dir):
    open_db(demo_db)
    backup = tray.menu.actions()[1]
    qtbot.waitUntil(backup.isEnabled, timeout=30_000)
    with qtbot.waitSignal(window.session.backup_done, timeout=60_000):
        backup.trigger()
    assert len(list(backup_dir.glob("queue_backup_*.db"))) == 1


@pytest.mark.qt_log_ignore(*OFFSCREEN_NOISE)
def test_closing_hides_into_the_tray_when_the_setting_asks(qtbot, window, tray, open_db,
                                                           demo_db):
    open_db(demo_db)
    tray.available = True  # the offscreen platform has no tray; the wiring is the same
    window.session.config.keep_running_in_tray = True
    assert not window.close()
    assert not window.isVisible()
    assert window.sampler.is_running  # the monitor goes on
    tray.open_action.trigger()
    assert window.isVisible()
    window.session.config.keep_running_in_tray = False
    assert window.close()


def test_without_a_tray_closing_closes(qtbot, window, tray):
    tray.available = False
    window.session.config.keep_running_in_tray = True
    assert window.close()


def test_quit_from_the_tray_closes_the_window_for_good(qtbot, window, tray):
    tray.available = True
    window.session.config.keep_running_in_tray = True
    window.close()
    assert not window.isVisible()
    assert tray.quit()
    assert not window.sampler.is_running


def test_the_settings_dialog_shows_and_saves_the_switches(qtbot, session, tmp_path):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDialogButtonBox

    from queue_admin_gui.ui.settings_dialog import SettingsDialog

    path = tmp_path / "config.toml"
    dialog = SettingsDialog(MaintenanceConfig(), session.messages, config_path=path)
    qtbot.addWidget(dialog)
    tray_box = dialog.switches["keep_running_in_tray"]
    event_box = dialog.switches["event_log_enabled"]
    assert not tray_box.isChecked() and event_box.isChecked()  # the defaults
    assert "tray" in tray_box.toolTip() and "Event Log" in event_box.text()
    qtbot.mouseClick(tray_box, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(event_box, Qt.MouseButton.LeftButton)
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    saved = MaintenanceConfig.load(path)
    assert saved.keep_running_in_tray is True and saved.event_log_enabled is False


def test_the_application_window_has_a_tray_and_reports_to_the_system_log(qtbot, settings,
                                                                         monkeypatch):
    from queue_admin_gui.app.messages import RecordingPresenter
    from queue_admin_gui.core import event_log
    from queue_admin_gui.ui.launch import create_window, parse_arguments

    records: list[event_log.SystemLogRecord] = []

    class Recorder:
        def write(self, record: event_log.SystemLogRecord) -> None:
            records.append(record)

    monkeypatch.setattr(event_log, "default_writer", Recorder)
    window = create_window(parse_arguments([]), settings=settings,
                           presenter=RecordingPresenter())
    qtbot.addWidget(window)
    try:
        assert window.findChild(QueueTray) is not None
        window.activity_dock.add_entry(ActivityEntry.now(
            "VACUUM", result=RESULT_FAILED, message="VACUUM failed: the disk is full."))
        assert records == [event_log.SystemLogRecord(
            event_log.EventLevel.ERROR, "VACUUM failed: VACUUM failed: the disk is full.")]
        window.session.config.event_log_enabled = False
        window.activity_dock.add_entry(ActivityEntry.now("VACUUM"))
        assert len(records) == 1
    finally:
        window.health_timer.stop()
        assert window.session.runner.shutdown(30_000)
