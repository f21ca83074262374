"""Writing archived transactions over a database image, page by page, in order.

The one routine both a rebuild and compaction (:mod:`.images`) use, so that a replay image
holds exactly the bytes the rebuild's own replay would have written.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ErrorKind
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from .page_deltas import expand_page
from .store import ArchivedTransaction, ArchiveError

STAGE_APPLY = "Applying archived transactions"


@dataclass
class Applied:
    """What :func:`apply_transactions` wrote."""

    transactions: int = 0
    #: When the archiver saw the last transaction written (None: none was).
    state_seen: float | None = None
    #: The database's size in pages after the last transaction (None: none was written).
    page_count: int | None = None


def page_size_of(path: Path) -> int:
    """The page size an SQLite file's header gives."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    page_size = struct.unpack(">H", header[16:18])[0]
    return 65536 if page_size == 1 else page_size


#: Page images a replay holds before writing them out: a page a queue rewrites in every
#: transaction (an index's inner pages, the table's last page) is then written once, not once
#: per transaction.
HELD_BYTES = 64 * 1024 * 1024
#: Transactions applied between two looks at ``cancelled`` (a few milliseconds of work).
CANCEL_EVERY = 16


class _Pages:
    """The file's pages as the replay has written them so far, the newest held in memory."""

    def __init__(self, handle: BinaryIO, page_size: int, held_bytes: int = HELD_BYTES) -> None:
        handle.flush()
        self.handle = handle
        self.page_size = page_size
        self.held: dict[int, bytes] = {}
        self.limit = max(1, held_bytes // page_size)
        self._fd = handle.fileno() if hasattr(os, "pread") else None

    def read(self, number: int) -> bytes:
        """Page ``number``'s bytes now (zeros past the end of the file)."""
        held = self.held.get(number)
        if held is not None:
            return held
        offset = (number - 1) * self.page_size
        if self._fd is not None:
            data = os.pread(self._fd, self.page_size, offset)
        else:
            self.handle.seek(offset)
            data = self.handle.read(self.page_size)
        return data.ljust(self.page_size, b"\0")

    def write(self, number: int, image: bytes) -> None:
        """Page ``number`` is now ``image`` (held; written out by :meth:`flush`)."""
        self.held[number] = image
        if len(self.held) >= self.limit:
            self.flush()

    def flush(self) -> None:
        """Write every held page at its place, in page order."""
        for number in sorted(self.held):
            offset = (number - 1) * self.page_size
            image = self.held[number]
            if self._fd is not None:
                written = os.pwrite(self._fd, image, offset)
                if written != len(image):
                    raise OSError(f"a short write of page {number}")
            else:
                self.handle.seek(offset)
                self.handle.write(image)
        self.held.clear()
        if self._fd is None:
            self.handle.flush()


def apply_transactions(handle: BinaryIO, page_size: int,
                       transactions: Iterable[ArchivedTransaction],
                       progress: ProgressCallback | None, cancelled: CancelCheck | None,
                       action: str, stage: str = STAGE_APPLY, total: int = 0, *,
                       held_bytes: int = HELD_BYTES) -> Applied:
    """Write each transaction's pages at their places in the open file, in order.

    A page stored as a delta is expanded against the bytes at its place, which are the
    page's last archived image (or the snapshot's): the file is never shortened here. The
    newest images are held in memory (up to ``held_bytes``, at least one page) and written
    out in page order; every page is in the file when this returns. A smaller limit writes
    the same bytes, only more often (validation, which runs beside the archiver all day,
    keeps it to a few MB).
    """
    applied = Applied()
    pages = _Pages(handle, page_size, held_bytes)
    for transaction in transactions:
        if transaction.page_size != page_size:
            raise ArchiveError(f"{action} failed: the archive's pages are "
                               f"{transaction.page_size} bytes but the snapshot's are "
                               f"{page_size}; the archive is damaged.", ErrorKind.CORRUPT)
        for index, (number, image) in enumerate(transaction.pages):
            if transaction.deltas and transaction.deltas[index]:
                image = expand_page(transaction.deltas[index], pages.read(number), image)
            pages.write(number, image)
        applied.page_count = transaction.database_pages
        applied.transactions += 1
        applied.state_seen = transaction.stamp
        if applied.transactions % CANCEL_EVERY == 0:
            # Often: beside the archiver, the check is where validation gives way to it.
            raise_if_cancelled(cancelled, action)
            if applied.transactions % 256 == 0:
                report(progress, applied.transactions, max(total, applied.transactions),
                       stage)
    pages.flush()
    return applied


