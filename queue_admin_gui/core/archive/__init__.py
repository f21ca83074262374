"""Continuous WAL archiving of the queue and rebuilding it as it was at any instant.

:class:`Archiver` takes a snapshot and then copies every committed transaction into an
archive folder; :func:`archive_status` describes an archive; :func:`rebuild_to_time` makes
an ordinary verified backup of the queue as it was at an instant, which the normal restore
path (:func:`..restore.execute.execute_restore`) then restores.

It may use ``backups`` (its snapshots are backups; a rebuild is verified like one),
``trust``, ``settings``, ``files`` and the loose core modules (the activity and event logs,
the window's own writers); never ``restore``, ``rescue`` or ``measurements``, which build on
it.
"""

from .archiver import ArchiveEvent, Archiver, ArchiverStatus
from .rebuild import RebuildResult, parse_instant, rebuild_to_time, restorable_spans
from .status import ArchiveGap, ArchiveStatus, GenerationSummary, archive_status
from .store import ArchiveError, instant_text

__all__ = [
    "ArchiveError", "ArchiveEvent", "ArchiveGap", "ArchiveStatus", "Archiver", "ArchiverStatus",
    "GenerationSummary", "RebuildResult", "archive_status", "instant_text", "parse_instant",
    "rebuild_to_time", "restorable_spans",
]
