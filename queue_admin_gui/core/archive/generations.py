"""Starting, ending and pruning generations while the archiver runs.

A generation starts from a snapshot whose state is known exactly: the archiver takes the
writer lock for a moment (workers wait in their busy handler), reads where the WAL ends,
begins its own read transaction there, and starts an ordinary verified backup
(:meth:`BackupStore.backup`) into the generation's ``snapshot`` folder; it lets go of the
writer lock once the backup's read transaction has begun, so the backup holds exactly that
state. Frames committed afterwards are copied while the backup runs; the generation becomes
restorable when the backup is written and verified.

A generation whose frame logs have grown to twice the database's size, or that is as old as
the retention period, is continued by a new one: the same start, taken at the exact end of
what was archived, while the outgoing generation keeps receiving every transaction until the
new snapshot is written. The two overlap, so no instant falls between them. A rebuild then
never replays more than about two databases' worth of frames, snapshots add at most half to
a busy archive's size, and retention, which deletes whole generations, frees a quiet
archive's old days as well.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..backups.backup_store import BackupStore
from ..backups.snapshot import STAGE_COPY
from .clock import ClockStep
from .pins import WalPins
from .store import (
    KIND_HEARTBEAT,
    PREVIOUS_GENERATION_KEY,
    VALIDATION_FAILED_KEY,
    CyclePosition,
    FrameLog,
    Generation,
    delete_generation,
    instant_text,
    list_generations,
    load_generation,
    new_generation,
    note_failed_validation,
)
from .walfile import read_committed, read_header

if TYPE_CHECKING:
    from .archiver import Archiver

#: Pages copied per backup step while the writer lock is held for the first step.
SNAPSHOT_PAGES_PER_STEP = 256
SNAPSHOT_RETRY_SECONDS = 30.0
_BEGIN_WAIT_SECONDS = 120.0
#: Retention runs when the archiver starts and then every ten minutes.
RETENTION_EVERY_SECONDS = 600.0
#: A generation is continued by a new snapshot once its frames hold this many times the
#: database's size (never below MIN_ROTATE_BYTES) ...
ROTATE_DATABASE_SIZES = 2
MIN_ROTATE_BYTES = 16 * 1024 * 1024
#: ... or once it is as old as the retention period (a week when no retention is set).
ROTATE_SECONDS = 7 * 86400.0


def file_identity(path: Path) -> tuple[int, int] | None:
    """Which file has this name (device and file number), or None when it cannot be told.

    Windows gives a file number on NTFS and ReFS; where it is 0 nothing can be compared.
    """
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if info.st_ino else None


def _save_ended(archive: Path, generation: Generation) -> None:
    """Save an ended generation, with whether a validation failed it.

    A validation run elsewhere (another process, the CLI) writes validation.json first and
    then marks the generation only if its end is already saved. So the end is saved first
    and validation.json read again afterwards: whichever of the two comes second sees the
    other, and a failure recorded while the generation ends is kept in it.
    """
    note_failed_validation(archive, generation)
    with contextlib.suppress(OSError):
        generation.save()
    if generation.data.get(VALIDATION_FAILED_KEY) is not True:
        note_failed_validation(archive, generation)
        if generation.data.get(VALIDATION_FAILED_KEY) is True:
            with contextlib.suppress(OSError):
                generation.save()


class GenerationStarter:
    """Owns the current generation and its snapshot backup running on a helper thread.

    It runs on the archiver's loop and works on the archive cursor only through the
    :class:`Archiver`'s public methods (the archiver owns the cursor). Its fields are the
    loop's alone, except the two the snapshot thread shares, said below.
    """

    def __init__(self, archiver: Archiver, writer: sqlite3.Connection, pins: WalPins) -> None:
        #: The archiver this starter serves (the owner of the cursor).
        self.archiver = archiver
        #: The loop's connection that takes the write lock, and its read transactions (lent
        #: by the archiver's loop; replaced by :meth:`reconnect`).
        self.writer = writer
        self.pins = pins
        #: The current generation (None: none, or its snapshot failed).
        self.generation: Generation | None = None
        #: The generation being continued while the new one's snapshot is written.
        self.outgoing: Generation | None = None
        #: The snapshot's backup thread while it runs.
        self._thread: threading.Thread | None = None
        #: Set by the loop to cancel the snapshot; read by the snapshot thread.
        self._cancel = threading.Event()
        #: The snapshot's outcome (its folder name, or the error): written by the snapshot
        #: thread, read by the loop once that thread has ended (or its read has begun).
        self._outcome: BaseException | str | None = None
        #: When a snapshot last failed (monotonic; another is tried after a pause).
        self._failed_at = 0.0
        #: True until the first generation was started.
        self._first = True
        #: The generation the running snapshot belongs to.
        self._snapshot_for: Generation | None = None
        #: When retention last ran (monotonic).
        self._pruned_at = -RETENTION_EVERY_SECONDS

    @staticmethod
    def newest_instant(archive: Path) -> float:
        """The newest instant the archive already holds (0 when empty): stamps go on after it."""
        try:
            folders = list_generations(archive, scan=False)
        except OSError:
            return 0.0
        if not folders:
            return 0.0
        newest = load_generation(folders[-1].folder) or folders[-1]
        data = newest.data
        return max(float(value) for value in (
            newest.covered_until or 0, data.get("started_at") or 0,
            data.get("snapshot_at") or 0, data.get("ended_at") or 0))

    def reconnect(self, writer: sqlite3.Connection, pins: WalPins) -> None:
        """Use new connections (the database file was replaced under the old ones)."""
        self.writer, self.pins = writer, pins

    def record_clock_steps(self, steps: list[ClockStep]) -> None:
        """Keep wall-clock steps in the current generation's description."""
        generation = self.generation or self.outgoing
        if generation is None:
            return
        recorded = generation.data.setdefault("clock_steps", [])
        recorded.extend(step.to_dict() for step in steps)
        with contextlib.suppress(OSError):
            generation.save()

    @property
    def snapshot_running(self) -> bool:
        """True while the generation's snapshot is being written."""
        return self._thread is not None and self._thread.is_alive()

    def needs_new_generation(self) -> bool:
        """True at the start, after a gap, and (after a pause) when a snapshot failed."""
        if self.archiver.generation_wanted:
            return True
        if self.generation is None:
            return time.monotonic() - self._failed_at >= SNAPSHOT_RETRY_SECONDS or self._first
        return False

    def rotation_due(self) -> bool:
        """True when the current, restorable generation is old or large enough to continue."""
        generation, log = self.generation, self.archiver.log
        if generation is None or log is None or generation.snapshot is None:
            return False
        if self.snapshot_running or self.outgoing is not None:
            return False
        if time.monotonic() - self._failed_at < SNAPSHOT_RETRY_SECONDS and self._failed_at:
            return False
        started = float(generation.data.get("snapshot_at") or generation.data["started_at"])
        limit = self.archiver.rotate_bytes
        if limit is None:
            try:
                size = self.archiver.database.stat().st_size
            except OSError:
                size = 0
            limit = max(MIN_ROTATE_BYTES, ROTATE_DATABASE_SIZES * size)
        age = self.archiver.rotate_seconds
        if age is None:
            days = self.archiver.retention_days
            age = days * 86400 if days is not None else ROTATE_SECONDS
        return self.archiver.stamps.now() - started >= age or log.bytes_written >= limit

    def rotate(self) -> None:
        """Start a new generation at the archive's exact end; the current one goes on meanwhile."""
        self.start(None, rotating=True)

    def start(self, previous_log: FrameLog | None, *, rotating: bool = False) -> None:
        """End the current generation (if any) and start a new one from a new snapshot.

        ``rotating``: the current generation is continued instead (see the module's
        description); it ends only once the new one is restorable.
        """
        archiver = self.archiver
        gap = archiver.take_generation_reason()
        if previous_log is not None:
            previous_log.close()
        if self.generation is not None and not rotating:
            self.cancel_snapshot()
            self.end_generation(gap or "a new generation started")
        reason = gap or ("continues generation "
                         f"{self.generation.id}" if rotating and self.generation
                         else self._start_reason())
        previous = (self.generation.id if self.generation is not None
                    else self._newest_generation_id())
        self._first = False
        if not rotating:
            # Continuity starts again from the snapshot: let go first, so that a checkpoint
            # waiting on these readers while holding the write lock can finish.
            self.pins.release()
        self.writer.execute(f"PRAGMA busy_timeout={200 if rotating else 5000}")
        try:
            self.writer.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if rotating:
                return  # a writer or a checkpoint has the lock: continue on a later pass
            self.generation = None
            archiver.ask_for_generation(reason)  # try again on the next pass
            archiver.set_status(error=f"A new generation could not take the write lock for "
                                      f"its snapshot ({error}); trying again.")
            return
        if rotating:
            archiver.copy_pass()  # nobody can commit now: the archive ends where the WAL does
            if archiver.log is not None and archiver.holds_records:
                archiver.prove(final=True)  # the log stands still: held records are decided
            if archiver.log is None:  # a gap was found: the loop starts over instead
                self.writer.execute("ROLLBACK")
                return
            self.outgoing = self.generation
            archiver.keep_outgoing()
        self.generation = None
        try:
            header, _ = read_header(archiver.wal_file)
            frame, checksum = 0, (0, 0)
            # What the database file's header may be once checkpoints run: as it is now, or
            # as any page 1 still in the log has it.
            heads = [archiver.database_head()]
            if header is not None:
                checksum = header.checksum
                while True:
                    found = read_committed(archiver.wal_file, header, frame, checksum)
                    if found.oversized_end is not None:  # committed: the snapshot holds it
                        frame, checksum = found.oversized_end
                        continue
                    if found.end_frame == frame:
                        break
                    heads += [item.page for transaction in found.transactions
                              for item in transaction.frames if item.page_number == 1]
                    frame, checksum = found.end_frame, found.checksum
            counted = archiver.read_counter(frame, header.salts if header else None)
            self.pins.release()
            self.pins.begin_next()
            self.pins.end_previous()
            stamp = archiver.stamps.now()
            start = (CyclePosition(header.checkpoint_sequence, header.salt1, header.salt2, frame)
                     if header is not None else None)
            generation = new_generation(archiver.archive_dir, archiver.database, reason, start,
                                        header.page_size if header else 0, stamp)
            generation.data["snapshot_at"] = stamp
            if previous is not None:
                generation.data[PREVIOUS_GENERATION_KEY] = previous
            began = self._start_snapshot(generation)
        finally:
            self.writer.execute("ROLLBACK")
        if not began:
            self._snapshot_failed(generation)
            return
        self.generation = generation
        archiver.begin_cycle(header, frame, checksum, FrameLog(generation), counted)
        for head in heads:
            if head:
                archiver.remember_head(head)
        archiver.set_status(generation=generation.id, snapshot_pending=True, error=None,
                            generations_started=archiver.status().generations_started + 1)
        archiver.emit("generation", f"Generation {generation.id} started ({reason}); "
                                    f"taking its snapshot as of {instant_text(stamp)}.")

    def _newest_generation_id(self) -> str | None:
        """The newest generation already in the archive (the one a new generation follows)."""
        found = list_generations(self.archiver.archive_dir, scan=False)
        return found[-1].id if found else None

    def _start_reason(self) -> str:
        earlier = [g for g in list_generations(self.archiver.archive_dir)
                   if g.restorable is not None]
        if not earlier:
            return "the archive's first generation"
        last = earlier[-1].restorable
        assert last is not None
        return f"the archiver was not running after {instant_text(last[1])}"

    def _start_snapshot(self, generation: Generation) -> bool:
        """Start the backup and wait until its read transaction has begun."""
        began = threading.Event()
        self._cancel.clear()
        self._outcome = None

        def progress(done: int, total: int, stage: str) -> None:
            if stage == STAGE_COPY:
                began.set()

        def run() -> None:
            try:
                engine = BackupStore(self.archiver.database, generation.folder / "snapshot",
                                     pages_per_step=SNAPSHOT_PAGES_PER_STEP)
                result = engine.backup(progress=progress, cancelled=self._cancel.is_set)
                self._outcome = result.path.name
            except BaseException as error:  # noqa: BLE001 - reported by poll()
                self._outcome = error
            finally:
                began.set()

        self._snapshot_for = generation
        self._thread = threading.Thread(target=run, name="archive-snapshot", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _BEGIN_WAIT_SECONDS
        while not began.wait(0.05):
            if time.monotonic() > deadline:
                self._cancel.set()
                return False
        return not isinstance(self._outcome, BaseException)

    def poll(self) -> None:
        """Record the snapshot once it is written (or the failure when it failed)."""
        if self._thread is None or self._thread.is_alive() or self.generation is None:
            return
        self._thread = None
        generation = self.generation
        if generation is not self._snapshot_for:
            return  # the snapshot of a generation already given up (it never began)
        if isinstance(self._outcome, str):
            generation.data["snapshot"] = self._outcome
            generation.save()
            self.archiver.set_status(snapshot_pending=False)
            self.archiver.emit("generation", f"Generation {generation.id} is restorable "
                                             f"from {instant_text(generation.snapshot_at)}.")
            self._hand_over(generation)
            return
        self._snapshot_failed(generation)

    def _hand_over(self, successor: Generation) -> None:
        """The new generation is restorable: the one it continues ends here."""
        outgoing, archiver = self.outgoing, self.archiver
        if outgoing is None or archiver.outgoing is None:
            return
        if archiver.holds_records:
            archiver.prove(final=True)  # the outgoing log must not end past unproven records
            if archiver.log is None:
                return
        log = archiver.end_outgoing()
        self.outgoing = None
        if log is None:
            return
        ended = archiver.stamps.now()
        log.append(KIND_HEARTBEAT, ended, b"")  # covered up to the successor's start
        log.close()
        outgoing.data["ended_at"] = ended
        outgoing.data["end_reason"] = f"continued by generation {successor.id}"
        _save_ended(archiver.archive_dir, outgoing)

    def _resume_outgoing(self) -> bool:
        """A new generation failed or was cancelled while continuing one: that one goes on."""
        archiver = self.archiver
        if self.outgoing is None or archiver.outgoing is None:
            return False
        archiver.resume_outgoing()
        self.generation, self.outgoing = self.outgoing, None
        archiver.set_status(generation=self.generation.id, snapshot_pending=False)
        return True

    def _snapshot_failed(self, generation: Generation) -> None:
        error = self._outcome
        self._failed_at = time.monotonic()
        log = self.archiver.log
        if self.outgoing is not None:
            if log is not None and log.generation is generation:
                self.archiver.close_log()
            with contextlib.suppress(OSError):
                shutil.rmtree(generation.folder)
            self._resume_outgoing()
            message = (f"The snapshot for a new generation failed ({error}); generation "
                       f"{self.generation.id if self.generation else '?'} goes on, and a new "
                       f"snapshot is tried again in {SNAPSHOT_RETRY_SECONDS:.0f} s.")
            self.archiver.set_status(error=message)
            self.archiver.emit("error", message)
            return
        if log is not None and self.generation is generation:
            self.archiver.close_log()
        self.archiver.begin_cycle(None, 0, (0, 0), None)
        self.generation = None
        with contextlib.suppress(OSError):
            shutil.rmtree(generation.folder)
        message = (f"The snapshot for a new generation failed ({error}); the archiver tries "
                   f"again in {SNAPSHOT_RETRY_SECONDS:.0f} s and nothing is archived until then.")
        self.archiver.set_status(error=message, snapshot_pending=False, generation=None)
        self.archiver.emit("error", message)

    def cancel_snapshot(self) -> None:
        """Stop a running snapshot; its generation is then deleted (it never became usable)."""
        if self._thread is None:
            return
        self._cancel.set()
        self._thread.join()
        self._thread = None
        generation = self.generation
        if generation is not None and generation.snapshot is None:
            log = self.archiver.log
            if log is not None and log.generation is generation:
                self.archiver.drop_log()
            with contextlib.suppress(OSError):
                shutil.rmtree(generation.folder)
            self.generation = None
            self._resume_outgoing()

    def end_generation(self, reason: str) -> None:
        """Record why and when the current generation ended."""
        generation = self.generation
        if generation is None:
            return
        generation.data["ended_at"] = self.archiver.stamps.now()
        generation.data["end_reason"] = reason
        _save_ended(self.archiver.archive_dir, generation)

    def apply_retention(self) -> None:
        """Delete whole generations whose newest restorable instant is older than the limit."""
        days = self.archiver.retention_days
        if days is None or time.monotonic() - self._pruned_at < RETENTION_EVERY_SECONDS:
            return
        self._pruned_at = time.monotonic()
        cutoff = time.time() - days * 86400
        for generation in list_generations(self.archiver.archive_dir):
            if self.generation is not None and generation.folder == self.generation.folder:
                continue
            span = generation.restorable
            newest = span[1] if span else float(generation.data.get("started_at") or 0)
            if newest < cutoff:
                with contextlib.suppress(OSError):
                    delete_generation(generation)
