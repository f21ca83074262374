"""Small building blocks shared by the maintenance tabs.

:class:`MaintenanceTab` holds what every tab does the same way: it runs its work as jobs
through the session (never SQL in the GUI thread), shows their progress, refreshes when the
database or one of its topics changes, and keeps write and queue-only actions disabled, with
a tooltip saying why, while they cannot run. The rest are plain display helpers: a key/value
grid, a read-only table model, and number, size and age formatting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QShowEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..app.jobs import Job, JobFunction, mark_background
from ..app.operations import Operation
from ..app.session import Session
from ..core.errors import format_bytes
from .job_progress import JobProgressPanel
from .palette import BAD_BACKGROUND, GOOD_TEXT, RED, WARN_TEXT

__all__ = [
    "STALE_BACKGROUND", "Column", "KeyValueGrid", "MaintenanceTab", "RecordTableModel",
    "explanation", "format_age", "format_bytes", "format_count", "group_box", "make_table",
    "plot_frame", "set_status", "status_label",
]

#: Row colour of a task or worker that needs attention (pale red, readable with black text).
STALE_BACKGROUND = QColor(BAD_BACKGROUND)
GOOD_COLOUR = GOOD_TEXT
BAD_COLOUR = RED
WARN_COLOUR = WARN_TEXT

Index = QModelIndex | QPersistentModelIndex
Row = TypeVar("Row")


def format_count(value: int | float | None) -> str:
    """A whole number with thousands separators, or a dash when unknown."""
    if value is None:
        return "\u2013"
    return f"{int(value):,}"


def format_age(seconds: float | None) -> str:
    """A duration as an admin reads it at a glance: "45 s", "12 min 5 s", "3 h 10 min"."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "\u2013"
    whole = max(0, int(round(seconds)))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def explanation(text: str) -> QLabel:
    """A short, wrapped, muted sentence that explains the controls around it."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: palette(placeholder-text);")
    return label


def status_label() -> QLabel:
    """A wrapped label for a result sentence, selectable so it can be copied."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def set_status(label: QLabel, text: str, colour: str | None = None, bold: bool = False) -> None:
    """Show ``text`` in ``label``, coloured for good or bad news."""
    style = []
    if colour:
        style.append(f"color: {colour};")
    if bold:
        style.append("font-weight: bold;")
    label.setStyleSheet(" ".join(style))
    label.setText(text)


def group_box(title: str) -> QGroupBox:
    """A titled group whose title stands out from the controls inside it."""
    box = QGroupBox(title)
    box.setStyleSheet("QGroupBox { font-weight: bold; } "
                      "QGroupBox QWidget { font-weight: normal; }")
    return box


def plot_frame() -> tuple[QFrame, QVBoxLayout]:
    """An empty frame that takes the remaining space, for live plots added later."""
    frame = QFrame()
    frame.setObjectName("plotArea")
    frame.setFrameShape(QFrame.Shape.NoFrame)
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(0, 0, 0, 0)
    return frame, layout


class KeyValueGrid(QWidget):
    """Labelled values in two columns, numbers right-aligned; rows are added once by key."""

    def __init__(self, rows: Sequence[tuple[str, str]] = (), columns: int = 1,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setHorizontalSpacing(12)
        self._columns = max(1, columns)
        self._values: dict[str, QLabel] = {}
        self._layout.setColumnStretch(self._columns * 3, 1)
        for key, caption in rows:
            self.add_row(key, caption)

    def add_row(self, key: str, caption: str, tooltip: str = "") -> QLabel:
        """Add a caption and an empty value; returns the value label."""
        index = len(self._values)
        row, pair = divmod(index, self._columns)
        name = QLabel(caption + ":")
        value = QLabel("\u2013")
        value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        value.setMinimumWidth(90)
        if tooltip:
            name.setToolTip(tooltip)
            value.setToolTip(tooltip)
        self._layout.addWidget(name, row, pair * 3)
        self._layout.addWidget(value, row, pair * 3 + 1)
        if pair < self._columns - 1:
            self._layout.setColumnMinimumWidth(pair * 3 + 2, 24)
        self._values[key] = value
        return value

    def set_value(self, key: str, text: str, colour: str | None = None) -> None:
        """Show ``text`` as the value of ``key``."""
        label = self._values[key]
        label.setText(text)
        label.setStyleSheet(f"color: {colour};" if colour else "")

    def value(self, key: str) -> str:
        """The text shown for ``key`` (tests read what the user sees)."""
        return self._values[key].text()

    def clear_values(self) -> None:
        """Show every value as unknown."""
        for label in self._values.values():
            label.setText("\u2013")
            label.setStyleSheet("")


@dataclass(frozen=True)
class Column(Generic[Row]):
    """One column of a :class:`RecordTableModel`: a title and how to show a record in it."""

    title: str
    text: Callable[[Row], str]
    numeric: bool = False
    sort_key: Callable[[Row], Any] | None = None
    tooltip: str = ""


class RecordTableModel(QAbstractTableModel, Generic[Row]):
    """A read-only table of records (dataclasses), with an optional row highlight."""

    def __init__(self, columns: Sequence[Column[Row]],
                 highlight: Callable[[Row], bool] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.records: list[Row] = []
        self._highlight = highlight

    def set_records(self, records: Sequence[Row]) -> None:
        """Replace every row."""
        self.beginResetModel()
        self.records = list(records)
        self.endResetModel()

    def record(self, row: int) -> Row:
        """The record shown in ``row``."""
        return self.records[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        """Number of records (a flat table has no children)."""
        return 0 if parent.isValid() else len(self.records)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        """Number of columns."""
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles and their tooltips."""
        return header_data(self.columns, section, orientation, role)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Text, alignment, highlight and sort key of one cell."""
        if not index.isValid():
            return None
        record = self.records[index.row()]
        column = self.columns[index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return column.text(record)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(cell_alignment(column.numeric))
        if role == Qt.ItemDataRole.BackgroundRole and self._highlighted(record):
            return QBrush(STALE_BACKGROUND)
        if role == Qt.ItemDataRole.ForegroundRole and self._highlighted(record):
            return QBrush(QColor("black"))
        if role == Qt.ItemDataRole.UserRole:
            return column.sort_key(record) if column.sort_key else column.text(record)
        return None

    def _highlighted(self, record: Row) -> bool:
        return self._highlight is not None and self._highlight(record)


def cell_alignment(numeric: bool) -> Qt.AlignmentFlag:
    """Numbers right-aligned, text left-aligned, both centred vertically."""
    horizontal = Qt.AlignmentFlag.AlignRight if numeric else Qt.AlignmentFlag.AlignLeft
    return horizontal | Qt.AlignmentFlag.AlignVCenter


def header_data(columns: Sequence[Any], section: int, orientation: Qt.Orientation,
                role: int) -> Any:
    """A table model's header: each column's title, tooltip and alignment.

    ``columns`` hold ``title``, ``tooltip`` and ``numeric``, as both table models' do.
    """
    if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(columns):
        return None
    column = columns[section]
    if role == Qt.ItemDataRole.DisplayRole:
        return column.title
    if role == Qt.ItemDataRole.ToolTipRole and column.tooltip:
        return column.tooltip
    if role == Qt.ItemDataRole.TextAlignmentRole:
        return int(cell_alignment(column.numeric))
    return None


def make_table(model: QAbstractTableModel, *, multi_select: bool = False) -> QTableView:
    """A tidy read-only table view: whole-row selection, columns sized to their text."""
    view = QTableView()
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection if multi_select
                          else QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    header.setHighlightSections(False)
    return view


def bold_font(widget: QWidget) -> QFont:
    """The widget's font, bold."""
    font = QFont(widget.font())
    font.setBold(True)
    return font


@dataclass
class _Action:
    button: QAbstractButton
    tooltip: str
    writes: bool
    queue_only: bool


class MaintenanceTab(QWidget):
    """Base of the maintenance tabs: jobs through the session, progress, action states.

    Subclasses set :attr:`topics` (the :meth:`Session.notify` topics they show), build their
    widgets, register buttons with :meth:`add_action` and implement :meth:`refresh`.
    """

    topics: tuple[str, ...] = ()
    #: Coming to the front, read again at once (-1) or this many ms later: a tab of long
    #: lists is painted first, so its paint does not wait on the job reading them.
    show_refresh_delay_ms = -1

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.progress_panel = JobProgressPanel()
        self._actions: list[_Action] = []
        self._load_job: Job | None = None
        self._load_again = False
        self._quiet_load = False
        session.database_changed.connect(self._on_database_changed)
        session.changed.connect(self._on_topic_changed)
        session.runner.write_busy_changed.connect(self._on_write_busy_changed)

    def refresh(self) -> None:
        """Reload what the tab shows from the database (as a job)."""
        raise NotImplementedError

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        """Read again when the tab comes to the front, so it never shows figures from earlier.

        Workers keep changing the file while another tab is in front; an admin switching
        tabs must see the state of now, not of when the database was opened. A failure of
        this read is not put in a box (the health badge already says the file cannot be
        read); Refresh still reports it.
        """
        super().showEvent(event)
        if self.session.db_path is None or self.loading:
            return
        if self.show_refresh_delay_ms < 0:
            self._refresh_quietly()
        else:
            QTimer.singleShot(self.show_refresh_delay_ms, self, self._refresh_quietly)

    def _refresh_quietly(self) -> None:
        if self.isVisible() and self.session.db_path is not None and not self.loading:
            self._quiet_load = True
            try:
                self.refresh()
            finally:
                self._quiet_load = False

    def add_action(self, button: QAbstractButton, tooltip: str, *, writes: bool = False,
                   queue_only: bool = False) -> QAbstractButton:
        """Register a button whose enabled state follows the database and the write jobs."""
        self._actions.append(_Action(button, tooltip, writes, queue_only))
        self.update_actions()
        return button

    def update_actions(self) -> None:
        """Enable each action that can run now; a disabled one says why in its tooltip."""
        for action in self._actions:
            reason = self.disabled_reason(action.writes, action.queue_only)
            action.button.setEnabled(reason is None)
            action.button.setToolTip(reason or action.tooltip)

    def disabled_reason(self, writes: bool, queue_only: bool) -> str | None:
        """Why an action of this kind cannot run now, or None when it can."""
        if self.session.db_path is None:
            return "Open a database first."
        if queue_only and self.session.is_queue is False:
            return ("This file is not a PrismQ queue database, so queue actions are off; "
                    "plain SQLite maintenance still works.")
        if writes and self.session.runner.write_busy:
            current = self.session.runner.current_write_job
            title = current.title if current is not None else "a queued job"
            return f"Another maintenance job is running: {title}. Wait for it to finish."
        return None

    def run_job(self, title: str, func: JobFunction, *, writes: bool = False,
                parameters: dict[str, Any] | None = None,
                on_done: Callable[[Any], None] | None = None,
                on_error: Callable[[BaseException], None] | None = None,
                report_errors: bool = True) -> Job:
        """Run ``func`` as a job through the session and show its progress in this tab."""
        job = self.session.run(title, func, writes=writes, parameters=parameters,
                               on_done=on_done, on_error=on_error,
                               report_errors=report_errors)
        self.progress_panel.track(job)
        return job

    def run_operation(self, operation: Operation, *,
                      on_success: Callable[[Any], None] | None = None,
                      on_error: Callable[[BaseException], None] | None = None) -> Job:
        """Run ``operation`` through the session (which announces its changes) with progress."""
        job = self.session.run_operation(operation, on_success=on_success, on_error=on_error)
        self.progress_panel.track(job)
        return job

    @property
    def loading(self) -> bool:
        """True while this tab's last load job runs."""
        return self._load_job is not None and not self._load_job.is_finished

    def run_load(self, title: str, func: JobFunction, on_done: Callable[[Any], None], *,
                 report_errors: bool = True,
                 on_error: Callable[[BaseException], None] | None = None) -> Job | None:
        """Run a read job that fills the tab; asked again meanwhile, it refreshes once after."""
        if self.loading:
            self._load_again = True
            return None
        job = mark_background(self.run_job(title, func, on_done=on_done, on_error=on_error,
                                           report_errors=report_errors
                                           and not self._quiet_load))
        self._load_job = job
        job.finished.connect(self._on_load_finished)
        return job

    def _on_load_finished(self) -> None:
        again, self._load_again = self._load_again, False
        if again and self.session.db_path is not None:
            self.refresh()

    def _on_database_changed(self, _path: object) -> None:
        self.update_actions()
        if self.session.db_path is not None:
            self.refresh()

    def _on_topic_changed(self, topic: str) -> None:
        if topic in self.topics and self.session.db_path is not None:
            self.refresh()

    def _on_write_busy_changed(self, _busy: bool) -> None:
        self.update_actions()

