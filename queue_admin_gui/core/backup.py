"""``QueueBackup``: the class scripts use for backups, with the restore on top of them.

Taking, checking, listing and pruning backups is :class:`~.backup_store.BackupStore`; the
restore is :func:`~.restore.execute.execute_restore`, which takes its safety backup with a
``BackupStore``. This module joins the two under the name and signatures existing scripts
know; the result types are imported from the modules that define them.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from .backups.backup_store import BackupStore
from .database import writer_lock
from .progress import CancelCheck, ProgressCallback
from .restore.execute import execute_restore
from .restore.keep import RestoreRequest
from .restore.writing import RestoreResult

__all__ = ["QueueBackup"]


class QueueBackup(BackupStore):
    """Backups of one queue database: create, verify, restore, list and prune.

    Safe to call from several threads at once: every call opens its own connections, backup
    names are reserved atomically, and restores and deletions are serialised.
    """

    def restore_backup(self, backup_path: str | Path, target: str | Path | None = None,
                       safety_backup: bool = True, progress: ProgressCallback | None = None,
                       cancelled: CancelCheck | None = None, *,
                       accepted_workers: Collection[str] = (),
                       lock_wait_seconds: float = 0.0,
                       archive_dirs: Collection[Path] = (),
                       keep_newer_tasks: bool = False,
                       archive_safety: str | Path | None = None) -> RestoreResult:
        """Replace the database (or ``target``) with a backup, safely; see :mod:`.restore.execute`.

        The backup is copied aside and verified fully; workers at work (:mod:`.restore.gate`)
        refuse the restore unless named in ``accepted_workers`` (the archiver writing into
        one of ``archive_dirs``, or ``<backup_dir>/archive``, is not a worker); then,
        holding the live write lock, a safety backup of a healthy database is taken into the
        ``pre-restore`` sub-folder (unless ``safety_backup`` is false) and the backup is
        written in one transaction; a damaged database is moved aside (renamed, never
        deleted). A failure or cancel leaves the database as it was. A database locked by
        another program raises a LOCKED error. ``keep_newer_tasks`` carries the tasks
        created after the backup into the restored queue (:mod:`.restore.carry`). With
        ``archive_safety``, the point-in-time archive there is the safety copy when its
        archiver proves, under the lock, that it holds every commit (:mod:`.archive.safety_point`).
        """
        request = RestoreRequest(
            backup_path=Path(backup_path),
            target=Path(target) if target is not None else self.db_path,
            backup_dir=self.backup_dir, safety_backup=safety_backup,
            accepted_workers=accepted_workers, lock_wait_seconds=lock_wait_seconds,
            archive_dirs=tuple(Path(folder) for folder in archive_dirs),
            busy_timeout_ms=self.busy_timeout_ms, pages_per_step=self.pages_per_step,
            keep_newer_tasks=keep_newer_tasks,
            archive_safety=Path(archive_safety) if archive_safety is not None else None)
        with writer_lock(request.target):
            return execute_restore(request, progress, cancelled)
