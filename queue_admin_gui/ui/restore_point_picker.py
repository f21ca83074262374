"""The restore wizard's "a point in time" choice: an instant from the archive, rebuilt into a file.

The archive folder (the ``archive_dir`` setting, else ``<backup folder>/archive``) is read
on a job; the picker then offers a date-time bounded by the earliest and latest restorable
instants and a strip showing the generations (green) and the gaps between them (red).
"Rebuild" runs :func:`rebuild_to_time` on a job into a new backup file in the backup folder;
the wizard then goes on with that file as the chosen backup, so the check, the comparison
with the live database and the restore are exactly those of any backup. An instant in a gap
is refused by the engine, whose sentence names the nearest restorable instants.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QDateTime, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import (
    QDateTimeEdit,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..app.jobs import Job, JobFunction, mark_background
from ..app.session import Session
from ..core.archive import ArchiveStatus, RebuildResult, archive_status, rebuild_to_time
from ..core.archive.controller import configured_archive_dir
from ..core.backup import QueueBackup
from ..core.errors import QueueAdminError
from ..core.manifest import backup_file_name
from ..core.schema import STATUS_QUEUED
from .palette import AMBER, BLUE, GREEN, PURPLE, RED

GENERATION_COLOUR = QColor(GREEN)
GAP_COLOUR = QColor(RED)
INSTANT_COLOUR = QColor(BLUE)
WAL_COLOUR = QColor(AMBER)
QUEUED_COLOUR = QColor(PURPLE)
#: Height of the band under the strip where the monitor's history is drawn.
HISTORY_HEIGHT = 18
#: ``run_job(title, func, on_done)`` of the wizard page: the page shows the progress.
RunJob = Callable[[str, JobFunction, Callable[[Any], None]], Job]


def _qt_instant(stamp: float) -> QDateTime:
    return QDateTime.fromMSecsSinceEpoch(int(round(stamp * 1000)))


def _short(stamp: float) -> str:
    return _qt_instant(stamp).toString("yyyy-MM-dd HH:mm:ss")


class ArchiveTimeline(QWidget):
    """A strip from the archive's first to its last instant: generations, gaps, the choice."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spans: list[tuple[float, float]] = []
        self.gaps: list[tuple[float, float]] = []
        self.instant: float | None = None
        #: When each backup in the backup folder was taken (ticks under the strip).
        self.backups: list[float] = []
        #: The live monitor's history under the strip: (times, values) of the WAL's size and
        #: of the queued tasks, each drawn to its own scale.
        self.wal_history: tuple[np.ndarray, np.ndarray] | None = None
        self.queued_history: tuple[np.ndarray, np.ndarray] | None = None
        self.setMinimumHeight(40 + HISTORY_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("The archive over time: green stretches can be restored to any "
                        "instant, red ones are gaps; the blue line is the chosen instant; "
                        "the ticks under the strip are the backups taken then. Under them, "
                        "while this window has been monitoring: the WAL's size (amber) and "
                        "the queued tasks (purple), each to its own scale.")

    def set_status(self, status: ArchiveStatus | None) -> None:
        """Show the generations and gaps of ``status``."""
        self.spans = [(g.restorable_from, g.restorable_until) for g in
                      (status.generations if status else [])
                      if g.restorable_from is not None and g.restorable_until is not None]
        self.gaps = [(gap.after, gap.before) for gap in (status.gaps if status else [])]
        self.update()

    def set_history(self, wal: tuple[np.ndarray, np.ndarray] | None,
                    queued: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Show the monitor's WAL sizes and queued-task counts under the strip."""
        self.wal_history, self.queued_history = wal, queued
        self.update()

    def set_backups(self, stamps: list[float]) -> None:
        """Mark when the backups of the backup folder were taken."""
        self.backups = sorted(stamps)
        self.update()

    def set_instant(self, stamp: float | None) -> None:
        """Mark the chosen instant."""
        self.instant = stamp
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        """Draw the strip, and its first and last instants under it."""
        painter = QPainter(self)
        bar = QRectF(1, 2, self.width() - 2, 14)
        painter.fillRect(bar, self.palette().alternateBase())
        painter.setPen(self.palette().mid().color())
        painter.drawRect(bar)
        if not self.spans:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No restorable instant")
            painter.end()
            return
        first = min(start for start, _ in self.spans)
        last = max(end for _, end in self.spans)
        length = max(last - first, 1e-3)

        def x(stamp: float) -> float:
            return bar.left() + (stamp - first) / length * bar.width()

        for stretch, colour in [(s, GENERATION_COLOUR) for s in self.spans] + \
                [(g, GAP_COLOUR) for g in self.gaps]:
            left, right = x(stretch[0]), x(stretch[1])
            painter.fillRect(QRectF(left, bar.top(), max(2.0, right - left), bar.height()),
                             colour)
        band = QRectF(bar.left(), bar.bottom() + 22, bar.width(), HISTORY_HEIGHT - 4)
        for history, colour in ((self.wal_history, WAL_COLOUR),
                                (self.queued_history, QUEUED_COLOUR)):
            line = _polyline(history, first, last, x, band)
            if line is not None:
                painter.setPen(QPen(colour, 1.5))
                painter.drawPolyline(line)
        painter.setPen(QPen(self.palette().text().color(), 1))
        for stamp in self.backups:
            if first <= stamp <= last:
                at = int(x(stamp))
                painter.drawLine(at, int(bar.bottom()) + 1, at, int(bar.bottom()) + 5)
        if self.instant is not None:
            painter.setPen(QPen(INSTANT_COLOUR, 3))
            at = min(max(x(self.instant), bar.left()), bar.right())
            painter.drawLine(int(at), 0, int(at), int(bar.bottom()) + 2)
        painter.setPen(self.palette().text().color())
        text = QRectF(bar.left(), bar.bottom() + 6, bar.width(), 16)
        painter.drawText(text, Qt.AlignmentFlag.AlignLeft, _short(first))
        painter.drawText(text, Qt.AlignmentFlag.AlignRight, _short(last))
        painter.end()


def _polyline(history: tuple[np.ndarray, np.ndarray] | None, first: float, last: float,
              x: Callable[[float], float], band: QRectF) -> QPolygonF | None:
    """The points of ``history`` between ``first`` and ``last``, scaled into ``band``."""
    if history is None:
        return None
    times, values = history
    keep = (times >= first) & (times <= last) & np.isfinite(values)
    times, values = times[keep], values[keep]
    if len(times) < 2:
        return None
    if len(times) > 2000:  # more points than pixels: every n-th one draws the same line
        step = len(times) // 2000 + 1
        times, values = times[::step], values[::step]
    top = float(values.max()) or 1.0
    return QPolygonF([QPointF(x(float(t)), band.bottom() - float(v) / top * band.height())
                      for t, v in zip(times, values, strict=True)])


class RestorePointPicker(QGroupBox):
    """Choose an instant from the archive and rebuild the queue as it was then."""

    #: The rebuilt, verified file (a :class:`RebuildResult`).
    rebuilt = Signal(object)

    def __init__(self, session: Session, run_job: RunJob, backup_dir: Path,
                 live_path: Path | None, parent: QWidget | None = None) -> None:
        super().__init__("Or a point in time, from the archive", parent)
        self.session = session
        self.run_job = run_job
        self.backup_dir = Path(backup_dir)
        self.live_path = live_path
        self.status: ArchiveStatus | None = None
        #: When the backups of the backup folder were taken (seconds since the epoch).
        self.backups_taken: list[float] = []
        self._read_job: Job | None = None
        self.summary_label = QLabel("Reading the archive...")
        self.summary_label.setWordWrap(True)
        self.timeline = ArchiveTimeline(self)
        self.instant_edit = QDateTimeEdit(self)
        self.instant_edit.setDisplayFormat("yyyy-MM-dd HH:mm:ss.zzz")
        self.instant_edit.setCalendarPopup(True)
        self.instant_edit.setToolTip("The instant to restore the queue to (local time); "
                                     "every transaction committed at or before it is kept.")
        self.instant_edit.dateTimeChanged.connect(self._on_instant_changed)
        self.rebuild_button = QPushButton("&Rebuild the queue at this instant", self)
        self.rebuild_button.setAutoDefault(False)
        self.rebuild_button.setToolTip("Rebuild the queue as it was at the instant into a new, "
                                       "verified backup file in the backup folder; the live "
                                       "database is not touched until you restore it.")
        self.rebuild_button.clicked.connect(self.rebuild)
        label = QLabel("&Instant:")
        label.setBuddy(self.instant_edit)
        row = QHBoxLayout()
        row.addWidget(label)
        row.addWidget(self.instant_edit)
        row.addWidget(self.rebuild_button)
        row.addStretch(1)
        column = QVBoxLayout(self)
        column.addWidget(self.summary_label)
        column.addWidget(self.timeline)
        column.addLayout(row)
        self._enable(False)

    @property
    def archive_dir(self) -> Path:
        """The archive folder read for restorable instants."""
        return configured_archive_dir(self.session.config)

    @property
    def reading(self) -> bool:
        """True while the archive folder is being read."""
        return self._read_job is not None and not self._read_job.is_finished

    def chosen_instant(self) -> float:
        """The instant in the date-time box, in seconds since the epoch."""
        return self.instant_edit.dateTime().toMSecsSinceEpoch() / 1000

    def set_instant(self, stamp: float) -> None:
        """Put ``stamp`` in the date-time box (to the millisecond)."""
        self.instant_edit.setDateTime(_qt_instant(stamp))

    def load(self) -> Job:
        """Read the archive folder on a job."""
        folder, backups, live = self.archive_dir, self.backup_dir, self.live_path

        def read(progress: Any, cancelled: Any) -> tuple[ArchiveStatus, list[float]]:
            try:
                taken = [] if live is None else [
                    info.created_at.timestamp()
                    for info in QueueBackup(live, backups).list_backups()]
            except QueueAdminError:
                taken = []  # the timeline simply shows no backups
            return archive_status(folder), taken

        self._read_job = mark_background(self.session.run(
            "Read the archive", read, on_done=self._on_read, report_errors=False))
        return self._read_job

    def _on_read(self, found: tuple[ArchiveStatus, list[float]]) -> None:
        status, backups = found
        self.backups_taken = backups
        self.timeline.set_backups(backups)
        histories = self.session.histories
        if histories is not None and status.earliest is not None:
            samples, tasks = histories
            wal = samples.since(status.earliest, ("time", "wal_bytes"))
            queued = tasks.since(status.earliest, ("time", STATUS_QUEUED))
            self.timeline.set_history((wal[:, 0], wal[:, 1]), (queued[:, 0], queued[:, 1]))
        self._on_status(status)

    def rebuild(self) -> Job | None:
        """Rebuild the queue at the chosen instant into a new file (on the page's job)."""
        if self.status is None or self.status.earliest is None:
            return None
        stamp, folder, backups, live = (self.chosen_instant(), self.archive_dir,
                                        self.backup_dir, self.live_path)

        def rebuild(progress: Any, cancelled: Any) -> RebuildResult:
            backups.mkdir(parents=True, exist_ok=True)
            now, sequence = datetime.now(), 1  # noqa: DTZ005 - backup names use local time
            while (backups / backup_file_name("at", now, sequence)).exists():
                sequence += 1
            output = backups / backup_file_name("at", now, sequence)
            return rebuild_to_time(folder, stamp, output, progress, cancelled, live_path=live)

        return self.run_job(f"Rebuild the queue at {self.instant_edit.text()}", rebuild,
                            self.rebuilt.emit)

    def _enable(self, enabled: bool) -> None:
        self.instant_edit.setEnabled(enabled)
        self.rebuild_button.setEnabled(enabled)

    def _on_status(self, status: ArchiveStatus) -> None:
        self.status = status
        self.timeline.set_status(status)
        if status.earliest is None or status.latest is None:
            self.summary_label.setText(f"No restorable instant in {status.folder} yet: turn on "
                                       "\"Archive the WAL continuously\" on the Backups tab, or "
                                       "run queue-admin-cli archive.")
            self._enable(False)
            return
        low = QDateTime.fromMSecsSinceEpoch(math.ceil(status.earliest * 1000))
        high = QDateTime.fromMSecsSinceEpoch(math.floor(status.latest * 1000))
        self.instant_edit.setDateTimeRange(low, high)
        self.instant_edit.setDateTime(high)
        gaps = len(status.gaps)
        self.summary_label.setText(
            f"The archive can rebuild the queue at any instant from {_short(status.earliest)} "
            f"to {_short(status.latest)}{' outside its gaps (red)' if gaps else ''} "
            f"({len(status.generations)} generation"
            f"{'' if len(status.generations) == 1 else 's'}, {gaps} gap"
            f"{'' if gaps == 1 else 's'}).")
        self._enable(True)

    def _on_instant_changed(self, value: QDateTime) -> None:
        self.timeline.set_instant(value.toMSecsSinceEpoch() / 1000)
