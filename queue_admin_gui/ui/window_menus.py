"""The main window's actions: menus, toolbar and keyboard shortcuts in one place.

Each action has a shortcut where an admin would look for one (Ctrl+B back up now, Ctrl+O
open, Ctrl+R restore, F5 refresh) and a tooltip; :meth:`WindowActions.update_states`
disables what cannot run now and puts the reason in the tooltip.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox, QToolBar

from .. import __version__
from .icons import icon
from .schedule_dialog import ScheduleDialog

if TYPE_CHECKING:
    from .main_window import MainWindow


class WindowActions:
    """The window's QActions and their enabled state."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.open = self._action("Open database...", "open", "Open a queue database file.",
                                 QKeySequence.StandardKey.Open, window.ask_and_open)
        self.open_demo = self._action(
            "Open the demo queue", "app-icon", "Create or reuse a demo queue and run "
            "simulated workers on it while the window is open.", None, window.open_demo)
        self.settings = self._action("Settings...", "settings", "Edit the backup folder, "
                                     "health thresholds and maintenance settings.",
                                     QKeySequence("Ctrl+,"), window.open_settings)
        self.quit = self._action("Quit", "", "Close Queue Admin (asks first when a job runs).",
                                 QKeySequence.StandardKey.Quit, window.close)
        self.backup = self._action("Back up now", "backup", "Take a backup of the database "
                                   "now, with the name typed on the Backups tab.",
                                   QKeySequence("Ctrl+B"), self._on_backup)
        self.restore = self._action("Restore...", "restore", "Restore the database from a "
                                    "backup with the guided wizard.", QKeySequence("Ctrl+R"),
                                    window.open_restore)
        self.schedule = self._action("Schedule...", "settings", "Set up the nightly backup, "
                                     "checkpoints, lease recovery and the WAL archiver as "
                                     "scheduled tasks, and see how each last ran.", None,
                                     self.open_schedule)
        self.schedule_dialog: ScheduleDialog | None = None
        self.refresh = self._action("Refresh", "refresh", "Read the tab in front and the "
                                    "health again.", QKeySequence.StandardKey.Refresh,
                                    window.refresh_all)
        self.refresh.setShortcuts([QKeySequence("F5")])
        self.about = self._action("About Queue Admin", "app-icon", "Version and purpose.",
                                  None, self._on_about)
        self.activity = window.activity_dock.toggleViewAction()
        self.activity.setShortcut(QKeySequence("Ctrl+L"))
        self.activity.setToolTip("Show or hide the activity log (every admin action).")
        self.recent_menu = QMenu("Open recent", window)
        self.recent_menu.setToolTipsVisible(True)
        self._tips = {action: action.toolTip() for action in self.all_actions()}

    def _action(self, text: str, icon_name: str, tooltip: str,
                shortcut: QKeySequence | QKeySequence.StandardKey | None,
                slot: object) -> QAction:
        action = QAction(text, self.window)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut is not None:
            action.setShortcut(shortcut)
            hint = QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)
            tooltip = f"{tooltip} ({hint})" if hint else tooltip
        action.setToolTip(tooltip)
        action.setStatusTip(tooltip)
        action.triggered.connect(slot)
        self.window.addAction(action)
        return action

    def all_actions(self) -> list[QAction]:
        """Every action of the window, for checks that each has a tooltip."""
        return [self.open, self.open_demo, self.settings, self.quit, self.backup,
                self.restore, self.schedule, self.refresh, self.about, self.activity]

    def set_recent_files(self, paths: list[Path]) -> None:
        """Fill the "Open recent" menu."""
        self.recent_menu.clear()
        for path in paths:
            action = self.recent_menu.addAction(str(path))
            action.setToolTip(f"Open {path}")
            action.triggered.connect(lambda _checked=False, p=path: self.window.open_database(p))
        self.recent_menu.setEnabled(bool(paths))

    def update_states(self) -> None:
        """Disable what cannot run now, saying why in the tooltip."""
        session = self.window.session
        busy = session.runner.write_busy
        current = session.runner.current_write_job
        busy_reason = (f"Another maintenance job is running: "
                       f"{current.title if current else 'a queued job'}. Wait for it to finish.")
        no_database = "Open a database first." if session.db_path is None else None
        for action, reason in (
            (self.backup, no_database or (busy_reason if busy else None)),
            (self.restore, no_database or (busy_reason if busy else None)),
            (self.schedule, no_database),
            (self.refresh, no_database),
            (self.open, busy_reason if busy else None),
            (self.open_demo, busy_reason if busy else None),
        ):
            action.setEnabled(reason is None)
            action.setToolTip(reason or self._tips[action])

    def _on_backup(self) -> None:
        self.window.show_tab("backups")
        self.window.backups_tab.back_up_now()

    def open_schedule(self) -> ScheduleDialog:
        """Show the Schedule dialog for the open database."""
        dialog = ScheduleDialog(self.window.session, self.window.activity_dock.log,
                                parent=self.window)
        self.schedule_dialog = dialog
        dialog.open()
        return dialog

    def _on_about(self) -> None:
        QMessageBox.about(self.window, "About Queue Admin",
                          f"Queue Admin {__version__}\n\nBackups, restore, checkpoints, "
                          "optimization and lease recovery for the PrismQ SQLite task queue.")


def build_menus(window: MainWindow, actions: WindowActions) -> QToolBar:
    """Put the actions in the menu bar and a toolbar; returns the toolbar."""
    menu_bar = window.menuBar()
    file_menu = menu_bar.addMenu("&File")
    file_menu.setToolTipsVisible(True)
    file_menu.addAction(actions.open)
    file_menu.addMenu(actions.recent_menu)
    file_menu.addAction(actions.open_demo)
    file_menu.addSeparator()
    file_menu.addAction(actions.settings)
    file_menu.addSeparator()
    file_menu.addAction(actions.quit)
    tools = menu_bar.addMenu("&Tools")
    tools.setToolTipsVisible(True)
    tools.addAction(actions.backup)
    tools.addAction(actions.restore)
    tools.addAction(actions.schedule)
    tools.addSeparator()
    tools.addAction(actions.refresh)
    view = menu_bar.addMenu("&View")
    view.addAction(actions.activity)
    help_menu = menu_bar.addMenu("&Help")
    help_menu.addAction(actions.about)
    toolbar = QToolBar("Main actions", window)
    toolbar.setObjectName("mainToolbar")
    toolbar.setIconSize(QSize(20, 20))
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    for action in (actions.open, actions.backup, actions.restore, actions.refresh,
                   actions.settings):
        toolbar.addAction(action)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
    return toolbar
