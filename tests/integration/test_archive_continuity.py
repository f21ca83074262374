"""Continuity proven, not assumed: checkpoint storms from other programs, a commit made while
a checkpoint of the same process waits, a replaced database file.

Every instant the archive calls restorable must rebuild to exactly the state the queue was in
(a prefix of the commit order, whole transactions); where the archiver could not follow the
WAL it must say so: a gap with its reason, and a new generation from a new snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from archive_workload import read_commit_log, spawn, table_rows
from queue_workload import read_line, wait_ready
from test_archive_under_load import (
    assert_exact_state,
    wait_for_commits,
    wait_restorable,
)

from queue_admin_gui.core.archive import Archiver, archive_status, rebuild_to_time
from queue_admin_gui.core.archive.pins import WalPins
from queue_admin_gui.core.archive.wal_index import live_index_reader
from tests.prismq import PrismQWorker, make_prismq_queue

pytestmark = pytest.mark.slow


@pytest.fixture
def prismq_queue(tmp_path: Path) -> Path:
    return make_prismq_queue(tmp_path / "queue.db", tasks=3000)


def assert_every_restorable_instant_exact(folder: Path, commits: list[tuple[int, float, float]],
                                          tmp_path: Path, live: Path,
                                          shares: tuple[float, ...] = (0.0, 0.5, 1.0)) -> int:
    """Rebuild instants across every generation; each must be an exact state. Returns how many."""
    status = archive_status(folder)
    rebuilt = 0
    for number, generation in enumerate(status.generations):
        if generation.restorable_from is None or generation.restorable_until is None:
            continue
        span = generation.restorable_until - generation.restorable_from
        for share in shares:
            at = generation.restorable_from + span * share
            path = tmp_path / f"at-{number}-{share}.db"
            assert rebuild_to_time(folder, at, path, live_path=live).check.ok
            assert_exact_state(path, commits, at)
            path.unlink()
            rebuilt += 1
    return rebuilt


def test_a_checkpoint_storm_from_two_programs_loses_no_commit_silently(
        prismq_queue: Path, tmp_path: Path) -> None:
    """Two programs run TRUNCATE, RESTART or FULL every 5-50 ms while a PrismQ worker and a
    timed committer write: every restorable instant is exact, every miss a reported gap."""
    queue = prismq_queue
    folder, stop, log = tmp_path / "archive", tmp_path / "stop", tmp_path / "commits.log"
    worker = PrismQWorker(queue, "prismq-1", tmp_path / "worker.log", work_seconds=0.005)
    worker.wait_started()
    committer = spawn("committer", queue, stop, log, 80)
    wait_ready(committer)
    archiver = Archiver(queue, folder)
    archiver.start()
    storms = []
    try:
        wait_restorable(archiver)
        storms = [spawn("storm", queue, stop, seed) for seed in (1, 2)]
        for storm in storms:
            wait_ready(storm)
        wait_for_commits(log, 400)
    finally:
        stop.touch()
        results = [json.loads(read_line(storm)) for storm in storms]
        for storm in storms:
            storm.communicate(timeout=60)
        committer.communicate(timeout=60)
        assert worker.stop() == 0
        archiver.stop()
    assert committer.returncode == 0, "the committer hit an error (a busy error?)"
    assert worker.errors() == []
    assert all(result["checkpoints"] > 20 for result in results)
    status = archive_status(folder)
    for gap in status.gaps:
        assert gap.reason  # every gap says why
    commits = read_commit_log(log)
    assert assert_every_restorable_instant_exact(folder, commits, tmp_path, queue) >= 3
    final = tmp_path / "final.db"
    assert status.latest is not None
    assert rebuild_to_time(folder, status.latest, final, live_path=queue).check.ok
    assert table_rows(final) == table_rows(queue)


def archived_transactions(folder: Path) -> int:
    """Transactions the archive holds, over all its generations."""
    return sum(generation.transactions for generation in archive_status(folder).generations)


def commit_one_and_wait_until_archived(queue: Path, folder: Path) -> None:
    """One more commit after the event under test, waited for until the archive holds it."""
    before = archived_transactions(folder)
    add = sqlite3.connect(queue, isolation_level=None, timeout=10)
    add.execute("INSERT INTO task_queue (type, payload) VALUES ('after', '{}')")
    add.close()
    deadline = time.monotonic() + 60
    while archived_transactions(folder) <= before:
        assert time.monotonic() < deadline, "the commit after the event was never archived"
        time.sleep(0.05)


def stop_archiver_child(child: subprocess.Popen[str]) -> None:
    """Ask the archiver process to stop (a line on its stdin) and wait until it has."""
    assert child.stdin is not None
    child.stdin.write("\n")
    child.stdin.flush()
    assert read_line(child) == "stopped"
    child.communicate(timeout=60)


def truncate_into(queue: Path, outcome: list[tuple]) -> None:
    """Run a TRUNCATE checkpoint that waits up to 10 s for the write lock; keep its result."""
    connection = sqlite3.connect(queue, isolation_level=None, timeout=10)
    connection.execute("PRAGMA busy_timeout=10000")
    outcome.append(connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
    connection.close()


def test_a_commit_while_a_checkpoint_of_the_same_process_waits_is_archived_or_a_gap(
        prismq_queue: Path, tmp_path: Path) -> None:
    """One process (as the window during a restore) holds the write lock in a transaction
    while a TRUNCATE of that same process waits for it: the lock table shows one process
    holding both locks, which looks like a checkpoint holding the writer back. The
    transaction commits, then the TRUNCATE resets the log; the archive must hold that commit
    or end the generation with a gap, never go on as if nothing had happened."""
    queue = prismq_queue
    folder = tmp_path / "archive"
    child = spawn("archiver", queue, folder, 1000)
    wait_ready(child)
    try:
        deadline = time.monotonic() + 60
        while not any(g.restorable_from for g in archive_status(folder).generations):
            assert time.monotonic() < deadline, "the archiver never became restorable"
            time.sleep(0.05)
        for round_number in range(3):
            writer = sqlite3.connect(queue, isolation_level=None, timeout=10)
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("UPDATE task_queue SET status = 'completed', payload = ? "
                           "WHERE id <= ?", (json.dumps({"round": round_number}),
                                             500 * (round_number + 1)))
            outcome: list[tuple] = []
            checkpoint = threading.Thread(target=truncate_into, args=(queue, outcome))
            checkpoint.start()
            time.sleep(0.6)  # the archiver sees both locks held by this process meanwhile
            writer.execute("COMMIT")
            writer.close()
            checkpoint.join(30)
            assert outcome and outcome[0][0] == 0
        commit_one_and_wait_until_archived(queue, folder)
    finally:
        stop_archiver_child(child)
    status = archive_status(folder)
    final = tmp_path / "final.db"
    assert status.latest is not None
    assert rebuild_to_time(folder, status.latest, final, live_path=queue).check.ok
    assert table_rows(final) == table_rows(queue)
    for number, generation in enumerate(status.generations):
        assert generation.restorable_until is not None
        path = tmp_path / f"end-{number}.db"
        assert rebuild_to_time(folder, generation.restorable_until, path, live_path=queue).check.ok


def test_a_database_file_replaced_under_the_archiver_ends_the_generation(
        prismq_queue: Path, tmp_path: Path) -> None:
    """Another program puts a different file in the queue's place (a copy restored by hand):
    the archive records a gap saying so and archives the new file from a new snapshot."""
    queue = prismq_queue
    folder = tmp_path / "archive"
    other = make_prismq_queue(tmp_path / "other" / "queue.db", tasks=7)
    archiver = Archiver(queue, folder)
    archiver.start()
    try:
        wait_restorable(archiver)
        add = sqlite3.connect(queue, isolation_level=None, timeout=10)
        add.execute("INSERT INTO task_queue (type, payload) VALUES ('before', '{}')")
        add.close()
        deadline = time.monotonic() + 30
        while archiver.status().transactions < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        staged = queue.with_name("incoming.db")
        shutil.copyfile(other, staged)
        os.replace(staged, queue)  # the old -wal was checkpointed into the old file
        for suffix in ("-wal", "-shm"):
            Path(f"{queue}{suffix}").unlink(missing_ok=True)
        while archiver.status().generations_started < 2 or archiver.status().snapshot_pending:
            assert time.monotonic() < deadline, "the replaced file went unnoticed"
            time.sleep(0.05)
        add = sqlite3.connect(queue, isolation_level=None, timeout=10)
        add.execute("INSERT INTO task_queue (type, payload) VALUES ('after', '{}')")
        add.close()
        while archiver.status().transactions < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        archiver.stop()
    status = archive_status(folder)
    assert len(status.generations) == 2 and len(status.gaps) == 1
    assert "the database file was replaced" in status.gaps[0].reason
    assert "replaced" in (status.generations[0].end_reason or "")
    final = tmp_path / "final.db"
    assert status.latest is not None
    assert rebuild_to_time(folder, status.latest, final, live_path=queue).check.ok
    assert table_rows(final) == table_rows(queue)


def test_the_commit_counter_can_be_read_beside_live_connections(tmp_path: Path) -> None:
    """The proof rests on the WAL index's counter: one more per commit, none per reset."""
    queue = make_prismq_queue(tmp_path / "queue.db")
    connection = sqlite3.connect(queue, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS probe (x)")
    reader = live_index_reader(Path(f"{queue}-shm"))
    assert reader is not None
    first = reader()
    assert first is not None
    connection.execute("INSERT INTO probe VALUES (1)")
    connection.execute("INSERT INTO probe VALUES (2)")
    after_commits = reader()
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after_resets = reader()
    connection.close()
    assert after_commits is not None and after_resets is not None
    assert after_commits.change - first.change == 2
    assert after_resets.change == after_commits.change
    assert after_resets.max_frame == 0 and after_resets.salts != after_commits.salts


def test_cycles_that_come_and_go_unseen_end_the_generation_with_the_commits_counted(
        prismq_queue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The archiver is held between two looks while nothing pins the WAL: three commits, two
    TRUNCATE resets. It sees only the last cycle; the counter says three commits were made
    and one archived, so the generation ends with a gap naming the two it never saw."""
    queue = prismq_queue
    folder = tmp_path / "archive"
    archiver = Archiver(queue, folder)
    held, holding = threading.Event(), threading.Event()
    real_copy = Archiver.copy_to_end
    real_begin, real_end = WalPins.begin_next, WalPins.end_previous

    def copy_unless_held(self: Archiver) -> None:
        if held.is_set():
            holding.set()
            while held.is_set():
                time.sleep(0.01)
        real_copy(self)

    monkeypatch.setattr(Archiver, "copy_to_end", copy_unless_held)
    archiver.start()
    try:
        wait_restorable(archiver)
        run = sqlite3.connect(queue, isolation_level=None, timeout=10)
        run.execute("INSERT INTO task_queue (type, payload) VALUES ('seen', '{}')")
        deadline = time.monotonic() + 30
        while archiver.status().transactions < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # From the next look on, nothing pins the log, and that look waits.
        monkeypatch.setattr(WalPins, "begin_next", WalPins.release)
        monkeypatch.setattr(WalPins, "end_previous", lambda self: None)
        held.set()
        assert holding.wait(30)
        for kind in ("lost-1", "lost-2", "kept"):
            run.execute("INSERT INTO task_queue (type, payload) VALUES (?, '{}')", (kind,))
            if kind != "kept":
                assert run.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        run.close()
        monkeypatch.setattr(WalPins, "begin_next", real_begin)
        monkeypatch.setattr(WalPins, "end_previous", real_end)
        held.clear()
        while archiver.status().last_gap is None:
            assert time.monotonic() < deadline, "the unseen cycles went unnoticed"
            time.sleep(0.02)
        while archiver.status().generations_started < 2 or archiver.status().snapshot_pending:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        held.clear()
        archiver.stop()
    status = archive_status(folder)
    assert len(status.gaps) == 1
    assert "2 committed transaction(s) never reached the archive" in status.gaps[0].reason
    first = status.generations[0]
    assert first.restorable_until is not None
    ended = tmp_path / "first-end.db"
    assert rebuild_to_time(folder, first.restorable_until, ended, live_path=queue).check.ok
    connection = sqlite3.connect(ended)
    kinds = {kind for (kind,) in connection.execute("SELECT DISTINCT type FROM task_queue")}
    connection.close()
    assert "seen" in kinds and not kinds & {"lost-1", "lost-2", "kept"}
    final = tmp_path / "final.db"
    assert status.latest is not None
    assert rebuild_to_time(folder, status.latest, final, live_path=queue).check.ok
    assert table_rows(final) == table_rows(queue)


def test_a_database_overwritten_in_place_by_another_program_ends_the_generation(
        prismq_queue: Path, tmp_path: Path) -> None:
    """Another program copies a backup over the queue file in place (the way a copy command
    restores a file on Windows, where the name cannot be taken while it is open): no WAL
    frame explains the new header, so the archive records a gap and starts again from it."""
    queue = prismq_queue
    folder = tmp_path / "archive"
    other = make_prismq_queue(tmp_path / "other" / "queue.db", tasks=11)
    child = spawn("archiver", queue, folder, 1000)
    wait_ready(child)
    try:
        deadline = time.monotonic() + 60
        while not any(g.restorable_from for g in archive_status(folder).generations):
            assert time.monotonic() < deadline, "the archiver never became restorable"
            time.sleep(0.05)
        add = sqlite3.connect(queue, isolation_level=None, timeout=10)
        add.execute("INSERT INTO task_queue (type, payload) VALUES ('before', '{}')")
        assert add.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        add.close()
        while archive_status(folder).generations[0].transactions < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with open(queue, "r+b") as handle:  # in place: the same file, other contents
            handle.write(other.read_bytes())
            handle.truncate()
        while not (len(archive_status(folder).generations) == 2
                   and archive_status(folder).generations[1].restorable_from):
            assert time.monotonic() < deadline, "the overwrite went unnoticed"
            time.sleep(0.05)
        commit_one_and_wait_until_archived(queue, folder)
    finally:
        stop_archiver_child(child)
    status = archive_status(folder)
    assert len(status.gaps) == 1
    assert "changed outside its WAL" in status.gaps[0].reason
    final = tmp_path / "final.db"
    assert status.latest is not None
    assert rebuild_to_time(folder, status.latest, final, live_path=queue).check.ok
    assert table_rows(final) == table_rows(queue)
    connection = sqlite3.connect(final)
    assert connection.execute("SELECT count(*) FROM task_queue").fetchone()[0] == 12
    connection.close()
