"""Reading a file nobody vouches for: its header, a read-only connection, a bounded check.

A backup chosen from disk may have been made by anyone. It is opened immutable and
read-only (no lock, no -wal or -shm created beside it, nothing in it changed), and SQLite's
check of it runs on a helper thread whose connection the caller's thread can interrupt at
any moment: a cancel stops it within a poll, and a check that runs far longer than the
file's size explains (a schema crafted so that every row costs seconds, say) is stopped.

SQLite calls a progress handler only every few thousand virtual-machine steps, and one
step can evaluate an index expression that takes a long time; ``connection.interrupt()``
is seen at the next row instead, so the watchdog uses it rather than the handler alone.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..database import check_queue_schema, open_read_only
from ..errors import QueueBackupError
from ..files.db_files import SQLITE_HEADER
from ..progress import CANCEL_CHECK_STEPS, CancelCheck, is_cancelled, raise_if_cancelled
from .backup_sequence import Counters, read_counters
from .schema_meaning import SchemaMeaning, read_meaning

HEADER_BYTES = 100
MAX_LISTED_DAMAGE = 5
#: The two checks, written out in full (never assembled from input).
FULL_CHECK = f"PRAGMA integrity_check({MAX_LISTED_DAMAGE})"
QUICK_CHECK = f"PRAGMA quick_check({MAX_LISTED_DAMAGE})"
#: No page check now: the caller holds a sealed record (:mod:`.check_seal`) that this tool's
#: full check of these exact bytes passed; only the schema and counters are read.
SEALED_FULL_CHECK = "sealed earlier full check"
#: A check may always take this long, however small the file ...
CHECK_FLOOR_SECONDS = 15.0
#: ... plus this much per MB: a full check reads far faster than 0.5 MB/s even off a share.
CHECK_SECONDS_PER_MB = 2.0
#: How often the caller's thread looks at ``cancelled()`` and the clock while the check runs.
_POLL_SECONDS = 0.05
_SCHEMA_QUERY = "SELECT type, name, tbl_name, sql FROM sqlite_master"
_T = TypeVar("_T")


@dataclass(frozen=True)
class SQLiteHeader:
    """The fields of an SQLite file header that tell a whole file from a truncated one."""

    page_size: int
    write_version: int
    read_version: int
    page_count: int
    page_count_valid: bool

    @property
    def expected_size(self) -> int:
        """Bytes the file must have, by its header (0 when the header does not say)."""
        return self.page_size * self.page_count if self.page_count_valid else 0

    @property
    def is_wal(self) -> bool:
        """True when the file says it is in WAL mode (older backups may)."""
        return self.write_version == 2 or self.read_version == 2


def read_header(path: Path) -> SQLiteHeader | None:
    """Parse the first 100 bytes of an SQLite file; None when they are not an SQLite header."""
    with open(path, "rb") as handle:
        data = handle.read(HEADER_BYTES)
    if len(data) < HEADER_BYTES or not data.startswith(SQLITE_HEADER):
        return None
    raw_page_size = struct.unpack(">H", data[16:18])[0]
    page_size = 65536 if raw_page_size == 1 else raw_page_size
    change_counter, page_count = struct.unpack(">II", data[24:32])
    valid_for = struct.unpack(">I", data[92:96])[0]
    return SQLiteHeader(page_size=page_size, write_version=data[18], read_version=data[19],
                        page_count=page_count,
                        page_count_valid=page_count > 0 and change_counter == valid_for)


@contextlib.contextmanager
def open_backup_file(path: Path) -> Iterator[sqlite3.Connection]:
    """Open a backup for reading (untrusted: read-only, trusted_schema off) and close it after.

    The file is always opened immutable: SQLite then takes no lock, reads no journal and
    creates no -wal or -shm beside it, so nothing beside the file or in it is ever changed.
    What is read is exactly the file, which is what a backup is (the tool's own backups are
    one self-contained file; verification reports a -wal or -journal lying beside one).
    """
    connection = open_read_only(path, error_class=QueueBackupError, immutable=True)
    try:
        yield connection
    finally:
        connection.close()


def check_budget_seconds(size_bytes: int) -> float:
    """How long SQLite's check of a file of ``size_bytes`` may run before it is stopped."""
    return CHECK_FLOOR_SECONDS + CHECK_SECONDS_PER_MB * size_bytes / 1_000_000


@dataclass(frozen=True)
class SchemaObject:
    """One row of a file's ``sqlite_master``: what it is, its name, its table and its SQL.

    ``meaning`` is what SQLite made of it (see :mod:`.schema_meaning`); objects are compared
    by it, so that two spellings of one definition are one object.
    """

    type: str
    name: str
    table: str
    sql: str | None
    meaning: SchemaMeaning | None = None


def read_schema(connection: sqlite3.Connection) -> list[SchemaObject]:
    """Every table, index, view and trigger a database declares, with what each means."""
    rows = [(str(row[0]), str(row[1]), str(row[2]), None if row[3] is None else str(row[3]))
            for row in connection.execute(_SCHEMA_QUERY)]
    return [SchemaObject(kind, name, table, sql,
                         read_meaning(connection, kind, name, table, sql))
            for kind, name, table, sql in rows]


@dataclass
class ContentCheck:
    """What SQLite's check of a file found, or the error it met, or that it was stopped.

    ``stalled_after`` holds the seconds the check had run when it was stopped for running
    far longer than the file's size explains (None when it was not). ``counters`` are the
    file's id counters, or ``counters_error`` says why they could not be read.
    """

    rows: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    schema: list[SchemaObject] = field(default_factory=list)
    counters: Counters = field(default_factory=lambda: Counters([]))
    counters_error: str | None = None
    error: BaseException | None = None
    stalled_after: float | None = None


class _Watch:
    """The helper's connection, reachable from the caller's thread so it can be interrupted."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def attach(self, connection: sqlite3.Connection | None) -> None:
        with self._lock:
            self._connection = connection

    def halt(self) -> None:
        """Ask the check to stop, and interrupt the statement it runs (repeat until it ends)."""
        self.stop.set()
        with self._lock:
            if self._connection is not None:
                self._connection.interrupt()


def _run_check(path: Path, pragma: str, watch: _Watch, result: ContentCheck) -> None:
    """Run one check on its own read-only connection; every outcome lands in ``result``."""
    try:
        with open_backup_file(path) as connection:
            watch.attach(connection)
            try:
                connection.set_progress_handler(lambda: 1 if watch.stop.is_set() else 0,
                                                CANCEL_CHECK_STEPS)
                if watch.stop.is_set():
                    return
                result.rows = (["ok"] if pragma == SEALED_FULL_CHECK
                               else [str(row[0]) for row in connection.execute(pragma)])
                result.missing = check_queue_schema(connection)
                result.schema = read_schema(connection)
                try:
                    result.counters = read_counters(connection)
                except sqlite3.DatabaseError as error:
                    if watch.stop.is_set():
                        raise
                    result.counters_error = str(error)
            finally:
                watch.attach(None)
    except BaseException as error:  # noqa: BLE001 - handed to the caller's thread as is
        result.error = error


class CheckInBackground:
    """SQLite's ``pragma`` on a connection the caller opened, run on a helper thread.

    The caller keeps the connection (and the read transaction it holds) and closes it after
    :meth:`wait` or :meth:`stop`; meanwhile the caller's thread is free for other work.
    Only the check's rows (or its error) are gathered.
    """

    def __init__(self, connection: sqlite3.Connection, pragma: str) -> None:
        if pragma not in (QUICK_CHECK, FULL_CHECK):
            raise ValueError(f"unknown check {pragma!r}")
        self._watch = _Watch()
        self.result = ContentCheck()
        self._helper = threading.Thread(target=self._run, args=(connection, pragma),
                                        name="queue-admin-check", daemon=True)
        self._helper.start()

    def _run(self, connection: sqlite3.Connection, pragma: str) -> None:
        self._watch.attach(connection)
        try:
            connection.set_progress_handler(lambda: 1 if self._watch.stop.is_set() else 0,
                                            CANCEL_CHECK_STEPS)
            if not self._watch.stop.is_set():
                self.result.rows = [str(row[0]) for row in connection.execute(pragma)]
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread as is
            self.result.error = error
        finally:
            self._watch.attach(None)
            with contextlib.suppress(sqlite3.Error):
                connection.set_progress_handler(None, 0)

    def wait(self, cancelled: CancelCheck | None, action: str) -> ContentCheck:
        """The check's outcome once it ended; a cancel stops it and raises."""
        try:
            while self._helper.is_alive():
                self._helper.join(_POLL_SECONDS)
                if is_cancelled(cancelled):
                    self._watch.halt()
                    _finish(self._helper, self._watch)
                    raise_if_cancelled(lambda: True, action)
        except BaseException:
            self.stop()
            raise
        return self.result

    def stop(self) -> None:
        """Stop the check (if it still runs) and wait until its thread has ended."""
        if self._helper.is_alive():
            self._watch.halt()
        _finish(self._helper, self._watch)


def _finish(helper: threading.Thread, watch: _Watch) -> None:
    """Wait for the helper, interrupting its statement again at every poll once stopped."""
    while helper.is_alive():
        helper.join(_POLL_SECONDS)
        if watch.stop.is_set():
            watch.halt()


def check_beside(path: Path, pragma: str, work: Callable[[], _T],
                 cancelled: CancelCheck | None, action: str, *,
                 budget_seconds: float | None = None) -> tuple[_T, ContentCheck]:
    """Run ``pragma`` (:data:`QUICK_CHECK`, :data:`FULL_CHECK`) on ``path`` while ``work`` runs.

    :data:`SEALED_FULL_CHECK` runs no page check (the caller proved one passed on these
    bytes) and reads the rest as the others do.

    The check runs on a helper thread with its own connection; ``work`` (hashing, flushing)
    runs on the caller's thread, which alone reports progress and polls ``cancelled``. A
    cancel, or any exception on the caller's thread (Ctrl+C included), interrupts the check
    and raises; the helper is always stopped and joined first, so no connection is left open
    on the file. When ``budget_seconds`` pass before the check ends, it is stopped and the
    result says so in ``stalled_after``.
    """
    if pragma not in (QUICK_CHECK, FULL_CHECK, SEALED_FULL_CHECK):
        raise ValueError(f"unknown check {pragma!r}")
    watch = _Watch()
    result = ContentCheck()
    helper = threading.Thread(target=_run_check, args=(path, pragma, watch, result),
                              name="queue-admin-check", daemon=True)
    started = time.monotonic()
    stalled = False
    helper.start()
    try:
        value = work()
        while helper.is_alive():
            helper.join(_POLL_SECONDS)
            if is_cancelled(cancelled):
                watch.halt()
            elif budget_seconds is not None and time.monotonic() - started > budget_seconds:
                stalled = True
                watch.halt()
            if watch.stop.is_set():
                _finish(helper, watch)
    except BaseException:
        watch.halt()
        _finish(helper, watch)
        raise
    if stalled:
        return value, ContentCheck(stalled_after=time.monotonic() - started)
    if watch.stop.is_set():
        raise_if_cancelled(lambda: True, action)
    return value, result
