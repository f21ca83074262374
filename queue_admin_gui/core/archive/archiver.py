"""The archiver: a snapshot, then every committed WAL transaction, as it appears.

Each pass (every ``poll_seconds``) begins a new read transaction, copies every whole
transaction in the log into the current generation's frame log with the instant it saw them,
then ends the previous read transaction (:mod:`.pins`). Because a pass always runs between
the two, a reset that SQLite makes while the archiver holds the log happens exactly where the
archive ends; a new cycle is accepted only when its header proves it is the very next one
(its salt-1 one higher), or when it follows a checkpoint the archiver let through at the very
frame where the archive ends (after a TRUNCATE, the next writer may draw new random salts).
Anything else is a gap: the generation ends and
a new one starts from a new snapshot.

The log is reset under the archiver's control, so nothing waits on it for long:
- Its own resets, once the log holds ``reset_frames`` frames: it takes the writer lock for a
  moment (workers wait in their busy handler, they never see an error), copies to the end,
  lets go of its readers, runs a PASSIVE checkpoint and begins a new read; the next writer
  then starts the log over from the frame where the archive ends.
- Another program's FULL, RESTART or TRUNCATE checkpoint is seen on the -shm lock bytes
  (:mod:`.shm_locks`); it holds the writer lock while it waits, so no frame can be added:
  the archiver copies to the end, lets go of its readers so the checkpoint finishes, and
  begins a new read as soon as the checkpoint lock is free. A checkpoint run by the process
  the archiver runs in (the window's) is let through the same way inside
  :meth:`Archiver.own_checkpoint`; the log goes on in the same generation either way.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ErrorKind, classify_os_error, classify_sqlite_error
from ..files.db_files import require_existing_file, shm_path, wal_path
from ..progress import CancelCheck
from . import shm_locks
from .checkpoint_door import let_checkpoint_through
from .generations import GenerationStarter
from .page_deltas import PageImages, encode_delta_transaction
from .pins import WalPins, open_connection
from .store import (
    KIND_DELTA_TRANSACTION,
    KIND_HEARTBEAT,
    KIND_RESET,
    ArchiveError,
    FrameLog,
    acquire_lock,
    encode_reset,
    refresh_lock,
    release_lock,
)
from .validation import ValidationResult, ValidationSchedule
from .wal_index import IndexReader, index_reader
from .walfile import MAX_TRANSACTION_BYTES, WalHeader, WalRead, read_committed, read_header


@dataclass(frozen=True)
class ArchiveEvent:
    """Something the archiver did that a person should see: a generation, a gap, an error."""

    kind: str  # "generation", "gap", "error", "stopped"
    message: str
    at: float


@dataclass(frozen=True)
class ArchiverStatus:
    """A snapshot of the archiver's state for the window's toggle and the CLI's heartbeat."""

    running: bool
    generation: str | None
    generations_started: int
    snapshot_pending: bool
    lag_seconds: float | None
    last_seen_commit_at: float | None
    transactions: int
    archived_bytes: int
    resets_followed: int
    last_gap: str | None
    last_gap_at: float | None
    error: str | None
    #: The kind (:class:`ErrorKind` value) of the error that stopped the archiver, if any.
    error_kind: str | None = None


class Archiver:
    """Archives one live queue database into one archive folder until stopped."""

    def __init__(self, database: str | Path, archive_dir: str | Path, *,
                 retention_days: float | None = None, poll_seconds: float = 0.15,
                 reset_frames: int = 1000, heartbeat_seconds: float = 1.0,
                 rotate_seconds: float | None = None, rotate_bytes: int | None = None,
                 on_event: Callable[[ArchiveEvent], None] | None = None,
                 validate_seconds: float | None = None) -> None:
        self.database = Path(database).absolute()
        self.archive_dir = Path(archive_dir)
        self.retention_days = retention_days
        self.poll_seconds = poll_seconds
        self.reset_frames = reset_frames
        self.heartbeat_seconds = heartbeat_seconds
        #: A generation is continued by a new one (a new snapshot) after ``rotate_seconds``
        #: (None: the retention period, else a week), or once its frame logs hold
        #: ``rotate_bytes`` (None: twice the database's size, at least 16 MB).
        self.rotate_seconds = rotate_seconds
        self.rotate_bytes = rotate_bytes
        self.on_event = on_event
        self._wal = wal_path(self.database)
        self._shm = shm_path(self.database)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._status = ArchiverStatus(False, None, 0, False, None, None, 0, 0, 0, None, None,
                                      None)
        self._header: WalHeader | None = None
        self._frame = 0
        self._checksum = (0, 0)
        self._log: FrameLog | None = None
        self._last_record = 0.0
        self._last_reset_try = 0.0
        self._reset_at: tuple[tuple[int, int], int] | None = None
        self._own_checkpoints = 0
        #: Whether the lock probe names who holds a lock byte; elsewhere (Windows) the WAL
        #: index decides when a checkpoint may go through (:mod:`.checkpoint_door`).
        self.owners_known = shm_locks.owners_known()
        self.index_reader: IndexReader | None = index_reader(self._shm)
        #: Where the cycle before the current one ended: (salts, last archived frame).
        self.previous_cycle_end: tuple[tuple[int, int], int] | None = None
        #: How far an oversized transaction not yet committed was checked (cycle, from, to).
        self._scan_hint: tuple[tuple[int, int], int, tuple[int, tuple[int, int]]] | None = None
        self._images = PageImages()
        #: While a new generation's snapshot is written, the generation it continues keeps
        #: receiving every transaction too (its log and its page images).
        self.outgoing: tuple[FrameLog, PageImages] | None = None
        #: Validation every ``validate_seconds`` (None: only when asked), see :mod:`.validation`.
        self.validation = ValidationSchedule(self.database, self.archive_dir, validate_seconds,
                                             on_result=self._validated)

    # -- the public surface ---------------------------------------------------------------

    def start(self) -> None:
        """Run the archiver on its own thread; raises at once when it cannot start."""
        lock = self._prepare()
        self._thread = threading.Thread(target=self._run_in_thread, args=(lock,),
                                        name="wal-archiver", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Copy what is left, end the generation cleanly, and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> ArchiverStatus:
        """The current state (thread-safe); lag is recomputed for this instant."""
        with self._lock:
            status = self._status
        if status.running and self._last_pass_at is not None:
            status = replace(status, lag_seconds=max(0.0, time.time() - self._last_pass_at))
        return status

    @contextlib.contextmanager
    def own_checkpoint(self) -> Iterator[None]:
        """Around a RESTART or TRUNCATE checkpoint run by this process: let it through.

        The caller holds this process's other writers back (:mod:`..process_writers`), so a
        write lock held by this process while the flag is up belongs to the checkpoint.
        """
        with self._lock:
            self._own_checkpoints += 1
        try:
            yield
        finally:
            with self._lock:
                self._own_checkpoints -= 1

    def run(self, cancelled: CancelCheck | None = None) -> None:
        """Archive on this thread until ``cancelled()`` turns true or :meth:`stop` is called."""
        self._run_locked(self._prepare(), cancelled)

    # -- the loop -------------------------------------------------------------------------

    _last_pass_at: float | None = None

    def _prepare(self) -> Path:
        action = f"Archiving '{self.database}'"
        require_existing_file(self.database, action, ArchiveError)
        try:
            self.archive_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ArchiveError(f"{action} failed: the archive folder '{self.archive_dir}' "
                               f"cannot be created ({error.strerror or error}); choose "
                               "another folder.", ErrorKind.NOT_A_FOLDER) from error
        probe = open_connection(self.database, 1000)
        try:
            mode = str(probe.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        finally:
            probe.close()
        if mode != "wal":
            raise ArchiveError(f"{action} refused: the database is in {mode} mode, and only "
                               "a WAL database can be archived continuously.",
                               ErrorKind.INVALID)
        return acquire_lock(self.archive_dir, self.database, time.time())

    def _run_in_thread(self, lock: Path) -> None:
        """The thread's body: an error ends it quietly, already in :meth:`status`."""
        with contextlib.suppress(Exception):
            self._run_locked(lock, None)

    _failure: BaseException | None = None

    def _run_locked(self, lock: Path, cancelled: CancelCheck | None) -> None:
        self._set(running=True, error=None)
        pins = WalPins(self.database)
        writer = open_connection(self.database, 5000)
        checkpointer = open_connection(self.database, 1000)
        starter = GenerationStarter(self, writer, pins)
        try:
            self._loop(lock, cancelled, pins, writer, checkpointer, starter)
        except Exception as error:
            kind = getattr(error, "kind", None)
            if not isinstance(kind, ErrorKind):
                kind = (classify_sqlite_error(error) if isinstance(error, sqlite3.Error)
                        else classify_os_error(error) if isinstance(error, OSError)
                        else ErrorKind.BUG)
            self._failure = error
            self._set(error=str(error), error_kind=kind.value)
            self._emit("error", f"The archiver stopped: {error}")
            raise
        finally:
            self.validation.stop()
            with contextlib.suppress(Exception):
                self._finish(starter)
            pins.close()
            writer.close()
            checkpointer.close()
            release_lock(lock)
            self._set(running=False)

    def _loop(self, lock: Path, cancelled: CancelCheck | None, pins: WalPins,
              writer: sqlite3.Connection, checkpointer: sqlite3.Connection,
              starter: GenerationStarter) -> None:
        last_refresh = 0.0
        while not (self._stop.is_set() or (cancelled is not None and cancelled())):
            if starter.needs_new_generation():
                starter.start(self._log)
            elif starter.rotation_due() and not self._own_checkpoints:
                starter.rotate()
            starter.poll()
            failed = self.validation.tick(self._status.generation,
                                          not self._status.snapshot_pending)
            if failed is not None and self._log is not None:
                self.gap_found(failed)
            own = self._own_checkpoints > 0
            if shm_locks.checkpoint_waiting(self._shm, own, self.owners_known):
                let_checkpoint_through(self, pins, own)
            pins.begin_next()
            self._copy_pass()
            pins.end_previous()
            if self._frame >= self.reset_frames and not (starter.snapshot_running or own):
                self._reset(pins, writer, checkpointer)
            now = time.time()
            if now - last_refresh > 5.0:
                refresh_lock(lock)
                last_refresh = now
            starter.apply_retention()
            self._stop.wait(min(self.poll_seconds, 0.01) if own else self.poll_seconds)

    def _finish(self, starter: GenerationStarter) -> None:
        starter.cancel_snapshot()  # an unfinished new generation goes; the one before stays
        if self._log is None or starter.generation is None:
            return
        if self._failure is None:
            try:
                self._copy_pass()
                self._heartbeat(force=True)
                self._log.close()
            except Exception as error:  # noqa: BLE001 - recorded as the generation's end
                self._failure = error
            else:
                starter.end_generation("the archiver was stopped")
                self._emit("stopped", "The archiver stopped; the archive is complete up to "
                                      "this moment.")
                return
        with contextlib.suppress(Exception):
            self._log.close()
        starter.end_generation(f"the archiver stopped on an error: {self._failure}")
        self._emit("stopped", "The archiver stopped on an error; the archive holds what it "
                              "had copied until then.")

    # -- copying --------------------------------------------------------------------------

    def begin_cycle(self, header: WalHeader | None, frame: int, checksum: tuple[int, int],
                    log: FrameLog | None) -> None:
        """Where copying continues (called when a generation starts)."""
        self._header, self._frame, self._checksum, self._log = header, frame, checksum, log
        self._images = PageImages()  # deltas only against images archived in this generation
        self._reset_at = None
        self._last_record = time.time()

    def _copy_pass(self) -> None:
        """Copy every whole transaction now in the log; follow or refuse a reset."""
        if self._log is None:
            return
        started = time.time()
        header = self._header
        if header is None:
            current, _ = read_header(self._wal)
            if current is None:
                self._passed(started)
                return
            self._header, self._frame, self._checksum = current, 0, current.checksum
            header = current
        while True:
            found = self._read(header)
            seen = time.time()
            self._store(found.transactions, header, seen)
            self._frame, self._checksum = found.end_frame, found.checksum
            if found.oversized_end is not None:
                self._oversized(found.oversized_end[0])
                return
            if found.transactions:
                self._reset_at = None  # the log went on past the point a reset was allowed
            if found.header is not None and found.header.salts != header.salts:
                allowed = self._reset_at == (header.salts, self._frame)
                if not (found.header.follows(header) or allowed):
                    self.gap_found(f"the WAL was reset more than once between two looks "
                                   f"(salt-1 went from {header.salt1} to "
                                   f"{found.header.salt1}), so frames may be missing")
                    return
                if not found.header.follows(header):
                    self._record_reset(header, found.header)
                self.previous_cycle_end = (header.salts, self._frame)
                self._header, self._frame, self._reset_at = found.header, 0, None
                self._checksum = found.header.checksum
                header = found.header
                self._set_count(resets=1)
                continue
            if found.transactions and found.end_frame < found.file_size:
                more = self._read(header)
                if more.transactions:
                    self._store(more.transactions, header, time.time())
                    self._frame, self._checksum = more.end_frame, more.checksum
                if more.oversized_end is not None:
                    self._oversized(more.oversized_end[0])
                    return
            break
        self._passed(started)

    def _read(self, header: WalHeader) -> WalRead:
        """Read on from the archive's end, resuming a check of an oversized transaction."""
        hint = self._scan_hint
        resume = hint[2] if hint and hint[:2] == (header.salts, self._frame) else None
        found = read_committed(self._wal, header, self._frame, self._checksum, resume=resume)
        self._scan_hint = ((header.salts, found.end_frame, found.scanned)
                           if found.scanned else None)
        return found

    def _oversized(self, ends_at: int) -> None:
        """A transaction too large to archive page by page committed: a snapshot takes it."""
        self._scan_hint = None
        self.gap_found(f"a transaction of more than {MAX_TRANSACTION_BYTES // 2 ** 20} MB "
                       f"(frames {self._frame + 1} to {ends_at}; a VACUUM, for instance) was "
                       "committed, and a new snapshot holds it instead of its pages")

    def _store(self, transactions: list, header: WalHeader, seen: float) -> None:
        if not transactions or self._log is None:
            return
        cycle = (header.checkpoint_sequence, header.salt1, header.salt2)
        written = 0
        for log, images in self._logs():
            for transaction in transactions:
                payload = encode_delta_transaction(transaction, cycle, header.page_size, images)
                written += log.append(KIND_DELTA_TRANSACTION, seen, payload)
            log.flush()
        self._last_record = seen
        self._set_count(transactions=len(transactions), archived=written, seen=seen)

    def _record_reset(self, old: WalHeader, new: WalHeader) -> None:
        """Note a reset let through at the archive's end whose new salts are not old + 1."""
        for log, _ in self._logs():
            log.append(KIND_RESET, time.time(), encode_reset(old.salts, self._frame, new.salts))
            log.flush()

    def _logs(self) -> list[tuple[FrameLog, PageImages]]:
        """The current generation's log, and the outgoing one's while it still runs."""
        if self._log is None:
            return []
        return [(self._log, self._images), *([self.outgoing] if self.outgoing else [])]

    def _passed(self, started: float) -> None:
        self._last_pass_at = started
        self._heartbeat()

    def _heartbeat(self, force: bool = False) -> None:
        if self._log is None or self._last_pass_at is None:
            return
        if force or self._last_pass_at - self._last_record >= self.heartbeat_seconds:
            stamp = max(self._last_pass_at, self._last_record)
            for log, _ in self._logs():
                log.append(KIND_HEARTBEAT, stamp, b"")
                log.flush(durable=True)
            self._last_record = stamp

    def gap_found(self, why: str) -> None:
        """Continuity is lost: end this generation; the loop starts a new one."""
        at = time.time()
        self._set(last_gap=why, last_gap_at=at)
        self._emit("gap", f"Gap in the archive: {why}; a new generation starts from a new "
                          "snapshot.")
        self._needs_generation_reason = f"a gap: {why}"
        for log, _ in self._logs():
            log.close()
        self._log = None

    _needs_generation_reason: str | None = None

    # -- letting the log be reset -----------------------------------------------------------

    def _reset(self, pins: WalPins, writer: sqlite3.Connection,
               checkpointer: sqlite3.Connection) -> None:
        """Let the log start over where the archive ends (see the module's description)."""
        now = time.monotonic()
        if now - self._last_reset_try < 1.0:
            return
        self._last_reset_try = now
        try:
            writer.execute("PRAGMA busy_timeout=200")
            writer.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return  # a writer or another checkpoint has the lock: try again later
        try:
            self._copy_pass()
            copied = self._frame
            pins.release()
            _, in_log, _ = checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            pins.begin_next()
            pins.end_previous()
            if in_log > copied and self._header is not None:
                self.gap_found(f"the checkpoint found {in_log} frames in the WAL but only "
                               f"{copied} were archived")
        finally:
            writer.execute("ROLLBACK")

    # -- status ---------------------------------------------------------------------------

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)  # type: ignore[arg-type]

    def _set_count(self, transactions: int = 0, archived: int = 0, resets: int = 0,
                   seen: float | None = None) -> None:
        with self._lock:
            status = self._status
            self._status = replace(
                status, transactions=status.transactions + transactions,
                archived_bytes=status.archived_bytes + archived,
                resets_followed=status.resets_followed + resets,
                last_seen_commit_at=seen if seen is not None else status.last_seen_commit_at)

    def _validated(self, result: ValidationResult) -> None:
        """A validation on the interval ended: say how (a failure also ends the generation)."""
        self._emit("validation failed" if result.ok is False else "validation", result.sentence)

    def _emit(self, kind: str, message: str) -> None:
        if self.on_event is not None:
            self.on_event(ArchiveEvent(kind, message, time.time()))
