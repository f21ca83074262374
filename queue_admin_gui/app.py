"""``queue-admin``: the desktop program's entry point.

``queue-admin --db PATH`` opens that file; ``queue-admin --demo`` opens the demo queue (made
in the user data folder if needed) with simulated workers running while the window is open;
without arguments the last database is reopened, else the start page is shown.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from . import __version__
from .core.config import APP_AUTHOR, MaintenanceConfig
from .core.errors import QueueAdminError
from .jobs import JobRunner
from .session import Session
from .ui.icons import app_icon
from .ui.main_window import MainWindow
from .ui.messages import Messages, Presenter

APPLICATION_NAME = "Queue Admin"


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The command line: ``--db PATH`` or ``--demo`` (not both)."""
    parser = argparse.ArgumentParser(
        prog="queue-admin", description="Administer a PrismQ SQLite task queue.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--db", type=Path, metavar="PATH", help="queue database file to open")
    which.add_argument("--demo", action="store_true",
                       help="open the demo queue and run simulated workers on it")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(list(argv))


def make_settings() -> QSettings:
    """Where the window remembers its layout, the recent files and the last database."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, APP_AUTHOR,
                     "queue-admin")


def load_config(messages: Messages) -> MaintenanceConfig:
    """The saved config; a broken settings file is reported and the defaults are used."""
    try:
        return MaintenanceConfig.load()
    except QueueAdminError as error:
        messages.warning(f"{error} Using the default settings for now.")
        return MaintenanceConfig()


def create_window(arguments: argparse.Namespace, *, settings: QSettings | None = None,
                  presenter: Presenter | None = None) -> MainWindow:
    """Build the session and the window and start opening what the arguments ask for."""
    settings = settings or make_settings()
    messages = Messages(presenter)
    runner = JobRunner()
    session = Session(runner, messages, load_config(messages))
    runner.setParent(session)
    window = MainWindow(session, settings)
    session.setParent(window)
    if arguments.demo:
        window.open_demo()
    elif arguments.db is not None:
        window.open_database(arguments.db)
    else:
        last = settings.value("last_database", "")
        if last and Path(str(last)).is_file():
            window.open_database(Path(str(last)))
    return window


def main(argv: Sequence[str] | None = None) -> int:
    """Start the application; returns the exit code."""
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    application = QApplication.instance() or QApplication([sys.argv[0]])
    application.setApplicationName(APPLICATION_NAME)
    application.setOrganizationName(APP_AUTHOR)
    application.setApplicationVersion(__version__)
    application.setWindowIcon(app_icon())
    window = create_window(arguments)
    window.show()
    return application.exec()


if __name__ == "__main__":
    sys.exit(main())
