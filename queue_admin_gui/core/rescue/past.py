"""The past state a rescue compares with: one file the rescue can trust, however it was named.

- a backup file is verified first, exactly as before a restore (integrity, queue schema,
  manifest, id counters); a backup that fails is refused;
- an instant of the point-in-time archive is rebuilt into a private work folder beside the
  live database (the archive verifies what it rebuilds);
- a damaged file cannot pass a check: its readable rows are salvaged into a fresh file in
  the work folder, and the report says how many ids could not be read.

The work folder is removed when the ``with`` block of :func:`open_past_state` ends.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psutil

from ..archive import instant_text, rebuild_to_time
from ..backups.verify import check_backup_file
from ..errors import ErrorKind, translate_error
from ..progress import CancelCheck, ProgressCallback
from .salvage import SalvageReport, salvage_queue
from .sql import RescueError

_WORK_PREFIX = ".queue-admin-rescue-"


class PastSource(enum.Enum):
    """Where a past state comes from."""

    BACKUP = "backup"
    ARCHIVE = "archive"
    DAMAGED = "damaged"


@dataclass(frozen=True)
class PastState:
    """A past state ready to be attached: ``path`` is verified, rebuilt or salvaged."""

    source: PastSource
    #: What the user named: the backup, the archive folder or the damaged file.
    given: Path
    #: The file the rescue reads.
    path: Path
    #: The instant asked for (archive only).
    at: datetime | None = None
    #: What salvage could and could not read (damaged file only).
    salvage: SalvageReport | None = None

    @property
    def label(self) -> str:
        """One phrase naming the past state, for reports and the activity log."""
        if self.source is PastSource.ARCHIVE and self.at is not None:
            return f"the archive '{self.given}' at {instant_text(self.at.timestamp())}"
        if self.source is PastSource.DAMAGED:
            return f"the readable rows of the damaged file '{self.given}'"
        return f"the backup '{self.given}'"


@contextlib.contextmanager
def open_past_state(live: Path, *, backup: Path | None = None, archive: Path | None = None,
                    at: datetime | None = None, damaged: Path | None = None,
                    progress: ProgressCallback | None = None,
                    cancelled: CancelCheck | None = None) -> Iterator[PastState]:
    """Make the named past state trustworthy and yield it; exactly one source must be given.

    Raises :class:`RescueError` (kind INVALID for a wrong combination or a backup that fails
    its check, NOT_FOUND for a missing file) before anything is changed.
    """
    live = Path(live)
    given = [name for name, value in (("a backup", backup), ("an archive", archive),
                                      ("a damaged file", damaged)) if value is not None]
    if len(given) != 1:
        raise RescueError("Name exactly one past state: a backup, an archive with an instant, "
                          "or a damaged file.", ErrorKind.INVALID)
    if archive is not None and at is None:
        raise RescueError("An archive needs the instant to compare with (--at TIME).",
                          ErrorKind.INVALID)
    if backup is not None:
        yield _verified_backup(Path(backup), live, progress, cancelled)
        return
    work = _make_work_folder(live)
    try:
        if archive is not None and at is not None:
            rebuilt = rebuild_to_time(archive, at, work / "past.db", progress, cancelled,
                                      live_path=live)
            yield PastState(PastSource.ARCHIVE, Path(archive), rebuilt.path,
                            at=at if at.tzinfo else at.replace(tzinfo=timezone.utc))
        else:
            assert damaged is not None
            salvaged = salvage_queue(Path(damaged), work / "salvaged.db", progress, cancelled)
            yield PastState(PastSource.DAMAGED, Path(damaged), salvaged.output,
                            salvage=salvaged)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _verified_backup(path: Path, live: Path, progress: ProgressCallback | None,
                     cancelled: CancelCheck | None) -> PastState:
    verdict = check_backup_file(path, progress, cancelled, live_path=live)
    if not verdict.ok:
        raise RescueError(f"The backup '{path}' cannot be used as the past state: "
                          f"{verdict.problems[0].rstrip('.')}; choose a verified backup "
                          "(or --damaged for a damaged file).", verdict.kind or ErrorKind.CORRUPT)
    return PastState(PastSource.BACKUP, path, path)


def _make_work_folder(live: Path) -> Path:
    """A private folder beside the live database (same volume: rebuilt files are large)."""
    _remove_stale_work_folders(live.parent)
    folder = live.parent / f"{_WORK_PREFIX}{os.getpid()}-{time.time_ns()}"
    try:
        folder.mkdir(parents=True)
    except OSError as error:
        raise translate_error(error, "Preparing the past state: creating a work folder "
                              "beside the database", RescueError) from error
    return folder


def _remove_stale_work_folders(folder: Path) -> None:
    """Work folders a killed rescue left behind: their process is gone."""
    for entry in folder.glob(f"{_WORK_PREFIX}*"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(entry.name[len(_WORK_PREFIX):].split("-", 1)[0])
            if entry.is_dir() and not psutil.pid_exists(pid):
                shutil.rmtree(entry)
