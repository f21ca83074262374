"""The steps of checking a backup and restoring it, each callable on its own.

The CLI runs them in one go through :func:`.execute.execute_restore`; the restore wizard
runs them one page at a time: :func:`check_backup_file` (is the backup good?),
:func:`inspect_target` (what is at the destination?), :func:`move_aside` (a damaged
destination is renamed, never deleted) and :func:`write_into` (the backup is written into
the destination through SQLite's backup API, in one transaction, so other connections see
the old database or the new one, never a mix, and a failure or cancel changes nothing).
"""

from __future__ import annotations

import contextlib
import enum
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..backups.backup_store import DEFAULT_PAGES_PER_STEP
from ..database import (
    BUSY_TIMEOUT_MS,
    check_queue_schema,
    closing_connection,
    connect,
    open_read_only,
)
from ..errors import (
    ErrorKind,
    OperationCancelled,
    QueueAdminError,
    QueueBackupError,
    translate_error,
)
from ..files.db_files import shm_path
from ..files.durable import retry_on_windows_lock
from ..files.file_names import aside_name
from ..files.side_files import JOURNAL_SUFFIX, SIDE_FILE_SUFFIXES, WAL_SUFFIX, side_file
from ..progress import CancelCheck, ProgressCallback, interruptible, is_cancelled, report
from ..trust.untrusted import open_backup_file

__all__ = [
    "RestoreResult",
    "TargetInspection",
    "TargetState",
    "inspect_target",
    "move_aside",
    "write_into",
]

STAGE_INSPECT = "Checking the current database"
STAGE_WRITE = "Writing the backup into the database"
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
#: Called once while a restore holds the live write lock, with the source connection.
LockedHook = Callable[[sqlite3.Connection], None]


@dataclass
class RestoreResult:
    """What a restore did: from which backup, into which file, and what it set aside."""

    restored_from: Path
    target: Path
    safety_backup: Path | None
    seconds: float
    moved_aside: list[Path] = field(default_factory=list)


class TargetState(enum.Enum):
    """What lies at the path a backup is about to be restored into."""

    MISSING = "missing"
    EMPTY = "empty"
    HEALTHY = "healthy"
    #: Opens and its schema reads, but SQLite's check finds damage: written into in place.
    DAMAGED = "damaged"
    #: Cannot be opened or its schema cannot be read: moved aside whole.
    CORRUPT = "corrupt"
    NOT_A_QUEUE = "not_a_queue"


@dataclass
class TargetInspection:
    """The destination of a restore as found: its state and, when unhealthy, why."""

    path: Path
    state: TargetState
    problems: list[str] = field(default_factory=list)
    journal_mode: str | None = None

    @property
    def needs_moving_aside(self) -> bool:
        """True when the file must be renamed out of the way before the restore."""
        return self.state is TargetState.CORRUPT


def _locked_error(path: Path) -> QueueBackupError:
    return QueueBackupError(
        f"Restoring into '{path}' failed: the database is locked by another program; "
        "close it or retry.",
        ErrorKind.LOCKED,
    )


def inspect_target(path: str | Path, *, check: bool = True,
                   progress: ProgressCallback | None = None,
                   cancelled: CancelCheck | None = None,
                   busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> TargetInspection:
    """Find out whether ``path`` is missing, empty, a healthy queue, damaged, or something else.

    With ``check`` the whole file is read (``PRAGMA quick_check``) to find damage; without
    it only opening and reading the schema are tried. Nothing is changed. A database locked
    by another program for longer than the busy timeout raises a LOCKED error.
    """
    path = Path(path)
    if not path.exists():
        return TargetInspection(path, TargetState.MISSING)
    report(progress, 0, 0, STAGE_INSPECT)
    try:
        connection = open_read_only(path, busy_timeout_ms=busy_timeout_ms,
                                    error_class=QueueBackupError)
    except QueueAdminError as error:
        if error.kind in (ErrorKind.CORRUPT, ErrorKind.NOT_A_DATABASE):
            return TargetInspection(path, TargetState.CORRUPT, [error.message])
        if error.kind is ErrorKind.LOCKED:
            raise _locked_error(path) from error
        raise
    try:
        with interruptible(connection, cancelled):
            mode = str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            tables = connection.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if tables == 0:
                return TargetInspection(path, TargetState.EMPTY, journal_mode=mode)
            missing = check_queue_schema(connection)
            if check and not missing:
                rows = _quick_check(connection, path)
                if rows != ["ok"]:
                    return TargetInspection(path, TargetState.DAMAGED, rows, mode)
    except sqlite3.Error as error:
        translated = translate_error(error, f"Checking '{path}'", QueueBackupError)
        if translated.kind in (ErrorKind.CORRUPT, ErrorKind.NOT_A_DATABASE):
            return TargetInspection(path, TargetState.CORRUPT, [translated.message])
        if translated.kind is ErrorKind.LOCKED:
            raise _locked_error(path) from error
        raise translated from error
    finally:
        connection.close()
    if missing:
        return TargetInspection(path, TargetState.NOT_A_QUEUE, missing, mode)
    return TargetInspection(path, TargetState.HEALTHY, journal_mode=mode)


#: The queue's tables: a file holding any of them is a (damaged) queue, not another database.
QUEUE_TABLES = ("task_queue", "workers", "task_logs")


def holds_queue_tables(path: str | Path) -> bool:
    """True when ``path`` opens and its schema names at least one of the queue's tables."""
    try:
        with closing_connection(open_read_only(Path(path))) as connection:
            names = {str(row[0]) for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except (QueueAdminError, sqlite3.Error):
        return False
    return bool(names & set(QUEUE_TABLES))


def _quick_check(connection: sqlite3.Connection, path: Path) -> list[str]:
    """SQLite's quick check as lines; damage that stops it is one line saying why.

    The schema has already been read, so the file opens: damage found here is damage a
    restore can write over in place.
    """
    try:
        return [str(row[0]) for row in connection.execute("PRAGMA quick_check(20)")]
    except sqlite3.Error as error:
        kind = translate_error(error, f"Checking '{path}'", QueueBackupError).kind
        if kind not in (ErrorKind.CORRUPT, ErrorKind.NOT_A_DATABASE):
            raise
        return [str(error)]


def move_aside(path: str | Path, when: str | None = None) -> list[Path]:
    """Rename a damaged database and its -wal/-journal/-shm out of the way; never delete them.

    ``queue.db`` becomes ``queue.db.corrupt-<YYYYMMDD_HHMMSS>`` (shortened when a long name
    would not fit the file system's limit) and its side files
    ``queue.db.corrupt-<stamp>-wal`` and so on, so SQLite still pairs them if someone opens
    the set-aside copy to rescue data. Side files are moved even when the database itself
    is gone, so a stale -wal can never be applied to a restored file. If one rename fails
    the others are moved back and the error is raised. Returns the new paths.
    """
    path = Path(path)
    stamp = when or time.strftime("%Y%m%d_%H%M%S")
    first = base = aside_name(path.name, f"corrupt-{stamp}")
    sequence = 1
    while any((path.with_name(base + suffix)).exists() for suffix in ("", *SIDE_FILE_SUFFIXES)):
        sequence += 1
        base = f"{first}_{sequence}"
    moved: list[tuple[Path, Path]] = []
    try:
        for suffix in ("", *SIDE_FILE_SUFFIXES):
            source = path.with_name(path.name + suffix)
            if not source.exists():
                continue
            destination = path.with_name(base + suffix)
            retry_on_windows_lock(lambda s=source, d=destination: os.rename(s, d))
            moved.append((source, destination))
    except OSError as error:
        for source, destination in reversed(moved):
            with contextlib.suppress(OSError):
                os.rename(destination, source)
        translated = translate_error(error, f"Moving the damaged '{path}' aside", QueueBackupError)
        if translated.kind is ErrorKind.PERMISSION and os.name == "nt":
            raise _locked_error(path) from error
        raise translated from error
    return [destination for _, destination in moved]


def write_into(backup_path: str | Path, target: str | Path,
               progress: ProgressCallback | None = None,
               cancelled: CancelCheck | None = None, *,
               pages_per_step: int = DEFAULT_PAGES_PER_STEP,
               busy_timeout_ms: int = BUSY_TIMEOUT_MS,
               while_locked: LockedHook | None = None,
               before_last_step: Callable[[], None] | None = None,
               shrink_wal: bool = True) -> int:
    """Write a backup into ``target`` through SQLite's backup API; returns the pages written.

    The destination stays in one write transaction for every step, so other connections
    see the old database or the new one, and a failure, a cancel or a crash rolls back.
    Cancel is honoured until the last step (which commits). A destination locked longer
    than the busy timeout raises a LOCKED error. A missing or empty ``target`` is filled and
    put in WAL mode like every queue file; a WAL destination stays in WAL mode. Callers verify
    the backup and inspect the target first; this step only writes.

    ``while_locked(source)`` is called once, after the first step has taken the
    destination's write lock and before anything commits: no other connection can commit
    to the destination while it runs. It gets the connection the copy reads from, opened
    read-write (so ``backup_path`` must then be a private copy): changes made through it
    reach the destination with the rest of the pages.

    ``before_last_step()`` is called once before the step that commits; raising there rolls
    the whole write back (nothing is changed).

    With ``shrink_wal`` false, an existing WAL database's log is left as the commit wrote it
    (the caller copies it into the file with :class:`LogSettler`, beside its other work);
    otherwise a TRUNCATE checkpoint follows the commit.
    """
    backup_path, target = Path(backup_path), Path(target)
    action = f"Restoring '{target}' from '{backup_path}'"
    created = not target.exists()
    fresh = created or target.stat().st_size == 0
    if created and any(target.with_name(target.name + s).exists() for s in SIDE_FILE_SUFFIXES):
        raise QueueBackupError(
            f"{action} refused: leftover -wal or -journal files of a missing database lie "
            "beside it; move them aside first.",
            ErrorKind.INVALID,
        )
    total_pages = 0
    try:
        with _open_source(backup_path, writable=while_locked is not None) as source:
            destination = connect(target, busy_timeout_ms=busy_timeout_ms, create=created)
            try:
                total_pages = _copy_into(source, destination, action, progress, cancelled,
                                         pages_per_step, busy_timeout_ms, while_locked,
                                         before_last_step)
                if fresh:
                    destination.execute("PRAGMA journal_mode=WAL")
                elif shrink_wal:
                    _shrink_wal(destination)
            finally:
                destination.close()
    except BaseException as error:
        if created:
            _remove_if_empty(target)
        if isinstance(error, sqlite3.Error | OSError):
            translated = translate_error(error, action, QueueBackupError)
            if translated.kind is ErrorKind.LOCKED:
                raise _locked_error(target) from error
            raise translated from error
        raise
    return total_pages


#: How long the checkpoint after a restore waits for readers before giving up on the reset.
SHRINK_WAIT_MS = 500


def _shrink_wal(destination: sqlite3.Connection) -> None:
    """Copy the restored pages into the file and reset the WAL, if nobody is reading.

    The restore itself wrote the whole database through the WAL; left alone it would stay
    as large as the database until the next TRUNCATE checkpoint. Readers still open keep
    it (best effort, briefly: the restore has already committed).
    """
    with contextlib.suppress(sqlite3.Error):
        destination.execute(f"PRAGMA busy_timeout={SHRINK_WAIT_MS}")
        destination.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


class LogSettler:
    """Copies a restore's pages from the WAL into the file after the commit, off the lock.

    Opened before the write: while it is open, the restore's own connection is never the
    last one, so closing that one never runs the checkpoint (which would hold the
    restore up). :meth:`copy_into_file` then runs a PASSIVE checkpoint, which never holds
    writers off, beside the proof and the safety copy's check; :meth:`close` asks for the
    TRUNCATE checkpoint that empties the log (all but nothing left to copy by then, and
    waiting at most :data:`SHRINK_WAIT_MS` for readers), then closes.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection

    @classmethod
    def open(cls, target: Path, busy_timeout_ms: int) -> LogSettler | None:
        """A settler for ``target``, or None when SQLite will not open it.

        Without one, the write empties the log itself after the commit.
        """
        try:
            return cls(connect(target, busy_timeout_ms=busy_timeout_ms))
        except QueueAdminError:
            return None

    def copy_into_file(self) -> None:
        """Copy every frame no reader still needs into the file (best effort)."""
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self, *, shrink: bool = True) -> None:
        """Empty the log if nobody reads it (``shrink``), then close (best effort)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if shrink:
                _shrink_wal(connection)
        finally:
            with contextlib.suppress(sqlite3.Error):
                connection.close()


@contextlib.contextmanager
def _open_source(path: Path, *, writable: bool) -> Iterator[sqlite3.Connection]:
    """The backup read-only as an untrusted file, or a private staging copy read-write."""
    if not writable:
        with open_backup_file(path) as connection:
            yield connection
        return
    with closing_connection(connect(path, create=False)) as connection:
        yield connection


def _copy_into(source: sqlite3.Connection, destination: sqlite3.Connection, action: str,
               progress: ProgressCallback | None, cancelled: CancelCheck | None,
               pages_per_step: int, busy_timeout_ms: int,
               while_locked: LockedHook | None = None,
               before_last_step: Callable[[], None] | None = None) -> int:
    source_page = int(source.execute("PRAGMA page_size").fetchone()[0])
    target_page = int(destination.execute("PRAGMA page_size").fetchone()[0])
    target_mode = str(destination.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if target_mode == "wal" and source_page != target_page:
        raise QueueBackupError(
            f"{action} refused: the backup's page size ({source_page} bytes) differs from the "
            f"database's ({target_page} bytes), which a WAL database cannot change; restore "
            "into a new file instead.",
            ErrorKind.INVALID,
        )
    source_pages = int(source.execute("PRAGMA page_count").fetchone()[0])
    if while_locked is not None:
        if source_pages < 2:
            raise QueueBackupError(f"{action} refused: the backup holds no database pages to "
                                   "restore; choose another backup.", ErrorKind.INVALID)
        # The hook must run between two steps, so the first step never copies everything.
        pages_per_step = min(pages_per_step, source_pages - 1)
        if target_mode != "wal":
            # Outside WAL mode the hook reads the file itself: the first step must keep every
            # page it copied in memory, never spilling one into the file.
            pages_per_step = min(pages_per_step, _unspilled_pages(destination, target_page))
    waiting_since = time.monotonic()
    pages = 0
    hook_pending = while_locked is not None
    last_pending = before_last_step is not None

    def on_step(status: int, remaining: int, total: int) -> None:
        nonlocal waiting_since, pages, hook_pending, last_pending
        if status in _BUSY_CODES:
            if time.monotonic() - waiting_since >= busy_timeout_ms / 1000:
                raise QueueBackupError(f"{action} failed: the database is locked by another "
                                       "program; close it or retry.", ErrorKind.LOCKED)
            return
        waiting_since = time.monotonic()
        pages = total
        if hook_pending and while_locked is not None and remaining > 0:
            hook_pending = False
            while_locked(source)
        if last_pending and before_last_step is not None and 0 < remaining <= pages_per_step:
            last_pending = False
            before_last_step()
        report(progress, total - remaining, total, STAGE_WRITE)
        if remaining > 0 and is_cancelled(cancelled):
            raise OperationCancelled(f"{action} was cancelled; nothing was changed.")

    if while_locked is None:
        source.execute("BEGIN")
    try:
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        source.backup(destination, pages=max(1, pages_per_step), progress=on_step, sleep=0.05)
    except BaseException:
        # Nothing reached the destination: what the hook changed in the staged copy goes too,
        # so the copy is the backup again for a second attempt.
        if source.in_transaction:
            source.execute("ROLLBACK")
        raise
    finally:
        if source.in_transaction:
            source.execute("COMMIT")
    if hook_pending:
        raise QueueBackupError(f"{action} failed: the write lock was never held between two "
                               "steps; nothing was left to guard.", ErrorKind.BUG)
    return pages


def _unspilled_pages(connection: sqlite3.Connection, page_size: int) -> int:
    """Pages a step may change without SQLite spilling any into the file: a quarter of its cache."""
    cache = int(connection.execute("PRAGMA cache_size").fetchone()[0])
    pages = cache if cache > 0 else (-cache * 1024) // max(1, page_size)
    return max(1, pages // 4)


def _remove_if_empty(path: Path) -> None:
    """Remove a database file this restore created when nothing was committed into it."""
    with contextlib.suppress(OSError):
        if path.stat().st_size == 0 and not any(
            side_file(path, s).exists() for s in (WAL_SUFFIX, JOURNAL_SUFFIX)
        ):
            path.unlink()
            with contextlib.suppress(OSError):
                shm_path(path).unlink()

