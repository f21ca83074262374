"""Proof that a restored database holds exactly the pages of the checked backup.

After the copy commits, the restored file is compared with the staged copy it was written
from, page by page, byte for byte (stronger than comparing page hashes, and cheaper). The
staged copy passed the full check (and was then changed only by SQLite itself: the id
counters, the tasks carried over), so a restored file whose every page is the same is as
sound as it; no second integrity check is needed.

The restored pages need not be in the file yet: a reader that began before the restore
committed (the archiver, while it looks at the restore's transaction) keeps a checkpoint
from copying them there until it lets go. So where the live WAL holds committed frames, each
page is read where SQLite itself would read it: from the log's newest frame of that page up
to its last commit (every frame proven by its salts and running checksum,
:func:`..archive.walfile.newest_frames`), else from the file, and every frame read is checked
again to be the cycle's and the page's. The map counts only when it reaches every frame
SQLite's WAL index counts (:func:`..archive.walfile.read_wal_index`): SQLite reads those
frames without proving their checksums again, so a frame damaged after its commit would
otherwise end the map at an older commit (perhaps already holding the backup's pages) while
SQLite reads the damaged page. A read transaction held meanwhile keeps the log from
starting over while it holds frames not yet in the file. When the log cannot be mapped (no
valid header or commit), or another program's checkpoint emptied and restarted it during the
comparison, the proof falls back to the file alone: it asks for a passive checkpoint (which
never waits for anyone and never resets the log) every tenth of a second, for about as long
as the integrity check it spares would take (2 to 30 s), and compares as soon as every frame
is in the file. A commit by a worker after the restore's can only change pages to something
else than the backup's, so it makes the proof fail (never pass). Page 1's
header fields SQLite itself rewrites on every commit or backup (file format versions for
WAL, the change counter, the schema cookie, the version-valid-for number and the SQLite
version that wrote it) are left out; everything else, page 1's schema included, must
match. Any difference, a page count that differs, or a file or WAL that changes meanwhile
(a worker committing) means no proof: the caller then runs the full integrity check
instead. A difference never passes for equality, so the proof cannot claim a result it did
not see.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..archive.walfile import (
    FRAME_HEADER_BYTES,
    NewestFrames,
    frame_offset,
    newest_frames,
    read_wal_index,
)
from ..archive.walfile import read_header as read_wal_header
from ..files.db_files import shm_path, sqlite_uri, wal_path
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report

STAGE_PROOF = "Proving the restored pages equal to the checked backup"
#: Bytes of page 1 SQLite rewrites by itself: read/write versions, change counter, the
#: schema cookie (the backup API moves it past the destination's old one, so connections
#: reread the schema), version-valid-for and the writing library's version number.
_HEADER_VOLATILE = ((18, 20), (24, 28), (40, 44), (92, 100))
_HEADER_SIZE = 100
_CHUNK_PAGES = 256
#: The longest the proof waits for every restored page to be in the file before it gives up
#: (the caller then runs SQLite's full integrity check instead) ...
BACKFILL_WAIT_SECONDS = 30.0
#: ... and the wait for a database of a given size: about as long as that check would take
#: (SQLite checks a queue at 200 MB a second or more on a 2-core machine), never under 2 s,
#: so waiting never costs more than the check it may spare.
_CHECK_BYTES_PER_SECOND = 200_000_000
_MIN_WAIT_SECONDS = 2.0
#: What the comparison through the log says when the log started over under it.
_LOG_CHANGED = "the restored database's write-ahead log changed while it was compared"
_BACKFILL_POLL_SECONDS = 0.1


def _page_size(header: bytes) -> int:
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


def _masked_first_page(page: bytes) -> bytes:
    masked = bytearray(page)
    for start, end in _HEADER_VOLATILE:
        masked[start:end] = bytes(end - start)
    return bytes(masked)


def _first_difference(before: bytes, after: bytes, page_size: int, offset: int) -> int:
    """The number of the first page that differs in two chunks read at ``offset``."""
    for start in range(0, len(before), page_size):
        if before[start:start + page_size] != after[start:start + page_size]:
            return (offset + start) // page_size + 1
    return offset // page_size + 1


def _chunk_difference(before: bytes, after: bytes, page_size: int, offset: int) -> str | None:
    """Which page differs in two chunks read at byte ``offset`` (None: none).

    Page 1's volatile header fields are left out of the comparison.
    """
    if offset == 0:
        before, after = _masked_first_page(before), _masked_first_page(after)
    if before == after:
        return None
    return f"page {_first_difference(before, after, page_size, offset)} differs"


def _wal_is_empty(target: Path) -> bool:
    wal = wal_path(target)
    return not wal.exists() or wal.stat().st_size == 0


def _log_in_file(target: Path, wait_seconds: float, cancelled: CancelCheck | None,
                 action: str) -> str | None:
    """None once every frame of ``target``'s WAL is in the file itself, else why not.

    Asks for a passive checkpoint until it reports every frame of the log copied, or
    ``wait_seconds`` have passed (a busy answer, another program's checkpoint running, is
    asked again).
    """
    if _wal_is_empty(target):
        return None
    deadline = time.monotonic() + wait_seconds
    connection = sqlite3.connect(sqlite_uri(target, mode="rw"), uri=True,
                                 isolation_level=None, timeout=0.1)
    try:
        while True:
            busy, frames, copied = connection.execute(
                "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames < 0 and busy == 0:
                return "the restored database's write-ahead log cannot be checkpointed"
            # busy with -1 frames: another program's checkpoint was running; ask again.
            if busy == 0 and frames == copied:
                return None
            if time.monotonic() >= deadline:
                return (f"the restored pages were not all in the file after "
                        f"{wait_seconds:g} s (a reader kept the write-ahead log from being "
                        "copied into it)")
            raise_if_cancelled(cancelled, action)
            time.sleep(_BACKFILL_POLL_SECONDS)
    except sqlite3.Error as error:
        return f"the restored database could not be checkpointed ({error})"
    finally:
        connection.close()


def prove_pages_equal(source: str | Path, target: str | Path,
                      progress: ProgressCallback | None = None,
                      cancelled: CancelCheck | None = None, *,
                      wait_seconds: float | None = None) -> str | None:
    """None when every page of ``target`` equals the page of ``source``, else why not.

    ``source`` is the staged copy the restore wrote from (closed, its own WAL folded in);
    ``target`` the restored database. Waits up to ``wait_seconds`` (by default about as
    long as SQLite's integrity check of the file would take, at most
    :data:`BACKFILL_WAIT_SECONDS`) for the target's WAL to be copied into its file (see the
    module docstring), then reads both files as plain bytes.
    """
    source, target = Path(source), Path(target)
    action = f"Proving '{target}' equal to the checked backup"
    try:
        if not _wal_is_empty(source):
            return "the staged copy still has a write-ahead log"
        size = source.stat().st_size
        with _log_held(target):
            found = None if _wal_is_empty(target) else _mapped_as_read(target)
            if found is not None:
                through_log = _compare_through_log(source, target, size, found, progress,
                                                   cancelled, action)
                if through_log != _LOG_CHANGED:
                    return through_log
            # Another program's checkpoint may have emptied the log meanwhile (a reader
            # that reads only the file does not stop it): the file alone then tells.
        if wait_seconds is None:
            wait_seconds = min(BACKFILL_WAIT_SECONDS, max(
                _MIN_WAIT_SECONDS, size / _CHECK_BYTES_PER_SECOND))
        not_in_file = _log_in_file(target, wait_seconds, cancelled, action)
        if not_in_file is not None:
            return not_in_file
        return _compare_files(source, target, size, progress, cancelled, action)
    except OSError as error:
        return f"the files could not be read ({error})"


def _mapped_as_read(target: Path) -> NewestFrames | None:
    """The map of ``target``'s log, when it holds every commit SQLite's readers see.

    The map ends at the first frame whose checksum fails, but SQLite reads the frames its
    WAL index counts without proving them again: a frame damaged after its commit would
    leave the map at an older commit (which may hold the backup's pages) while SQLite reads
    the damaged one. So the index is read first (under the read transaction, so what it
    counts is at least what the proof's snapshot sees) and the map is used only when it
    reaches every frame the index counts in the same cycle; otherwise None (the file path,
    which copies what SQLite reads into the file, then tells).
    """
    index = read_wal_index(shm_path(target))
    found = newest_frames(wal_path(target))
    if found is None or index is None or index.salts != found.header.salts or \
            found.last_commit < index.last_frame:
        return None
    return found


@contextlib.contextmanager
def _log_held(target: Path) -> Iterator[None]:
    """A read transaction on ``target`` while the body runs: the log cannot start over.

    When SQLite will not open one (the file is busy or damaged), the body runs anyway: every
    frame it reads is checked to still be the cycle's.
    """
    connection = None
    try:
        connection = sqlite3.connect(sqlite_uri(target, mode="ro"), uri=True,
                                     isolation_level=None, timeout=1.0)
        connection.execute("BEGIN")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        if connection is not None:
            connection.close()
        connection = None
    try:
        yield
    finally:
        if connection is not None:
            connection.close()


def _compare_files(source: Path, target: Path, size: int, progress: ProgressCallback | None,
                   cancelled: CancelCheck | None, action: str) -> str | None:
    """Compare the two files alone (every frame of the target's log is in its file)."""
    if target.stat().st_size != size:
        return "the restored file's size differs from the backup's"
    with open(source, "rb") as old, open(target, "rb") as new:
        header = old.read(_HEADER_SIZE)
        page_size = _page_size(header)
        if len(header) < _HEADER_SIZE or page_size < 512 or size % page_size:
            return "the backup's page size cannot be read"
        old.seek(0)
        done = 0
        while done < size:
            before = old.read(page_size * _CHUNK_PAGES)
            after = new.read(page_size * _CHUNK_PAGES)
            if len(before) != len(after) or not before:
                return "the files changed while they were compared"
            differs = _chunk_difference(before, after, page_size, done)
            if differs is not None:
                return differs
            done += len(before)
            report(progress, done, size, STAGE_PROOF)
            raise_if_cancelled(cancelled, action)
    if target.stat().st_size != size:
        return "the restored database changed while it was compared"
    return None


def _compare_through_log(source: Path, target: Path, size: int, found: NewestFrames,
                         progress: ProgressCallback | None, cancelled: CancelCheck | None,
                         action: str) -> str | None:
    """Compare the backup with the target as its log's last commit has it (see the module)."""
    page_size = found.header.page_size
    if size != found.database_pages * page_size:
        return "the restored database's size differs from the backup's"
    with open(source, "rb") as old, open(target, "rb") as file, \
            open(wal_path(target), "rb") as log:
        if _page_size(old.read(_HEADER_SIZE)) != page_size:
            return "the backup's page size differs from the restored database's"
        old.seek(0)
        reader = _LogPages(file, log, found)
        for first in range(1, found.database_pages + 1, _CHUNK_PAGES):
            count = min(_CHUNK_PAGES, found.database_pages - first + 1)
            before = old.read(count * page_size)
            after = reader.pages(first, count)
            if after is None:
                return _LOG_CHANGED
            if len(before) != len(after):
                return "the files changed while they were compared"
            differs = _chunk_difference(before, after, page_size, (first - 1) * page_size)
            if differs is not None:
                return differs
            report(progress, (first - 1 + count) * page_size, size, STAGE_PROOF)
            raise_if_cancelled(cancelled, action)
    now, _ = read_wal_header(wal_path(target))
    if now is None or now.salts != found.header.salts:
        return _LOG_CHANGED
    return None


class _LogPages:
    """Pages as the log's last commit has them: its newest frame of each, else the file's."""

    def __init__(self, file: BinaryIO, log: BinaryIO, found: NewestFrames) -> None:
        self.file, self.log, self.found = file, log, found
        self.page_size = found.header.page_size
        self.step = FRAME_HEADER_BYTES + self.page_size
        self.salts = struct.pack(">II", *found.header.salts)

    def pages(self, first: int, count: int) -> bytes | None:
        """Pages ``first`` to ``first + count - 1``, joined.

        None when a frame read is no longer the one mapped: the log changed.
        """
        frames = [self.found.frame_of(number) for number in range(first, first + count)]
        if frames[0] and frames[-1] - frames[0] == count - 1 and \
                frames == list(range(frames[0], frames[0] + count)):
            # The usual case: the restore wrote these pages one after another.
            self.log.seek(frame_offset(self.found.header, frames[0]))
            return self._frame_pages(self.log.read(count * self.step), first, count)
        parts = []
        for index, frame in enumerate(frames):
            if frame:
                self.log.seek(frame_offset(self.found.header, frame))
                page = self._frame_pages(self.log.read(self.step), first + index, 1)
                if page is None:
                    return None
            else:
                self.file.seek((first + index - 1) * self.page_size)
                page = self.file.read(self.page_size)
            parts.append(page)
        return b"".join(parts)

    def _frame_pages(self, data: bytes, first: int, count: int) -> bytes | None:
        """The pages of ``count`` frames read in a row (None: one is not the expected page)."""
        if len(data) != count * self.step:
            return None
        view = memoryview(data)
        parts = []
        for index in range(count):
            offset = index * self.step
            if int.from_bytes(view[offset:offset + 4], "big") != first + index or \
                    view[offset + 8:offset + 16] != self.salts:
                return None
            parts.append(view[offset + FRAME_HEADER_BYTES:offset + self.step])
        return b"".join(parts)


__all__ = ["BACKFILL_WAIT_SECONDS", "STAGE_PROOF", "prove_pages_equal"]
