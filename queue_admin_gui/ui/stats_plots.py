"""The live plots of the Stats tab: database pages and tasks by status over time.

``page_count`` shows how the file grows; ``freelist_count`` how much of it is empty space that
VACUUM would give back. The task plot shows whether work arrives faster than workers finish
it, and whether tasks pile up in flight (stuck leases) or among the dead.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..app.monitor import Sampler
from ..app.session import Session
from ..core.schema import DEAD_STATUSES, IN_FLIGHT_STATUSES, STATUS_COMPLETED, STATUS_QUEUED
from ..core.status_labels import COMPLETED_LABEL, DEAD_LABEL, IN_FLIGHT_LABEL, QUEUED_LABEL
from .live_plot import LivePlotWidget, make_time_plot
from .palette import AMBER, BLUE, GREEN, RED

#: Task curves: label, statuses summed (both spellings of in flight and dead), colour, and a
#: line style, so that curves lying on top of each other (often in flight and dead, both
#: near zero) can still be told apart: solid, dashed, dotted, dash-dotted, and widths apart.
TASK_GROUPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (QUEUED_LABEL, (STATUS_QUEUED,), BLUE),
    (IN_FLIGHT_LABEL, IN_FLIGHT_STATUSES, AMBER),
    (COMPLETED_LABEL, (STATUS_COMPLETED,), GREEN),
    (DEAD_LABEL, DEAD_STATUSES, RED),
)
TASK_PENS = {
    QUEUED_LABEL: pg.mkPen(BLUE, width=2),
    IN_FLIGHT_LABEL: pg.mkPen(AMBER, width=3, style=Qt.PenStyle.DashLine),
    COMPLETED_LABEL: pg.mkPen(GREEN, width=2, style=Qt.PenStyle.DashDotLine),
    DEAD_LABEL: pg.mkPen(RED, width=1.5, style=Qt.PenStyle.DotLine),
}

#: Legends sit above the plot area, in the row a title would use: they never cover a curve.
LEGEND_COLUMNS = 4
PLOT_MIN_HEIGHT = 150


def legend_above(plot: pg.PlotWidget) -> pg.LegendItem:
    """A one-row legend placed above the plot's data area instead of on top of it."""
    item = plot.getPlotItem()
    legend = pg.LegendItem(colCount=LEGEND_COLUMNS, labelTextColor="k")
    item.layout.removeItem(item.titleLabel)
    item.titleLabel.hide()
    item.layout.addItem(legend, 0, 1)
    item.legend = legend  # plot(name=...) adds its curves here
    return legend


class StatsPlotsWidget(LivePlotWidget):
    """Pages and free pages over time above tasks by status over time, same time window."""

    def __init__(self, session: Session, sampler: Sampler,
                 parent: QWidget | None = None) -> None:
        super().__init__(session, sampler, parent)
        self.controls.addStretch(1)
        self.pages_plot = make_time_plot("Pages")
        self.pages_legend = legend_above(self.pages_plot)
        self.page_curve = self.pages_plot.plot(pen=pg.mkPen(BLUE, width=2),
                                               connect="finite", name="pages in the file")
        self.freelist_curve = self.pages_plot.plot(pen=pg.mkPen(AMBER, width=2),
                                                   connect="finite",
                                                   name="free pages (VACUUM would return)")
        self.tasks_plot = make_time_plot("Tasks")
        self.tasks_legend = legend_above(self.tasks_plot)
        self.task_curves = {
            label: self.tasks_plot.plot(pen=TASK_PENS[label], connect="finite", name=label)
            for label, _statuses, _colour in TASK_GROUPS
        }
        self.tasks_note = QLabel("Task counts are taken every 10 seconds; click a legend "
                                 "entry to hide its curve.")
        self.tasks_note.setStyleSheet("color: palette(placeholder-text);")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.controls)
        for plot in (self.pages_plot, self.tasks_plot):
            plot.setMinimumHeight(PLOT_MIN_HEIGHT)
        layout.addWidget(self.pages_plot, 1)
        layout.addWidget(self.tasks_plot, 1)
        layout.addWidget(self.tasks_note)

    def draw(self, start: float, end: float) -> None:
        """One setData per curve with the samples of the visible window."""
        pages = self.sampler.history.since(start, ("time", "page_count", "freelist_count"))
        self.page_curve.setData(pages[:, 0], pages[:, 1], connect="finite")
        self.freelist_curve.setData(pages[:, 0], pages[:, 2], connect="finite")
        tasks = self.sampler.tasks
        columns = tasks.columns
        rows = tasks.since(start)
        for label, statuses, _colour in TASK_GROUPS:
            if len(rows):
                values = np.sum([rows[:, columns.index(status)] for status in statuses], axis=0)
            else:
                values = np.empty(0)
            self.task_curves[label].setData(rows[:, 0], values, connect="finite")
        shown = self.time_range(start, end)
        self.pages_plot.setXRange(*shown, padding=0)
        self.tasks_plot.setXRange(*shown, padding=0)
