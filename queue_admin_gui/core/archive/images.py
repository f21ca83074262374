"""A generation's replay image: its state further on, so a rebuild replays only what follows.

A rebuild starts from the generation's snapshot and writes every archived transaction over
it; after a week that is hundreds of thousands of transactions. Compaction
(:func:`compact_archive`, the ``archive-compact`` command) keeps, per generation, one file
that is exactly what that replay has produced after a given record: the snapshot with every
transaction up to that record written over it, page by page, by the very code the rebuild
uses, the file not yet shortened nor its header touched. A rebuild to an instant at or
after the image's last record copies the image instead of the snapshot and replays only the
records after it. Each run of compaction carries the image on from where it stopped.

Files, inside the generation's folder::

    image.db      the replayed pages
    image.json    where the image stops (frame log, byte offset, the CRC-32 of the frame log
                  up to there, the WAL position the next record must follow), how many
                  transactions it holds, its size and SHA-256, the snapshot it grew from,
                  and the SHA-256 of its own contents
    image.lock    held while compaction writes (a second compaction is refused)

Nothing in an image is trusted unread. The record must pass its checksum and name this
generation's snapshot, the frame logs it covers must still be the ones it was built from
(sealed sizes and CRCs, and the CRC of the open frame log up to its offset), and the copy
a rebuild makes must match the recorded SHA-256. When any of that fails, the rebuild uses
the snapshot and every record, as before, and says why in its result: an image is a
shortcut, never the only source of a state, so its damage costs time, never an instant.
Before compaction writes into an image it removes image.json, so a crash mid-way leaves an
image no rebuild uses; the next compaction starts again from the snapshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..backups.manifest import BackupManifest, manifest_path_for
from ..errors import ErrorKind
from ..files.durable import (
    file_sha256,
    fsync_directory,
    fsync_file,
    retry_on_windows_lock,
    write_json_atomically,
)
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from .levels import (
    LEVEL_TRANSACTIONS,
    Stretch,
    chain_reaches,
    changed_frame_log,
    level_bytes,
    prefix_crcs,
    remove_levels,
    remove_unrecorded,
    stop_fields,
    write_level,
)
from .page_deltas import decode_delta_transaction
from .replay import apply_transactions, page_size_of
from .store import (
    CHECKSUM_KEY,
    KIND_DELTA_TRANSACTION,
    KIND_TRANSACTION,
    REPLAY_IMAGE_FILES,
    ArchiveError,
    ChainCheck,
    Generation,
    SegmentRead,
    decode_transaction,
    iter_records,
    json_checksum,
    list_generations,
    process_alive,
)

IMAGE_FILE, IMAGE_RECORD = REPLAY_IMAGE_FILES
IMAGE_LOCK = "image.lock"
IMAGE_FORMAT = 1
STAGE_COMPACT = "Compacting the archive"
#: A compaction lock not refreshed for this long is left by a process that died on another
#: computer (a running compaction refreshes its lock every :data:`LOCK_REFRESH_SECONDS`).
LOCK_STALE_SECONDS = 30 * 60.0
LOCK_REFRESH_SECONDS = 60.0
#: A verified copy's chunk: large, because the copy often runs on a helper thread beside a
#: Python loop (the frame-log check), and each chunk waits for the GIL a few times.
VERIFIED_COPY_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class ReplayImage:
    """What image.json says: the replay's state after every record before a place."""

    path: Path
    #: The frame log the next record is read from, and the byte offset it starts at.
    segment: str
    offset: int
    #: CRC-32 of that frame log's bytes before ``offset``.
    segment_crc: int
    #: The earlier frame logs it covers, each with the size and CRC-32 it was sealed with.
    sealed: dict[str, Any]
    #: The WAL position the next transaction must follow (see :class:`.store.ChainCheck`).
    chain: list[int] | None
    transactions: int
    #: Every record the image holds was seen at or before this instant.
    last_stamp: float
    #: When the archiver saw the last transaction the image holds.
    state_seen: float
    database_pages: int
    page_size: int
    size_bytes: int
    sha256: str


@dataclass
class CompactResult:
    """What one compaction did to one generation."""

    generation: str
    #: "extended", "started" (from the snapshot), "up to date" or "skipped" (with a reason).
    outcome: str
    transactions: int = 0
    transactions_added: int = 0
    image_bytes: int = 0
    seconds: float = 0.0
    reason: str | None = None
    #: Level files written by this run (see :mod:`.levels`), and the generation's after it.
    levels_written: int = 0
    level_files: int = 0
    level_bytes: int = 0


def snapshot_digest(generation: Generation) -> str | None:
    """The SHA-256 the generation records for its snapshot (from its manifest in format 1)."""
    expected = generation.data.get("snapshot_sha256")
    if expected is None and generation.snapshot is not None:
        with contextlib.suppress(OSError, ValueError):
            expected = BackupManifest.read(manifest_path_for(generation.snapshot)).sha256
    return expected if isinstance(expected, str) else None


def read_image(generation: Generation) -> tuple[ReplayImage | None, str | None]:
    """The generation's image as its record describes it, or why it cannot be used.

    Returns (image, None), (None, the reason) or (None, None) when there is none. The image
    file itself is not hashed here.
    """
    record = generation.folder / IMAGE_RECORD
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as error:
        return None, f"image.json cannot be read ({error})"
    if not isinstance(data, dict) or data.get(CHECKSUM_KEY) != json_checksum(data):
        return None, "image.json fails its checksum"
    if data.get("format") != IMAGE_FORMAT:
        return None, f"image.json is of format {data.get('format')!r}, which is not read here"
    if data.get("snapshot_sha256") != snapshot_digest(generation):
        return None, "image.json describes another snapshot"
    try:
        image = ReplayImage(path=generation.folder / IMAGE_FILE, **stop_fields(data),
                            size_bytes=int(data["size_bytes"]), sha256=str(data["sha256"]))
    except (KeyError, TypeError, ValueError) as error:
        return None, f"image.json lacks a field or holds a wrong one ({error})"
    changed = changed_frame_log(image.sealed, generation)
    if changed is not None:
        return None, f"the frame log {changed} is not the one the image was made from"
    return image, None


def image_for(generation: Generation, moment: float,
              limit: int | None = None) -> tuple[ReplayImage | None, str | None]:
    """The image a rebuild of ``moment`` may start from: (image, None), or (None, why not).

    The reason is None when there is simply no image, or it lies after the instant.
    ``generation`` must have been checked (:func:`.store.check_generation`): the image is
    used only within the stretch whose every record was read intact. The image serves every
    instant from its last transaction on: the records after that one and up to its end are
    heartbeats and resets, which change no page, and the next transaction is read after it.
    """
    image, problem = read_image(generation)
    if image is None:
        return None, problem
    covered = generation.covered_until
    if (image.state_seen > moment or (limit is not None and limit < image.transactions)
            or covered is None or image.last_stamp > covered):
        return None, None
    segment = generation.folder / image.segment
    if image.offset > 0 or image.segment_crc != 0:
        try:
            crc = prefix_crcs(segment, [image.offset])[image.offset]
        except OSError as error:
            return None, f"the frame log {image.segment} cannot be read ({error})"
        if crc != image.segment_crc:
            return None, f"the frame log {image.segment} is not the one the image was made from"
    return image, None


def copy_verified(source: Path, target: Path, expected: str, cancelled: CancelCheck | None,
                  action: str, chunk_bytes: int = VERIFIED_COPY_CHUNK) -> bool:
    """Copy ``source`` to ``target``, hashing on the way; True when the SHA-256 is ``expected``.

    Each chunk is hashed on a helper thread while it is written (hashlib and file writes
    both release the GIL), so the hash costs little beyond the copy. The chunks are read
    into two buffers used in turn (one hashed and written while the next is read), not into
    a new allocation each time: at 1.5 GB that halves the copy. ``chunk_bytes``: the size of
    each buffer (validation, beside the archiver, uses small ones).
    """
    digest = hashlib.sha256()
    chunk_bytes = max(4096, chunk_bytes)
    buffers = (bytearray(chunk_bytes), bytearray(chunk_bytes))
    with (ThreadPoolExecutor(1, thread_name_prefix="queue-admin-hash") as hasher,
          open(source, "rb", buffering=0) as reading, open(target, "wb") as copy):
        hashed = None
        turn = 0
        while count := reading.readinto(buffers[turn]):
            chunk = memoryview(buffers[turn])[:count]
            if hashed is not None:
                hashed.result()  # the other buffer is free again once its hash is done
            hashed = hasher.submit(digest.update, chunk)
            copy.write(chunk)
            turn ^= 1
            raise_if_cancelled(cancelled, action)
        if hashed is not None:
            hashed.result()
    return digest.hexdigest() == expected


# -- compaction ---------------------------------------------------------------------------


class _ImageLock:
    """image.lock, created exclusively, so two compactions never write one image.

    A lock whose process is gone from this host is taken over; a lock of another computer's
    process, once it has not been refreshed for :data:`LOCK_STALE_SECONDS` (a compaction
    refreshes its lock as it goes, see :meth:`refreshing`). A process of this host that is
    still running keeps its lock however long it runs (its start time, recorded in the
    lock, tells it from a later process given the same id). Taking over moves the stale
    lock aside under a name of its own and checks that what was moved is the very lock
    judged stale: two compactions that both found the same dead owner cannot both take
    over, since the later one would move the earlier one's fresh lock, see that, put it
    back and refuse.
    """

    def __init__(self, folder: Path, action: str) -> None:
        self.path = folder / IMAGE_LOCK
        self._mine = mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                        "started": _process_started(os.getpid()),
                                        "token": secrets.token_hex(8)})
        self._refreshed = time.monotonic()
        for _ in range(3):
            try:
                with open(self.path, "x", encoding="utf-8") as handle:
                    handle.write(mine)
                return
            except FileExistsError:
                pass
            try:
                seen = self.path.read_text(encoding="utf-8")
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                continue
            except OSError:
                seen, age = "", 0.0
            if not _lock_is_stale(seen, age) or not self._take_over(seen):
                raise ArchiveError(f"{action} refused: another compaction is writing "
                                   f"'{folder}' (its lock is '{self.path}'); wait for it to "
                                   "finish.", ErrorKind.ALREADY_EXISTS)
        raise ArchiveError(f"{action} refused: its lock '{self.path}' kept changing; another "
                           "compaction may be starting.", ErrorKind.ALREADY_EXISTS)

    def _take_over(self, seen: str) -> bool:
        """Remove the stale lock if it is still the one read as ``seen``; False if not."""
        aside = self.path.with_name(f"{IMAGE_LOCK}.{secrets.token_hex(8)}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True  # gone meanwhile: the exclusive create decides
        try:
            moved = aside.read_text(encoding="utf-8")
        except OSError:
            moved = None
        if moved != seen:
            # Another compaction's fresh lock: back where it was, unless a third took the
            # name meanwhile.
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            with contextlib.suppress(OSError):
                aside.unlink()
            return False
        with contextlib.suppress(OSError):
            aside.unlink()
        return True

    def refreshing(self, cancelled: CancelCheck | None) -> CancelCheck:
        """``cancelled``, also refreshing the lock's time at most once a minute as it is asked.

        So a compaction that runs for hours on another computer is never taken for a dead
        one; only this very lock is touched (one taken over meanwhile is left alone).
        """
        def check() -> bool:
            now = time.monotonic()
            if now - self._refreshed >= LOCK_REFRESH_SECONDS:
                self._refreshed = now
                with contextlib.suppress(OSError):
                    if self.path.read_text(encoding="utf-8") == self._mine:
                        os.utime(self.path)
            return bool(cancelled is not None and cancelled())
        return check

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def _process_started(pid: int) -> float | None:
    """When process ``pid`` of this host started (seconds since the epoch), or None."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def _lock_is_stale(text: str, age: float) -> bool:
    """Whether the compaction that wrote lock ``text`` (``age`` seconds old) is gone."""
    try:
        owner = json.loads(text)
    except ValueError:
        owner = None
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname() \
            or not isinstance(owner.get("pid"), int):
        return age > LOCK_STALE_SECONDS  # another computer's (or unreadable): by its age
    if not process_alive(owner["pid"]):
        return True
    started = owner.get("started")
    return isinstance(started, float) and _process_started(owner["pid"]) not in (None, started)


def compact_archive(archive: str | Path, progress: ProgressCallback | None = None,
                    cancelled: CancelCheck | None = None) -> list[CompactResult]:
    """Carry every restorable generation's image on to the end of its intact records.

    Every archive file is checked against its checksums first; a generation that is damaged
    (or failed a validation) or has no snapshot yet is skipped with the reason: its image, if
    any, stays as it was, and a rebuild uses it only within the intact stretch. Safe beside
    a running archiver: only whole records that pass their CRC and follow the chain are used.
    """
    results = []
    for generation in list_generations(Path(archive), check=True):
        if generation.damage:
            results.append(CompactResult(generation.id, "skipped", reason="it is damaged"))
            continue
        if generation.restorable is None:
            results.append(CompactResult(generation.id, "skipped",
                                         reason="it has no snapshot yet"))
            continue
        results.append(compact_generation(generation, progress, cancelled))
    return results


def compact_generation(generation: Generation, progress: ProgressCallback | None = None,
                       cancelled: CancelCheck | None = None) -> CompactResult:
    """Carry one checked generation's image on to the end of its intact records."""
    started = time.monotonic()
    action = f"Compacting the archive's generation {generation.id}"
    snapshot = generation.snapshot
    expected_snapshot = snapshot_digest(generation)
    if snapshot is None or expected_snapshot is None:
        return CompactResult(generation.id, "skipped", reason="it has no snapshot yet")
    lock = _ImageLock(generation.folder, action)
    cancelled = lock.refreshing(cancelled)
    try:
        image, _ = read_image(generation)
        target = generation.folder / IMAGE_FILE
        record = generation.folder / IMAGE_RECORD
        if image is not None and (not target.is_file() or target.stat().st_size != image.size_bytes
                                  or file_sha256(target, None, cancelled, action) != image.sha256):
            image = None  # damaged: made again from the snapshot
        remove_unrecorded(generation)
        why = None
        if image is not None and not chain_reaches(generation, image.transactions,
                                                   expected_snapshot, cancelled, action):
            # The level files must stand for every transaction the image holds, or an
            # instant before the image would replay from the snapshot: start both again.
            image, why = None, "its level files did not reach the image; made again"
        if image is not None and _at_end(generation, image):
            files, size = level_bytes(generation)
            return CompactResult(generation.id, "up to date", image.transactions,
                                 image_bytes=image.size_bytes,
                                 seconds=time.monotonic() - started,
                                 level_files=files, level_bytes=size)
        outcome = "extended" if image is not None else "started"
        retry_on_windows_lock(lambda: record.unlink(missing_ok=True))
        fsync_directory(generation.folder)
        if image is None:
            remove_levels(generation)
            if not copy_verified(snapshot, target, expected_snapshot, cancelled, action):
                target.unlink(missing_ok=True)
                raise ArchiveError(f"{action} failed: the snapshot '{snapshot}' fails its "
                                   "checksum; run archive-status to see the damage.",
                                   ErrorKind.CORRUPT)
            page_size = page_size_of(target)
            state = _Position(generation, page_size, target.stat().st_size // page_size)
        else:
            state = _Position.of(generation, image)
        before = state.transactions
        written = 0
        with open(target, "r+b") as handle:
            records = state.follow()
            while True:
                # One stretch at a time; each ends with its pages in the image, where its
                # level file reads them from.
                stretch = Stretch(state.transactions)
                apply_transactions(handle, state.page_size,
                                   stretch.take(records, LEVEL_TRANSACTIONS), progress,
                                   cancelled, action, STAGE_COMPACT)
                if state.transactions > stretch.first:
                    write_level(generation, handle.fileno(), state.page_size, stretch,
                                state.stop(), expected_snapshot, cancelled, action)
                    written += 1
                if stretch.ended:
                    break
        fsync_file(target)
        _write_record(generation, state, target, cancelled, action)
        files, size = level_bytes(generation)
        return CompactResult(generation.id, outcome, state.transactions,
                             state.transactions - before, target.stat().st_size,
                             time.monotonic() - started, why, written, files, size)
    finally:
        lock.release()
        report(progress, 1, 1, STAGE_COMPACT)


def _at_end(generation: Generation, image: ReplayImage) -> bool:
    """True when no record lies after the image (nothing to add)."""
    if not generation.segments:
        return image.segment == "" and image.offset == 0
    if generation.segments[-1].name != image.segment:
        return False
    with contextlib.suppress(OSError):
        return generation.segments[-1].stat().st_size == image.offset
    return False


class _Position:
    """Where compaction stands in a generation's records while it writes the image."""

    def __init__(self, generation: Generation, page_size: int, database_pages: int) -> None:
        self.generation = generation
        self.page_size = page_size
        self.database_pages = database_pages
        first = generation.segments[0].name if generation.segments else ""
        self.segment, self.offset, self.segment_crc = first, 0, 0
        self.chain: list[int] | None = generation.data.get("start")
        self.transactions = 0
        start = float(generation.snapshot_at or 0.0)
        self.last_stamp, self.state_seen = start, start

    @classmethod
    def of(cls, generation: Generation, image: ReplayImage) -> _Position:
        state = cls(generation, image.page_size, image.database_pages)
        state.segment, state.offset, state.segment_crc = (image.segment, image.offset,
                                                          image.segment_crc)
        state.chain, state.transactions = image.chain, image.transactions
        state.last_stamp, state.state_seen = image.last_stamp, image.state_seen
        return state

    def follow(self) -> Any:
        """Every intact, chained transaction after the position; the position moves along.

        Stops at the first record that fails its CRC, is cut short, breaks the chain or lies
        past the generation's intact stretch (the image then ends before it), and at the end
        of the last frame log. The position is moved past a transaction before it is given,
        so that between two transactions it names the end of the last one given.
        """
        chain = ChainCheck(self.chain)
        covered = self.generation.covered_until
        for segment in self.generation.segments:
            if segment.name < self.segment:
                continue
            start = self.offset if segment.name == self.segment else 0
            read = SegmentRead(segment)
            read.crc = self.segment_crc if segment.name == self.segment else 0
            for kind, stamp, payload in iter_records(segment, version=self.generation.format,
                                                     outcome=read, start=start):
                if (covered is not None and stamp > covered) or chain.follow(kind, payload):
                    return
                if kind == KIND_DELTA_TRANSACTION:
                    transaction = decode_delta_transaction(stamp, payload)
                elif kind == KIND_TRANSACTION:
                    transaction = decode_transaction(stamp, payload)
                else:
                    transaction = None
                self.segment, self.offset, self.segment_crc = (segment.name, read.end_offset,
                                                               read.crc)
                self.chain = list(chain.expected) if chain.expected is not None else None
                self.last_stamp = stamp
                if transaction is not None:
                    self.transactions += 1
                    self.state_seen = stamp
                    self.database_pages = transaction.database_pages
                    yield transaction  # the position is already past it
            if read.problem is not None:
                return

    def stop(self) -> dict[str, Any]:
        """Where the replay stands: the fields image.json and a level's record share."""
        return {"segment": self.segment, "offset": self.offset,
                "segment_crc": self.segment_crc, "sealed": self.sealed_before(),
                "chain": self.chain, "transactions": self.transactions,
                "last_stamp": self.last_stamp, "state_seen": self.state_seen,
                "database_pages": self.database_pages}

    def sealed_before(self) -> dict[str, Any]:
        recorded = self.generation.data.get("segments") or {}
        return {name: recorded.get(name) for name in
                (segment.name for segment in self.generation.segments)
                if name < self.segment}


def _write_record(generation: Generation, state: _Position, target: Path,
                  cancelled: CancelCheck | None, action: str) -> None:
    data: dict[str, Any] = {
        "format": IMAGE_FORMAT, "generation": generation.id,
        "snapshot_sha256": snapshot_digest(generation), **state.stop(),
        "page_size": state.page_size, "size_bytes": target.stat().st_size,
        "sha256": file_sha256(target, None, cancelled, action),
    }
    data[CHECKSUM_KEY] = json_checksum(data)
    write_json_atomically(generation.folder / IMAGE_RECORD, data)
    fsync_directory(generation.folder)
