"""Connections to the queue database, the schema check, and ``QueueDatabase``.

(Paths, side files and the checks that a path is a regular SQLite file are in
:mod:`.files.db_files`.)

Three ways to open a file:

* :func:`connect` opens an *existing* file for maintenance with the writers' PRAGMAs, without
  changing anything persistent (it never switches the journal mode of a file it did not make).
* :func:`open_read_only` opens a file for inspection, verification or restore: URI
  ``mode=ro``, ``trusted_schema`` off, extension loading off, ``query_only`` on.
* :class:`QueueDatabase` is the PrismQ-compatible object scripts already use; it creates the
  file and the schema when asked to.

Every function here opens its own connection and leaves closing to the caller, so that a job
can open, use and close a connection inside one worker thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import (
    NotAQueueDatabaseError,
    QueueAdminError,
    QueueDatabaseError,
    translate_error,
)
from .files.db_files import (
    default_db_path,
    describe_path,
    file_size,
    require_existing_file,
    sqlite_uri,
)
from .schema import (
    KNOWN_STATUSES,
    MMAP_SIZE_LINUX,
    PAGE_SIZE,
    REQUIRED_COLUMNS,
    SCHEMA_SQL,
    WRITER_PRAGMAS,
)

__all__ = [
    "BUSY_TIMEOUT_MS",
    "UNSAFE_FUNCTIONS",
    "QueueDatabase",
    "apply_connection_pragmas",
    "check_queue_schema",
    "closing_connection",
    "connect",
    "database_path_of",
    "open_read_only",
    "require_queue_schema",
    "task_counts",
    "write_transaction",
    "writer_lock",
]

BUSY_TIMEOUT_MS = 5000
#: Caps how long any of this process's connections waits for another program's lock, in
#: milliseconds, when set (the tests' lock-refusal cases wait a moment instead of 5 s).
ENV_LOCK_WAIT_CAP_MS = "QUEUE_ADMIN_LOCK_WAIT_MS"


def lock_wait_ms(requested: int) -> int:
    """How long a connection waits for a lock: ``requested``, or the cap if that is lower."""
    cap = os.environ.get(ENV_LOCK_WAIT_CAP_MS, "").strip()
    if cap.isdigit():
        return min(int(requested), int(cap))
    return int(requested)


def apply_connection_pragmas(connection: sqlite3.Connection,
                             busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """Apply the writers' per-connection PRAGMAs (never the persistent journal mode)."""
    for name, value in WRITER_PRAGMAS:
        if name == "journal_mode":
            continue
        if name == "busy_timeout":
            value = lock_wait_ms(busy_timeout_ms)
        connection.execute(f"PRAGMA {name}={value}")
    if sys.platform.startswith("linux"):
        connection.execute(f"PRAGMA mmap_size={MMAP_SIZE_LINUX}")


def connect(path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS,
            create: bool = False) -> sqlite3.Connection:
    """Open a database for maintenance with the writers' PRAGMAs.

    The file must exist unless ``create`` is true. The connection is in autocommit mode
    (``isolation_level=None``): transactions are explicit. Rows are ``sqlite3.Row``.
    """
    path = Path(path)
    action = f"Opening {describe_path(path)}"
    if not create:
        require_existing_file(path, action)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    mode = "rwc" if create else "rw"
    try:
        connection = sqlite3.connect(
            sqlite_uri(path, mode=mode), uri=True, timeout=lock_wait_ms(busy_timeout_ms) / 1000,
            isolation_level=None, check_same_thread=False,
        )
    except sqlite3.Error as error:
        raise translate_error(error, action, QueueDatabaseError, path=path) from error
    try:
        connection.row_factory = sqlite3.Row
        apply_connection_pragmas(connection, busy_timeout_ms)
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as error:
        connection.close()
        raise translate_error(error, action, QueueDatabaseError, path=path) from error
    return connection


def open_read_only(path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS,
                   error_class: type[QueueAdminError] = QueueDatabaseError,
                   immutable: bool = False) -> sqlite3.Connection:
    """Open a file for inspection only: it cannot be changed through this connection.

    Untrusted files (backups, files chosen from disk) are opened this way: ``trusted_schema``
    off so that schema-defined SQL cannot call risky functions, no extension loading, and
    ``query_only`` on. A file that is not SQLite raises a NOT_A_DATABASE error here.
    ``immutable`` promises SQLite that nobody changes the file meanwhile (a closed backup):
    it then takes no locks and creates no -wal or -shm beside it.
    """
    path = Path(path)
    action = f"Opening {describe_path(path)}"
    require_existing_file(path, action, error_class)
    try:
        return _open_guarded(path, busy_timeout_ms, trusted_schema=False, immutable=immutable)
    except sqlite3.Error as error:
        if not _only_json_is_unsafe(error):
            raise translate_error(error, action, error_class, path=path) from error
    # SQLite before 3.45 does not mark the JSON functions innocuous, so with trusted_schema
    # off it refuses the queue's own generated columns (json_extract). Those functions are
    # harmless; the file is then opened with an authorizer that refuses every function able
    # to reach outside the database, on top of read-only mode, query_only and no extensions.
    try:
        return _open_guarded(path, busy_timeout_ms, trusted_schema=True, immutable=immutable)
    except sqlite3.Error as error:
        raise translate_error(error, action, error_class, path=path) from error


#: Functions an untrusted schema must never reach (the authorizer refuses them).
UNSAFE_FUNCTIONS = frozenset({
    "load_extension", "fts3_tokenizer", "readfile", "writefile", "edit", "sqlite_dbpage",
    "zipfile", "fsdir", "lsmode",
})


def _only_json_is_unsafe(error: sqlite3.Error) -> bool:
    text = str(error)
    return "unsafe use of json" in text and text.count("unsafe use of") == 1


def _authorize_untrusted(action: int, arg1: str | None, arg2: str | None,
                         database: str | None, source: str | None) -> int:
    if action == sqlite3.SQLITE_ATTACH:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in UNSAFE_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _open_guarded(path: Path, busy_timeout_ms: int, *, trusted_schema: bool,
                  immutable: bool = False) -> sqlite3.Connection:
    uri = sqlite_uri(path, mode="ro", immutable="1") if immutable else sqlite_uri(path, mode="ro")
    connection = sqlite3.connect(
        uri, uri=True, timeout=lock_wait_ms(busy_timeout_ms) / 1000,
        isolation_level=None, check_same_thread=False,
    )
    try:
        connection.row_factory = sqlite3.Row
        with contextlib.suppress(AttributeError, sqlite3.Error):
            connection.enable_load_extension(False)
        connection.execute(f"PRAGMA busy_timeout={lock_wait_ms(busy_timeout_ms)}")
        connection.execute(f"PRAGMA trusted_schema={'ON' if trusted_schema else 'OFF'}")
        connection.execute("PRAGMA query_only=ON")
        connection.execute("PRAGMA cell_size_check=ON")
        connection.set_authorizer(_authorize_untrusted)
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        connection.close()
        raise
    return connection


def check_queue_schema(connection: sqlite3.Connection) -> list[str]:
    """List what a file lacks to be a queue database; an empty list means it is one.

    Each entry is a short phrase such as ``"table task_queue is missing"`` or
    ``"task_queue lacks columns: status, locked_by"``.
    """
    problems: list[str] = []
    for table, columns in REQUIRED_COLUMNS.items():
        present = {
            row[0] for row in connection.execute(
                "SELECT name FROM pragma_table_xinfo(?)", (table,)
            )
        }
        if not present:
            problems.append(f"table {table} is missing")
            continue
        missing = [column for column in columns if column not in present]
        if missing:
            problems.append(f"{table} lacks columns: {', '.join(missing)}")
    return problems


def require_queue_schema(connection: sqlite3.Connection, path: str | Path, action: str) -> None:
    """Raise :class:`NotAQueueDatabaseError` when the file is not a queue database."""
    problems = check_queue_schema(connection)
    if problems:
        raise NotAQueueDatabaseError(
            f"{action} refused: {describe_path(Path(path))} is not a PrismQ queue database "
            f"({'; '.join(problems)}); only plain SQLite maintenance works on it."
        )


def task_counts(connection: sqlite3.Connection) -> dict[str, int]:
    """Tasks per status, with every known status present (0 when absent)."""
    counts = dict.fromkeys(KNOWN_STATUSES, 0)
    for status, count in connection.execute(
        "SELECT status, count(*) FROM task_queue GROUP BY status"
    ):
        counts[str(status)] = int(count)
    return counts


@contextlib.contextmanager
def closing_connection(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Close a connection when the block ends, whatever happens (``sqlite3`` won't)."""
    try:
        yield connection
    finally:
        connection.close()


@contextlib.contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    try:
        connection.execute("COMMIT")
    except BaseException:
        # A refused COMMIT (a deferred constraint, say) keeps the transaction and its write
        # lock; roll back so that no writer stays blocked behind this connection.
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


class QueueDatabase:
    """The queue database as PrismQ scripts use it: one shared connection behind a lock.

    ``QueueDatabase(path)`` opens (and, like the original, creates) the file with the
    writers' PRAGMAs, WAL included. Maintenance code that runs on worker threads uses
    :meth:`connect` to get a connection of its own instead.
    """

    def __init__(self, db_path: str | Path | None = None) -> None:
        self.path = Path(db_path) if db_path is not None else default_db_path()
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None

    @property
    def db_path(self) -> Path:
        """Alias of :attr:`path`, the name the original design used."""
        return self.path

    def connect(self, *, create: bool = False) -> sqlite3.Connection:
        """A new connection of its own to this file (the caller closes it)."""
        return connect(self.path, create=create)

    def get_connection(self) -> sqlite3.Connection:
        """The shared connection, opened (and the file created, in WAL mode) on first use."""
        with self._lock:
            if self._connection is None:
                connection = connect(self.path, create=True)
                try:
                    if file_size(self.path) == 0:
                        connection.execute(f"PRAGMA page_size={PAGE_SIZE}")
                    connection.execute("PRAGMA journal_mode=WAL")
                except sqlite3.Error as error:
                    connection.close()
                    raise translate_error(
                        error, f"Opening {describe_path(self.path)}", QueueDatabaseError
                    ) from error
                self._connection = connection
            return self._connection

    def initialize_schema(self) -> None:
        """Create the queue tables, indexes and PrismQ's five views where missing (idempotent)."""
        with self._lock:
            try:
                self.get_connection().executescript(SCHEMA_SQL)
            except sqlite3.Error as error:
                raise translate_error(
                    error, f"Creating the queue schema in {describe_path(self.path)}",
                    QueueDatabaseError,
                ) from error

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``) yielding the connection."""
        with self._lock, write_transaction(self.get_connection()) as connection:
            yield connection

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        """Run one statement on the shared connection; rows are addressable by column name."""
        with self._lock:
            return self.get_connection().execute(sql, params)

    def check_schema(self) -> list[str]:
        """What the file lacks to be a queue database (empty when it is one)."""
        with self._lock:
            return check_queue_schema(self.get_connection())

    def close(self) -> None:
        """Close the shared connection; the object can be used again afterwards."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> QueueDatabase:
        """Use as ``with QueueDatabase(path) as db:``; closes at the end."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the shared connection."""
        self.close()

    def __repr__(self) -> str:
        """Show the path, which is what identifies a queue."""
        return f"QueueDatabase({str(self.path)!r})"


def database_path_of(db: QueueDatabase | str | Path) -> Path:
    """Accept a QueueDatabase or a plain path, as the public API promises, and give the path."""
    if isinstance(db, QueueDatabase):
        return db.path
    return Path(db)


_WRITER_LOCKS: dict[str, threading.RLock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def writer_lock(path: str | Path) -> threading.RLock:
    """The engine's lock for writing to one database file, shared by every thread in the process.

    Maintenance writers (checkpoint, VACUUM, ANALYZE, requeue, restore) hold it so that they
    run one at a time; SQLite's own locking still guards against other programs.
    """
    key = os.path.normcase(str(Path(path).absolute()))
    with _WRITER_LOCKS_GUARD:
        return _WRITER_LOCKS.setdefault(key, threading.RLock())
