"""Plain SQLite maintenance of the queue file: checkpoint, VACUUM, ANALYZE, integrity, stats.

These work on any SQLite file and answer with the typed results of
:mod:`.maintenance_results`; the dict-returning names scripts know are
:class:`~.compat.QueueMaintenance`'s, on top of :class:`Maintenance`. Each method
opens its own connection and closes it before returning, so a ``Maintenance`` may be
used from any thread, and from several at once: writers are serialised per database file by
the engine's writer lock, and another program's lock is waited on up to the busy timeout,
then reported as "the database is locked by another program; close it or retry".
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .database import (
    BUSY_TIMEOUT_MS,
    QueueDatabase,
    connect,
    database_path_of,
    open_read_only,
    writer_lock,
)
from .errors import (
    ErrorKind,
    QueueAdminError,
    QueueMaintenanceError,
    require_free_space,
    translate_error,
)
from .files.db_files import file_size, wal_path
from .files.disk import same_drive
from .maintenance_results import (
    AnalyzeResult,
    CheckpointResult,
    IntegrityResult,
    OptimizeResult,
    PragmaOptimizeResult,
    VacuumResult,
)
from .measurements.stats import DatabaseStats, read_database_stats
from .progress import (
    CancelCheck,
    ProgressCallback,
    interruptible,
    raise_if_cancelled,
    report,
)
from .write_session import as_maintenance_error

__all__ = ["Maintenance"]

#: The checkpoint statements, one per mode: the mode is looked up, never formatted from input.
_CHECKPOINT_SQL = {
    "PASSIVE": "PRAGMA wal_checkpoint(PASSIVE)",
    "FULL": "PRAGMA wal_checkpoint(FULL)",
    "RESTART": "PRAGMA wal_checkpoint(RESTART)",
    "TRUNCATE": "PRAGMA wal_checkpoint(TRUNCATE)",
}


class Maintenance:
    """Checkpoint, VACUUM, ANALYZE, integrity check and statistics for one database file."""

    CHECKPOINT_PASSIVE = "PASSIVE"
    CHECKPOINT_FULL = "FULL"
    CHECKPOINT_RESTART = "RESTART"
    CHECKPOINT_TRUNCATE = "TRUNCATE"
    CHECKPOINT_MODES = (CHECKPOINT_PASSIVE, CHECKPOINT_FULL, CHECKPOINT_RESTART,
                        CHECKPOINT_TRUNCATE)

    def __init__(self, db: QueueDatabase | str | Path, *,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.db = db
        self.db_path = database_path_of(db)
        self.busy_timeout_ms = busy_timeout_ms

    def run_checkpoint(self, mode: str = "PASSIVE") -> CheckpointResult:
        """Checkpoint in ``mode``; the result's ``finished`` says whether every frame was copied."""
        normalised = str(mode).strip().upper()
        if normalised not in _CHECKPOINT_SQL:
            raise QueueMaintenanceError(
                f"Invalid checkpoint mode '{mode}'; use PASSIVE, FULL, RESTART or TRUNCATE.",
                ErrorKind.INVALID,
            )
        action = f"Checkpoint ({normalised}) of '{self.db_path}'"
        started = time.perf_counter()
        wal_before = file_size(wal_path(self.db_path))
        with self._writer(action) as connection:
            frames = checkpointed = -1
            if normalised == self.CHECKPOINT_TRUNCATE:
                # A successful TRUNCATE reports 0 frames (the WAL is gone); a PASSIVE pass
                # first, which TRUNCATE would do anyway, tells how many frames there were.
                _, frames, checkpointed = connection.execute(_CHECKPOINT_SQL["PASSIVE"]
                                                             ).fetchone()
            busy, log, done = connection.execute(_CHECKPOINT_SQL[normalised]).fetchone()
        if not (busy == 0 and log == 0 and frames > 0):
            frames, checkpointed = log, done
        else:
            # The TRUNCATE emptied the WAL, so it copied every frame the PASSIVE pass counted
            # (that pass may have stopped short at a reader the TRUNCATE then waited out).
            checkpointed = frames
        return CheckpointResult(
            mode=normalised, busy=int(busy), log=int(log), checkpointed=int(done),
            log_frames=int(frames), checkpointed_frames=int(checkpointed),
            wal_bytes_before=wal_before, wal_bytes_after=file_size(wal_path(self.db_path)),
            seconds=time.perf_counter() - started)

    def vacuum_space_needed(self) -> int:
        """Free bytes VACUUM needs: a temporary copy plus the rewritten pages (about 2x)."""
        return 2 * (file_size(self.db_path) + file_size(wal_path(self.db_path)))

    def run_vacuum(self, progress: ProgressCallback | None = None,
                   cancelled: CancelCheck | None = None) -> VacuumResult:
        """VACUUM as a typed result: sizes before and after, and how long it took."""
        action = f"VACUUM of '{self.db_path}'"
        started = time.perf_counter()
        report(progress, 0, 3, "Checking free space")
        self._require_vacuum_space(action)
        raise_if_cancelled(cancelled, action)
        with self._writer(action) as connection:
            size_before = _logical_size(connection)
            report(progress, 1, 3, "Rebuilding the database (VACUUM)")
            connection.execute("PRAGMA temp_store=FILE")
            with interruptible(connection, cancelled):
                connection.execute("VACUUM")
            report(progress, 2, 3, "Checkpointing the WAL")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            size_after = _logical_size(connection)
        report(progress, 3, 3, "Done")
        return VacuumResult(size_before=size_before, size_after=size_after,
                            file_size_after=file_size(self.db_path),
                            seconds=time.perf_counter() - started)

    def run_analyze(self, table: str | None = None) -> AnalyzeResult:
        """ANALYZE as a typed result: the table as the file spells it (None: all of them)."""
        action = f"ANALYZE of '{self.db_path}'"
        started = time.perf_counter()
        with self._writer(action) as connection:
            if table is None:
                connection.execute("ANALYZE")
                analyzed = None
            else:
                analyzed = self._existing_table(connection, table)
                connection.execute(f'ANALYZE "{_quote_identifier(analyzed)}"')
        return AnalyzeResult(analyzed, time.perf_counter() - started)

    def table_names(self) -> list[str]:
        """The file's own tables, sorted: the only names :meth:`run_analyze` accepts."""
        action = f"Listing the tables of '{self.db_path}'"
        try:
            connection = open_read_only(self.db_path, busy_timeout_ms=self.busy_timeout_ms,
                                        error_class=QueueMaintenanceError)
            try:
                return _table_names(connection)
            finally:
                connection.close()
        except sqlite3.Error as error:
            raise translate_error(error, action, QueueMaintenanceError) from error

    def run_pragma_optimize(self) -> PragmaOptimizeResult:
        """``PRAGMA optimize`` as a typed result (how long it took)."""
        started = time.perf_counter()
        with self._writer(f"PRAGMA optimize on '{self.db_path}'") as connection:
            connection.execute("PRAGMA optimize").fetchall()
        return PragmaOptimizeResult(time.perf_counter() - started)

    def run_optimize(self, full: bool = False, progress: ProgressCallback | None = None,
                     cancelled: CancelCheck | None = None) -> OptimizeResult:
        """ANALYZE (and VACUUM when ``full``) as a typed result with the statistics around it."""
        started = time.perf_counter()
        stats_before = self.read_stats(include_task_counts=False)
        total = 2 if full else 1
        report(progress, 0, total, "Updating statistics (ANALYZE)")
        self.run_analyze()
        vacuum_result = None
        if full:
            raise_if_cancelled(cancelled, f"VACUUM of '{self.db_path}'")
            report(progress, 1, total, "Rebuilding the database (VACUUM)")
            vacuum_result = self.run_vacuum(cancelled=cancelled)
        report(progress, total, total, "Done")
        return OptimizeResult(vacuum=vacuum_result, stats_before=stats_before,
                              stats_after=self.read_stats(include_task_counts=False),
                              seconds=time.perf_counter() - started)

    def check_integrity(self, quick: bool = False, cancelled: CancelCheck | None = None,
                        max_errors: int = 100) -> IntegrityResult:
        """The integrity (or quick) check as a typed result with the number of problems."""
        limit = max(1, int(max_errors))
        problems = [line for line in self._integrity_lines(quick, cancelled, limit)
                    if line != "ok"]
        return IntegrityResult(bool(quick), problems, limit)

    def _integrity_lines(self, quick: bool, cancelled: CancelCheck | None,
                         limit: int) -> list[str]:
        action = f"Integrity check of '{self.db_path}'"
        pragma = "quick_check" if quick else "integrity_check"
        try:
            connection = open_read_only(self.db_path, busy_timeout_ms=self.busy_timeout_ms,
                                        error_class=QueueMaintenanceError)
        except QueueMaintenanceError as error:
            if error.kind is ErrorKind.CORRUPT:
                return [f"The database cannot be read: {error}"]
            raise
        try:
            with interruptible(connection, cancelled):
                rows = connection.execute(f"PRAGMA {pragma}({limit})").fetchall()
            return [str(row[0]) for row in rows]
        except sqlite3.DatabaseError as error:
            translated = translate_error(error, action, QueueMaintenanceError)
            if translated.kind is ErrorKind.CORRUPT:
                return [f"The database is damaged: {error}"]
            raise translated from error
        finally:
            connection.close()

    def read_stats(self, include_task_counts: bool = True) -> DatabaseStats:
        """The file's statistics as a typed result (read-only, fast)."""
        return read_database_stats(self.db_path, include_task_counts, self.busy_timeout_ms)

    @contextlib.contextmanager
    def _writer(self, action: str) -> Iterator[sqlite3.Connection]:
        """A connection of its own under the per-file writer lock; errors become one sentence."""
        with writer_lock(self.db_path):
            try:
                connection = connect(self.db_path, busy_timeout_ms=self.busy_timeout_ms)
            except QueueAdminError as error:
                raise as_maintenance_error(error) from error
            try:
                yield connection
            except (sqlite3.Error, OSError) as error:
                raise translate_error(error, action, QueueMaintenanceError) from error
            finally:
                connection.close()

    def _require_vacuum_space(self, action: str) -> None:
        """Refuse VACUUM early when the database folder (and the temp folder) lack room."""
        needed = self.vacuum_space_needed()
        folder = self.db_path.absolute().parent
        temp_folder = Path(tempfile.gettempdir())
        if same_drive(folder, temp_folder):
            require_free_space(folder, needed, action, QueueMaintenanceError)
            return
        require_free_space(folder, needed // 2, action, QueueMaintenanceError)
        require_free_space(temp_folder, needed // 2, action, QueueMaintenanceError)

    def _existing_table(self, connection: sqlite3.Connection, table: str) -> str:
        """The table's name as the file spells it, or an error listing the tables there are."""
        names = _table_names(connection)
        for name in names:
            if name.casefold() == str(table).casefold():
                return name
        raise QueueMaintenanceError(
            f"Cannot analyze table '{table}': '{self.db_path}' has no such table; choose one of "
            f"{', '.join(names) or '(none)'}.",
            ErrorKind.INVALID,
        )


def _table_names(connection: sqlite3.Connection) -> list[str]:
    return [str(row[0]) for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    )]


def _logical_size(connection: sqlite3.Connection) -> int:
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    page_count = connection.execute("PRAGMA page_count").fetchone()[0]
    return int(page_size) * int(page_count)


def _quote_identifier(name: str) -> str:
    return name.replace('"', '""')
