"""The archiver at below-normal priority: its thread only, still answering proofs in time;
and an archive written at the earlier compression level rebuilds exactly."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from queue_admin_gui.core.archive import Archiver, page_deltas, rebuild_to_time
from queue_admin_gui.core.archive.priority import IO_LEVEL, NICE, thread_priority
from queue_admin_gui.core.archive.rebuild import resolve_instant
from queue_admin_gui.core.archive.safety_point import PROOF_WAIT_SECONDS, prove_archived

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="thread priorities are read back on Linux")


def make_queue(queue_db: Path) -> Path:
    connection = sqlite3.connect(queue_db, isolation_level=None)
    assert connection.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    connection.close()
    return queue_db


def commit(path: Path, count: int, start: int = 0) -> None:
    """``count`` transactions as a queue makes them: a task and its log row, a retry."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for number in range(start, start + count):
            connection.execute("BEGIN IMMEDIATE")
            cursor = connection.execute(
                "INSERT INTO task_queue (type, payload) VALUES ('test', ?)",
                (f'{{"n": {number}, "pad": "{"x" * (number % 300)}"}}',))
            connection.execute("INSERT INTO task_logs (task_id, level, message) "
                               "VALUES (?, 'INFO', 'queued')", (cursor.lastrowid,))
            connection.execute("UPDATE task_queue SET attempts = attempts + 1 WHERE id = ?",
                               (max(1, number // 2),))
            connection.execute("COMMIT")
    finally:
        connection.close()


def rows(path: Path) -> list[tuple]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return (connection.execute("SELECT * FROM task_queue ORDER BY id").fetchall()
                + connection.execute("SELECT * FROM task_logs ORDER BY rowid").fetchall())
    finally:
        connection.close()


def wait_restorable(archiver: Archiver) -> None:
    deadline = time.monotonic() + 60
    while archiver.status().generation is None or archiver.status().snapshot_pending:
        assert time.monotonic() < deadline, "no generation became restorable"
        assert archiver.status().error is None, archiver.status().error
        time.sleep(0.05)


def archiver_thread() -> threading.Thread:
    threads = [thread for thread in threading.enumerate() if thread.name == "wal-archiver"]
    assert len(threads) == 1
    return threads[0]


@linux_only
@pytest.mark.parametrize("low", [True, False])
def test_only_the_archivers_thread_runs_below_normal_priority(tmp_path: Path, queue_db: Path,
                                                             low: bool) -> None:
    db = make_queue(queue_db)
    caller = thread_priority(threading.get_native_id())
    archiver = Archiver(db, tmp_path / "archive", low_priority=low)
    archiver.start()
    try:
        wait_restorable(archiver)
        native_id = archiver_thread().native_id
        assert native_id is not None
        nice, io = thread_priority(native_id)  # type: ignore[misc]
        if low:
            assert nice >= NICE and io == (2, IO_LEVEL)
            assert archiver.status().priority == f"nice {nice}, I/O best-effort {IO_LEVEL}"
        else:
            assert (nice, io) == caller and archiver.status().priority is None
        assert thread_priority(threading.get_native_id()) == caller  # the caller's untouched
    finally:
        archiver.stop()


def test_at_low_priority_a_proof_is_answered_in_time_while_every_core_is_busy(
        tmp_path: Path, queue_db: Path) -> None:
    """The restore waits :data:`PROOF_WAIT_SECONDS` for the archive's proof: busy cores at
    normal priority must not make the archiver miss it."""
    db = make_queue(queue_db)
    archive = tmp_path / "archive"
    archiver = Archiver(db, archive, low_priority=True)
    archiver.start()
    spinners: list[subprocess.Popen[bytes]] = []
    try:
        wait_restorable(archiver)
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    for _ in range(os.cpu_count() or 2)]
        for round_ in range(3):
            commit(db, 20, start=round_ * 20)
            connection = sqlite3.connect(db, isolation_level=None)
            try:
                connection.execute("BEGIN IMMEDIATE")  # as the restore holds it
                point = prove_archived(db, archive, wait_seconds=PROOF_WAIT_SECONDS)
                connection.execute("ROLLBACK")
            finally:
                connection.close()
            assert point is not None, f"round {round_}: no proof within {PROOF_WAIT_SECONDS} s"
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
        archiver.stop()


def test_an_archive_written_at_the_earlier_level_rebuilds_exactly(
        tmp_path: Path, queue_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A generation archived at zlib level 6 (as before), then one at today's level: the
    latest instant of each rebuilds to exactly the live rows of that moment."""
    db = make_queue(queue_db)
    archive = tmp_path / "archive"
    expected = []
    for level in (6, page_deltas.LEVEL):
        monkeypatch.setattr(page_deltas, "LEVEL", level)
        archiver = Archiver(db, archive)
        archiver.start()
        try:
            wait_restorable(archiver)
            commit(db, 300, start=len(expected) * 300)
            deadline = time.monotonic() + 30
            while archiver.status().transactions < 300:
                assert time.monotonic() < deadline, "the commits were not archived"
                time.sleep(0.05)
        finally:
            archiver.stop()
        expected.append(rows(db))
        rebuilt = tmp_path / f"rebuilt-{level}.db"
        result = rebuild_to_time(archive, resolve_instant("latest", archive), rebuilt,
                                 live_path=db)
        assert result.check.ok
        assert rows(rebuilt) == expected[-1]
    assert expected[0] != expected[1]
