"""Outside attacks on the page proof, the snapshot hashed ahead and the level files.

Three claims are held to account. The restore's page proof never says every page equals
the checked backup's while the restored database's committed state differs from it (a
worker's commit still in the log behind a reader, a reader letting go mid-wait, outside
TRUNCATE checkpoints every few milliseconds). A snapshot changed between the restore's
hash ahead of the lock and the check under it is never trusted (replaced by a file of the
same size and modification time, truncated and grown again in place, changed right after
it was hashed). A rebuilt instant is exact whatever the level files hold (two levels'
files swapped, a middle level deleted, a record claiming more transactions, compactions
killed at random moments or run two at once); a record forged with a recomputed checksum
is the one way found to make a rebuild wrong.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prismq import make_prismq_queue, prismq_connect
from rescue_scenario import copy_of, task_rows
from sqlite_view import sqlite_view
from test_archive_integrity import assert_a_state_the_queue_was_in
from test_archive_levels import (
    Made,
    instants_around,
    make_archive,
    plain_copy,
    the_levels,
)
from test_prismq_restore import PROJECT_ROOT
from test_safety_copy_attacks import (
    OnRequest,
    archiving,
    assert_snapshot_refused,
    checkpoint_storm,
    more_work,
    start_cli_archiver,
    wait_for,
    working,
)

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.archive import archive_status, images, rebuild_to_time
from queue_admin_gui.core.archive.images import IMAGE_RECORD, compact_archive
from queue_admin_gui.core.archive.levels import LEVELS_FOLDER, Level
from queue_admin_gui.core.archive.safety_point import hash_snapshot_ahead
from queue_admin_gui.core.archive.store import (
    CHECKSUM_KEY,
    ArchiveError,
    json_checksum,
    list_generations,
)
from queue_admin_gui.core.restore.gate import ALL_WORKERS
from queue_admin_gui.core.restore.page_proof import prove_pages_equal

DEADLINE = 60.0
STRETCH = 12


# -- 1. the page proof -------------------------------------------------------------------------

def staged_and_restored(tmp_path: Path) -> tuple[Path, Path]:
    """A closed staged copy (no log) and a WAL database holding exactly its pages."""
    staged = make_prismq_queue(tmp_path / "staged.db", tasks=400)
    with sqlite3.connect(staged) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    target = tmp_path / "restored.db"
    source = sqlite3.connect(staged)
    destination = prismq_connect(target)
    source.backup(destination)
    source.close()
    destination.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    destination.close()
    assert not (tmp_path / "staged.db-wal").exists() or \
        (tmp_path / "staged.db-wal").stat().st_size == 0
    assert prove_pages_equal(staged, target, wait_seconds=2) is None  # the honest case
    return staged, target


def commit_difference(target: Path, value: str) -> None:
    connection = prismq_connect(target)
    with connection:
        connection.execute("UPDATE task_queue SET status = ? WHERE id = 7", (value,))
    connection.close()


def holding_old_snapshot(target: Path) -> sqlite3.Connection:
    """A reader whose snapshot began before the next commit (the WAL frames stay out)."""
    reader = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM task_queue").fetchone()
    return reader


def test_a_commit_kept_out_of_the_file_by_a_reader_is_never_proven_equal(
        tmp_path: Path) -> None:
    staged, target = staged_and_restored(tmp_path)
    reader = holding_old_snapshot(target)
    try:
        commit_difference(target, "failed")  # in the log only: the file still equals
        assert target.read_bytes()[100:] == staged.read_bytes()[100:]
        unproven = prove_pages_equal(staged, target, wait_seconds=0.3)
    finally:
        reader.close()
    assert unproven is not None and "differs" in unproven  # read from the log


def test_a_reader_letting_go_mid_wait_under_outside_truncates_is_never_proven_equal(
        tmp_path: Path) -> None:
    staged, target = staged_and_restored(tmp_path)
    reader = holding_old_snapshot(target)
    commit_difference(target, "failed")
    stop = threading.Event()
    truncates = [0]

    def truncating() -> None:
        outside = sqlite3.connect(target, isolation_level=None, timeout=0)
        while not stop.is_set():
            try:
                outside.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                truncates[0] += 1
            except sqlite3.OperationalError:
                pass
            stop.wait(0.003)
        outside.close()

    letting_go = threading.Timer(0.25, reader.close)
    checkpointer = threading.Thread(target=truncating)
    checkpointer.start()
    letting_go.start()
    try:
        unproven = prove_pages_equal(staged, target, wait_seconds=3)
    finally:
        stop.set()
        checkpointer.join()
        letting_go.join()
    assert truncates[0] > 0
    assert unproven is not None
    assert "differs" in unproven or "reader" in unproven or "changed" in unproven


def test_a_worker_committing_throughout_is_never_proven_equal(tmp_path: Path) -> None:
    """Every proof starts after the first differing commit: none may pass, with or without
    another program's TRUNCATE checkpoints resetting the log during the comparisons."""
    staged, target = staged_and_restored(tmp_path)
    commit_difference(target, "failed")
    stop = threading.Event()
    commits = [0]

    def working() -> None:
        connection = prismq_connect(target)
        while not stop.is_set():
            with connection:
                connection.execute("UPDATE task_queue SET attempts = attempts + 1 "
                                   "WHERE id = ?", (commits[0] % 400 + 1,))
            commits[0] += 1
            if commits[0] % 5 == 0:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        connection.close()

    worker = threading.Thread(target=working)
    worker.start()
    try:
        results = [prove_pages_equal(staged, target, wait_seconds=0.2) for _ in range(10)]
        with checkpoint_storm(target):  # the log reset by another program meanwhile
            results += [prove_pages_equal(staged, target, wait_seconds=0.2) for _ in range(10)]
    finally:
        stop.set()
        worker.join()
    assert commits[0] > 0
    assert None not in results, results


def test_an_outside_checkpoint_running_does_not_give_the_proof_up(tmp_path: Path) -> None:
    """Another program's TRUNCATE checkpoints every 3 ms: a passive checkpoint then often
    answers busy (-1 frames). That is no reason to give the proof up for the integrity
    check, nor to say the log "cannot be checkpointed"."""
    staged, target = staged_and_restored(tmp_path)
    with checkpoint_storm(target):
        results = []
        for _ in range(10):
            connection = prismq_connect(target)
            with connection:  # the same bytes written again: frames in the log, no change
                connection.execute("UPDATE task_queue SET status = status WHERE id = 7")
            connection.close()
            results.append(prove_pages_equal(staged, target, wait_seconds=5))
    assert results == [None] * 10, results


@pytest.mark.slow
def test_a_real_restore_under_the_archiver_and_a_worker_says_equal_only_when_it_is(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The proof is watched from inside: when it passes, the database it compared (the file
    and its log, as SQLite reads them) is compared again with the staged copy; the restored
    queue holds the backup's tasks."""
    import queue_admin_gui.core.restore.execute as execute

    live, folder, backup = changed_queue
    real = execute.prove_pages_equal
    seen: list[tuple[str | None, bytes, bytes]] = []

    def proving(source: Path, target: Path, *args: object, **kwargs: object) -> str | None:
        result = real(source, target, *args, **kwargs)
        seen.append((result, Path(source).read_bytes()[100:], sqlite_view(target)[100:]))
        return result

    monkeypatch.setattr(execute, "prove_pages_equal", proving)
    with archiving(live, tmp_path / "archive"):
        result = QueueBackup(live, folder).restore_backup(backup)
    assert len(seen) == 1
    unproven, source, target = seen[0]
    if unproven is None:
        assert result.result_check == execute.PROVEN_EQUAL
        assert source == target
    else:
        assert result.result_check != execute.PROVEN_EQUAL
    assert task_rows(live) == task_rows(backup) and result.check.ok


@pytest.mark.slow
def test_a_restore_proven_equal_under_a_cli_archiver_a_worker_and_truncates_holds_the_backup(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A PrismQ worker (accepted) commits right after the restore's commit, another program
    runs TRUNCATE checkpoints every 3 ms and ``queue-admin-cli archive`` reads throughout:
    whatever the proof says, every task the worker did not touch is the staged copy's."""
    import queue_admin_gui.core.restore.execute as execute

    live, folder, backup = changed_queue
    real = execute.prove_pages_equal
    staged = tmp_path / "staged-copy.db"
    seen: list[str | None] = []

    def proving(source: Path, target: Path, *args: object, **kwargs: object) -> str | None:
        shutil.copyfile(source, staged)  # closed, its log folded in: the checked pages
        seen.append(real(source, target, *args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(execute, "prove_pages_equal", proving)
    archiver = start_cli_archiver(live, tmp_path / "archive")
    try:
        with working(live, tmp_path / "worker.log") as worker, checkpoint_storm(live) as done:
            result = QueueBackup(live, folder).restore_backup(
                backup, accepted_workers=ALL_WORKERS)
            more_work(worker, 10)
        assert worker.errors() == [] and done[0] >= 50
    finally:
        archiver.send_signal(signal.SIGTERM)
        archiver.wait(timeout=DEADLINE)
    assert len(seen) == 1
    assert (result.result_check == execute.PROVEN_EQUAL) == (seen[0] is None)
    assert result.check.ok
    touched = set(worker.executed())
    expected = {task_id: row for task_id, row in task_rows(staged).items()
                if task_id not in touched}
    restored = task_rows(live)
    assert {task_id: restored.get(task_id) for task_id in expected} == expected
    assert set(task_rows(backup)) <= set(expected) | touched


# -- 2. the snapshot hashed ahead of the lock ------------------------------------------------

def replace_same_size_and_time(snapshot: Path) -> None:
    """Another file of the same size and modification time put in the snapshot's place."""
    info = snapshot.stat()
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0x04
    other = snapshot.with_name(snapshot.name + ".other")
    other.write_bytes(bytes(data))
    os.utime(other, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.replace(other, snapshot)


def truncate_and_regrow(snapshot: Path) -> None:
    """The same inode emptied and written again, one bit changed, its time put back."""
    info = snapshot.stat()
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 3] ^= 0x10
    with open(snapshot, "r+b") as handle:
        handle.truncate(0)
        handle.flush()
        os.fsync(handle.fileno())
        handle.write(bytes(data))
    os.utime(snapshot, ns=(info.st_atime_ns, info.st_mtime_ns))


@pytest.mark.parametrize("change", [replace_same_size_and_time, truncate_and_regrow])
def test_a_snapshot_changed_between_the_hash_and_the_lock_is_never_trusted(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path, change) -> None:
    live, folder, backup = changed_queue
    archive = folder / "archive"
    with archiving(live, archive):
        snapshot = next(archive.glob("gen-*/snapshot/*.db"))
        before = copy_of(live, tmp_path / "before.db")
        changing = OnRequest(archive, lambda: change(snapshot))
        result = QueueBackup(live, folder).restore_backup(backup, archive_safety=archive)
        changing.stop()
    assert changing.error is None and changing.done.is_set()
    assert_snapshot_refused(result, before, live, backup)


def test_a_change_right_after_the_hash_never_keeps_the_files_identity(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Changed within microseconds of its hash (a timestamp tick), in place or replaced,
    with its modification time put back: the digest hashed ahead no longer stands."""
    live, folder, _ = changed_queue
    archive = folder / "archive"
    with archiving(live, archive):
        wait_for(lambda: list(archive.glob("gen-*/snapshot/*.db")), "a snapshot")
    snapshot = next(archive.glob("gen-*/snapshot/*.db"))
    for attempt in range(60):
        known = hash_snapshot_ahead(archive)
        assert known is not None and known.still_valid(snapshot)
        (replace_same_size_and_time if attempt % 2 else truncate_and_regrow)(snapshot)
        assert not known.still_valid(snapshot), f"attempt {attempt}: identity unchanged"


def test_a_new_generation_between_the_hash_and_the_lock_is_hashed_again(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The digest of the older generation's snapshot stands for no other file."""
    live, folder, _ = changed_queue
    archive = folder / "archive"
    with archiving(live, archive):
        pass
    known = hash_snapshot_ahead(archive)
    assert known is not None
    with archiving(live, archive):  # a new archiver run: a new generation
        wait_for(lambda: len(list(archive.glob("gen-*/snapshot/*.db"))) >= 2,
                 "a second generation")
    newest = list_generations(archive, scan=False)[-1].snapshot
    assert newest is not None and newest != known.path
    assert not known.still_valid(newest)


# -- 3. level files ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    return make_archive(tmp_path_factory.mktemp("outside-levels"), "outside seed")


@pytest.fixture(autouse=True)
def short_stretches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "LEVEL_TRANSACTIONS", STRETCH)


def record_of(level: Level) -> Path:
    return level.path.with_suffix(".json")


_REBUILDS = itertools.count()


def copies_of(made: Made, tmp_path: Path) -> tuple[Path, Path]:
    """The made archive copied whole (to attack) and without its image and level files (the
    yardstick: every rebuild from it replays from the snapshot)."""
    folder = tmp_path / "archive"
    shutil.copytree(made.folder, folder)
    return folder, plain_copy(made.folder, tmp_path / "plain")


def rebuilds_match(folder: Path, plain: Path, instants: list[float], tmp_path: Path,
                   commits: list[tuple[int, float, float]] | None = None) -> list[object]:
    """Each instant rebuilt from ``folder`` is byte for byte the snapshot-only rebuild."""
    results = []
    for at in instants:
        number = next(_REBUILDS)
        fast = rebuild_to_time(folder, at, tmp_path / f"fast-{number}.db")
        slow = rebuild_to_time(plain, at, tmp_path / f"slow-{number}.db")
        assert slow.from_levels is None and slow.check.ok
        assert fast.path.read_bytes() == slow.path.read_bytes(), f"instant {at} differs"
        if commits is not None:
            assert_a_state_the_queue_was_in(fast.path, commits, at)
        results.append(fast)
        fast.path.unlink()
        slow.path.unlink()
    return results


def swap_files(one: Path, two: Path) -> None:
    """Give each of two files the other's name."""
    swap = one.with_name("swap")
    os.replace(one, swap)
    os.replace(two, one)
    os.replace(swap, two)


@pytest.mark.slow
def test_two_levels_pages_swapped_cost_time_never_an_instant(made: Made,
                                                             tmp_path: Path) -> None:
    folder, plain = copies_of(made, tmp_path)
    run = the_levels(folder)
    first, second = run[1], run[2]
    swap_files(first.path, second.path)
    [fast] = rebuilds_match(folder, plain, [run[3].state_seen], tmp_path)
    assert fast.level_problem is not None and first.path.name in fast.level_problem
    assert fast.levels_used == 1


@pytest.mark.slow
def test_two_levels_files_and_records_swapped_cost_time_never_an_instant(
        made: Made, tmp_path: Path) -> None:
    folder, plain = copies_of(made, tmp_path)
    run = the_levels(folder)
    first, second = run[1], run[2]
    for suffix in (".pages", ".json"):
        swap_files(first.path.with_suffix(suffix), second.path.with_suffix(suffix))
    [fast] = rebuilds_match(folder, plain, [run[3].state_seen], tmp_path)
    assert fast.level_problem is not None and fast.levels_used == 1


@pytest.mark.slow
def test_a_deleted_middle_level_costs_time_never_an_instant(made: Made,
                                                            tmp_path: Path) -> None:
    folder, plain = copies_of(made, tmp_path)
    run = the_levels(folder)
    middle = run[len(run) // 2]
    middle.path.unlink()
    record_of(middle).unlink()
    later = [run[len(run) // 2 + 1].state_seen, middle.state_seen]
    fast = rebuilds_match(folder, plain, later, tmp_path)
    by_levels = [result for result in fast if result.from_image is None]
    assert by_levels, [(r.from_image, r.levels_used) for r in fast]
    for result in by_levels:  # the levels before the missing one, then replay
        assert result.levels_used == len(run) // 2
        assert "missing" in (result.level_problem or ""), result.level_problem


@pytest.mark.slow
def test_a_record_claiming_more_transactions_costs_time_never_an_instant(
        made: Made, tmp_path: Path) -> None:
    folder, plain = copies_of(made, tmp_path)
    run = the_levels(folder)
    victim = record_of(run[1])
    data = json.loads(victim.read_text(encoding="utf-8"))
    data["transactions"] = run[2].transactions
    data["state_seen"] = run[2].state_seen
    victim.write_text(json.dumps(data), encoding="utf-8")  # its checksum not redone
    [fast] = rebuilds_match(folder, plain, [run[3].state_seen], tmp_path)
    assert fast.levels_used == 1 and "checksum" in (fast.level_problem or "")


@pytest.mark.slow
def test_a_forged_record_with_a_recomputed_checksum_costs_time_not_the_instant(
        made: Made, tmp_path: Path) -> None:
    """A level record edited to claim the next stretch's end (fields copied from that
    stretch's record, its unkeyed checksum recomputed, files renamed) passes every check, so
    the rebuild uses it, and its pages lack that stretch's. The rebuild must then be done
    again from the snapshot and every record, and say why."""
    folder, plain = copies_of(made, tmp_path)
    run = the_levels(folder)
    short, covered = run[1], run[2]
    data = json.loads(record_of(short).read_text(encoding="utf-8"))
    theirs = json.loads(record_of(covered).read_text(encoding="utf-8"))
    for key in ("transactions", "state_seen", "last_stamp", "segment", "offset",
                "segment_crc", "sealed", "chain", "database_pages"):
        data[key] = theirs[key]
    data[CHECKSUM_KEY] = json_checksum(data)
    for suffix in (".pages", ".json"):
        covered.path.with_suffix(suffix).unlink()
    forged = covered.path.with_name(
        short.path.name.replace(f"-{short.transactions:010d}", f"-{covered.transactions:010d}"))
    assert forged != short.path and forged.name.endswith(".pages")
    os.replace(short.path, forged)
    record_of(short).unlink()
    forged.with_suffix(".json").write_text(json.dumps(data), encoding="utf-8")
    [fast] = rebuilds_match(folder, plain, [run[3].state_seen], tmp_path)
    # Found either as a record after the levels that does not expand over their pages, or
    # as a result that fails the full check: either way, replayed from the snapshot.
    assert "rebuilt from the snapshot and every record instead" in (fast.level_problem or "")
    assert fast.levels_used == 0 and fast.from_levels is None


KILLABLE_COMPACTION = """
import sys
from pathlib import Path
from queue_admin_gui.core.archive import images
images.LEVEL_TRANSACTIONS = {stretch}
Path(sys.argv[2]).write_text("started")
images.compact_archive(Path(sys.argv[1]))
"""


def compaction(folder: Path, started: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", KILLABLE_COMPACTION.format(stretch=STRETCH), str(folder),
         str(started)], env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def from_the_snapshot(folder: Path) -> None:
    """The next compaction starts again from the snapshot: no image, no level."""
    for record in folder.glob(f"*/{IMAGE_RECORD}"):
        record.unlink()
    for levels in folder.glob(f"*/{LEVELS_FOLDER}"):
        shutil.rmtree(levels)


def instants_of(made: Made, folder: Path) -> list[float]:
    status = archive_status(folder)
    assert status.earliest is not None and status.latest is not None
    stamps = [seen for _, _, seen in made.commits if status.earliest <= seen <= status.latest]
    chosen = random.Random(7).sample(stamps, min(6, len(stamps)))
    return sorted({status.earliest, status.latest, *chosen})


@pytest.mark.slow
def test_compactions_killed_at_random_moments_never_cost_an_instant(made: Made,
                                                                    tmp_path: Path) -> None:
    folder, plain = copies_of(made, tmp_path)
    from_the_snapshot(folder)
    # How long a whole compaction runs once started: the kills fall at random inside it.
    scratch = tmp_path / "scratch"
    shutil.copytree(folder, scratch)
    started = tmp_path / "started-scratch"
    child = compaction(scratch, started)
    wait_for(lambda: started.exists() or child.poll() is not None, "the compaction to start")
    began = time.monotonic()
    child.communicate(timeout=DEADLINE)
    whole = time.monotonic() - began
    assert child.returncode == 0
    chance = random.Random(2026)
    killed = 0
    instants = instants_of(made, folder)
    for kill in range(5):
        started = tmp_path / f"started-{kill}"
        child = compaction(folder, started)
        wait_for(lambda: started.exists() or child.poll() is not None,  # noqa: B023
                 "the compaction to start")
        if child.poll() is None:
            threading.Event().wait(chance.uniform(0.0, whole))
            child.send_signal(signal.SIGKILL)
        child.communicate(timeout=DEADLINE)
        killed += child.returncode == -signal.SIGKILL
        if kill % 2:
            from_the_snapshot(folder)  # the next one starts over, over what was left
        rebuilds_match(folder, plain, instants[kill::3], tmp_path, made.commits)
    assert killed >= 2, f"only {killed} compactions were killed mid-way ({whole:.2f} s each)"
    # and once a compaction is let finish
    [again] = compact_archive(folder)
    assert again.outcome in {"started", "extended", "up to date"}, again.outcome
    results = rebuilds_match(folder, plain, instants, tmp_path, made.commits)
    assert any(result.levels_used or result.from_image for result in results)


@pytest.mark.slow
def test_two_compactions_at_once_never_cost_an_instant(made: Made, tmp_path: Path) -> None:
    folder, plain = copies_of(made, tmp_path)
    for round_ in range(2):
        from_the_snapshot(folder)
        children = [compaction(folder, tmp_path / f"started-{round_}-{n}") for n in range(2)]
        for child in children:
            child.communicate(timeout=DEADLINE)
    generation = list_generations(folder, check=True)[0]
    instants = instants_of(made, folder)
    run = the_levels(folder) if (generation.folder / LEVELS_FOLDER).exists() else []
    if run:
        image, _ = images.read_image(generation)
        if image is not None:
            instants = sorted({*instants, *instants_around(run, image.state_seen,
                                                           instants[-1])})[:12]
    results = rebuilds_match(folder, plain, instants, tmp_path, made.commits)
    assert all(result.check.ok for result in results)


TAKES_THE_STALE_LOCK = """
import sys, time
from pathlib import Path
from queue_admin_gui.core.archive import images
images.LEVEL_TRANSACTIONS = {stretch}
folder, flags = Path(sys.argv[1]), Path(sys.argv[2])
written = images.write_level

def once_the_other_copied(*args, **kwargs):
    # Its first stretch is applied to the image; the other compaction takes the lock now.
    if not (flags / "first-mid-way").exists():
        (flags / "first-mid-way").touch()
        deadline = time.monotonic() + 30
        while not ((flags / "second-copied").exists() or (flags / "second-refused").exists()
                   ) and time.monotonic() < deadline:
            time.sleep(0.01)
    return written(*args, **kwargs)

images.write_level = once_the_other_copied
print([result.outcome for result in images.compact_archive(folder)])
"""

ALSO_TAKES_THE_STALE_LOCK = """
import sys, threading, time
from pathlib import Path
from queue_admin_gui.core.archive import images
images.LEVEL_TRANSACTIONS = {stretch}
folder, flags = Path(sys.argv[1]), Path(sys.argv[2])
alive, copied = images.process_alive, images.copy_verified

def descheduled_after_finding_the_owner_dead(pid):
    # This process found the stale lock's owner dead, then lost the processor until the
    # other compaction had taken the stale lock over and begun.
    result = alive(pid)
    if not result:
        (flags / "second-found-the-owner-dead").touch()
        deadline = time.monotonic() + 30
        while not (flags / "first-mid-way").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return result

def copy_then_stall(*args, **kwargs):
    result = copied(*args, **kwargs)
    (flags / "second-copied").touch()
    threading.Event().wait(60)  # stalls (killed by the test)
    return result

images.process_alive = descheduled_after_finding_the_owner_dead
images.copy_verified = copy_then_stall
try:
    images.compact_archive(folder)
except images.ArchiveError as error:
    if "another compaction" in str(error):
        (flags / "second-refused").touch()
    raise
"""


@pytest.mark.slow
def test_two_compactions_taking_over_one_stale_lock_never_cost_an_instant(
        made: Made, tmp_path: Path) -> None:
    folder, plain = copies_of(made, tmp_path)
    from_the_snapshot(folder)
    generation = list_generations(folder, check=True)[0]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # A compaction that died (SIGKILL) left its lock behind.
    (generation.folder / "image.lock").write_text(
        json.dumps({"pid": dead.pid, "host": socket.gethostname()}), encoding="utf-8")
    flags = tmp_path / "flags"
    flags.mkdir()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    second = subprocess.Popen(
        [sys.executable, "-c", ALSO_TAKES_THE_STALE_LOCK.format(stretch=STRETCH),
         str(folder), str(flags)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: (flags / "second-found-the-owner-dead").exists() or
             second.poll() is not None, "the second compaction to find the owner dead")
    first = subprocess.Popen(
        [sys.executable, "-c", TAKES_THE_STALE_LOCK.format(stretch=STRETCH),
         str(folder), str(flags)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        out, err = first.communicate(timeout=DEADLINE)
    finally:
        second.kill()
        second.communicate(timeout=DEADLINE)
    assert first.returncode == 0, err[-2000:]
    assert (flags / "first-mid-way").exists()
    # The second found the same dead owner, but the first had taken the lock over by then:
    # the second must be refused, never copy over the first's image.
    assert (flags / "second-refused").exists()
    assert not (flags / "second-copied").exists()
    rebuilds_match(folder, plain, instants_of(made, folder), tmp_path, made.commits)


PAUSED_COMPACTION = """
import sys, time
from pathlib import Path
from queue_admin_gui.core.archive import images
images.LEVEL_TRANSACTIONS = {stretch}
folder, flags = Path(sys.argv[1]), Path(sys.argv[2])
written = images.write_level

def paused(*args, **kwargs):
    (flags / "mid-way").touch()
    deadline = time.monotonic() + 30
    while not (flags / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return written(*args, **kwargs)

images.write_level = paused
print([result.outcome for result in images.compact_archive(folder)])
"""


@pytest.mark.slow
def test_a_long_compaction_alive_on_this_host_keeps_its_lock(made: Made,
                                                             tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    shutil.copytree(made.folder, folder)
    from_the_snapshot(folder)
    generation = list_generations(folder, check=True)[0]
    flags = tmp_path / "flags"
    flags.mkdir()
    running = subprocess.Popen(
        [sys.executable, "-c", PAUSED_COMPACTION.format(stretch=STRETCH), str(folder),
         str(flags)], env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (flags / "mid-way").exists() or running.poll() is not None,
                 "the first compaction to be mid-way")
        assert running.poll() is None
        lock = generation.folder / "image.lock"
        assert json.loads(lock.read_text(encoding="utf-8"))["pid"] == running.pid
        aged = time.time() - 7 * 3600  # a compaction running for seven hours
        os.utime(lock, (aged, aged))
        with pytest.raises(ArchiveError, match="another compaction"):
            compact_archive(folder)
    finally:
        (flags / "go").touch()
        running.communicate(timeout=DEADLINE)


@pytest.mark.slow
def test_rebuilds_while_compactions_start_over_are_exact(made: Made, tmp_path: Path) -> None:
    """Each compaction starts again from the snapshot (the image copied over in place, every
    level removed and written again) while instants are rebuilt beside it, one after
    another: each rebuilt instant is the snapshot-only rebuild's, byte for byte."""
    folder, plain = copies_of(made, tmp_path)
    instants = instants_of(made, folder)
    expected = {}
    for at in instants:
        slow = rebuild_to_time(plain, at, tmp_path / f"expected-{next(_REBUILDS)}.db")
        expected[at] = slow.path.read_bytes()
    rebuilt = beside = 0
    for round_ in range(3):
        from_the_snapshot(folder)
        started = tmp_path / f"started-{round_}"
        child = compaction(folder, started)
        wait_for(lambda: started.exists() or child.poll() is not None,  # noqa: B023
                 "the compaction to start")
        while child.poll() is None or rebuilt < 3 * (round_ + 1):
            beside += child.poll() is None
            at = instants[rebuilt % len(instants)]
            result = rebuild_to_time(folder, at, tmp_path / f"during-{next(_REBUILDS)}.db")
            assert result.path.read_bytes() == expected[at], f"instant {at} differs"
            assert_a_state_the_queue_was_in(result.path, made.commits, at)
            result.path.unlink()
            rebuilt += 1
        out, err = child.communicate(timeout=DEADLINE)
        assert child.returncode == 0, err
    assert beside > 0, "no rebuild ran beside a compaction"


@pytest.mark.slow
def test_a_running_compaction_keeps_its_lock_fresh(made: Made, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A compaction on another computer is told from a dead one only by its lock's age, so a
    running one must keep refreshing it: each time a level is written the lock is set back
    as if untouched for an hour, and by the next level it must be fresh again."""
    folder = tmp_path / "archive"
    shutil.copytree(made.folder, folder)
    from_the_snapshot(folder)
    generation = list_generations(folder, check=True)[0]
    lock = generation.folder / "image.lock"
    monkeypatch.setattr(images, "LEVEL_TRANSACTIONS", STRETCH)
    monkeypatch.setattr(images, "LOCK_REFRESH_SECONDS", 0.0)
    written = images.write_level
    ages: list[float] = []

    def ageing(*args: object, **kwargs: object) -> object:
        ages.append(time.time() - lock.stat().st_mtime)
        aged = time.time() - 2 * images.LOCK_STALE_SECONDS
        os.utime(lock, (aged, aged))
        return written(*args, **kwargs)

    monkeypatch.setattr(images, "write_level", ageing)
    [result] = compact_archive(folder)
    assert result.outcome == "started"
    assert len(ages) >= 2, ages
    assert all(age < images.LOCK_STALE_SECONDS for age in ages[1:]), ages
    assert not lock.exists()
