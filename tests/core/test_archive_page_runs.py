"""Byte runs: pages archived as their changed bytes rebuild exactly, at every instant.

Random transactions edit pages the way SQLite does (a few bytes here and there, a cell
pointer inserted or removed so the pointers after it move by 2 bytes, cells moved, a page
rewritten, a page left as it was); they are encoded as the archiver encodes what it read,
through a small cache of earlier images (pages are forgotten and come back), and replayed
over the starting file up to many instants: each must be exactly the file at that instant.
A damaged run is refused as a damaged archive, never applied; and an archive whose first
generation holds only zlib deltas (as written before byte runs) and whose next holds byte
runs rebuilds exactly in both.
"""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import pytest

from queue_admin_gui.core.archive import Archiver, page_deltas, rebuild_to_time, replay
from queue_admin_gui.core.archive.page_deltas import (
    PageImages,
    apply_runs,
    decode_delta_transaction,
    encode_delta_transactions,
)
from queue_admin_gui.core.archive.rebuild import resolve_instant, transactions_until
from queue_admin_gui.core.archive.store import (
    ArchivedTransaction,
    ArchiveError,
    CyclePosition,
    list_generations,
)
from queue_admin_gui.core.archive.walfile import Frame, Transaction
from queue_admin_gui.core.errors import ErrorKind
from tests.core.test_archive_priority import commit, make_queue, rows, wait_restorable

PAGE = 1024
STARTING_PAGES = 30
RUNS, DELTA = 2, 1


def edited(rng: random.Random, image: bytes) -> bytes:
    """``image`` after one edit of a random kind."""
    size = len(image)
    page = bytearray(image)
    kind = rng.randrange(7)
    if kind == 0:  # a few bytes here and there
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(size)
            page[at:at + rng.randint(1, 24)] = rng.randbytes(rng.randint(1, 24))
    elif kind in (1, 2):  # a cell pointer in or out: the pointers after it move 2 bytes
        at = 8 + 2 * rng.randrange(20)
        end = at + 2 * rng.randint(10, 200)
        pointers = page[at:end]
        moved = (rng.randbytes(2) + pointers[:-2]) if kind == 1 else (pointers[2:] + b"\0\0")
        page[at:end] = moved
        page[0:2] = rng.randbytes(2)  # the count of cells
        tail = size - rng.randint(20, 300)
        page[tail:tail + 12] = rng.randbytes(12)  # the new cell's bytes
    elif kind == 3:  # cells moved within the page
        at, length = rng.randrange(100, 400), rng.randint(100, 500)
        shift = rng.choice((-37, -8, 5, 64))
        page[at + shift:at + shift + length] = image[at:at + length]
    elif kind == 4:
        page = bytearray(rng.randbytes(size))
    elif kind == 5:  # the first and the last byte
        page[0] ^= 0xFF
        page[-1] ^= 0x5A
    return bytes(page[:size].ljust(size, b"\0"))  # edits near the end keep the page's size


def workload(seed: int, page_size: int, count: int
             ) -> tuple[bytes, list[Transaction], list[bytes]]:
    """A starting file, ``count`` transactions over it, and the file after each."""
    rng = random.Random(seed)
    pages = {number: bytes(rng.randrange(4) for _ in range(page_size // 8)) * 8
             for number in range(1, STARTING_PAGES + 1)}
    start = b"".join(pages[number] for number in sorted(pages))
    made: list[Transaction] = []
    states: list[bytes] = []
    for _ in range(count):
        frames = []
        for _ in range(rng.randint(1, 5)):
            number = rng.choice((rng.randint(1, 6), rng.randint(1, STARTING_PAGES + 4)))
            earlier = pages.get(number, bytes(page_size))
            pages[number] = edited(rng, earlier)
            frames.append(Frame(number, 0, pages[number]))
        size = max(pages)
        frames[-1].commit_size = size
        made.append(Transaction(len(made) + 1, frames))
        states.append(b"".join(pages.get(number, bytes(page_size))
                               for number in range(1, size + 1)))
    return start, made, states


def encoded(made: list[Transaction], page_size: int, rng: random.Random
            ) -> list[ArchivedTransaction]:
    """The transactions as the archiver archives them, in reads of random sizes."""
    images = PageImages(limit_bytes=8 * page_size)  # pages are forgotten and come back whole
    payloads: list[bytes] = []
    while len(payloads) < len(made):
        read = made[len(payloads):len(payloads) + rng.randint(1, 25)]
        payloads += encode_delta_transactions(read, (1, 2, 3), page_size, images)
    return [decode_delta_transaction(float(index), payload)
            for index, payload in enumerate(payloads)]


@pytest.mark.parametrize(("seed", "page_size", "count"),
                         [(1, PAGE, 300), (2, PAGE, 300), (3, 512, 300), (4, 65536, 60)])
def test_every_instant_rebuilds_exactly_from_byte_runs(tmp_path: Path, seed: int,
                                                       page_size: int, count: int) -> None:
    rng = random.Random(seed)
    start, made, states = workload(seed, page_size, count)
    records = encoded(made, page_size, rng)
    kinds = [kind for record in records for kind in record.deltas]
    assert {0, DELTA, RUNS} <= set(kinds), "whole pages, zlib deltas and byte runs"
    copies = sum(struct.unpack_from(">IHH", image)[2] for record in records
                 for kind, (_number, image) in zip(record.deltas, record.pages, strict=True)
                 if kind == RUNS)
    assert copies > count // 15, "moved cell pointers are copies"
    instants = sorted(rng.sample(range(1, len(made)), 12) + [len(made)])
    for instant in instants:
        target = tmp_path / f"at-{instant}.db"
        target.write_bytes(start)
        with open(target, "r+b") as handle:
            applied = replay.apply_transactions(handle, page_size, records[:instant], None,
                                                None, "Replaying")
            handle.truncate(applied.page_count * page_size)
        assert target.read_bytes() == states[instant - 1], instant


def one_run_record(earlier: bytes, new: bytes) -> tuple[ArchivedTransaction, bytes]:
    """A transaction of page 2 as byte runs over ``earlier``, and its runs' data."""
    images = PageImages()
    images.swap(2, earlier)
    payload = encode_delta_transactions(
        [Transaction(1, [Frame(2, 2, new)])], (1, 2, 3), PAGE, images)[0]
    record = decode_delta_transaction(1.0, payload)
    assert record.deltas == (RUNS,)
    return record, record.pages[0][1]


def damaged_variants(data: bytes) -> dict[str, bytes]:
    """Runs data for one run, damaged in each way that must be refused."""
    head, table, rest = data[:8], data[8:12], data[12:]
    place, length = struct.unpack("<HH", table)
    return {
        "past the page's end": head + struct.pack("<HH", PAGE - 2, length) + rest,
        "cut short": data[:-1],
        "bytes left over": data + b"!",
        "table cut short": head[:4] + struct.pack(">HH", 3, 0) + table,
        "head cut short": data[:5],
        "a copy past the page's end": (head[:4] + struct.pack(">HH", 1, 1) + table
                                       + struct.pack("<HHH", 0, 15, PAGE - 8) + rest),
        "another earlier image": struct.pack(">I", struct.unpack(">I", head[:4])[0] ^ 1)
        + data[4:],
    }


@pytest.mark.parametrize("damage", list(damaged_variants(bytes(16))))
def test_a_damaged_run_is_refused_as_a_damaged_archive(tmp_path: Path, damage: str) -> None:
    earlier = bytes(range(256)) * (PAGE // 256)
    new = earlier[:100] + b"changed!" + earlier[108:]
    record, data = one_run_record(earlier, new)
    assert apply_runs(earlier, data) == new
    start = bytes(PAGE) + earlier
    target = tmp_path / "replayed.db"
    target.write_bytes(start)
    record.pages[0] = (2, damaged_variants(data)[damage])
    with open(target, "r+b") as handle, pytest.raises(ArchiveError) as raised:
        replay.apply_transactions(handle, PAGE, [record], None, None, "Replaying")
    assert raised.value.kind == ErrorKind.CORRUPT
    assert "damaged" in str(raised.value)
    assert target.read_bytes() == start  # nothing of it was written


def test_a_page_of_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "replayed.db"
    target.write_bytes(bytes(2 * PAGE))
    record = ArchivedTransaction(1.0, CyclePosition(1, 2, 3, 1), 2, PAGE,
                                 [(2, b"\0" * 8)], (7,))
    with open(target, "r+b") as handle, pytest.raises(ArchiveError):
        replay.apply_transactions(handle, PAGE, [record], None, None, "Replaying")


def archived(archive: Path) -> int:
    """The transactions the archive's newest generation holds in its files."""
    generations = list_generations(archive)
    return generations[-1].transactions if generations else 0


def test_zlib_delta_generation_then_byte_runs_generation_rebuild_exactly(
        tmp_path: Path, queue_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A generation archived with zlib deltas only (as before byte runs), then one with byte
    runs: an instant in the middle and the end of each rebuild to exactly the live rows."""
    db = make_queue(queue_db)
    archive = tmp_path / "archive"
    expected: list[tuple[float, list[tuple]]] = []
    for share in (0.0, page_deltas.RUNS_SHARE):
        monkeypatch.setattr(page_deltas, "RUNS_SHARE", share)
        archiver = Archiver(db, archive)
        archiver.start()
        try:
            wait_restorable(archiver)
            base = archived(archive)
            for step in range(1, 3):
                commit(db, 150, start=len(expected) * 150)
                deadline = time.monotonic() + 30
                while archived(archive) < base + 150 * step:  # written, not only read
                    assert time.monotonic() < deadline, "the commits were not archived"
                    time.sleep(0.05)
                expected.append((resolve_instant("latest", archive), rows(db)))
        finally:
            archiver.stop()
    generations = [generation for generation in list_generations(archive)
                   if generation.transactions]
    assert len(generations) == 2
    kinds = [{kind for record in transactions_until(generation, float("inf"))
              for kind in record.deltas} for generation in generations]
    assert RUNS not in kinds[0] and DELTA in kinds[0]
    assert RUNS in kinds[1]
    for index, (instant, live) in enumerate(expected):
        rebuilt = tmp_path / f"rebuilt-{index}.db"
        result = rebuild_to_time(archive, instant, rebuilt, live_path=db)
        assert result.check.ok
        assert rows(rebuilt) == live, index
