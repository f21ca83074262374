"""A backup folder on disk: listing it, pruning it, deleting from it, clearing leftovers.

:class:`~.backup.QueueBackup` creates, checks and restores backups and delegates the folder's
housekeeping here. Deciding what pruning keeps is :mod:`.retention` (no files touched); this
module carries it out, one deletion at a time per process, and never deletes a file that is
not named like a backup, nor the live database.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .database import require_existing_file
from .errors import (
    ErrorKind,
    QueueAdminError,
    QueueBackupError,
    classify_os_error,
    translate_error,
)
from .files import retry_on_windows_lock
from .manifest import (
    BACKUP_SUFFIX,
    MANIFEST_SUFFIX,
    PARTIAL_SUFFIX,
    BackupInfo,
    is_backup_file_name,
    manifest_path_for,
)
from .retention import PruneResult, plan_prune, prune_stopped, require_keep_count

#: Deletions in backup folders in this process go one at a time.
FOLDER_LOCK = threading.RLock()
#: Leftovers of an interrupted backup (a .partial, a manifest without its backup) older than
#: this are removed by pruning; younger ones may belong to a backup still running elsewhere.
LEFTOVER_AGE_SECONDS = 6 * 3600


def list_backups(folder: Path) -> list[BackupInfo]:
    """Every backup in the folder, newest first; older ones without a manifest included.

    Partial files of a backup in progress (or of one that crashed) are not listed.
    """
    infos: list[BackupInfo] = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    except OSError as error:
        raise translate_error(error, f"Listing the backups in '{folder}'",
                              QueueBackupError) from error
    for entry in entries:
        if not is_backup_file_name(entry.name) or not entry.is_file():
            continue
        with contextlib.suppress(QueueBackupError):
            infos.append(BackupInfo.from_path(entry))
    infos.sort(key=lambda info: (info.created_at, info.sequence, info.path.name),
               reverse=True)
    return infos


def folder_listing_problem(folder: Path) -> tuple[ErrorKind, str] | None:
    """Why the backup folder cannot be listed (its kind and a short phrase); None when it can.

    A missing folder is no problem: it simply holds no backups yet. A file where the folder
    should be, a folder this account may not read, or an I/O error is: whether backups are
    there cannot be told.
    """
    try:
        with os.scandir(folder) as entries:
            for _entry in entries:
                pass
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return ErrorKind.INVALID, "it is a file, not a folder"
    except PermissionError:
        return ErrorKind.PERMISSION, "this account may not read it (permission denied)"
    except OSError as error:
        return classify_os_error(error), f"it cannot be read ({error.strerror or error})"
    return None


def prune_folder(folder: Path, keep_count: int,
                 delete: Callable[[Path], None]) -> PruneResult:
    """Keep the newest ``keep_count`` backups, delete the older ones with ``delete``, say what.

    A backup whose manifest is unreadable is never deleted and not counted (see
    :mod:`.retention`). A failure part way raises :class:`PruneStopped`, which lists
    the backups deleted before it.
    """
    plan = plan_prune([], require_keep_count(keep_count))
    deleted: list[Path] = []
    failed: Path | None = None
    with FOLDER_LOCK:
        try:
            plan = plan_prune(list_backups(folder), keep_count)
            for info in plan.delete:
                failed = info.path
                try:
                    delete(info.path)
                except QueueAdminError as error:
                    if error.kind is ErrorKind.NOT_FOUND and not info.path.exists():
                        continue  # another program deleted it meanwhile
                    if not info.path.exists():  # the backup went, a side file stayed
                        deleted.append(info.path)
                    raise
                deleted.append(info.path)
            failed = None
            leftovers = remove_leftovers(folder)
        except QueueAdminError as error:
            if not deleted and failed is None:
                raise
            raise prune_stopped(error, deleted, plan, failed) from error
    return PruneResult(deleted=deleted, kept=[info.path for info in plan.keep],
                       skipped=plan.skipped, leftovers=leftovers)


def remove_leftovers(folder: Path,
                     older_than_seconds: float = LEFTOVER_AGE_SECONDS) -> list[Path]:
    """Delete what interrupted backups left behind; return the paths removed.

    A crash or a full disk can leave a ``.partial`` file, or a manifest whose backup was
    never renamed into place. Neither looks like a backup (they are never listed), but
    they take space. Only such files older than ``older_than_seconds`` are removed, so a
    backup still running in another process keeps its partial file.
    """
    removed: list[Path] = []
    cutoff = time.time() - older_than_seconds
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return removed
    except OSError as error:
        raise translate_error(error, f"Listing the backups in '{folder}'",
                              QueueBackupError) from error
    for entry in entries:
        name = entry.name
        partial = name.startswith("queue_backup_") and name.endswith(PARTIAL_SUFFIX)
        orphan = (name.startswith("queue_backup_") and name.endswith(MANIFEST_SUFFIX)
                  and not entry.with_name(name[: -len(MANIFEST_SUFFIX)]
                                          + BACKUP_SUFFIX).exists())
        if not (partial or orphan):
            continue
        try:
            if entry.stat().st_mtime >= cutoff:
                continue
            retry_on_windows_lock(entry.unlink)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise translate_error(error, f"Removing the leftover '{entry}'",
                                  QueueBackupError) from error
        removed.append(entry)
    return removed


def delete_backup_file(path: Path, db_path: Path) -> None:
    """Delete one backup file and its manifest (and any -wal/-shm an older backup had).

    Only files named like backups are deleted, never ``db_path`` (the live database).
    """
    action = f"Deleting the backup '{path}'"
    if not is_backup_file_name(path.name):
        raise QueueBackupError(f"{action} refused: only files named queue_backup_*.db are "
                               "backups; choose a backup file.", ErrorKind.INVALID)
    if path.exists() and db_path.exists() and path.resolve() == db_path.resolve():
        raise QueueBackupError(f"{action} refused: it is the live database; choose a "
                               "backup file.", ErrorKind.INVALID)
    require_existing_file(path, action, QueueBackupError)
    with FOLDER_LOCK:
        try:
            retry_on_windows_lock(path.unlink)
            for extra in (manifest_path_for(path), Path(f"{path}-wal"), Path(f"{path}-shm")):
                if extra.exists():
                    retry_on_windows_lock(extra.unlink)
        except OSError as error:
            raise translate_error(error, action, QueueBackupError) from error
