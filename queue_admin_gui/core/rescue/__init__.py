"""Selective rescue: compare the live queue with a past state and put chosen tasks back.

This package owns everything between "what changed since then?" and "put those tasks back
as they were", beside running workers:

- :mod:`.past` opens a past state as a file the rescue can trust: a backup (verified as every
  backup is), an instant of the point-in-time archive (rebuilt and verified by the archive)
  or the readable rows of a damaged file (salvaged), and attaches it read-only, untrusted,
  to a connection on the live queue.
- :mod:`.diff` compares the two in SQLite, task by task: removed since, changed since
  (status from -> to, attempts, error, payload...), added since; grouped by type, by status
  change and by minute of change, counts first and the ids behind them.
- :mod:`.merge` puts a selection back in one write transaction (after a safety backup),
  never touching a task a worker holds, a task added since, or a task outside the
  selection, and writes an undo file; :mod:`.undo` puts the live rows back from it.
- :mod:`.salvage` reads every row still readable from a damaged queue file into a fresh one.

It may use the queue file helpers (:mod:`..database`), the backup check
(:func:`..backups.verify.check_backup_file`), the backup store for the safety backup
(:class:`..backups.backup_store.BackupStore`), the archive's public functions
(:func:`..archive.rebuild_to_time`, :func:`..archive.parse_instant`), errors and progress.
It never reaches into the restore or the archive's internals.
"""

from .diff import DiffGroup, QueueDiff, diff_queue
from .merge import RescueReport, RescueSelection, rescue_tasks
from .past import PastSource, PastState, open_past_state
from .salvage import SalvageReport, salvage_queue
from .sql import RescueError
from .undo import UndoReport, undo_rescue
from .undo_file import RescueSkip

__all__ = [
    "DiffGroup", "PastSource", "PastState", "QueueDiff", "RescueError", "RescueReport",
    "RescueSelection", "RescueSkip", "SalvageReport", "UndoReport", "diff_queue",
    "open_past_state", "rescue_tasks", "salvage_queue", "undo_rescue",
]
