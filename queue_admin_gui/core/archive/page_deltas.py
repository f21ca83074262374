"""Archiving a page as what changed since the archive last held it, not as the whole page.

A queue's transactions rewrite a few rows on a few pages: a task's status, its lease, one
log line. Archived whole, each changed page costs its compressed size (about 8 KB a
transaction). A page the archive already holds is archived as one of two kinds of delta:

* **Byte runs** (``_RUNS``, most pages): the page is compared with its earlier image, 8
  bytes at a time with numpy, for all the pages the archiver read at once; the changed
  bytes are gathered into runs (runs a few unchanged bytes apart are joined), and the end
  of a long run that holds the earlier image's bytes moved by a cell pointer or two (SQLite
  inserted or removed a cell, and the pointers after it moved by 2 bytes) becomes a copy
  from the earlier image. The page is stored as its runs (place, length, new bytes) and
  copies (place, length, source); no compressor is run. A page holds the CRC-32 of the
  earlier image its runs were found against, and applying them checks it first.
* **zlib against the earlier image** (``_DELTA``): the page compressed with its earlier
  image as zlib's preset dictionary, which costs little more than the changed bytes even
  where SQLite moved cells anywhere within the page (the compressor refers back into the
  earlier image). It costs several times the CPU of finding runs, so it is kept for a page
  whose runs would take more than :data:`RUNS_SHARE` of it; archives written before byte
  runs existed hold only this kind, and read as before.

The rebuild holds exactly that earlier image: it applies the generation's transactions in
order over the snapshot and never shrinks the file before the end, so the bytes at a page's
place are the last archived image of the page, or the snapshot's when the generation never
archived it. The archiver therefore remembers only images it archived itself in the current
generation (a bounded cache, forgotten at every new generation); a page it does not
remember is archived whole (compressed on its own). A page twice in one transaction (or in
one read) is a delta of its image just before.

A transaction record's payload: the transaction's header, then for each page its number,
kind, length and data (whole: the zlib-compressed page; ``_DELTA``: the zlib stream;
``_RUNS``: see :func:`apply_runs`). A damaged run or copy (past the page's end, more or
fewer bytes than the runs need) or an earlier image that is not the one the runs were found
against is refused as a damaged archive (:class:`ArchiveError`), never applied.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import ErrorKind
from .store import ArchivedTransaction, ArchiveError, CyclePosition
from .walfile import Transaction

#: Page images the archiver remembers for deltas: the hot pages of a queue (the newest
#: leaves of each table and index, their parents, the pages of tasks in flight) fit easily,
#: and it bounds what the archiver holds whatever the commit rate.
CACHE_BYTES = 4 * 1024 * 1024
#: zlib's level for pages and deltas. Levels 1 to 3 take zlib's fast path; at 3 a queue's
#: delta costs about two thirds of the CPU of level 6 (what archives were written with
#: before) for about 15 % more bytes. Any level decodes alike: a zlib stream does not need
#: its level to be expanded, so archives written at any level stay readable.
LEVEL = 3
#: The most of a page its runs may take (their bytes, 4 bytes a run and 6 a copy); a page
#: that changed more (its cells moved, say) is a zlib delta against its earlier image.
#: 0: every page the archive holds is a zlib delta (as archives were written before byte
#: runs).
RUNS_SHARE = 0.25
#: Unchanged 8-byte words between two changed ones that still join their runs (a run's
#: place and length take 4 bytes).
RUNS_GAP_WORDS = 1
#: How far a copy's bytes may have moved: a cell pointer more or fewer moves the pointers
#: after it by 2 bytes.
SHIFTS = (2, -2)
#: The fewest bytes a copy takes (shorter moved bytes stay in their run).
COPY_FROM = 16
#: Pages the byte runs are looked for in at once (in buffers the archiver keeps).
WORK_BYTES = 1024 * 1024
#: Pages the archiver encodes in one call at most (the earlier images they replace in the
#: cache are held until the call ends): enough to share numpy's cost per call.
BATCH_BYTES = 1024 * 1024
_TXN = struct.Struct(">IIIIIII")
_PAGE = struct.Struct(">IBI")
_RUNS_HEAD = struct.Struct(">IHH")
_BIG_ENDIAN = sys.byteorder == "big"
#: Page kinds: whole (zlib), zlib against the earlier image, byte runs.
_WHOLE, _DELTA, _RUNS = 0, 1, 2


def compress_delta(earlier: bytes, image: bytes | memoryview, level: int = LEVEL) -> bytes:
    """``image`` compressed with ``earlier`` as the preset dictionary."""
    compressor = zlib.compressobj(level, zdict=earlier)
    return compressor.compress(image) + compressor.flush()


def expand_delta(earlier: bytes, data: bytes) -> bytes:
    """The page :func:`compress_delta` compressed against ``earlier``."""
    expander = zlib.decompressobj(zdict=earlier)
    return expander.decompress(data) + expander.flush()


def _runs_damaged(why: str) -> ArchiveError:
    return ArchiveError(f"A page of the archive cannot be applied: {why}; the archive is "
                        "damaged.", ErrorKind.CORRUPT)


def apply_runs(earlier: bytes, data: bytes) -> bytes:
    """The page whose byte runs ``data`` holds over ``earlier`` (its last archived image).

    ``data``: the CRC-32 of ``earlier`` and the count of runs and of copies (big-endian);
    each run's place and length less one, each copy's place, length less one and source in
    ``earlier`` (little-endian 16-bit numbers); then the runs' bytes in order. Raises
    :class:`ArchiveError` when ``earlier`` is not the image the runs were found against, or
    the runs and copies do not fit the page and the bytes given.
    """
    if len(data) < _RUNS_HEAD.size:
        raise _runs_damaged("its byte runs are cut short")
    checksum, runs, copies = _RUNS_HEAD.unpack_from(data)
    at = _RUNS_HEAD.size + 4 * runs + 6 * copies
    if len(data) < at:
        raise _runs_damaged("its byte runs are cut short")
    if _BIG_ENDIAN:
        swapped = array("H", data[_RUNS_HEAD.size:at])
        swapped.byteswap()
        table: Sequence[int] = swapped
    else:
        table = memoryview(data)[_RUNS_HEAD.size:at].cast("H")
    if zlib.crc32(earlier) != checksum:
        raise _runs_damaged("the image at its place is not the one its byte runs were "
                            "found against")
    size = len(earlier)
    page = bytearray(earlier)
    for index in range(0, 2 * runs, 2):
        offset = table[index]
        end = offset + table[index + 1] + 1
        if end > size:
            raise _runs_damaged("a byte run lies past the page's end")
        following = at + end - offset
        page[offset:end] = data[at:following]
        at = following
    if at != len(data) or len(page) != size:
        raise _runs_damaged("its byte runs do not hold the bytes they need")
    for index in range(2 * runs, 2 * runs + 3 * copies, 3):
        offset, length, source = table[index], table[index + 1] + 1, table[index + 2]
        if offset + length > size or source + length > size:
            raise _runs_damaged("a copy lies past the page's end")
        page[offset:offset + length] = earlier[source:source + length]
    return bytes(page)


def expand_page(kind: int, earlier: bytes, data: bytes) -> bytes:
    """A delta page (``kind`` as :attr:`ArchivedTransaction.deltas` gives it) over ``earlier``.

    ``earlier`` is the page's last archived image. Raises :class:`ArchiveError` (byte runs)
    or :class:`zlib.error` (a zlib delta) when the page cannot be made from it.
    """
    if kind == _RUNS:
        return apply_runs(earlier, data)
    if kind == _DELTA:
        return expand_delta(earlier, data)
    raise _runs_damaged(f"it is of an unknown kind ({kind})")


class PageImages:
    """The newest archived image of recently archived pages, least recently used dropped."""

    def __init__(self, limit_bytes: int = CACHE_BYTES, level: int | None = None,
                 runs_share: float | None = None) -> None:
        self.limit_bytes = limit_bytes
        #: zlib's level for whole pages and zlib deltas (None: :data:`LEVEL` as it is now).
        self.level = LEVEL if level is None else level
        #: The most of a page its runs may take (None: :data:`RUNS_SHARE` as it is now).
        self.runs_share = RUNS_SHARE if runs_share is None else runs_share
        self._images: OrderedDict[int, bytes] = OrderedDict()
        self._bytes = 0
        #: Where byte runs are found (buffers kept from one transaction to the next).
        self.finder = _RunFinder()

    def __len__(self) -> int:
        return len(self._images)

    def clear(self) -> None:
        """Forget everything (a new generation starts from a new snapshot)."""
        self._images.clear()
        self._bytes = 0

    def swap(self, number: int, image: bytes | memoryview) -> tuple[bytes, bytes | None]:
        """Remember ``image`` as page ``number``'s: (a copy of it, the earlier image or None).

        What is remembered is a copy: ``image`` may be a view into a large read buffer.
        """
        earlier = self._images.pop(number, None)
        if earlier is not None:
            self._bytes -= len(earlier)
        image = bytes(image)
        self._images[number] = image
        self._bytes += len(image)
        while self._bytes > self.limit_bytes and self._images:
            _, dropped = self._images.popitem(last=False)
            self._bytes -= len(dropped)
        return image, earlier


class _RunFinder:
    """Finds the byte runs of pages (earlier, new), many pages at once, in buffers of its own.

    Pages are laid end to end (:data:`WORK_BYTES` at a time, in buffers kept from one call
    to the next: fresh large buffers would cost more in page faults than the comparison)
    and compared 8 bytes at a time; runs of changed words at most :data:`RUNS_GAP_WORDS`
    unchanged words apart are joined, and each run is trimmed to its first and last changed
    byte. The longest end of a long run that holds the earlier image's bytes moved by one of
    :data:`SHIFTS` (the cell pointers after one SQLite inserted or removed) becomes a copy.
    """

    def __init__(self) -> None:
        self._size = 0  # the buffers are made at the first use
        self._earlier = self._new = bytearray()
        self._changed = np.empty(0, dtype=bool)

    def find(self, pairs: list[tuple[bytes, bytes]], page_size: int) -> list[bytes]:
        """For each pair (earlier, new) of ``page_size`` bytes: its runs for :func:`apply_runs`."""
        step = max(1, WORK_BYTES // page_size)
        if step * page_size > self._size:  # the first use, or pages larger than the buffers
            self._size = step * page_size
            self._earlier, self._new = bytearray(self._size), bytearray(self._size)
            self._changed = np.empty(self._size // 8, dtype=bool)
        found: list[bytes] = []
        for first in range(0, len(pairs), step):
            found.extend(self._find(pairs[first:first + step], page_size))
        return found

    def _find(self, pairs: list[tuple[bytes, bytes]], page_size: int) -> list[bytes]:
        earlier_buffer, new_buffer = self._earlier, self._new
        at = len(pairs) * page_size
        earlier_buffer[:at] = b"".join([pair[0] for pair in pairs])
        new_buffer[:at] = b"".join([pair[1] for pair in pairs])
        earlier_words = np.frombuffer(earlier_buffer, dtype="<u8", count=at // 8)
        new_words = np.frombuffer(new_buffer, dtype="<u8", count=at // 8)
        changed = self._changed[:at // 8]
        np.not_equal(earlier_words, new_words, out=changed)
        words = np.flatnonzero(changed)
        if not len(words):
            return [_RUNS_HEAD.pack(zlib.crc32(earlier), 0, 0) for earlier, _new in pairs]
        page = words // (page_size // 8)
        breaks = np.flatnonzero((np.diff(words) > 1 + RUNS_GAP_WORDS) | (np.diff(page) != 0))
        first = np.concatenate(([0], breaks + 1))
        last = np.concatenate((breaks, [len(words) - 1]))
        start_words, end_words = words[first], words[last]
        # Trimmed to the first and last changed byte of their first and last word.
        start_bytes = (earlier_words[start_words] ^ new_words[start_words]).view(np.uint8)
        end_bytes = (earlier_words[end_words] ^ new_words[end_words]).view(np.uint8)
        starts = start_words * 8 + (start_bytes.reshape(-1, 8) != 0).argmax(axis=1)
        ends = end_words * 8 + 8 - (end_bytes.reshape(-1, 8)[:, ::-1] != 0).argmax(axis=1)
        run_pages = page[first]
        begin, end, shift = self._copies(starts, ends, page_size, at)
        # Each run is the bytes before its copy, the copy (if any), the bytes after it.
        pieces = np.stack((starts, np.minimum(begin, ends), end, ends), axis=1).reshape(-1)
        piece_starts, piece_ends = pieces[0::2], pieces[1::2]
        kept = piece_ends > piece_starts
        piece_starts, piece_ends = piece_starts[kept], piece_ends[kept]
        piece_pages = np.repeat(run_pages, 2)[kept]
        has_copy = end > begin
        runs = np.empty((len(piece_starts), 2), dtype="<u2")
        runs[:, 0] = piece_starts - piece_pages * page_size
        runs[:, 1] = piece_ends - piece_starts - 1
        copy_base = run_pages[has_copy] * page_size
        copies = np.empty((int(has_copy.sum()), 3), dtype="<u2")
        copies[:, 0] = begin[has_copy] - copy_base
        copies[:, 1] = (end - begin - 1)[has_copy]
        copies[:, 2] = (begin - shift)[has_copy] - copy_base
        lengths = piece_ends - piece_starts
        taken = np.cumsum(lengths)
        new = np.frombuffer(new_buffer, dtype=np.uint8, count=at)
        literal = new[np.repeat(piece_starts - taken + lengths, lengths)
                      + np.arange(int(taken[-1]) if len(taken) else 0)].tobytes()
        pages = np.arange(len(pairs) + 1)
        run_bounds = np.searchsorted(piece_pages, pages)
        copy_bounds = np.searchsorted(run_pages[has_copy], pages).tolist()
        literal_bounds = np.concatenate(([0], taken))[run_bounds].tolist()
        run_bounds = run_bounds.tolist()
        runs_raw, copies_raw = runs.tobytes(), copies.tobytes()
        found = []
        for index, (earlier, _new) in enumerate(pairs):
            run_low, run_high = run_bounds[index], run_bounds[index + 1]
            copy_low, copy_high = copy_bounds[index], copy_bounds[index + 1]
            found.append(b"".join((
                _RUNS_HEAD.pack(zlib.crc32(earlier), run_high - run_low, copy_high - copy_low),
                runs_raw[4 * run_low:4 * run_high], copies_raw[6 * copy_low:6 * copy_high],
                literal[literal_bounds[index]:literal_bounds[index + 1]])))
        return found

    def _copies(self, starts: np.ndarray, ends: np.ndarray, page_size: int, at: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each run: where its copy begins and ends, and how far its bytes moved.

        Both are the run's end when it has no copy.

        Runs are compared 8 bytes at a time with the earlier image moved by each of
        :data:`SHIFTS`: a copy is the longest stretch of whole words that ends the run's
        whole words and holds the earlier bytes moved.
        """
        begin, end = ends.copy(), ends.copy()
        best_shift = np.zeros(len(ends), dtype=np.int64)
        low_words, high_words = (starts + 7) // 8, ends // 8
        long = np.flatnonzero(high_words - low_words >= COPY_FROM // 8)
        if not len(long):
            return begin, end, best_shift
        low, high = low_words[long], high_words[long]
        counts = high - low
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
        words = np.repeat(low - offsets, counts) + np.arange(int(counts.sum()))
        new = np.frombuffer(self._new, dtype="<u8", count=at // 8)[words]
        place = (words * 8) % page_size
        best = high.copy()
        chosen = np.zeros(len(long), dtype=np.int64)
        for shift in SHIFTS:
            skew = -shift % 8
            earlier = np.frombuffer(self._earlier, dtype="<u8", offset=skew,
                                    count=(at - skew) // 8)
            source = (words * 8 - shift - skew) // 8
            outside = (place < shift) | (place - shift + 8 > page_size)
            differs = outside | (new != earlier[np.clip(source, 0, len(earlier) - 1)])
            last = np.maximum.reduceat(np.where(differs, words, -1), offsets)
            begins = np.maximum(last + 1, low)
            better = begins < best
            best[better] = begins[better]
            chosen[better] = shift
        worth = np.flatnonzero(high - best >= COPY_FROM // 8)
        runs = long[worth]
        begin[runs] = best[worth] * 8
        end[runs] = high[worth] * 8
        best_shift[runs] = chosen[worth]
        return begin, end, best_shift


def batches_of(transactions: list[Transaction], pages: int) -> Iterator[list[Transaction]]:
    """``transactions`` in order, in batches of about ``pages`` pages (a larger one alone)."""
    batch: list[Transaction] = []
    held = 0
    for transaction in transactions:
        if batch and held + len(transaction.frames) > pages:
            yield batch
            batch, held = [], 0
        batch.append(transaction)
        held += len(transaction.frames)
    if batch:
        yield batch


def encode_delta_transactions(transactions: list[Transaction], cycle: tuple[int, int, int],
                              page_size: int, images: PageImages) -> list[bytes]:
    """The payloads of transaction records whose pages may be deltas, one per transaction.

    The pages of all ``transactions`` are compared with their earlier images at once (a
    page twice among them is compared with its image before, in order).
    """
    runs_on = images.runs_share > 0
    planned: list[list[tuple[int, bytes, bytes | None, int]]] = []
    pairs: list[tuple[bytes, bytes]] = []
    for transaction in transactions:
        entries = []
        for frame in transaction.frames:
            image, earlier = images.swap(frame.page_number, frame.page)
            if earlier is not None and len(earlier) != len(image):
                earlier = None
            index = -1
            if earlier is not None and runs_on:
                index = len(pairs)
                pairs.append((earlier, image))
            entries.append((frame.page_number, image, earlier, index))
        planned.append(entries)
    found = images.finder.find(pairs, page_size) if pairs else []
    most = images.runs_share * page_size
    payloads = []
    for transaction, entries in zip(transactions, planned, strict=True):
        parts = [_TXN.pack(cycle[0], cycle[1], cycle[2], transaction.first_frame,
                           len(transaction.frames), transaction.database_pages, page_size)]
        for number, image, earlier, index in entries:
            if earlier is None:
                how, data = _WHOLE, zlib.compress(image, images.level)
            elif index < 0 or len(found[index]) > most:
                how, data = _DELTA, compress_delta(earlier, image, images.level)
            else:
                how, data = _RUNS, found[index]
            parts.append(_PAGE.pack(number, how, len(data)))
            parts.append(data)
        payloads.append(b"".join(parts))
    return payloads


def encode_delta_transaction(transaction: Transaction, cycle: tuple[int, int, int],
                             page_size: int, images: PageImages) -> bytes:
    """The payload of one transaction record whose pages may be deltas."""
    return encode_delta_transactions([transaction], cycle, page_size, images)[0]


def decode_delta_transaction(stamp: float, payload: bytes) -> ArchivedTransaction:
    """A delta transaction's payload: whole pages expanded, deltas as stored.

    :attr:`ArchivedTransaction.deltas` gives each page's kind, for :func:`expand_page`.
    """
    sequence, salt1, salt2, first, count, pages, page_size = _TXN.unpack_from(payload)
    offset = _TXN.size
    images: list[tuple[int, bytes]] = []
    kinds: list[int] = []
    for _ in range(count):
        number, how, length = _PAGE.unpack_from(payload, offset)
        offset += _PAGE.size
        data = payload[offset:offset + length]
        offset += length
        if len(data) != length or how not in (_WHOLE, _DELTA, _RUNS):
            raise ValueError("transaction record is damaged")
        images.append((number, zlib.decompress(data) if how == _WHOLE else data))
        kinds.append(how)
    if offset != len(payload):
        raise ValueError("transaction record has trailing bytes")
    return ArchivedTransaction(stamp, CyclePosition(sequence, salt1, salt2, first), pages,
                               page_size, images, tuple(kinds))
