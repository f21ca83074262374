"""What a restore keeps of the live database before it writes over it.

A healthy database gets a verified safety backup, or, when asked and an archiver of this
database proves under the lock that its point-in-time archive holds every commit
(:mod:`..archive.safety_point`), the archive's instant is the safety copy and no page is
copied while workers wait; the archive's generation is then checked in full on another
thread while the backup is written, and the write commits only once that check has passed
(a failed check rolls the write back: :class:`ArchiveNotConfirmed`). A damaged database
that still opens gets an unchecked page copy (it could never pass a backup's check, and
workers may have it open, so it is written over in place rather than renamed). Either way
the live AUTOINCREMENT counters are read and carried into the staged backup, so no id is
handed out twice.

All of this runs inside the restore's first write step, so no commit can fall between the
copy and the restore: in WAL mode that step holds the live write lock while readers go on.
Outside WAL mode it holds the exclusive lock (readers wait too) and has written nothing to
the file yet, so the copy and the counters are read from the file without a lock of their
own: the file holds exactly the last commit. The file is only ever opened through SQLite
while the restore holds its lock (closing a descriptor of one's own would drop the
process's POSIX locks on it and let other programs write in the middle of the restore).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..archive.safety_point import (
    NOT_PROVEN,
    KnownDigest,
    SafetyPoint,
    archiving_this,
    confirm_safety_point,
    prove_archived,
)
from ..backups.backup_store import DEFAULT_PAGES_PER_STEP, BackupStore, PendingBackup
from ..backups.manifest import manifest_path_for
from ..backups.snapshot import remove_partial
from ..database import BUSY_TIMEOUT_MS, closing_connection, connect, open_read_only
from ..errors import ErrorKind, QueueAdminError, QueueBackupError
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from ..trust.backup_sequence import MAX_COUNTER
from ..trust.schema_sql import is_virtual_table, uses_autoincrement
from .carry import CarryResult, carry_newer_tasks
from .plan import RestoredCheck
from .writing import RestoreResult

#: Sub-folder of the backup folder that holds the safety backups restores take.
SAFETY_FOLDER_NAME = "pre-restore"
SAFETY_BACKUP_NAME = "pre_restore"
STAGE_SAFETY = "Taking the safety backup (workers are held off)"
STAGE_ARCHIVE_PROOF = "Asking the archiver to prove it holds every commit (workers are held off)"
#: How the report says when the safety copy's full check ran.
SAFETY_CHECKED_AFTER = "checked fully after the write, once workers were no longer held off"
#: How the report says the archive standing in as the safety copy was checked.
ARCHIVE_CHECKED_BESIDE = "its generation checked in full beside the write, before the commit"


class ArchiveNotConfirmed(QueueBackupError):
    """The archive proved it held every commit but failed its full check: nothing committed."""


@dataclass
class RestoreRequest:
    """What to restore, into which database, and what the caller has agreed to."""

    backup_path: Path
    target: Path
    backup_dir: Path
    safety_backup: bool = True
    accepted_workers: Collection[str] = ()
    lock_wait_seconds: float = 0.0
    #: Archive folders whose archiver (the tool's own) is not counted as a worker.
    archive_dirs: Collection[Path] = ()
    busy_timeout_ms: int = BUSY_TIMEOUT_MS
    pages_per_step: int = DEFAULT_PAGES_PER_STEP
    #: Carry the live tasks created after the backup into the restored queue (:mod:`.carry`).
    keep_newer_tasks: bool = False
    #: A point-in-time archive that may be the safety copy instead of a safety backup, when
    #: its archiver proves under the lock that it holds every commit (else a backup is taken).
    archive_safety: Path | None = None


@dataclass
class RestoreReport(RestoreResult):
    """A restore's result with the check of the restored database and the counters kept."""

    check: RestoredCheck | None = None
    counters_kept: dict[str, int] = field(default_factory=dict)
    held_seconds: float = 0.0
    damaged_copy: Path | None = None
    safety_problem: str | None = None
    counters_problem: str | None = None
    #: Id counters of the backup set right before it was written in, one sentence each.
    counters_repaired: list[str] = field(default_factory=list)
    #: Signals of workers seen that did not block the restore (a crashed worker's leases).
    workers_seen: list[str] = field(default_factory=list)
    #: True when no database existed at the target: it was created from the backup.
    created: bool = False
    #: The tasks created after the backup kept in the restored queue (``keep_newer_tasks``).
    carried: CarryResult | None = None
    #: Why newer tasks were asked to be kept but could not be (the live file was unusable).
    carry_problem: str | None = None
    #: How the backup was checked: "checked fully now", or the sealed earlier full check.
    source_check: str = ""
    #: How the result was checked: proven page for page, or SQLite's integrity check.
    result_check: str = ""
    #: When the safety copy was checked: "after the write" (workers were no longer held off).
    safety_checked: str = ""
    #: The archive's instant that holds the database as it was before, when the archive was
    #: the safety copy (then :attr:`safety_backup` is None).
    safety_point: SafetyPoint | None = None
    #: Why the archive could not be the safety copy although its archiver was running (a
    #: safety backup was taken instead), or None.
    archive_problem: str | None = None


def _schema(connection: sqlite3.Connection) -> list[tuple[str, str, str | None]]:
    """The schema's own objects (SQLite's internal tables aside), in a stable order."""
    return [tuple(row) for row in connection.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        " ORDER BY type, name")]


def _live_schema(target: Path) -> list[tuple[str, str, str | None]] | None:
    """The live queue's schema, read beside the restore's lock; None when it cannot be read."""
    try:
        with closing_connection(open_read_only(target)) as reader:
            return _schema(reader)
    except (QueueAdminError, sqlite3.Error):
        return None


def safety_folder(backup_dir: str | Path) -> Path:
    """Where restores keep their safety backups: apart from the regular backups."""
    return Path(backup_dir) / SAFETY_FOLDER_NAME


class LiveStateKeeper:
    """What a restore keeps of the live database before writing: safety copy and counters.

    The copy is taken inside the write's first step, holding the live write lock (in WAL
    mode readers go on; outside it they wait too); it is checked only after the restore
    committed (:meth:`finish`, beside the proof of the result), so workers wait for the
    copy alone.
    """

    def __init__(self, request: RestoreRequest, outcome: RestoreReport, action: str,
                 progress: ProgressCallback | None, cancelled: CancelCheck | None, *,
                 wal: bool = True, known: KnownDigest | None = None) -> None:
        self.request, self.outcome, self.action = request, outcome, action
        #: The archive snapshot's SHA-256, computed before the lock, that its check reuses
        #: while the snapshot is still that very file.
        self.known = known
        #: Outside WAL mode the write's first step holds the exclusive lock: read unlocked.
        self.unlocked = not wal
        self.progress, self.cancelled = progress, cancelled
        self.locked_at: float | None = None
        self.counters: dict[str, int] = {}
        self.safety = BackupStore(request.target, safety_folder(request.backup_dir),
                                  busy_timeout_ms=request.busy_timeout_ms,
                                  pages_per_step=request.pages_per_step)
        self.pending: PendingBackup | None = None
        #: The archive's full check, running beside the write (see :meth:`before_commit`).
        self._checking: Future[SafetyPoint] | None = None

    def while_locked(self, source: sqlite3.Connection) -> None:
        """In the write's first step: copy the live state, then carry the counters over."""
        self.locked_at = time.monotonic()
        self._keep_live_state(source)
        self._carry(source)

    def before_commit(self) -> None:
        """Before the write's last step: wait for the archive's check; raise if it failed.

        Raises :class:`ArchiveNotConfirmed` (the write then rolls back) when the archive does
        not rebuild the proven instant, so a restore never commits without a safety copy.
        """
        checking, self._checking = self._checking, None
        if checking is None:
            return
        try:
            point = checking.result()
        except Exception as error:  # noqa: BLE001 - any failure of the check refuses the archive
            point = None
            problem = f"its check could not run ({error})"
        else:
            problem = point.problem or "it does not cover the instant"
        if point is None or not point.confirmed:
            self.outcome.archive_problem = f"it failed its check ({problem})"
            self.outcome.safety_point = None
            raise ArchiveNotConfirmed(
                f"{self.action}: the point-in-time archive failed its check "
                f"({problem}); nothing was written.", ErrorKind.CORRUPT)
        self.outcome.safety_point = point
        self.outcome.safety_checked = ARCHIVE_CHECKED_BESIDE

    def finish(self) -> None:
        """Check and name the safety copy; a copy that fails its check is kept, unchecked.

        A damaged live file (say an index that disagrees with its table) fails the check:
        its copy is kept as ``queue_damaged_<time>.db``, never as a backup.
        """
        pending, self.pending = self.pending, None
        if pending is None:
            return
        try:
            self.outcome.safety_backup = self.safety.finish_backup(
                pending, self.progress, keep_partial_on_failure=True).path
            self.outcome.safety_checked = SAFETY_CHECKED_AFTER
        except QueueBackupError as error:
            tag = "damaged" if error.kind is ErrorKind.CORRUPT else "unchecked"
            kept = pending.partial.with_name(
                f"queue_{tag}_{time.strftime('%Y%m%d_%H%M%S')}_{time.time_ns()}.db")
            try:
                os.replace(pending.partial, kept)
            except OSError as rename_error:
                kept = pending.partial
                self.outcome.safety_problem = f"{error.message} ({rename_error})"
            self.outcome.damaged_copy = kept
            if error.kind is not ErrorKind.CORRUPT:
                self.outcome.safety_problem = self.outcome.safety_problem or error.message

    def _ask_the_archive(self, source: sqlite3.Connection, target: Path,
                         archive: Path) -> None:
        """Make the archive the safety copy if its archiver proves it holds every commit.

        Only an archiver following this database into ``archive`` is asked; the archive's
        full check then starts beside the write (:meth:`before_commit` waits for it).
        """
        if not archiving_this(target, archive):
            return
        outcome = self.outcome
        if _schema(source) != _live_schema(target):
            # An instant is rebuilt only with the schema the live queue has then: once the
            # backup's schema is in, the live one could not be rebuilt any more.
            outcome.archive_problem = ("the backup's schema differs from the live queue's, "
                                       "so the archive could not give the queue before the "
                                       "restore back")
            return
        report(self.progress, 0, 0, STAGE_ARCHIVE_PROOF)
        point = prove_archived(target, archive, cancelled=self.cancelled)
        if point is None:
            outcome.archive_problem = NOT_PROVEN
            return
        outcome.safety_point = point
        checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queue-admin-archive-check")
        self._checking = checker.submit(confirm_safety_point, point, self.known)
        checker.shutdown(wait=False)  # the thread ends once the check is done

    def discard(self) -> None:
        """Remove a safety copy that is not needed: the restore did not change anything."""
        checking, self._checking = self._checking, None
        if checking is not None:
            checking.cancel()
        pending, self.pending = self.pending, None
        if pending is not None:
            remove_partial(pending.partial, manifest_path_for(pending.final))

    def _keep_live_state(self, source: sqlite3.Connection) -> None:
        request, outcome = self.request, self.outcome
        target = Path(request.target)
        if request.safety_backup and request.archive_safety is not None and not self.unlocked:
            self._ask_the_archive(source, target, Path(request.archive_safety))
        if request.safety_backup and outcome.safety_point is None:
            report(self.progress, 0, 0, STAGE_SAFETY)
            try:
                self.pending = self.safety.begin_backup(target, SAFETY_BACKUP_NAME,
                                                        self.progress, self.cancelled,
                                                        unlocked=self.unlocked)
            except QueueBackupError as error:
                raise QueueBackupError(
                    f"{self.action} stopped: the safety backup of the current database "
                    f"failed ({error.message.rstrip('.')}); the live database was not "
                    "changed.", error.kind) from error
            raise_if_cancelled(self.cancelled, self.action)
        try:
            self.counters = read_counters(target, unlocked=self.unlocked)
        except (sqlite3.Error, QueueAdminError) as error:
            # Only a damaged file gets here; the report says so rather than promise ids.
            outcome.counters_problem = (f"the id counters of the damaged database could not "
                                        f"be read ({error}); new tasks may get ids it had "
                                        "handed out")
        outcome.counters_kept = dict(self.counters)

    def _carry(self, source: sqlite3.Connection) -> None:
        if self.request.keep_newer_tasks:
            self.outcome.carried = carry_newer_tasks(source, Path(self.request.target),
                                                     self.action, unlocked=self.unlocked)
        carry_counters(source, self.counters)


def carry_set_aside_counters(set_aside: Path, staged: Path, outcome: RestoreReport) -> None:
    """Carry the counters of a database just moved aside into the staged backup, if they read.

    Nobody can write to the renamed file, so it is read without a lock. A file too damaged to
    give its counters is reported in ``outcome.counters_problem``.
    """
    try:
        counters = read_counters(set_aside, unlocked=True)
        with closing_connection(connect(staged)) as copy:
            carry_counters(copy, counters)
    except (sqlite3.Error, QueueAdminError) as error:
        outcome.counters_problem = (f"the id counters of the database moved aside could not "
                                    f"be read ({error}); new tasks may get ids it had handed "
                                    "out")
        return
    outcome.counters_kept = counters


def read_counters(target: Path, *, unlocked: bool = False) -> dict[str, int]:
    """The live database's AUTOINCREMENT counters (whole numbers only), by table.

    ``unlocked`` reads without a lock, for a caller holding the exclusive lock itself.
    """
    opened = open_read_only(target, immutable=True) if unlocked else connect(target)
    with closing_connection(opened) as live:
        if not has_sequence_table(live):
            return {}
        return {str(name): int(seq) for name, seq in
                live.execute("SELECT name, seq FROM sqlite_sequence") if isinstance(seq, int)}


def carry_counters(source: sqlite3.Connection, counters: dict[str, int]) -> None:
    """Raise the staged copy's counters to at least the live database's.

    The change goes through the connection the backup API reads from, which carries it
    into the pages already written. A counter that is not a whole number is replaced.
    """
    if not counters or not has_sequence_table(source):
        return
    source.execute("BEGIN IMMEDIATE")
    try:
        for name, seq in counters.items():
            updated = source.execute(
                "UPDATE sqlite_sequence SET seq = CASE WHEN typeof(seq) = 'integer' "
                "AND seq >= :seq THEN seq ELSE :seq END WHERE name = :name",
                {"seq": seq, "name": name})
            if updated.rowcount == 0 and source.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (name,)).fetchone():
                source.execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)",
                               (name, seq))
        source.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            source.execute("ROLLBACK")
        raise


def repair_counters(staged: Path, action: str) -> list[str]:
    """Give every AUTOINCREMENT table of the staged backup a counter it can go on from.

    A counter that is missing or below the table's highest id is set to that id (SQLite
    would otherwise go on from a lower number, or treat the id as free), and said so. A table
    whose highest id or counter reaches :data:`MAX_COUNTER` (the bound verification holds
    counters to) is refused: ids cannot be renumbered (other rows refer to them), and every
    new task would fail with "database or disk is full". Works on the private staging copy.
    """
    repaired: list[str] = []
    with closing_connection(connect(staged)) as copy:
        if not has_sequence_table(copy):
            return []
        tables = [str(name) for name, sql in copy.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
            if not is_virtual_table(sql) and uses_autoincrement(sql)]
        copy.execute("BEGIN IMMEDIATE")
        try:
            for table in tables:
                quoted = '"' + table.replace('"', '""') + '"'
                query = f"SELECT max(rowid) FROM {quoted}"  # noqa: S608 - quoted name
                highest = copy.execute(query).fetchone()[0]
                row = copy.execute("SELECT seq FROM sqlite_sequence WHERE name = ?",
                                   (table,)).fetchone()
                seq = row[0] if row is not None else None
                top = max(v for v in (highest, seq, 0) if isinstance(v, int))
                if top >= MAX_COUNTER:
                    raise QueueBackupError(
                        f"{action} refused: the backup's ids of {table} reach {top}, so "
                        "close to the largest id SQLite allows that a queue restored from it "
                        "could take few or no new tasks; nothing was changed; choose another "
                        "backup.", ErrorKind.CORRUPT)
                if highest is None or (isinstance(seq, int) and seq >= highest):
                    continue
                was = "missing" if row is None else f"{seq!r}"
                copy.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
                copy.execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)",
                             (table, highest))
                repaired.append(f"the backup's id counter of {table} was {was}, below its "
                                f"highest id {highest}; it was set to {highest} so no id is "
                                "handed out twice")
            copy.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                copy.execute("ROLLBACK")
            raise
    return repaired


def counter_problems(target: Path, kept: dict[str, int]) -> list[str]:
    """Sentences for any id counter of the restored database below what was handed out."""
    if not kept:
        return []
    with closing_connection(connect(target)) as live:
        found = {str(name): seq for name, seq in
                 live.execute("SELECT name, seq FROM sqlite_sequence")}
    return [f"the id counter of {name} is {found.get(name)!r}, below the {seq} the database "
            "had handed out, so ids could be used twice"
            for name, seq in kept.items()
            if not isinstance(found.get(name), int) or found[name] < seq]


def has_sequence_table(connection: sqlite3.Connection) -> bool:
    """True when the database has an AUTOINCREMENT table (and so a sqlite_sequence)."""
    return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                              "AND name = 'sqlite_sequence'").fetchone() is not None
