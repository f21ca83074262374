"""Letting a FULL, RESTART or TRUNCATE checkpoint through the archiver's hold on the WAL.

Such a checkpoint takes the write lock and then waits for every reader, the archiver's read
transactions included. Once it holds the write lock no frame can be added, so the archiver
copies to the end, lets go, waits while the checkpoint lock is held, and takes hold again; a
reset made meanwhile happens exactly where the archive ends and is followed without a gap.

Where the lock table names the holders (Linux), "the checkpoint holds the write lock" is
proven by the process id. Where it does not (Windows), a worker holding the write lock in
the middle of a transaction while a checkpoint waits for it looks the same. There the WAL
index (:mod:`.wal_index`) is used: the archiver lets go only once the log has stopped
growing with everything archived, watches the index while it is let go, takes hold again
when a transaction appears, and records a gap when one appeared that the reset took away
before it could be copied. Nothing is lost silently; at worst a new generation starts.

Wherever the WAL index can be read (Linux too, through the descriptor SQLite holds open), the
archiver also follows the log while it is let go: a transaction committed meanwhile (by a
writer that held the write lock, not the checkpoint, which the lock table cannot tell apart
when both belong to one process) is copied as soon as it appears, while its frames are still
there, and the commit counter (:meth:`Archiver.prove`) decides afterwards whether anything
went by unseen; if it did, the generation ends with a gap.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import shm_locks
from .wal_index import IndexReader

if TYPE_CHECKING:
    from .archiver import Archiver
    from .pins import WalPins

#: How long the archiver waits for a checkpoint to finish once it let go.
CHECKPOINT_WAIT_SECONDS = 5.0
#: Without lock owners: the log must stand still this long, all archived, before letting go.
SETTLE_SECONDS = 0.02
_WATCH_SECONDS = 0.001


def let_checkpoint_through(archiver: Archiver, pins: WalPins, own: bool = False) -> None:
    """A checkpoint waits on the archiver's readers: copy to the end, then let it finish."""
    shm, owners = archiver.shm_file, archiver.owners_known
    archiver.copy_to_end()  # quick: the proof is made once the archiver holds the log again
    if not shm_locks.checkpoint_waiting(shm, own, owners):
        return  # it finished or gave up meanwhile
    archiver.copy_to_end()
    reader = None if owners else archiver.index_reader
    if reader is not None and not _settled(archiver, reader):
        return  # the log still grows: a writer holds the lock; look again on the next pass
    header = archiver.header
    # The write lock is the checkpoint's, so the log ends here; after a TRUNCATE the next
    # writer may draw new random salts, so the reset is recognised by place.
    archiver.allow_reset_at_end()
    archiver.checkpoint_seen_at = time.monotonic()
    counter = archiver.counter_reader if archiver.counting else None
    before = counter() if counter is not None else None
    last_change = before.change if before is not None else None
    pins.release()
    seen_beyond = 0
    deadline = time.monotonic() + CHECKPOINT_WAIT_SECONDS
    while time.monotonic() < deadline and shm_locks.checkpoint_lock_held(shm, own):
        if counter is not None:
            index = counter()
            if index is not None and last_change is not None and index.change != last_change:
                # A writer committed, so the checkpoint let through has ended: copy while
                # the frames are there and take hold again before the next one resets them.
                archiver.copy_to_end()
                break
            if index is not None:
                last_change = index.change
            time.sleep(_WATCH_SECONDS)
        elif reader is not None and header is not None:
            index = reader()
            if index is not None and index.salts == header.salts \
                    and index.max_frame > archiver.frame:
                seen_beyond = max(seen_beyond, index.max_frame)
                archiver.copy_pass()  # the frames are still there until the reset
                if archiver.frame < index.max_frame:
                    break  # take hold again at once (below), before any reset
            time.sleep(_WATCH_SECONDS)
        else:
            time.sleep(0.002)
    pins.begin_next()
    pins.end_previous()
    archiver.copy_pass()
    if counter is None and header is not None and seen_beyond \
            and _missed(archiver, header.salts, seen_beyond):
        archiver.gap_found(f"a transaction was committed while a checkpoint held the WAL "
                           f"and the WAL was reset before frame {seen_beyond} could be "
                           "archived")


def _settled(archiver: Archiver, reader: IndexReader) -> bool:
    """True when the log stood still for a moment with every committed frame archived."""
    header = archiver.header
    before = reader()
    if before is None:
        return True  # the index cannot be read: let the checkpoint through as before
    if header is None:
        return False  # the log has a cycle the archiver has not taken up yet
    time.sleep(SETTLE_SECONDS)
    archiver.copy_pass()
    after = reader()
    return (after == before and after.salts == header.salts
            and after.max_frame == archiver.frame)


def _missed(archiver: Archiver, salts: tuple[int, int], frame: int) -> bool:
    """True when the archive does not reach ``frame`` of the cycle with ``salts``."""
    header = archiver.header
    if header is not None and header.salts == salts:
        return archiver.frame < frame
    ended = archiver.previous_cycle_end
    return ended is None or ended[0] != salts or ended[1] < frame
