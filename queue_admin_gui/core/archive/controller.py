"""The archiver a window runs: started, stopped, and paused around the window's own checkpoints.

The archiver notices another program's RESTART or TRUNCATE checkpoint on the -shm lock bytes
and lets it through; a checkpoint run by the same process holds locks the archiver cannot see
there, so it would wait out its busy timeout on the archiver's read transactions. The window
therefore runs such a checkpoint through :meth:`ArchiveController.checkpoint`: the archiver
stops cleanly (everything it saw is written), the checkpoint runs, and a new archiver starts,
which records a new generation. Every method may be called from any thread except the GUI
thread: starting and stopping open files and join a thread.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..config import MaintenanceConfig
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
                 on_event: Callable[[ArchiveEvent], None] | None = None) -> None:
        self.database = Path(database)
        self.archive_dir = Path(archive_dir)
        self.retention_days = retention_days
        self.on_event = on_event
        self._lock = threading.RLock()
        self._archiver: Archiver | None = None
        self._last: Archiver | None = None
        self._paused = False
        self.pauses = 0

    @property
    def running(self) -> bool:
        """True while an archiver runs (or is paused around a checkpoint)."""
        return self._archiver is not None or self._paused

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
                                retention_days=self.retention_days, on_event=self.on_event)
            archiver.start()
            self._archiver = self._last = archiver

    def stop(self) -> None:
        """Stop archiving after writing everything seen so far; nothing when not running."""
        with self._lock:
            archiver, self._archiver = self._archiver, None
            if archiver is not None:
                archiver.stop()

    def checkpoint(self, mode: str, run: Callable[[], Result]) -> Result:
        """Run ``run`` (a checkpoint in ``mode``) so it never waits on this archiver.

        For RESTART and TRUNCATE the archiver is stopped first and started again after,
        whatever the checkpoint's outcome; other modes run beside it.
        """
        if mode.upper() not in MODES_THAT_WAIT_FOR_READERS:
            return run()
        with self._lock:
            if self._archiver is None:
                return run()
            self._paused = True
            try:
                self.stop()
                self.pauses += 1
                return run()
            finally:
                try:
                    self.start()
                finally:
                    self._paused = False
