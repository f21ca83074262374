"""The Stats tab: file sizes, page usage, journal settings and tasks by status.

Refreshed on demand and every :data:`REFRESH_INTERVAL_MS` while the tab is visible; a tick
is skipped while the previous read still runs, and a failed timed refresh is shown in the tab
rather than in a message box every few seconds. Live plots go into :attr:`StatsTab.plot_area`.

In the window the sizes, page counts and task counts follow the sampler's readings (the same
ones the status bar and the WAL tab show), and the tab says when its figures were read. When
they cannot be read again (the file was deleted, or is locked), the last good figures stay
greyed with the time they were read: they are never shown as current.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6.QtCore import QTimer
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..app.monitor import Sampler
from ..app.operations import TOPIC_DATABASE, TOPIC_LEASES, TOPIC_STATS
from ..app.session import Session
from ..core.errors import format_bytes
from ..core.maintenance import Maintenance
from ..core.measurements.readings import fragmentation_percent, reading_time
from ..core.measurements.sampling import Sample
from ..core.measurements.stats import DatabaseStats
from ..core.status_labels import task_status_label
from .live_plot import details_above_plot
from .maintenance_tab import MaintenanceTab
from .status_bar import STALE_COLOUR
from .table_model import RecordListModel, make_list_view, record_column
from .widgets import (
    BAD_COLOUR,
    WARN_COLOUR,
    KeyValueGrid,
    explanation,
    format_count,
    group_box,
    plot_frame,
    set_status,
    status_label,
)

REFRESH_INTERVAL_MS = 10_000
#: The figures of the two grids, greyed together when they cannot be read again.
FILE_KEYS = ("db_size", "wal_size", "shm_size", "total_size")
PAGE_KEYS = ("page_size", "journal_mode", "page_count", "auto_vacuum", "freelist",
             "sqlite_version", "fragmentation")


@dataclass(frozen=True)
class StatusCount:
    """One row of the task table: a status, its task count and its share of all tasks."""

    status: str
    count: int
    share: float


#: Room for the header and the six known statuses.
TASK_TABLE_MAX_HEIGHT = 165


class StatsTab(MaintenanceTab):
    """Sizes, pages, settings and task counts of the open database, kept fresh."""

    topics = (TOPIC_STATS, TOPIC_LEASES, TOPIC_DATABASE)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.stats: DatabaseStats | None = None
        self.skipped_ticks = 0
        self.sampler: Sampler | None = None
        #: When the figures shown were read (epoch seconds), and whether they are current.
        self.read_at: float | None = None
        self.stale = False
        self.files_grid = KeyValueGrid()
        self.files_grid.add_row("db_size", "Database file")
        self.files_grid.add_row("wal_size", "WAL file (-wal)")
        self.files_grid.add_row("shm_size", "Shared memory (-shm)")
        self.files_grid.add_row("total_size", "Database + WAL")
        self.pages_grid = KeyValueGrid(columns=2)
        self.pages_grid.add_row("page_size", "Page size")
        self.pages_grid.add_row("journal_mode", "Journal mode")
        self.pages_grid.add_row("page_count", "Pages")
        self.pages_grid.add_row("auto_vacuum", "Auto-vacuum")
        self.pages_grid.add_row("freelist", "Free pages")
        self.pages_grid.add_row("sqlite_version", "SQLite version")
        self.pages_grid.add_row("fragmentation", "Fragmentation")
        self.path_label = status_label()
        self.updated_label = QLabel()
        self.error_label = status_label()
        self.tasks_label = QLabel()
        self.refresh_button = QPushButton("Refresh")
        self.tasks_model: RecordListModel[StatusCount] = RecordListModel([
            record_column("Status", lambda row: task_status_label(row.status)),
            record_column("Tasks", lambda row: format_count(row.count), numeric=True),
            record_column("Share", lambda row: f"{row.share:.1f} %", numeric=True),
        ], parent=self)
        # The statuses stay in the queue's order: the table is read, not sorted.
        self.tasks_view = make_list_view(self.tasks_model, multi_select=False, sortable=False,
                                         fit_every_row=True)
        header = self.tasks_view.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        # Six statuses at most: keep the table to its rows so the live plots get the room.
        self.tasks_view.setMaximumHeight(TASK_TABLE_MAX_HEIGHT)
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setInterval(REFRESH_INTERVAL_MS)
        self.refresh_timer.timeout.connect(self._on_refresh_tick)
        plot, self.plot_area = plot_frame()
        self._build_layout(plot)
        self.add_action(self.refresh_button, "Read sizes, pages and task counts again now.")
        self.refresh_button.clicked.connect(self.refresh)

    def _build_layout(self, plot: QWidget) -> None:
        files = group_box("Files on disk")
        files_layout = QVBoxLayout(files)
        files_layout.addWidget(self.path_label)
        files_layout.addWidget(self.files_grid)
        files_layout.addStretch(1)

        pages = group_box("Pages and settings")
        pages_layout = QVBoxLayout(pages)
        pages_layout.addWidget(explanation(
            "The file is made of fixed-size pages; free pages are space left by deleted rows "
            "that VACUUM gives back."))
        pages_layout.addWidget(self.pages_grid)
        pages_layout.addStretch(1)

        tasks = group_box("Tasks by status")
        tasks_layout = QVBoxLayout(tasks)
        tasks_layout.addWidget(self.tasks_view, 1)
        tasks_layout.addWidget(self.tasks_label)

        top = QHBoxLayout()
        top.addWidget(files, 2)
        top.addWidget(pages, 3)
        top.addWidget(tasks, 2)
        status_row = QHBoxLayout()
        status_row.addWidget(self.updated_label, 1)
        status_row.addWidget(self.refresh_button)
        details = QWidget()
        column = QVBoxLayout(details)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        self.splitter = details_above_plot(details, plot)
        layout = QVBoxLayout(self)
        # when and whether the figures were read stays in sight, above what may scroll
        layout.addLayout(status_row)
        layout.addWidget(self.error_label)
        layout.addWidget(self.progress_panel)
        layout.addWidget(self.splitter, 1)
        self.error_label.hide()

    def attach_sampler(self, sampler: Sampler) -> None:
        """Follow ``sampler``'s readings for sizes, pages and task counts from now on."""
        self.sampler = sampler
        sampler.sampled.connect(self._on_sample)
        sampler.gap.connect(self._on_failed)

    def refresh(self) -> None:
        """Read the statistics now; a failure is told to the user."""
        self._load(report_errors=True)

    def clear(self) -> None:
        """Show every figure as unknown, with no path and no error (another file is opening)."""
        self.stats = None
        self.read_at = None
        self.stale = False
        self.files_grid.clear_values()
        self.pages_grid.clear_values()
        path = self.session.db_path
        self.path_label.setText(str(path) if path is not None else "")
        self.updated_label.clear()
        self.error_label.clear()
        self.error_label.hide()
        self.tasks_model.set_records([])
        self.tasks_label.clear()
        self.tasks_view.setEnabled(True)

    def show_load_failed(self, error: BaseException) -> None:
        """The statistics could not be read: the figures stay unknown, the reason shows."""
        self.clear()
        self._on_failed(error)

    def _load(self, report_errors: bool) -> None:
        path = self.session.db_path
        if path is None:
            return
        self.run_load("Read statistics",
                      lambda progress, cancelled: Maintenance(path).read_stats(),
                      self._on_stats, report_errors=report_errors, on_error=self._on_failed)

    def _on_refresh_tick(self) -> None:
        if self.loading or self.session.db_path is None:
            self.skipped_ticks += 1
            return
        self._load(report_errors=False)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        """Refresh on a timer only while the tab can be seen."""
        super().showEvent(event)
        self.refresh_timer.start()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802
        """Stop the timer while the tab is hidden: nobody is looking."""
        super().hideEvent(event)
        self.refresh_timer.stop()

    def _on_failed(self, error: BaseException | str) -> None:
        """The figures could not be read again: grey them and keep the time they were read."""
        set_status(self.error_label, f"Could not refresh: {error}", BAD_COLOUR)
        self.error_label.show()
        self.stale = True
        for grid, keys in ((self.files_grid, FILE_KEYS), (self.pages_grid, PAGE_KEYS)):
            for key in keys:
                grid.set_value(key, grid.value(key), STALE_COLOUR)
        self.tasks_view.setEnabled(False)
        when = reading_time(self.read_at) if self.read_at is not None else "never"
        set_status(self.updated_label, f"Not current: these figures were last read at {when}; "
                   "they could not be read again.", STALE_COLOUR)

    def _mark_current(self, moment: float) -> None:
        self.read_at = moment
        self.stale = False
        self.error_label.hide()
        self.tasks_view.setEnabled(True)
        source = ("read every few seconds" if self.sampler is not None else
                  f"refreshes every {self.refresh_timer.interval() // 1000} s while this tab "
                  "is shown")
        set_status(self.updated_label, f"Read at {reading_time(moment)}; {source}.")

    def _show_sizes(self, db_bytes: int, wal_bytes: int, shm_bytes: int, page_count: int,
                    freelist: int, page_size: int, percent: float) -> None:
        config = self.session.config
        wal_mb = wal_bytes / (1024 * 1024)
        wal_colour = (BAD_COLOUR if wal_mb >= config.wal_size_threshold_mb else
                      WARN_COLOUR if wal_mb >= config.wal_size_warning_mb else None)
        self.files_grid.set_value("db_size", format_bytes(db_bytes))
        self.files_grid.set_value("wal_size", format_bytes(wal_bytes), wal_colour)
        self.files_grid.set_value("shm_size", format_bytes(shm_bytes))
        self.files_grid.set_value("total_size", format_bytes(db_bytes + wal_bytes))
        self.pages_grid.set_value("page_size", format_bytes(page_size))
        self.pages_grid.set_value("page_count", format_count(page_count))
        self.pages_grid.set_value(
            "freelist", f"{format_count(freelist)} ({format_bytes(freelist * page_size)})")
        fragmentation_colour = (
            BAD_COLOUR if percent >= config.fragmentation_critical_percent else
            WARN_COLOUR if percent >= config.fragmentation_warning_percent else None)
        self.pages_grid.set_value("fragmentation", f"{percent:.1f} %", fragmentation_colour)

    def _on_sample(self, sample: Sample) -> None:
        self._show_sizes(sample.db_bytes, sample.wal_bytes, sample.shm_bytes,
                         sample.page_count, sample.freelist_count, sample.page_size,
                         fragmentation_percent(sample))
        if sample.task_counts is not None:
            problems = self.stats.schema_problems if self.stats is not None else []
            self._show_task_counts(sample.task_counts, problems)
        self._mark_current(sample.time)

    def _on_stats(self, stats: DatabaseStats) -> None:
        self.stats = stats
        self.path_label.setText(stats.path)
        sample = self.sampler.last_sample if self.sampler is not None else None
        if sample is None or (self.sampler is not None and self.sampler.stale):
            # no reading from the sampler yet: this read is the latest one
            self._show_sizes(stats.db_size_bytes, stats.wal_size_bytes, stats.shm_size_bytes,
                             stats.page_count, stats.freelist_count, stats.page_size,
                             stats.fragmentation_percent)
            self._mark_current(time.time())
        self.pages_grid.set_value("journal_mode", stats.journal_mode.upper())
        self.pages_grid.set_value("auto_vacuum", stats.auto_vacuum)
        self.pages_grid.set_value("sqlite_version", stats.sqlite_version)
        self._show_task_counts(stats.task_counts, stats.schema_problems)

    def _show_task_counts(self, counts: dict[str, int] | None, problems: list[str]) -> None:
        if counts is None:
            self.tasks_model.set_records([])
            self.tasks_label.setText("Not a queue database, so there are no tasks to count"
                                     + (f" ({'; '.join(problems)})." if problems else "."))
            self.tasks_label.setWordWrap(True)
            return
        total = sum(counts.values())
        rows = [StatusCount(status, count, count / total * 100 if total else 0.0)
                for status, count in counts.items()
                if count or status in ("queued", "leased", "completed", "failed")]
        self.tasks_model.set_records(rows)
        self.tasks_label.setText(f"{format_count(total)} tasks in total.")

    def task_count_shown(self, status: str) -> int | None:
        """The count the table shows for ``status`` (None when it has no row)."""
        for row in self.tasks_model.records:
            if row.status == status:
                return row.count
        return None
