"""Opening a database in the window: the opening check, the file dialog, the recent files.

Opening is a read job that only checks the file is SQLite and whether it is a queue; the
window then makes it the session's database. The recent files live in the window's
settings, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QWidget

from ..core.database import check_queue_schema, closing_connection, open_read_only

MAX_RECENT_FILES = 8


@dataclass(frozen=True)
class OpenedDatabase:
    """What the opening check found: the file is SQLite; is it a queue, and if not why."""

    path: Path
    problems: list[str]

    @property
    def is_queue(self) -> bool:
        """True when the queue schema is complete."""
        return not self.problems


def inspect_database(path: Path) -> OpenedDatabase:
    """Open ``path`` read-only and check the queue schema (run as a job, never in the GUI)."""
    with closing_connection(open_read_only(path)) as connection:
        return OpenedDatabase(path, check_queue_schema(connection))


def ask_for_database_file(parent: QWidget, start: str) -> str:
    """Ask for a database file in the system's dialog; "" when cancelled."""
    chosen, _filter = QFileDialog.getOpenFileName(
        parent, "Open queue database", start,
        "SQLite databases (*.db *.sqlite *.sqlite3);;All files (*)")
    return chosen


def recent_files(settings: QSettings) -> list[Path]:
    """Recently opened databases, newest first."""
    value = settings.value("recent_files", [])
    if isinstance(value, str):
        value = [value]
    return [Path(item) for item in (value or []) if item]


def remember_file(settings: QSettings, path: Path) -> None:
    """Put ``path`` first in the recent files and remember it as the last database."""
    recent = [known for known in recent_files(settings) if known != path]
    recent.insert(0, path)
    settings.setValue("recent_files", [str(known) for known in recent[:MAX_RECENT_FILES]])
    settings.setValue("last_database", str(path))
