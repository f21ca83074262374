"""Level files bring every instant near, and never change what a rebuild makes.

A real archive is made by a committer process with small frame logs; compaction runs while
the archiver is still writing and again after more commits, with stretches of a few
transactions, so a generation holds many level files. Instants before, at and inside the
stretches (and after the replay image) are rebuilt twice, with the level files and from the
snapshot alone: the two files must be identical byte for byte and hold a state the queue
was in. A damaged level file, a level file of another generation and a compaction killed
mid-way cost time (and are reported), never an instant.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
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

from queue_admin_gui.core.archive import Archiver, archive_status, images, rebuild_to_time, store
from queue_admin_gui.core.archive.images import IMAGE_RECORD, compact_archive, snapshot_digest
from queue_admin_gui.core.archive.levels import (
    LEVELS_FOLDER,
    Level,
    contiguous,
    read_levels,
)
from queue_admin_gui.core.archive.store import list_generations

pytestmark = pytest.mark.slow
DEADLINE = 60.0
STRETCH = 12


class Made:
    """An archive, its commits, and what each compaction reported."""

    def __init__(self, folder: Path, commits: list[tuple[int, float, float]],
                 results: list[list[images.CompactResult]]) -> None:
        self.folder = folder
        self.commits = commits
        self.results = results


def make_archive(root: Path, seed: str) -> Made:
    db, folder, stop, log = (root / "queue.db", root / "archive", root / "stop",
                             root / "commits.log")
    fill_queue(db, 50, seed)
    results = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "SEGMENT_BYTES", 6_000)  # several frame logs
        patch.setattr(images, "LEVEL_TRANSACTIONS", STRETCH)
        worker = spawn("committer", db, stop, log, 100)
        wait_ready(worker)
        archiver = Archiver(db, folder)
        archiver.start()
        try:
            wait_restorable(archiver)
            wait_for_commits(log, 60)
            results.append(compact_archive(folder))  # archiver writing
            wait_for_commits(log, 60)
            results.append(compact_archive(folder))
            wait_for_commits(log, 40)
        finally:
            archiver.stop()
            stop.touch()
            worker.communicate(timeout=DEADLINE)
    return Made(folder, read_commit_log(log), results)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    return make_archive(tmp_path_factory.mktemp("levels"), "seed")


@pytest.fixture(autouse=True)
def short_stretches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "LEVEL_TRANSACTIONS", STRETCH)


def copied(made: Made, target: Path) -> Path:
    shutil.copytree(made.folder, target)
    return target


def plain_copy(folder: Path, copy: Path) -> Path:
    """The archive without its image and level files: every rebuild replays from the snapshot."""
    shutil.copytree(folder, copy)
    for record in copy.glob(f"*/{IMAGE_RECORD}"):
        record.unlink()
    for levels in copy.glob(f"*/{LEVELS_FOLDER}"):
        shutil.rmtree(levels)
    return copy


def the_levels(folder: Path) -> list[Level]:
    generation = list_generations(folder, check=True)[0]
    levels, problems = read_levels(generation, snapshot_digest(generation))
    run, problem = contiguous(levels, problems)
    assert problem is None and not problems
    return run


def instants_around(run: list[Level], image_seen: float, latest: float) -> list[float]:
    """Each stretch's end, just before it and half-way into the next; the image and after."""
    chosen = []
    for before, level in zip([None, *run], run, strict=False):
        chosen.append(level.state_seen)
        chosen.append(level.state_seen - 0.000001)
        if before is not None:
            chosen.append((before.state_seen + level.state_seen) / 2)
    return sorted({*chosen, image_seen, (image_seen + latest) / 2, latest})


def test_compaction_writes_a_level_per_stretch_and_reports_their_cost(made: Made) -> None:
    first, second = made.results
    assert [r.outcome for r in first] == ["started"]
    assert [r.outcome for r in second] == ["extended"]
    assert first[0].levels_written >= 60 // STRETCH
    assert second[0].level_files == first[0].levels_written + second[0].levels_written
    generation = list_generations(made.folder, check=True)[0]
    run = the_levels(made.folder)
    image, _ = images.read_image(generation)
    assert image is not None
    # Contiguous from the snapshot to the image; the stretches cut every STRETCH
    # transactions and where each run of compaction stopped.
    assert run[0].first == 0 and run[-1].transactions == image.transactions
    assert all(level.transactions - level.first <= STRETCH for level in run)
    assert first[0].transactions in {level.transactions for level in run}
    on_disk = sum(item.stat().st_size for item in (generation.folder / LEVELS_FOLDER).iterdir())
    assert second[0].level_bytes == on_disk > 0
    # Counted in the generation's size, so retention and status see their cost.
    assert generation.size_bytes >= on_disk + (generation.folder / "image.db").stat().st_size


def test_every_instant_rebuilds_identically_with_the_levels(made: Made, tmp_path: Path) -> None:
    folder = made.folder
    plain = plain_copy(folder, tmp_path / "plain")
    run = the_levels(folder)
    image, _ = images.read_image(list_generations(folder, check=True)[0])
    assert image is not None
    status = archive_status(folder)
    assert status.earliest is not None and status.latest is not None
    used = 0
    for number, at in enumerate([status.earliest,
                                 *instants_around(run, image.state_seen, status.latest)]):
        fast = rebuild_to_time(folder, at, tmp_path / f"fast-{number}.db")
        slow = rebuild_to_time(plain, at, tmp_path / f"slow-{number}.db")
        assert slow.from_image is None and slow.from_levels is None
        assert fast.level_problem is None and fast.image_problem is None and fast.check.ok
        whole = [level for level in run if level.state_seen <= at]
        if fast.from_image is None:
            # Every whole stretch before the instant is written from its level file.
            assert fast.levels_used == len(whole)
            assert fast.from_levels == (whole[-1].transactions if whole else None)
            used += fast.levels_used > 0
        else:
            assert at >= image.state_seen
        assert fast.transactions_applied == slow.transactions_applied
        assert fast.path.read_bytes() == slow.path.read_bytes(), f"{at} differs"
        assert_a_state_the_queue_was_in(fast.path, made.commits, at)
        fast.path.unlink()
        slow.path.unlink()
    assert used >= len(run) - 1


def middle_of(run: list[Level]) -> float:
    return run[len(run) // 2].state_seen


def test_a_damaged_level_file_costs_time_never_an_instant(made: Made, tmp_path: Path) -> None:
    folder = copied(made, tmp_path / "archive")
    run = the_levels(folder)
    victim = run[len(run) // 4]
    flip_byte(victim.path, victim.path.stat().st_size // 3)  # one byte of one page
    at = middle_of(run)
    expected = rebuild_to_time(plain_copy(folder, tmp_path / "plain"), at,
                               tmp_path / "expected.db")
    rebuilt = rebuild_to_time(folder, at, tmp_path / "rebuilt.db")
    assert rebuilt.level_problem is not None and victim.path.name in rebuilt.level_problem
    assert "fails its checksum" in rebuilt.level_problem
    # The levels before the damaged one are still used; the rest is replayed.
    assert rebuilt.levels_used == run.index(victim)
    assert rebuilt.path.read_bytes() == expected.path.read_bytes()
    # The next compaction finds the damage and writes the image and every level again.
    [again] = compact_archive(folder)
    assert again.outcome == "started" and again.reason is not None
    fixed = rebuild_to_time(folder, at, tmp_path / "fixed.db")
    assert fixed.level_problem is None and fixed.levels_used >= len(run) // 2
    assert fixed.path.read_bytes() == expected.path.read_bytes()


def test_a_damaged_level_record_costs_time_never_an_instant(made: Made,
                                                            tmp_path: Path) -> None:
    folder = copied(made, tmp_path / "archive")
    run = the_levels(folder)
    victim = run[1].path.with_suffix(".json")
    text = victim.read_bytes()
    flip_byte(victim, text.index(b'"state_seen"') + 16)
    at = middle_of(run)
    expected = rebuild_to_time(plain_copy(folder, tmp_path / "plain"), at,
                               tmp_path / "expected.db")
    rebuilt = rebuild_to_time(folder, at, tmp_path / "rebuilt.db")
    assert rebuilt.levels_used == 1
    assert rebuilt.level_problem is not None and victim.name in rebuilt.level_problem
    assert rebuilt.path.read_bytes() == expected.path.read_bytes()


def test_a_level_file_changed_after_its_check_sends_the_rebuild_to_the_snapshot(
        made: Made, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Damage that slips between the check and the write is still caught, page by page."""
    from queue_admin_gui.core.archive import levels, rebuild

    folder = copied(made, tmp_path / "archive")
    run = the_levels(folder)
    at = middle_of(run)
    expected = rebuild_to_time(plain_copy(folder, tmp_path / "plain"), at,
                               tmp_path / "expected.db")
    checked = levels.check_level_files

    def check_then_damage(chosen, cancelled, action):
        result = checked(chosen, cancelled, action)
        victim = chosen[-1].path
        flip_byte(victim, victim.stat().st_size // 3)  # inside a page
        return result

    monkeypatch.setattr(rebuild, "check_level_files", check_then_damage)
    rebuilt = rebuild_to_time(folder, at, tmp_path / "rebuilt.db")
    assert rebuilt.levels_used == 0 and rebuilt.from_levels is None
    assert rebuilt.level_problem is not None and "checksum" in rebuilt.level_problem
    assert rebuilt.path.read_bytes() == expected.path.read_bytes()


def test_level_files_of_another_generation_are_not_used(made: Made, tmp_path: Path) -> None:
    (tmp_path / "other-root").mkdir()
    other = make_archive(tmp_path / "other-root", "other seed")
    folder = copied(made, tmp_path / "archive")
    at = middle_of(the_levels(folder))
    expected = rebuild_to_time(plain_copy(folder, tmp_path / "plain"), at,
                               tmp_path / "expected.db")
    [ours] = list(folder.glob(f"*/{LEVELS_FOLDER}"))
    [theirs] = list(other.folder.glob(f"*/{LEVELS_FOLDER}"))
    shutil.rmtree(ours)
    shutil.copytree(theirs, ours)
    rebuilt = rebuild_to_time(folder, at, tmp_path / "rebuilt.db")
    assert rebuilt.levels_used == 0
    assert rebuilt.level_problem is not None and "another generation" in rebuilt.level_problem
    assert rebuilt.path.read_bytes() == expected.path.read_bytes()
    # Compaction replaces them with the generation's own.
    [again] = compact_archive(folder)
    assert again.outcome == "started"
    assert rebuild_to_time(folder, at, tmp_path / "again.db").levels_used > 0


KILLED_COMPACTION = """
import sys, time
from pathlib import Path
from queue_admin_gui.core.archive import images, levels
folder, ready = Path(sys.argv[1]), Path(sys.argv[2])
images.LEVEL_TRANSACTIONS = {stretch}
written = levels.write_level

def slowly(*args, **kwargs):
    size = written(*args, **kwargs)
    ready.write_text(str(int(ready.read_text() or 0) + 1) if ready.exists() else "1")
    time.sleep(0.3)
    return size

images.write_level = slowly
images.compact_archive(folder)
"""


def test_a_compaction_killed_mid_way_leaves_nothing_used_wrongly(made: Made,
                                                                 tmp_path: Path) -> None:
    folder = copied(made, tmp_path / "archive")
    plain = plain_copy(folder, tmp_path / "plain")
    for record in folder.glob(f"*/{IMAGE_RECORD}"):
        record.unlink()  # the compaction starts again from the snapshot
    ready = tmp_path / "levels-written"
    child = subprocess.Popen([sys.executable, "-c", KILLED_COMPACTION.format(stretch=STRETCH),
                              str(folder), str(ready)], env={**os.environ,
                                                             "PYTHONPATH": str(Path.cwd())})
    deadline = time.monotonic() + DEADLINE
    while not (ready.exists() and int(ready.read_text() or 0) >= 3):
        assert child.poll() is None, "the compaction ended before it was killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=DEADLINE)
    generation = list_generations(folder, check=True)[0]
    assert not (generation.folder / IMAGE_RECORD).exists()
    # A .pages file whose record was never written (the kill came between the two).
    (generation.folder / LEVELS_FOLDER / "level-0000000900-0000000912.pages").write_bytes(
        b"QALV" + bytes(100))
    status = archive_status(folder)
    assert status.earliest is not None and status.latest is not None
    run = the_levels(folder)
    assert len(run) >= 3
    for number, at in enumerate([run[1].state_seen, run[-1].state_seen + 0.1, status.latest]):
        rebuilt = rebuild_to_time(folder, at, tmp_path / f"rebuilt-{number}.db")
        expected = rebuild_to_time(plain, at, tmp_path / f"expected-{number}.db")
        assert rebuilt.from_image is None and rebuilt.level_problem is None
        assert rebuilt.levels_used >= 2
        assert rebuilt.path.read_bytes() == expected.path.read_bytes()
    [again] = compact_archive(folder)
    assert again.outcome == "started"
    assert not (generation.folder / LEVELS_FOLDER / "level-0000000900-0000000912.pages").exists()
    json.loads((generation.folder / IMAGE_RECORD).read_text(encoding="utf-8"))
