"""What the window shows before a database is open: open one, a recent one, or the demo.

The page also carries the last problem met while opening a file ("... is not an SQLite
database; choose another file"), so the way forward sits right under the sentence.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.settings.queue_location import QueueLocation, queue_location
from .icons import app_icon, icon
from .palette import BAD_BACKGROUND, BAD_TEXT_ON_BACKGROUND, RED


class StartPage(QWidget):
    """Buttons to open a database or the demo queue, and the recent files."""

    open_requested = Signal()
    recent_requested = Signal(object)
    #: Asks to open the queue where it normally lives (the path).
    usual_requested = Signal(object)
    demo_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title_icon = QLabel(self)
        title_icon.setPixmap(app_icon().pixmap(QSize(64, 64)))
        title = QLabel("<h1>Queue Admin</h1>", self)
        intro = QLabel("Back up, restore, checkpoint and repair a PrismQ task queue. "
                       "Open the queue database to begin.", self)
        intro.setWordWrap(True)
        self.problem_label = QLabel(self)
        self.problem_label.setWordWrap(True)
        self.problem_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem_label.setStyleSheet(
            f"background:{BAD_BACKGROUND}; color:{BAD_TEXT_ON_BACKGROUND}; border:1px solid {RED}; "
            "border-radius:3px; padding:8px;")
        self.problem_label.hide()
        self.open_button = QPushButton(icon("open"), "Open database...", self)
        self.open_button.setToolTip("Choose a queue database file (Ctrl+O).")
        self.open_button.setIconSize(QSize(20, 20))
        self.open_button.clicked.connect(self.open_requested)
        self.demo_button = QPushButton(icon("app-icon"), "Open the demo queue", self)
        self.demo_button.setToolTip("Create or reuse a demo queue in your data folder and "
                                    "run simulated workers on it while the window is open.")
        self.demo_button.setIconSize(QSize(20, 20))
        self.demo_button.clicked.connect(self.demo_requested)
        for button in (self.open_button, self.demo_button):
            button.setMinimumHeight(34)
        self.usual_label = QLabel(self)
        self.usual_label.setWordWrap(True)
        self.usual_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.usual_button = QPushButton(icon("open"), "Open it", self)
        self.usual_button.clicked.connect(self._on_usual_clicked)
        self.usual_location: QueueLocation | None = None
        self.show_usual_location(queue_location())
        self.recent_list = QListWidget(self)
        self.recent_list.setToolTip("Double-click (or press Enter on) a file to open it.")
        self.recent_list.itemActivated.connect(self._on_recent_activated)
        self.recent_label = QLabel("Recent databases", self)

        header = QHBoxLayout()
        header.addWidget(title_icon)
        header.addWidget(title)
        header.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.demo_button)
        buttons.addStretch(1)
        column = QVBoxLayout()
        column.setSpacing(10)
        column.addSpacing(40)
        column.addLayout(header)
        column.addWidget(intro)
        column.addWidget(self.problem_label)
        usual = QHBoxLayout()
        usual.addWidget(self.usual_label, 1)
        usual.addWidget(self.usual_button, 0, Qt.AlignmentFlag.AlignVCenter)
        column.addLayout(usual)
        column.addLayout(buttons)
        column.addSpacing(12)
        column.addWidget(self.recent_label)
        column.addWidget(self.recent_list)
        column.addStretch(1)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column, 3)
        outer.addStretch(1)

    def set_recent_files(self, paths: list[Path]) -> None:
        """Show the recently opened databases, newest first."""
        self.recent_list.clear()
        for path in paths:
            item = QListWidgetItem(app_icon(), str(path))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            exists = path.exists()
            item.setToolTip(str(path) if exists else f"{path} (not found now)")
            self.recent_list.addItem(item)
        self.recent_label.setVisible(bool(paths))
        self.recent_list.setVisible(bool(paths))

    def show_usual_location(self, location: QueueLocation) -> None:
        """Say where the queue normally lives (and from which setting), with a way to open it."""
        self.usual_location = location
        exists = location.path.is_file()
        state = "" if exists else " No file is there now."
        self.usual_label.setText(
            f"The queue normally lives at <b>{html.escape(str(location.path))}</b> "
            f"(from {html.escape(location.source)}).{state}")
        self.usual_button.setEnabled(exists)
        self.usual_button.setToolTip(f"Open {location.path}" if exists else
                                     f"There is no file at {location.path}.")

    def _on_usual_clicked(self) -> None:
        if self.usual_location is not None:
            self.usual_requested.emit(self.usual_location.path)

    def show_problem(self, text: str | None) -> None:
        """Show why the last file could not be opened (None hides the note)."""
        self.problem_label.setText(text or "")
        self.problem_label.setVisible(bool(text))

    def _on_recent_activated(self, item: QListWidgetItem) -> None:
        self.recent_requested.emit(Path(item.data(Qt.ItemDataRole.UserRole)))
