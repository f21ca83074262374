"""Rebuilding the queue as it was at an instant, into a new file that is an ordinary backup.

The newest generation covering the instant is used: its snapshot is copied, then every
archived transaction the archiver saw at or before the instant is written over it, page by
page, in order, each one checked to follow the previous one in the WAL (same cycle and the
next frame, or frame 1 of the very next cycle). The result is made a self-contained
rollback-journal file, given a manifest, and checked like any backup (full integrity check,
queue schema, checksum): it is then restored through the one restore path, never by hand.
An instant outside every generation is refused with the nearest instants that can be rebuilt.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ... import __version__
from ..database import check_queue_schema, task_counts
from ..errors import ErrorKind, OperationCancelled
from ..files import file_sha256, fsync_file, retry_on_windows_lock
from ..manifest import (
    MANIFEST_FORMAT_VERSION,
    BackupManifest,
    manifest_path_for,
    sqlite_library_version,
)
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from ..verify import VerifyReport, check_backup_file, open_backup_file
from .page_deltas import decode_delta_transaction, expand_delta
from .store import (
    KIND_DELTA_TRANSACTION,
    KIND_RESET,
    KIND_TRANSACTION,
    ArchivedTransaction,
    ArchiveError,
    Generation,
    decode_reset,
    decode_transaction,
    instant_text,
    iter_records,
    list_generations,
)

STAGE_SNAPSHOT = "Copying the snapshot"
#: How finely instants are shown (:func:`instant_text`).
SHOWN_PRECISION_SECONDS = 0.001
STAGE_APPLY = "Applying archived transactions"
STAGE_CHECK = "Checking the rebuilt file"
_ISO_FRACTION = re.compile(r"(\d{2}:\d{2}:\d{2})[.,](\d+)")


@dataclass
class RebuildResult:
    """A file rebuilt to an instant: an ordinary verified backup with its manifest."""

    path: Path
    at: datetime
    #: When the archiver saw the last transaction applied (the snapshot's instant if none).
    state_seen_at: datetime
    generation: str
    transactions_applied: int
    size_bytes: int
    seconds: float
    manifest: BackupManifest
    check: VerifyReport


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant: with an offset or ``Z`` as given, without one in local time.

    Fractions of a second of any length are accepted (rounded down to microseconds).
    """
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    cleaned = _ISO_FRACTION.sub(lambda m: f"{m.group(1)}.{(m.group(2) + '000000')[:6]}",
                                cleaned, count=1)
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError as error:
        raise ArchiveError(f"The time '{text}' is not an ISO 8601 instant; write it like "
                           "2024-05-01T10:41:59 (local time) or 2024-05-01T08:41:59Z.",
                           ErrorKind.INVALID) from error
    return value.astimezone() if value.tzinfo is None else value


def restorable_spans(archive: Path) -> list[tuple[float, float, Generation]]:
    """Every stretch of time that can be rebuilt, oldest first."""
    spans = []
    for generation in list_generations(archive):
        span = generation.restorable
        if span is not None:
            spans.append((span[0], span[1], generation))
    return spans


def choose_generation(archive: Path, at: float) -> Generation:
    """The newest generation covering ``at``, or a refusal naming the nearest instants."""
    spans = restorable_spans(archive)
    # Instants are shown to the millisecond, cut short: the first instant of a generation as
    # shown may lie up to 1 ms before it, and is taken as that first instant.
    covering = [generation for start, end, generation in spans
                if start - SHOWN_PRECISION_SECONDS < at <= end]
    if covering:
        return covering[-1]
    when = instant_text(at)
    if not spans:
        raise ArchiveError(f"The queue cannot be rebuilt as it was at {when}: the archive "
                           f"'{archive}' holds no restorable generation yet.",
                           ErrorKind.NOT_FOUND)
    before = max((end for _, end, _ in spans if end < at), default=None)
    after = min((start for start, _, _ in spans if start > at), default=None)
    if before is None:
        where = f"it is before the archive starts; the earliest restorable instant is " \
                f"{instant_text(after)}"
    elif after is None:
        where = f"it is after the newest archived instant, {instant_text(before)}"
    else:
        where = (f"it falls in a gap of the archive; the nearest restorable instants are "
                 f"{instant_text(before)} and {instant_text(after)}")
    raise ArchiveError(f"The queue cannot be rebuilt as it was at {when}: {where}.",
                       ErrorKind.INVALID)


def transactions_until(generation: Generation, at: float) -> Iterator[ArchivedTransaction]:
    """The generation's transactions seen at or before ``at``, each proven to follow the last."""
    start = generation.data.get("start")
    expected = tuple(start) if start else None  # (sequence, salt1, salt2, next frame - 1)
    for segment in generation.segments:
        for kind, stamp, payload in iter_records(segment):
            if stamp > at:
                return
            if kind == KIND_RESET:
                old_salts, old_frame, new_salts = decode_reset(payload)
                if expected is None or (expected[1:3], expected[3]) != (old_salts, old_frame):
                    raise ArchiveError(
                        f"The archive's generation {generation.id} is damaged: the reset "
                        f"seen at {instant_text(stamp)} is not where the archive ended; "
                        "rebuild to an earlier instant or use a backup.", ErrorKind.CORRUPT)
                expected = (expected[0], new_salts[0], new_salts[1], 0)
                continue
            if kind == KIND_DELTA_TRANSACTION:
                transaction = decode_delta_transaction(stamp, payload)
            elif kind == KIND_TRANSACTION:
                transaction = decode_transaction(stamp, payload)
            else:
                continue
            here = transaction.position
            same = expected is not None and (here.salt1, here.salt2) == expected[1:3]
            if same and expected is not None:
                follows = here.frame == expected[3] + 1
            else:
                follows = here.frame == 1 and (
                    expected is None or here.salt1 == (expected[1] + 1) & 0xFFFFFFFF)
            if not follows:
                raise ArchiveError(
                    f"The archive's generation {generation.id} is damaged: the transaction "
                    f"seen at {instant_text(stamp)} does not follow the one before it; rebuild "
                    "to an earlier instant or use a backup.", ErrorKind.CORRUPT)
            expected = (here.checkpoint_sequence, here.salt1, here.salt2,
                        here.frame + len(transaction.pages) - 1)
            yield transaction


def rebuild_to_time(archive: str | Path, at: datetime | float, output: str | Path,
                    progress: ProgressCallback | None = None,
                    cancelled: CancelCheck | None = None, *,
                    live_path: str | Path | None = None) -> RebuildResult:
    """Rebuild the queue as it was at ``at`` into the new file ``output`` and verify it.

    ``output`` must not exist; its manifest is written beside it. ``live_path`` is the
    database the file is meant for (its own triggers and views are then accepted by the
    check). A failure or cancel leaves nothing behind.
    """
    started = time.monotonic()
    archive, output = Path(archive), Path(output)
    moment = at.timestamp() if isinstance(at, datetime) else float(at)
    action = f"Rebuilding the queue as it was at {instant_text(moment)}"
    generation = choose_generation(archive, moment)
    snapshot = generation.snapshot
    assert snapshot is not None
    if output.exists() or manifest_path_for(output).exists():
        raise ArchiveError(f"{action} refused: '{output}' already exists; choose a new file "
                           "name.", ErrorKind.ALREADY_EXISTS)
    partial = output.with_name(output.name + ".partial")
    renamed = False
    try:
        report(progress, 0, 1, STAGE_SNAPSHOT)
        shutil.copyfile(snapshot, partial)
        raise_if_cancelled(cancelled, action)
        applied, state_seen, page_size, pages = _apply(generation, moment, partial,
                                                       progress, cancelled, action)
        report(progress, 0, 1, STAGE_CHECK)
        fsync_file(partial)
        with open_backup_file(partial) as connection:
            counts = None if check_queue_schema(connection) else task_counts(connection)
        manifest = BackupManifest(
            format_version=MANIFEST_FORMAT_VERSION, name=output.name,
            sha256=file_sha256(partial, None, cancelled, action),
            size_bytes=partial.stat().st_size, page_count=pages, page_size=page_size,
            task_counts=counts, source_path=str(generation.data.get("database", "")),
            created_at=datetime.fromtimestamp(moment, tz=timezone.utc).isoformat(),
            sqlite_version=sqlite_library_version(), tool_version=__version__)
        manifest.write(output)
        retry_on_windows_lock(lambda: os.replace(partial, output))
        renamed = True
        check = check_backup_file(output, progress, cancelled, live_path=live_path)
        if not check.ok:
            raise ArchiveError(f"{action} failed: the rebuilt file did not pass its check "
                               f"({'; '.join(check.problems[:3])}); nothing was kept.",
                               check.kind or ErrorKind.CORRUPT)
    except BaseException as error:
        for leftover in (partial, manifest_path_for(output)) + ((output,) if renamed else ()):
            with contextlib.suppress(OSError):
                retry_on_windows_lock(leftover.unlink)
        if isinstance(error, OperationCancelled | ArchiveError):
            raise
        if isinstance(error, OSError):
            raise ArchiveError(f"{action} failed: {error.strerror or error}; check the "
                               "archive and the output folder.") from error
        raise
    report(progress, 1, 1, STAGE_CHECK)
    return RebuildResult(
        path=output, at=datetime.fromtimestamp(moment, tz=timezone.utc),
        state_seen_at=datetime.fromtimestamp(state_seen, tz=timezone.utc),
        generation=generation.id, transactions_applied=applied,
        size_bytes=output.stat().st_size, seconds=time.monotonic() - started,
        manifest=manifest, check=check)


def _apply(generation: Generation, moment: float, partial: Path,
           progress: ProgressCallback | None, cancelled: CancelCheck | None,
           action: str) -> tuple[int, float, int, int]:
    """Write the transactions over the copied snapshot; return what was applied."""
    with open(partial, "r+b") as handle:
        header = handle.read(100)
        page_size = struct.unpack(">H", header[16:18])[0]
        page_size = 65536 if page_size == 1 else page_size
        pages = handle.seek(0, 2) // page_size
        applied, state_seen = 0, float(generation.snapshot_at or 0.0)
        total = max(1, generation.transactions)
        for transaction in transactions_until(generation, moment):
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
            pages = transaction.database_pages
            applied += 1
            state_seen = transaction.stamp
            if applied % 256 == 0:
                report(progress, applied, total, STAGE_APPLY)
                raise_if_cancelled(cancelled, action)
        handle.truncate(pages * page_size)
        handle.seek(0)
        first = bytearray(handle.read(100))
        first[18:20] = b"\x01\x01"  # a rollback-journal file: no -wal belongs to it
        first[28:32] = struct.pack(">I", pages)
        first[92:96] = first[24:28]  # the in-header size is valid for this change counter
        handle.seek(0)
        handle.write(first)
    return applied, state_seen, page_size, pages
