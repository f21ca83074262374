"""The archiver under real worker processes: every rebuilt instant is a state the queue was in.

A worker process commits about 100 transactions per second with the writers' settings
(autocheckpoints at 1000 pages), an admin's TRUNCATE checkpoint runs from another process,
and the archiver is killed with SIGKILL and started again. Each rebuilt file must hold
exactly the transactions committed before the instant (a prefix of the commit order, whole
transactions), none committed after it, and none committed more than a second before missing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from archive_workload import checkpoint_now, read_commit_log, spawn, table_rows
from queue_workload import fill_queue, kill_hard, read_line, wait_ready

from queue_admin_gui.core import QueueMaintenance
from queue_admin_gui.core.archive import (
    ArchiveError,
    Archiver,
    archive_status,
    instant_text,
    parse_instant,
    rebuild_to_time,
    store,
    walfile,
)
from queue_admin_gui.core.archive.controller import ArchiveController
from queue_admin_gui.core.archive.wal_index import reader_through_open_descriptor
from queue_admin_gui.core.backups.backup_store import BackupStore
from queue_admin_gui.core.demo.workers import DemoWorkers
from queue_admin_gui.core.errors import ErrorKind

pytestmark = pytest.mark.slow
TOLERANCE_SECONDS = 1.0


def wait_for_commits(log: Path, count: int, timeout: float = 60.0) -> None:
    """Wait until the committer has logged ``count`` more commits than now."""
    start = len(read_commit_log(log)) if log.exists() else 0
    deadline = time.monotonic() + timeout
    while len(read_commit_log(log)) < start + count:
        assert time.monotonic() < deadline, "the committer stopped committing"
        time.sleep(0.05)


def wait_restorable(archiver: Archiver, timeout: float = 60.0) -> None:
    """Until the archiver's current generation has its snapshot written (it is restorable)."""
    deadline = time.monotonic() + timeout
    while archiver.status().generation is None or archiver.status().snapshot_pending:
        assert time.monotonic() < deadline, "no generation became restorable"
        time.sleep(0.05)


def assert_exact_state(rebuilt: Path, commits: list[tuple[int, float, float]],
                       at: float) -> int:
    """The file holds a prefix of the commits, everything clearly before ``at``, nothing after."""
    connection = sqlite3.connect(rebuilt)
    try:
        rows = connection.execute(
            "SELECT t.id, t.payload, count(l.log_id) FROM task_queue t LEFT JOIN task_logs l "
            "ON l.task_id = t.id WHERE t.type = 'timed' GROUP BY t.id ORDER BY t.id").fetchall()
    finally:
        connection.close()
    ids = [row[0] for row in rows]
    order = [commit[0] for commit in commits]
    assert ids == order[:len(ids)], "not a prefix of the commit order"
    assert all(logs == 1 for _, _, logs in rows), "a transaction was split"
    assert [json.loads(payload)["n"] for _, payload, _ in rows] == list(range(len(ids)))
    held = set(ids)
    for task_id, before, after in commits:
        if before > at:
            assert task_id not in held, f"task {task_id} was committed after the instant"
        if after <= at - TOLERANCE_SECONDS:
            assert task_id in held, f"task {task_id}, committed before the instant, is missing"
    return len(ids)


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    db = tmp_path / "queue.db"
    fill_queue(db, 100, "seed")
    return db


@pytest.mark.slow
def test_rebuilt_instants_are_exact_states_across_resets_truncate_and_a_kill(
        queue: Path, tmp_path: Path) -> None:
    folder, stop, log = tmp_path / "archive", tmp_path / "stop", tmp_path / "commits.log"
    worker = spawn("committer", queue, stop, log, 100)
    wait_ready(worker)
    archiver = Archiver(queue, folder)
    archiver.start()
    try:
        wait_for_commits(log, 250)  # several autocheckpoints and archiver resets
        truncate = checkpoint_now(queue, "TRUNCATE")
        wait_for_commits(log, 150)
        second = checkpoint_now(queue, "TRUNCATE")
        wait_for_commits(log, 100)
        followed = archiver.status()
    finally:
        archiver.stop()
    # The admin's checkpoints completed: not busy, the WAL emptied.
    assert truncate["busy"] == 0 and second["busy"] == 0
    assert truncate["log"] == 0 and second["log"] == 0
    # Resets were followed without a new snapshot.
    assert followed.resets_followed >= 3
    assert followed.generations_started == 1 and followed.last_gap is None

    # The archiver is killed hard and started again while the worker goes on.
    child = spawn("archiver", queue, folder, 1000)
    wait_ready(child)
    wait_for_commits(log, 100)
    kill_hard(child)
    wait_for_commits(log, 100)
    restarted = Archiver(queue, folder)  # the dead process's lock is stale
    restarted.start()
    try:
        wait_for_commits(log, 150)
    finally:
        stop.touch()
        worker.communicate(timeout=60)
        restarted.stop()
    assert worker.returncode == 0, "the worker hit an error (a busy error?)"

    status = archive_status(folder)
    assert len(status.generations) == 3
    assert [gap.reason for gap in status.gaps][-1].startswith("the archiver was not running")
    commits = read_commit_log(log)
    spans = [(g.restorable_from, g.restorable_until) for g in status.generations]
    instants = []
    for start, end in spans:
        assert start is not None and end is not None
        instants += [start, start + (end - start) * 0.37, start + (end - start) * 0.81, end]
    held = []
    for number, at in enumerate(instants):
        rebuilt = tmp_path / f"at-{number}.db"
        result = rebuild_to_time(folder, at, rebuilt)
        assert result.check.ok
        held.append(assert_exact_state(rebuilt, commits, at))
    assert held == sorted(held) and held[-1] > held[0]

    gap = status.gaps[-1]
    with pytest.raises(ArchiveError) as refused:
        rebuild_to_time(folder, (gap.after + gap.before) / 2, tmp_path / "gap.db")
    assert refused.value.kind is ErrorKind.INVALID
    assert "falls in a gap" in str(refused.value)
    assert "nearest restorable instants" in str(refused.value)
    assert not (tmp_path / "gap.db").exists()


def test_a_second_archiver_on_the_same_folder_is_refused(queue: Path, tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    child = spawn("archiver", queue, folder, 1000)
    wait_ready(child)
    try:
        with pytest.raises(ArchiveError) as refused:
            Archiver(queue, folder).start()
        assert refused.value.kind is ErrorKind.ALREADY_EXISTS
        assert "another archiver" in str(refused.value)
    finally:
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        assert read_line(child) == "stopped"
        child.communicate(timeout=60)
    again = Archiver(queue, folder)  # once it stopped, the folder is free again
    again.start()
    again.stop()
    assert again.status().error is None



@pytest.mark.slow
def test_the_windows_own_truncates_keep_one_generation_and_lose_nothing(
        queue: Path, tmp_path: Path) -> None:
    """The window's TRUNCATE beside its own archiver, with writers in and out of the process."""
    folder, stop, log = tmp_path / "archive", tmp_path / "stop", tmp_path / "commits.log"
    worker = spawn("committer", queue, stop, log, 100)
    wait_ready(worker)
    inside = DemoWorkers(queue, workers=2, arrival_per_second=20, die_probability=0,
                         work_seconds=(0.0, 0.02), seed=7)
    controller = ArchiveController(queue, folder)
    controller.start()
    results = []
    try:
        inside.start()
        for _ in range(3):
            wait_for_commits(log, 80)
            started = time.monotonic()
            results.append(controller.checkpoint(
                "TRUNCATE", lambda: QueueMaintenance(queue).checkpoint("TRUNCATE")))
            results[-1]["elapsed"] = time.monotonic() - started
        wait_for_commits(log, 50)
    finally:
        inside.stop()
        stop.touch()
        worker.communicate(timeout=60)
        followed = controller.status()
        controller.stop()
    assert worker.returncode == 0, "the worker hit an error (a busy error?)"
    assert inside.stats.errors == 0 and inside.stats.completed > 0
    assert [result["busy"] for result in results] == [0, 0, 0]
    # SQLite's own report of each TRUNCATE: the WAL was cut to nothing (its size measured
    # afterwards may already hold the next commit of the writers that keep going)
    assert all(result["log"] == 0 for result in results)
    assert controller.checkpoints_let_through == 3
    assert followed is not None and followed.resets_followed >= 3
    assert followed.generations_started == 1 and followed.last_gap is None

    status = archive_status(folder)
    assert len(status.generations) == 1 and not status.gaps
    generation = status.generations[0]
    assert generation.restorable_from is not None and generation.restorable_until is not None
    commits = read_commit_log(log)
    span = generation.restorable_until - generation.restorable_from
    for number, share in enumerate((0.3, 0.6, 0.9)):
        at = generation.restorable_from + span * share
        rebuilt = tmp_path / f"at-{number}.db"
        assert rebuild_to_time(folder, at, rebuilt).check.ok
        assert_exact_state(rebuilt, commits, at)
    # At its end the archive holds the queue exactly as it is now, the in-process writers'
    # transactions included.
    final = tmp_path / "final.db"
    assert rebuild_to_time(folder, generation.restorable_until, final).check.ok
    assert table_rows(final) == table_rows(queue)


@pytest.mark.slow
def test_generations_continue_each_other_without_a_gap_and_retention_deletes_old_ones(
        queue: Path, tmp_path: Path) -> None:
    """Small rotation limits: many generations, overlapping, every instant exact."""
    folder, stop, log = tmp_path / "archive", tmp_path / "stop", tmp_path / "commits.log"
    worker = spawn("committer", queue, stop, log, 100)
    wait_ready(worker)
    archiver = Archiver(queue, folder, rotate_bytes=120_000)
    archiver.start()
    try:
        deadline = time.monotonic() + 120
        # Four restorable: a generation whose snapshot is still being written when the
        # archiver stops is deleted (it never became usable), so four folders are not enough.
        while sum(generation.restorable_from is not None
                  for generation in archive_status(folder).generations) < 4:
            assert time.monotonic() < deadline, "no new generation was started"
            time.sleep(0.1)
        wait_for_commits(log, 50)
    finally:
        stop.touch()
        worker.communicate(timeout=60)
        archiver.stop()
    assert worker.returncode == 0
    assert archiver.status().last_gap is None and archiver.status().error is None
    status = archive_status(folder)
    assert not status.gaps
    generations = status.generations
    assert len(generations) >= 4
    for earlier, later in zip(generations, generations[1:], strict=False):
        assert earlier.end_reason == f"continued by generation {later.id}"
        assert later.reason == f"continues generation {earlier.id}"
        assert earlier.restorable_until is not None and later.restorable_from is not None
        assert later.restorable_from <= earlier.restorable_until  # they overlap
    commits = read_commit_log(log)
    held = []
    for number, generation in enumerate(generations):
        assert generation.restorable_from is not None
        assert generation.restorable_until is not None
        for share in (0.0, 0.5, 1.0):
            at = generation.restorable_from + (
                generation.restorable_until - generation.restorable_from) * share
            rebuilt = tmp_path / f"at-{number}-{share}.db"
            assert rebuild_to_time(folder, at, rebuilt).check.ok
            held.append((at, assert_exact_state(rebuilt, commits, at)))
    counts = [count for _, count in sorted(held)]
    assert counts == sorted(counts)  # later instants hold more, across the overlaps too
    final = tmp_path / "final.db"
    assert status.latest is not None
    assert rebuild_to_time(folder, status.latest, final).check.ok
    assert table_rows(final) == table_rows(queue)

    # Retention deletes whole generations older than the limit, never the newest.
    again = Archiver(queue, folder, retention_days=0.0)
    again.start()
    try:
        deadline = time.monotonic() + 60
        wait_restorable(again)
    finally:
        again.stop()
    left = archive_status(folder).generations
    assert len(left) == 1 and left[0].id not in {g.id for g in generations}


@pytest.mark.slow
def test_a_failed_new_snapshot_lets_the_generation_go_on(
        queue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "archive"
    archiver = Archiver(queue, folder, rotate_bytes=1)
    calls = []
    real_backup = BackupStore.backup

    def backup_failing_after_the_first(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_backup(self, *args, **kwargs)

    monkeypatch.setattr(BackupStore, "backup", backup_failing_after_the_first)
    archiver.start()
    try:
        deadline = time.monotonic() + 60
        while archiver.status().error is None or archiver.status().snapshot_pending:
            assert time.monotonic() < deadline
            fill = sqlite3.connect(queue, isolation_level=None, timeout=10)
            fill.execute("INSERT INTO task_queue (type, payload) VALUES ('timed', '{}')")
            fill.close()
            time.sleep(0.05)
        assert "goes on" in (archiver.status().error or "")
        before = archiver.status().transactions
        fill = sqlite3.connect(queue, isolation_level=None, timeout=10)
        fill.execute("INSERT INTO task_queue (type, payload) VALUES ('after', '{}')")
        fill.close()
        deadline = time.monotonic() + 30
        while archiver.status().transactions <= before:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        archiver.stop()
    status = archive_status(folder)
    assert len(status.generations) == 1 and not status.gaps
    assert status.generations[0].end_reason == "the archiver was stopped"
    final = tmp_path / "final.db"
    assert status.latest is not None
    assert rebuild_to_time(folder, status.latest, final).check.ok
    assert table_rows(final) == table_rows(queue)


@pytest.mark.slow
def test_where_lock_owners_are_unknown_a_writer_mid_transaction_is_never_lost(
        queue: Path, tmp_path: Path) -> None:
    """Windows' view of the locks (no process ids), with a worker holding the write lock.

    A worker keeps the write lock 0.2 s per transaction while TRUNCATE checkpoints from
    another program wait for it. Both locks then look held "by the checkpoint"; the WAL
    index must keep the archiver from letting go while the worker can still commit, or
    record a gap: never a silently missing transaction.
    """
    folder, stop, log = tmp_path / "archive", tmp_path / "stop", tmp_path / "commits.log"
    worker = spawn("committer", queue, stop, log, 4, 0.2)
    wait_ready(worker)
    shm = Path(f"{queue}-shm")
    archiver = Archiver(queue, folder)
    archiver.owners_known = False  # as on Windows: both locks held count as the checkpoint's
    archiver.index_reader = lambda: (reader_through_open_descriptor(shm) or (lambda: None))()
    archiver.start()
    results = []
    try:
        wait_restorable(archiver)
        for _ in range(6):
            wait_for_commits(log, 2)
            results.append(checkpoint_now(queue, "TRUNCATE"))
        wait_for_commits(log, 3)
    finally:
        stop.touch()
        worker.communicate(timeout=60)
        archiver.stop()
    assert worker.returncode == 0
    assert any(result["busy"] == 0 for result in results)
    commits = read_commit_log(log)
    status = archive_status(folder)
    for number, generation in enumerate(status.generations):
        assert generation.restorable_until is not None
        rebuilt = tmp_path / f"end-{number}.db"
        assert rebuild_to_time(folder, generation.restorable_until, rebuilt).check.ok
        assert_exact_state(rebuilt, commits, generation.restorable_until)
    final = tmp_path / "final.db"
    assert status.latest is not None
    assert rebuild_to_time(folder, status.latest, final).check.ok
    assert table_rows(final) == table_rows(queue)


@pytest.mark.slow
def test_an_archiver_started_under_a_long_writer_waits_instead_of_stopping(
        queue: Path, tmp_path: Path) -> None:
    """A generation's start needs the write lock for a moment; a writer keeping it longer
    than the busy timeout must not stop the archiver: it says so and tries again."""
    folder = tmp_path / "archive"
    holder = sqlite3.connect(queue, isolation_level=None, timeout=10)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO task_queue (type, payload) VALUES ('held', '{}')")
    archiver = Archiver(queue, folder)
    archiver.start()
    try:
        deadline = time.monotonic() + 60
        while "could not take the write lock" not in (archiver.status().error or ""):
            assert time.monotonic() < deadline, "the archiver never said it was waiting"
            time.sleep(0.1)
        assert archiver.status().running
        holder.execute("COMMIT")
        while archiver.status().error is not None or archiver.status().snapshot_pending \
                or archiver.status().generation is None:
            assert time.monotonic() < deadline, "no generation after the writer let go"
            time.sleep(0.05)
        holder.execute("INSERT INTO task_queue (type, payload) VALUES ('after', '{}')")
        while archiver.status().transactions < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        holder.close()
        archiver.stop()
    status = archive_status(folder)
    assert len(status.generations) == 1 and not status.gaps
    final = tmp_path / "final.db"
    assert status.latest is not None
    assert rebuild_to_time(folder, status.latest, final).check.ok
    assert table_rows(final) == table_rows(queue)


@pytest.mark.slow
def test_a_transaction_too_large_for_page_by_page_starts_a_new_generation(
        queue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A transaction of more frames than the archive takes at once (a VACUUM of a big queue,
    here made small) is never left out silently: the archive records a gap and a new snapshot
    holds it, while it is written across several passes and after it commits."""
    monkeypatch.setattr(walfile, "MAX_TRANSACTION_BYTES", 256 * 1024)
    folder = tmp_path / "archive"
    archiver = Archiver(queue, folder)
    archiver.start()
    big = sqlite3.connect(queue, isolation_level=None, timeout=10)
    try:
        deadline = time.monotonic() + 60
        wait_restorable(archiver)
        add = sqlite3.connect(queue, isolation_level=None, timeout=10)
        add.execute("INSERT INTO task_queue (type, payload) VALUES ('before', '{}')")
        while archiver.status().transactions < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        big.execute("PRAGMA cache_size=20")  # the pages spill into the WAL as it goes
        big.execute("BEGIN IMMEDIATE")
        for _ in range(12):  # about 1 MB over more than a second: several passes see it
            big.executemany("INSERT INTO task_queue (type, payload) VALUES ('big', ?)",
                            [(json.dumps({"pad": "b" * 1500}),)] * 50)
            time.sleep(0.12)
        big.execute("COMMIT")
        big_committed = time.time()
        add.execute("INSERT INTO task_queue (type, payload) VALUES ('after', '{}')")
        add.close()
        while archiver.status().generations_started < 2 or archiver.status().snapshot_pending:
            assert time.monotonic() < deadline, "the big transaction went unnoticed"
            time.sleep(0.05)
    finally:
        big.close()
        archiver.stop()
    status = archive_status(folder)
    assert len(status.generations) == 2 and len(status.gaps) == 1
    gap = status.gaps[0]
    assert "a transaction of more than" in gap.reason and "a new snapshot holds it" in gap.reason
    assert gap.after < big_committed < gap.before  # the big commit falls in the gap
    kinds = {}
    for number, generation in enumerate(status.generations):
        assert generation.restorable_until is not None
        rebuilt = tmp_path / f"end-{number}.db"
        assert rebuild_to_time(folder, generation.restorable_until, rebuilt).check.ok
        connection = sqlite3.connect(rebuilt)
        kinds[number] = dict(connection.execute(
            "SELECT type, count(*) FROM task_queue GROUP BY type").fetchall())
        connection.close()
    assert kinds[0].get("before") == 1 and "big" not in kinds[0]
    assert kinds[1].get("big") == 600 and kinds[1].get("after") == 1
    final = tmp_path / "final.db"
    assert status.latest is not None
    assert rebuild_to_time(folder, status.latest, final).check.ok
    assert table_rows(final) == table_rows(queue)


def test_an_archiver_stopped_by_a_full_disk_says_so_and_ends_its_generation_honestly(
        queue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "archive"
    archiver = Archiver(queue, folder)
    archiver.start()
    deadline = time.monotonic() + 60
    wait_restorable(archiver)
    real_append = store.FrameLog.append

    def full_disk(self, kind, stamp, payload):
        if kind != store.KIND_HEARTBEAT:
            raise OSError(28, "No space left on device")
        return real_append(self, kind, stamp, payload)

    monkeypatch.setattr(store.FrameLog, "append", full_disk)
    add = sqlite3.connect(queue, isolation_level=None, timeout=10)
    add.execute("INSERT INTO task_queue (type, payload) VALUES ('lost', '{}')")
    add.close()
    while archiver.status().running:
        assert time.monotonic() < deadline, "the archiver went on as if it had archived"
        time.sleep(0.05)
    archiver.stop()
    status = archiver.status()
    assert status.error_kind == "disk_full" and "No space left" in (status.error or "")
    generation = archive_status(folder).generations[0]
    assert generation.end_reason.startswith("the archiver stopped on an error")


def test_the_first_instant_as_shown_is_accepted_as_typed(queue: Path, tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    archiver = Archiver(queue, folder)
    archiver.start()
    try:
        wait_restorable(archiver)
    finally:
        archiver.stop()
    earliest = archive_status(folder).earliest
    assert earliest is not None
    typed = parse_instant(instant_text(earliest))  # what archive-status printed, typed back
    assert 0 <= typed.timestamp() - earliest < 2e-6  # to the microsecond, never before it
    rebuilt = rebuild_to_time(folder, typed, tmp_path / "first.db")
    assert rebuilt.check.ok and rebuilt.transactions_applied == 0
    with pytest.raises(ArchiveError, match="before the archive starts"):
        rebuild_to_time(folder, earliest - 0.002, tmp_path / "before.db")


@pytest.mark.slow
def test_an_unreadable_wal_index_never_holds_a_checkpoint_back(
        queue: Path, tmp_path: Path) -> None:
    """Where lock owners are unknown and the -shm header cannot be read either, the archiver
    lets a TRUNCATE through as it always did, instead of keeping it waiting until busy."""
    folder, stop, log = tmp_path / "archive", tmp_path / "stop", tmp_path / "commits.log"
    worker = spawn("committer", queue, stop, log, 20)
    wait_ready(worker)
    archiver = Archiver(queue, folder)
    archiver.owners_known = False
    archiver.index_reader = lambda: None
    archiver.start()
    try:
        wait_restorable(archiver)
        wait_for_commits(log, 10)
        result = checkpoint_now(queue, "TRUNCATE")
        wait_for_commits(log, 10)
    finally:
        stop.touch()
        worker.communicate(timeout=60)
        archiver.stop()
    assert worker.returncode == 0
    assert result["busy"] == 0 and result["seconds"] < 2.0
    assert archiver.status().resets_followed >= 1
