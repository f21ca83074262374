"""The one table framework of the window: columns, one model, one view, for every list.

Every table of the tabs is a :class:`ListModel` shown by :func:`make_list_view`, so sorting,
alignment, copying and the highlight of rows that need attention work the same way in all.

A list of 100,000 leases must not freeze the window when it arrives, when it is sorted or
when the tab comes back to the front. :class:`ListModel` keeps no object per row: it holds
one data object (arrays or a list of tuples, owned by whoever filled it) and a numpy order
of its rows. Its columns (:class:`ListColumn`) say how to write one cell and, for sorting,
how to make the keys of every row at once. The view is told about rows in batches as it
scrolls (``canFetchMore`` / ``fetchMore``), so only the rows someone looks at are ever
turned into text. New data replaces the old one in one reset; nothing of the previous list
is kept.

A short list of records (workers, task counts by status) is the same model over a Python
list: :class:`RecordListModel` with columns made by :func:`record_column`, which reads one
record per cell.

:func:`make_list_view` makes the matching view: sortable by a click on a column title, rows
selectable and copied as tab-separated text with Ctrl+C or the context menu's "Copy".
The tab-specific columns live beside their tabs: ``lease_rows`` and ``lease_model`` (the
Leases tab), ``backup_rows`` (the Backups tab).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QAction, QBrush, QColor, QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from .palette import BAD_BACKGROUND

#: Row colour of a task or worker that needs attention (pale red, readable with black text).
STALE_BACKGROUND = QColor(BAD_BACKGROUND)
Index = QModelIndex | QPersistentModelIndex
Record = TypeVar("Record")
#: Rows handed to the view at a time as it scrolls.
FETCH_BATCH = 500
#: Rows the view looks at when it sizes a column to its contents.
SIZE_SAMPLE_ROWS = 40
#: The widest a column is made when sized to its contents (pixels).
MAX_COLUMN_WIDTH = 420
# Roles as plain numbers: data() runs for every painted cell and role, so it compares ints.
_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole.value)
_BACKGROUND = int(Qt.ItemDataRole.BackgroundRole.value)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole.value)
_CHECK_STATE = int(Qt.ItemDataRole.CheckStateRole.value)


@dataclass(frozen=True)
class ListColumn:
    """One column: its title, the text of a row, and the sort keys of all rows.

    ``text(data, row)`` and ``keys(data)`` receive the model's data object and rows in the
    data's own order. Without ``keys`` the column sorts by its text. ``colour(data, row)``,
    when given, names the text colour of a cell (None: the usual one); a highlighted row's
    colours win. ``hint(data, row)`` is a cell's tooltip (its text when not given). A
    column with ``checked(data, row)`` shows a tick box the user may change, which calls
    ``set_checked(data, row, ticked)``.
    """

    title: str
    text: Callable[[Any, int], str]
    keys: Callable[[Any], np.ndarray] | None = None
    numeric: bool = False
    tooltip: str = ""
    colour: Callable[[Any, int], QColor | None] | None = None
    hint: Callable[[Any, int], str] | None = None
    checked: Callable[[Any, int], bool] | None = None
    set_checked: Callable[[Any, int, bool], None] | None = None


def cell_alignment(numeric: bool) -> Qt.AlignmentFlag:
    """Numbers right-aligned, text left-aligned, both centred vertically."""
    horizontal = Qt.AlignmentFlag.AlignRight if numeric else Qt.AlignmentFlag.AlignLeft
    return horizontal | Qt.AlignmentFlag.AlignVCenter


class ListModel(QAbstractTableModel):
    """A read-only, sortable table over one compact data object, fetched as it is shown."""

    def __init__(self, columns: Sequence[ListColumn],
                 highlight: Callable[[Any, int], bool] | None = None,
                 parent: QWidget | None = None, batch: int = FETCH_BATCH) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.data_object: Any = None
        self._highlight = highlight
        self._batch = max(1, batch)
        self._order = np.zeros(0, dtype=np.int64)
        self._shown = 0
        self._sort: tuple[int, Qt.SortOrder] = (-1, Qt.SortOrder.AscendingOrder)
        self._alignments = [int(cell_alignment(column.numeric).value) for column in self.columns]
        self._highlight_brushes = (QBrush(STALE_BACKGROUND), QBrush(QColor("black")))
        self._coloured = any(column.colour is not None for column in self.columns)

    # -- contents ---------------------------------------------------------------------------
    def set_data(self, data_object: Any, size: int) -> None:
        """Show ``size`` rows of ``data_object`` in place of the previous data, sorted as now."""
        self.beginResetModel()
        self.data_object = data_object if size else None
        self._order = self._sorted_order(size)
        self._shown = min(self._batch, size)
        self.endResetModel()

    def total_rows(self) -> int:
        """Rows in the data, fetched by the view or not yet."""
        return int(self._order.size)

    def data_row(self, row: int) -> int:
        """The data's own row shown at view row ``row``."""
        return int(self._order[row])

    def view_row(self, data_row: int) -> int:
        """The view row that shows the data's row ``data_row``, fetching up to it; -1 if none."""
        found = np.flatnonzero(self._order == data_row)
        if not found.size:
            return -1
        row = int(found[0])
        if row >= self._shown:
            self._show_up_to(row + 1)
        return row

    def refresh_cells(self) -> None:
        """Tell the view every shown cell may read differently (the data changed in place)."""
        if self._shown:
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(self._shown - 1, len(self.columns) - 1))

    def row_texts(self, row: int) -> list[str]:
        """The texts of one view row, column by column."""
        data_row = self.data_row(row)
        return [column.text(self.data_object, data_row) for column in self.columns]

    # -- Qt model ---------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        """Rows handed to the view so far (a flat table has no children)."""
        return 0 if parent.isValid() else self._shown

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        """Number of columns."""
        return 0 if parent.isValid() else len(self.columns)

    def canFetchMore(self, parent: Index) -> bool:  # noqa: N802
        """True while rows remain that the view has not been given."""
        return not parent.isValid() and self._shown < self._order.size

    def fetchMore(self, parent: Index) -> None:  # noqa: N802
        """Hand the view the next batch of rows."""
        if not parent.isValid():
            self._show_up_to(self._shown + self._batch)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles, their tooltips and alignment."""
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        column = self.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.title
        if role == Qt.ItemDataRole.ToolTipRole and column.tooltip:
            return column.tooltip
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(cell_alignment(column.numeric))
        return None

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        """Text, alignment, colours and tick of one cell (other roles: None, quickly)."""
        if role == _DISPLAY:
            row = index.row()
            if not 0 <= row < self._shown:
                return None
            return self.columns[index.column()].text(self.data_object, int(self._order[row]))
        if role == _TOOLTIP:
            row, column = index.row(), self.columns[index.column()]
            if not 0 <= row < self._shown:
                return None
            tip = column.hint if column.hint is not None else column.text
            return tip(self.data_object, int(self._order[row]))
        if role == _CHECK_STATE:
            row, column = index.row(), self.columns[index.column()]
            if column.checked is None or not 0 <= row < self._shown:
                return None
            ticked = column.checked(self.data_object, int(self._order[row]))
            return Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked
        if role == _ALIGNMENT:
            return self._alignments[index.column()] if index.isValid() else None
        if (role == _BACKGROUND or role == _FOREGROUND) and self._highlight is not None:
            row = index.row()
            if 0 <= row < self._shown and self._highlight(self.data_object,
                                                          int(self._order[row])):
                return self._highlight_brushes[0 if role == _BACKGROUND else 1]
        if role == _FOREGROUND and self._coloured:
            row, colour = index.row(), self.columns[index.column()].colour
            if colour is not None and 0 <= row < self._shown:
                found = colour(self.data_object, int(self._order[row]))
                return QBrush(found) if found is not None else None
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        """Selectable cells; a tick box where the column has one."""
        flags = super().flags(index)
        if index.isValid() and self.columns[index.column()].checked is not None:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    def setData(self, index: Index, value: Any,  # noqa: N802 - Qt override
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        """Tick or untick a cell of a column with tick boxes; nothing else is editable."""
        column = self.columns[index.column()] if index.isValid() else None
        if (int(role) != _CHECK_STATE or column is None or column.set_checked is None
                or not 0 <= index.row() < self._shown):
            return False
        ticked = Qt.CheckState(value) == Qt.CheckState.Checked
        column.set_checked(self.data_object, int(self._order[index.row()]), ticked)
        self.dataChanged.emit(index, index, [_CHECK_STATE])
        return True

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Order the rows by a column (-1: the data's own order); the view starts at the top."""
        self._sort = (column, order)
        self.beginResetModel()
        self._order = self._sorted_order(self._order.size)
        self._shown = min(self._batch, int(self._order.size))
        self.endResetModel()

    # -- helpers ----------------------------------------------------------------------------
    def _show_up_to(self, count: int) -> None:
        count = min(count, int(self._order.size))
        if count > self._shown:
            self.beginInsertRows(QModelIndex(), self._shown, count - 1)
            self._shown = count
            self.endInsertRows()

    def _sorted_order(self, size: int) -> np.ndarray:
        column, order = self._sort
        if not size or not 0 <= column < len(self.columns):
            return np.arange(size, dtype=np.int64)
        spec = self.columns[column]
        if spec.keys is not None:
            keys = np.asarray(spec.keys(self.data_object))
        else:
            keys = np.array([spec.text(self.data_object, row) for row in range(size)])
        if order == Qt.SortOrder.DescendingOrder and keys.dtype.kind in "biuf":
            # Negated keys keep equal rows in the data's order and empty (NaN) rows last.
            wide = np.float64 if keys.dtype.kind == "f" else np.int64
            return np.argsort(np.negative(keys.astype(wide)), kind="stable").astype(np.int64)
        ascending = np.argsort(keys, kind="stable").astype(np.int64)
        if order == Qt.SortOrder.DescendingOrder:
            return ascending[::-1].copy()
        return ascending


def record_column(title: str, text: Callable[[Any], str], *, numeric: bool = False,
                  sort_key: Callable[[Any], Any] | None = None, tooltip: str = "",
                  colour: Callable[[Any], QColor | None] | None = None,
                  hint: Callable[[Any], str] | None = None,
                  checked: Callable[[Any], bool] | None = None,
                  set_checked: Callable[[Any, bool], None] | None = None) -> ListColumn:
    """A column of a :class:`RecordListModel`: ``text(record)``, sorted by ``sort_key(record)``.

    Without ``sort_key`` the column sorts by its text; ``colour(record)`` may name the
    colour of the cell's text, ``hint(record)`` its tooltip; ``checked(record)`` gives the
    cell a tick box, ``set_checked(record, ticked)`` hears the user change it.
    """
    keys = None
    if sort_key is not None:
        def keys(records: Sequence[Any]) -> np.ndarray:
            return np.array([sort_key(record) for record in records])

    def per_record(function: Callable[..., Any] | None) -> Callable[..., Any] | None:
        if function is None:
            return None
        return lambda records, row, *rest: function(records[row], *rest)

    return ListColumn(title, lambda records, row: text(records[row]), keys, numeric, tooltip,
                      per_record(colour), per_record(hint), per_record(checked),
                      per_record(set_checked))


class RecordListModel(ListModel, Generic[Record]):
    """A :class:`ListModel` over a short Python list of records (dataclasses).

    ``highlight(record)`` marks the rows that need attention.
    """

    def __init__(self, columns: Sequence[ListColumn],
                 highlight: Callable[[Record], bool] | None = None,
                 parent: QWidget | None = None, batch: int = FETCH_BATCH) -> None:
        super().__init__(columns, None if highlight is None
                         else lambda records, row: highlight(records[row]), parent, batch)
        self.records: list[Record] = []

    def set_records(self, records: Sequence[Record]) -> None:
        """Replace every row."""
        self.records = list(records)
        self.set_data(self.records, len(self.records))

    def append_record(self, record: Record, keep_at_most: int | None = None) -> None:
        """Add one record after the others, dropping the first ones beyond ``keep_at_most``.

        The view keeps its selection and scroll: the rows that go are removed and the new
        one inserted, unless the sort puts it elsewhere than last (then the list is reset).
        """
        while keep_at_most is not None and self.records and len(self.records) >= keep_at_most:
            self._drop_first_record()
        self.records.append(record)
        self.data_object = self.records
        size = len(self.records)
        order = self._sorted_order(size)
        if (self._shown == size - 1 and order[-1] == size - 1
                and np.array_equal(order[:-1], self._order)):
            self.beginInsertRows(QModelIndex(), size - 1, size - 1)
            self._order, self._shown = order, size
            self.endInsertRows()
            return
        self.beginResetModel()
        self._order = order
        self._shown = min(max(self._batch, self._shown + 1), size)
        self.endResetModel()

    def _drop_first_record(self) -> None:
        row = self.view_row(0)
        self.beginRemoveRows(QModelIndex(), row, row)
        del self.records[0]
        self._order = np.delete(self._order, row) - 1
        self._shown -= 1
        self.endRemoveRows()

    def record(self, row: int) -> Record:
        """The record shown at view row ``row``."""
        return self.records[self.data_row(row)]


def category_keys(codes: np.ndarray, values: Sequence[str | None]) -> np.ndarray:
    """Sort keys of a coded text column: each code's place among its values in text order."""
    places = sorted(range(len(values)), key=lambda code: values[code] or "")
    rank = np.empty(max(1, len(values)), dtype=np.int64)
    rank[places] = np.arange(len(places))
    return rank[codes] if codes.size else codes


def selected_text(view: QTableView) -> str:
    """The selected rows as tab-separated lines under a line of column titles; "" if none."""
    model = view.model()
    if not isinstance(model, ListModel):
        return ""
    rows = sorted({index.row() for index in view.selectionModel().selectedRows()})
    if not rows:
        return ""
    titles = [str(model.headerData(c, Qt.Orientation.Horizontal) or "")
              for c in range(model.columnCount())]
    lines = [model.row_texts(row) for row in rows]
    return "\n".join("\t".join(cells) for cells in [titles, *lines]) + "\n"


def copy_selection(view: QTableView) -> str:
    """Put the selected rows on the clipboard; returns what was copied."""
    text = selected_text(view)
    if text:
        QGuiApplication.clipboard().setText(text)
    return text


class ListView(QTableView):
    """The view of a :class:`ListModel`: the copy keys copy whole selected rows.

    Qt's own view takes the copy keys before any shortcut and copies one cell.
    """

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        """Copy the selected rows on the platform's copy keys; other keys as usual."""
        if event.matches(QKeySequence.StandardKey.Copy):
            copy_selection(self)
            event.accept()
            return
        super().keyPressEvent(event)


def make_list_view(model: ListModel, *, multi_select: bool = True, sortable: bool = True,
                   fit_every_row: bool = False) -> ListView:
    """A read-only view of a :class:`ListModel`: whole rows selected, copyable, no row numbers.

    Sortable by a click on a column title unless ``sortable`` is false. Columns are sized to
    the first rows once, not to every row at every refresh: sizing to the contents of a long
    list reads each cell of it and froze the window. A short list (a few records) may ask
    for ``fit_every_row``: its columns follow their contents at every change.
    """
    view = ListView()
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection if multi_select
                          else QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    vertical = view.verticalHeader()
    vertical.setVisible(False)
    vertical.setDefaultSectionSize(view.fontMetrics().height() + 8)
    vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    header = view.horizontalHeader()
    header.setStretchLastSection(True)
    header.setHighlightSections(False)
    if fit_every_row:
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    else:
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setResizeContentsPrecision(SIZE_SAMPLE_ROWS)
        vertical.setResizeContentsPrecision(SIZE_SAMPLE_ROWS)
        model.modelReset.connect(lambda: _size_columns_once(view))
    if sortable:
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        view.setSortingEnabled(True)
    copy = QAction("Copy", view)
    copy.setShortcut(QKeySequence.StandardKey.Copy)
    copy.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    copy.setToolTip("Copy the selected rows as tab-separated text.")
    copy.triggered.connect(lambda: copy_selection(view))
    view.addAction(copy)
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
    return view


def _size_columns_once(view: QTableView) -> None:
    """Fit the columns to their titles and first rows the first time there are rows.

    Measured here from a few rows' texts rather than by the view, which asks the model for
    every role of every sampled cell; afterwards the widths are the user's.
    """
    model = view.model()
    if view.property("columnsSized") or not isinstance(model, ListModel) or not model.rowCount():
        return
    view.setProperty("columnsSized", True)
    metrics = view.fontMetrics()
    header = view.horizontalHeader()
    title_metrics = header.fontMetrics()
    samples = [model.row_texts(row) for row in range(min(SIZE_SAMPLE_ROWS, model.rowCount()))]
    for column, spec in enumerate(model.columns):
        widest = max((metrics.horizontalAdvance(texts[column]) for texts in samples), default=0)
        title = title_metrics.horizontalAdvance(spec.title) + 28  # room for the sort arrow
        header.resizeSection(column, min(MAX_COLUMN_WIDTH, max(widest + 16, title)))


def keep_place_when_hidden(widget: QWidget) -> QWidget:
    """Keep ``widget``'s room in the layout while it is hidden, so showing it moves nothing.

    A progress strip that pushes a long list up when it appears makes the list repaint every
    visible cell while the job that reads the list is busy: it froze the window.
    """
    policy = widget.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    widget.setSizePolicy(policy)
    return widget
