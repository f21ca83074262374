"""Reading SQLite's write-ahead log as an archiver needs it: whole, proven transactions.

The -wal file is read with ordinary shared reads (never locked, never written). A frame is
taken only when its salts equal the header's and its checksum, computed cumulatively over the
header and every earlier frame, matches; frames are handed out only up to a commit frame, so a
transaction that a writer is still appending, or the leftovers of an earlier cycle, never
count. The checksum is SQLite's two-word Fibonacci-style sum; it is a linear recurrence, so
one page is checksummed with a few vectorised numpy operations instead of a Python loop.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np

WAL_HEADER_BYTES = 32
FRAME_HEADER_BYTES = 24
_MAGIC_LITTLE = 0x377F0682
_MAGIC_BIG = 0x377F0683
_MASK = 0xFFFFFFFF
_HEADER = struct.Struct(">IIIIIIII")
_PAGE_AND_COMMIT = struct.Struct(">II")
_CHECKSUM = struct.Struct(">II")


@dataclass(frozen=True)
class WalHeader:
    """The 32-byte header of one WAL cycle: a new one is written at every reset."""

    big_endian: bool
    page_size: int
    checkpoint_sequence: int
    salt1: int
    salt2: int
    checksum: tuple[int, int]

    @property
    def salts(self) -> tuple[int, int]:
        """The two salts every frame of this cycle carries."""
        return (self.salt1, self.salt2)

    def follows(self, earlier: WalHeader) -> bool:
        """True when this cycle is the very next one after ``earlier`` (exactly one reset).

        Every reset adds one to salt-1 of the shared WAL index and draws a new salt-2. The
        checkpoint sequence is no proof: each connection counts its own resets, so a writer
        whose connection did not make the reset writes a sequence number of its own.
        """
        return self.salt1 == (earlier.salt1 + 1) & _MASK and self.salts != earlier.salts


@dataclass
class Frame:
    """One page image from the log; ``commit_size`` is the size in pages after a commit, else 0."""

    page_number: int
    commit_size: int
    #: The page image: a view into the buffer the log was read into (no copy of its own);
    #: whoever keeps it past the read copies it (``bytes(frame.page)``).
    page: bytes | memoryview


@dataclass
class Transaction:
    """The frames of one committed transaction, in log order, ending with its commit frame."""

    first_frame: int
    frames: list[Frame]

    @property
    def database_pages(self) -> int:
        """The database's size in pages once this transaction committed."""
        return self.frames[-1].commit_size


@dataclass
class WalRead:
    """What one read of the log found past a known position of a known cycle."""

    header: WalHeader | None
    transactions: list[Transaction] = field(default_factory=list)
    #: Frames consumed in the cycle after these transactions (all ending at a commit).
    end_frame: int = 0
    #: The running checksum after ``end_frame``.
    checksum: tuple[int, int] = (0, 0)
    file_size: int = 0
    #: (frame, checksum) at the commit of a transaction too large to archive page by page
    #: (:data:`MAX_TRANSACTION_BYTES`), which follows ``transactions``.
    oversized_end: tuple[int, tuple[int, int]] | None = None
    #: (frame, checksum) as far as an oversized transaction without its commit yet was checked.
    scanned: tuple[int, tuple[int, int]] | None = None


@lru_cache(maxsize=8)
def _powers(words: int) -> tuple[np.ndarray, ...]:
    """Coefficients of the checksum recurrence for a run of ``words`` word pairs.

    One step is ``s0 += x0 + s1; s1 += x1 + s0``, i.e. ``s <- M s + (x0, x0 + x1)`` with
    ``M = [[1, 1], [1, 2]]``. After n steps ``s = M^n s_start + sum M^(n-1-i) v_i``; this
    returns the entries of ``M^(n-1-i)`` for every i (reversed powers) and of ``M^n``.
    Arithmetic wraps modulo 2^64, which keeps the low 32 bits exact.
    """
    a = np.empty(words + 1, dtype=np.uint64)
    b = np.empty_like(a)
    c = np.empty_like(a)
    d = np.empty_like(a)
    pa, pb, pc, pd = 1, 0, 0, 1
    for k in range(words + 1):
        a[k], b[k], c[k], d[k] = pa, pb, pc, pd
        pa, pb, pc, pd = ((pa + pc) & _MASK, (pb + pd) & _MASK,
                          (pa + 2 * pc) & _MASK, (pb + 2 * pd) & _MASK)
    reverse = slice(words - 1, None, -1) if words else slice(0, 0)
    return a[reverse], b[reverse], c[reverse], d[reverse], a[words:], b[words:], c[words:], \
        d[words:]


def wal_checksum(data: bytes, big_endian: bool, start: tuple[int, int] = (0, 0)
                 ) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes) continuing from ``start``."""
    words = np.frombuffer(data, dtype=">u4" if big_endian else "<u4").astype(np.uint64)
    x0, x1 = words[0::2], words[1::2]
    ra, rb, rc, rd, na, nb, nc, nd = _powers(len(x0))
    v0, v1 = x0, x0 + x1
    s0, s1 = start
    first = (int(na[0]) * s0 + int(nb[0]) * s1
             + int(np.sum(ra * v0 + rb * v1, dtype=np.uint64)))
    second = (int(nc[0]) * s0 + int(nd[0]) * s1
              + int(np.sum(rc * v0 + rd * v1, dtype=np.uint64)))
    return first & _MASK, second & _MASK


@lru_cache(maxsize=8)
def _frame_coefficients(page_size: int) -> np.ndarray:
    """Each 32-bit word's coefficients in a frame's own part of the checksum (words x 2).

    A frame checksums the word pairs of its header's first 8 bytes and its page. From
    :func:`_powers`, its part is ``(sum ra*x0 + rb*(x0 + x1), sum rc*x0 + rd*(x0 + x1))``:
    linear in every word, so one coefficient per word and per half, kept modulo 2^32 (only
    the low 32 bits of the sums count, and unsigned 32-bit arithmetic wraps exactly there).
    """
    ra, rb, rc, rd, *_ = _powers((8 + page_size) // 8)
    coefficients = np.empty(((8 + page_size) // 4, 2), dtype=np.uint32)
    coefficients[0::2, 0] = (ra + rb) & _MASK
    coefficients[1::2, 0] = rb & _MASK
    coefficients[0::2, 1] = (rc + rd) & _MASK
    coefficients[1::2, 1] = rd & _MASK
    return coefficients


def frame_checksum_parts(data: bytes | memoryview, page_size: int, big_endian: bool
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Each whole frame's own part of the running checksum, all frames of ``data`` at once.

    A frame's checksum covers the first 8 bytes of its header and its page. From the running
    checksum ``s`` before it, the checksum after it is ``M^n s + part`` (see
    :func:`_powers`; :func:`frame_step` gives ``M^n``), where ``part`` depends on the frame
    alone: so the parts of every frame are computed in one pass (two matrix products in
    unsigned 32-bit arithmetic, read in place from ``data``), and only the short chain from
    one frame to the next is left to walk.
    """
    step = FRAME_HEADER_BYTES + page_size
    frames = len(data) // step
    if frames == 0:
        empty = np.zeros(0, dtype=np.uint32)
        return empty, empty
    order = ">u4" if big_endian else "<u4"
    raw = np.frombuffer(data, dtype=np.uint8, count=frames * step).reshape(frames, step)
    coefficients = _frame_coefficients(page_size)
    heads = raw[:, :8].copy().view(order).astype(np.uint32)
    pages = raw[:, FRAME_HEADER_BYTES:].view(order)
    if pages.dtype != np.uint32:  # the other byte order than this machine's: one copy
        pages = pages.astype(np.uint32)
    parts = heads @ coefficients[:2] + pages @ coefficients[2:]
    return parts[:, 0], parts[:, 1]


@lru_cache(maxsize=8)
def frame_step(page_size: int) -> tuple[int, int, int, int]:
    """``M^n`` for one frame of ``page_size`` (n: the word pairs it checksums), as ints."""
    *_, na, nb, nc, nd = _powers((8 + page_size) // 8)
    return int(na[0]), int(nb[0]), int(nc[0]), int(nd[0])


def wal_checksum_reference(data: bytes, big_endian: bool,
                           start: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """The same checksum computed word by word, as SQLite does (kept to test the fast one)."""
    order = ">" if big_endian else "<"
    s0, s1 = start
    for x0, x1 in struct.iter_unpack(order + "II", data):
        s0 = (s0 + x0 + s1) & _MASK
        s1 = (s1 + x1 + s0) & _MASK
    return s0, s1


def parse_header(raw: bytes) -> WalHeader | None:
    """The header when ``raw`` starts with a valid one (magic, version, checksum), else None."""
    if len(raw) < WAL_HEADER_BYTES:
        return None
    magic, version, page_size, sequence, salt1, salt2, sum1, sum2 = _HEADER.unpack_from(raw)
    if magic not in (_MAGIC_LITTLE, _MAGIC_BIG) or version != 3007000:
        return None
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        return None
    big_endian = magic == _MAGIC_BIG
    if wal_checksum(raw[:24], big_endian) != (sum1, sum2):
        return None
    return WalHeader(big_endian, page_size, sequence, salt1, salt2, (sum1, sum2))


def frame_offset(header: WalHeader, frame_number: int) -> int:
    """Where frame ``frame_number`` (1-based) starts in the file."""
    return WAL_HEADER_BYTES + (frame_number - 1) * (FRAME_HEADER_BYTES + header.page_size)


def read_header(wal: Path) -> tuple[WalHeader | None, int]:
    """The current header of the log (None when it is empty or not yet written) and its size."""
    try:
        with open(wal, "rb") as handle:
            raw = handle.read(WAL_HEADER_BYTES)
            size = handle.seek(0, 2)
    except FileNotFoundError:
        return None, 0
    return parse_header(raw), size


#: The WAL index (the -shm file) starts with two copies of its 48-byte header, written in the
#: machine's own byte order: version, unused, change counter, initialised flag, checksum byte
#: order, page size, last valid frame, page count, frame checksum, salts, header checksum.
_INDEX_HEADER = struct.Struct("=IIIBBHII")
_INDEX_HEADER_BYTES = 48
_INDEX_VERSION = 3007000
_INDEX_READS = 5
#: The index is written in this machine's byte order, its checksum too.
_NATIVE_BIG = sys.byteorder == "big"


@dataclass(frozen=True)
class WalIndexHeader:
    """What SQLite's WAL index says readers see: its cycle's salts and last valid frame."""

    salts: tuple[int, int]
    #: The last frame of the last commit the index counts (0: every page is the file's).
    last_frame: int


def read_wal_index(shm: Path) -> WalIndexHeader | None:
    """The header of SQLite's WAL index as its readers trust it, None when it cannot be read.

    SQLite reads a page from the frame its index points at without proving that frame's
    checksum again (only rebuilding the index proves them), so a frame damaged after its
    commit is still read. The index names the last frame readers see: the header is taken
    only when its two copies are the same and its own checksum holds (a writer changing it
    meanwhile is read again, a few times). None too when there is no index file (exclusive
    locking mode keeps it in memory) or it is not initialised.
    """
    for _ in range(_INDEX_READS):
        try:
            with open(shm, "rb") as handle:
                raw = handle.read(2 * _INDEX_HEADER_BYTES)
        except FileNotFoundError:
            return None
        if len(raw) < 2 * _INDEX_HEADER_BYTES:
            return None
        first = raw[:_INDEX_HEADER_BYTES]
        if first != raw[_INDEX_HEADER_BYTES:]:
            continue
        version, _, _, initialised, _, _, last_frame, _ = _INDEX_HEADER.unpack_from(first)
        if version != _INDEX_VERSION or not initialised or \
                wal_checksum(first[:40], _NATIVE_BIG) != struct.unpack("=II", first[40:]):
            continue
        return WalIndexHeader(struct.unpack(">II", first[32:40]), last_frame)
    return None


#: A transaction whose frames take more than this is not archived page by page (the archiver
#: starts a new generation from a snapshot taken after it instead): a VACUUM rewrites the
#: whole database in one transaction, and a snapshot holds that just as well.
MAX_TRANSACTION_BYTES = 64 * 1024 * 1024


#: How much of the log one read takes in at most (once it found whole transactions): what a
#: look holds in memory when the archiver is behind, whatever the commit rate.
READ_BYTES = 4 * 1024 * 1024
#: Frames the first read of a look takes (later reads of the same look take four times more,
#: up to :data:`READ_BYTES`).
FIRST_READ_FRAMES = 64


def read_committed(wal: Path, header: WalHeader, after_frame: int,
                   checksum: tuple[int, int], max_bytes: int = READ_BYTES, *,
                   resume: tuple[int, tuple[int, int]] | None = None) -> WalRead:
    """Whole transactions of ``header``'s cycle found after frame ``after_frame``.

    ``checksum`` is the running checksum after ``after_frame`` (the header's own checksum
    when it is 0). Reading stops at the first frame that fails its salts or checksum, at the
    end of the file, or once transactions were found and about ``max_bytes`` read; frames
    after the last commit frame are left for the next read. A transaction larger than
    :data:`MAX_TRANSACTION_BYTES` is checked frame by frame but not kept: once its commit
    frame is there, :attr:`WalRead.oversized_end` says where it ends; until then
    :attr:`WalRead.scanned` says how far it was checked, which a later read may pass as
    ``resume`` (with the same ``after_frame``) to go on from there. When the file's header is
    no longer ``header``, nothing is returned and :attr:`WalRead.header` says what it is now.
    """
    try:
        with open(wal, "rb") as handle:
            current = parse_header(handle.read(WAL_HEADER_BYTES))
            size = handle.seek(0, 2)
            if current is None or current.salts != header.salts:
                return WalRead(current, [], after_frame, checksum, size)
            scan = _Scan(header, after_frame, checksum, size)
            if resume is not None and resume[0] > after_frame:
                scan.resume_oversized(*resume)
            handle.seek(frame_offset(header, scan.frame_number + 1))
            step = FRAME_HEADER_BYTES + header.page_size
            chunk = max(1, max_bytes // step) * step
            # The file keeps its size across resets, so past the cycle's end it holds an
            # earlier cycle's frames: reads start small and grow while every frame is the
            # cycle's, so a look at a few new frames never reads (or holds) the stale rest.
            want = min(chunk, FIRST_READ_FRAMES * step)
            read = 0
            while scan.found.oversized_end is None:
                # Never more than the file holds: a read of a whole chunk would allocate
                # ``max_bytes`` at every look, however few frames were added.
                data = handle.read(min(want, max(step, size - handle.tell())))
                want = min(chunk, want * 4)
                read += len(data)
                if not scan.feed(data) or (scan.found.transactions and read >= max_bytes):
                    break
    except FileNotFoundError:
        return WalRead(None, [], after_frame, checksum, 0)
    return scan.finish()


def _frames_of_cycle(data: bytes, frames: int, step: int, header: WalHeader) -> int:
    """How many of the ``frames`` whole frames in ``data`` lead with ``header``'s salts.

    Only those can belong to the cycle, so only those are worth checksumming.
    """
    if frames == 0:
        return 0
    raw = np.frombuffer(data, dtype=np.uint8, count=frames * step).reshape(frames, step)
    salts = np.frombuffer(struct.pack(">II", header.salt1, header.salt2), dtype=np.uint8)
    strangers = np.flatnonzero((raw[:, 8:16] != salts).any(axis=1))
    return int(strangers[0]) if len(strangers) else frames


class _Scan:
    """Frames checked one after another, gathered into whole transactions."""

    def __init__(self, header: WalHeader, after_frame: int, checksum: tuple[int, int],
                 size: int) -> None:
        self.header = header
        self.found = WalRead(header, [], after_frame, checksum, size)
        self.pending: list[Frame] = []
        self.pending_bytes = 0
        self.oversized = False
        self.running = checksum
        self.frame_number = after_frame

    def resume_oversized(self, frame: int, running: tuple[int, int]) -> None:
        """Go on from a frame an earlier read checked inside an oversized transaction."""
        self.frame_number, self.running, self.oversized = frame, running, True

    def feed(self, data: bytes) -> bool:
        """Take the frames in ``data``; False once a frame fails or the data runs out."""
        header = self.header
        step = FRAME_HEADER_BYTES + header.page_size
        whole = len(data) // step
        # Every frame's checksum at once; only the frames up to the first that fails are taken.
        raw = _proven_rows(data, header, self.running)
        proven = len(raw)
        view = memoryview(data)
        for index in range(proven):
            offset = index * step
            page_number, commit_size = _PAGE_AND_COMMIT.unpack_from(data, offset)
            self.frame_number += 1
            if not self.oversized:
                self.pending.append(Frame(page_number, commit_size,
                                          view[offset + FRAME_HEADER_BYTES:offset + step]))
                self.pending_bytes += step
                if self.pending_bytes > MAX_TRANSACTION_BYTES:
                    self.pending, self.pending_bytes, self.oversized = [], 0, True
            if commit_size:
                self.running = _stored_checksum(data, offset)
                if self.oversized:
                    self.found.oversized_end = (self.frame_number, self.running)
                    return False
                first = self.frame_number - len(self.pending) + 1
                self.found.transactions.append(Transaction(first, self.pending))
                self.found.end_frame, self.found.checksum = self.frame_number, self.running
                self.pending, self.pending_bytes = [], 0
        if proven:
            self.running = _stored_checksum(data, (proven - 1) * step)
        return proven == whole and len(data) >= step and len(data) % step == 0

    def finish(self) -> WalRead:
        """What was found; where an unfinished oversized transaction was checked up to."""
        if self.oversized and self.found.oversized_end is None:
            self.found.scanned = (self.frame_number, self.running)
        return self.found


@dataclass
class NewestFrames:
    """Where the log's current cycle holds each page's newest committed image."""

    header: WalHeader
    #: The last commit frame found (frames after it are not counted).
    last_commit: int
    #: The database's size in pages after that commit.
    database_pages: int
    #: ``frames[n]``: the frame holding page n's newest image up to the last commit (0: the
    #: log holds none, so the page's bytes are the file's).
    frames: np.ndarray

    def frame_of(self, page_number: int) -> int:
        """The frame holding ``page_number``'s newest committed image (0: none)."""
        return int(self.frames[page_number]) if page_number < len(self.frames) else 0

    def frames_of(self, first: int, count: int) -> np.ndarray:
        """:meth:`frame_of` for pages ``first`` to ``first + count - 1``, as one array."""
        found = self.frames[first:first + count]
        if len(found) < count:
            found = np.concatenate([found, np.zeros(count - len(found), dtype=np.uint32)])
        return found


#: How much of the log :func:`newest_frames` reads at a time.
MAP_READ_BYTES = 16 * 1024 * 1024


def newest_frames(wal: Path, read_bytes: int = MAP_READ_BYTES) -> NewestFrames | None:
    """Each page's newest committed frame in the log's current cycle (None: no commit).

    Every frame is proven as the archiver proves it (the cycle's salts, the running
    checksum); the walk stops at the first frame that fails, and frames after the last
    commit frame (a transaction still being written) are left out. Holds four bytes per
    page, never the pages themselves, so a log of any size is mapped in bounded memory.
    """
    try:
        with open(wal, "rb") as handle:
            header = parse_header(handle.read(WAL_HEADER_BYTES))
            if header is None:
                return None
            return _map_frames(handle, header, read_bytes)
    except FileNotFoundError:
        return None


def _proven_rows(data: bytes, header: WalHeader, running: tuple[int, int]) -> np.ndarray:
    """The frames of ``data``, one row each, from the first as long as each is proven.

    Proven: it carries the cycle's salts and its checksum follows on from ``running`` (the
    running checksum before the first frame).
    """
    step = FRAME_HEADER_BYTES + header.page_size
    ours = _frames_of_cycle(data, len(data) // step, step, header)
    raw = np.frombuffer(data, dtype=np.uint8, count=ours * step).reshape(ours, step)
    return raw[:_proven_frames(data, raw, header, running)] if ours else raw


def _proven_frames(data: bytes, raw: np.ndarray, header: WalHeader,
                   running: tuple[int, int]) -> int:
    """How many of the frames in ``raw`` (``data`` read as one row a frame) are valid in a row.

    Each frame's header holds the running checksum after it, so every frame is checked at
    once against its predecessor's stored sum: ``M s + part`` in wrapping 32-bit arithmetic.
    Once all of them match, the chain from ``running`` holds by induction.
    """
    words = raw[:, :FRAME_HEADER_BYTES].copy().view(">u4").astype(np.uint32)
    firsts, seconds = frame_checksum_parts(memoryview(data)[:raw.size], header.page_size,
                                           header.big_endian)
    na, nb, nc, nd = (np.uint32(value) for value in frame_step(header.page_size))
    before0 = np.concatenate([np.array([running[0]], dtype=np.uint32), words[:-1, 4]])
    before1 = np.concatenate([np.array([running[1]], dtype=np.uint32), words[:-1, 5]])
    good = ((na * before0 + nb * before1 + firsts == words[:, 4])
            & (nc * before0 + nd * before1 + seconds == words[:, 5])
            & (words[:, 0] != 0))
    failed = np.flatnonzero(~good)
    return int(failed[0]) if len(failed) else len(raw)


def _stored_checksum(data: bytes, offset: int) -> tuple[int, int]:
    """The running checksum the frame at ``offset`` of ``data`` stores (once proven)."""
    return _CHECKSUM.unpack_from(data, offset + 16)


def _map_frames(handle: BinaryIO, header: WalHeader, read_bytes: int) -> NewestFrames | None:
    step = FRAME_HEADER_BYTES + header.page_size
    chunk = max(1, read_bytes // step) * step
    running = header.checksum
    frames = np.zeros(0, dtype=np.uint32)
    pending = np.zeros(0, dtype=np.uint32)  # pages of frames after the last commit so far
    number = last_commit = database_pages = 0  # frames read, in the cycle
    while True:
        data = handle.read(chunk)
        whole = len(data) // step
        raw = _proven_rows(data, header, running)
        proven = len(raw)
        if proven:
            words = raw[:, :8].copy().view(">u4").astype(np.uint32)
            running = _stored_checksum(data, (proven - 1) * step)
            pages = np.concatenate([pending, words[:, 0]])
            commits = np.flatnonzero(words[:, 1])
            if len(commits):
                end = len(pending) + int(commits[-1]) + 1  # frames up to the last commit
                frames = _newest_of(frames, pages[:end], number - len(pending) + 1)
                last_commit = number + int(commits[-1]) + 1
                database_pages = int(words[commits[-1], 1])
                pending = pages[end:]
            else:
                pending = pages
            number += proven
        if proven < whole or len(data) < chunk:
            break
    if not last_commit:
        return None
    return NewestFrames(header, last_commit, database_pages, frames)


def _newest_of(frames: np.ndarray, pages: np.ndarray, first_frame: int) -> np.ndarray:
    """``frames`` with each of ``pages`` (written from ``first_frame`` on) at its newest."""
    top = int(pages.max()) + 1
    if top > len(frames):
        frames = np.concatenate([frames, np.zeros(top - len(frames), dtype=np.uint32)])
    # The last occurrence of each page is its newest frame in this stretch.
    reversed_pages = pages[::-1]
    unique, last_from_end = np.unique(reversed_pages, return_index=True)
    frames[unique] = first_frame + (len(pages) - 1 - last_from_end)
    return frames
