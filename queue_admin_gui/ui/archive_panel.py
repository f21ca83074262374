"""The Backups tab's "Point-in-time archive" panel: the archive's state and the archiver toggle.

The archive folder is the ``archive_dir`` setting, else ``<backup folder>/archive``. Every
ten seconds (while the panel is shown) a read job describes the folder (:func:`archive_status`);
once a second the running archiver's own state (in memory, no file or SQL) refreshes the
"State" line. Starting and stopping the archiver are jobs too: both touch files and stopping
waits for its thread. An archiver run by another process (``queue-admin-cli archive``) is
recognised by the folder's lock file; the toggle is then off and disabled.

The 10-second read only looks at the files (a missing or resized one, generation.json);
validation reads every file against its checksums and compares the newest archived commit
with the live file. It runs on the archiver's interval (the ``archive_validate_minutes``
setting) and on demand with "Validate now" (an operation on a worker thread, so a failure
reaches the activity log, the Event Log and the tray like any failed maintenance run); the
"Last validation" line shows the newest result, whichever process ran it.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..app import operations
from ..app.jobs import Job, mark_background
from ..app.session import Session
from ..core.archive import ArchiveEvent, ArchiverStatus, ArchiveStatus, archive_status
from ..core.archive.controller import (
    ArchiveController,
    archiver_elsewhere,
    configured_archive_dir,
)
from ..core.archive.validation import ValidationResult
from ..core.errors import format_bytes
from .widgets import BAD_COLOUR, GOOD_COLOUR, WARN_COLOUR, KeyValueGrid, explanation, format_age

#: How often the archive folder is read again while the panel is shown.
STATUS_EVERY_MS = 10_000
TICK_MS = 1_000


class _Events(QObject):
    """Carries the archiver's events from its thread to the GUI thread."""

    event = Signal(object)

    def deliver(self, event: ArchiveEvent) -> None:
        """Called in the archiver's thread; queued to the panel (dropped once it is gone)."""
        with contextlib.suppress(RuntimeError):
            self.event.emit(event)


class ArchivePanel(QGroupBox):
    """Archive state (on/off, lag, generations, last gap, restorable span, size) and toggle."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__("Point-in-time archive", parent)
        self.session = session
        self.controller: ArchiveController | None = None
        self.status: ArchiveStatus | None = None
        self.elsewhere: dict[str, Any] | None = None
        self.last_event: ArchiveEvent | None = None
        self._status_job: Job | None = None
        self._switch_job: Job | None = None
        self._validate_job: Job | None = None
        self._events = _Events(self)
        self._events.event.connect(self._on_archiver_event)
        self.toggle = QCheckBox("Archive the WAL continuously", self)
        self.toggle.setToolTip("Copy every committed transaction into the archive folder as "
                               "it happens, so the queue can be restored to any instant.")
        self.toggle.toggled.connect(self._on_toggled)
        self.validate_button = QPushButton("Validate now", self)
        self.validate_button.setToolTip(
            "Check every archive file against its checksums, rebuild the newest archived "
            "commit and compare it page by page with the live file at the same commit.")
        self.validate_button.clicked.connect(self.validate_now)
        self.folder_label = QLabel(self)
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.grid = KeyValueGrid(columns=4)  # two rows: the tab fits a 1024x700 screen
        for key, caption in (("state", "State"), ("behind", "Behind by"),
                             ("generations", "Generations"), ("earliest", "Earliest instant"),
                             ("latest", "Latest instant"), ("size", "Size"),
                             ("validation", "Last validation")):
            self.grid.add_row(key, caption)
        self.gap_label = explanation("")
        self.gap_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(self.toggle)
        top.addWidget(self.folder_label, 1)
        top.addWidget(self.validate_button)
        column = QVBoxLayout(self)
        column.setSpacing(2)  # compact: the tab still fits a 1024x700 screen
        column.setContentsMargins(9, 2, 9, 4)
        column.addLayout(top)
        column.addWidget(self.grid)
        column.addWidget(self.gap_label)
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._on_tick)
        self._last_read = 0.0
        session.around_checkpoint = self._around_checkpoint
        session.database_changed.connect(self._on_database_changed)
        session.config_changed.connect(self._on_config_changed)
        self._show()

    # -- state ------------------------------------------------------------------------------

    @property
    def archive_dir(self) -> Path:
        """The folder the window archives into and reads."""
        return configured_archive_dir(self.session.config)

    @property
    def archiving(self) -> bool:
        """True while this window's archiver runs."""
        return self.controller is not None and self.controller.running

    @property
    def switching(self) -> bool:
        """True while a start or stop job runs."""
        return self._switch_job is not None and not self._switch_job.is_finished

    @property
    def validating(self) -> bool:
        """True while a "Validate now" job runs."""
        return self._validate_job is not None and not self._validate_job.is_finished

    @property
    def last_validation(self) -> ValidationResult | None:
        """The newest validation the archive folder records (as last read)."""
        record = self.status.validation if self.status is not None else None
        return ValidationResult.from_dict(record) if record else None

    @property
    def reading(self) -> bool:
        """True while the archive folder is being read."""
        return self._status_job is not None and not self._status_job.is_finished

    # -- actions ----------------------------------------------------------------------------

    def refresh(self) -> Job | None:
        """Read the archive folder again (as a read job)."""
        if self.reading:
            return None
        folder = self.archive_dir
        self._last_read = time.monotonic()
        job = self.session.run("Read the archive", lambda progress, cancelled:
                               archive_status(folder, check=False), on_done=self._on_status,
                               report_errors=False)
        self._status_job = mark_background(job)
        return job

    def start_archiving(self) -> Job | None:
        """Start this window's archiver on the open database (a job); None when it cannot."""
        database = self.session.db_path
        if database is None or self.archiving or self.switching:
            return None
        minutes = self.session.config.archive_validate_minutes
        controller = ArchiveController(
            database, self.archive_dir,
            retention_days=self.session.config.archive_retention_days,
            on_event=self._events.deliver, validate_seconds=minutes * 60 if minutes else None,
            low_priority=self.session.config.archive_low_priority)
        self.controller = controller
        self._switch_job = self.session.run(
            "Start archiving", lambda progress, cancelled: controller.start(),
            parameters={"folder": str(self.archive_dir)}, on_done=self._on_switched,
            on_error=lambda _error: self._on_start_failed(controller))
        self._show()
        return self._switch_job

    def stop_archiving(self) -> Job | None:
        """Stop this window's archiver after it wrote what it saw (a job); None if idle."""
        controller = self.controller
        if controller is None or not controller.running:
            return None
        self._switch_job = self.session.run(
            "Stop archiving", lambda progress, cancelled: controller.stop(),
            on_done=self._on_switched)
        self._show()
        return self._switch_job

    def validate_now(self) -> Job | None:
        """Validate the archive against the live file now (a job); None when it cannot."""
        database = self.session.db_path
        if database is None or self.validating:
            return None
        self._validate_job = self.session.run_operation(
            operations.validate_archive(database, self.archive_dir),
            on_success=lambda _result: self._on_validated(),
            on_error=lambda _error: self._on_validated())
        self._show()
        return self._validate_job

    def _around_checkpoint(self, mode: str, run: Any) -> Any:
        """Run in the checkpoint job's thread: a RESTART or TRUNCATE pauses our archiver."""
        controller = self.controller
        if controller is None:
            return run()
        return controller.checkpoint(mode, run)

    # -- showing ----------------------------------------------------------------------------

    def _show(self) -> None:
        """Put the panel's state on screen from what is known (never reads files)."""
        self.folder_label.setText(f"Folder: {self.archive_dir}")
        status = self.status
        running = self.controller.status() if self.controller is not None else None
        self.toggle.blockSignals(True)
        self.toggle.setChecked(self.archiving)
        self.toggle.blockSignals(False)
        enabled = self.session.db_path is not None and not self.switching \
            and self.elsewhere is None
        self.toggle.setEnabled(enabled)
        archived = self.archiving or self.elsewhere is not None
        self.validate_button.setEnabled(self.session.db_path is not None and archived
                                        and not self.validating and not self.switching)
        self.grid.set_value(*self._validation_text())
        self.grid.set_value(*self._state_text(running))
        behind = running.lag_seconds if running is not None and running.running else None
        self.grid.set_value("behind", "\u2013" if behind is None else f"{behind * 1000:.0f} ms")
        if status is not None:
            self.grid.set_value("generations", f"{len(status.generations)}")
            self.grid.set_value("size", format_bytes(status.size_bytes))
            self.grid.set_value("earliest", _instant(status.earliest))
            self.grid.set_value("latest", _instant(status.latest))
        self.gap_label.setText(self._gap_text(status, running))
        self.gap_label.setToolTip(self._gap_reason(status, running))

    def _state_text(self, running: ArchiverStatus | None) -> tuple[str, str, str | None]:
        if self.elsewhere is not None:
            process = (f"PID {self.elsewhere.get('pid', '?')} on "
                       f"{self.elsewhere.get('host', '?')}")
            source = self.elsewhere.get("database")
            if source and self.session.db_path is not None \
                    and Path(source).resolve() != Path(self.session.db_path).resolve():
                return ("state", f"not this file: another process ({process}) archives "
                                 f"{source} into this folder", WARN_COLOUR)
            return ("state", f"archived by another process ({process})", GOOD_COLOUR)
        if self.switching and self._switch_job is not None:
            starting = self._switch_job.title.startswith("Start")
            return ("state", "starting..." if starting else "stopping...", WARN_COLOUR)
        if running is not None and running.error and not running.running:
            return ("state", f"off: {running.error}", BAD_COLOUR)
        if self.archiving and running is not None:
            if running.snapshot_pending:
                return ("state", "on, taking the snapshot", WARN_COLOUR)
            return ("state", f"on ({running.transactions:,} transactions archived)",
                    GOOD_COLOUR)
        return ("state", "off", None)

    def _validation_text(self) -> tuple[str, str, str | None]:
        if self.validating:
            return ("validation", "validating...", WARN_COLOUR)
        result = self.last_validation
        if result is None:
            return ("validation", "none yet", None)
        when = _instant(result.checked_at)
        if result.ok:
            return ("validation", f"passed at {when}: identical to the live file", GOOD_COLOUR)
        if result.ok is False:
            return ("validation", f"FAILED at {when}: {result.sentence}", BAD_COLOUR)
        return ("validation", f"not compared at {when}: {result.sentence}", WARN_COLOUR)

    def _gap_reason(self, status: ArchiveStatus | None, running: ArchiverStatus | None) -> str:
        if running is not None and running.last_gap:
            return running.last_gap
        if status is not None and status.gaps:
            return f"Why: {status.gaps[-1].reason}."
        return ""

    def _gap_text(self, status: ArchiveStatus | None, running: ArchiverStatus | None) -> str:
        if running is not None and running.last_gap:
            return (f"Last gap at {_instant(running.last_gap_at)}: {running.last_gap}; a new "
                    "generation started.")
        if status is not None and status.gaps:
            gap = status.gaps[-1]
            return (f"Last gap: from {_instant(gap.after)} to {_instant(gap.before)} "
                    f"({format_age(gap.before - gap.after)} that cannot be restored; "
                    f"{len(status.gaps)} gap{'' if len(status.gaps) == 1 else 's'} in all).")
        if status is not None and not status.generations:
            return ("The archive is empty. Turn archiving on (or run queue-admin-cli archive) "
                    "to restore the queue to any instant.")
        if status is not None and status.checked:
            return "No gap: every instant from the earliest to the latest can be restored."
        return ("No gap seen; every archive file is read against its checksums at each "
                "validation.")

    # -- slots ------------------------------------------------------------------------------

    def _on_toggled(self, checked: bool) -> None:
        if checked:
            self.start_archiving()
        else:
            self.stop_archiving()

    def _on_switched(self, _result: object) -> None:
        self._show()
        self.refresh()

    def _on_start_failed(self, controller: ArchiveController) -> None:
        if self.controller is controller:
            self.controller = None
        self._show()
        self.refresh()

    def _on_status(self, status: ArchiveStatus) -> None:
        if status.folder != self.archive_dir:
            return
        self.status = status
        self.elsewhere = archiver_elsewhere(status)
        self._show()

    def _on_validated(self) -> None:
        self._show()
        self.refresh()

    def _on_archiver_event(self, event: ArchiveEvent) -> None:
        self.last_event = event
        if event.kind in ("gap", "error", "validation failed"):
            self.session.messages.warning(event.message)
        self._show()
        if event.kind in ("generation", "validation", "validation failed"):
            self.refresh()

    def _on_tick(self) -> None:
        self._show()
        if time.monotonic() - self._last_read >= STATUS_EVERY_MS / 1000:
            self.refresh()

    def _on_database_changed(self, _path: object) -> None:
        self.stop_archiving()
        self.refresh()

    def _on_config_changed(self, _config: object) -> None:
        if self.controller is not None and self.controller.archive_dir != self.archive_dir:
            self.stop_archiving()
        self.status, self.elsewhere = None, None
        self.grid.clear_values()
        self._show()
        self.refresh()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        """Read the folder now and keep the panel fresh while it is shown."""
        super().showEvent(event)
        self._timer.start()
        self.refresh()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 - Qt override
        """Stop reading the folder while nobody looks; the archiver itself keeps running."""
        super().hideEvent(event)
        self._timer.stop()


def _instant(stamp: float | None) -> str:
    """Local time to the second, as the admin reads the clock ("2024-05-01 10:41:59")."""
    if stamp is None:
        return "\u2013"
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")  # noqa: DTZ006
