"""Backups and restores while other processes use the queue file."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from queue_workload import (
    DEADLINE_SECONDS,
    fill_queue,
    fingerprint,
    integrity,
    read_line,
    spawn,
    wait_ready,
)

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.database import task_counts
from queue_admin_gui.core.restore.gate import ALL_WORKERS

pytestmark = pytest.mark.slow


def _count(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("SELECT count(*) FROM task_queue").fetchone()[0])
    finally:
        connection.close()


@pytest.mark.slow
def test_backup_while_three_writers_write_is_the_state_at_its_start(tmp_path: Path) -> None:
    db = tmp_path / "live queue.db"
    fill_queue(db, 3000, "seed")
    stop = tmp_path / "stop"
    writers = [spawn("writer", db, stop) for _ in range(3)]
    try:
        for writer in writers:
            wait_ready(writer)
        engine = QueueBackup(db, tmp_path / "backups", pages_per_step=4)
        calls: list[tuple[int, int]] = []
        start_count: list[int] = []

        def progress(done: int, total: int, stage: str) -> None:
            if stage != "Copying pages":
                return
            calls.append((done, total))
            if len(calls) == 1:
                start_count.append(_count(db))
            if len(calls) == 3:
                # Hold the copy until the writers have visibly committed more rows.
                deadline = time.monotonic() + DEADLINE_SECONDS
                while _count(db) <= start_count[0] + 50:
                    assert time.monotonic() < deadline, "writers made no progress"

        result = engine.backup("under load", progress=progress)
    finally:
        stop.touch()
        for writer in writers:
            writer.communicate(timeout=DEADLINE_SECONDS)
    assert all(writer.returncode == 0 for writer in writers)

    assert result.restarts == 0
    done_values = [done for done, _ in calls]
    assert done_values == sorted(done_values) and len(set(done_values)) == len(done_values)
    assert {total for _, total in calls} == {result.page_count}
    assert len(calls) >= result.page_count // 4

    backup = sqlite3.connect(result.path)
    try:
        in_backup = task_counts(backup)
        backup_count = int(backup.execute("SELECT count(*) FROM task_queue").fetchone()[0])
    finally:
        backup.close()
    # The copy equals what the read transaction saw when the backup began.
    assert in_backup == result.task_counts
    assert backup_count <= start_count[0] + 5 * 3 * 2  # at most a commit or two per writer
    assert _count(db) > backup_count + 50
    assert integrity(result.path) == ["ok"]
    assert engine.verify_backup(result.path) is True


def test_restore_while_other_processes_read_shows_old_or_new_only(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    fill_queue(db, 3000, "old")
    old = fingerprint(db)
    source = tmp_path / "source.db"
    fill_queue(source, 2000, "new")
    engine = QueueBackup(db, tmp_path / "backups", pages_per_step=4)
    backup = QueueBackup(source, tmp_path / "backups").create_backup("new")
    new = fingerprint(backup)
    stop = tmp_path / "stop"
    readers = [spawn("reader", db, stop) for _ in range(2)]
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        for reader in readers:
            wait_ready(reader)
        holder.execute("BEGIN")
        assert holder.execute("SELECT count(*) FROM task_queue").fetchone()[0] == old[0]

        def progress(done: int, total: int, stage: str) -> None:
            if stage.startswith("Writing") and 0 < done < total:
                # Mid-restore, an open reader still sees the whole old database.
                assert holder.execute("SELECT count(*) FROM task_queue").fetchone()[0] == old[0]

        # The readers have the file open, which the gate counts as workers: accept them.
        result = engine.restore_backup(backup, progress=progress, accepted_workers=ALL_WORKERS)
        assert holder.execute("SELECT count(*) FROM task_queue").fetchone()[0] == old[0]
        holder.execute("COMMIT")
        assert holder.execute("SELECT count(*) FROM task_queue").fetchone()[0] == new[0]
    finally:
        holder.close()
        stop.touch()
    seen: set[tuple[int, int, tuple[str, ...]]] = set()
    for reader in readers:
        while (line := read_line(reader)) != "done":
            count, total, types = json.loads(line)
            seen.add((count, total, tuple(types)))
        reader.communicate(timeout=DEADLINE_SECONDS)
        assert reader.returncode == 0
    assert seen <= {old, new}
    assert new in seen
    assert fingerprint(db) == new
    assert integrity(db) == ["ok"]
    assert result.safety_backup is not None and fingerprint(result.safety_backup) == old
    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
