"""The tray icon: the queue's health where admins look, and news when it changes.

:class:`QueueTray` shows a dot in the health badge's colour with the badge's words as its
tooltip, and says in a notification when the health gets worse (a finding that is new or
more severe, a maintenance run that failed, from the window or from a scheduled
``queue-admin-cli``) and when it recovers, never twice for the same condition
(:class:`~..core.alerts.AlertTracker` decides; :class:`HealthNotifier` tells). It follows
the window's own gradings (``MainWindow.health_changed``) and reads the activity log in a
background job now and then. With the setting "keep running in the tray" on, closing the
window hides it and the monitor keeps going; the tray menu reopens it, backs up (the
window's own Back up now action) or quits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

from ..app.jobs import Job, is_background, mark_background
from ..core.measurements.alerts import (
    SOURCE_ACTIVITY,
    SOURCE_HEALTH,
    Alert,
    AlertTracker,
    Condition,
    health_conditions,
    read_activity_conditions,
)
from ..core.measurements.health import HealthLevel, HealthReport
from .palette import GREEN, GREY, RED, WARN_BORDER, WHITE

if TYPE_CHECKING:
    from .main_window import MainWindow

#: The badge's border colours; grey while the health is not known.
HEALTH_COLOURS = {HealthLevel.OK: GREEN, HealthLevel.WARNING: WARN_BORDER,
                  HealthLevel.CRITICAL: RED, None: GREY}
#: The activity log is read again at most this often (and after every job of the window).
ACTIVITY_READ_SECONDS = 30.0
NOTIFICATION_MS = 15_000
_MESSAGE_ICONS = {HealthLevel.OK: QSystemTrayIcon.MessageIcon.Information,
                  HealthLevel.WARNING: QSystemTrayIcon.MessageIcon.Warning,
                  HealthLevel.CRITICAL: QSystemTrayIcon.MessageIcon.Critical}


def health_icon(level: HealthLevel | None) -> QIcon:
    """A round dot in the colour of ``level`` (grey for not measured)."""
    pixmap = QPixmap(32, 32)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QColor(WHITE))
    painter.setBrush(QColor(HEALTH_COLOURS[level]))
    painter.drawEllipse(2, 2, 28, 28)
    painter.end()
    return QIcon(pixmap)


class HealthNotifier(QObject):
    """Turns gradings and activity failures into alerts, each condition told once."""

    notification = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tracker = AlertTracker()

    def show_report(self, report: HealthReport) -> None:
        """A new grading: alert on findings that are new or worse, and on cleared ones."""
        self._tell(self.tracker.update(SOURCE_HEALTH, health_conditions(report)))

    def show_activity(self, conditions: list[Condition]) -> None:
        """The failures found in the activity log: alert on new ones and on fixed ones."""
        self._tell(self.tracker.update(SOURCE_ACTIVITY, conditions))

    def reset(self) -> None:
        """Another database: forget what was active, without alerting."""
        self.tracker.reset()

    def _tell(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.notification.emit(alert)


class QueueTray(QObject):
    """The tray icon, its menu, its notifications and closing to the tray."""

    def __init__(self, window: MainWindow, icon: QSystemTrayIcon | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.clock = clock
        #: Whether this desktop has a tray; without one the window never hides into it.
        self.available = QSystemTrayIcon.isSystemTrayAvailable()
        self.notifier = HealthNotifier(self)
        self.icon = icon or QSystemTrayIcon(self)
        self._quitting = False
        self._activity_job: Job | None = None
        self._activity_read_at: float | None = None
        self.menu = QMenu()
        self.open_action = QAction("Open Queue Admin", self)
        self.open_action.triggered.connect(self.show_window)
        self.quit_action = QAction("Quit", self)
        self.quit_action.setToolTip("Stop monitoring and close Queue Admin.")
        self.quit_action.triggered.connect(self.quit)
        self.menu.addAction(self.open_action)
        self.menu.addAction(window.window_actions.backup)  # the very action of the window
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_activated)
        self._show_unknown()
        self.notifier.notification.connect(self._on_alert)
        window.health_changed.connect(self._on_health)
        window.closing.connect(self.icon.hide)
        self.session.database_changed.connect(self._on_database_changed)
        self.session.runner.job_finished.connect(self._on_job_finished)
        window.installEventFilter(self)
        if self.available:
            self.icon.show()

    # -- what the icon shows --------------------------------------------------------------

    def _show_unknown(self) -> None:
        self.icon.setIcon(health_icon(None))
        self.icon.setToolTip("Queue Admin\nHealth: not measured yet")

    def _on_health(self, report: HealthReport) -> None:
        self.icon.setIcon(health_icon(report.level))
        path = self.session.db_path
        name = f" \u2013 {path.name}" if path is not None else ""
        self.icon.setToolTip(f"Queue Admin{name}\nHealth: {report.headline()}")
        self.notifier.show_report(report)
        read_at = self._activity_read_at
        if read_at is None or self.clock() - read_at >= ACTIVITY_READ_SECONDS:
            self.read_activity()

    def _on_alert(self, alert: Alert) -> None:
        self.icon.showMessage(alert.title, alert.message, _MESSAGE_ICONS[alert.level],
                              NOTIFICATION_MS)

    def _on_database_changed(self, _path: object) -> None:
        self.notifier.reset()
        self._show_unknown()
        self._activity_read_at = None  # read the new file's failures with its first grade

    # -- the activity log -----------------------------------------------------------------

    def read_activity(self) -> Job | None:
        """Look for failed runs in the activity log in a background job (one at a time)."""
        if self._activity_job is not None and not self._activity_job.is_finished:
            return None
        self._activity_read_at = self.clock()
        log = self.window.activity_dock.log
        database = self.session.db_path
        generation = self.session.generation

        def show(conditions: list[Condition]) -> None:
            if self.session.is_current(generation):
                self.notifier.show_activity(conditions)

        self._activity_job = mark_background(self.session.run(
            "Read the activity log",
            lambda progress, cancelled: read_activity_conditions(log, database),
            on_done=show, report_errors=False))
        return self._activity_job

    def _on_job_finished(self, job: Job) -> None:
        if not is_background(job):
            self.read_activity()

    # -- the window -----------------------------------------------------------------------

    @property
    def keeps_running(self) -> bool:
        """True when closing the window should leave the monitor running in the tray."""
        return bool(self.available and self.session.config.keep_running_in_tray)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        """Closing the window hides it instead, while the setting asks for that."""
        if (watched is self.window and event.type() == QEvent.Type.Close
                and not self._quitting and self.keeps_running):
            event.ignore()
            QApplication.setQuitOnLastWindowClosed(False)
            self.window.hide()
            return True
        return super().eventFilter(watched, event)

    def show_window(self) -> None:
        """Bring the window back from the tray."""
        QApplication.setQuitOnLastWindowClosed(True)
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def quit(self) -> bool:
        """Close the window for good (it asks first when a job runs); True when it closed."""
        self._quitting = True
        if not self.window.close():
            self._quitting = False
            return False
        self.icon.hide()
        QApplication.quit()
        return True

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger,
                      QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_window()


__all__ = ["HEALTH_COLOURS", "HealthNotifier", "QueueTray", "health_icon"]
