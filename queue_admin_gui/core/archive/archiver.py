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

Continuity is proven, not assumed, wherever the WAL index can be read (Linux, Windows): its
counter moves by one for every transaction committed to the log, in any cycle, so the archive
holds every commit exactly when the transactions it archived since the generation began equal
how far the counter moved. The archiver checks that after every pass, whenever the archive
and the index agree on where the log ends. Transactions of a new cycle are held back, not
written, until that check passes; if it fails (a cycle came and went unseen, a commit was
reset away before it could be copied), the generation ends with a gap saying how many
commits are missing and a new snapshot starts at once. A database file replaced under the
archiver (another file now has its name) ends the generation the same way.

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
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ErrorKind, classify_os_error, classify_sqlite_error
from ..files.db_files import require_existing_file, shm_path, wal_path
from ..progress import CancelCheck
from . import shm_locks
from .checkpoint_door import let_checkpoint_through
from .clock import StampClock
from .footprint import give_back_memory
from .generations import GenerationStarter, file_identity
from .page_deltas import BATCH_BYTES, PageImages, batches_of, encode_delta_transactions
from .pins import WalPins, open_connection
from .priority import lower_current_thread
from .safety_point import ProofDesk
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
from .wal_index import (
    IndexHeader,
    IndexReader,
    file_head_reader,
    index_reader,
    live_index_reader,
)
from .walfile import MAX_TRANSACTION_BYTES, WalHeader, WalRead, read_committed, read_header

#: A new WAL cycle not proven to follow the archive within this long ends the generation.
PROOF_SECONDS = 5.0
#: Records held back this long are proven with the write lock held for a moment.
HELD_SECONDS = 0.2
#: The database header (page 1's first bytes) and how many archived versions are remembered.
DATABASE_HEAD_BYTES = 100
KNOWN_HEADS = 4096
#: How often the loop looks for a waiting checkpoint between passes: normally, and for a
#: while (STORM_SECONDS) after one was let through.
PROBE_SECONDS = 0.05
STORM_PROBE_SECONDS = 0.001
STORM_SECONDS = 10.0
#: How often the loop hands memory freed since back to the system (:mod:`.footprint`): a
#: snapshot, a burst of commits or a validation leaves freed pages the C allocator keeps.
GIVE_BACK_SECONDS = 60.0


@dataclass(frozen=True)
class ArchiveEvent:
    """Something the archiver did that a person should see: a generation, a gap, an error."""

    kind: str  # "generation", "gap", "error", "stopped", "clock"
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
    #: Wall-clock steps seen (:mod:`.clock`), and the last one: (stamp, seconds moved).
    clock_steps: int = 0
    last_clock_step: tuple[float, float] | None = None
    #: The lowered priority the loop runs at ("nice 5, I/O best-effort 7"; None: normal).
    priority: str | None = None


class Archiver:
    """Archives one live queue database into one archive folder until stopped.

    The archiver is the one owner of the archive cursor's state: where copying stands in the
    WAL (header, frame, checksum), the frame log it writes to and its page images, the
    records held back until continuity is proven, the commit count that proves it, and the
    generation it continues while a new snapshot is written. :mod:`.generations` and
    :mod:`.checkpoint_door` work on it only through the public methods and read-only
    properties under "the cursor, for generations and the checkpoint door" below.

    Threads. *The loop* is the thread that archives: the one :meth:`start` makes
    ("wal-archiver"), or the caller of :meth:`run`. Every field under a "loop only" heading
    in ``__init__`` is read and written by the loop alone (the generation starter and the
    checkpoint door run on it too), so it needs no lock. The window's and the CLI's threads
    call :meth:`status`, :meth:`own_checkpoint` and :meth:`stop`; each field they share with
    the loop says which lock guards it. The snapshot's backup thread (:mod:`.generations`) and
    the validation thread (:mod:`.validation`) touch none of these fields; validation reports
    through :meth:`emit`, which only calls ``on_event``. The loop's connections (the read
    transactions that pin the WAL, :class:`.pins.WalPins`; the writer that takes the write
    lock; the checkpointer) are the loop's local variables, lent to the generation starter
    and the checkpoint door, and made again when the database file is replaced.
    """

    def __init__(self, database: str | Path, archive_dir: str | Path, *,
                 retention_days: float | None = None, poll_seconds: float = 0.15,
                 reset_frames: int = 1000, heartbeat_seconds: float = 1.0,
                 rotate_seconds: float | None = None, rotate_bytes: int | None = None,
                 on_event: Callable[[ArchiveEvent], None] | None = None,
                 validate_seconds: float | None = None,
                 clock: Callable[[], float] = time.time, low_priority: bool = False) -> None:
        # -- set here, never changed: read by any thread ----------------------------------
        #: The live database, its WAL and its shared-memory index (``-shm``), named as SQLite
        #: names them: on POSIX it follows symlinks, so the side files of a queue opened
        #: through a link lie beside the link's target (Windows does not).
        self.database = Path(database).resolve() if os.name == "posix" \
            else Path(database).absolute()
        self.wal_file = wal_path(self.database)
        self.shm_file = shm_path(self.database)
        self.archive_dir = Path(archive_dir)
        #: Generations whose newest instant is older than this many days are deleted.
        self.retention_days = retention_days
        #: Seconds between passes; the archiver resets the log itself at ``reset_frames``
        #: frames; a heartbeat record is written after ``heartbeat_seconds`` without one.
        self.poll_seconds = poll_seconds
        self.reset_frames = reset_frames
        self.heartbeat_seconds = heartbeat_seconds
        #: A generation is continued by a new one (a new snapshot) after ``rotate_seconds``
        #: (None: the retention period, else a week), or once its frame logs hold
        #: ``rotate_bytes`` (None: twice the database's size, at least 16 MB).
        self.rotate_seconds = rotate_seconds
        self.rotate_bytes = rotate_bytes
        #: Told of generations, gaps, errors (called on the loop and the validation thread).
        self.on_event = on_event
        #: Whether the loop lowers its thread's CPU and I/O priority (:mod:`.priority`).
        self.low_priority = low_priority
        #: Every stamp the archive records comes from here (ordered across clock steps; it
        #: has a lock of its own, as :meth:`status` reads it on the caller's thread).
        self.stamps = StampClock(clock)
        #: Whether the lock probe names who holds a lock byte; elsewhere (Windows) the WAL
        #: index decides when a checkpoint may go through (:mod:`.checkpoint_door`).
        self.owners_known = shm_locks.owners_known()
        #: Reads the WAL index's header (salts, where the log ends); None where it cannot.
        self.index_reader: IndexReader | None = index_reader(self.shm_file)
        #: Reads the WAL index's commit counter, which proves continuity; None where it cannot
        #: be read (the archiver then relies on its read marks alone).
        self.counter_reader: IndexReader | None = live_index_reader(self.shm_file)
        #: Reads the database file's first 100 bytes (None where it cannot).
        self._head_reader = file_head_reader(self.database)
        #: Requests for a proof that the archive holds every commit so far (:mod:`.safety_point`);
        #: the desk itself is used by the loop alone.
        self.proofs = ProofDesk(self.archive_dir)
        #: Validation every ``validate_seconds`` (None: only when asked), see :mod:`.validation`;
        #: ticked by the loop, it runs on a thread of its own.
        self.validation = ValidationSchedule(self.database, self.archive_dir, validate_seconds,
                                             on_result=self._validated)

        # -- shared between the loop and the callers' threads -----------------------------
        #: Set by :meth:`stop` (any thread) to end the loop.
        self._stop = threading.Event()
        #: The loop's thread when :meth:`start` made one (set by the caller of start).
        self._thread: threading.Thread | None = None
        #: Guards ``_status`` and ``_own_checkpoints``.
        self._lock = threading.Lock()
        #: What :meth:`status` reports. Replaced whole under ``_lock`` (by the loop, through
        #: :meth:`set_status`); the loop also reads it without the lock (one reference read).
        self._status = ArchiverStatus(False, None, 0, False, None, None, 0, 0, 0, None, None,
                                      None)
        #: How many RESTART or TRUNCATE checkpoints of this process are under way
        #: (:meth:`own_checkpoint`, any thread, under ``_lock``); the loop reads it unlocked.
        self._own_checkpoints = 0
        #: When the last pass began (a stamp): written by the loop, read by :meth:`status`
        #: without the lock (one float read) to compute the lag.
        self._last_pass_at: float | None = None

        # -- the cursor: where copying stands (loop only) ---------------------------------
        #: The header of the WAL cycle being copied (None: no cycle taken up yet).
        self._header: WalHeader | None = None
        #: The last frame of that cycle archived (0: none), and the running checksum there.
        self._frame = 0
        self._checksum = (0, 0)
        #: How far an oversized transaction not yet committed was checked (cycle, from, to).
        self._scan_hint: tuple[tuple[int, int], int, tuple[int, tuple[int, int]]] | None = None
        #: A reset allowed at the archive's end by a checkpoint let through, (salts, frame):
        #: the next cycle is followed there even with new random salts.
        self._reset_at: tuple[tuple[int, int], int] | None = None
        #: Where the cycle before the current one ended: (salts, last archived frame).
        self.previous_cycle_end: tuple[tuple[int, int], int] | None = None

        # -- the cursor: where it writes (loop only) --------------------------------------
        #: The current generation's frame log (None: no generation, or it ended on a gap).
        self._log: FrameLog | None = None
        #: The page images of this generation that later pages are stored as deltas of.
        self._images = PageImages()
        #: While a new generation's snapshot is written, the generation it continues keeps
        #: receiving every transaction too (its log and its page images).
        self._outgoing: tuple[FrameLog, PageImages] | None = None
        #: The stamp of the last record written (a heartbeat follows after a quiet while).
        self._last_record = 0.0
        #: Why a new generation must start (set by a gap; None: none needed).
        self._needs_generation_reason: str | None = None

        # -- the cursor: proving continuity (loop only) -----------------------------------
        #: The counter's value where the current stream was known complete (None: not
        #: counting), and the transactions archived (or held back) since.
        self._counted_from: int | None = None
        self._archived_since = 0
        #: Records of a new cycle held back until continuity is proven: (log, kind, stamp,
        #: payload), and when the holding began (monotonic; None: nothing held back).
        self._held: list[tuple[FrameLog, bytes, float, bytes]] = []
        self._held_since: float | None = None
        #: The database file's first 100 bytes as every page 1 archived (or in the log when
        #: the generation began) has them: a checkpoint only ever writes one of these there.
        self._known_heads: OrderedDict[bytes, None] = OrderedDict()
        #: Which file has the database's name (device, file number) when the loop began.
        self._identity: tuple[int, int] | None = None

        # -- the loop's own bookkeeping (loop only) ---------------------------------------
        #: When the archiver last tried to reset the log itself (monotonic).
        self._last_reset_try = 0.0
        #: When a checkpoint was last let through (the loop looks for the next one sooner).
        self.checkpoint_seen_at = -1e9
        #: A checkpoint was seen waiting between passes: let it through on the next one.
        self._checkpoint_seen = False
        #: How many passes have completed (a proof request is answered after a pass that
        #: began once it was seen).
        self.passes = 0
        #: The error that stopped the loop, if any (recorded as the generation's end).
        self._failure: BaseException | None = None

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
            status = replace(status, lag_seconds=max(0.0, self.stamps.now() - self._last_pass_at))
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

    # -- the cursor, for generations and the checkpoint door (loop only) -------------------

    @property
    def header(self) -> WalHeader | None:
        """The header of the WAL cycle being copied (None: no cycle taken up yet)."""
        return self._header

    @property
    def frame(self) -> int:
        """The last frame of the current cycle that is archived (0: none)."""
        return self._frame

    @property
    def log(self) -> FrameLog | None:
        """The current generation's frame log (None: no generation, or it ended on a gap)."""
        return self._log

    @property
    def outgoing(self) -> tuple[FrameLog, PageImages] | None:
        """The generation continued while a new one's snapshot is written: log, page images."""
        return self._outgoing

    @property
    def counting(self) -> bool:
        """True while the WAL index's commit counter proves this generation's continuity."""
        return self._counted_from is not None

    @property
    def holds_records(self) -> bool:
        """True while records of a new cycle are held back until continuity is proven."""
        return bool(self._held)

    @property
    def generation_wanted(self) -> bool:
        """True when a new generation must start (after a gap, or a start to try again)."""
        return self._needs_generation_reason is not None

    def take_generation_reason(self) -> str | None:
        """Why a new generation must start (None: nobody asked); the request is cleared."""
        reason, self._needs_generation_reason = self._needs_generation_reason, None
        return reason

    def ask_for_generation(self, reason: str) -> None:
        """Start a new generation on the next pass; ``reason`` goes into its description."""
        self._needs_generation_reason = reason

    def allow_reset_at_end(self) -> None:
        """Follow a reset at the archive's end, even into a cycle with new random salts.

        Called when a checkpoint let through holds the write lock, so the log ends where the
        archive does.
        """
        if self._header is not None:
            self._reset_at = (self._header.salts, self._frame)

    def keep_outgoing(self) -> None:
        """A new generation starts while the current one goes on (until :meth:`end_outgoing`).

        The current log and page images become the outgoing ones and keep receiving every
        transaction.
        """
        if self._log is not None:
            self._outgoing = (self._log, self._images)

    def end_outgoing(self) -> FrameLog | None:
        """The new generation is restorable: nothing more goes to the outgoing one.

        Returns its frame log, for its last record (None: there was no outgoing generation).
        """
        outgoing, self._outgoing = self._outgoing, None
        return outgoing[0] if outgoing is not None else None

    def resume_outgoing(self) -> None:
        """The new generation failed: the outgoing one goes on as the current generation."""
        if self._outgoing is not None:
            self._log, self._images = self._outgoing
            self._outgoing = None

    def close_log(self) -> None:
        """Close the current frame log (its generation never became usable).

        It stays the current one until :meth:`begin_cycle` or :meth:`resume_outgoing`
        replaces it.
        """
        if self._log is not None:
            self._log.close()

    def drop_log(self) -> None:
        """Close the current frame log and write nothing more until a new generation."""
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- the loop -------------------------------------------------------------------------

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

    def _run_locked(self, lock: Path, cancelled: CancelCheck | None) -> None:
        priority = lower_current_thread() if self.low_priority else None
        self.set_status(running=True, error=None, priority=priority)
        self.stamps.keep_after(GenerationStarter.newest_instant(self.archive_dir))
        self._identity = file_identity(self.database)
        pins = WalPins(self.database)
        writer = open_connection(self.database, 5000)
        checkpointer = open_connection(self.database, 1000)
        starter = GenerationStarter(self, writer, pins)
        try:
            while self._loop(lock, cancelled, pins, writer, checkpointer, starter):
                # The file was replaced: the connections still read the old one.
                pins.close()
                writer.close()
                checkpointer.close()
                self._identity = file_identity(self.database)
                pins = WalPins(self.database)
                writer = open_connection(self.database, 5000)
                checkpointer = open_connection(self.database, 1000)
                starter.reconnect(writer, pins)
        except Exception as error:
            kind = getattr(error, "kind", None)
            if not isinstance(kind, ErrorKind):
                kind = (classify_sqlite_error(error) if isinstance(error, sqlite3.Error)
                        else classify_os_error(error) if isinstance(error, OSError)
                        else ErrorKind.BUG)
            self._failure = error
            self.set_status(error=str(error), error_kind=kind.value)
            self.emit("error", f"The archiver stopped: {error}")
            raise
        finally:
            self.validation.stop()
            with contextlib.suppress(Exception):
                self._finish(starter)
            pins.close()
            writer.close()
            checkpointer.close()
            release_lock(lock)
            self.set_status(running=False)

    def _loop(self, lock: Path, cancelled: CancelCheck | None, pins: WalPins,
              writer: sqlite3.Connection, checkpointer: sqlite3.Connection,
              starter: GenerationStarter) -> bool:
        """Archive until stopped (False), or until the file was replaced (True: reconnect)."""
        last_refresh, last_give_back = 0.0, time.monotonic()
        while not (self._stop.is_set() or (cancelled is not None and cancelled())):
            self.validation.working()
            self._note_clock_steps(starter)
            if self._replaced():
                if self._log is not None:
                    self.gap_found("the database file was replaced (another file now has its "
                                   "name, e.g. restored or copied over by another program)")
                self.validation.resting()
                return True
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
            if self._checkpoint_seen or shm_locks.checkpoint_waiting(self.shm_file, own,
                                                                     self.owners_known):
                let_checkpoint_through(self, pins, own)
            proofs = self.proofs.pending()
            passes = self.passes
            pins.begin_next()
            self.copy_pass()
            pins.end_previous()
            if proofs and self.passes > passes:
                self._answer_proofs(proofs)
            if self._held_since is not None and not own and (
                    time.monotonic() - self._held_since > HELD_SECONDS):
                self._prove_standing_still(writer)
            if self._frame >= self.reset_frames and not (starter.snapshot_running or own):
                self._reset(pins, writer, checkpointer)
            now = time.monotonic()
            if now - last_refresh > 5.0:
                refresh_lock(lock)
                last_refresh = now
            if now - last_give_back > GIVE_BACK_SECONDS:
                give_back_memory()
                last_give_back = now
            starter.apply_retention()
            self.validation.resting()
            self._wait_for_next_pass(own)
        self.validation.resting()
        return False

    def _wait_for_next_pass(self, own: bool) -> None:
        """Sleep until the next pass, waking at once for a checkpoint that waits on us.

        A FULL, RESTART or TRUNCATE checkpoint holds the writers back while it waits for the
        archiver's readers, so it is looked for often: every :data:`STORM_PROBE_SECONDS`
        while checkpoints came recently (five times that where a look takes the lock byte
        for a moment), else every :data:`PROBE_SECONDS`.
        """
        self._checkpoint_seen = False
        if own:
            self._stop.wait(min(self.poll_seconds, 0.01))
            return
        deadline = time.monotonic() + self.poll_seconds
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            storm = now - self.checkpoint_seen_at < STORM_SECONDS
            # Where holders are not named (Windows) a probe briefly takes the byte itself,
            # so it looks between passes only while checkpoints keep coming.
            probe = (STORM_PROBE_SECONDS * (1 if self.owners_known else 5) if storm
                     else PROBE_SECONDS if self.owners_known else deadline - now)
            self._stop.wait(min(deadline - now, probe))
            if shm_locks.checkpoint_waiting(self.shm_file, False, self.owners_known):
                self._checkpoint_seen = True
                return

    def _replaced(self) -> bool:
        """True when another file now has the database's name."""
        now = file_identity(self.database)
        return None not in (now, self._identity) and now != self._identity

    def _note_clock_steps(self, starter: GenerationStarter) -> None:
        """Record wall-clock steps in the generation and the status; say so once."""
        steps = self.stamps.take_steps()
        if not steps:
            return
        starter.record_clock_steps(steps)
        last = steps[-1]
        with self._lock:
            self._status = replace(self._status,
                                   clock_steps=self._status.clock_steps + len(steps),
                                   last_clock_step=(last.at, last.seconds))
        for step in steps:
            direction = "back" if step.seconds < 0 else "forward"
            self.emit("clock", f"The system clock was stepped {direction} by "
                               f"{abs(step.seconds):.1f} s; the archive keeps its instants in "
                               "order (see archive-status).")

    def _finish(self, starter: GenerationStarter) -> None:
        starter.cancel_snapshot()  # an unfinished new generation goes; the one before stays
        if self._log is None or starter.generation is None:
            return
        if self._failure is None:
            try:
                self.copy_pass()
                if self._held_since is not None:
                    self.prove(final=True)
                if self._log is None:  # continuity could not be proven at the end
                    starter.end_generation(f"a gap: {self.status().last_gap}")
                    self.emit("stopped", "The archiver stopped; the archive is complete up "
                                         "to the gap it recorded.")
                    return
                self._heartbeat(force=True)
                self._log.close()
            except Exception as error:  # noqa: BLE001 - recorded as the generation's end
                self._failure = error
            else:
                starter.end_generation("the archiver was stopped")
                self.emit("stopped", "The archiver stopped; the archive is complete up to "
                                     "this moment.")
                return
        with contextlib.suppress(Exception):
            self._log.close()
        starter.end_generation(f"the archiver stopped on an error: {self._failure}")
        self.emit("stopped", "The archiver stopped on an error; the archive holds what it "
                             "had copied until then.")

    # -- copying --------------------------------------------------------------------------

    def begin_cycle(self, header: WalHeader | None, frame: int, checksum: tuple[int, int],
                    log: FrameLog | None, counted_from: int | None = None) -> None:
        """Where copying continues (called when a generation starts).

        ``counted_from``: the WAL index's commit counter read while the write lock was held
        with the log ending at ``frame`` (None: it could not be read).
        """
        self._header, self._frame, self._checksum, self._log = header, frame, checksum, log
        self._images = PageImages()  # deltas only against images archived in this generation
        self._reset_at = None
        self._counted_from, self._archived_since = counted_from, 0
        self._held, self._held_since = [], None
        self._last_record = self.stamps.now()

    def remember_head(self, page: bytes) -> None:
        """A page 1 image the database file may hold after a checkpoint (bounded memory)."""
        head = bytes(page[:DATABASE_HEAD_BYTES])
        self._known_heads.pop(head, None)
        self._known_heads[head] = None
        while len(self._known_heads) > KNOWN_HEADS:
            self._known_heads.popitem(last=False)

    def database_head(self) -> bytes | None:
        """The database file's first 100 bytes as the file holds them now (None: unknown)."""
        if self._head_reader is None:
            return None
        try:
            return self._head_reader()
        except OSError:
            return None

    def read_counter(self, frame: int, salts: tuple[int, int] | None) -> int | None:
        """The index's commit counter when it agrees that the log ends at ``frame``.

        Called while the write lock is held, so nothing can commit meanwhile.
        """
        index = self.counter_reader() if self.counter_reader is not None else None
        if index is None:
            return None
        if index.max_frame == frame and (frame == 0 or index.salts == salts):
            return index.change
        return None

    def copy_pass(self) -> None:
        """Copy every whole transaction now in the log, then check continuity."""
        self.copy_to_end()
        if self._log is not None and self._counted_from is not None:
            self.prove()

    def copy_to_end(self) -> None:
        """Copy every whole transaction now in the log; follow or refuse a reset."""
        if self._log is None:
            return
        started = self.stamps.now()
        header = self._header
        if header is None:
            current, _ = read_header(self.wal_file)
            if current is None:
                self._passed(started)
                return
            self._header, self._frame, self._checksum = current, 0, current.checksum
            header = current
        while True:
            found = self._read(header)
            seen = self.stamps.now()
            self._store(found.transactions, header, seen)
            self._frame, self._checksum = found.end_frame, found.checksum
            if found.oversized_end is not None:
                self._oversized(found.oversized_end[0])
                return
            if found.transactions:
                self._reset_at = None  # the log went on past the point a reset was allowed
            if found.header is not None and found.header.salts != header.salts:
                allowed = self._reset_at == (header.salts, self._frame)
                if self._counted_from is not None:
                    # Proven or refused by the commit counter before anything of it is kept.
                    allowed = True
                    if self._held_since is None:
                        self._held_since = time.monotonic()
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
                del found  # its buffer goes before the next read's comes
                more = self._read(header)
                if more.transactions:
                    self._store(more.transactions, header, self.stamps.now())
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
        found = read_committed(self.wal_file, header, self._frame, self._checksum, resume=resume)
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
        for transaction in transactions:
            for frame in transaction.frames:
                if frame.page_number == 1:
                    self.remember_head(frame.page)
        for log, images in self._logs():
            # The pages of many transactions are compared with their earlier images at once
            # (numpy's cost per call is then shared by them all), a bounded batch at a time:
            # a batch holds the earlier images it replaced until it is encoded.
            for batch in batches_of(transactions, BATCH_BYTES // header.page_size):
                for payload in encode_delta_transactions(batch, cycle, header.page_size,
                                                         images):
                    written += self._append(log, KIND_DELTA_TRANSACTION, seen, payload)
            log.flush()
        self._archived_since += len(transactions)
        self._last_record = seen
        self._set_count(transactions=len(transactions), archived=written, seen=seen)

    def _append(self, log: FrameLog, kind: bytes, stamp: float, payload: bytes) -> int:
        """Append a record, or hold it back while the cycle it belongs to is unproven."""
        if self._held_since is None:
            return log.append(kind, stamp, payload)
        self._held.append((log, kind, stamp, payload))
        return 0

    def prove(self, final: bool = False) -> None:
        """Check the commit counter against what was archived; keep what is proven.

        Conclusive only when the index, read after a look at the log, says the log ends where
        the archive does (or, not having moved across the look, that it was reset). More
        commits than archived is a gap; a held cycle unproven after :data:`PROOF_SECONDS`
        (the log never stood still long enough) is one too.
        """
        reader = self.counter_reader
        if reader is None or self._counted_from is None:
            return
        for _ in range(3 if final or self._held_since is not None else 1):
            before = reader()
            self.copy_to_end()
            after = reader()
            if self._log is None:
                return
            # Where the log ends as the archive does, every commit counted is in the archive
            # or gone for good. An empty log (just reset) proves that only if nothing moved
            # while the archive read on: the old cycle's tail may still be in the file.
            if after is not None and self._in_step(after) and (
                    after.max_frame > 0 or before == after):
                made = (after.change - self._counted_from) & 0xFFFFFFFF
                if made == self._archived_since:
                    self._release_held()
                    self._check_database_head()
                    return
                if made > self._archived_since:
                    missing = made - self._archived_since
                    self.gap_found(f"{missing} committed transaction(s) never reached the "
                                   "archive (the WAL was reset before they could be copied, "
                                   "e.g. by checkpoints from other programs)")
                    return
            if final:
                time.sleep(0.05)
        if self._held_since is not None and (
                final or time.monotonic() - self._held_since > PROOF_SECONDS):
            self.gap_found("a new WAL cycle could not be proven to follow the archive (the "
                           "WAL never stood still long enough to count its commits)")

    def _check_database_head(self) -> None:
        """Every commit is archived: the file's header must be one the log put there.

        Anything else was written past the WAL: the file was overwritten in place (a backup
        copied over it by another program, say), which no archived frame explains.
        """
        head = self.database_head()
        if head is None or not self._known_heads or len(head) < DATABASE_HEAD_BYTES:
            return
        if head not in self._known_heads:
            self.gap_found("the database file was changed outside its WAL (overwritten in "
                           "place, e.g. a backup copied over it by another program)")

    def _in_step(self, index: IndexHeader) -> bool:
        """True when the index says the log ends exactly where the archive does."""
        if index.max_frame == 0:
            return True
        header = self._header
        return header is not None and index.salts == header.salts \
            and index.max_frame == self._frame

    def _release_held(self) -> None:
        """Continuity is proven: write what was held back."""
        held, self._held, self._held_since = self._held, [], None
        logs = []
        for log, kind, stamp, payload in held:
            log.append(kind, stamp, payload)
            if log not in logs:
                logs.append(log)
        for log in logs:
            log.flush()

    def _record_reset(self, old: WalHeader, new: WalHeader) -> None:
        """Note a reset let through at the archive's end whose new salts are not old + 1."""
        stamp = self.stamps.now()
        for log, _ in self._logs():
            self._append(log, KIND_RESET, stamp, encode_reset(old.salts, self._frame, new.salts))
            log.flush()

    def _logs(self) -> list[tuple[FrameLog, PageImages]]:
        """The current generation's log, and the outgoing one's while it still runs."""
        if self._log is None:
            return []
        return [(self._log, self._images), *([self._outgoing] if self._outgoing else [])]

    def _passed(self, started: float) -> None:
        self._last_pass_at = started
        self.passes += 1
        self._heartbeat()

    def _answer_proofs(self, tokens: list[bytes]) -> None:
        """Answer requests seen before this pass began: every commit before them is archived."""
        if self._log is None or self._last_pass_at is None or self._held_since is not None:
            return
        stamp = max(self._last_pass_at, self._last_record)
        for log, _ in self._logs():
            for token in tokens:
                log.append(KIND_HEARTBEAT, stamp, token)
            log.flush(durable=True)
        self._last_record = stamp
        self.proofs.answered(tokens)

    def _heartbeat(self, force: bool = False) -> None:
        if self._log is None or self._last_pass_at is None or self._held_since is not None:
            return
        if force or self._last_pass_at - self._last_record >= self.heartbeat_seconds:
            stamp = max(self._last_pass_at, self._last_record)
            for log, _ in self._logs():
                log.append(KIND_HEARTBEAT, stamp, b"")
                log.flush(durable=True)
            self._last_record = stamp

    def gap_found(self, why: str) -> None:
        """Continuity is lost: end this generation; the loop starts a new one."""
        at = self.stamps.now()
        self._held, self._held_since, self._counted_from = [], None, None
        self.set_status(last_gap=why, last_gap_at=at)
        self.emit("gap", f"Gap in the archive: {why}; a new generation starts from a new "
                         "snapshot.")
        self._needs_generation_reason = f"a gap: {why}"
        for log, _ in self._logs():
            log.close()
        self._log = None

    # -- letting the log be reset -----------------------------------------------------------

    def _reset(self, pins: WalPins, writer: sqlite3.Connection,
               checkpointer: sqlite3.Connection) -> None:
        """Let the log start over where the archive ends (see the module's description)."""
        now = time.monotonic()
        if now - self._last_reset_try < 1.0:
            return
        self._last_reset_try = now
        # The bulk of the checkpoint's work (copying pages into the file, syncing it) is done
        # first, beside the workers: the archiver's read transactions keep the log from being
        # reset meanwhile, and the checkpoint under the write lock below then has only the
        # last few frames to copy, so the workers wait for milliseconds, not the whole copy.
        with contextlib.suppress(sqlite3.OperationalError):
            checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        try:
            writer.execute("PRAGMA busy_timeout=200")
            writer.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return  # a writer or another checkpoint has the lock: try again later
        try:
            self.copy_pass()
            copied = self._frame
            pins.release()
            _, in_log, _ = checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            pins.begin_next()
            pins.end_previous()
            # With no log open (a gap already ended the generation, a new snapshot is
            # coming) nothing was to be copied: that gap is already recorded with its reason.
            if in_log > copied and self._header is not None and self._log is not None:
                self.gap_found(f"the checkpoint found {in_log} frames in the WAL but only "
                               f"{copied} were archived")
        finally:
            writer.execute("ROLLBACK")

    def _prove_standing_still(self, writer: sqlite3.Connection) -> None:
        """Prove held records with the log standing still: the write lock for a moment.

        Under a steady stream of commits the log rarely ends where the archive does at the
        instant the counter is read, and records held back would wait (unwritten) until it
        does. Holding the write lock, the counter is conclusive at once; workers wait in
        their busy handler for the copy of the last few frames.
        """
        try:
            writer.execute("PRAGMA busy_timeout=50")
            writer.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return  # a writer or a checkpoint has the lock: the next pass tries again
        try:
            self.copy_pass()
        finally:
            writer.execute("ROLLBACK")

    # -- status ---------------------------------------------------------------------------

    def set_status(self, **changes: object) -> None:
        """Change fields of what :meth:`status` reports (under the status lock)."""
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
        self.emit("validation failed" if result.ok is False else "validation", result.sentence)

    def emit(self, kind: str, message: str) -> None:
        """Tell ``on_event`` of something a person should see (:class:`ArchiveEvent`)."""
        if self.on_event is not None:
            self.on_event(ArchiveEvent(kind, message, time.time()))
