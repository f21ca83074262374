"""The API existing scripts use: ``QueueBackup`` and ``QueueMaintenance``, over the engine.

Scripts written against the first maintenance API import these two classes from
``queue_admin_gui.core`` and call them by their first names: ``create_backup``,
``verify_backup``, ``restore_backup``, ``get_latest_backup``, ``cleanup_old_backups`` and
``prune_backups`` on a ``QueueBackup``; ``checkpoint``, ``vacuum``, ``analyze``,
``pragma_optimize``, ``optimize``, ``integrity_check``, ``get_database_stats`` and
``cleanup_stale_leases`` on a ``QueueMaintenance``. Every one of those names is defined here
and nowhere else, as a thin call of the engine with the old signature and the old result
(a path, a bool, a count, a dict). The engine itself speaks in typed results under its own
names: :class:`~.backups.backup_store.BackupStore` (``backup``, ``check_backup``,
``list_backups``, ``prune``), :func:`~.restore.execute.execute_restore` and
:class:`~.maintenance.Maintenance` (``run_checkpoint``, ``check_integrity``, ...); the window
and the command line use those, and a script may too, since both classes here inherit them.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from .backups.backup_store import BackupStore
from .backups.manifest import BackupInfo
from .errors import ErrorKind, QueueBackupError
from .leases.manager import LeaseManager
from .maintenance import Maintenance
from .progress import CancelCheck, ProgressCallback
from .restore.execute import execute_restore
from .restore.keep import RestoreRequest
from .restore.writing import RestoreResult

__all__ = ["QueueBackup", "QueueMaintenance"]


class QueueBackup(BackupStore):
    """Backups of one queue database: create, verify, restore, list and prune.

    Safe to call from several threads at once: every call opens its own connections, backup
    names are reserved atomically, and restores and deletions are serialised.
    """

    def create_backup(self, name: str | None = None, progress: ProgressCallback | None = None,
                      cancelled: CancelCheck | None = None) -> Path:
        """Back up the database and return the new file's path (see :meth:`backup`)."""
        return self.backup(name, progress, cancelled).path

    def verify_backup(self, backup_path: str | Path) -> bool:
        """Return True when the backup is sound; otherwise raise QueueBackupError saying why.

        A missing file raises "... not found" (kind NOT_FOUND). :meth:`check_backup` lists
        every problem instead of raising.
        """
        result = self.check_backup(backup_path)
        if result.ok:
            return True
        path = Path(backup_path)
        if result.kind is ErrorKind.NOT_FOUND:
            raise QueueBackupError(f"Verifying the backup failed: '{path}' not found; check "
                                   "the path or choose another backup.", ErrorKind.NOT_FOUND)
        raise QueueBackupError(f"The backup '{path}' failed verification: {result.problems[0]}",
                               result.kind)

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
        return execute_restore(RestoreRequest(
            backup_path=Path(backup_path),
            target=Path(target) if target is not None else self.db_path,
            backup_dir=self.backup_dir, safety_backup=safety_backup,
            accepted_workers=accepted_workers, lock_wait_seconds=lock_wait_seconds,
            archive_dirs=tuple(Path(folder) for folder in archive_dirs),
            busy_timeout_ms=self.busy_timeout_ms, pages_per_step=self.pages_per_step,
            keep_newer_tasks=keep_newer_tasks,
            archive_safety=Path(archive_safety) if archive_safety is not None else None),
            progress, cancelled)

    def get_latest_backup(self) -> BackupInfo | None:
        """The newest backup, or None when the folder holds none."""
        backups = self.list_backups()
        return backups[0] if backups else None

    def cleanup_old_backups(self, keep_count: int = 10) -> int:
        """Delete all but the newest ``keep_count`` backups; returns how many were deleted."""
        return len(self.prune_backups(keep_count))

    def prune_backups(self, keep_count: int) -> list[Path]:
        """Delete all but the newest ``keep_count`` backups and their manifests; return those."""
        return self.prune(keep_count).deleted


class QueueMaintenance(Maintenance):
    """Checkpoint, VACUUM, ANALYZE, integrity check and statistics for one database file.

    Each dict method returns its typed twin's ``as_dict()``, so the dicts keep their keys.
    """

    def checkpoint(self, mode: str = "PASSIVE") -> dict[str, Any]:
        """Copy WAL frames into the database; FULL and stronger modes wait for readers.

        ``busy`` is 1 when readers or writers kept the checkpoint from finishing (the frames
        left are ``log_frames - checkpointed_frames``); ``-1`` frames mean no WAL is in use.
        The dict form of :meth:`run_checkpoint`.
        """
        return self.run_checkpoint(mode).as_dict()

    def vacuum(self, progress: ProgressCallback | None = None,
               cancelled: CancelCheck | None = None) -> dict[str, Any]:
        """Rebuild the file without free pages, after checking there is room to do it.

        VACUUM blocks writers while it runs and can be cancelled (nothing changes then).
        The dict form of :meth:`run_vacuum`.
        """
        return self.run_vacuum(progress, cancelled).as_dict()

    def analyze(self, table: str | None = None) -> dict[str, Any]:
        """Refresh the query planner's statistics, for one table or for the whole file.

        The dict form of :meth:`run_analyze`.
        """
        return self.run_analyze(table).as_dict()

    def pragma_optimize(self) -> dict[str, Any]:
        """Let SQLite refresh only the statistics it considers out of date (cheap).

        The dict form of :meth:`run_pragma_optimize`.
        """
        return self.run_pragma_optimize().as_dict()

    def optimize(self, full: bool = False, progress: ProgressCallback | None = None,
                 cancelled: CancelCheck | None = None) -> dict[str, Any]:
        """ANALYZE, and VACUUM too when ``full`` (slow, blocks writers); sizes before and after.

        The dict form of :meth:`run_optimize`.
        """
        return self.run_optimize(full, progress, cancelled).as_dict()

    def integrity_check(self, quick: bool = False, cancelled: CancelCheck | None = None,
                        max_errors: int = 100) -> list[str]:
        """SQLite's own check of every page and index: ``["ok"]`` when clean, else the problems.

        Runs read-only. A file too damaged to open yields one problem sentence instead.
        The lines of :meth:`check_integrity`.
        """
        return self.check_integrity(quick, cancelled, max_errors).lines

    def get_database_stats(self, include_task_counts: bool = True) -> dict[str, Any]:
        """Sizes, pages, fragmentation, journal settings and task counts, read-only and fast.

        The dict form of :meth:`read_stats`.
        """
        return self.read_stats(include_task_counts).as_dict()

    def cleanup_stale_leases(self, timeout_seconds: int = 300) -> int:
        """Requeue abandoned tasks; how many.

        A task is abandoned when its lease expired more than ``timeout_seconds`` ago and its
        worker has been silent that long too, or is unknown (no ``workers`` row). The tasks
        of workers that still heartbeat are left alone. The count includes tasks that
        reached max_attempts and went to the dead letters.
        """
        manager = LeaseManager(self.db_path, busy_timeout_ms=self.busy_timeout_ms)
        return manager.requeue_stale_leases(timeout_seconds).stale
