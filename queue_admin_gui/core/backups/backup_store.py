"""Online backups of the queue database, their verification and retention.

A backup is one consistent snapshot: one read transaction on the source for the whole copy
(writers go on in the WAL, so the copy never restarts), copied in steps so progress shows.
It is written as ``<final>.partial`` in rollback-journal mode (one self-contained file),
flushed, checked, given a manifest, and only then renamed to its final name: a crash or a
full disk never leaves a file that looks like a backup, and never touches the source.
Listing, pruning and deleting the backups of a folder go through :mod:`.backup_folder`.
:class:`BackupStore` is what the window, the command line and the restore path (its safety
backup) use; :class:`~..compat.QueueBackup`, the class scripts know, adds the first API's
names and the restore on top of it.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ... import __version__
from ..database import BUSY_TIMEOUT_MS, QueueDatabase, database_path_of
from ..errors import ErrorKind, QueueBackupError, require_free_space, translate_error
from ..files.db_files import file_size, require_existing_file, wal_path
from ..files.durable import fsync_directory, retry_on_windows_lock
from ..files.file_names import sanitize_backup_name
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from ..settings.config import MaintenanceConfig
from ..trust.check_seal import record_full_check
from .backup_folder import (
    CLAIM_GRACE_SECONDS,
    delete_backup_file,
    list_backups,
    prune_folder,
    remove_leftovers,
)
from .backup_paths import live_file_conflict
from .manifest import (
    MANIFEST_FORMAT_VERSION,
    PARTIAL_SUFFIX,
    BackupInfo,
    BackupManifest,
    backup_file_name,
    manifest_path_for,
    sqlite_library_version,
    utc_now,
)
from .partial_claims import create_claimed
from .partial_claims import release as release_claim
from .retention import PruneResult
from .snapshot import Snapshot, backup_failure, copy_snapshot, remove_partial, seal_copy
from .verify import VerifyReport, check_backup_file

__all__ = ["BackupResult", "BackupStore", "PendingBackup"]

STAGE_FINISH = "Finishing the backup"
#: Pages copied between two progress reports (and cancel checks) by a backup or a restore.
DEFAULT_PAGES_PER_STEP = 1024
#: Free space wanted beyond the database and its WAL: 10 % and 16 MB of margin.
SPACE_MARGIN_RATIO = 0.10
SPACE_MARGIN_BYTES = 16 * 1024 * 1024
_MAX_NAME_TRIES = 1000


@dataclass
class PendingBackup:
    """A snapshot copied into its ``.partial`` file, not yet checked nor named."""

    source: Path
    final: Path
    partial: Path
    snapshot: Snapshot
    started: float


@dataclass
class BackupResult:
    """What one backup produced, for the CLI's ``--json`` and the window's activity log."""

    path: Path
    size_bytes: int
    page_count: int
    seconds: float
    sha256: str
    task_counts: dict[str, int] | None
    manifest: BackupManifest
    restarts: int = 0


def _default_backup_dir(db_path: Path) -> Path:
    """The backup folder the settings name (their default is the per-user data folder)."""
    return Path(MaintenanceConfig.load().backup_dir)


class BackupStore:
    """Backups of one queue database in one folder: create, verify, list and prune.

    Safe to call from several threads at once: every call opens its own connections, backup
    names are reserved atomically, and restores and deletions are serialised.
    """

    def __init__(self, db: QueueDatabase | str | Path, backup_dir: str | Path | None = None,
                 *, busy_timeout_ms: int = BUSY_TIMEOUT_MS,
                 pages_per_step: int = DEFAULT_PAGES_PER_STEP) -> None:
        self.db = db
        self.db_path = database_path_of(db)
        folder = Path(backup_dir) if backup_dir is not None else _default_backup_dir(self.db_path)
        if folder.exists() and not folder.is_dir():
            raise QueueBackupError(f"Using '{folder}' as the backup folder failed: it is a "
                                   "file, not a folder; choose a folder.", ErrorKind.NOT_A_FOLDER)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise translate_error(error, f"Creating the backup folder '{folder}'",
                                  QueueBackupError) from error
        self.backup_dir = folder
        self.busy_timeout_ms = busy_timeout_ms
        self.pages_per_step = pages_per_step

    # -- creating -------------------------------------------------------------------------

    def backup(self, name: str | None = None, progress: ProgressCallback | None = None,
               cancelled: CancelCheck | None = None) -> BackupResult:
        r"""Take one consistent snapshot of the database into the backup folder.

        ``name`` is an optional label placed in the file name. It is checked, not rewritten:
        a label with path separators, ``..``, ``<>:"/\\|?*``, control characters or a
        Windows device name (CON, NUL, COM1, ...) raises QueueBackupError (kind INVALID).
        The file is ``queue_backup_[<name>_]<YYYYMMDD_HHMMSS>.db`` in local time, with
        ``_2``, ``_3``... added when that name is taken. Cancel removes the partial file.
        """
        return self._backup_file(self.db_path, sanitize_backup_name(name), progress, cancelled)

    def _backup_file(self, source: Path, label: str | None,
                     progress: ProgressCallback | None,
                     cancelled: CancelCheck | None) -> BackupResult:
        pending = self.begin_backup(source, label, progress, cancelled, check_source=True)
        return self.finish_backup(pending, progress, cancelled)

    def begin_backup(self, source: Path, label: str | None,
                     progress: ProgressCallback | None = None,
                     cancelled: CancelCheck | None = None, *,
                     unlocked: bool = False, check_source: bool = False) -> PendingBackup:
        """Copy the snapshot into a reserved ``.partial`` file; :meth:`finish_backup` seals it.

        The split lets a restore take the copy while it holds the live write lock and check
        it afterwards. Until finished, nothing looks like a backup; a failure here removes
        the partial file. ``unlocked``: see :func:`~.snapshot.copy_snapshot`.
        ``check_source``: SQLite's full check runs on the copied snapshot
        beside the copy, on a connection of its own (:func:`.snapshot.copy_snapshot`);
        :meth:`finish_backup` must then follow at once, as it waits for that check.
        """
        action = f"Backup of '{source}'"
        started = time.monotonic()
        require_existing_file(source, action, QueueBackupError)
        needed = file_size(source) + file_size(wal_path(source))
        require_free_space(self.backup_dir,
                           int(needed * (1 + SPACE_MARGIN_RATIO)) + SPACE_MARGIN_BYTES,
                           action, QueueBackupError)
        final, partial = self._reserve_name(label, action)
        try:
            snapshot = copy_snapshot(source, partial, action, progress, cancelled,
                                     self.pages_per_step, self.busy_timeout_ms,
                                     unlocked=unlocked, check_source=check_source)
        except BaseException as error:
            failure = self._failed(error, action, partial, manifest_path_for(final))
            if failure is error:
                raise
            raise failure from error
        return PendingBackup(source, final, partial, snapshot, started)

    def finish_backup(self, pending: PendingBackup, progress: ProgressCallback | None = None,
                      cancelled: CancelCheck | None = None, *,
                      keep_partial_on_failure: bool = False) -> BackupResult:
        """Check, flush and hash the copy, write its manifest and give it its final name.

        A copy that fails the check raises (kind CORRUPT for damage); its partial file is
        removed unless ``keep_partial_on_failure`` (the caller then owns it).
        """
        source, final, partial, snapshot = (pending.source, pending.final, pending.partial,
                                            pending.snapshot)
        action = f"Backup of '{source}'"
        manifest_file = manifest_path_for(final)
        try:
            digest = seal_copy(partial, snapshot, action, progress, cancelled)
            size = partial.stat().st_size
            manifest = BackupManifest(
                format_version=MANIFEST_FORMAT_VERSION, name=final.name, sha256=digest,
                size_bytes=size, page_count=snapshot.page_count, page_size=snapshot.page_size,
                task_counts=snapshot.task_counts, source_path=str(source),
                created_at=utc_now().isoformat(), sqlite_version=sqlite_library_version(),
                tool_version=__version__,
            )
            manifest.write(final)
            record_full_check(digest, size)  # the full check just passed on these bytes
            report(progress, 1, 1, STAGE_FINISH)
            raise_if_cancelled(cancelled, action)
            if sys.platform == "win32":  # an open file cannot be renamed there
                release_claim(partial)
            retry_on_windows_lock(lambda: os.replace(partial, final))
            release_claim(partial)  # POSIX: held until the name is final
        except BaseException as error:
            if keep_partial_on_failure:
                release_claim(partial)  # the caller now owns the file
                for leftover in (manifest_file, manifest_file.with_name(
                        manifest_file.name + ".tmp")):
                    leftover.unlink(missing_ok=True)
                if isinstance(error, sqlite3.Error | OSError):
                    raise translate_error(error, action, QueueBackupError) from error
                raise
            failure = self._failed(error, action, partial, manifest_file)
            if failure is error:
                raise
            raise failure from error
        fsync_directory(self.backup_dir)
        return BackupResult(path=final, size_bytes=size, page_count=snapshot.page_count,
                            seconds=time.monotonic() - pending.started, sha256=digest,
                            task_counts=snapshot.task_counts, manifest=manifest,
                            restarts=snapshot.restarts)

    @staticmethod
    def _failed(error: BaseException, action: str, partial: Path,
                manifest_file: Path) -> BaseException:
        """Remove what a failed backup wrote and give the error to raise."""
        failure = (backup_failure(error, action, partial)
                   if isinstance(error, sqlite3.Error | OSError) else None)
        remove_partial(partial, manifest_file)
        return failure if failure is not None else error

    def _reserve_name(self, label: str | None, action: str) -> tuple[Path, Path]:
        """Claim a free backup name by creating its ``.partial`` exclusively.

        The partial is created before the final name is checked, so two threads or
        processes never both pick the same name even within one second.
        """
        when = datetime.now()  # noqa: DTZ005 - file names carry the admin's local time
        for sequence in range(1, _MAX_NAME_TRIES):
            final = self.backup_dir / backup_file_name(label, when, sequence)
            partial = final.with_name(final.name + PARTIAL_SUFFIX)
            try:
                create_claimed(partial)  # held until the file is renamed or removed
            except FileExistsError:
                continue
            except OSError as error:
                raise translate_error(error, action, QueueBackupError) from error
            if final.exists() or manifest_path_for(final).exists():
                release_claim(partial)
                partial.unlink()
                continue
            return final, partial
        raise QueueBackupError(f"{action} failed: no free backup name is left for this second "
                               "in the backup folder; retry in a moment.", ErrorKind.IO)

    # -- checking -------------------------------------------------------------------------

    def check_backup(self, backup_path: str | Path, progress: ProgressCallback | None = None,
                     cancelled: CancelCheck | None = None, *,
                     trust_checksum: bool = False) -> VerifyReport:
        """Check a backup and list every problem; never raises for a bad file.

        The full check always runs (``trust_checksum`` is accepted for older callers and
        changes nothing); the backup's schema is compared with this database's own, and a
        path that is this database or one of its side files is reported, not opened.
        """
        backup_path = Path(backup_path)
        conflict = live_file_conflict(backup_path, self.db_path)
        if conflict is not None:
            return VerifyReport(path=backup_path, ok=False, manifest=None,
                                problems=[f"{conflict[0].upper()}{conflict[1:]}; it is not a "
                                          "backup and was not opened."],
                                kind=ErrorKind.INVALID)
        return check_backup_file(backup_path, progress, cancelled,
                                 live_path=self.db_path if self.db_path.exists() else None,
                                 trust_checksum=trust_checksum)

    # -- listing and retention ------------------------------------------------------------

    def list_backups(self) -> list[BackupInfo]:
        """Every backup in the folder, newest first; older ones without a manifest included.

        Partial files of a backup in progress (or of one that crashed) are not listed.
        """
        return list_backups(self.backup_dir)

    def prune(self, keep_count: int) -> PruneResult:
        """Keep the newest ``keep_count`` backups, delete the older ones, and say what it did.

        A backup whose manifest is unreadable is never deleted and not counted (see
        :mod:`.retention`). A failure part way raises :class:`PruneStopped`, which lists
        the backups deleted before it.
        """
        return prune_folder(self.backup_dir, keep_count, self.delete_backup)

    def remove_leftovers(self, older_than_seconds: float = CLAIM_GRACE_SECONDS) -> list[Path]:
        """Delete what interrupted backups left behind; see :mod:`.backup_folder`."""
        return remove_leftovers(self.backup_dir, older_than_seconds)

    def delete_backup(self, backup_path: str | Path) -> None:
        """Delete one backup file and its manifest (and any -wal/-shm an older backup had).

        Only files named like backups are deleted, never the database itself.
        """
        delete_backup_file(Path(backup_path), self.db_path)
