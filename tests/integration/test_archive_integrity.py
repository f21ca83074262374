"""Damage in an archive is found, shown as a gap with its reason, and never rebuilt as if whole.

A real archive is made once (a committer process, two generations, frame logs split in small
files), and every instant probed is rebuilt from it as it is: those are the expected states.
Each test then damages a copy (one byte flipped in each kind of file, a file cut short or
deleted) and asks for the same instants: each rebuild is either identical to the expected
state or refused, exactly as ``archive-status`` predicts, and the damage is reported with its
reason and file.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from archive_workload import read_commit_log, spawn, table_rows
from queue_workload import fill_queue, kill_hard, wait_ready

from queue_admin_gui.core.archive import (
    ArchiveError,
    Archiver,
    archive_status,
    instant_text,
    parse_instant,
    rebuild_to_time,
    store,
)
from queue_admin_gui.core.archive.store import list_generations
from queue_admin_gui.core.backups.manifest import manifest_path_for
from queue_admin_gui.core.errors import ErrorKind
from queue_admin_gui.core.files.durable import write_json_atomically

pytestmark = pytest.mark.slow
DEADLINE = 60.0


def wait_for_commits(log: Path, count: int) -> None:
    """Until the committer has logged ``count`` more commits than now."""
    start = len(read_commit_log(log)) if log.exists() else 0
    deadline = time.monotonic() + DEADLINE
    while len(read_commit_log(log)) < start + count:
        assert time.monotonic() < deadline, "the committer stopped committing"
        time.sleep(0.05)


def wait_restorable(archiver: Archiver) -> None:
    deadline = time.monotonic() + DEADLINE
    while archiver.status().generation is None or archiver.status().snapshot_pending:
        assert time.monotonic() < deadline, "no generation became restorable"
        time.sleep(0.05)



def timed_ids(db: Path) -> list[int]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [row[0] for row in connection.execute(
            "SELECT id FROM task_queue WHERE type = 'timed' ORDER BY id")]
    finally:
        connection.close()


class Pristine:
    """The undamaged archive, the commits made, and the state expected at each probed instant."""

    def __init__(self, folder: Path, commits: list[tuple[int, float, float]]) -> None:
        self.folder = folder
        self.commits = commits
        self.expected: dict[float, dict[str, list[tuple]]] = {}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    root = tmp_path_factory.mktemp("pristine")
    db, folder, stop, log = (root / "queue.db", root / "archive", root / "stop",
                             root / "commits.log")
    fill_queue(db, 50, "seed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "SEGMENT_BYTES", 6_000)  # several frame logs per generation
        worker = spawn("committer", db, stop, log, 100)
        wait_ready(worker)
        try:
            for _ in range(2):  # stopped and started again: two generations and a gap
                archiver = Archiver(db, folder)
                archiver.start()
                try:
                    wait_restorable(archiver)
                    wait_for_commits(log, 120)
                finally:
                    archiver.stop()
                wait_for_commits(log, 20)
        finally:
            stop.touch()
            worker.communicate(timeout=DEADLINE)
    made = Pristine(folder, read_commit_log(log))
    status = archive_status(folder)
    assert len(status.generations) == 2 and not status.damage and len(status.gaps) == 1
    for generation in list_generations(folder):
        assert len(generation.segments) >= 3
    for number, summary in enumerate(status.generations):
        start, end = summary.restorable_from, summary.restorable_until
        assert start is not None and end is not None
        for share in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
            at = start + (end - start) * share
            rebuilt = root / f"expected-{number}-{share}.db"
            rebuild_to_time(folder, at, rebuilt)
            assert_a_state_the_queue_was_in(rebuilt, made.commits, at)
            made.expected[at] = table_rows(rebuilt)
    return made


def assert_a_state_the_queue_was_in(rebuilt: Path, commits: list[tuple[int, float, float]],
                                    at: float) -> None:
    """A prefix of the commit order: nothing committed after ``at``, nothing long before missing."""
    ids = timed_ids(rebuilt)
    assert ids == [commit[0] for commit in commits[:len(ids)]]
    held = set(ids)
    for task_id, before, after in commits:
        assert not (before > at and task_id in held)
        assert not (after <= at - 1.0 and task_id not in held)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def _generation(folder: Path, index: int) -> store.Generation:
    return list_generations(folder, check=False)[index]


def frame_log_middle_byte(folder: Path) -> Path:
    segments = _generation(folder, 0).segments
    target = segments[len(segments) // 2]
    flip_byte(target, target.stat().st_size // 2)
    return target


def record_stamp_byte(folder: Path) -> Path:
    target = _generation(folder, 1).segments[1]
    flip_byte(target, 4 + 6)  # inside the first record's stamp: its CRC covers the head
    return target


def frame_log_cut_short(folder: Path) -> Path:
    target = _generation(folder, 0).segments[-1]
    with open(target, "r+b") as handle:
        handle.truncate(target.stat().st_size // 2)
    return target


def frame_log_deleted(folder: Path) -> Path:
    target = _generation(folder, 1).segments[1]
    target.unlink()
    return target


def snapshot_byte(folder: Path) -> Path:
    target = _generation(folder, 1).snapshot
    assert target is not None
    flip_byte(target, target.stat().st_size // 2 + 7)
    return target


def snapshot_deleted(folder: Path) -> Path:
    target = _generation(folder, 0).snapshot
    assert target is not None
    target.unlink()
    return target


def manifest_byte(folder: Path) -> Path:
    snapshot = _generation(folder, 0).snapshot
    assert snapshot is not None
    target = manifest_path_for(snapshot)
    flip_byte(target, target.read_bytes().index(b'"sha256"') + 14)
    return target


def generation_json_byte(folder: Path) -> Path:
    target = _generation(folder, 1).folder / store.GENERATION_FILE
    text = target.read_bytes()
    flip_byte(target, text.index(b'"snapshot_at"') + 20)  # a digit of the snapshot's instant
    return target


DAMAGE: dict[str, Callable[[Path], Path]] = {
    "a flipped byte in the middle of a frame log": frame_log_middle_byte,
    "a flipped byte in a record's stamp": record_stamp_byte,
    "a frame log cut short": frame_log_cut_short,
    "a deleted frame log": frame_log_deleted,
    "a flipped byte in a snapshot": snapshot_byte,
    "a deleted snapshot": snapshot_deleted,
    "a flipped byte in a snapshot's manifest": manifest_byte,
    "a flipped byte in generation.json": generation_json_byte,
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_is_a_gap_and_every_rebuild_is_exact_or_refused(
        pristine: Pristine, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "archive"
    shutil.copytree(pristine.folder, folder)
    damaged = DAMAGE[damage](folder)

    status = archive_status(folder)
    found = [item for item in status.damage if item.kind == "damaged"]
    assert found, f"{damage} was not found"
    assert any(item.file == damaged for item in found), [str(item.file) for item in found]
    assert all(item.reason for item in found)
    assert any(gap.kind == "damaged" and gap.file == str(damaged) for gap in status.gaps)
    spans = [(g.restorable_from, g.restorable_until) for g in status.generations
             if g.restorable_from is not None and g.restorable_until is not None]

    refused = 0
    for number, (at, expected) in enumerate(sorted(pristine.expected.items())):
        output = tmp_path / f"at-{number}.db"
        offered = any(start <= at <= end for start, end in spans)
        try:
            rebuilt = rebuild_to_time(folder, at, output)
        except ArchiveError as error:
            refused += 1
            assert not offered, f"status offered {instant_text(at)} but it was refused: {error}"
            assert error.kind in (ErrorKind.CORRUPT, ErrorKind.INVALID)
            assert not output.exists()
            if error.kind is ErrorKind.CORRUPT:
                assert "damaged" in str(error) and "nearest restorable" in str(error)
            continue
        assert offered, f"{instant_text(at)} was rebuilt though status shows it as a gap"
        assert rebuilt.check.ok
        assert table_rows(output) == expected, f"{instant_text(at)} was rebuilt wrong"
    assert refused > 0, "the damage cost no instant: the test damaged nothing that mattered"


def test_a_damaged_instant_is_refused_with_the_reason_and_the_nearest_intact_instants(
        pristine: Pristine, tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    shutil.copytree(pristine.folder, folder)
    damaged = frame_log_middle_byte(folder)
    status = archive_status(folder)
    gap = next(gap for gap in status.gaps if gap.kind == "damaged")
    first = status.generations[0]
    assert first.restorable_until is not None and first.restorable_until == gap.after
    with pytest.raises(ArchiveError) as refused:
        rebuild_to_time(folder, (gap.after + gap.before) / 2, tmp_path / "in-gap.db")
    message = str(refused.value)
    assert refused.value.kind is ErrorKind.CORRUPT
    assert str(damaged) in message and "nearest restorable instants are" in message
    assert instant_text(gap.after) in message
    # The last intact instant, as printed, rebuilds exactly what the pristine archive held.
    typed = parse_instant(instant_text(gap.after))
    rebuild_to_time(folder, typed, tmp_path / "last-intact.db")
    rebuild_to_time(pristine.folder, typed, tmp_path / "pristine-same.db")
    assert table_rows(tmp_path / "last-intact.db") == table_rows(tmp_path / "pristine-same.db")


def test_an_archive_of_the_previous_format_is_still_read(pristine: Pristine,
                                                         tmp_path: Path) -> None:
    """Format 1: records whose CRC covers the payload only, no checksums in generation.json."""
    folder = tmp_path / "archive"
    shutil.copytree(pristine.folder, folder)
    for generation in list_generations(folder):
        for segment in generation.segments:
            out = bytearray()
            for kind, stamp, payload in store.iter_records(segment):
                out += store.RECORD_HEAD.pack(store.MAGIC_V1, kind, stamp, len(payload),
                                              zlib.crc32(payload)) + payload
            segment.write_bytes(bytes(out))
        data = {key: value for key, value in generation.data.items()
                if key not in ("checksum", "segments", "snapshot_sha256", "manifest_sha256")}
        data["format"] = 1
        write_json_atomically(generation.folder / store.GENERATION_FILE, data)
    status = archive_status(folder)
    assert not status.damage and len(status.generations) == 2
    for number, (at, expected) in enumerate(sorted(pristine.expected.items())):
        rebuild_to_time(folder, at, tmp_path / f"old-{number}.db")
        assert table_rows(tmp_path / f"old-{number}.db") == expected


@pytest.mark.slow
def test_after_a_kill_the_last_instant_as_printed_rebuilds_every_archived_transaction(
        tmp_path: Path) -> None:
    db, folder, stop, log = (tmp_path / "queue.db", tmp_path / "archive", tmp_path / "stop",
                             tmp_path / "commits.log")
    fill_queue(db, 20, "seed")
    worker = spawn("committer", db, stop, log, 200)
    wait_ready(worker)
    child = spawn("archiver", db, folder, 1000)
    wait_ready(child)
    try:
        wait_for_commits(log, 300)
        kill_hard(child)  # mid-stream: its last transactions carry stamps close together
    finally:
        stop.touch()
        worker.communicate(timeout=DEADLINE)
    status = archive_status(folder)
    assert len(status.generations) == 1 and status.latest is not None
    archived = status.generations[0].transactions
    assert archived > 0
    typed = parse_instant(instant_text(status.latest))  # what archive-status printed
    rebuilt = rebuild_to_time(folder, typed, tmp_path / "latest.db")
    assert rebuilt.transactions_applied == archived
    assert_a_state_the_queue_was_in(tmp_path / "latest.db", read_commit_log(log),
                                    status.latest)
    with pytest.raises(ArchiveError, match="after the newest archived instant"):
        rebuild_to_time(folder, status.latest + 0.001, tmp_path / "after.db")
