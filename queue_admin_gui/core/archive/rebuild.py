"""Rebuilding the queue as it was at an instant, into a new file that is an ordinary backup.

Every file of the archive is checked against its checksums before the rebuild uses it or
returns (the frame logs first; the snapshot as described below); the newest generation
whose intact part covers the instant is used: its snapshot is copied (and proven to match its
checksum on the way), then every archived transaction the archiver saw at or before the
instant is written over it, page by page, in order, each one checked against its CRC and to
follow the previous one in the WAL (same cycle and the next frame, or frame 1 of the very
next cycle). An instant only a damaged file held is refused with the damage and the nearest
intact instants; a rebuild never stops short of its instant. The result is made a self-contained
rollback-journal file, given a manifest, and checked like any backup (full integrity check,
queue schema, checksum): it is then restored through the one restore path, never by hand.
An instant outside every generation is refused with the nearest instants that can be rebuilt.

Where the time goes, and what runs side by side (two cores): the generation's replay image,
when the instant lies at or after it, is copied and hashed on a helper thread while every
frame log is checked on the caller's; the copy is used only if the checked archive yields
that very image. Before the image, the snapshot is copied that way instead, the level files
of the whole stretches before the instant (:mod:`.levels`) are checked, then written over
it, each page once, and only the transactions after the last of them are replayed. The
snapshot's SHA-256 is then proven beside the rest of the work (the rebuild's copy proves it
instead when the snapshot itself is copied); damage to it refuses
the rebuild exactly as a full check first would. The flush to the disk, the manifest's
SHA-256 and the task counts run together; the full check then compares that SHA-256 (just
computed from the file) with the manifest instead of hashing the file again, while SQLite's
integrity check reads every page.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ... import __version__
from ..backups.manifest import (
    MANIFEST_FORMAT_VERSION,
    BackupManifest,
    manifest_path_for,
    sqlite_library_version,
)
from ..backups.verify import VerifyReport, check_backup_file
from ..database import check_queue_schema, task_counts
from ..errors import ErrorKind, OperationCancelled
from ..files.durable import file_sha256, fsync_file, retry_on_windows_lock
from ..progress import CancelCheck, ProgressCallback, report
from ..trust.untrusted import open_backup_file
from .images import (
    VERIFIED_COPY_CHUNK,
    ReplayImage,
    copy_verified,
    image_for,
    read_image,
    snapshot_digest,
)
from .levels import Level, LevelDamage, check_level_files, usable_levels, write_levels
from .page_deltas import decode_delta_transaction
from .replay import HELD_BYTES, apply_transactions, page_size_of
from .store import (
    KIND_DELTA_TRANSACTION,
    KIND_TRANSACTION,
    ArchiveDamage,
    ArchivedTransaction,
    ArchiveError,
    ChainCheck,
    Generation,
    SegmentRead,
    decode_transaction,
    instant_text,
    iter_records,
    list_generations,
    prove_snapshot,
)

STAGE_SNAPSHOT = "Copying the snapshot"
#: How finely instants are shown (:func:`instant_text`).
SHOWN_PRECISION_SECONDS = 0.000001
#: Words ``--at`` takes besides an instant.
LATEST, EARLIEST = "latest", "earliest"
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
    #: Transactions taken from the generation's replay image (None: replayed from the snapshot).
    from_image: int | None = None
    #: Why the generation's replay image could not be used, when it has one that failed.
    image_problem: str | None = None
    #: Transactions the level files written over the snapshot stood for (None: none used).
    from_levels: int | None = None
    levels_used: int = 0
    #: Why a level file the instant could have used was not, when one failed its checks.
    level_problem: str | None = None


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant: with an offset or ``Z`` as given, without one in local time.

    Fractions of a second of any length are accepted (rounded down to microseconds). An
    instant outside what the system clock can express (the year 1, say) is refused.
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
                           "2024-05-01T10:41:59 (local time) or 2024-05-01T08:41:59Z, or "
                           "write latest or earliest.", ErrorKind.INVALID) from error
    try:
        value = value.astimezone() if value.tzinfo is None else value
        value.timestamp()
    except (OverflowError, ValueError, OSError) as error:
        raise ArchiveError(f"The time '{text}' is out of the range this computer's clock can "
                           "express; write an instant within the archive's span.",
                           ErrorKind.INVALID) from error
    return value


def resolve_instant(text: str, archive: str | Path) -> datetime:
    """``latest`` or ``earliest`` (the archive's newest or oldest intact instant), else ISO."""
    word = text.strip().lower()
    if word not in (LATEST, EARLIEST):
        return parse_instant(text)
    spans = restorable_spans(Path(archive))
    if not spans:
        raise ArchiveError(f"The queue cannot be rebuilt as it was at the {word} instant: the "
                           f"archive '{archive}' holds no restorable generation.",
                           ErrorKind.NOT_FOUND)
    stamp = max(end for _, end, _ in spans) if word == LATEST else min(s for s, _, _ in spans)
    moment = datetime.fromtimestamp(stamp, tz=timezone.utc)
    if moment.timestamp() < stamp:  # rounded down to the microsecond: before the span
        moment += timedelta(microseconds=1)
    return moment


def restorable_spans(archive: Path, *, checked: bool = True
                     ) -> list[tuple[float, float, Generation]]:
    """Every stretch of time that can be rebuilt, oldest first.

    ``checked``: every archive file is first checked against its checksums, so damaged
    stretches are left out (without it, only what can be seen without reading the files).
    """
    return spans_of(list_generations(archive, check=checked))


def spans_of(generations: list[Generation]) -> list[tuple[float, float, Generation]]:
    """The restorable (first, last instant, generation) of each generation that has one."""
    spans = []
    for generation in generations:
        span = generation.restorable
        if span is not None:
            spans.append((span[0], span[1], generation))
    return spans


def _covers(start: float, end: float, at: float) -> bool:
    """True when ``at`` lies in the span, or names one of its ends as printed."""
    return start <= at <= end or instant_text(at) in (instant_text(start), instant_text(end))


def choose_generation(archive: Path, at: float, *, hash_snapshots: bool = True) -> Generation:
    """The newest generation covering ``at`` (checked), or a refusal naming the nearest instants.

    An instant that only a damaged part of the archive held is refused (exit 1) with the
    damage's reason and file; every rebuild that goes ahead uses only checked files.
    ``hash_snapshots``: see :func:`.store.check_generation` (the rebuild's copy of a snapshot
    proves its checksum; a snapshot that fails it sends the rebuild back to a full check).
    """
    generations = list_generations(archive, check=True, hash_snapshots=hash_snapshots)
    spans = spans_of(generations)
    covering = [generation for start, end, generation in spans if _covers(start, end, at)]
    if covering:
        return covering[-1]
    when = instant_text(at)
    if not spans and not any(generation.damage for generation in generations):
        raise ArchiveError(f"The queue cannot be rebuilt as it was at {when}: the archive "
                           f"'{archive}' holds no restorable generation yet.",
                           ErrorKind.NOT_FOUND)
    before = max((end for _, end, _ in spans if end < at), default=None)
    after = min((start for start, _, _ in spans if start > at), default=None)
    nearest = " and ".join(instant_text(stamp) for stamp in (before, after) if stamp is not None)
    nearest = (f"the nearest restorable instants are {nearest}" if before and after
               else f"the nearest restorable instant is {nearest}" if nearest
               else "no instant of the archive can be restored")
    damage = damage_at(generations, at)
    if damage is not None:
        raise ArchiveError(f"The queue cannot be rebuilt as it was at {when}: the archive is "
                           f"damaged there ({damage.reason}: '{damage.file}'); {nearest}. "
                           "Restore one of those instants or a backup.", ErrorKind.CORRUPT)
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


def damage_at(generations: list[Generation], at: float) -> ArchiveDamage | None:
    """The damage that cost the instant ``at``, if damage cost it."""
    for generation in reversed(generations):
        for damage in generation.damage:
            start = damage.lost_after if damage.lost_after is not None else (
                generation.snapshot_at or float(generation.data.get("started_at") or 0))
            end = damage.lost_until
            if start < at and (end is None or at <= end):
                return damage
    return None


def transactions_until(generation: Generation, at: float, limit: int | None = None, *,
                       after: ReplayImage | Level | None = None
                       ) -> Iterator[ArchivedTransaction]:
    """The generation's transactions seen at or before ``at``, each proven to follow the last.

    ``limit``: no more than this many. ``after``: only those after what the image (or the
    level file) holds (the first must follow the WAL position it recorded). A record that
    fails its checksum or breaks the chain before ``at`` raises: a rebuild never stops short
    of the instant it was asked for.
    """
    chain = ChainCheck(after.chain if after is not None else generation.data.get("start"))
    given = 0
    for segment in generation.segments:
        if after is not None and segment.name < after.segment:
            continue
        read = SegmentRead(segment)
        start = after.offset if after is not None and segment.name == after.segment else 0
        for kind, stamp, payload in iter_records(segment, version=generation.format,
                                                 outcome=read, start=start):
            if stamp > at or (limit is not None and given >= limit):
                return
            broken = chain.follow(kind, payload)
            if broken is not None:
                raise _damaged(generation, segment, f"{broken}, seen at {instant_text(stamp)}")
            if kind == KIND_DELTA_TRANSACTION:
                transaction = decode_delta_transaction(stamp, payload)
            elif kind == KIND_TRANSACTION:
                transaction = decode_transaction(stamp, payload)
            else:
                continue
            given += 1
            yield transaction
        if read.problem is not None and (generation.covered_until is None
                                         or at > generation.covered_until):
            raise _damaged(generation, segment, read.problem)
        if read.problem is not None:
            return  # the instant lies before the damage, which the check cut off


def _damaged(generation: Generation, segment: Path, reason: str) -> ArchiveError:
    return ArchiveError(f"The archive's generation {generation.id} is damaged: {reason} in "
                        f"'{segment}'; rebuild to an earlier instant (archive-status shows "
                        "which are intact) or use a backup.", ErrorKind.CORRUPT)


def _copy_snapshot(generation: Generation, snapshot: Path, target: Path,
                   cancelled: CancelCheck | None, action: str,
                   early: _EarlyCopy | None = None,
                   chunk_bytes: int = VERIFIED_COPY_CHUNK) -> None:
    """Copy the snapshot, proving on the way that it is the file its checksums describe.

    ``early``: a copy begun beside the check, taken when it is of this snapshot.
    """
    expected = generation.data.get("snapshot_sha256")
    if expected is None:
        expected = BackupManifest.read(manifest_path_for(snapshot)).sha256
    copied = early.take(generation, None) if early is not None else None
    if copied is None:
        copied = copy_verified(snapshot, target, expected, cancelled, action, chunk_bytes)
    if not copied:
        if not generation.snapshot_proven:
            raise _SnapshotUnproven
        raise ArchiveError(f"{action} refused: the snapshot '{snapshot}' fails its checksum; "
                           "rebuild an instant of another generation or use a backup.",
                           ErrorKind.CORRUPT)
    if not generation.snapshot_proven and prove_snapshot(generation, expected) is not None:
        raise _SnapshotUnproven  # its manifest or generation.json's record of it is wrong


def rebuild_to_time(archive: str | Path, at: datetime | float, output: str | Path,
                    progress: ProgressCallback | None = None,
                    cancelled: CancelCheck | None = None, *,
                    live_path: str | Path | None = None) -> RebuildResult:
    """Rebuild the queue as it was at ``at`` into the new file ``output`` and verify it.

    ``output`` must not exist; its manifest is written beside it. ``live_path`` is the
    database the file is meant for (its own triggers and views are then accepted by the
    check). A failure or cancel leaves nothing behind.
    """
    archive = Path(archive)
    moment = at.timestamp() if isinstance(at, datetime) else float(at)
    output = Path(output)
    _refuse_existing(output, moment)
    # The likely replay image is copied (and hashed) on a helper thread while every archive
    # file is checked on this one; it is used only if the check then chooses that very image.
    early = _EarlyCopy.start(archive, moment, _partial_of(output), cancelled)
    try:
        generation = choose_generation(archive, moment, hash_snapshots=False)
        return rebuild_generation(generation, moment, output, progress, cancelled,
                                  live_path=live_path, early=early)
    except _SnapshotUnproven:
        # The snapshot failed the checksum its copy proves: check everything as before (the
        # damage is then reported, or another generation covering the instant is used).
        generation = choose_generation(archive, moment)
        return rebuild_generation(generation, moment, output, progress, cancelled,
                                  live_path=live_path)
    finally:
        if early is not None:
            early.discard()


@dataclass(frozen=True)
class _Memory:
    """What one rebuild may hold, and whether its result is flushed to the disk."""

    held_bytes: int = HELD_BYTES
    copy_chunk_bytes: int = VERIFIED_COPY_CHUNK
    #: Flush the result to the disk (False only for a scratch file).
    durable: bool = True


class _SnapshotUnproven(Exception):
    """A snapshot the check left unhashed failed its checksum while being copied."""


class _Beside:
    """One call run on a helper thread while the rebuild goes on."""

    def __init__(self, call: Callable[..., Any], *args: Any) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="queue-admin-beside")
        self._future = self._pool.submit(call, *args)

    def result(self) -> Any:
        """Wait for the call; its value (or its exception)."""
        try:
            return self._future.result()
        finally:
            self._pool.shutdown()

    def abandon(self) -> None:
        """Wait for the call and drop whatever it gave."""
        with contextlib.suppress(BaseException):
            self.result()


def _not_flushed(path: Path) -> None:
    """Stands in for :func:`fsync_file` where the result is a scratch file."""


def _partial_of(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def _keep_as_damaged(output: Path, moment: float) -> Path | None:
    """Rename a rebuilt file that failed its check to ``queue_damaged_at_<time>.db``.

    Its manifest goes: the file is no backup. None when it could not be renamed.
    """
    stamp = datetime.fromtimestamp(moment).strftime("%Y%m%d_%H%M%S")  # noqa: DTZ006 - local
    kept = output.with_name(f"queue_damaged_at_{stamp}_{time.time_ns()}.db")
    try:
        retry_on_windows_lock(lambda: os.replace(output, kept))
    except OSError:
        return None
    with contextlib.suppress(OSError):
        manifest_path_for(output).unlink()
    return kept


def _refuse_existing(output: Path, moment: float) -> None:
    if output.exists() or manifest_path_for(output).exists():
        raise ArchiveError(f"Rebuilding the queue as it was at {instant_text(moment)} "
                           f"refused: '{output}' already exists; choose a new file name.",
                           ErrorKind.ALREADY_EXISTS)


class _EarlyCopy:
    """The copy of the replay image (or snapshot) a rebuild will most likely use, begun early.

    Chosen from what can be seen unread (generation.json, image.json and their checksums):
    the image when it may serve the instant, else the generation's snapshot (which the level
    files and the records are then written over). The copy is hashed as it is written. The
    rebuild takes it only when the checked archive yields the same image (or no image, and
    the same snapshot and recorded SHA-256), after every file was checked; otherwise it is
    thrown away.
    """

    def __init__(self, generation: str, image: ReplayImage | None, source: Path, digest: str,
                 target: Path, cancelled: CancelCheck | None) -> None:
        self.generation, self.image, self.target = generation, image, target
        self.source, self.digest = source, digest
        self._stop = threading.Event()
        self._taken = False

        def stopped() -> bool:
            return self._stop.is_set() or bool(cancelled is not None and cancelled())

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="queue-admin-copy")
        self._future = self._pool.submit(copy_verified, source, target, digest, stopped,
                                         "Copying the replay image" if image is not None
                                         else STAGE_SNAPSHOT)

    @classmethod
    def start(cls, archive: Path, moment: float, target: Path,
              cancelled: CancelCheck | None) -> _EarlyCopy | None:
        """Begin copying the newest generation's image if it could serve ``moment``."""
        if target.exists():
            return None
        try:
            generations = list_generations(archive, scan=False)
        except ArchiveError:
            return None
        for generation in reversed(generations):
            start = generation.snapshot_at
            if generation.unusable or start is None or start > moment:
                continue
            image, _ = read_image(generation)
            if image is not None and image.state_seen <= moment:
                return cls(generation.id, image, image.path, image.sha256, target, cancelled)
            digest = generation.data.get("snapshot_sha256")
            snapshot = generation.snapshot
            if snapshot is None or not isinstance(digest, str):
                return None
            return cls(generation.id, None, snapshot, digest, target, cancelled)
        return None

    def take(self, generation: Generation, image: ReplayImage | None) -> bool | None:
        """The copy's outcome when it is of ``image`` (True: its SHA-256 matched), else None.

        ``image`` None: the copy is wanted of the generation's snapshot, with the SHA-256
        generation.json records for it. Waits for the copy to end. A copy that is not taken
        is removed by :meth:`discard`.
        """
        wanted = image is not None or (
            self.source == generation.snapshot
            and self.digest == generation.data.get("snapshot_sha256"))
        if generation.id != self.generation or image != self.image or not wanted:
            self.discard()
            return None
        self._taken = True
        try:
            return bool(self._future.result())
        except OSError:
            return None  # the rebuild copies again and reports what fails

    def discard(self) -> None:
        """Stop the copy, wait for it, and remove its file unless the rebuild took it."""
        self._stop.set()
        with contextlib.suppress(BaseException):
            self._future.result()
        self._pool.shutdown()
        if not self._taken:
            with contextlib.suppress(OSError):
                retry_on_windows_lock(lambda: self.target.unlink(missing_ok=True))
        self._taken = True  # once handled, the file is the rebuild's


class _ShortcutFailed(Exception):
    """A rebuild from the replay image or level files failed where the records alone may not."""

    def __init__(self, image: ReplayImage | None, levels: list[Level], why: str) -> None:
        super().__init__(why)
        self.image_problem = (f"the file rebuilt from image.db {why}; rebuilt from the "
                              "snapshot and every record instead") if image is not None else None
        self.level_problem = (f"the file rebuilt with the level files {why}; rebuilt from the "
                              "snapshot and every record instead") if levels else None


def rebuild_generation(generation: Generation, moment: float, output: str | Path,
                       progress: ProgressCallback | None = None,
                       cancelled: CancelCheck | None = None, *,
                       live_path: str | Path | None = None,
                       limit: int | None = None,
                       early: _EarlyCopy | None = None,
                       held_bytes: int = HELD_BYTES,
                       copy_chunk_bytes: int = VERIFIED_COPY_CHUNK,
                       durable: bool = True) -> RebuildResult:
    """Rebuild one generation's state at ``moment`` into ``output`` (see :func:`rebuild_to_time`).

    ``limit``: apply no more than this many of its transactions (an exact commit).
    ``early``: a copy of a replay image or of the snapshot begun beside the check, used if
    it is the right one. ``held_bytes`` (page images held before they are written, see
    :func:`.replay.apply_transactions`) and ``copy_chunk_bytes`` (each of the copy's two
    buffers) bound the memory the rebuild takes: validation, which runs beside the archiver,
    keeps both small; the result is the same file. ``durable`` False: the file is not
    flushed to the disk (validation's scratch copy, deleted once compared, whose 150 MB
    flush would hold the archiver's own writes back).

    The replay image and the level files are shortcuts, each checked before use; yet a
    record of one can be forged with its checksum recomputed, or two compactions can leave
    pages that pass every CRC and belong to another stretch. So when a rebuild that took a
    shortcut cannot expand a record after it, or its result fails the full check, it is
    done again from the snapshot and every record (the result says why): a shortcut costs
    time, never an instant.
    """
    memory = _Memory(held_bytes, copy_chunk_bytes, durable)
    try:
        return _rebuild_once(generation, moment, output, progress, cancelled,
                             live_path=live_path, limit=limit, early=early, shortcuts=True,
                             memory=memory)
    except _ShortcutFailed as failed:
        result = _rebuild_once(generation, moment, output, progress, cancelled,
                               live_path=live_path, limit=limit, early=None, shortcuts=False,
                               memory=memory)
        result.image_problem = failed.image_problem or result.image_problem
        result.level_problem = failed.level_problem or result.level_problem
        return result


def _rebuild_once(generation: Generation, moment: float, output: Path,
                  progress: ProgressCallback | None, cancelled: CancelCheck | None, *,
                  live_path: str | Path | None, limit: int | None,
                  early: _EarlyCopy | None, shortcuts: bool,
                  memory: _Memory | None = None) -> RebuildResult:
    """One rebuild; ``shortcuts`` false: from the snapshot and every record, nothing else."""
    started = time.monotonic()
    memory = memory if memory is not None else _Memory()
    output = Path(output)
    span = generation.restorable
    if span is not None:
        moment = min(max(moment, span[0]), span[1])  # an end as printed names that end
    action = f"Rebuilding the queue as it was at {instant_text(moment)}"
    snapshot = generation.snapshot
    assert snapshot is not None
    partial = _partial_of(output)
    if early is None:
        _refuse_existing(output, moment)
    renamed = False
    proving: _Beside | None = None
    try:
        report(progress, 0, 1, STAGE_SNAPSHOT)
        image, image_problem = (image_for(generation, moment, limit) if shortcuts
                                else (None, None))
        copied = None
        if image is not None and early is not None:
            copied = early.take(generation, image)
        if image is not None and copied is None:
            copied = copy_verified(image.path, partial, image.sha256, cancelled, action,
                                   memory.copy_chunk_bytes)
        if image is not None and not copied:
            image, image_problem = None, "image.db fails its checksum"
        levels: list[Level] = []
        level_problem = None
        if image is None and shortcuts:
            levels, level_problem = _snapshot_and_levels(generation, snapshot, moment, limit,
                                                         partial, cancelled, action, early,
                                                         memory.copy_chunk_bytes)
        elif image is None:
            _copy_snapshot(generation, snapshot, partial, cancelled, action,
                           chunk_bytes=memory.copy_chunk_bytes)
        elif not generation.snapshot_proven:
            # The image stands for the snapshot, which is proven all the same (beside the
            # work below, on the other core) so that the rebuild offers what status offers.
            proving = _Beside(prove_snapshot, generation)
        try:
            applied, state_seen, page_size, pages = _apply(
                generation, moment, partial, progress, cancelled, action, limit, image, levels,
                memory.held_bytes)
        except LevelDamage as damage:
            # A level changed after it was checked: the snapshot and every record, as before.
            levels, level_problem = [], str(damage)
            retry_on_windows_lock(partial.unlink)
            _copy_snapshot(generation, snapshot, partial, cancelled, action,
                           chunk_bytes=memory.copy_chunk_bytes)
            applied, state_seen, page_size, pages = _apply(
                generation, moment, partial, progress, cancelled, action, limit, None, [],
                memory.held_bytes)
        except (zlib.error, ArchiveError) as error:
            if image is None and not levels:
                raise
            # A record after the shortcut did not expand over its pages (a delta carries a
            # checksum of the earlier image it was made against: byte runs its CRC-32, a zlib
            # stream its Adler-32): the shortcut's pages are not the ones the records followed.
            raise _ShortcutFailed(image, levels, f"could not take the records after it "
                                  f"({error})") from error
        report(progress, 0, 1, STAGE_CHECK)
        # The full check, the flush to the disk, the SHA-256 for the manifest and the task
        # counts run side by side (the flush waits on the disk, the check and the hash on a
        # core each): the file is complete and nothing writes to it any more.
        with ThreadPoolExecutor(2, thread_name_prefix="queue-admin-finish") as helpers:
            flushed = helpers.submit(fsync_file if memory.durable else _not_flushed, partial)
            digest = helpers.submit(file_sha256, partial, None, cancelled, action)
            check = check_backup_file(partial, progress, cancelled, live_path=live_path,
                                      manifest_follows=True)
            with open_backup_file(partial) as connection:
                counts = None if check_queue_schema(connection) else task_counts(connection)
            flushed.result()
            sha256 = digest.result()
        manifest = BackupManifest(
            format_version=MANIFEST_FORMAT_VERSION, name=output.name, sha256=sha256,
            size_bytes=partial.stat().st_size, page_count=pages, page_size=page_size,
            task_counts=counts, source_path=str(generation.data.get("database", "")),
            created_at=datetime.fromtimestamp(moment, tz=timezone.utc).isoformat(),
            sqlite_version=sqlite_library_version(), tool_version=__version__)
        manifest.write(output)
        retry_on_windows_lock(lambda: os.replace(partial, output))
        renamed = True
        check = replace(check, path=output, manifest=manifest)
        if proving is not None and proving.result() is not None:
            raise _SnapshotUnproven
        if not check.ok and (image is not None or levels):
            raise _ShortcutFailed(image, levels, "did not pass its check "
                                  f"({'; '.join(check.problems[:3])})")
        if not check.ok:
            # The archive holds that state faithfully (every checksum held): the queue was
            # itself damaged then. Keep it unchecked, never as a backup, for its rows.
            kept = _keep_as_damaged(output, moment)
            where = (f"kept unchecked, never as a backup, as '{kept}' (its readable rows can "
                     "be rescued with rescue --damaged)" if kept is not None
                     else "nothing was kept")
            raise ArchiveError(f"{action} failed: the rebuilt file did not pass its check "
                               f"({'; '.join(check.problems[:3])}); {where}.",
                               check.kind or ErrorKind.CORRUPT)
    except BaseException as error:
        if proving is not None:
            proving.abandon()
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
        manifest=manifest, check=check,
        from_image=image.transactions if image is not None else None,
        image_problem=image_problem,
        from_levels=levels[-1].transactions if levels else None, levels_used=len(levels),
        level_problem=level_problem)


def _snapshot_and_levels(generation: Generation, snapshot: Path, moment: float,
                         limit: int | None, partial: Path, cancelled: CancelCheck | None,
                         action: str, early: _EarlyCopy | None,
                         chunk_bytes: int = VERIFIED_COPY_CHUNK
                         ) -> tuple[list[Level], str | None]:
    """Copy the snapshot while the level files the instant may use are checked beside it.

    Returns the levels that passed every check (oldest first) and why the run of levels
    stops short of the instant, when a level file failed.
    """
    levels, problem = usable_levels(generation, moment, limit, snapshot_digest(generation))
    checking = _Beside(check_level_files, levels, cancelled, action) if levels else None
    try:
        _copy_snapshot(generation, snapshot, partial, cancelled, action, early, chunk_bytes)
    except BaseException:
        if checking is not None:
            checking.abandon()
        raise
    if checking is not None:
        levels, failed = checking.result()
        problem = failed or problem
    return levels, problem


def _apply(generation: Generation, moment: float, partial: Path,
           progress: ProgressCallback | None, cancelled: CancelCheck | None,
           action: str, limit: int | None, image: ReplayImage | None,
           levels: list[Level], held_bytes: int = HELD_BYTES) -> tuple[int, float, int, int]:
    """Write the levels and transactions over the copied snapshot (or image); what was applied.

    Raises :class:`.levels.LevelDamage` when a level fails while its pages are written.
    """
    page_size = page_size_of(partial)
    start: ReplayImage | Level | None = image if image is not None else (
        levels[-1] if levels else None)
    with open(partial, "r+b") as handle:
        if levels and image is None:
            write_levels(handle.fileno(), page_size, levels, cancelled, action)
        if start is not None:
            if start.page_size != page_size:
                raise ArchiveError(f"{action} failed: the replay image's (or level file's) "
                                   f"pages are not {start.page_size} bytes; the archive is "
                                   "damaged.", ErrorKind.CORRUPT)
            done, state_seen, pages = start.transactions, start.state_seen, start.database_pages
            limit = None if limit is None else limit - done
        else:
            done, state_seen = 0, float(generation.snapshot_at or 0.0)
            pages = handle.seek(0, 2) // page_size
        applied = apply_transactions(
            handle, page_size, transactions_until(generation, moment, limit, after=start),
            progress, cancelled, action, total=max(1, generation.transactions - done),
            held_bytes=held_bytes)
        if applied.page_count is not None and applied.state_seen is not None:
            pages, state_seen = applied.page_count, applied.state_seen
        handle.truncate(pages * page_size)
        handle.seek(0)
        first = bytearray(handle.read(100))
        first[18:20] = b"\x01\x01"  # a rollback-journal file: no -wal belongs to it
        first[28:32] = struct.pack(">I", pages)
        first[92:96] = first[24:28]  # the in-header size is valid for this change counter
        handle.seek(0)
        handle.write(first)
    return done + applied.transactions, state_seen, page_size, pages
