"""The activity log dock: every admin action the window ran, newest last, and its audit file.

The dock listens to ``JobRunner.job_finished``; each finished job becomes a row (time, action,
parameters, result, duration) and a line in the JSON-lines audit file. Background reads that
repeat on a timer (the status bar's health check) are marked with ``mark_background``
(``app/jobs.py``) and left out, so the log stays a list of what an administrator did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QDockWidget, QHeaderView, QWidget

from ..app.jobs import Job, JobRunner, JobState, is_background
from ..app.messages import Messages
from ..core.activity import (
    RESULT_CANCELLED,
    RESULT_FAILED,
    RESULT_SUCCEEDED,
    ActivityEntry,
    ActivityLog,
    result_of_completed,
)
from ..core.errors import QueueAdminError
from .palette import RED, WARN_TEXT, readable_text
from .table_model import (
    RecordListModel,
    copy_selection,
    make_list_view,
    record_column,
    selected_text,
)

_RESULT_COLOURS = {RESULT_FAILED: QColor(RED), RESULT_CANCELLED: QColor(WARN_TEXT),
                   RESULT_SUCCEEDED: None}
#: Any other result ("did not finish", "found 3 problems") ran but fell short.
_SHORTFALL_COLOUR = QColor(RED)
#: Entries of earlier sessions shown at start (read from the end of the audit file).
_HISTORY_ROWS = 200
#: Most rows the dock holds; the oldest row goes when a new one would exceed it.
MAX_ROWS = 1000
#: Widest the Action and Result columns grow, in characters: a long action or error message
#: is cut (its tooltip holds the whole text) so Result and Duration stay in view.
_CAPPED_COLUMNS = {1: 42, 3: 42}
_PARAMETERS_COLUMN = 2


def entry_for_job(job: Job, database: Path | None) -> ActivityEntry:
    """The audit entry describing a finished job."""
    result = {JobState.SUCCEEDED: RESULT_SUCCEEDED, JobState.CANCELLED: RESULT_CANCELLED
              }.get(job.state, RESULT_FAILED)
    if result == RESULT_SUCCEEDED:
        message = job.note
        result = result_of_completed(job.result, job.note)
    else:
        message = str(job.error) if job.error is not None else ""
    return ActivityEntry.now(job.title, parameters=job.parameters, result=result,
                             message=message, duration_seconds=job.duration,
                             database=database)


@dataclass(frozen=True)
class LogRow:
    """One row of the dock: an entry and its place in the order entries were shown."""

    entry: ActivityEntry
    order: int


def _time_text(row: LogRow) -> str:
    local = row.entry.local_time
    return local.strftime("%Y-%m-%d %H:%M:%S") if local else row.entry.time


def _result_text(row: LogRow) -> str:
    entry = row.entry
    return entry.result if not entry.message else f"{entry.result}: {entry.message}"


def _result_colour(row: LogRow) -> QColor | None:
    colour = _RESULT_COLOURS.get(row.entry.result, _SHORTFALL_COLOUR)
    return QColor(readable_text(colour.name())) if colour is not None else None


def _duration_text(row: LogRow) -> str:
    seconds = row.entry.duration_seconds
    return "" if seconds is None else f"{seconds:.1f} s"


LOG_COLUMNS = [
    record_column("Time", _time_text, sort_key=lambda row: row.order),
    record_column("Action", lambda row: row.entry.action),
    record_column("Parameters", lambda row: _describe_parameters(row.entry.parameters)),
    record_column("Result", _result_text, colour=_result_colour),
    record_column("Duration", _duration_text,
                  sort_key=lambda row: row.entry.duration_seconds or 0.0),
]


class ActivityLogDock(QDockWidget):
    """A dock listing admin actions; appends each to the audit file as well."""

    def __init__(self, runner: JobRunner, messages: Messages, log: ActivityLog | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__("Activity log", parent)
        self.setObjectName("activityLogDock")
        self.log = log or ActivityLog()
        self.messages = messages
        self.database: Path | None = None
        self._write_failed = False
        self._added = 0
        self.model: RecordListModel[LogRow] = RecordListModel(LOG_COLUMNS, parent=self,
                                                              batch=MAX_ROWS)
        self.table = make_list_view(self.model, fit_every_row=True)
        # Tab moves on to the next widget instead of walking the cells
        self.table.setTabKeyNavigation(False)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(_PARAMETERS_COLUMN, QHeaderView.ResizeMode.Stretch)
        for column in _CAPPED_COLUMNS:
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
        self.table.setToolTip(f"Every admin action of this and earlier sessions (the newest "
                              f"{_HISTORY_ROWS} at start); all are kept in {self.log.path}, "
                              f"rotated by size.")
        self.setWidget(self.table)
        runner.job_finished.connect(self._on_job_finished)
        self._load_history()

    @property
    def entries(self) -> list[ActivityEntry]:
        """The entries shown, oldest first (for tests and export)."""
        return [row.entry for row in self.model.records]

    def add_entry(self, entry: ActivityEntry, *, persist: bool = True) -> None:
        """Show ``entry`` and, unless told not to, append it to the audit file."""
        self._show(entry)
        self._fit_capped_columns()
        self.table.scrollToBottom()
        if persist:
            self._persist(entry)

    def cell_text(self, row: int, column: int) -> str:
        """The text of one cell as shown (row in the view's order)."""
        return self.model.row_texts(row)[column]

    def selected_text(self) -> str:
        """The selected rows as tab-separated lines under the column titles, as shown."""
        return selected_text(self.table)

    def copy_selection(self) -> str:
        """Put the selected rows on the clipboard (Ctrl+C, or Copy in the context menu)."""
        return copy_selection(self.table)

    def _show(self, entry: ActivityEntry) -> None:
        self._added += 1
        self.model.append_record(LogRow(entry, self._added), keep_at_most=MAX_ROWS)

    def _fit_capped_columns(self) -> None:
        character = self.table.fontMetrics().averageCharWidth()
        for column, characters in _CAPPED_COLUMNS.items():
            self.table.resizeColumnToContents(column)
            widest = characters * character
            if self.table.columnWidth(column) > widest:
                self.table.setColumnWidth(column, widest)

    def _persist(self, entry: ActivityEntry) -> None:
        try:
            self.log.append(entry)
        except QueueAdminError as error:
            if not self._write_failed:
                self._write_failed = True
                self.messages.warning(f"{error} The actions stay listed in this window.")

    def _load_history(self) -> None:
        try:
            history = self.log.read(limit=_HISTORY_ROWS)
        except QueueAdminError:
            history = []
        rows = [LogRow(entry, order) for order, entry in enumerate(history, start=1)]
        self._added = len(rows)
        self.model.set_records(rows)
        self._fit_capped_columns()
        self.table.scrollToBottom()

    def _on_job_finished(self, job: Job) -> None:
        if is_background(job):
            return
        self.add_entry(entry_for_job(job, self.database))


def _describe_parameters(parameters: dict[str, object]) -> str:
    if not parameters:
        return ""
    return ", ".join(f"{key}={_short(value)}" for key, value in parameters.items()
                     if value is not None)


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["ActivityLogDock", "LogRow", "entry_for_job"]
