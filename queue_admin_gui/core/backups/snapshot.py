"""The consistent copy at the heart of a backup: one snapshot into one self-contained file.

The source is read inside one read transaction held for the whole copy, so writers go on
in the WAL and the copy never restarts; the copy goes through SQLite's backup API in steps
so progress shows, and becomes a rollback-journal file with no -wal beside it. Helpers here
check, flush and hash the result (side by side) and clean up after a failure.

A backup can have SQLite's full check run on the source's snapshot while the copy is made,
on the second core, instead of reading the closed copy again afterwards. The checker is a
second read-only connection proven to read the very state the copy reads: it notes the
source's ``PRAGMA data_version`` (which changes whenever another connection commits), the
copy's read transaction begins, the checker's begins, and the checker reads
``data_version`` again; equal values prove that no commit fell between the two, so both
transactions hold one snapshot. Otherwise both are ended and tried again (before anything is
copied); when no quiet moment comes, the closed copy is checked as before. The copy is the
backup API's page-for-page image of that snapshot; its size, page count and free-list
count are compared with the snapshot's, and its SHA-256 is recorded from the closed file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..database import check_queue_schema, connect, open_read_only, task_counts
from ..errors import (
    ErrorKind,
    QueueAdminError,
    QueueBackupError,
    QueueDatabaseError,
    translate_error,
)
from ..files.db_files import sqlite_uri
from ..files.durable import file_sha256, fsync_file, retry_on_windows_lock
from ..files.side_files import JOURNAL_SUFFIX, SHM_SUFFIX, WAL_SUFFIX, side_files
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from ..trust.untrusted import (
    FULL_CHECK,
    CheckInBackground,
    ContentCheck,
    check_beside,
    open_backup_file,
    read_header,
)
from .partial_claims import release as release_claim

STAGE_COPY = "Copying pages"
STAGE_CHECK = "Checking the copy"
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
#: Tries at beginning the copy's and the checker's transactions with no commit between them.
PIN_TRIES = 50
_FIRST_READ = "SELECT count(*) FROM sqlite_master"


class SourceCheck:
    """The full check of the source's snapshot, running on its own connection during a copy."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.freelist_count = int(connection.execute("PRAGMA freelist_count").fetchone()[0])
        self.running = CheckInBackground(connection, FULL_CHECK)

    def wait(self, cancelled: CancelCheck | None, action: str) -> ContentCheck:
        """The check's outcome; the checker's connection is closed either way."""
        try:
            return self.running.wait(cancelled, action)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the check if it still runs and close its connection."""
        self.running.stop()
        with contextlib.suppress(sqlite3.Error):
            self.connection.close()


@dataclass
class Snapshot:
    """What the copy found, recorded in the manifest (task counts are read from the copy)."""

    page_count: int
    page_size: int
    task_counts: dict[str, int] | None
    restarts: int
    #: The full check of the copied snapshot, run on the source beside the copy (None: the
    #: closed copy is checked instead).
    source_check: SourceCheck | None = None


def begin_pinned(source: sqlite3.Connection, source_path: Path,
                  busy_timeout_ms: int) -> SourceCheck | None:
    """Begin the copy's read transaction, with a checker pinned to its snapshot when possible.

    See the module's docstring for why equal ``data_version`` readings prove one snapshot.
    Returns the running check, or None (the copy's transaction begun alone).
    """
    try:
        checker = open_read_only(source_path, busy_timeout_ms=busy_timeout_ms)
    except QueueAdminError:
        checker = None
    if checker is not None:
        try:
            for _ in range(PIN_TRIES):
                before = checker.execute("PRAGMA data_version").fetchone()[0]
                source.execute("BEGIN")
                source.execute(_FIRST_READ).fetchone()
                checker.execute("BEGIN")
                checker.execute(_FIRST_READ).fetchone()
                if checker.execute("PRAGMA data_version").fetchone()[0] == before:
                    return SourceCheck(checker)
                checker.execute("ROLLBACK")
                source.execute("ROLLBACK")
        except BaseException:
            checker.close()
            if source.in_transaction:
                source.execute("ROLLBACK")
            raise
        checker.close()
    source.execute("BEGIN")
    source.execute(_FIRST_READ).fetchone()
    return None


def copy_snapshot(source_path: Path, partial: Path, action: str,
                   progress: ProgressCallback | None, cancelled: CancelCheck | None,
                   pages_per_step: int, busy_timeout_ms: int, *,
                   unlocked: bool = False, check_source: bool = False) -> Snapshot:
    """Copy the source into ``partial`` from one read transaction held for the whole copy.

    ``unlocked`` reads the source without taking a lock (SQLite's ``immutable``): only for
    a caller that itself holds the source's exclusive lock and has written nothing to it
    yet (a restore outside WAL mode), so the file holds exactly its last commit.

    ``check_source``: run SQLite's full check on the same snapshot beside the copy (see the
    module's docstring); the returned snapshot then carries the running check.
    """
    try:
        source = (open_read_only(source_path, busy_timeout_ms=busy_timeout_ms, immutable=True)
                  if unlocked else connect(source_path, busy_timeout_ms=busy_timeout_ms))
    except QueueDatabaseError as error:
        # Callers of the backup API catch QueueBackupError; the sentence stays the same.
        raise QueueBackupError(error.message, error.kind) from error
    destination = None
    source_check = None
    try:
        if check_source:
            source_check = begin_pinned(source, source_path, busy_timeout_ms)
        else:
            source.execute("BEGIN")
            source.execute(_FIRST_READ).fetchone()
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
        free = int(destination.execute("PRAGMA freelist_count").fetchone()[0])
    except BaseException:
        if source_check is not None:
            source_check.close()
        raise
    finally:
        if destination is not None:
            destination.close()
        source.close()
    problem = (f"the copy has {pages} pages but the snapshot had {state['total']}"
               if pages != state["total"] else
               f"the copy has {free} free pages but the snapshot had "
               f"{source_check.freelist_count}"
               if source_check is not None and free != source_check.freelist_count else None)
    if problem is not None:
        if source_check is not None:
            source_check.close()
        raise QueueBackupError(f"{action} failed: {problem}; retry.", ErrorKind.IO)
    return Snapshot(page_count=pages, page_size=page_size, task_counts=None,
                     restarts=int(state["restarts"] or 0), source_check=source_check)


def seal_copy(partial: Path, snapshot: Snapshot, action: str,
              progress: ProgressCallback | None, cancelled: CancelCheck | None) -> str:
    """Check, flush and hash the closed partial file and count its tasks; return its SHA-256.

    SQLite's full ``integrity_check`` (every index agrees with its table) either already
    runs on the copied snapshot beside the copy (:attr:`Snapshot.source_check`), or runs
    now on the closed copy on a helper thread; meanwhile this thread computes the SHA-256
    and the task counts while one more thread makes the one ``fsync`` (hashlib, SQLite and
    the flush all release the GIL). All
    are done before the caller renames. A snapshot that fails the check means the source is
    damaged, which raises a CORRUPT error advising REINDEX or a restore, so no damaged copy
    is ever called verified.
    """
    try:
        check_copy(partial, snapshot, action, progress, cancelled)
    except BaseException:
        if snapshot.source_check is not None:
            snapshot.source_check.close()
        raise

    def hash_flush_and_count() -> str:
        # The flush waits on the disk, the hash and the counts on the CPU: side by side.
        with ThreadPoolExecutor(1, thread_name_prefix="queue-admin-flush") as flusher:
            flushed = flusher.submit(fsync_file, partial)
            digest = file_sha256(partial, progress, cancelled, action)
            snapshot.task_counts = _counts_in(partial)
            flushed.result()
        return digest

    if snapshot.source_check is not None:
        try:
            digest = hash_flush_and_count()
        except BaseException:
            snapshot.source_check.close()
            raise
        content = snapshot.source_check.wait(cancelled, action)
    else:
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
    elif any(side.exists() for side in side_files(partial, (WAL_SUFFIX, JOURNAL_SUFFIX)).values()):
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
    candidates += side_files(partial, (JOURNAL_SUFFIX, WAL_SUFFIX, SHM_SUFFIX)).values()
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
