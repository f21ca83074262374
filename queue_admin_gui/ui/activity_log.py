"""The activity log dock: every admin action the window ran, newest last, and its audit file.

The dock listens to ``JobRunner.job_finished``; each finished job becomes a row (time, action,
parameters, result, duration) and a line in the JSON-lines audit file. Background reads that
repeat on a timer (the status bar's health check) are marked with ``mark_background``
(``app/jobs.py``) and left out, so the log stays a list of what an administrator did.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QBrush, QColor, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDockWidget,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

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

_COLUMNS = ("Time", "Action", "Parameters", "Result", "Duration")
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


class _OrderedItem(QTableWidgetItem):
    """A cell that sorts by a value of its own (the entry's order, a duration in seconds)."""

    def __init__(self, text: str, key: float) -> None:
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, key)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)):
            return mine < theirs
        return super().__lt__(other)


class _LogTable(QTableWidget):
    """The log's table: Ctrl+C copies whole selected rows (Qt's own copies one cell)."""

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        """Copy the selected rows on the platform's copy keys; other keys as usual."""
        if event.matches(QKeySequence.StandardKey.Copy):
            self.actions()[0].trigger()
            event.accept()
            return
        super().keyPressEvent(event)


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
        self.table = _LogTable(0, len(_COLUMNS), self)
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        # Tab moves on to the next widget instead of walking the cells
        self.table.setTabKeyNavigation(False)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.copy_action = QAction("Copy", self.table)
        self.copy_action.setShortcut(QKeySequence.StandardKey.Copy)
        self.copy_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.copy_action.triggered.connect(self.copy_selection)
        self.table.addAction(self.copy_action)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self._added = 0
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
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
        return list(self._entries)

    def add_entry(self, entry: ActivityEntry, *, persist: bool = True) -> None:
        """Show ``entry`` and, unless told not to, append it to the audit file."""
        self._show(entry)
        self._fit_capped_columns()
        self.table.scrollToBottom()
        if persist:
            self._persist(entry)

    def _show(self, entry: ActivityEntry) -> None:
        sorting = self.table.isSortingEnabled()
        self.table.setSortingEnabled(False)  # rows go in whole, then the sort applies
        if len(self._entries) >= MAX_ROWS:
            self.table.removeRow(self._oldest_row())
            del self._entries[0]
        self._entries.append(entry)
        self._added += 1
        row = self.table.rowCount()
        self.table.insertRow(row)
        local = entry.local_time
        cells = (
            local.strftime("%Y-%m-%d %H:%M:%S") if local else entry.time,
            entry.action,
            _describe_parameters(entry.parameters),
            entry.result if not entry.message else f"{entry.result}: {entry.message}",
            "" if entry.duration_seconds is None else f"{entry.duration_seconds:.1f} s",
        )
        for column, text in enumerate(cells):
            if column == 0:
                item: QTableWidgetItem = _OrderedItem(text, self._added)
            elif column == 4:
                item = _OrderedItem(text, entry.duration_seconds or 0.0)
            else:
                item = QTableWidgetItem(text)
            item.setToolTip(text)
            colour = _RESULT_COLOURS.get(entry.result, _SHORTFALL_COLOUR)
            if colour is not None and column == 3:
                item.setForeground(QBrush(QColor(readable_text(colour.name()))))
            self.table.setItem(row, column, item)
        self.table.setSortingEnabled(sorting)

    def _oldest_row(self) -> int:
        """The row of the entry shown longest (wherever the sort has put it)."""
        orders = [self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)
                  for row in range(self.table.rowCount())]
        return orders.index(min(orders))

    def selected_text(self) -> str:
        """The selected rows as tab-separated lines, in the order shown."""
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        return "\n".join("\t".join(self.table.item(row, column).text()
                                   for column in range(self.table.columnCount()))
                         for row in rows)

    def copy_selection(self) -> str:
        """Put the selected rows on the clipboard (Ctrl+C, or Copy in the context menu)."""
        text = self.selected_text()
        if text:
            QApplication.clipboard().setText(text)
        return text

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
        self._entries: list[ActivityEntry] = []
        try:
            history = self.log.read(limit=_HISTORY_ROWS)
        except QueueAdminError:
            history = []
        for entry in history:
            self._show(entry)
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


__all__ = ["ActivityLogDock", "entry_for_job"]
