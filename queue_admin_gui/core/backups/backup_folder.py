"""A backup folder on disk: listing it, pruning it, deleting from it, clearing leftovers.

:class:`~.backup_store.BackupStore` creates and checks backups and delegates the folder's
housekeeping here. Deciding what pruning keeps is :mod:`.retention` (no files touched); this
module carries it out, one deletion at a time per process, and never deletes a file that is
not named like a backup, nor the live database.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import (
    ErrorKind,
    QueueAdminError,
    QueueBackupError,
    classify_os_error,
    translate_error,
)
from ..files.db_files import require_existing_file, shm_path, wal_path
from ..files.durable import retry_on_windows_lock
from .manifest import (
    BACKUP_SUFFIX,
    MANIFEST_SUFFIX,
    PARTIAL_SUFFIX,
    BackupInfo,
    is_backup_file_name,
    manifest_path_for,
)
from .partial_claims import is_claimed
from .retention import PruneResult, plan_prune, prune_stopped, require_keep_count

#: Deletions in backup folders in this process go one at a time.
FOLDER_LOCK = threading.RLock()
#: A leftover file written to this recently is left alone, whatever its claim says: it may be
#: a moment between a backup's steps (or a manifest a prune is about to delete).
CLAIM_GRACE_SECONDS = 600
#: Where a partial file's claim cannot be asked, it must be this old to count as a leftover.
LEFTOVER_AGE_SECONDS = 6 * 3600
#: The files an interrupted backup can leave: its partial file, SQLite's side files of it,
#: the manifest and the manifest's temporary file; ``stem`` is the backup's name without .db.
_LEFTOVER_NAME = re.compile(r"^(?P<stem>queue_backup_.+?)"
                            r"(?P<ending>\.db\.partial(?:-journal|-wal|-shm)?"
                            r"|\.manifest\.json(?:\.tmp)?)$")


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


@dataclass
class Leftovers:
    """What interrupted runs left in a backup folder; nothing in it is a backup."""

    #: ``.partial`` files (and their ``-journal``/``-wal``/``-shm`` and manifest ``.tmp``
    #: files) that no running backup is writing.
    partials: list[Path] = field(default_factory=list)
    #: Manifests whose backup is gone (a prune or a deletion stopped between the two files).
    orphan_manifests: list[Path] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """Every leftover, partial files first."""
        return [*self.partials, *self.orphan_manifests]


def find_leftovers(folder: Path, grace_seconds: float = CLAIM_GRACE_SECONDS, *,
                   deleting: bool = False) -> Leftovers:
    """The leftovers of interrupted backups, restores and prunes in ``folder`` (reads only).

    A ``.partial`` file is a leftover when no live process holds its claim (see
    :mod:`.partial_claims`) and it was not written for ``grace_seconds``; where claims
    cannot be asked (Windows, a file system without locks) it must be
    :data:`LEFTOVER_AGE_SECONDS` old. On Windows, ``deleting`` lets the deletion ask: a
    running backup holds its partial file open, so deleting it fails. Only regular files
    named as this tool names them count.
    """
    found = Leftovers()
    deletion_asks = deleting and sys.platform == "win32"
    now = time.time()
    try:
        entries = sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return found
    except OSError as error:
        raise translate_error(error, f"Listing the backups in '{folder}'",
                              QueueBackupError) from error
    names = {entry.name for entry in entries}
    for entry in entries:  # sorted: a partial file comes before its side files and manifest
        match = _LEFTOVER_NAME.match(entry.name)
        if match is None:
            continue
        stem = match["stem"]
        try:
            status = entry.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(status.st_mode) or now - status.st_mtime < grace_seconds:
            continue
        partial = stem + BACKUP_SUFFIX + PARTIAL_SUFFIX
        if entry.name == partial:
            claimed = is_claimed(entry)
            if claimed or (claimed is None and not deletion_asks
                           and now - status.st_mtime < LEFTOVER_AGE_SECONDS):
                continue
            found.partials.append(entry)
            continue
        partial_gone = partial not in names or folder / partial in found.partials
        if match["ending"] == MANIFEST_SUFFIX:
            if partial_gone and not (folder / (stem + BACKUP_SUFFIX)).exists():
                found.orphan_manifests.append(entry)
        elif partial_gone:
            found.partials.append(entry)  # a side file of a partial that is gone or stale
    return found


def remove_leftovers(folder: Path, grace_seconds: float = CLAIM_GRACE_SECONDS, *,
                     orphan_manifests: bool = True) -> list[Path]:
    """Delete the leftovers :func:`find_leftovers` names; return the paths removed.

    A file that cannot be deleted (on Windows: one a running backup still holds open) is
    left where it is; it is not an error. ``orphan_manifests=False`` leaves those for a
    prune.
    """
    removed: list[Path] = []
    with FOLDER_LOCK:
        found = find_leftovers(folder, grace_seconds, deleting=True)
        doomed = found.paths if orphan_manifests else found.partials
        for entry in doomed:
            try:
                retry_on_windows_lock(entry.unlink)
            except FileNotFoundError:
                continue
            except OSError:  # held open by a running backup (Windows), or not ours to delete
                continue
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
            for extra in (manifest_path_for(path), wal_path(path), shm_path(path)):
                if extra.exists():
                    retry_on_windows_lock(extra.unlink)
        except OSError as error:
            raise translate_error(error, action, QueueBackupError) from error
