"""The archiver a window runs: started, stopped, and told about the window's own checkpoints.

The archiver notices another program's RESTART or TRUNCATE checkpoint on the -shm lock bytes
and lets it through. A checkpoint run by the same process holds locks the archiver leaves out
of its look by default (they could be its own process's writers), so the window runs such a
checkpoint through :meth:`ArchiveController.checkpoint`: the process's other writers are held
back (:mod:`..process_writers`), the archiver is told to count its own process's locks, and
it lets the checkpoint through at the frame where the archive ends. The reset costs nothing:
the archive goes on in the same generation, with no new snapshot. Every method may be called
from any thread except the GUI thread: starting and stopping open files and join a thread.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..process_writers import write_gate
from ..settings.config import MaintenanceConfig
from .archiver import ArchiveEvent, Archiver, ArchiverStatus
from .status import ArchiveStatus

#: Checkpoint modes that wait for every reader, the archiver's included.
MODES_THAT_WAIT_FOR_READERS = ("RESTART", "TRUNCATE")
ARCHIVE_FOLDER_NAME = "archive"

Result = TypeVar("Result")


def default_archive_dir(backup_dir: Path) -> Path:
    """Where the window archives when no other folder is set: beside the backups."""
    return Path(backup_dir) / ARCHIVE_FOLDER_NAME


def configured_archive_dir(config: MaintenanceConfig) -> Path:
    """The archive folder of the settings: ``archive_dir``, else beside the backups."""
    chosen = config.archive_dir
    return Path(chosen) if chosen is not None else default_archive_dir(config.backup_dir)


def archiver_elsewhere(status: ArchiveStatus) -> dict[str, Any] | None:
    """The lock of an archiver run by another process (the CLI), or None."""
    lock = status.archiver
    if lock is None:
        return None
    ours = lock.get("pid") == os.getpid() and lock.get("host") == socket.gethostname()
    return None if ours else lock


class ArchiveController:
    """One archiver for one database and folder, owned by the window."""

    def __init__(self, database: Path, archive_dir: Path, *,
                 retention_days: float | None = None,
                 on_event: Callable[[ArchiveEvent], None] | None = None,
                 validate_seconds: float | None = None, low_priority: bool = False) -> None:
        self.database = Path(database)
        self.archive_dir = Path(archive_dir)
        self.retention_days = retention_days
        self.on_event = on_event
        #: Validation interval of the archiver (None: only on demand).
        self.validate_seconds = validate_seconds
        #: Whether the archiver's thread runs at below-normal priority (:mod:`.priority`).
        self.low_priority = low_priority
        self._lock = threading.RLock()
        self._archiver: Archiver | None = None
        self._last: Archiver | None = None
        #: RESTART and TRUNCATE checkpoints let through while archiving.
        self.checkpoints_let_through = 0

    @property
    def running(self) -> bool:
        """True while an archiver runs."""
        return self._archiver is not None

    def status(self) -> ArchiverStatus | None:
        """The running (or last) archiver's state; None before the first start."""
        archiver = self._archiver or self._last
        return archiver.status() if archiver is not None else None

    def start(self) -> None:
        """Start archiving; raises the engine's refusal (another archiver, not WAL, ...)."""
        with self._lock:
            if self._archiver is not None:
                return
            archiver = Archiver(self.database, self.archive_dir,
                                retention_days=self.retention_days, on_event=self.on_event,
                                validate_seconds=self.validate_seconds,
                                low_priority=self.low_priority)
            archiver.start()
            self._archiver = self._last = archiver

    def stop(self) -> None:
        """Stop archiving after writing everything seen so far; nothing when not running."""
        with self._lock:
            archiver, self._archiver = self._archiver, None
            if archiver is not None:
                archiver.stop()

    def checkpoint(self, mode: str, run: Callable[[], Result]) -> Result:
        """Run ``run`` (a checkpoint in ``mode``) so it never waits out its busy timeout here.

        For RESTART and TRUNCATE the archiver lets the checkpoint through where the archive
        ends and goes on in the same generation; other modes run beside it untouched.
        """
        if mode.upper() not in MODES_THAT_WAIT_FOR_READERS:
            return run()
        with self._lock:
            archiver = self._archiver
            if archiver is None:
                return run()
            with write_gate(self.database).exclusive(), archiver.own_checkpoint():
                result = run()
            self.checkpoints_let_through += 1
            return result
