"""Writing archived transactions over a database image, page by page, in order.

The one routine both a rebuild and compaction (:mod:`.images`) use, so that a replay image
holds exactly the bytes the rebuild's own replay would have written.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ErrorKind
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from .page_deltas import expand_delta
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


def apply_transactions(handle: BinaryIO, page_size: int,
                       transactions: Iterable[ArchivedTransaction],
                       progress: ProgressCallback | None, cancelled: CancelCheck | None,
                       action: str, stage: str = STAGE_APPLY, total: int = 0) -> Applied:
    """Write each transaction's pages at their places in the open file, in order.

    A page stored as a delta is expanded against the bytes at its place, which are the
    page's last archived image (or the snapshot's): the file is never shortened here.
    """
    applied = Applied()
    for transaction in transactions:
        if transaction.page_size != page_size:
            raise ArchiveError(f"{action} failed: the archive's pages are "
                               f"{transaction.page_size} bytes but the snapshot's are "
                               f"{page_size}; the archive is damaged.", ErrorKind.CORRUPT)
        for index, (number, image) in enumerate(transaction.pages):
            handle.seek((number - 1) * page_size)
            if transaction.deltas and transaction.deltas[index]:
                earlier = handle.read(page_size).ljust(page_size, b"\0")
                image = expand_delta(earlier, image)
                handle.seek((number - 1) * page_size)
            handle.write(image)
        applied.page_count = transaction.database_pages
        applied.transactions += 1
        applied.state_seen = transaction.stamp
        if applied.transactions % 256 == 0:
            report(progress, applied.transactions, max(total, applied.transactions), stage)
            raise_if_cancelled(cancelled, action)
    return applied


