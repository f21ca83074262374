"""Read-only tables of records: the columns, the model and the view the tabs share.

A tab lists dataclass records (tasks, workers, backups) through one :class:`RecordTableModel`
described by its :class:`Column` list, so sorting, alignment and the highlight of rows that
need attention work the same way in every table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from .palette import BAD_BACKGROUND

#: Row colour of a task or worker that needs attention (pale red, readable with black text).
STALE_BACKGROUND = QColor(BAD_BACKGROUND)


Index = QModelIndex | QPersistentModelIndex


Row = TypeVar("Row")


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


def read_only_view(model: QAbstractTableModel, *, multi_select: bool) -> QTableView:
    """A table view no cell of which can be edited: whole rows selected, no row numbers."""
    view = QTableView()
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection if multi_select
                          else QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
    return view


def make_table(model: QAbstractTableModel, *, multi_select: bool = False) -> QTableView:
    """A tidy read-only table view: whole-row selection, columns sized to their text."""
    view = read_only_view(model, multi_select=multi_select)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    header.setHighlightSections(False)
    return view
