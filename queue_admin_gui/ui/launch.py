"""``queue-admin``: the desktop program's entry point.

``queue-admin --db PATH`` opens that file; ``queue-admin --demo`` opens the demo queue (made
in the user data folder if needed) with simulated workers running while the window is open;
without arguments the file ``PRISMQ_QUEUE_DB_PATH`` names is opened when it is there (as
``queue-admin-cli`` does), else the last database, else the queue's usual place when a file
is there, else the start page is shown (it says where the queue normally lives).
``queue-admin --smoke-test`` checks that the program starts, loads every tab and quits by
itself (see :mod:`queue_admin_gui.ui.smoke`).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from .. import __version__
from ..app.gc_guard import MainThreadGarbageCollector
from ..app.jobs import JobRunner
from ..app.messages import Messages, Presenter
from ..app.session import Session
from ..core.activity import RESULT_FAILED, ActivityEntry, ActivityLog
from ..core.errors import ConfigError, QueueAdminError
from ..core.event_log import SystemLogSink, setting_switch
from ..core.settings.config import LoadedSettings, MaintenanceConfig, load_settings
from ..core.settings.folders import APP_AUTHOR
from ..core.settings.queue_location import queue_location
from .icons import app_icon
from .main_window import MainWindow
from .message_boxes import DialogPresenter
from .smoke import SmokeTest
from .tray import QueueTray

APPLICATION_NAME = "Queue Admin"


class UsageError(Exception):
    """The command line asked for help or could not be understood; the text says which."""

    def __init__(self, text: str, exit_code: int) -> None:
        super().__init__(text)
        self.exit_code = exit_code


class _ArgumentParser(argparse.ArgumentParser):
    """An argument parser that raises instead of printing and exiting.

    As a GUI program on Windows there may be no console to print to, so :func:`main` shows
    the text in a box instead.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.format_usage().strip()}\n{self.prog}: error: {message}", 2)

    def _print_message(self, message: str, file: object = None) -> None:
        if message:
            raise UsageError(message.strip(), 0)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The command line: ``--db PATH`` or ``--demo`` (not both); raises :class:`UsageError`."""
    parser = _ArgumentParser(
        prog="queue-admin", description="Administer a PrismQ SQLite task queue.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--db", type=Path, metavar="PATH", help="queue database file to open")
    which.add_argument("--demo", action="store_true",
                       help="open the demo queue and run simulated workers on it")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--smoke-test", nargs="?", const="-", metavar="REPORT",
                        help="open the queue (--db, else the demo), load every tab, write "
                             "the tab titles to stdout or REPORT and quit: 0 when all loaded")
    arguments = parser.parse_args(list(argv))
    if arguments.smoke_test is not None and arguments.db is None:
        arguments.demo = True
    return arguments


def make_settings() -> QSettings:
    """Where the window remembers its layout, the recent files and the last database."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, APP_AUTHOR,
                     "queue-admin")


def load_config() -> LoadedSettings:
    """The saved settings; whatever the file holds, refused values fall back to defaults."""
    try:
        return load_settings()
    except (QueueAdminError, OSError, ValueError) as error:  # e.g. an unusable config path
        return LoadedSettings(MaintenanceConfig(), Path(), (ConfigError(str(error)),))


def report_refused_settings(window: MainWindow, loaded: LoadedSettings) -> None:
    """Tell the user once which settings were refused, and record it in the activity log."""
    if not loaded.refused:
        return
    window.activity_dock.add_entry(ActivityEntry.now(
        "Read settings", parameters={"file": loaded.path}, result=RESULT_FAILED,
        message=loaded.refusal))
    window.session.messages.warning(loaded.refusal)


def create_window(arguments: argparse.Namespace, *, settings: QSettings | None = None,
                  presenter: Presenter | None = None) -> MainWindow:
    """Build the session and the window and start opening what the arguments ask for."""
    settings = settings or make_settings()
    messages = Messages(presenter or DialogPresenter())
    runner = JobRunner()
    loaded = load_config()
    session = Session(runner, messages, loaded.config)
    runner.setParent(session)
    # Maintenance outcomes also reach the Event Log (syslog elsewhere) while the setting is on.
    activity_log = ActivityLog(sink=SystemLogSink(enabled=setting_switch(lambda: session.config)))
    window = MainWindow(session, settings, activity_log)
    session.setParent(window)
    QueueTray(window)  # a child of the window: the health in the tray, closing to it
    # once the event loop runs, so the message box has the window behind it
    QTimer.singleShot(0, window, lambda: report_refused_settings(window, loaded))
    location = queue_location(arguments.db, loaded.config.db_path)
    window.start_page.show_usual_location(location)
    last = settings.value("last_database", "")
    if arguments.demo:
        window.open_demo()
    elif arguments.db is not None or (location.from_environment and location.path.is_file()):
        window.open_database(location.path)  # as the CLI would, with the same variable
    elif last and Path(str(last)).is_file():
        window.open_database(Path(str(last)))
    elif location.path.is_file():
        window.open_database(location.path)
    return window


ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


def install_crash_reporter(messages: Messages) -> ExceptHook:
    """Show a bug raised in the window's own code (a slot, a timer) with details to copy.

    Jobs report their own failures; this catches what escapes everywhere else, which Qt
    would otherwise only print to a console a GUI program on Windows does not have. The
    window keeps running. Returns the previous hook.
    """
    previous = sys.excepthook

    def report(kind: type[BaseException], error: BaseException,
               trace: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, error, trace)
            return
        details = "".join(traceback.format_exception(kind, error, trace))
        messages.report_error(error, details)

    sys.excepthook = report
    return previous


def main(argv: Sequence[str] | None = None) -> int:
    """Start the application; returns the exit code (2 for a command line it cannot use)."""
    application = QApplication.instance() or QApplication([sys.argv[0]])
    application.setApplicationName(APPLICATION_NAME)
    application.setOrganizationName(APP_AUTHOR)
    application.setApplicationVersion(__version__)
    application.setWindowIcon(app_icon())
    try:
        arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    except UsageError as error:
        if sys.stderr is not None:
            print(error, file=sys.stderr)
        else:  # started from a shortcut or Explorer: no console to print to
            QMessageBox.information(None, APPLICATION_NAME, str(error))
        return error.exit_code
    collector = MainThreadGarbageCollector(parent=application)
    smoke = SmokeTest(arguments.smoke_test) if arguments.smoke_test is not None else None
    if smoke is None:
        window = create_window(arguments)
    else:
        window = create_window(arguments, settings=smoke.settings, presenter=smoke.presenter)
        smoke.start(window)
    install_crash_reporter(window.session.messages)
    window.show()
    try:
        code = application.exec()
        return code if smoke is None or smoke.exit_code is None else smoke.exit_code
    finally:
        collector.stop()


if __name__ == "__main__":
    sys.exit(main())
