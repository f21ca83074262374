"""Reading the WAL: checksums, whole transactions only, resets, and instants on the command line."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from queue_admin_gui.core.archive import ArchiveError, parse_instant
from queue_admin_gui.core.archive.walfile import (
    FRAME_HEADER_BYTES,
    frame_checksum_parts,
    frame_offset,
    frame_step,
    read_committed,
    read_header,
    wal_checksum,
    wal_checksum_reference,
)


@pytest.mark.parametrize("big_endian", [True, False])
@pytest.mark.parametrize("size", [8, 24, 4096, 65536])
def test_the_fast_checksum_is_sqlites(big_endian: bool, size: int) -> None:
    data = os.urandom(size)
    for start in [(0, 0), (0xFFFFFFFF, 0xFFFFFFF0), (12345, 67890)]:
        assert wal_checksum(data, big_endian, start) == wal_checksum_reference(
            data, big_endian, start)


@pytest.mark.parametrize("big_endian", [True, False])
@pytest.mark.parametrize("page_size", [512, 4096])
def test_the_checksums_of_many_frames_at_once_chain_as_sqlites(big_endian: bool,
                                                                page_size: int) -> None:
    """Each frame's part, chained from one frame to the next, gives SQLite's running
    checksum after every frame (its first 8 header bytes and its page, in order)."""
    step = FRAME_HEADER_BYTES + page_size
    data = os.urandom(step * 7 + 100)  # a torn eighth frame is not a frame
    first, second = frame_checksum_parts(data, page_size, big_endian)
    assert len(first) == len(second) == 7
    running = expected = (0x12345678, 0x9ABCDEF0)
    for index in range(7):
        frame = data[index * step:(index + 1) * step]
        expected = wal_checksum_reference(frame[:8], big_endian, expected)
        expected = wal_checksum_reference(frame[FRAME_HEADER_BYTES:], big_endian, expected)
        fast = wal_checksum(frame[:8] + frame[FRAME_HEADER_BYTES:], big_endian, running)
        assert fast == expected
        na, nb, nc, nd = frame_step(page_size)
        running = ((na * running[0] + nb * running[1] + int(first[index])) & 0xFFFFFFFF,
                   (nc * running[0] + nd * running[1] + int(second[index])) & 0xFFFFFFFF)
        assert running == expected, index


def _wal_database(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE t(x BLOB)")
    return connection


def test_only_whole_transactions_are_read_and_a_torn_one_waits(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    connection = _wal_database(db)
    connection.execute("BEGIN")
    for _ in range(3):
        connection.execute("INSERT INTO t VALUES (?)", (os.urandom(9000),))
    connection.execute("COMMIT")
    wal = Path(f"{db}-wal")
    header, _ = read_header(wal)
    assert header is not None
    whole = read_committed(wal, header, 0, header.checksum)
    assert len(whole.transactions) == 2  # CREATE TABLE, then the three inserts
    last = whole.transactions[-1]
    assert last.frames[-1].commit_size > 0
    assert all(frame.commit_size == 0 for frame in last.frames[:-1])

    # The same log cut inside the last transaction: only the first one is whole.
    torn = tmp_path / "torn-wal"
    shutil.copyfile(wal, torn)
    with open(torn, "r+b") as handle:
        handle.truncate(frame_offset(header, last.first_frame + 1) + FRAME_HEADER_BYTES + 10)
    partial = read_committed(torn, header, 0, header.checksum)
    assert len(partial.transactions) == 1
    assert partial.end_frame == last.first_frame - 1

    # A damaged page in the last transaction ends the valid prefix before it.
    shutil.copyfile(wal, torn)
    with open(torn, "r+b") as handle:
        handle.seek(frame_offset(header, last.first_frame) + FRAME_HEADER_BYTES + 100)
        handle.write(b"\xff\x00\xff")
    assert len(read_committed(torn, header, 0, header.checksum).transactions) == 1
    connection.close()


def test_a_reset_is_seen_and_proven_to_be_the_next_one(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    connection = _wal_database(db)
    wal = Path(f"{db}-wal")
    first, _ = read_header(wal)
    assert first is not None
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.execute("INSERT INTO t VALUES (1)")
    second, _ = read_header(wal)
    assert second is not None and second.follows(first)
    found = read_committed(wal, first, 0, first.checksum)
    assert found.header == second and not found.transactions
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.execute("INSERT INTO t VALUES (2)")
    connection.execute("PRAGMA wal_checkpoint(RESTART)")
    connection.execute("INSERT INTO t VALUES (3)")
    fourth, _ = read_header(wal)
    assert fourth is not None and not fourth.follows(second)  # two resets: frames may be lost
    connection.close()


def test_instants_with_offset_z_fractions_or_local_time() -> None:
    utc = parse_instant("2024-05-01T08:41:59.123456789Z")
    assert utc == datetime(2024, 5, 1, 8, 41, 59, 123456, tzinfo=timezone.utc)
    offset = parse_instant("2024-05-01T10:41:59,5+02:00")
    assert offset.utcoffset() == timedelta(hours=2) and offset.microsecond == 500000
    local = parse_instant("2024-05-01 10:41:59")
    assert local.tzinfo is not None
    assert local.replace(tzinfo=None) == datetime(2024, 5, 1, 10, 41, 59)
    with pytest.raises(ArchiveError):
        parse_instant("yesterday at ten")
