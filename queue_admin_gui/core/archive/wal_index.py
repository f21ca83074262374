"""Reading SQLite's WAL index (the -shm file) where a look cannot disturb anyone's locks.

Windows does not say which process holds a lock byte, so the archiver cannot tell a
checkpoint that holds the write lock from a worker that holds it in the middle of a
transaction while a checkpoint waits for it. The WAL index settles the question as far as
anything outside SQLite can: its header holds the newest committed frame (``mxFrame``) and
the salts of the current cycle. Before letting a checkpoint through, the archiver waits until
the log has stopped growing with everything archived; after letting go, it watches the
header until the checkpoint ends, takes hold again if a transaction appears, and records a
gap if one appeared that it could not copy before the reset.

The same header also proves continuity (:mod:`.archiver`): ``iChange`` counts every
transaction committed to the log, whatever cycle it went into, so the archive holds every
commit exactly when the count of transactions it archived since a known value equals how far
the counter moved.

Layout (SQLite's file format): two copies of a 48-byte header, in the machine's byte order
except the salts, which are the WAL header's big-endian bytes; ``iChange`` at byte 8,
``mxFrame`` at byte 16, the salts at 32. The copies are equal when the header is not being
written; a torn read is retried. Where byte-range locks belong to a process (Linux, macOS),
opening and closing the -shm file would drop every lock the process holds on it, so
:func:`index_reader` gives a reader only where locks belong to a handle (Windows), and
:func:`live_index_reader` reads through a descriptor the process already has open.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_HEADER_BYTES = 48
_MAX_FRAME = struct.Struct("=I")
_CHANGE = struct.Struct("=I")
_SALTS = struct.Struct(">II")
_ATTEMPTS = 5


@dataclass(frozen=True)
class IndexHeader:
    """The WAL index's view of the log: the current cycle and its newest committed frame."""

    salts: tuple[int, int]
    max_frame: int
    #: SQLite's ``iChange``: one more for every committed transaction (wraps at 2^32).
    change: int = 0


IndexReader = Callable[[], "IndexHeader | None"]


def parse_header(raw: bytes) -> IndexHeader | None:
    """The header from the -shm's first 96 bytes, or None while torn or not initialised."""
    if len(raw) < 2 * _HEADER_BYTES:
        return None
    first, second = raw[:_HEADER_BYTES], raw[_HEADER_BYTES:2 * _HEADER_BYTES]
    if first != second or first[12] == 0:  # isInit
        return None
    (max_frame,) = _MAX_FRAME.unpack_from(first, 16)
    (change,) = _CHANGE.unpack_from(first, 8)
    return IndexHeader(_SALTS.unpack_from(first, 32), max_frame, change)


def read_with(read: Callable[[], bytes]) -> IndexHeader | None:
    """Read the header through ``read`` (96 bytes from offset 0), retrying a torn read."""
    for _ in range(_ATTEMPTS):
        try:
            header = parse_header(read())
        except OSError:
            return None
        if header is not None:
            return header
    return None


def index_reader(shm: Path) -> IndexReader | None:
    """A reader of ``shm``'s header where looking is harmless (Windows), else None."""
    if os.name != "nt":
        return None

    def read() -> bytes:
        with open(shm, "rb") as handle:
            return handle.read(2 * _HEADER_BYTES)

    return lambda: read_with(read)


def reader_through_open_descriptor(shm: Path) -> IndexReader | None:
    """A reader that borrows a descriptor this process already holds on ``shm`` (Linux).

    Nothing is opened or closed, so no lock is dropped; None when no such descriptor exists.
    """
    if not sys.platform.startswith("linux"):
        return None
    target = os.path.realpath(shm)
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                return _pread_reader(int(name))
        except OSError:
            continue
    return None


def _pread_reader(descriptor: int) -> IndexReader:
    return lambda: read_with(lambda: os.pread(descriptor, 2 * _HEADER_BYTES, 0))


def live_index_reader(shm: Path) -> IndexReader | None:
    """A reader of ``shm``'s header that never disturbs a lock, where one can exist.

    Windows: the file is opened and read (locks belong to handles there). Linux: the
    descriptor SQLite keeps open in this process (while any of its connections uses the
    database) is borrowed, found again whenever it changes. Elsewhere None: the archiver
    then cannot prove continuity through the counter and falls back on its read marks.
    """
    if os.name == "nt":
        return index_reader(shm)
    if not sys.platform.startswith("linux"):
        return None
    target = os.path.realpath(shm)
    found: list[int] = []

    def descriptor() -> int | None:
        if found:
            try:
                if os.readlink(f"/proc/self/fd/{found[0]}") == target:
                    return found[0]
            except OSError:
                pass
            found.clear()
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}") == target:
                    found.append(int(name))
                    return found[0]
            except OSError:
                continue
        return None

    def read() -> IndexHeader | None:
        number = descriptor()
        if number is None:
            return None
        return read_with(lambda: os.pread(number, 2 * _HEADER_BYTES, 0))

    return read


def file_head_reader(path: Path, size: int = 100) -> Callable[[], bytes | None] | None:
    """Reads the first ``size`` bytes of a file SQLite has open, without dropping locks.

    As for the -shm file: Windows opens and reads it; Linux reads through the descriptor
    SQLite keeps open in this process (None while there is none); elsewhere None.
    """
    if os.name == "nt":
        def read_opened() -> bytes | None:
            try:
                with open(path, "rb") as handle:
                    return handle.read(size)
            except OSError:
                return None

        return read_opened
    if not sys.platform.startswith("linux"):
        return None
    target = os.path.realpath(path)

    def read_borrowed() -> bytes | None:
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}") == target:
                    return os.pread(int(name), size, 0)
            except OSError:
                continue
        return None

    return read_borrowed
