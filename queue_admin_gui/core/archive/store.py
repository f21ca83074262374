"""The archive folder on disk: generations, their frame logs, and the archiver's lock file.

Layout (every name below is inside the archive folder, which may be a local folder, a mapped
drive or a UNC share)::

    archiver.lock                 who is archiving into this folder (PID, host, database)
    gen-<UTC start>/              one generation: a snapshot and the commits after it
        generation.json           where it starts, why it started, how it ended
        snapshot/                 the verified backup it starts from (with its manifest)
        frames-000001.qaf         commits after the snapshot, appended as they are seen

A frame log is a sequence of records, each ``QAS`` + kind + stamp (float seconds since the
epoch, when the archiver saw it, to the microsecond) + length + CRC-32 + payload; the CRC
covers the record's head and its payload, so a changed stamp or kind is caught like a
changed page. Kind ``D`` is one committed transaction (where it sits in the WAL and its page
images, each whole or a delta); kind ``H`` is a heartbeat saying that every commit made
before its stamp is already archived; kind ``R`` a reset let through at the archive's end.

Every file checks itself: generation.json carries the SHA-256 of its own contents and of the
snapshot and its manifest; a frame log is named in generation.json when it is opened and, once
closed, recorded there with its size and CRC-32. A record cut short (or an end filled with
zeros) is a torn tail only at the very end of a frame log that was never closed (the archiver
was killed while writing it); anywhere else, and a whole record that fails its CRC anywhere,
is damage, and :func:`check_generation` reports it with the file and the instants it costs.
Archives written in format 1 (``QAR`` records whose CRC covers the payload only, no
checksums in generation.json) are still read, with the checks that format allows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

from ..backups.manifest import (
    BACKUP_SUFFIX,
    BackupManifest,
    ManifestUnreadable,
    manifest_path_for,
)
from ..errors import ErrorKind, QueueAdminError
from ..files.durable import file_sha256, write_json_atomically
from . import pace
from .walfile import Transaction

GENERATION_FILE = "generation.json"
SNAPSHOT_FOLDER = "snapshot"
LOCK_FILE = "archiver.lock"
SEGMENT_PREFIX = "frames-"
SEGMENT_SUFFIX = ".qaf"
SEGMENT_BYTES = 32 * 1024 * 1024
FORMAT_VERSION = 2
#: Formats this version reads: 1 (payload CRCs only) and 2 (everything checksummed).
READABLE_FORMATS = (1, 2)
VALIDATION_FILE = "validation.json"
#: The replay image compaction keeps in a generation's folder, counted in its size.
REPLAY_IMAGE_FILES = ("image.db", "image.json")
#: The folder of compaction's level files (see levels.py), counted in its size too.
LEVELS_FOLDER = "levels"
CHECKSUM_KEY = "checksum"
#: generation.json names the frame log being written, so that losing it is seen.
OPEN_SEGMENT_KEY = "open_segment"
#: generation.json names the generation it follows, so that losing that one is seen.
PREVIOUS_GENERATION_KEY = "previous_generation"
#: A lock whose owner has not refreshed it for this long is stale, wherever the owner runs.
LOCK_STALE_SECONDS = 120.0

KIND_TRANSACTION = b"T"
#: A transaction whose pages may be stored as deltas (:mod:`.page_deltas`).
KIND_DELTA_TRANSACTION = b"D"
TRANSACTION_KINDS = (KIND_TRANSACTION, KIND_DELTA_TRANSACTION)
KIND_HEARTBEAT = b"H"
#: A reset let through at the end of the archive whose new cycle has salts of its own (a
#: writer that never reset the log itself draws random ones after a TRUNCATE).
KIND_RESET = b"R"
_KINDS = (*TRANSACTION_KINDS, KIND_HEARTBEAT, KIND_RESET)
#: A record's head: magic, kind, stamp, payload length, CRC-32 (over the head and the
#: payload since format 2; over the payload alone in format 1, whose magic is MAGIC_V1).
RECORD_HEAD = struct.Struct(">3scdII")
MAGIC_V1 = b"QAR"
MAGIC = b"QAS"
_TXN = struct.Struct(">IIIIIII")
_PAGE_NUMBER = struct.Struct(">I")
_RESET = struct.Struct(">IIIII")


class ArchiveError(QueueAdminError):
    """Archiving, reading the archive, or rebuilding from it failed."""

    default_kind = ErrorKind.IO


@dataclass(frozen=True)
class CyclePosition:
    """A place in the WAL: the cycle (checkpoint sequence and salts) and a frame count."""

    checkpoint_sequence: int
    salt1: int
    salt2: int
    frame: int

    def to_list(self) -> list[int]:
        """JSON form."""
        return [self.checkpoint_sequence, self.salt1, self.salt2, self.frame]


@dataclass
class ArchivedTransaction:
    """One committed transaction as archived, with the instant the archiver saw it."""

    stamp: float
    position: CyclePosition
    database_pages: int
    page_size: int
    pages: list[tuple[int, bytes]]
    #: For each page, how it is stored: 0 (false) whole, else the kind of delta of the page's
    #: earlier image (:func:`.page_deltas.expand_page`; true is a zlib delta).
    deltas: tuple[int, ...] = ()


@dataclass(frozen=True)
class ArchiveDamage:
    """A damaged, missing or untrustworthy archive file and the instants it costs."""

    #: The file (or generation folder) that is damaged.
    file: Path
    reason: str
    #: The last instant still restorable before the damage (None: the whole generation).
    lost_after: float | None
    #: The newest instant the damaged part held, when it could be read (None: unknown).
    lost_until: float | None
    #: "damaged" (a file fails its checks or is missing) or "validation" (a validation found
    #: the rebuilt state wrong).
    kind: str = "damaged"


@dataclass
class Generation:
    """One unbroken stretch of the archive: a snapshot and every commit after it."""

    folder: Path
    data: dict[str, Any]
    #: The newest instant up to which every commit is archived (last intact record's stamp).
    covered_until: float | None = None
    transactions: int = 0
    size_bytes: int = 0
    segments: list[Path] = field(default_factory=list)
    #: What :func:`check_generation` (or reading generation.json) found wrong.
    damage: list[ArchiveDamage] = field(default_factory=list)
    #: True once every file was checked against its checksums (:func:`check_generation`).
    checked: bool = False
    #: True once the snapshot itself was hashed by that check (a rebuild may leave it to the
    #: copy it makes, which proves the same checksum, or not use the snapshot at all).
    snapshot_proven: bool = False
    #: True once the records' heads were read (:func:`load_generation` with ``heads``).
    heads_read: bool = False
    #: generation.json is missing, unreadable or fails its checksum: nothing here is used.
    unusable: bool = False

    @property
    def id(self) -> str:
        """The folder name, which sorts by start time."""
        return self.folder.name

    @property
    def format(self) -> int:
        """The archive format the generation was written in."""
        value = self.data.get("format")
        return value if isinstance(value, int) else FORMAT_VERSION

    @property
    def snapshot(self) -> Path | None:
        """The snapshot backup, once it was written and verified."""
        name = self.data.get("snapshot")
        return self.folder / SNAPSHOT_FOLDER / name if name else None

    @property
    def snapshot_at(self) -> float | None:
        """The instant the snapshot's state held (the start of what can be restored)."""
        value = self.data.get("snapshot_at")
        return float(value) if value is not None and self.snapshot is not None else None

    @property
    def restorable(self) -> tuple[float, float] | None:
        """The first and last restorable instants, or None (no snapshot yet, or damaged)."""
        start = self.snapshot_at
        if start is None or self.unusable or any(d.lost_after is None for d in self.damage):
            return None
        return start, max(start, self.covered_until or start)

    def save(self) -> None:
        """Write generation.json atomically, with its checksum and its snapshot's."""
        if self.format >= 2:
            snapshot = self.snapshot
            if snapshot is not None and "snapshot_sha256" not in self.data:
                self._record_snapshot_checksums(snapshot)
            self.data[CHECKSUM_KEY] = json_checksum(self.data)
        write_json_atomically(self.folder / GENERATION_FILE, self.data)

    def _record_snapshot_checksums(self, snapshot: Path) -> None:
        """Record the snapshot's SHA-256 (from its verified manifest) and the manifest's."""
        manifest_file = manifest_path_for(snapshot)
        with contextlib.suppress(OSError, ValueError):
            self.data["snapshot_sha256"] = BackupManifest.read(manifest_file).sha256
            self.data["manifest_sha256"] = hashlib.sha256(manifest_file.read_bytes()).hexdigest()


def json_checksum(data: dict[str, Any]) -> str:
    """SHA-256 of a JSON object's contents (its own checksum field left out)."""
    body = {key: value for key, value in data.items() if key != CHECKSUM_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def quantized(stamp: float) -> float:
    """An instant to the microsecond: what :func:`instant_text` prints, typed back, is it."""
    return round(stamp, 6)


def instant_text(stamp: float | None) -> str:
    """An instant as local ISO 8601 with its offset, to the microsecond.

    Never earlier than ``stamp``: typed back, the text names an instant at or after it, so
    it includes the transaction seen at ``stamp``.
    """
    if stamp is None:
        return "-"
    moment = datetime.fromtimestamp(quantized(stamp), tz=timezone.utc)
    if moment.timestamp() < stamp:
        moment += timedelta(microseconds=1)
    return moment.astimezone().isoformat(timespec="microseconds")


def new_generation(archive: Path, database: Path, reason: str, start: CyclePosition | None,
                   page_size: int, started_at: float) -> Generation:
    """Create the folder and generation.json of a new generation."""
    moment = datetime.fromtimestamp(started_at, tz=timezone.utc)
    name = "gen-" + moment.strftime("%Y%m%dT%H%M%S%fZ")
    folder = archive / name
    sequence = 1
    while folder.exists():
        sequence += 1
        folder = archive / f"{name}-{sequence}"
    (folder / SNAPSHOT_FOLDER).mkdir(parents=True)
    generation = Generation(folder, {
        "format": FORMAT_VERSION, "database": str(database), "host": socket.gethostname(),
        "pid": os.getpid(), "started_at": started_at, "reason": reason,
        "start": start.to_list() if start is not None else None, "page_size": page_size,
        "snapshot": None, "snapshot_at": None, "ended_at": None, "end_reason": None,
    })
    generation.save()
    return generation


def encode_transaction(transaction: Transaction, cycle: tuple[int, int, int],
                       page_size: int) -> bytes:
    """The compressed payload of one transaction record."""
    head = _TXN.pack(cycle[0], cycle[1], cycle[2], transaction.first_frame,
                     len(transaction.frames), transaction.database_pages, page_size)
    body = b"".join(_PAGE_NUMBER.pack(frame.page_number) + frame.page
                    for frame in transaction.frames)
    return zlib.compress(head + body, 1)


def decode_transaction(stamp: float, payload: bytes) -> ArchivedTransaction:
    """A transaction record's payload back into pages."""
    raw = zlib.decompress(payload)
    sequence, salt1, salt2, first, count, pages, page_size = _TXN.unpack_from(raw)
    offset = _TXN.size
    images: list[tuple[int, bytes]] = []
    for _ in range(count):
        (number,) = _PAGE_NUMBER.unpack_from(raw, offset)
        offset += _PAGE_NUMBER.size
        images.append((number, raw[offset:offset + page_size]))
        offset += page_size
    if offset != len(raw):
        raise ValueError("transaction record has trailing bytes")
    return ArchivedTransaction(stamp, CyclePosition(sequence, salt1, salt2, first), pages,
                               page_size, images)


def encode_reset(old_salts: tuple[int, int], old_frame: int,
                 new_salts: tuple[int, int]) -> bytes:
    """A reset record's payload: where the old cycle ended and the new cycle's salts."""
    return _RESET.pack(old_salts[0], old_salts[1], old_frame, new_salts[0], new_salts[1])


def decode_reset(payload: bytes) -> tuple[tuple[int, int], int, tuple[int, int]]:
    """A reset record's payload back into (old salts, old last frame, new salts)."""
    old1, old2, frame, new1, new2 = _RESET.unpack(payload)
    return (old1, old2), frame, (new1, new2)


def encode_record(kind: bytes, stamp: float, payload: bytes) -> bytes:
    """One frame log record (format 2): head and payload under one CRC-32."""
    head = RECORD_HEAD.pack(MAGIC, kind, stamp, len(payload), 0)[:-4]
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


class FrameLog:
    """Appends records to a generation's frame logs, starting a new file past a size.

    Closing a file records its size and CRC-32 in generation.json, so that a later cut,
    change or loss of the file is found.
    """

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        existing = sorted(generation.folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"))
        self._number = len(existing)
        self._handle: BinaryIO | None = None
        self._written = 0
        self._crc = 0
        #: Bytes appended through this object (all its segments).
        self.bytes_written = 0

    def append(self, kind: bytes, stamp: float, payload: bytes) -> int:
        """Append one record (buffered; see :meth:`flush`); returns its size in bytes."""
        if self._handle is None or self._written >= SEGMENT_BYTES:
            self._open_next()
        assert self._handle is not None
        record = encode_record(kind, quantized(stamp), payload)
        self._handle.write(record)
        self._crc = zlib.crc32(record, self._crc)
        self._written += len(record)
        self.bytes_written += len(record)
        return len(record)

    def flush(self, durable: bool = False) -> None:
        """Hand buffered records to the OS; with ``durable``, also to the disk."""
        if self._handle is not None:
            self._handle.flush()
            if durable:
                os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Flush to the disk, close the current file and record it as sealed."""
        if self._handle is not None:
            self.flush(durable=True)
            name = Path(self._handle.name).name
            self._handle.close()
            self._handle = None
            sealed = self.generation.data.setdefault("segments", {})
            sealed[name] = {"bytes": self._written, "crc32": self._crc}
            with contextlib.suppress(OSError):
                self.generation.save()

    def _open_next(self) -> None:
        self.close()
        self._number += 1
        path = self.generation.folder / f"{SEGMENT_PREFIX}{self._number:06d}{SEGMENT_SUFFIX}"
        self._handle = open(path, "ab")  # noqa: SIM115 - kept open across appends
        self._written = 0
        self._crc = 0
        # Named before its first record: losing the newest frame log is then seen too.
        self.generation.data[OPEN_SEGMENT_KEY] = path.name
        with contextlib.suppress(OSError):
            self.generation.save()


@dataclass
class SegmentRead:
    """How reading one frame log ended: where whole records stop, and why."""

    path: Path
    #: Bytes of whole, intact records from the start.
    end_offset: int = 0
    #: CRC-32 of those bytes.
    crc: int = 0
    #: Why reading stopped before the end of the file (None: it reached the end cleanly).
    problem: str | None = None
    size: int = 0
    #: The file could not be opened or read at all (never a tail torn by a crash).
    unreadable: bool = False
    #: Reading stopped at a record that runs past the end of the file (what a crash leaves).
    cut_short: bool = False


def iter_records(segment: Path, with_payload: bool = True, *, version: int = FORMAT_VERSION,
                 outcome: SegmentRead | None = None, start: int = 0
                 ) -> Iterator[tuple[bytes, float, bytes]]:
    """The whole records of one frame log, in order; a torn or damaged record ends it.

    ``outcome`` (when given) is filled in with where and why reading stopped (its CRC then
    covers the bytes from ``start``, a record boundary read before). Without
    ``with_payload`` nothing past the record heads is read or checked.
    """
    read = outcome if outcome is not None else SegmentRead(segment)
    read.end_offset = start
    try:
        yield from _records(segment, with_payload, version, read)
    except OSError as error:
        read.problem = f"the frame log cannot be read ({error.strerror or error})"
        read.unreadable = True


def _records(segment: Path, with_payload: bool, version: int, read: SegmentRead
             ) -> Iterator[tuple[bytes, float, bytes]]:
    """The body of :func:`iter_records` (an OSError is the caller's to report).

    With payloads the frame log is read in pieces of :data:`READ_WINDOW_BYTES` (a record
    longer than that in one piece of its own size) and each record's CRCs are computed over
    them, so reading a 32 MB frame log never holds it whole; without, the heads are read and
    the payloads skipped unread.
    """
    magic_expected = MAGIC if version >= 2 else MAGIC_V1
    if not with_payload:
        yield from _record_heads(segment, magic_expected, read)
        return
    head_size = RECORD_HEAD.size
    with open(segment, "rb", buffering=0) as handle:
        handle.seek(read.end_offset)
        read.size = read.end_offset
        window = _Window(handle, read)
        taken = 0
        while True:
            if not window.holds(head_size):
                if window.available:
                    read.problem = "its last record is cut short"
                    read.cut_short = True
                return
            data, position = window.data, window.position
            magic, kind, stamp, length, crc = RECORD_HEAD.unpack_from(data, position)
            if magic != magic_expected or kind not in _KINDS:
                read.problem = f"the record at byte {read.end_offset:,} has no valid head"
                return
            if not window.holds(head_size + length):
                read.problem = f"the record at byte {read.end_offset:,} is cut short"
                read.cut_short = True
                return
            data, position = window.data, window.position
            end = position + head_size + length
            payload = bytes(data[position + head_size:end])
            expected = (zlib.crc32(payload, zlib.crc32(data[position:position + head_size - 4]))
                        if version >= 2 else zlib.crc32(payload))
            if expected != crc:
                read.problem = f"the record at byte {read.end_offset:,} fails its checksum"
                return
            read.crc = zlib.crc32(data[position:end], read.crc)
            read.end_offset += end - position
            window.position = end
            taken += 1
            if taken % pace.STEP_EVERY == 0:
                pace.step()  # beside the archiver's loop, validation waits here while it copies
            yield kind, stamp, payload


#: How much of a frame log :func:`iter_records` reads at a time.
READ_WINDOW_BYTES = 1024 * 1024


class _Window:
    """The part of a frame log read so far and not yet taken, refilled as records need.

    Only the bytes the file held when it was opened are read (as reading it whole did), so a
    damaged length never asks for more than the file has.
    """

    def __init__(self, handle: BinaryIO, read: SegmentRead) -> None:
        self.handle = handle
        self.read = read
        self.end = os.fstat(handle.fileno()).st_size
        self.data = memoryview(b"")
        self.position = 0
        self.ended = False

    @property
    def available(self) -> int:
        """Bytes read and not yet taken."""
        return len(self.data) - self.position

    def holds(self, needed: int) -> bool:
        """Read on until ``needed`` bytes are available from :attr:`position`; False at the end."""
        while self.available < needed and not self.ended:
            wanted = min(max(READ_WINDOW_BYTES, needed - self.available),
                         self.end - self.read.size)
            more = self.handle.read(wanted) if wanted > 0 else b""
            if not more:
                self.ended = True
                break
            self.read.size += len(more)
            rest = self.data[self.position:]
            self.data = memoryview(rest.tobytes() + more if len(rest) else more)
            self.position = 0
        return self.available >= needed


def _record_heads(segment: Path, magic_expected: bytes, read: SegmentRead
                  ) -> Iterator[tuple[bytes, float, bytes]]:
    """The records' heads only (payloads skipped unread, so unchecked), as :func:`iter_records`."""
    with open(segment, "rb") as handle:
        read.size = handle.seek(0, 2)
        handle.seek(read.end_offset)
        while True:
            head = handle.read(RECORD_HEAD.size)
            if not head:
                return
            if len(head) < RECORD_HEAD.size:
                read.problem = "its last record is cut short"
                read.cut_short = True
                return
            magic, kind, stamp, length, _ = RECORD_HEAD.unpack(head)
            if magic != magic_expected or kind not in _KINDS:
                read.problem = f"the record at byte {read.end_offset:,} has no valid head"
                return
            here = handle.tell()
            if read.size < here + length:
                read.problem = f"the record at byte {read.end_offset:,} is cut short"
                read.cut_short = True
                return
            handle.seek(here + length)
            read.end_offset += RECORD_HEAD.size + length
            yield kind, stamp, b""


def stamps_after(segment: Path, offset: int, version: int) -> list[float]:
    """Stamps of intact records found past a damaged one (searching for the next head)."""
    try:
        data = segment.read_bytes()
    except OSError:
        return []
    magic = MAGIC if version >= 2 else MAGIC_V1
    stamps: list[float] = []
    position = data.find(magic, offset + 1)
    while 0 <= position <= len(data) - RECORD_HEAD.size:
        _, kind, stamp, length, crc = RECORD_HEAD.unpack_from(data, position)
        payload = data[position + RECORD_HEAD.size:position + RECORD_HEAD.size + length]
        head = data[position:position + RECORD_HEAD.size - 4]
        whole = kind in _KINDS and len(payload) == length and crc == (
            zlib.crc32(payload, zlib.crc32(head)) if version >= 2 else zlib.crc32(payload))
        if whole:
            stamps.append(stamp)
            position = data.find(magic, position + RECORD_HEAD.size + length)
        else:
            position = data.find(magic, position + 1)
    return stamps


def transaction_position(kind: bytes, payload: bytes) -> tuple[CyclePosition, int]:
    """Where a transaction record sits in the WAL and how many frames it has (head only)."""
    if kind == KIND_TRANSACTION:
        head = zlib.decompressobj().decompress(payload, _TXN.size)
    else:
        head = payload[:_TXN.size]
    sequence, salt1, salt2, first, count, _, _ = _TXN.unpack(head)
    return CyclePosition(sequence, salt1, salt2, first), count


class ChainCheck:
    """Proves each transaction follows the one before it in the WAL (resets included)."""

    def __init__(self, start: list[int] | None) -> None:
        #: (sequence, salt1, salt2, last frame archived) or None before the first header.
        self.expected: tuple[int, int, int, int] | None = tuple(start) if start else None

    def follow(self, kind: bytes, payload: bytes) -> str | None:
        """Take one record; the reason it breaks the chain, or None when it follows."""
        expected = self.expected
        if kind == KIND_RESET:
            old_salts, old_frame, new_salts = decode_reset(payload)
            if expected is None or (expected[1:3], expected[3]) != (old_salts, old_frame):
                return "a WAL reset is not where the archive ended"
            self.expected = (expected[0], new_salts[0], new_salts[1], 0)
            return None
        if kind not in TRANSACTION_KINDS:
            return None
        try:
            here, count = transaction_position(kind, payload)
        except (zlib.error, struct.error):
            return "a transaction record cannot be read"
        if expected is not None and (here.salt1, here.salt2) == expected[1:3]:
            follows = here.frame == expected[3] + 1
        else:
            follows = here.frame == 1 and (
                expected is None or here.salt1 == (expected[1] + 1) & 0xFFFFFFFF)
        if not follows:
            return "a transaction does not follow the one before it in the WAL"
        self.expected = (here.checkpoint_sequence, here.salt1, here.salt2,
                         here.frame + count - 1)
        return None


def _started_at_from_name(folder: Path) -> float:
    """A generation's start from its folder name (when its generation.json cannot be read)."""
    with contextlib.suppress(ValueError):
        moment = datetime.strptime(folder.name[4:4 + 22], "%Y%m%dT%H%M%S%fZ")
        return moment.replace(tzinfo=timezone.utc).timestamp()
    return 0.0


def _segment_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"))


def load_generation(folder: Path, *, scan: bool = True, heads: bool = True
                    ) -> Generation | None:
    """A generation folder's description; None for a folder holding nothing at all.

    ``scan``: sizes, the records' heads (the newest instant, the transactions) and what can
    be found wrong without reading the files. ``heads=False`` leaves out the heads and that
    cheap check, for a caller about to read every record anyway (:func:`check_generation`).

    A generation.json that is missing (beside other files), unreadable, of an unknown
    format or fails its checksum gives a generation marked :attr:`Generation.unusable`,
    with the reason in its damage, so that it shows as a gap instead of vanishing.
    """
    path = folder / GENERATION_FILE
    reason = None
    data: Any = None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not _segment_files(folder) and not any((folder / SNAPSHOT_FOLDER).glob("*")):
            return None  # created and never used (the archiver stopped at once)
        reason = "generation.json is missing"
    except (OSError, ValueError) as error:
        reason = f"generation.json cannot be read ({error})"
    if reason is None:
        if not isinstance(data, dict):
            reason = "generation.json is not an object"
        elif data.get("format") not in READABLE_FORMATS:
            reason = (f"generation.json is of format {data.get('format')!r}, which this "
                      "version does not read; use a newer Queue Admin")
        elif data["format"] >= 2 and data.get(CHECKSUM_KEY) != json_checksum(data):
            reason = "generation.json fails its checksum"
    if reason is not None:
        generation = Generation(folder, {"started_at": _started_at_from_name(folder),
                                         "reason": "unreadable", "format": FORMAT_VERSION})
        generation.unusable = True
        generation.damage.append(ArchiveDamage(path, reason, None, None))
        generation.segments = _segment_files(folder)
        return generation
    generation = Generation(folder, data)
    generation.segments = _segment_files(folder)
    if scan:
        for segment in generation.segments:
            generation.size_bytes += segment.stat().st_size
        if heads:
            _read_heads(generation)
        snapshot = generation.snapshot
        if snapshot is not None:
            with contextlib.suppress(OSError):
                for item in snapshot.parent.iterdir():
                    with contextlib.suppress(OSError):
                        generation.size_bytes += item.stat().st_size
        for name in REPLAY_IMAGE_FILES:  # compaction's replay image (see images.py)
            with contextlib.suppress(OSError):
                generation.size_bytes += (folder / name).stat().st_size
        with contextlib.suppress(OSError):
            for item in (folder / LEVELS_FOLDER).iterdir():
                with contextlib.suppress(OSError):
                    generation.size_bytes += item.stat().st_size
        if heads:
            _check_cheaply(generation)
    return generation


def _read_heads(generation: Generation) -> None:
    """The newest instant and the transactions, from the records' heads (payloads unread)."""
    generation.covered_until, generation.transactions = None, 0
    for segment in generation.segments:
        for kind, stamp, _ in iter_records(segment, with_payload=False,
                                           version=generation.format):
            generation.covered_until = stamp
            generation.transactions += kind in TRANSACTION_KINDS
    generation.heads_read = True


def _check_cheaply(generation: Generation) -> None:
    """What can be found without reading the files: a missing one, a sealed one resized."""
    unrecorded = _unrecorded_snapshot(generation)
    if unrecorded is not None:
        generation.damage.append(unrecorded)
        return
    snapshot = generation.snapshot
    if snapshot is not None and not snapshot.is_file():
        generation.damage.append(ArchiveDamage(snapshot, "the snapshot is missing", None,
                                               generation.covered_until))
        return
    sealed = generation.data.get("segments") or {}
    names = {segment.name: segment for segment in generation.segments}
    for name in _expected_segment_names(generation):
        path = generation.folder / name
        info = sealed.get(name)
        if name not in names:
            reason = "the frame log is missing"
        elif isinstance(info, dict) and path.stat().st_size != info.get("bytes"):
            reason = (f"the frame log is {path.stat().st_size:,} bytes but "
                      f"{info.get('bytes', 0):,} were written")
        else:
            continue
        before, after = _cut(generation, path)
        generation.damage.append(ArchiveDamage(path, reason, before, after))
        if generation.covered_until is not None and before is not None:
            generation.covered_until = min(generation.covered_until, before)
        return


def _unrecorded_snapshot(generation: Generation) -> ArchiveDamage | None:
    """A generation.json older than its files: it names no snapshot, but a finished one is there.

    The archiver records the snapshot in generation.json as soon as the backup (with its
    manifest) is written, so a finished snapshot that generation.json does not name means
    the file was replaced by an older copy of itself; the generation's transactions cannot
    be trusted to it. The newest generation of a running archiver is left alone (it may be
    between writing the backup and recording it).
    """
    if generation.format < 2 or generation.snapshot is not None:
        return None
    finished = sorted(backup for backup in (generation.folder / SNAPSHOT_FOLDER).glob(
        f"*{BACKUP_SUFFIX}") if manifest_path_for(backup).is_file())
    if not finished or _being_written(generation):
        return None
    return ArchiveDamage(
        generation.folder / GENERATION_FILE,
        f"generation.json names no snapshot, but the generation holds the finished snapshot "
        f"'{finished[0].name}' and {len(generation.segments)} frame log(s): generation.json "
        "is older than its files (an older copy of it was put back, or the archiver stopped "
        "before it recorded the snapshot)", None, generation.covered_until)


def _being_written(generation: Generation) -> bool:
    """True for the newest generation of an archive whose archiver is running now."""
    archive = generation.folder.parent
    lock = read_lock(archive)
    if lock is None:
        return False
    try:
        modified = (archive / LOCK_FILE).stat().st_mtime
        newest = max(p.name for p in archive.iterdir() if p.name.startswith("gen-"))
    except (OSError, ValueError):
        return False
    return newest == generation.folder.name and not lock_is_stale(lock, modified, time.time())


def _expected_segment_names(generation: Generation) -> list[str]:
    """Every frame log the generation should have: numbered from 1 with none missing."""
    names = {segment.name for segment in generation.segments}
    names |= set(generation.data.get("segments") or {})
    opened = generation.data.get(OPEN_SEGMENT_KEY)
    if isinstance(opened, str):
        names.add(opened)
    numbers = []
    for name in names:
        with contextlib.suppress(ValueError):
            numbers.append(int(name[len(SEGMENT_PREFIX):-len(SEGMENT_SUFFIX)]))
    return [f"{SEGMENT_PREFIX}{number:06d}{SEGMENT_SUFFIX}"
            for number in range(1, max(numbers, default=0) + 1)]


def _cut(generation: Generation, damaged: Path) -> tuple[float | None, float | None]:
    """(last intact instant before ``damaged``, newest instant known after it), light scan."""
    before: float | None = generation.snapshot_at
    after: float | None = None
    for segment in generation.segments:
        if segment.name < damaged.name:
            for _, stamp, _ in iter_records(segment, with_payload=False,
                                            version=generation.format):
                before = stamp
        elif segment.name > damaged.name:
            for _, stamp, _ in iter_records(segment, with_payload=False,
                                            version=generation.format):
                after = stamp
    ended = generation.data.get("ended_at")
    if after is None and isinstance(ended, int | float):
        after = float(ended)
    return before, after


def check_generation(generation: Generation, *, hash_snapshot: bool = True,
                     snapshot_sha256: str | None = None) -> Generation:
    """Check every file of a generation against its checksums, in place; returns it.

    ``snapshot_sha256``: the snapshot's digest as the caller computed it moments ago on the
    same, unchanged file (it is then not hashed again); every other checksum is checked.

    The snapshot is hashed and compared with its manifest (and, in format 2, with
    generation.json); every frame log record's CRC and its place in the WAL chain are
    checked; a closed frame log must have the size and CRC-32 it was closed with. The first
    damage found ends what can be restored: :attr:`Generation.covered_until` becomes the last
    intact instant before it, and the damage is recorded with the instants it costs.

    Without ``hash_snapshot`` (format 2 on), a snapshot that is there is not read: it is left
    to whoever uses it to prove it against generation.json's SHA-256 as it reads it (a
    rebuild's copy does), and :attr:`Generation.snapshot_proven` stays False.
    """
    hash_snapshot = hash_snapshot or generation.format < 2
    if generation.unusable or (generation.checked and (generation.snapshot_proven
                                                       or not hash_snapshot)):
        return generation
    generation.checked = True
    generation.damage = []
    unrecorded = _unrecorded_snapshot(generation)
    if unrecorded is not None:
        if not generation.heads_read:  # the damage then runs to the newest record
            _read_heads(generation)
            unrecorded = _unrecorded_snapshot(generation)
        generation.damage.append(unrecorded)
        return generation
    snapshot = generation.snapshot
    if snapshot is not None:
        problem = (_snapshot_problem(generation, snapshot, snapshot_sha256) if hash_snapshot
                   else None if snapshot.is_file() else (snapshot, "the snapshot is missing"))
        if problem is not None:
            if not generation.heads_read:
                _read_heads(generation)
            generation.damage.append(ArchiveDamage(problem[0], problem[1], None,
                                                   generation.covered_until))
            return generation
        generation.snapshot_proven = hash_snapshot
    intact = _IntactEnd(generation.snapshot_at if snapshot is not None else None)
    chain = ChainCheck(generation.data.get("start"))
    sealed = generation.data.get("segments") or {}
    present = {segment.name: segment for segment in generation.segments}
    expected = _expected_segment_names(generation)
    stopped = False
    for index, name in enumerate(expected):
        path = generation.folder / name
        if name not in present:
            generation.damage.append(ArchiveDamage(path, "the frame log is missing",
                                                   intact.cut(), _cut(generation, path)[1]))
            stopped = True
            break
        read = SegmentRead(path)
        broken = None
        for kind, stamp, payload in iter_records(path, version=generation.format,
                                                 outcome=read):
            broken = chain.follow(kind, payload)
            if broken is not None:
                where = read.end_offset - len(payload) - RECORD_HEAD.size
                broken = f"{broken} (the record at byte {where:,})"
                break
            intact.add(kind, stamp)
        info = sealed.get(name)
        last = index == len(expected) - 1
        if broken is None and read.problem is not None:
            later = stamps_after(path, read.end_offset, generation.format)
            if isinstance(info, dict) or not last or later or not _torn_by_a_crash(read):
                broken = read.problem
            else:
                stopped = True  # a tail torn by a crash: the archive ends before it
        if broken is None and isinstance(info, dict) and (
                read.size != info.get("bytes") or read.crc != info.get("crc32")):
            broken = (f"it is {read.size:,} bytes but {info.get('bytes', 0):,} were written"
                      if read.size != info.get("bytes") else "its checksum does not match")
        if broken is not None:
            later = stamps_after(path, read.end_offset, generation.format)
            until = max([*later, *filter(None, [_cut(generation, path)[1]])], default=None)
            generation.damage.append(ArchiveDamage(path, broken, intact.cut(), until))
            stopped = True
            break
    covered = intact.cut() if stopped else intact.last
    generation.covered_until = covered if generation.snapshot is not None else None
    generation.transactions = intact.transactions
    return generation


def _torn_by_a_crash(read: SegmentRead) -> bool:
    """True when what ends a never-closed frame log is what a crash leaves there.

    A killed archiver leaves its last record cut short; a power cut may leave the file's
    end filled with zeros. A whole record that fails its checksum is damage.
    """
    if read.unreadable:
        return False
    if read.cut_short:
        return True
    try:
        with open(read.path, "rb") as handle:
            handle.seek(read.end_offset)
            tail = handle.read()
    except OSError:
        return False
    return not tail.strip(b"\0")


class _IntactEnd:
    """The last instant whose every record was read intact.

    One pass of the archiver stamps all the transactions it copied with one instant, so a
    record that cannot be read may belong to the same instant as the intact one before it:
    the state at that instant is then not whole, and the instant before it is the last that
    is (unless the last intact record is a heartbeat, which is always written last).
    """

    def __init__(self, start: float | None) -> None:
        self.last = start
        self.before_last = start
        self.last_kind = KIND_HEARTBEAT
        self.transactions = 0

    def add(self, kind: bytes, stamp: float) -> None:
        """One more intact record."""
        if stamp != self.last:
            self.before_last = self.last
            self.last = stamp
        self.last_kind = kind
        self.transactions += kind in TRANSACTION_KINDS

    def cut(self) -> float | None:
        """The last whole instant when reading stops at a record that cannot be used."""
        return self.last if self.last_kind == KIND_HEARTBEAT else self.before_last


def prove_snapshot(generation: Generation, digest: str | None = None
                   ) -> tuple[Path, str] | None:
    """What :func:`check_generation` left out of its snapshot: (file, why) or None when proven.

    ``digest``: the snapshot's SHA-256 as the caller just computed it from the file (a
    verified copy's); without it the file is hashed here.
    """
    snapshot = generation.snapshot
    if snapshot is None:
        return None
    problem = _snapshot_problem(generation, snapshot, digest)
    generation.snapshot_proven = problem is None
    return problem


def _snapshot_problem(generation: Generation, snapshot: Path, digest: str | None = None
                      ) -> tuple[Path, str] | None:
    """The file and why the snapshot cannot be trusted, or None when every checksum matches."""
    if not snapshot.is_file():
        return snapshot, "the snapshot is missing"
    manifest_file = manifest_path_for(snapshot)
    try:
        manifest = BackupManifest.read(manifest_file)
        manifest_digest = hashlib.sha256(manifest_file.read_bytes()).hexdigest()
        digest = digest or file_sha256(snapshot)
    except ManifestUnreadable as error:
        return manifest_file, f"the snapshot's manifest cannot be used ({error.reason})"
    except OSError as error:
        return snapshot, f"the snapshot cannot be read ({error.strerror or error})"
    recorded = generation.data.get("manifest_sha256")
    if recorded is not None and recorded != manifest_digest:
        return manifest_file, "the snapshot's manifest fails its checksum"
    if digest != manifest.sha256 or digest != generation.data.get("snapshot_sha256", digest):
        return snapshot, "the snapshot fails its checksum"
    return None


def list_generations(archive: Path, *, scan: bool = True, check: bool = False,
                     hash_snapshots: bool = True) -> list[Generation]:
    """Every generation in the archive, oldest first (with ``check``: every file checked).

    ``hash_snapshots``: see :func:`check_generation`'s ``hash_snapshot``.
    """
    try:
        folders = sorted(p for p in archive.iterdir() if p.is_dir() and p.name.startswith("gen-"))
    except FileNotFoundError:
        return []
    except OSError as error:
        raise ArchiveError(f"Reading the archive '{archive}' failed: {error.strerror or error}; "
                           "check the folder and its permissions.") from error
    found = [load_generation(folder, scan=scan or check, heads=not check)
             for folder in folders]
    generations = [generation for generation in found if generation is not None]
    if check:
        for generation in generations:
            check_generation(generation, hash_snapshot=hash_snapshots)
    apply_validation_failures(archive, generations)
    return generations


def read_validation(archive: Path) -> dict[str, Any] | None:
    """The validation record of the archive; a damaged one reads as its damage."""
    path = archive / VALIDATION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        return {"damaged": f"validation.json cannot be read ({error})"}
    if not isinstance(data, dict) or data.get(CHECKSUM_KEY) != json_checksum(data):
        return {"damaged": "validation.json fails its checksum"}
    return data


def write_validation(archive: Path, data: dict[str, Any]) -> None:
    """Write the validation record atomically, with its checksum."""
    data = {**data, CHECKSUM_KEY: None}
    data[CHECKSUM_KEY] = json_checksum(data)
    write_json_atomically(archive / VALIDATION_FILE, data)


def apply_validation_failures(archive: Path, generations: list[Generation]) -> None:
    """Instants a validation found wrong are not restorable: cut each generation there."""
    record = read_validation(archive)
    failures = (record or {}).get("failures") or []
    by_id = {generation.id: generation for generation in generations}
    for failure in failures:
        generation = by_id.get(str(failure.get("generation")))
        trusted = failure.get("trusted_until")
        if generation is None or not isinstance(trusted, int | float):
            continue
        lost_until = generation.covered_until
        if generation.covered_until is not None:
            generation.covered_until = min(generation.covered_until, float(trusted))
        generation.damage.append(ArchiveDamage(
            generation.folder, str(failure.get("reason") or "validation failed"),
            float(trusted), lost_until, "validation"))
    located = {str(failure.get("generation")) for failure in failures
               if isinstance(failure.get("trusted_until"), int | float)}
    for generation in generations:
        if generation.id not in located and _ended_on_failed_validation(generation):
            _trust_only_the_snapshot(archive, generation, record)


#: How the end of a generation that a failed validation ended begins (see the archiver).
FAILED_VALIDATION_END = "a gap: validation failed"
#: Set in an ended generation's generation.json when a validation later failed it.
VALIDATION_FAILED_KEY = "validation_failed"


def note_failed_validation(archive: Path, generation: Generation) -> None:
    """Before an ending generation is saved: keep in it whether a validation failed it.

    Called with its end (whatever the reason), so that a later loss of validation.json can
    never widen what the generation offers (see :func:`apply_validation_failures`).
    """
    record = read_validation(archive) or {}
    if any(str(failure.get("generation")) == generation.id
           for failure in record.get("failures") or []):
        generation.data[VALIDATION_FAILED_KEY] = True


def _ended_on_failed_validation(generation: Generation) -> bool:
    return (str(generation.data.get("end_reason") or "").startswith(FAILED_VALIDATION_END)
            or generation.data.get(VALIDATION_FAILED_KEY) is True)


def _trust_only_the_snapshot(archive: Path, generation: Generation,
                             record: dict[str, Any] | None) -> None:
    """A validation failed this generation, but validation.json no longer says from where.

    Only validation.json records the last instant a validation proved; without it nothing
    after the snapshot can be trusted, so the generation is cut at its snapshot and the
    damaged (or missing) record is reported as the reason.
    """
    snapshot_at = generation.snapshot_at
    if snapshot_at is None:
        return
    why = ("validation.json is missing" if record is None
           else str(record.get("damaged") or "validation.json no longer records that failure"))
    lost_until = generation.covered_until
    if generation.covered_until is not None:
        generation.covered_until = min(generation.covered_until, snapshot_at)
    generation.damage.append(ArchiveDamage(
        archive / VALIDATION_FILE,
        f"a validation failed generation {generation.id}, but {why}: the last instant it "
        "proved is lost, so only the generation's snapshot is trusted", snapshot_at,
        lost_until))


def missing_generations(archive: Path, generations: list[Generation]) -> list[ArchiveDamage]:
    """Generations that others follow but that are gone, with the instants they held.

    Retention deletes the oldest generations first, so only a generation newer than the
    oldest one left can be missing by damage (a folder deleted, a copy that left it out).
    """
    if not generations:
        return []
    present = {generation.id for generation in generations}
    oldest = generations[0].id
    found = []
    for index, generation in enumerate(generations):
        previous = generation.data.get(PREVIOUS_GENERATION_KEY)
        if not isinstance(previous, str) or previous in present or previous <= oldest:
            continue
        before = [g.restorable[1] for g in generations[:index] if g.restorable is not None]
        found.append(ArchiveDamage(
            archive / previous, f"generation {previous} is missing (generation "
            f"{generation.id} follows it)", max(before) if before else None,
            generation.snapshot_at))
    return found


def delete_generation(generation: Generation) -> None:
    """Delete a whole generation folder (retention)."""
    shutil.rmtree(generation.folder)


# -- the lock file ------------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    """True when a process with this id runs on this machine."""
    if pid <= 0:
        return False
    if os.name == "nt":
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # access denied: it exists
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(archive: Path) -> dict[str, Any] | None:
    """The lock file's contents, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((archive / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def lock_is_stale(data: dict[str, Any], modified: float, now: float) -> bool:
    """A lock is stale when its owner is gone from this host or silent for too long."""
    if now - modified > LOCK_STALE_SECONDS:
        return True
    same_host = data.get("host") == socket.gethostname()
    pid = data.get("pid")
    return same_host and isinstance(pid, int) and not process_alive(pid)


def acquire_lock(archive: Path, database: Path, now: float) -> Path:
    """Take the archive's lock, replacing a stale one; refuse when another archiver runs."""
    path = archive / LOCK_FILE
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "database": str(database),
            "started_at": now, "python": sys.executable}
    for _ in range(3):
        try:
            with open(path, "x", encoding="utf-8") as handle:
                json.dump(mine, handle)
            return path
        except FileExistsError:
            pass
        data = read_lock(archive) or {}
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if not lock_is_stale(data, modified, now):
            raise ArchiveError(
                f"Archiving into '{archive}' refused: another archiver (process "
                f"{data.get('pid', '?')} on {data.get('host', '?')}, for "
                f"'{data.get('database', '?')}') is already writing there; stop it first or "
                "choose another folder.", ErrorKind.ALREADY_EXISTS)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    raise ArchiveError(f"Archiving into '{archive}' refused: its lock file kept changing; "
                       "another archiver may be starting there.", ErrorKind.ALREADY_EXISTS)


def refresh_lock(lock: Path) -> None:
    """Show that the owner is alive (the lock's modification time)."""
    with contextlib.suppress(OSError):
        os.utime(lock)


def release_lock(lock: Path) -> None:
    """Remove the lock when it is still this process's."""
    data = read_lock(lock.parent)
    if data and data.get("pid") == os.getpid() and data.get("host") == socket.gethostname():
        with contextlib.suppress(OSError):
            lock.unlink()
