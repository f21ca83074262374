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
from PySide6.QtCore import QDateTime, QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFocusEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
    QWheelEvent,
)
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
from ..core.backups.backup_store import BackupStore
from ..core.backups.manifest import backup_file_name
from ..core.errors import QueueAdminError
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


#: How the picker writes an instant: local time to the millisecond.
INSTANT_FORMAT = "yyyy-MM-dd HH:mm:ss.zzz"


def instant_label(stamp: float) -> str:
    """An instant as the picker's box shows it (local time, to the millisecond)."""
    return _qt_instant(stamp).toString(INSTANT_FORMAT)


def _short(stamp: float) -> str:
    return _qt_instant(stamp).toString("yyyy-MM-dd HH:mm:ss")


#: Tick spacings the axis chooses from (seconds): the smallest that keeps labels apart.
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
              43200, 86400, 172800, 604800)
#: Room one tick label needs (pixels).
TICK_LABEL_PX = 96
#: The narrowest stretch the wheel zooms in to (seconds).
MIN_VIEW_SECONDS = 10.0
#: Each wheel notch shows this share of the stretch shown before (zooming in).
ZOOM_STEP = 0.8


def tick_marks(first: float, last: float, width: float) -> tuple[list[float], str]:
    """Round instants for an axis from ``first`` to ``last`` over ``width`` pixels.

    Returns the instants and the Qt format their labels use (seconds shown only when the
    ticks are under a minute apart, the date only when the axis spans days).
    """
    length = max(last - first, 1e-3)
    fits = max(1, int(width // TICK_LABEL_PX))
    step = next((step for step in TICK_STEPS if length / step <= fits), TICK_STEPS[-1])
    offset = _qt_instant(first).offsetFromUtc()  # round in local time, as shown
    start = math.ceil((first + offset) / step) * step - offset
    ticks = list(np.arange(start, last + 1e-9, step)) if step else []
    if step >= 86400:
        fmt = "yyyy-MM-dd"
    elif length > 86400:
        fmt = "MM-dd HH:mm"
    elif step >= 60:
        fmt = "HH:mm"
    else:
        fmt = "HH:mm:ss"
    return [float(tick) for tick in ticks], fmt


class ArchiveTimeline(QWidget):
    """The archive over time on a labelled axis: generations, gaps, the chosen instant.

    Point at it to read the time under the pointer; click or drag to choose an instant
    (:attr:`instant_picked`), turn the wheel to zoom around the pointer, and with the
    keyboard step the choice by a second (Left/Right) or a minute (Shift+Left/Right).
    """

    #: The admin chose an instant on the strip (seconds since the epoch).
    instant_picked = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spans: list[tuple[float, float]] = []
        self.gaps: list[tuple[float, float]] = []
        self.instant: float | None = None
        #: The instant under the pointer while it hovers, else None.
        self.hover: float | None = None
        #: The stretch shown (zoomed with the wheel); None shows the whole archive.
        self.view: tuple[float, float] | None = None
        #: When each backup in the backup folder was taken (ticks under the strip).
        self.backups: list[float] = []
        #: The live monitor's history under the strip: (times, values) of the WAL's size and
        #: of the queued tasks, each drawn to its own scale.
        self.wal_history: tuple[np.ndarray, np.ndarray] | None = None
        self.queued_history: tuple[np.ndarray, np.ndarray] | None = None
        self.setMinimumHeight(48 + HISTORY_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("The archive over time: green stretches can be restored to any "
                        "instant, red ones are gaps; the blue line is the chosen instant; "
                        "the ticks under the strip are the backups taken then. Under them, "
                        "while this window has been monitoring: the WAL's size (amber) and "
                        "the queued tasks (purple), each to its own scale. Click or drag to "
                        "choose, turn the wheel to zoom, Left/Right for a second, with Shift "
                        "for a minute.")

    # -- what it shows ----------------------------------------------------------------------
    def set_status(self, status: ArchiveStatus | None) -> None:
        """Show the generations and gaps of ``status``."""
        self.spans = [(g.restorable_from, g.restorable_until) for g in
                      (status.generations if status else [])
                      if g.restorable_from is not None and g.restorable_until is not None]
        self.gaps = [(gap.after, gap.before) for gap in (status.gaps if status else [])]
        self.view = None
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

    @property
    def extent(self) -> tuple[float, float] | None:
        """The archive's first and last restorable instants, or None when empty."""
        if not self.spans:
            return None
        return min(start for start, _ in self.spans), max(end for _, end in self.spans)

    def shown_range(self) -> tuple[float, float] | None:
        """The stretch of time the strip shows now (zoomed, or the whole archive)."""
        return self.view or self.extent

    def _bar(self) -> QRectF:
        return QRectF(1, 2, self.width() - 2, 14)

    def x_of(self, stamp: float) -> float:
        """Where ``stamp`` is on the strip (pixels), for the stretch shown."""
        shown = self.shown_range()
        bar = self._bar()
        if shown is None:
            return bar.left()
        first, last = shown
        return bar.left() + (stamp - first) / max(last - first, 1e-3) * bar.width()

    def instant_at(self, x: float) -> float | None:
        """The instant under pixel ``x``, kept within the archive; None when it is empty."""
        shown, extent = self.shown_range(), self.extent
        if shown is None or extent is None:
            return None
        bar = self._bar()
        first, last = shown
        stamp = first + (x - bar.left()) / max(bar.width(), 1.0) * (last - first)
        return min(max(stamp, extent[0]), extent[1])

    def hover_text(self) -> str:
        """The time under the pointer as it is shown beside it ("" when not hovering)."""
        if self.hover is None:
            return ""
        return _qt_instant(self.hover).toString("yyyy-MM-dd HH:mm:ss")

    # -- pointing at it ---------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        """A click chooses the instant under the pointer."""
        if event.button() == Qt.MouseButton.LeftButton:
            self._pick(event.position().x())
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        """Hovering shows the time under the pointer; dragging with the button chooses it."""
        x = event.position().x()
        self.hover = self.instant_at(x)
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._pick(x)
        self.update()
        super().mouseMoveEvent(event)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        """The pointer left: no time under it any more."""
        self.hover = None
        self.update()
        super().leaveEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        """Zoom around the pointer: away from you in, towards you out (to the whole)."""
        shown, extent = self.shown_range(), self.extent
        notches = event.angleDelta().y() / 120
        if shown is None or extent is None or not notches:
            return
        anchor = self.instant_at(event.position().x()) or shown[0]
        self.zoom(ZOOM_STEP ** notches, anchor)
        event.accept()

    def zoom(self, factor: float, anchor: float) -> None:
        """Show ``factor`` times the stretch shown now, keeping ``anchor`` where it is."""
        shown, extent = self.shown_range(), self.extent
        if shown is None or extent is None:
            return
        whole = extent[1] - extent[0]
        length = min(max((shown[1] - shown[0]) * factor, min(MIN_VIEW_SECONDS, whole)), whole)
        share = (anchor - shown[0]) / max(shown[1] - shown[0], 1e-3)
        first = min(max(anchor - share * length, extent[0]), extent[1] - length)
        self.view = None if length >= whole else (first, first + length)
        self.update()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        """Left/Right move the choice by a second, with Shift by a minute."""
        key = event.key()
        if key not in (Qt.Key.Key_Left, Qt.Key.Key_Right) or self.extent is None:
            super().keyPressEvent(event)
            return
        step = 60.0 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1.0
        start = self.instant if self.instant is not None else self.extent[1]
        moved = start + (step if key == Qt.Key.Key_Right else -step)
        self._choose(min(max(moved, self.extent[0]), self.extent[1]))
        event.accept()

    def _pick(self, x: float) -> None:
        stamp = self.instant_at(x)
        if stamp is not None:
            self._choose(stamp)

    def _choose(self, stamp: float) -> None:
        self.set_instant(stamp)
        shown = self.shown_range()
        if shown is not None and not shown[0] <= stamp <= shown[1] and self.view is not None:
            length = self.view[1] - self.view[0]  # keep the choice in sight
            self.view = (stamp - length / 2, stamp + length / 2)
        self.instant_picked.emit(stamp)

    # -- drawing ----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        """Draw the strip, its labelled axis, the history under it, the choice and hover."""
        painter = QPainter(self)
        bar = self._bar()
        painter.fillRect(bar, self.palette().alternateBase())
        painter.setPen(self.palette().mid().color())
        painter.drawRect(bar)
        shown = self.shown_range()
        if shown is None:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No restorable instant")
            painter.end()
            return
        first, last = shown
        painter.setClipRect(QRectF(0, 0, self.width(), self.height()))
        for stretch, colour in [(s, GENERATION_COLOUR) for s in self.spans] + \
                [(g, GAP_COLOUR) for g in self.gaps]:
            left = max(self.x_of(stretch[0]), bar.left())
            right = min(self.x_of(stretch[1]), bar.right())
            if right >= left:
                painter.fillRect(QRectF(left, bar.top(), max(2.0, right - left), bar.height()),
                                 colour)
        text_pen = QPen(self.palette().text().color(), 1)
        painter.setPen(text_pen)
        ticks, fmt = tick_marks(first, last, bar.width())
        for tick in ticks:
            at = self.x_of(tick)
            painter.drawLine(int(at), int(bar.bottom()) + 1, int(at), int(bar.bottom()) + 4)
            label = _qt_instant(tick).toString(fmt)
            box = QRectF(at - TICK_LABEL_PX / 2, bar.bottom() + 5, TICK_LABEL_PX, 14)
            box.moveLeft(min(max(box.left(), bar.left()), bar.right() - box.width()))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, label)
        band = QRectF(bar.left(), bar.bottom() + 24, bar.width(), HISTORY_HEIGHT - 4)
        for history, colour in ((self.wal_history, WAL_COLOUR),
                                (self.queued_history, QUEUED_COLOUR)):
            line = _polyline(history, first, last, self.x_of, band)
            if line is not None:
                painter.setPen(QPen(colour, 1.5))
                painter.drawPolyline(line)
        painter.setPen(QPen(self.palette().text().color(), 2))
        for stamp in self.backups:
            if first <= stamp <= last:
                at = int(self.x_of(stamp))
                painter.drawLine(at, int(bar.top()) + 9, at, int(bar.bottom()))
        if self.hover is not None:
            painter.setPen(QPen(self.palette().text().color(), 1, Qt.PenStyle.DashLine))
            at = int(self.x_of(self.hover))
            painter.drawLine(at, 0, at, int(bar.bottom()) + 2)
            # the time under the pointer, on a plate over the axis labels it may cover
            label = self.hover_text()
            width = self.fontMetrics().horizontalAdvance(label) + 8
            plate = QRectF(at + 4, bar.bottom() + 4, width, 16)
            if plate.right() > bar.right():
                plate.moveRight(at - 4)
            painter.fillRect(plate, self.palette().toolTipBase())
            painter.setPen(self.palette().toolTipText().color())
            painter.drawText(plate, Qt.AlignmentFlag.AlignCenter, label)
        if self.instant is not None and first <= self.instant <= last:
            painter.setPen(QPen(INSTANT_COLOUR, 3))
            at = int(self.x_of(self.instant))
            painter.drawLine(at, 0, at, int(bar.bottom()) + 2)
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


def parse_instant(text: str, day: datetime | None = None) -> float | None:
    """A pasted or typed instant, in seconds since the epoch; None when it is not one.

    Accepts ISO 8601 with a space or a ``T`` ("2026-12-07 02:14:12", "...T02:14:12.290Z",
    with an offset or without, then local time), and a bare time ("02:14:12") on ``day``.
    """
    cleaned = " ".join(text.strip().strip("'\"").split())
    if not cleaned:
        return None
    try:
        moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        try:
            clock = datetime.strptime(cleaned.split(".")[0], "%H:%M:%S")  # noqa: DTZ007
        except ValueError:
            return None
        base = day or datetime.now()  # noqa: DTZ005 - the admin's local day
        fraction = float("0." + cleaned.split(".")[1]) if "." in cleaned else 0.0
        moment = base.replace(hour=clock.hour, minute=clock.minute, second=clock.second,
                              microsecond=int(round(fraction * 1_000_000)) % 1_000_000,
                              tzinfo=None)
    return moment.timestamp()


class InstantEdit(QDateTimeEdit):
    """The date-time box, which also takes a whole timestamp, pasted or typed, in one piece.

    A QDateTimeEdit types and pastes into the section under the cursor, so "2026-12-07
    02:14:12" pasted or typed over the whole text came out garbled. Here a paste that reads
    as an instant sets it at once; typing a digit over the whole (selected) text starts a
    free-form entry shown as typed, read when it ends (Enter, Tab or leaving the box) and
    dropped, leaving the instant as it was, when it names none (or on Escape).
    """

    _ENDING_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Tab, Qt.Key.Key_Backtab)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        #: What has been typed over the whole text so far; None while not typing freely.
        self.typed: str | None = None

    def event(self, event: QEvent) -> bool:
        """End a free-form entry before Tab moves the focus on (Qt handles Tab here)."""
        if isinstance(event, QKeyEvent) and event.type() == QEvent.Type.KeyPress and \
                self.typed is not None and event.key() in self._ENDING_KEYS:
            self.finish_typing()
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        """Ctrl+V sets a pasted timestamp whole; digits over the whole text type one freely."""
        if event.matches(QKeySequence.StandardKey.Paste) and self.paste_instant(
                QGuiApplication.clipboard().text()):
            event.accept()
            return
        text = event.text()
        line = self.lineEdit()
        if self.typed is None and text.isdigit() and line.hasSelectedText() \
                and line.selectedText() == line.text():
            self.typed = ""
        if self.typed is not None:
            if event.key() == Qt.Key.Key_Escape:
                self.typed = None
                line.setText(self.textFromDateTime(self.dateTime()))
            elif event.key() == Qt.Key.Key_Backspace:
                self.typed = self.typed[:-1]
                line.setText(self.typed)
            elif text and text.isprintable():
                self.typed += text
                line.setText(self.typed)
            else:
                self.finish_typing()
                super().keyPressEvent(event)
            event.accept()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt override
        """Leaving the box ends a free-form entry."""
        self.finish_typing()
        super().focusOutEvent(event)

    def finish_typing(self) -> None:
        """Read a free-form entry: set the instant it names, or keep the one before."""
        if self.typed is None:
            return
        typed, self.typed = self.typed, None
        self.paste_instant(typed)
        self.lineEdit().setText(self.textFromDateTime(self.dateTime()))

    def paste_instant(self, text: str) -> bool:
        """Set the instant ``text`` names; False (nothing changed) when it names none."""
        day = self.dateTime().toPython()
        stamp = parse_instant(text, day if isinstance(day, datetime) else None)
        if stamp is None:
            return False
        self.setDateTime(_qt_instant(stamp))
        return True


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
        self.instant_edit = InstantEdit(self)
        self.instant_edit.setDisplayFormat(INSTANT_FORMAT)
        self.instant_edit.setCalendarPopup(True)
        self.instant_edit.setToolTip("The instant to restore the queue to (local time); "
                                     "every transaction committed at or before it is kept.")
        self.instant_edit.dateTimeChanged.connect(self._on_instant_changed)
        self.timeline.instant_picked.connect(self.set_instant)
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
                    for info in BackupStore(live, backups).list_backups()]
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
        return self.rebuild_instant(self.chosen_instant(), self.archive_dir)

    def rebuild_instant(self, stamp: float, folder: Path) -> Job:
        """Rebuild the queue at exactly ``stamp`` from the archive in ``folder``.

        An undo rebuilds the instant a restore named this way, to the microsecond, whether
        or not the archive has been read yet.
        """
        backups, live = self.backup_dir, self.live_path
        self.set_instant(stamp)

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
            f"{'' if gaps == 1 else 's'}).{self._made_from_another_database(status)}")
        self._enable(True)

    def _made_from_another_database(self, status: ArchiveStatus) -> str:
        """A sentence naming the database the archive was made from, when it is not this one."""
        if self.live_path is None:
            return ""
        live = Path(self.live_path).resolve()
        sources = sorted({generation.database for generation in status.generations
                          if generation.database and Path(generation.database).resolve() != live})
        if not sources:
            return ""
        return (f" It was made from {', '.join(sources)}, not from this file: an instant "
                "rebuilt from it is that database's queue.")

    def _on_instant_changed(self, value: QDateTime) -> None:
        self.timeline.set_instant(value.toMSecsSinceEpoch() / 1000)
