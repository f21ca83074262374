"""The live WAL plot of the WAL/Checkpoint tab, with its warning banner.

An administrator leaves the window open and sees how the WAL grows over minutes to a day
against the warning and critical levels of the config, when checkpoints and backups ran, and,
in plain words, what to do: a banner offers a TRUNCATE checkpoint in one click once the WAL
passes the warning level, and says when a long reader keeps the WAL from being reset.
"""

from __future__ import annotations

import html
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..app.jobs import Job
from ..app.monitor import Sampler
from ..app.session import Session
from ..core.errors import format_bytes
from ..core.maintenance import Maintenance
from ..core.maintenance_results import CheckpointResult
from ..core.measurements.readings import reading_time
from ..core.measurements.sampling import MEGABYTE, CheckpointOutcome, export_csv, wal_level
from ..core.measurements.wal_pin import WalPinLookup, pin_age_text
from ..core.progress import CancelCheck, ProgressCallback
from .live_plot import PLOT_MIN_HEIGHT, LivePlotWidget, finite_range, make_time_plot
from .palette import (
    AMBER,
    BLUE,
    GOOD_TEXT,
    GREEN,
    PURPLE,
    RED,
    WARN_TEXT,
    paint_status,
)
from .status_bar import STALE_COLOUR

#: Markers kept on the plot at most (older ones are dropped first).
MAX_MARKERS = 200
#: Heights (share of the plot, from the bottom) of the rows marker labels are put in: a
#: label whose neighbour is too close goes one row down; with every row taken it is hidden
#: (the line stays, and its tooltip carries the text).
LABEL_ROWS = (0.97, 0.86, 0.75, 0.64)
#: Room a label needs beside the previous one in its row at least (pixels); a wider label
#: ("TRUNCATE (frames left)") needs its own width.
LABEL_GAP_PX = 70
WAL_PEN = pg.mkPen(BLUE, width=2)
WARNING_PEN = pg.mkPen(AMBER, width=1.5, style=Qt.PenStyle.DashLine)
CRITICAL_PEN = pg.mkPen(RED, width=1.5, style=Qt.PenStyle.DashLine)
CHECKPOINT_PEN = pg.mkPen(GREEN, width=1.5, style=Qt.PenStyle.DotLine)
BACKUP_PEN = pg.mkPen(PURPLE, width=1.5, style=Qt.PenStyle.DotLine)


def breakable(text: str) -> str:
    """``text`` with a break allowed after each path separator, so a long path wraps.

    A word-wrapped label is at least as wide as its longest word; an unbroken command line
    would otherwise make the window wider than a 1024-pixel screen.
    """
    return text.replace("/", "/\u200b").replace("\\", "\\\u200b")


def _threshold_label(colour: str) -> dict[str, Any]:
    """Label options that keep a threshold's text just above its line at the left edge."""
    return {"position": 0.01, "color": colour, "anchors": [(0, 1), (0, 1)]}


#: Events after which the light or dark pair is chosen again.
_THEME_EVENTS = (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange)


class WalPlotWidget(LivePlotWidget):
    """WAL size over wall-clock time, thresholds, checkpoint/backup markers and the banner."""

    def __init__(self, session: Session, sampler: Sampler,
                 parent: QWidget | None = None) -> None:
        super().__init__(session, sampler, parent)
        self.markers: deque[tuple[float, str, pg.InfiniteLine]] = deque()
        self.checkpoint_job: Job | None = None
        self.export_job: Job | None = None
        #: The banner's TRUNCATE could not finish: run it again once the reader lets go.
        self.retry_when_free = False
        #: The program named as still reading when it could not finish, if one was.
        self.blocking_pid: int | None = None
        self.banner = QFrame()
        self.banner.setObjectName("walBanner")
        self.banner.setFrameShape(QFrame.Shape.Box)  # drawn in the text colour of its level
        self.banner_level = ""
        self.banner_label = QLabel()
        self.banner_label.setWordWrap(True)
        self.banner_label.setTextFormat(Qt.TextFormat.RichText)
        self.banner_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.LinksAccessibleByMouse
            | Qt.TextInteractionFlag.LinksAccessibleByKeyboard)
        self.banner_label.linkActivated.connect(self._on_banner_link)
        #: The whole story behind the banner's two lines, shown by its "Details" link.
        self.details_label = QLabel()
        self.details_label.setWordWrap(True)
        self.details_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details_label.hide()
        self.banner_text = ""
        self.truncate_button = QPushButton("Run TRUNCATE checkpoint")
        self.truncate_button.setToolTip(
            "Copy every WAL frame into the database and shrink the WAL file to zero; writers "
            "wait a moment while it runs.")
        self.truncate_button.clicked.connect(self.run_truncate_checkpoint)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(8, 4, 8, 4)
        text_column = QVBoxLayout()
        text_column.setContentsMargins(0, 0, 0, 0)
        text_column.addWidget(self.banner_label)
        text_column.addWidget(self.details_label)
        banner_layout.addLayout(text_column, 1)
        banner_layout.addWidget(self.truncate_button, 0, Qt.AlignmentFlag.AlignVCenter)
        self.banner.hide()

        self.export_button = QPushButton("Export CSV...")
        self.export_button.setToolTip("Save every sample kept (up to a day) as a CSV file.")
        self.export_button.clicked.connect(self._on_export_clicked)
        self.summary_label = QLabel()
        self.sampler_status_label = QLabel()
        self.sampler_status_label.setWordWrap(True)
        self.sampler_status_label.setStyleSheet(f"color:{WARN_TEXT};")
        self.sampler_status_label.hide()
        self.controls.addWidget(self.export_button)
        self.controls.addStretch(1)
        self.controls.addWidget(self.summary_label)

        self.plot = make_time_plot("WAL size (MB)")
        self.plot.setMinimumHeight(PLOT_MIN_HEIGHT)
        self.curve = self.plot.plot(pen=WAL_PEN, connect="finite", name="WAL size")
        self.warning_line = pg.InfiniteLine(angle=0, pen=WARNING_PEN, movable=False,
                                            label="warning {value:.4g} MB",
                                            labelOpts=_threshold_label(WARN_TEXT))
        self.critical_line = pg.InfiniteLine(angle=0, pen=CRITICAL_PEN, movable=False,
                                             label="critical {value:.4g} MB",
                                             labelOpts=_threshold_label(RED))
        self.plot.addItem(self.warning_line, ignoreBounds=True)
        self.plot.addItem(self.critical_line, ignoreBounds=True)
        self.plot.getPlotItem().enableAutoRange(axis="y", enable=False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.banner)
        layout.addLayout(self.controls)
        layout.addWidget(self.sampler_status_label)
        layout.addWidget(self.plot, 1)

        self._apply_thresholds()
        session.config_changed.connect(self._on_config_changed)
        session.backup_done.connect(self._on_backup_done)
        session.runner.write_busy_changed.connect(self._update_truncate_button)
        sampler.checkpoint_recorded.connect(self._on_checkpoint_recorded)
        sampler.sampled.connect(self._on_sampled)
        sampler.status_changed.connect(self._on_sampler_status)
        sampler.gap.connect(lambda _reason: self._update_summary())
        sampler.cleared.connect(self._on_cleared)
        sampler.starvation_changed.connect(lambda _found: self._update_banner())
        sampler.holders_found.connect(lambda _lookup: self._update_banner())
        sampler.pin_found.connect(self._on_pin_found)
        self._update_summary()

    # -- public ----------------------------------------------------------------------------
    @property
    def banner_shown(self) -> bool:
        """True when the banner is up (whether or not the tab is on screen)."""
        return not self.banner.isHidden()

    def add_marker(self, moment: float, label: str, backup: bool = False) -> pg.InfiniteLine:
        """Mark ``moment`` on the time axis with ``label`` (a checkpoint mode or "backup")."""
        line = pg.InfiniteLine(pos=moment, angle=90, movable=False,
                               pen=BACKUP_PEN if backup else CHECKPOINT_PEN, label=label,
                               labelOpts={"position": 0.9 if backup else 0.97,
                                          "color": PURPLE if backup else GOOD_TEXT,
                                          "anchors": [(1, 0), (1, 0)]})
        line.setZValue(-10)  # behind the WAL curve: a label never hides a sample
        self.plot.addItem(line, ignoreBounds=True)
        self.markers.append((moment, label, line))
        while len(self.markers) > MAX_MARKERS:
            self._drop_oldest_marker()
        self.layout_marker_labels()
        return line

    def run_truncate_checkpoint(self, retry: bool = False) -> Job | None:
        """Run a TRUNCATE checkpoint as a write job; the plot marks it when it is done.

        ``retry``: run again by itself after the reader that kept the last one from
        finishing let go (the activity log says so).
        """
        path = self.session.db_path
        if path is None or (self.checkpoint_job is not None
                            and not self.checkpoint_job.is_finished):
            return None
        self.checkpoint_job = self.session.run_checkpoint(
            Maintenance.CHECKPOINT_TRUNCATE,
            origin="WAL banner, run again once the reader let go" if retry else "WAL banner",
            on_done=lambda result: self._on_truncate_done(result, retry))
        if self.checkpoint_job is None:
            return None
        self.checkpoint_job.finished.connect(self._update_truncate_button)
        self._update_truncate_button()
        return self.checkpoint_job

    def export_csv_to(self, path: str | Path) -> Job:
        """Write the kept samples to ``path`` as CSV in a job (a snapshot is taken now)."""
        target = Path(path)
        samples = self.sampler.history.ordered()
        tasks = self.sampler.tasks.ordered()

        def write(progress: ProgressCallback, cancelled: CancelCheck) -> int:
            return export_csv(target, samples, tasks)

        self.export_job = self.session.run(
            "Export samples to CSV", write, parameters={"path": str(target)},
            on_done=lambda rows: self.session.messages.info(
                f"Exported {rows} samples to '{target}'."),
        )
        return self.export_job

    # -- drawing ---------------------------------------------------------------------------
    def draw(self, start: float, end: float) -> None:
        """One setData for the WAL curve, the x range, and a y range that shows the limits."""
        rows = self.sampler.history.since(start, ("time", "wal_bytes"))
        megabytes = rows[:, 1] / MEGABYTE
        self.curve.setData(rows[:, 0], megabytes, connect="finite")
        self.plot.setXRange(*self.time_range(start, end), padding=0)
        low_high = finite_range(megabytes)
        top = low_high[1] if low_high else 0.0
        config = self.session.config
        for limit in (config.wal_size_warning_mb, config.wal_size_threshold_mb):
            if top >= 0.5 * limit:
                top = max(top, float(limit))
        self.plot.setYRange(0, max(top * 1.15, 0.01), padding=0)
        oldest = self.sampler.history.row(0)[0] if len(self.sampler.history) else end
        while self.markers and self.markers[0][0] < min(start, oldest):
            self._drop_oldest_marker()
        self.layout_marker_labels()

    def layout_marker_labels(self) -> None:
        """Put the labels of markers close together in different rows, never on each other."""
        (left, right), _ = self.plot.getPlotItem().viewRange()
        width = max(1.0, self.plot.getPlotItem().getViewBox().width())
        per_second = width / max(right - left, 1e-9)
        last_in_row: list[float | None] = [None] * len(LABEL_ROWS)
        for moment, label, line in self.markers:
            x = (moment - left) * per_second
            # a label ends at its line (anchored by its right edge): it needs its own width
            needed = max(LABEL_GAP_PX, line.label.boundingRect().width() + 8)
            row = next((index for index, previous in enumerate(last_in_row)
                        if previous is None or x - previous >= needed), None)
            line.label.setVisible(row is not None)
            line.setToolTip(label)
            if row is not None:
                line.label.setPosition(LABEL_ROWS[row])
                last_in_row[row] = x

    def _drop_oldest_marker(self) -> None:
        _moment, _label, line = self.markers.popleft()
        self.plot.removeItem(line)

    # -- banner ----------------------------------------------------------------------------
    def _update_banner(self) -> None:
        config = self.session.config
        sample = self.sampler.last_sample
        advice = self.sampler.advice()
        size = format_bytes(sample.wal_bytes) if sample is not None else "?"
        if advice is not None or self.retry_when_free:
            headline, next_step = self._pin_sentences(size)
            self._show_banner(headline, next_step, "critical", details=advice or "")
            return
        level = "ok" if sample is None else wal_level(
            sample.wal_bytes, config.wal_size_warning_mb, config.wal_size_threshold_mb)
        if sample is None or level == "ok":
            self.banner.hide()
            return
        limit = config.wal_size_threshold_mb if level == "critical" else config.wal_size_warning_mb
        self._show_banner(
            f"The WAL is {size} (read {reading_time(sample.time)}), above the {level} level "
            f"of {limit} MB.",
            "A TRUNCATE checkpoint copies it into the database and shrinks it to zero.", level)

    def _pin_sentences(self, size: str) -> tuple[str, str]:
        """The banner's two lines while a reader pins the WAL: who, and what to do."""
        pin = self.sampler.pin
        culprit = pin.culprit if pin is not None else None
        then = ("the TRUNCATE checkpoint then runs again by itself" if self.retry_when_free
                else "then run a TRUNCATE checkpoint")
        if culprit is not None and pin is not None and pin.exact:
            age = pin_age_text(culprit.since)
            headline = (f"The WAL ({size}) is pinned by {culprit.short_name()}"
                        f"{', reading ' + age if age else ''}: no checkpoint can reset it.")
            return headline, f"Close that program or end its transaction; {then}."
        if culprit is not None and pin is not None:
            ranked = ", ".join(holder.short_name() for holder in pin.holders[:3])
            headline = (f"A reader pins the WAL ({size}). Likeliest, a ranking (this system "
                        f"cannot name a lock's owner): {ranked}.")
            return headline, f"Close the one reading or end its transaction; {then}."
        if self.retry_when_free and pin is not None and not pin.holders:
            return ("The reader that pinned the WAL has let go.",
                    "Running the TRUNCATE checkpoint again by itself...")
        return (f"A long-running reader is keeping the WAL from being reset (now {size}); "
                "looking for it...", f"Close it or end its transaction; {then}.")

    def _show_banner(self, headline: str, next_step: str, level: str,
                     details: str = "") -> None:
        """Two lines (what, then what to do), with the full story behind "Details"."""
        self.banner_text = f"{headline} {next_step}"
        self.banner_level = level
        paint_status(self.banner, level)
        # the link in the banner's own text colour: a theme's link blue is unreadable on red
        colour = self.banner.palette().color(QPalette.ColorRole.WindowText).name()
        link = (f" <a href='details' style='color:{colour}'>Details</a>" if details else "")
        self.banner_label.setText(f"<b>{html.escape(breakable(headline))}</b><br>"
                                  f"{html.escape(breakable(next_step))}{link}")
        self.details_label.setText(breakable(details))
        if not details:
            self.details_label.hide()
        self.banner.show()
        self._update_truncate_button()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        """The desktop switched between light and dark: repaint the banner in the new pair."""
        super().changeEvent(event)
        if event.type() in _THEME_EVENTS and self.banner_level and not self.banner.isHidden():
            paint_status(self.banner, self.banner_level)

    def _on_banner_link(self, _link: str) -> None:
        self.details_label.setVisible(self.details_label.isHidden()
                                      and bool(self.details_label.text()))

    def _on_pin_found(self, lookup: WalPinLookup) -> None:
        """A new look at the lock: once the reader that blocked the TRUNCATE is gone, retry.

        Where the lock names its owner that reader is known; where the holders are only
        ranked (Windows), the first of the ranking at the failed run is waited for.
        """
        if self.retry_when_free and not lookup.unavailable:
            still = {holder.pid for holder in lookup.holders}
            if not still or (self.blocking_pid is not None and self.blocking_pid not in still):
                self._retry_truncate()
                return
        self._update_banner()

    def _retry_truncate(self) -> None:
        """The reader let go: run the TRUNCATE again, once, and say so."""
        if self.session.runner.write_busy:
            return  # the next sample tries again
        self._update_banner()
        if self.run_truncate_checkpoint(retry=True) is not None:
            self.retry_when_free = False
            self.sampler.follow_pin = False

    def _update_truncate_button(self, *_args: object) -> None:
        running = self.checkpoint_job is not None and not self.checkpoint_job.is_finished
        busy = self.session.runner.write_busy
        self.truncate_button.setEnabled(not running and not busy)
        if running:
            self.truncate_button.setToolTip("The TRUNCATE checkpoint is running.")
        elif busy:
            self.truncate_button.setToolTip("Another maintenance job is running; the checkpoint "
                                            "can start when it has finished.")
        else:
            self.truncate_button.setToolTip(
                "Copy every WAL frame into the database and shrink the WAL file to zero; "
                "writers wait a moment while it runs.")

    def _update_summary(self) -> None:
        config = self.session.config
        sample = self.sampler.last_sample
        stale = self.sampler.stale
        if sample is None:
            current = "WAL: no sample yet"
        else:
            when = reading_time(sample.time)
            current = (f"WAL {format_bytes(sample.wal_bytes)}, database "
                       f"{format_bytes(sample.db_bytes)} "
                       + (f"(at {when}, not current)" if stale else f"(read {when})"))
        self.summary_label.setText(
            f"{current} \u00b7 warning at {config.wal_size_warning_mb} MB, critical at "
            f"{config.wal_size_threshold_mb} MB")
        self.summary_label.setStyleSheet(f"color: {STALE_COLOUR};" if stale else "")

    # -- slots -----------------------------------------------------------------------------
    def _apply_thresholds(self) -> None:
        self.warning_line.setValue(float(self.session.config.wal_size_warning_mb))
        self.critical_line.setValue(float(self.session.config.wal_size_threshold_mb))

    def _on_config_changed(self, _config: object) -> None:
        self._apply_thresholds()
        self._update_summary()
        self._update_banner()
        self.redraw()

    def _on_sampled(self, _sample: object) -> None:
        self._update_summary()
        self._update_banner()

    def _on_sampler_status(self, text: str) -> None:
        self.sampler_status_label.setText(breakable(text))
        self.sampler_status_label.setHidden(not text)

    def _on_cleared(self) -> None:
        while self.markers:
            self._drop_oldest_marker()
        self.retry_when_free = False
        self.banner.hide()
        self.details_label.hide()
        self._update_summary()

    def _on_checkpoint_recorded(self, outcome: CheckpointOutcome) -> None:
        label = outcome.mode + (" (frames left)" if outcome.left_frames_behind else "")
        self.add_marker(outcome.time, label)
        self._update_banner()

    def _on_backup_done(self, _result: object) -> None:
        self.add_marker(self.sampler.clock(), "backup", backup=True)

    def _on_truncate_done(self, result: CheckpointResult, retry: bool = False) -> None:
        before, after = result.wal_bytes_before, result.wal_bytes_after
        if result.busy == 0:
            again = " (run again by itself once the reader let go)" if retry else ""
            self.session.messages.info(
                f"TRUNCATE checkpoint done{again}: the WAL went from {format_bytes(before)} "
                f"to {format_bytes(after)}.")
            self._update_banner()
            return
        pin = self.sampler.pin
        culprit = pin.culprit if pin is not None else None
        who = (f"{culprit.short_name()} still reads" if culprit is not None
               else "another connection is still reading")
        self.blocking_pid = culprit.pid if culprit is not None else None
        self.retry_when_free = True
        self.sampler.follow_pin = True
        self.session.messages.warning(
            f"The TRUNCATE checkpoint could not reset the WAL ({format_bytes(after)} left): "
            f"{who}. It runs again by itself once the reader lets go.")
        self._update_banner()

    def _on_export_clicked(self) -> None:
        suggested = Path.home() / f"wal-samples-{datetime.now():%Y%m%d-%H%M%S}.csv"
        path, _filter = QFileDialog.getSaveFileName(
            self, "Export samples to CSV", str(suggested), "CSV files (*.csv)")
        if path:
            self.export_csv_to(path)
