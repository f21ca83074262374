"""Archiving a page as what changed since the archive last held it, not as the whole page.

A queue's transactions rewrite a few rows on a few pages: a task's status, its lease, one
log line. Archived whole, each changed page costs its compressed size (about 8 KB a
transaction); compressed with the image the archive last recorded for that page as zlib's
preset dictionary, a page costs little more than the bytes that changed, even where SQLite
moved a cell within the page (the compressor refers back into the earlier image). For the
demo's queue workload that is about half of what a bytewise XOR with the earlier image
compresses to.

The rebuild holds exactly that earlier image: it applies the generation's transactions in
order over the snapshot and never shrinks the file before the end, so the bytes at a page's
place are the last archived image of the page, or the snapshot's when the generation never
archived it. The archiver therefore remembers only images it archived itself in the current
generation (a bounded cache, forgotten at every new generation); a page it does not
remember is archived whole (compressed on its own).
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict

from .store import ArchivedTransaction, CyclePosition
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
_TXN = struct.Struct(">IIIIIII")
_PAGE = struct.Struct(">IBI")
_WHOLE, _DELTA = 0, 1


def compress_delta(earlier: bytes, image: bytes | memoryview, level: int = LEVEL) -> bytes:
    """``image`` compressed with ``earlier`` as the preset dictionary."""
    compressor = zlib.compressobj(level, zdict=earlier)
    return compressor.compress(image) + compressor.flush()


def expand_delta(earlier: bytes, data: bytes) -> bytes:
    """The page :func:`compress_delta` compressed against ``earlier``."""
    expander = zlib.decompressobj(zdict=earlier)
    return expander.decompress(data) + expander.flush()


class PageImages:
    """The newest archived image of recently archived pages, least recently used dropped."""

    def __init__(self, limit_bytes: int = CACHE_BYTES, level: int | None = None) -> None:
        self.limit_bytes = limit_bytes
        #: zlib's level for what :meth:`encode` returns (None: :data:`LEVEL` as it is now).
        self.level = LEVEL if level is None else level
        self._images: OrderedDict[int, bytes] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._images)

    def clear(self) -> None:
        """Forget everything (a new generation starts from a new snapshot)."""
        self._images.clear()
        self._bytes = 0

    def encode(self, number: int, image: bytes | memoryview) -> tuple[int, bytes]:
        """How to archive ``image`` of page ``number``: (whole or delta, bytes); remembers it.

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
        if earlier is None or len(earlier) != len(image):
            return _WHOLE, zlib.compress(image, self.level)
        return _DELTA, compress_delta(earlier, image, self.level)


def encode_delta_transaction(transaction: Transaction, cycle: tuple[int, int, int],
                             page_size: int, images: PageImages) -> bytes:
    """The payload of one transaction record whose pages may be deltas."""
    parts = [_TXN.pack(cycle[0], cycle[1], cycle[2], transaction.first_frame,
                       len(transaction.frames), transaction.database_pages, page_size)]
    for frame in transaction.frames:
        how, data = images.encode(frame.page_number, frame.page)
        parts.append(_PAGE.pack(frame.page_number, how, len(data)) + data)
    return b"".join(parts)


def decode_delta_transaction(stamp: float, payload: bytes) -> ArchivedTransaction:
    """A delta transaction's payload: whole pages expanded, deltas as stored (flagged)."""
    sequence, salt1, salt2, first, count, pages, page_size = _TXN.unpack_from(payload)
    offset = _TXN.size
    images: list[tuple[int, bytes]] = []
    deltas: list[bool] = []
    for _ in range(count):
        number, how, length = _PAGE.unpack_from(payload, offset)
        offset += _PAGE.size
        data = payload[offset:offset + length]
        offset += length
        if len(data) != length or how not in (_WHOLE, _DELTA):
            raise ValueError("transaction record is damaged")
        images.append((number, zlib.decompress(data) if how == _WHOLE else data))
        deltas.append(how == _DELTA)
    if offset != len(payload):
        raise ValueError("transaction record has trailing bytes")
    return ArchivedTransaction(stamp, CyclePosition(sequence, salt1, salt2, first), pages,
                               page_size, images, tuple(deltas))
