"""The main window: a start page or the maintenance tabs, the status bar and the activity log.

The window owns no database connection. Opening a file is a read job (it checks that the
file is SQLite and whether it is a queue); the sampler's reading every second gives the
status bar its sizes and the health badge its WAL and free-page grades, and a slower health
read adds what a sample does not measure (stale leases, backups, free space); each tab runs
its own jobs through the shared :class:`Session`. While a
write job runs, the other write actions are disabled with a tooltip naming the job, and
closing the window asks first, then cancels and waits for the worker threads.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication, QShowEvent
from PySide6.QtWidgets import (
    QMainWindow,
    QStackedWidget,
    QTabWidget,
    QWidget,
)

from ..app.jobs import Job, is_background, mark_background
from ..app.monitor import Sampler
from ..app.session import Session
from ..core.activity import ActivityLog
from ..core.backups.manifest import is_rebuilt_file_name
from ..core.errors import ErrorKind, QueueAdminError
from ..core.measurements.health import HealthSnapshot, damage_of
from .activity_log import ActivityLogDock
from .backups_tab import BackupsTab, open_restore_wizard
from .database_opener import (
    OpenedDatabase,
    ask_for_database_file,
    inspect_database,
    recent_files,
    remember_file,
)
from .health_watch import HealthWatch
from .help_viewer import install_help
from .icons import app_icon, icon
from .leases_tab import LeasesTab
from .optimize_tab import OptimizeTab
from .settings_dialog import SettingsDialog
from .start_page import StartPage
from .stats_plots import StatsPlotsWidget
from .stats_tab import StatsTab
from .status_bar import DatabaseStatusBar
from .wal_plot import WalPlotWidget
from .wal_tab import WalTab
from .window_menus import WindowActions, build_menus

DEFAULT_SIZE = (1200, 800)
#: Room kept for a title bar while the window manager has not said how tall its own is.
TITLE_BAR_ALLOWANCE = 32
#: Default height of the activity log dock: a few lines, the tabs keep the room.
DOCK_HEIGHT = 130

#: (key, module, class, title, icon) of each maintenance tab, in the order shown.
#: The tabs in order: key, class, title, icon.
TAB_SPECS = (
    ("backups", BackupsTab, "Backups", "backup"),
    ("wal", WalTab, "WAL / Checkpoint", "checkpoint"),
    ("optimize", OptimizeTab, "Optimization", "vacuum"),
    ("leases", LeasesTab, "Leases", "requeue"),
    ("stats", StatsTab, "Stats", "analyze"),
)


class MainWindow(QMainWindow):
    """Start page or tabs, menus, toolbar, status bar with health, activity log dock."""

    database_opened = Signal(object)
    closing = Signal()
    #: The HealthReport the badge shows, each time it is graded (the tray listens too).
    health_changed = Signal(object)

    def __init__(self, session: Session, settings: QSettings,
                 activity_log: ActivityLog | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.demo_workers: object | None = None
        self._fitted_when_shown = False
        self._open_job: Job | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.restore_wizard: QWidget | None = None
        #: Asks for a database file; returns "" when cancelled (replaceable in tests).
        self.choose_database_file = ask_for_database_file
        self.setWindowTitle("Queue Admin")
        self.setWindowIcon(app_icon())
        self.resize(*DEFAULT_SIZE)
        session.messages.parent_widget = self

        self.start_page = StartPage(self)
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.tab_widgets: dict[str, QWidget] = {}
        for key, tab_class, title, icon_name in TAB_SPECS:
            self.add_tab(key, tab_class(session), title, icon_name)
        self.sampler = Sampler(session, parent=self)
        self.sampler.job_hook = mark_background
        self._add_live_plots()
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(self.tabs)
        self.setCentralWidget(self.stack)

        self.status = DatabaseStatusBar(self)
        self.setStatusBar(self.status)
        session.messages.status_callback = self._show_status_message
        self.activity_dock = ActivityLogDock(session.runner, session.messages, activity_log,
                                             self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.activity_dock)
        self.resizeDocks([self.activity_dock], [DOCK_HEIGHT], Qt.Orientation.Vertical)
        self.window_actions = WindowActions(self)
        build_menus(self, self.window_actions)
        self.help_viewer = install_help(self, self._front_tab_key)

        self.health_watch = HealthWatch(session, self.sampler, self.status, self)
        optimize_tab = self.tab_widgets["optimize"]
        if isinstance(optimize_tab, OptimizeTab):
            optimize_tab.restore_requested.connect(self.open_restore_newest)
        self.health_watch.changed.connect(self.health_changed)
        self.start_page.open_requested.connect(self.ask_and_open)
        self.start_page.recent_requested.connect(self.open_database)
        self.start_page.usual_requested.connect(self.open_database)
        self.start_page.demo_requested.connect(self.open_demo)
        session.runner.write_busy_changed.connect(self._on_write_busy_changed)
        session.database_changed.connect(self._on_database_changed)
        self._update_recent_files()
        self._restore_layout()
        self.fit_to_screen()
        self._on_database_changed(session.db_path)
        self.sampler.start()

    # -- tabs -------------------------------------------------------------------------------

    def _add_live_plots(self) -> None:
        """Put the monitor's plots into the WAL and Stats tabs, which keep room for them."""
        self.wal_plot = WalPlotWidget(self.session, self.sampler)
        self.stats_plots = StatsPlotsWidget(self.session, self.sampler)
        for key, plot in (("wal", self.wal_plot), ("stats", self.stats_plots)):
            plot_area = getattr(self.tab_widgets[key], "plot_area", None)
            if plot_area is not None:
                plot_area.addWidget(plot)
            attach = getattr(self.tab_widgets[key], "attach_sampler", None)
            if callable(attach):
                attach(self.sampler)

    def add_tab(self, key: str, widget: QWidget, title: str, icon_name: str = "") -> int:
        """Add a tab (the live monitor adds its own); returns its index."""
        self.tab_widgets[key] = widget
        return self.tabs.addTab(widget, icon(icon_name) if icon_name else app_icon(), title)

    @property
    def backups_tab(self) -> BackupsTab:
        """The Backups tab."""
        tab = self.tab_widgets["backups"]
        assert isinstance(tab, BackupsTab)
        return tab

    def _front_tab_key(self) -> str:
        """The key of the tab in front ("" while the start page shows)."""
        if self.stack.currentWidget() is not self.tabs:
            return ""
        current = self.tabs.currentWidget()
        return next((key for key, tab in self.tab_widgets.items() if tab is current), "")

    def show_tab(self, key: str) -> None:
        """Bring the tab ``key`` to the front."""
        self.tabs.setCurrentWidget(self.tab_widgets[key])

    # -- opening ----------------------------------------------------------------------------

    def ask_and_open(self) -> None:
        """Ask for a database file and open it."""
        start = str(self.session.db_path.parent) if self.session.db_path else ""
        chosen = self.choose_database_file(self, start)
        if chosen:
            self.open_database(Path(chosen))

    def open_database(self, path: Path) -> Job | None:
        """Check ``path`` in a read job; on success make it the window's database."""
        if self.session.runner.write_busy:
            self.session.messages.warning(
                "Another database cannot be opened while a maintenance job runs; wait for it "
                "to finish or cancel it.")
            return None
        path = Path(path)
        self.start_page.show_problem(None)
        self._open_job = self.session.run(
            "Open database", lambda progress, cancelled: inspect_database(path),
            parameters={"database": str(path)}, on_done=self._on_database_inspected,
            on_error=lambda error: self._on_open_failed(path, error), report_errors=False)
        self._open_job.setProperty("queueAdminPath", str(path))
        return self._open_job

    def open_demo(self) -> Job:
        """Create (or reuse) the demo queue, open it and run the simulated workers."""
        from ..core.demo.queue_file import create_demo_queue, demo_queue_path, is_demo_queue

        path = demo_queue_path()

        def prepare(progress: object, cancelled: object) -> OpenedDatabase:
            if not (path.exists() and is_demo_queue(path)):
                create_demo_queue(path)
            return inspect_database(path)

        return self.session.run("Open the demo queue", prepare, writes=True,
                                parameters={"database": str(path)},
                                on_done=self._on_demo_ready,
                                on_error=lambda error: self._on_open_failed(path, error),
                                report_errors=False)

    def _on_demo_ready(self, opened: OpenedDatabase) -> None:
        self._on_database_inspected(opened)
        self.start_demo_workers(opened.path)

    def start_demo_workers(self, path: Path) -> None:
        """Run the simulated workers on ``path`` until the window closes."""
        from ..core.demo.workers import DemoWorkers

        self.stop_demo_workers()
        workers = DemoWorkers(path)
        workers.start()
        self.demo_workers = workers
        self.session.messages.info("The demo queue is open; simulated workers are running "
                                   "until you close the window.")

    def stop_demo_workers(self) -> None:
        """Stop the simulated workers, if any run."""
        workers, self.demo_workers = self.demo_workers, None
        if workers is not None:
            workers.stop()  # type: ignore[attr-defined]

    def _on_database_inspected(self, opened: OpenedDatabase) -> None:
        self.session.set_database(opened.path, opened.is_queue)
        self._remember(opened.path)
        if not opened.is_queue:
            self.session.messages.warning(
                f"'{opened.path}' is an SQLite database but not a PrismQ queue "
                f"({'; '.join(opened.problems)}); backup, checkpoint, VACUUM and integrity "
                "checks work, queue actions are off.")
        self.database_opened.emit(opened.path)

    def _on_open_failed(self, path: Path, error: BaseException) -> None:
        """Opening ``path`` failed: say why once.

        A damaged queue opens as an incident (to be restored); anything else closes what
        was open and says why on the start page.
        """
        damage = (damage_of(error) if isinstance(error, QueueAdminError)
                  and error.kind is ErrorKind.CORRUPT else None)
        if damage is not None:
            # SQLite's file, damaged where the schema lives: open it to restore it
            self.session.set_database(path, None)
            self._remember(path)
            self.session.mark_damaged(damage)
            self.database_opened.emit(path)
            return
        self.session.messages.report_error(error)
        if self.session.db_path is not None:
            self.session.set_database(None)
        self.start_page.show_problem(str(error))

    def _remember(self, path: Path) -> None:
        remember_file(self.settings, path)
        self._update_recent_files()

    def recent_files(self) -> list[Path]:
        """Recently opened databases, newest first."""
        return recent_files(self.settings)

    def _update_recent_files(self) -> None:
        recent = self.recent_files()
        self.start_page.set_recent_files(recent)
        if hasattr(self, "window_actions"):
            self.window_actions.set_recent_files(recent)

    # -- reactions --------------------------------------------------------------------------

    def _on_database_changed(self, path: Path | None) -> None:
        workers = self.demo_workers
        if workers is not None and getattr(workers, "path", None) != path:
            self.stop_demo_workers()
        self.status.clearMessage()  # a passing message was about the file before
        self.status.show_database(path)
        self.activity_dock.database = path
        self.stack.setCurrentWidget(self.tabs if path is not None else self.start_page)
        self.setWindowTitle(f"{path.name} \u2013 Queue Admin" if path else "Queue Admin")
        self.window_actions.update_states()
        self.health_watch.follow_database(path)

    # -- health (read and graded by the HealthWatch) ----------------------------------------

    @property
    def health(self) -> HealthSnapshot | None:
        """The grade the badge shows, with the measurements behind it."""
        return self.health_watch.health

    @property
    def health_read(self) -> HealthSnapshot | None:
        """The last slower health read, which the samples are graded together with."""
        return self.health_watch.read

    @property
    def health_timer(self) -> QTimer:
        """The timer of the slower health read."""
        return self.health_watch.timer

    def refresh_health(self) -> None:
        """Measure health in a background read job, unless the previous one still runs."""
        self.health_watch.refresh()

    def _on_write_busy_changed(self, _busy: bool) -> None:
        self.window_actions.update_states()

    def _show_status_message(self, text: str) -> None:
        self.status.showMessage(text, 15_000)

    def refresh_all(self) -> None:
        """Reload the tab in front and the health (F5)."""
        current = self.tabs.currentWidget()
        refresh = getattr(current, "refresh", None)
        if self.session.db_path is not None and callable(refresh):
            refresh()
        self.refresh_health()

    def open_settings(self) -> SettingsDialog:
        """Show the settings dialog; saving applies the new config to every tab."""
        dialog = SettingsDialog(self.session.config, self.session.messages, parent=self)
        dialog.accepted.connect(lambda: self._on_settings_saved(dialog))
        self.settings_dialog = dialog
        dialog.open()
        return dialog

    def _on_settings_saved(self, dialog: SettingsDialog) -> None:
        if dialog.saved_config is not None:
            self.session.set_config(dialog.saved_config)
            self.session.messages.info("Settings saved.")

    def open_restore_newest(self) -> QWidget | None:
        """Open the restore wizard on the newest backup listed (the damaged file's next step)."""
        records = [info for info in self.backups_tab.model.records
                   if not is_rebuilt_file_name(info.path.name)]
        newest = max(records, key=lambda info: info.created_at) if records else None
        if newest is not None:
            self.backups_tab.select_backup(newest.path)
        self.restore_wizard = open_restore_wizard(self.session,
                                                  newest.path if newest else None, self)
        return self.restore_wizard

    def open_restore(self) -> QWidget | None:
        """Open the restore wizard for the backup selected on the Backups tab, if any."""
        selected = self.backups_tab.selected_backup()
        self.restore_wizard = open_restore_wizard(self.session,
                                                  selected.path if selected else None, self)
        return self.restore_wizard

    # -- layout and closing -----------------------------------------------------------------

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        """Shown the first time, fit the screen again now that the frame's size is known."""
        super().showEvent(event)
        if not self._fitted_when_shown:
            self._fitted_when_shown = True
            QTimer.singleShot(0, self, self.fit_to_screen)

    def fit_to_screen(self) -> None:
        """Keep the window inside the screen's free area (the taskbar and a title bar apart).

        The default size, or one remembered from a bigger monitor, may not fit a 1024x700
        screen or one scaled to 150 %: the status bar and the health badge would open below
        its edge. The window is made no larger than the area and moved into it.
        """
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        frame_width = max(0, self.frameGeometry().width() - self.width())
        frame_height = max(TITLE_BAR_ALLOWANCE, self.frameGeometry().height() - self.height())
        width = min(self.width(), area.width() - frame_width)
        height = min(self.height(), area.height() - frame_height)
        self.resize(max(width, 1), max(height, 1))
        left = min(max(self.x(), area.left()), area.right() + 1 - width - frame_width)
        top = min(max(self.y(), area.top()), area.bottom() + 1 - height - frame_height)
        self.move(max(left, area.left()), max(top, area.top()))

    def save_layout(self) -> None:
        """Remember window size, position and dock layout for the next start."""
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()

    def running_user_jobs(self) -> list[Job]:
        """Jobs the user started that have not finished (background reads excluded)."""
        return [job for job in self.session.runner.active_jobs if not is_background(job)]

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        """Ask before closing with a job running; then cancel, wait, and save the layout."""
        running = self.running_user_jobs()
        if running or self.session.runner.write_busy:
            names = ", ".join(job.title for job in running) or "A maintenance job"
            if not self.session.messages.confirm(
                    "Close while a job runs",
                    f"{names} is still running. Cancel it and close? A cancelled job rolls "
                    "back and leaves the database as it was.",
                    confirm_label="Cancel job and close", destructive=True):
                event.ignore()
                return
        self.status.showMessage("Cancelling running jobs and closing...")
        self.session.messages.stop_showing()
        self.health_watch.timer.stop()
        self.sampler.stop()
        self.closing.emit()
        self.backups_tab.archive_panel.stop_archiving()  # the runner's shutdown waits for it
        self.session.runner.shutdown()
        self.stop_demo_workers()
        self.save_layout()
        event.accept()


__all__ = ["MainWindow", "TAB_SPECS"]
