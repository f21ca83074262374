"""The consistent copy at the heart of a backup: one snapshot into one self-contained file.

The source is read inside one read transaction held for the whole copy, so writers go on
in the WAL and the copy never restarts; the copy goes through SQLite's backup API in steps
so progress shows, and becomes a rollback-journal file with no -wal beside it. Helpers here
check, flush and hash the result (side by side) and clean up after a failure.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..database import check_queue_schema, connect, open_read_only, task_counts
from ..errors import ErrorKind, QueueBackupError, QueueDatabaseError, translate_error
from ..files.db_files import sqlite_uri
from ..files.durable import file_sha256, fsync_file, retry_on_windows_lock
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from ..trust.untrusted import FULL_CHECK, check_beside, open_backup_file, read_header
from .partial_claims import release as release_claim

STAGE_COPY = "Copying pages"
STAGE_CHECK = "Checking the copy"
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


@dataclass
class Snapshot:
    """What the copy found, recorded in the manifest (task counts are read from the copy)."""

    page_count: int
    page_size: int
    task_counts: dict[str, int] | None
    restarts: int


def copy_snapshot(source_path: Path, partial: Path, action: str,
                   progress: ProgressCallback | None, cancelled: CancelCheck | None,
                   pages_per_step: int, busy_timeout_ms: int, *,
                   unlocked: bool = False) -> Snapshot:
    """Copy the source into ``partial`` from one read transaction held for the whole copy.

    ``unlocked`` reads the source without taking a lock (SQLite's ``immutable``): only for
    a caller that itself holds the source's exclusive lock and has written nothing to it
    yet (a restore outside WAL mode), so the file holds exactly its last commit.
    """
    try:
        source = (open_read_only(source_path, busy_timeout_ms=busy_timeout_ms, immutable=True)
                  if unlocked else connect(source_path, busy_timeout_ms=busy_timeout_ms))
    except QueueDatabaseError as error:
        # Callers of the backup API catch QueueBackupError; the sentence stays the same.
        raise QueueBackupError(error.message, error.kind) from error
    destination = None
    try:
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        page_size = int(source.execute("PRAGMA page_size").fetchone()[0])
        destination = sqlite3.connect(sqlite_uri(partial, mode="rw"), uri=True,
                                      isolation_level=None, check_same_thread=False)
        destination.execute("PRAGMA synchronous=OFF")
        destination.execute("PRAGMA journal_mode=OFF")
        state = {"remaining": None, "restarts": 0, "total": 0, "waiting": time.monotonic()}

        def on_step(status: int, remaining: int, total: int) -> None:
            if status in _BUSY_CODES:
                if time.monotonic() - state["waiting"] >= busy_timeout_ms / 1000:
                    raise QueueBackupError(f"{action} failed: the database is locked by another "
                                           "program; close it or retry.", ErrorKind.LOCKED)
                return
            state["waiting"] = time.monotonic()
            if state["remaining"] is not None and remaining > state["remaining"]:
                state["restarts"] += 1
            state["remaining"], state["total"] = remaining, total
            report(progress, total - remaining, total, STAGE_COPY)
            raise_if_cancelled(cancelled, action)

        source.backup(destination, pages=max(1, pages_per_step), progress=on_step, sleep=0.05)
        source.execute("COMMIT")
        mode = str(destination.execute("PRAGMA journal_mode=DELETE").fetchone()[0]).lower()
        if mode != "delete":
            raise QueueBackupError(f"{action} failed: the copy could not be made a single "
                                   f"self-contained file (journal mode stayed {mode}); retry.",
                                   ErrorKind.IO)
        pages = int(destination.execute("PRAGMA page_count").fetchone()[0])
    finally:
        if destination is not None:
            destination.close()
        source.close()
    if pages != state["total"]:
        raise QueueBackupError(f"{action} failed: the copy has {pages} pages but the snapshot "
                               f"had {state['total']}; retry.", ErrorKind.IO)
    return Snapshot(page_count=pages, page_size=page_size, task_counts=None,
                     restarts=int(state["restarts"] or 0))


def seal_copy(partial: Path, snapshot: Snapshot, action: str,
              progress: ProgressCallback | None, cancelled: CancelCheck | None) -> str:
    """Check, flush and hash the closed partial file and count its tasks; return its SHA-256.

    The file is read twice more after the copy: SQLite's full ``integrity_check`` on a
    helper thread, and the SHA-256 on this thread, followed by the one ``fsync``, side by
    side (hashlib and SQLite both release the GIL). Both are done before the caller renames.
    The full check (every index agrees with its table) runs on the closed copy, never on the
    live file: a copy that fails it means the source is damaged, which raises a CORRUPT
    error advising REINDEX or a restore, so no damaged copy is ever called verified.
    """
    check_copy(partial, snapshot, action, progress, cancelled)

    def hash_flush_and_count() -> str:
        digest = file_sha256(partial, progress, cancelled, action)
        fsync_file(partial)
        snapshot.task_counts = _counts_in(partial)
        return digest

    digest, content = check_beside(partial, FULL_CHECK, hash_flush_and_count, cancelled,
                                   action)
    if content.error is not None:
        raise content.error
    if content.rows != ["ok"]:
        raise QueueBackupError(f"{action} failed: the copy did not pass SQLite's full "
                               f"integrity check ({'; '.join(content.rows)}), so the database "
                               "itself is damaged and no backup was kept; if only indexes are "
                               "named (an index disagrees with its table), run REINDEX on the "
                               "database, otherwise restore it from a backup.",
                               ErrorKind.CORRUPT)
    return digest


def _counts_in(copy: Path) -> dict[str, int] | None:
    """Task counts by status in the copy (None when it is not a queue file).

    The copy holds exactly the snapshot, so these are the snapshot's counts; counting here
    rather than in the read transaction keeps the scan off the source while writers write.
    """
    with open_backup_file(copy) as connection:
        return None if check_queue_schema(connection) else task_counts(connection)


def check_copy(partial: Path, snapshot: Snapshot, action: str,
                progress: ProgressCallback | None, cancelled: CancelCheck | None) -> None:
    """Make sure the closed partial file is whole and self-contained before it is trusted."""
    header = read_header(partial)
    size = partial.stat().st_size
    problem = None
    if header is None:
        problem = "it has no SQLite header"
    elif header.is_wal:
        problem = "it is still marked as a WAL file"
    elif size != snapshot.page_count * snapshot.page_size:
        problem = f"it has {size} bytes instead of {snapshot.page_count * snapshot.page_size}"
    elif Path(f"{partial}-wal").exists() or Path(f"{partial}-journal").exists():
        problem = "a journal file remained beside it"
    if problem is not None:
        raise QueueBackupError(f"{action} failed: the copy is not a whole backup ({problem}); "
                               "retry.", ErrorKind.IO)
    report(progress, 1, 1, STAGE_CHECK)
    raise_if_cancelled(cancelled, action)


def remove_partial(partial: Path, manifest_file: Path) -> None:
    """Remove everything a failed or cancelled backup wrote, so nothing looks like a backup."""
    release_claim(partial)
    candidates = [partial, manifest_file, manifest_file.with_name(manifest_file.name + ".tmp")]
    candidates += [Path(f"{partial}{suffix}") for suffix in ("-journal", "-wal", "-shm")]
    for leftover in candidates:
        with contextlib.suppress(OSError):
            retry_on_windows_lock(leftover.unlink)


def backup_failure(error: BaseException, action: str, partial: Path) -> BaseException:
    """Translate a failure, telling a full disk from other write errors.

    SQLite reports a write refused because the file may grow no further (a quota, a file
    size limit such as FAT32's 4 GB, or a disk that filled up) as a plain I/O error; trying
    to append a little to the partial file (deleted right after) tells which it was.
    """
    translated = translate_error(error, action, QueueBackupError)
    if translated.kind is not ErrorKind.IO or not isinstance(error, sqlite3.Error):
        return translated
    try:
        with open(partial, "ab") as handle:
            handle.write(b"\0" * 8192)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as probe_error:
        probed = translate_error(probe_error, action, QueueBackupError)
        if probed.kind is ErrorKind.DISK_FULL:
            probed.__cause__ = error
            return probed
    return translated
