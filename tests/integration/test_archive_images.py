"""A replay image shortens a rebuild and never changes what it rebuilds.

A real archive is made by a committer process with small frame logs; compaction runs while
the archiver is still writing, and again after more commits. Every probed instant is then
rebuilt twice, from the image and from the snapshot alone: the two files must be identical
byte for byte, and hold a state the queue was in. Damage to an image or its record, or to a
frame log it was built from, makes the rebuild go back to the snapshot (and say why), never
rebuild something else.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest
from archive_workload import read_commit_log, spawn
from queue_workload import fill_queue, wait_ready
from test_archive_integrity import (
    assert_a_state_the_queue_was_in,
    flip_byte,
    wait_for_commits,
    wait_restorable,
)

from queue_admin_gui.core.archive import (
    Archiver,
    archive_status,
    images,
    rebuild_to_time,
    store,
)
from queue_admin_gui.core.archive.images import (
    IMAGE_FILE,
    IMAGE_LOCK,
    IMAGE_RECORD,
    compact_archive,
    read_image,
)
from queue_admin_gui.core.archive.store import ArchiveError, list_generations
from queue_admin_gui.core.backups.manifest import manifest_path_for
from queue_admin_gui.core.errors import ErrorKind
from queue_admin_gui.core.files.durable import write_json_atomically

pytestmark = pytest.mark.slow
DEADLINE = 60.0


class Made:
    """The archive, its commits, and what each compaction reported."""

    def __init__(self, folder: Path, commits: list[tuple[int, float, float]],
                 outcomes: list[list[str]]) -> None:
        self.folder = folder
        self.commits = commits
        self.outcomes = outcomes


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("images")
    db, folder, stop, log = (root / "queue.db", root / "archive", root / "stop",
                             root / "commits.log")
    fill_queue(db, 50, "seed")
    outcomes = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "SEGMENT_BYTES", 6_000)  # several frame logs
        worker = spawn("committer", db, stop, log, 100)
        wait_ready(worker)
        archiver = Archiver(db, folder)
        archiver.start()
        try:
            wait_restorable(archiver)
            wait_for_commits(log, 80)
            outcomes.append([r.outcome for r in compact_archive(folder)])  # archiver writing
            wait_for_commits(log, 80)
            outcomes.append([r.outcome for r in compact_archive(folder)])
            wait_for_commits(log, 40)
        finally:
            archiver.stop()
            stop.touch()
            worker.communicate(timeout=DEADLINE)
    return Made(folder, read_commit_log(log), outcomes)


def without_image(folder: Path, copy: Path) -> Path:
    shutil.copytree(folder, copy)
    for record in copy.glob(f"*/{IMAGE_RECORD}"):
        record.unlink()
    return copy


def probed_instants(folder: Path, *image_stamps: float, count: int = 8) -> list[float]:
    status = archive_status(folder)
    start, end = status.earliest, status.latest
    assert start is not None and end is not None
    chosen = random.Random(5)
    instants = [start + (end - start) * chosen.random() for _ in range(count)]
    return sorted([*instants, *image_stamps, end, start])


def test_compaction_carries_the_image_on_and_says_what_it_did(made: Made) -> None:
    assert made.outcomes[0] == ["started"]
    assert made.outcomes[1] == ["extended"]
    generation = list_generations(made.folder, check=True)[0]
    image, problem = read_image(generation)
    assert problem is None and image is not None
    assert 0 < image.transactions < generation.transactions
    again = compact_archive(made.folder)
    assert [r.outcome for r in again] == ["extended"]
    assert again[0].transactions == list_generations(made.folder, check=True)[0].transactions
    assert [r.outcome for r in compact_archive(made.folder)] == ["up to date"]
    assert not (generation.folder / IMAGE_LOCK).exists()


def test_every_instant_rebuilds_identically_with_and_without_the_image(
        made: Made, tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    shutil.copytree(made.folder, folder)
    compact_archive(folder)
    plain = without_image(folder, tmp_path / "plain")
    image, _ = read_image(list_generations(folder, check=True)[0])
    assert image is not None
    used = 0
    # From the image's last transaction on (its last records may be heartbeats after it).
    for number, at in enumerate(probed_instants(folder, image.state_seen, image.last_stamp)):
        fast = rebuild_to_time(folder, at, tmp_path / f"fast-{number}.db")
        slow = rebuild_to_time(plain, at, tmp_path / f"slow-{number}.db")
        assert slow.from_image is None
        assert (fast.from_image is not None) == (at >= image.state_seen)
        used += fast.from_image is not None
        assert fast.image_problem is None and fast.check.ok
        assert fast.transactions_applied == slow.transactions_applied
        assert fast.path.read_bytes() == slow.path.read_bytes(), f"{at} differs"
        assert_a_state_the_queue_was_in(fast.path, made.commits, at)
    assert used >= 2


def damaged_image(folder: Path) -> None:
    target = next(folder.glob(f"*/{IMAGE_FILE}"))
    flip_byte(target, target.stat().st_size // 2 + 3)


def damaged_record(folder: Path) -> None:
    target = next(folder.glob(f"*/{IMAGE_RECORD}"))
    text = target.read_bytes()
    flip_byte(target, text.index(b'"transactions"') + 16)


def replaced_frame_log(folder: Path) -> None:
    generation = list_generations(folder, check=True)[0]
    image, _ = read_image(generation)
    assert image is not None
    target = generation.folder / image.segment
    flip_byte(target, max(0, image.offset - 10))  # inside what the image was made from


@pytest.mark.parametrize("damage", [damaged_image, damaged_record, replaced_frame_log])
def test_a_damaged_image_costs_time_never_a_wrong_rebuild(made: Made, tmp_path: Path,
                                                          damage) -> None:
    folder = tmp_path / "archive"
    shutil.copytree(made.folder, folder)
    compact_archive(folder)
    plain = without_image(folder, tmp_path / "plain")
    status = archive_status(folder)
    assert status.latest is not None
    damage(folder)
    at = status.latest
    expected = rebuild_to_time(plain, at, tmp_path / "expected.db")
    try:
        rebuilt = rebuild_to_time(folder, at, tmp_path / "rebuilt.db")
    except ArchiveError as error:
        # Damage to a frame log is the archive's own damage: a gap, refused, never rebuilt.
        assert damage is replaced_frame_log and error.kind is ErrorKind.CORRUPT
        return
    assert rebuilt.from_image is None and rebuilt.image_problem
    assert rebuilt.path.read_bytes() == expected.path.read_bytes()
    # The next compaction starts the image again from the snapshot.
    assert [r.outcome for r in compact_archive(folder)] == ["started"]
    again = rebuild_to_time(folder, at, tmp_path / "again.db")
    assert again.from_image is not None
    assert again.path.read_bytes() == expected.path.read_bytes()


def test_an_image_made_from_other_frame_log_bytes_is_not_used(made: Made,
                                                               tmp_path: Path) -> None:
    """A frame log lost its unflushed tail in a crash and went on with other records."""
    folder = tmp_path / "archive"
    shutil.copytree(made.folder, folder)
    compact_archive(folder)
    generation = list_generations(folder, check=True)[0]
    record = generation.folder / IMAGE_RECORD
    data = json.loads(record.read_text(encoding="utf-8"))
    assert data["offset"] > 0
    data["segment_crc"] ^= 1  # as if the image had read other bytes there
    data[store.CHECKSUM_KEY] = store.json_checksum(data)
    write_json_atomically(record, data)
    at = archive_status(folder).latest
    assert at is not None
    rebuilt = rebuild_to_time(folder, at, tmp_path / "rebuilt.db")
    expected = rebuild_to_time(without_image(folder, tmp_path / "plain"), at,
                               tmp_path / "expected.db")
    assert rebuilt.from_image is None
    assert rebuilt.image_problem is not None and "not the one" in rebuilt.image_problem
    assert rebuilt.path.read_bytes() == expected.path.read_bytes()


def test_a_second_compaction_is_refused_while_one_writes(made: Made, tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    shutil.copytree(made.folder, folder)
    generation = list_generations(folder, check=True)[0]
    (generation.folder / IMAGE_LOCK).write_text(
        '{"pid": 1, "host": "another-host"}', encoding="utf-8")
    with pytest.raises(ArchiveError) as refused:
        compact_archive(folder)
    assert refused.value.kind is ErrorKind.ALREADY_EXISTS
    assert "another compaction" in str(refused.value)
    long_ago = time.time() - images.LOCK_STALE_SECONDS - 60
    os.utime(generation.folder / IMAGE_LOCK, (long_ago, long_ago))  # its computer died
    [taken_over] = compact_archive(folder)  # the fixture's image is carried on, not refused
    assert taken_over.outcome in ("extended", "up to date")
    assert not (generation.folder / IMAGE_LOCK).exists()


def snapshot_byte(folder: Path) -> None:
    snapshot = list_generations(folder)[0].snapshot
    assert snapshot is not None
    flip_byte(snapshot, snapshot.stat().st_size // 2 + 7)


def snapshot_manifest_byte(folder: Path) -> None:
    snapshot = list_generations(folder)[0].snapshot
    assert snapshot is not None
    target = manifest_path_for(snapshot)
    flip_byte(target, target.read_bytes().index(b'"sha256"') + 14)


@pytest.mark.parametrize("damage", [snapshot_byte, snapshot_manifest_byte])
def test_an_image_does_not_make_a_damaged_snapshot_restorable(made: Made, tmp_path: Path,
                                                              damage) -> None:
    """The rebuild copies the image while it checks, but offers only what status offers.

    The snapshot is proven beside the rebuild's own work when an image stands for it; its
    damage refuses the rebuild as a full check would, and leaves no file behind.
    """
    folder = tmp_path / "archive"
    shutil.copytree(made.folder, folder)
    compact_archive(folder)
    at = archive_status(folder).latest
    assert at is not None
    assert rebuild_to_time(folder, at, tmp_path / "before.db").from_image is not None
    damage(folder)
    assert archive_status(folder).latest is None  # the damage costs the whole generation
    output = tmp_path / "rebuilt.db"
    with pytest.raises(ArchiveError) as refused:
        rebuild_to_time(folder, at, output)
    assert refused.value.kind is ErrorKind.CORRUPT and "damaged" in str(refused.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "archive", "before.db", "before.manifest.json"]
