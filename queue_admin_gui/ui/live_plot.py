"""What every live plot shares: a time window, pause/resume, and a redraw timer.

Plots redraw on a timer, never per sample: each tick hands the curves the visible slice of
the sampler's ring buffers with one ``setData`` per curve, and nothing happens when no new
sample arrived. The timer runs only while the widget is shown, so a hidden tab costs nothing;
the sampler keeps sampling either way, so nothing is missed while a tab is hidden or paused.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QWidget,
)

from ..app.monitor import Sampler
from ..app.session import Session

#: Visible time spans offered to the user: label, seconds.
WINDOWS: tuple[tuple[str, int], ...] = (
    ("Last 5 minutes", 300), ("Last hour", 3600), ("Last 24 hours", 86400),
)
#: Redraw at most this often, however fast the sampler runs.
MIN_REDRAW_MS = 250
#: Until the chosen window is full, the time axis shows at least this much (seconds).
MIN_SPAN_SECONDS = 30.0
#: A plot never gets smaller than this (pixels): its axis labels stay readable at 1024x700.
PLOT_MIN_HEIGHT = 180


def fitted_time_range(first_sample: float | None, start: float, end: float,
                      minimum: float = MIN_SPAN_SECONDS) -> tuple[float, float]:
    """The time axis: from the first sample (not the window's left edge) until it is full.

    A window of 5 minutes opened 20 seconds ago shows those 20 seconds (at least ``minimum``),
    not a line squeezed against the right edge; once there are older samples the whole
    window ``start``..``end`` shows.
    """
    left = start if first_sample is None else max(start, first_sample)
    return min(left, end - minimum), end


class _DetailsScroll(QScrollArea):
    """A scroll area that asks for the whole height of its contents (Qt's caps it)."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """The contents' own size hint, so a tall window shows them without scrolling."""
        inner = self.widget()
        hint = super().sizeHint()
        if inner is not None:
            hint.setHeight(inner.sizeHint().height() + 2 * self.frameWidth())
        return hint


def details_above_plot(details: QWidget, plot: QWidget) -> QSplitter:
    """Figures and buttons above, the plot below, with a handle between them to drag.

    The details scroll when the window is too low for them, and the plot keeps the minimum
    its own widgets need (a banner above it included); on a big screen the plot takes the
    extra height.
    """
    scroll = _DetailsScroll()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setWidget(details)
    splitter = QSplitter(Qt.Orientation.Vertical)
    splitter.setObjectName("detailsAbovePlot")
    splitter.addWidget(scroll)
    splitter.addWidget(plot)
    splitter.setChildrenCollapsible(False)
    splitter.setStretchFactor(0, 0)
    splitter.setStretchFactor(1, 1)
    scroll.setMinimumHeight(80)
    return splitter


def make_time_plot(y_label: str, units: str = "") -> pg.PlotWidget:
    """A plot with wall-clock time (local) along the bottom, bounded for long data."""
    plot = pg.PlotWidget(background="w",
                         axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
    item = plot.getPlotItem()
    for side in ("left", "bottom"):
        item.getAxis(side).setPen("k")
        item.getAxis(side).setTextPen("k")
    item.setLabel("left", y_label, units=units)
    item.showGrid(x=True, y=True, alpha=0.25)
    item.setClipToView(True)
    item.setDownsampling(auto=True, mode="peak")
    item.setMouseEnabled(x=True, y=False)
    item.enableAutoRange(axis="y", enable=True)
    item.hideButtons()
    return plot


def finite_range(values: np.ndarray) -> tuple[float, float] | None:
    """Smallest and largest finite value, or None when there are none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    return float(finite.min()), float(finite.max())


class LivePlotWidget(QWidget):
    """Base of the live plots: window selector, pause button and the redraw timer.

    Subclasses build their plots, put :attr:`controls` in their layout and implement
    :meth:`draw`, which receives the left edge of the visible window in epoch seconds.
    """

    def __init__(self, session: Session, sampler: Sampler,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.sampler = sampler
        self.window_seconds = WINDOWS[0][1]
        self.paused = False
        self.redraws = 0
        self._drawn_version: tuple[int, ...] | None = None
        self.window_combo = QComboBox()
        for label, seconds in WINDOWS:
            self.window_combo.addItem(label, seconds)
        self.window_combo.setToolTip("How much time the plot shows, ending now.")
        self.window_combo.currentIndexChanged.connect(self._on_window_chosen)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Freeze the plot to look at it; sampling goes on and "
                                     "Resume catches up.")
        self.pause_button.toggled.connect(self.set_paused)
        self.controls = QHBoxLayout()
        self.controls.addWidget(QLabel("Show:"))
        self.controls.addWidget(self.window_combo)
        self.controls.addWidget(self.pause_button)
        self.redraw_timer = QTimer(self)
        self.redraw_timer.timeout.connect(self._on_redraw_timer)
        self._apply_redraw_interval(float(session.config.sample_interval_seconds))
        session.config_changed.connect(
            lambda config: self._apply_redraw_interval(float(config.sample_interval_seconds)))
        sampler.cleared.connect(self.redraw)

    # -- public ----------------------------------------------------------------------------
    def set_window_seconds(self, seconds: int) -> None:
        """Show the last ``seconds`` of samples (the selector follows)."""
        index = self.window_combo.findData(seconds)
        if index >= 0 and index != self.window_combo.currentIndex():
            self.window_combo.setCurrentIndex(index)
            return
        self.window_seconds = int(seconds)
        self.redraw()

    def set_paused(self, paused: bool) -> None:
        """Freeze (True) or follow (False) the live data."""
        self.paused = bool(paused)
        if self.pause_button.isChecked() != self.paused:
            self.pause_button.setChecked(self.paused)
        self.pause_button.setText("Resume" if self.paused else "Pause")
        if not self.paused:
            self.redraw()

    def redraw(self) -> None:
        """Redraw now from the ring buffers, whatever the timer says."""
        self._drawn_version = None
        self._on_redraw_timer()

    def window_start(self) -> float:
        """Left edge of the visible window (epoch seconds)."""
        return self.sampler.clock() - self.window_seconds

    def time_range(self, start: float, end: float) -> tuple[float, float]:
        """The x range to show: fitted to the samples until the window is full."""
        history = self.sampler.history
        first = float(history.row(0)[0]) if len(history) else None
        return fitted_time_range(first, start, end)

    # -- for subclasses --------------------------------------------------------------------
    def data_version(self) -> tuple[int, ...]:
        """Changes whenever the data a redraw would show may have changed."""
        return (self.sampler.history.appended, self.sampler.tasks.appended)

    def draw(self, start: float, end: float) -> None:
        """Hand the curves the data between ``start`` and ``end`` (one setData per curve)."""
        raise NotImplementedError

    # -- events ----------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        """Start redrawing when the tab becomes visible."""
        super().showEvent(event)
        self.redraw_timer.start()
        self.redraw()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 - Qt override
        """Stop redrawing while the tab is hidden (the sampler keeps sampling)."""
        self.redraw_timer.stop()
        super().hideEvent(event)

    def _apply_redraw_interval(self, sample_seconds: float) -> None:
        self.redraw_timer.setInterval(max(MIN_REDRAW_MS, int(sample_seconds * 1000)))

    def _on_window_chosen(self, index: int) -> None:
        self.window_seconds = int(self.window_combo.itemData(index))
        self.redraw()

    def _on_redraw_timer(self) -> None:
        if self.paused:
            return
        version = (*self.data_version(), self.window_seconds)
        if version == self._drawn_version:
            return
        self._drawn_version = version
        end = self.sampler.clock()
        self.draw(end - self.window_seconds, end)
        self.redraws += 1
