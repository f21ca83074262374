"""The window's status bar: which file, how big, how old the last backup, and is it healthy.

:class:`DatabaseStatusBar` shows the sampler's latest reading (sizes, with the time it was
read) and the health graded from it; it never reads the database itself. When a reading
fails, the last good figures stay, greyed and stamped with their time, never shown as current.
The health badge says OK, Warning or Critical in words and colour, and its
tooltip lists the reasons, so a glance at the bottom of the window answers "is it fine?".
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QStatusBar, QWidget

from ..core.errors import format_bytes
from ..core.measurements.health import HealthLevel, HealthReport
from ..core.measurements.readings import reading_time
from ..core.measurements.sampling import Sample
from .icons import icon
from .palette import GREY, paint_status

#: The palette's state of each health level (background and text, light or dark theme).
_BADGE_STATES = {HealthLevel.OK: "ok", HealthLevel.WARNING: "warning",
                 HealthLevel.CRITICAL: "critical"}
_BADGE_ICONS = {HealthLevel.OK: "ok", HealthLevel.WARNING: "warning",
                HealthLevel.CRITICAL: "critical"}
_UNKNOWN = "\u2013"
#: Colour of a figure that could not be read again: it is what was seen last, not now.
STALE_COLOUR = GREY


def describe_backup_age(last_backup_at: datetime | None, has_backups: bool | None,
                        now: datetime | None = None) -> str:
    """The last backup's age as the status bar says it: "2 h ago", "none yet", or a dash."""
    if has_backups is False:
        return "none yet"
    if last_backup_at is None:
        return _UNKNOWN
    now = now or datetime.now(timezone.utc)
    seconds = max(0.0, (now - last_backup_at).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


#: Events after which the light or dark pair is chosen again.
_THEME_EVENTS = (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange)


class HealthBadge(QWidget):
    """A coloured OK / Warning / Critical label whose tooltip gives the reasons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.icon_label = QLabel(self)
        self.text_label = QLabel(self)
        _may_shrink(self.text_label, 120)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.setSpacing(4)
        layout.addWidget(self.icon_label)
        layout.addWidget(self.text_label)
        self.report: HealthReport | None = None
        self.show_unknown()

    def show_unknown(self) -> None:
        """No measurement yet (no database, or the first stats job still running)."""
        self.report = None
        #: SQLite's words while the open file is known to be damaged, else None.
        self.damage: str | None = None
        self.icon_label.clear()
        self.text_label.setText("Health: not measured yet")
        self._paint(None)
        self.setToolTip("Health appears once the database statistics have been read.")

    def show_report(self, report: HealthReport) -> None:
        """Show the level of ``report``; the tooltip lists its reasons."""
        self.report = report
        if self.damage is not None:
            return
        self.icon_label.setPixmap(icon(_BADGE_ICONS[report.level]).pixmap(QSize(16, 16)))
        self.text_label.setText(f"Health: {report.headline()}")
        self._paint(report.level)
        self.setToolTip(report.summary())

    def show_damaged(self, damage: str) -> None:
        """The file is damaged: red "Damaged" until another file is opened."""
        self.damage = damage
        self.icon_label.setPixmap(icon("critical").pixmap(QSize(16, 16)))
        self.text_label.setText("Health: Damaged")
        self._paint(HealthLevel.CRITICAL)
        self.setToolTip(f"The database file is damaged ({damage}). Restore it from the newest "
                        "backup; the Optimization tab lists what is damaged.")

    def show_stale(self, reason: str, since: str | None) -> None:
        """The database could not be read again: the last health is no longer current."""
        if self.damage is not None:
            return  # a damaged file stays "Damaged", never greyed as merely "not current"
        last = self.report
        self.icon_label.clear()
        self.text_label.setText("Health: not current" + (f" (read at {since})" if since else ""))
        self._paint(None)
        self.text_label.setStyleSheet(f"color: {GREY};")
        self.setToolTip(f"Could not read the database again: {reason}"
                        + (f"\nLast known: {last.summary()}" if last is not None else ""))

    def _paint(self, level: HealthLevel | None) -> None:
        """The level's colours from the palette, or the window's own for none."""
        self._painted = level
        self.text_label.setStyleSheet("")
        if level is None:
            self.setProperty("statusPainted", None)
            self.setAutoFillBackground(False)
            self.setPalette(QPalette())
            return
        paint_status(self, _BADGE_STATES[level])

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        """The desktop switched between light and dark: repaint in the new theme's pair."""
        super().changeEvent(event)
        if event.type() in _THEME_EVENTS and \
                getattr(self, "_painted", None) is not None:
            paint_status(self, _BADGE_STATES[self._painted])

    @property
    def level(self) -> HealthLevel | None:
        """The level shown, or None before the first measurement."""
        return None if self.report is None else self.report.level


class DatabaseStatusBar(QStatusBar):
    """Status bar with the database path, sizes, last backup age and the health badge."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path_label = QLabel("No database open", self)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        _may_shrink(self.path_label, 80)
        self.size_label = QLabel(self)
        self.wal_label = QLabel(self)
        self.backup_label = QLabel(self)
        self.badge = HealthBadge(self)
        self.addWidget(self.path_label, 1)
        for widget in (self.size_label, self.wal_label, self.backup_label):
            widget.setContentsMargins(14, 0, 4, 0)
            self.addPermanentWidget(widget)
        self.addPermanentWidget(self.badge)
        self.size_label.setToolTip("Size of the database file (without the -wal file).")
        self.wal_label.setToolTip("Size of the -wal file: changes not yet checkpointed into "
                                  "the database file.")
        self.backup_label.setToolTip("Age of the newest backup in the backup folder.")
        self.show_database(None)

    def show_database(self, path: Path | None) -> None:
        """Show which file is open; clears the measurements until the next stats job."""
        if path is None:
            self.path_label.setText("No database open")
            self.path_label.setToolTip("Open a queue database with File > Open (Ctrl+O).")
        else:
            self.path_label.setText(str(path))
            self.path_label.setToolTip(f"The database being administered: {path}")
        self.size_label.setText(f"DB: {_UNKNOWN}")
        self.wal_label.setText(f"WAL: {_UNKNOWN}")
        self.size_label.setStyleSheet("")
        self.wal_label.setStyleSheet("")
        self.backup_label.setText(f"Last backup: {_UNKNOWN}")
        self.badge.show_unknown()

    def show_sample(self, sample: Sample) -> None:
        """Show the sizes of the latest reading and when it was read."""
        stamp = reading_time(sample.time)
        self.size_label.setText(f"DB: {format_bytes(sample.db_bytes)}")
        self.wal_label.setText(f"WAL: {format_bytes(sample.wal_bytes)} ({stamp})")
        for label, what in ((self.size_label, "database file"), (self.wal_label, "-wal file")):
            label.setStyleSheet("")
            label.setToolTip(f"Size of the {what}, read at {stamp} (read every few seconds).")

    def show_sample_stale(self, last: Sample | None, reason: str) -> None:
        """The latest reading failed: grey the last good figures and say when they were read."""
        if last is None:
            self.size_label.setText(f"DB: {_UNKNOWN}")
            self.wal_label.setText(f"WAL: {_UNKNOWN}")
        else:
            stamp = reading_time(last.time)
            self.size_label.setText(f"DB: {format_bytes(last.db_bytes)}")
            self.wal_label.setText(f"WAL: {format_bytes(last.wal_bytes)} (at {stamp}, "
                                   "not current)")
        for label in (self.size_label, self.wal_label):
            label.setStyleSheet(f"color: {STALE_COLOUR};")
            label.setToolTip(f"Could not read the database again: {reason}")
        self.badge.show_stale(reason, reading_time(last.time) if last is not None else None)

    @property
    def sizes_stale(self) -> bool:
        """True while the sizes shown are greyed as not current."""
        return STALE_COLOUR in self.wal_label.styleSheet()

    def show_health(self, report: HealthReport, last_backup_at: datetime | None,
                    has_backups: bool | None) -> None:
        """Show the health graded from the latest reading and the last backup's age."""
        self.backup_label.setText(
            f"Last backup: {describe_backup_age(last_backup_at, has_backups)}")
        self.badge.show_report(report)

    def show_unreadable(self, reason: str) -> None:
        """The stats job failed: say so in the badge instead of showing stale numbers."""
        if self.badge.damage is not None:
            return
        self.badge.show_unknown()
        self.badge.text_label.setText("Health: cannot read")
        self.badge.setToolTip(reason)


def _may_shrink(label: QLabel, minimum: int) -> None:
    """Let a long text be cut at the window's edge instead of widening the window.

    A status-bar label asks for its whole text's width; a long path or health headline would
    otherwise keep a 1024-pixel window from fitting its screen. The whole text stays in the
    tooltip (the badge's tooltip lists every reason).
    """
    label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(minimum)  # below its text's width: it keeps the text when it fits
