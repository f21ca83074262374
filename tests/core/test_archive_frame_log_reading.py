"""A frame log is read in pieces, never whole: the records and their checks come out the same.

:func:`iter_records` reads a frame log :data:`READ_WINDOW_BYTES` at a time, so reading a
32 MB frame log beside the archiver does not hold 32 MB. Here the window is made tiny, so
records straddle it and some are longer than it: every record must come out as written, the
CRC and the end offset must equal those of reading the file whole, and a damaged or torn
record must stop the reading at the same place with the same reason as before.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pytest

from queue_admin_gui.core.archive import store
from queue_admin_gui.core.archive.store import (
    KIND_HEARTBEAT,
    KIND_TRANSACTION,
    SegmentRead,
    encode_record,
    iter_records,
)


def written(tmp_path: Path, count: int = 40) -> tuple[Path, list[tuple[bytes, float, bytes]]]:
    """A frame log of records of many sizes (some far longer than the window)."""
    rng = random.Random(3)
    records = []
    for number in range(count):
        size = rng.choice([0, 1, 7, 100, 5000, 70_000])
        kind = KIND_HEARTBEAT if size == 0 else KIND_TRANSACTION
        records.append((kind, float(number) + 0.5, rng.randbytes(size)))
    segment = tmp_path / "frames-000001.qaf"
    segment.write_bytes(b"".join(encode_record(*record) for record in records))
    return segment, records


@pytest.mark.parametrize("window", [1, 13, 4096, 1 << 20])
def test_every_record_comes_out_as_written_whatever_the_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    monkeypatch.setattr(store, "READ_WINDOW_BYTES", window)
    segment, records = written(tmp_path)
    read = SegmentRead(segment)
    assert list(iter_records(segment, outcome=read)) == records
    data = segment.read_bytes()
    assert read.problem is None and read.end_offset == len(data) == read.size
    assert read.crc == zlib.crc32(data)


@pytest.mark.parametrize("window", [5, 1 << 20])
def test_reading_from_an_offset_and_stopping_at_damage_or_a_torn_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    monkeypatch.setattr(store, "READ_WINDOW_BYTES", window)
    segment, records = written(tmp_path, 12)
    data = segment.read_bytes()
    offsets = [0]
    for record in records:
        offsets.append(offsets[-1] + len(encode_record(*record)))

    read = SegmentRead(segment)
    assert list(iter_records(segment, outcome=read, start=offsets[4])) == records[4:]
    assert read.end_offset == len(data) and read.crc == zlib.crc32(data[offsets[4]:])

    damaged = bytearray(data)
    damaged[offsets[6] + store.RECORD_HEAD.size] ^= 0xFF  # a payload byte of record 6
    segment.write_bytes(bytes(damaged))
    read = SegmentRead(segment)
    assert list(iter_records(segment, outcome=read)) == records[:6]
    assert read.problem == f"the record at byte {offsets[6]:,} fails its checksum"
    assert read.end_offset == offsets[6] and not read.cut_short

    segment.write_bytes(data[:offsets[9] + 3])  # torn inside record 9's head
    read = SegmentRead(segment)
    assert list(iter_records(segment, outcome=read)) == records[:9]
    assert read.problem == "its last record is cut short" and read.cut_short
    assert read.end_offset == offsets[9]

    segment.write_bytes(data[:offsets[10] - 1])  # torn inside record 9's payload
    read = SegmentRead(segment)
    assert list(iter_records(segment, outcome=read)) == records[:9]
    assert read.problem == f"the record at byte {offsets[9]:,} is cut short" and read.cut_short


def test_a_damaged_length_reads_no_further_than_the_file(tmp_path: Path) -> None:
    segment, records = written(tmp_path, 3)
    data = bytearray(segment.read_bytes())
    first = len(encode_record(*records[0]))
    data[first + 12:first + 16] = (0xFFFFFFF0).to_bytes(4, "big")  # record 1's length field
    segment.write_bytes(bytes(data))
    read = SegmentRead(segment)
    assert list(iter_records(segment, outcome=read)) == records[:1]
    assert read.problem == f"the record at byte {first:,} is cut short" and read.cut_short
    assert read.size == len(data)


def test_reading_gives_way_every_few_records_on_a_thread_asked_to_and_only_there(
        tmp_path: Path) -> None:
    """Validation beside the archiver waits at these steps while the archiver's loop copies."""
    import threading

    from queue_admin_gui.core.archive import pace

    segment, records = written(tmp_path, 3 * pace.STEP_EVERY + 5)
    waits: list[str] = []

    def read_on_another_thread() -> None:
        assert len(list(iter_records(segment))) == len(records)

    with pace.giving_way(lambda: waits.append(threading.current_thread().name)):
        assert list(iter_records(segment)) == records
        other = threading.Thread(target=read_on_another_thread, name="other")
        other.start()
        other.join()
    assert waits == [threading.current_thread().name] * 3
    assert list(iter_records(segment)) == records and len(waits) == 3  # asked no more
