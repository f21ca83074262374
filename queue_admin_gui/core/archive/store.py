"""The archive folder on disk: generations, their frame logs, and the archiver's lock file.

Layout (every name below is inside the archive folder, which may be a local folder, a mapped
drive or a UNC share)::

    archiver.lock                 who is archiving into this folder (PID, host, database)
    gen-<UTC start>/              one generation: a snapshot and the commits after it
        generation.json           where it starts, why it started, how it ended
        snapshot/                 the verified backup it starts from (with its manifest)
        frames-000001.qaf         commits after the snapshot, appended as they are seen

A frame log is a sequence of records, each ``QAR`` + kind + stamp (float seconds since the
epoch, when the archiver saw it) + length + CRC-32 + payload. Kind ``T`` is one committed
transaction (zlib-compressed: where it sits in the WAL and its page images); kind ``H`` is a
heartbeat saying that every commit made before its stamp is already archived. A record
torn by a crash fails its length or CRC and ends the log there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ErrorKind, QueueAdminError
from ..files import write_json_atomically
from .walfile import Transaction

GENERATION_FILE = "generation.json"
SNAPSHOT_FOLDER = "snapshot"
LOCK_FILE = "archiver.lock"
SEGMENT_PREFIX = "frames-"
SEGMENT_SUFFIX = ".qaf"
SEGMENT_BYTES = 32 * 1024 * 1024
FORMAT_VERSION = 1
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
_RECORD = struct.Struct(">3scdII")
_MAGIC = b"QAR"
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
    #: For each page, whether it is stored as a delta of the page's earlier image.
    deltas: tuple[bool, ...] = ()


@dataclass
class Generation:
    """One unbroken stretch of the archive: a snapshot and every commit after it."""

    folder: Path
    data: dict[str, Any]
    #: The newest instant up to which every commit is archived (last record's stamp).
    covered_until: float | None = None
    transactions: int = 0
    size_bytes: int = 0
    segments: list[Path] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The folder name, which sorts by start time."""
        return self.folder.name

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
        """The first and last restorable instants, or None (no snapshot yet)."""
        start = self.snapshot_at
        if start is None:
            return None
        return start, max(start, self.covered_until or start)

    def save(self) -> None:
        """Write generation.json atomically."""
        write_json_atomically(self.folder / GENERATION_FILE, self.data)


def instant_text(stamp: float | None) -> str:
    """An instant as local ISO 8601 with its offset, to the millisecond."""
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, tz=timezone.utc).astimezone().isoformat(
        timespec="milliseconds")


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


class FrameLog:
    """Appends records to a generation's frame logs, starting a new file past a size."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        existing = sorted(generation.folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"))
        self._number = len(existing)
        self._handle: BinaryIO | None = None
        self._written = 0
        #: Bytes appended through this object (all its segments).
        self.bytes_written = 0

    def append(self, kind: bytes, stamp: float, payload: bytes) -> int:
        """Append one record (buffered; see :meth:`flush`); returns its size in bytes."""
        if self._handle is None or self._written >= SEGMENT_BYTES:
            self._open_next()
        assert self._handle is not None
        record = _RECORD.pack(_MAGIC, kind, stamp, len(payload), zlib.crc32(payload)) + payload
        self._handle.write(record)
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
        """Flush to the disk and close the current file."""
        if self._handle is not None:
            self.flush(durable=True)
            self._handle.close()
            self._handle = None

    def _open_next(self) -> None:
        self.close()
        self._number += 1
        path = self.generation.folder / f"{SEGMENT_PREFIX}{self._number:06d}{SEGMENT_SUFFIX}"
        self._handle = open(path, "ab")  # noqa: SIM115 - kept open across appends
        self._written = 0


def iter_records(segment: Path, with_payload: bool = True
                 ) -> Iterator[tuple[bytes, float, bytes]]:
    """The whole records of one frame log, in order; a torn or damaged tail ends it."""
    with open(segment, "rb") as handle:
        while True:
            head = handle.read(_RECORD.size)
            if len(head) < _RECORD.size:
                return
            magic, kind, stamp, length, crc = _RECORD.unpack(head)
            if magic != _MAGIC or kind not in _KINDS:
                return
            if with_payload:
                payload = handle.read(length)
                if len(payload) < length or zlib.crc32(payload) != crc:
                    return
            else:
                here = handle.tell()
                if handle.seek(0, 2) < here + length:
                    return
                handle.seek(here + length)
                payload = b""
            yield kind, stamp, payload


def load_generation(folder: Path, *, scan: bool = True) -> Generation | None:
    """A generation folder's description (None when it has no readable generation.json)."""
    try:
        data = json.loads((folder / GENERATION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
        return None
    generation = Generation(folder, data)
    generation.segments = sorted(folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"))
    if scan:
        for segment in generation.segments:
            generation.size_bytes += segment.stat().st_size
            for kind, stamp, _ in iter_records(segment, with_payload=False):
                generation.covered_until = stamp
                generation.transactions += kind in TRANSACTION_KINDS
        snapshot = generation.snapshot
        if snapshot is not None:
            for item in snapshot.parent.iterdir():
                with contextlib.suppress(OSError):
                    generation.size_bytes += item.stat().st_size
    return generation


def list_generations(archive: Path, *, scan: bool = True) -> list[Generation]:
    """Every generation in the archive, oldest first."""
    try:
        folders = sorted(p for p in archive.iterdir() if p.is_dir() and p.name.startswith("gen-"))
    except FileNotFoundError:
        return []
    except OSError as error:
        raise ArchiveError(f"Reading the archive '{archive}' failed: {error.strerror or error}; "
                           "check the folder and its permissions.") from error
    found = [load_generation(folder, scan=scan) for folder in folders]
    return [generation for generation in found if generation is not None]


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
