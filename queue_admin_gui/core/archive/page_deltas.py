"""Archiving a page as what changed since the archive last held it, not as the whole page.

A queue's transactions rewrite a few rows on a few pages: a task's status, its lease, one
log line. Archived whole, each changed page costs its full size (about 8 KB a transaction
after compression); archived as the bytewise XOR with the image the archive last recorded
for that page, it is mostly zeros and compresses to a few hundred bytes.

The rebuild holds exactly that earlier image: it applies the generation's transactions in
order over the snapshot and never shrinks the file before the end, so the bytes at a page's
place are the last archived image of the page, or the snapshot's when the generation never
archived it. The archiver therefore remembers only images it archived itself in the current
generation (a bounded cache, forgotten at every new generation); a page it does not
remember is archived whole.
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict

from .store import ArchivedTransaction, CyclePosition
from .walfile import Transaction

#: Page images the archiver remembers for deltas (the hot pages of a queue fit easily).
CACHE_BYTES = 32 * 1024 * 1024
_TXN = struct.Struct(">IIIIIII")
_PAGE = struct.Struct(">IB")
_WHOLE, _DELTA = 0, 1


def xor_pages(first: bytes, second: bytes) -> bytes:
    """The bytewise XOR of two equally long pages (applying it twice gives the page back)."""
    return (int.from_bytes(first, "big") ^ int.from_bytes(second, "big")).to_bytes(
        len(first), "big")


class PageImages:
    """The newest archived image of recently archived pages, least recently used dropped."""

    def __init__(self, limit_bytes: int = CACHE_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self._images: OrderedDict[int, bytes] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._images)

    def clear(self) -> None:
        """Forget everything (a new generation starts from a new snapshot)."""
        self._images.clear()
        self._bytes = 0

    def encode(self, number: int, image: bytes) -> tuple[int, bytes]:
        """How to archive ``image`` of page ``number``: (whole or delta, bytes); remembers it."""
        earlier = self._images.pop(number, None)
        if earlier is not None:
            self._bytes -= len(earlier)
        self._images[number] = image
        self._bytes += len(image)
        while self._bytes > self.limit_bytes and self._images:
            _, dropped = self._images.popitem(last=False)
            self._bytes -= len(dropped)
        if earlier is None or len(earlier) != len(image):
            return _WHOLE, image
        return _DELTA, xor_pages(earlier, image)


def encode_delta_transaction(transaction: Transaction, cycle: tuple[int, int, int],
                             page_size: int, images: PageImages) -> bytes:
    """The compressed payload of one transaction whose pages may be deltas."""
    head = _TXN.pack(cycle[0], cycle[1], cycle[2], transaction.first_frame,
                     len(transaction.frames), transaction.database_pages, page_size)
    parts = [head]
    for frame in transaction.frames:
        how, data = images.encode(frame.page_number, frame.page)
        parts.append(_PAGE.pack(frame.page_number, how) + data)
    return zlib.compress(b"".join(parts), 6)


def decode_delta_transaction(stamp: float, payload: bytes) -> ArchivedTransaction:
    """A delta transaction's payload: pages as stored, with which of them are deltas."""
    raw = zlib.decompress(payload)
    sequence, salt1, salt2, first, count, pages, page_size = _TXN.unpack_from(raw)
    offset = _TXN.size
    images: list[tuple[int, bytes]] = []
    deltas: list[bool] = []
    for _ in range(count):
        number, how = _PAGE.unpack_from(raw, offset)
        if how not in (_WHOLE, _DELTA):
            raise ValueError("transaction record has an unknown page encoding")
        offset += _PAGE.size
        images.append((number, raw[offset:offset + page_size]))
        deltas.append(how == _DELTA)
        offset += page_size
    if offset != len(raw):
        raise ValueError("transaction record has trailing bytes")
    return ArchivedTransaction(stamp, CyclePosition(sequence, salt1, salt2, first), pages,
                               page_size, images, tuple(deltas))
