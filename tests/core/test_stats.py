"""database_stats: what the monitor samples, on queue and non-queue files, without changing them."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from queue_admin_gui.core import QueueMaintenance
from queue_admin_gui.core.database import closing_connection, connect
from queue_admin_gui.core.errors import ErrorKind, QueueMaintenanceError
from queue_admin_gui.core.measurements.stats import STATS_KEYS, database_stats


def fill_queue(path: Path) -> None:
    payload = json.dumps({"format": "png", "blob": "y" * 3000})
    with closing_connection(connect(path)) as connection:
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO task_queue (type, payload, status) VALUES ('render', ?, ?)",
            [(payload, status) for status in
             ["queued"] * 30 + ["leased"] * 5 + ["processing"] * 2 + ["completed"] * 40
             + ["failed"] * 3 + ["dead_letter"]],
        )
        connection.execute("COMMIT")
        connection.execute("DELETE FROM task_queue WHERE status = 'completed'")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_stats_of_a_queue_file(queue_db: Path) -> None:
    fill_queue(queue_db)
    with closing_connection(connect(queue_db)) as writer:  # an open writer keeps the WAL
        writer.execute("UPDATE task_queue SET priority = 5 WHERE status = 'queued'")
        stats = QueueMaintenance(queue_db).get_database_stats()
    assert tuple(stats) == STATS_KEYS
    assert stats["path"] == str(queue_db)
    assert stats["page_size"] == 4096
    assert stats["page_count"] > 40 and stats["freelist_count"] > 0
    assert stats["fragmentation_percent"] == pytest.approx(
        stats["freelist_count"] / stats["page_count"] * 100)
    assert stats["wal_mode"] is True and stats["journal_mode"] == "wal"
    assert stats["wal_size_bytes"] > 0 and stats["shm_size_bytes"] > 0
    assert stats["total_size_mb"] == pytest.approx(
        (stats["db_size_bytes"] + stats["wal_size_bytes"]) / 1024 / 1024)
    assert stats["wal_size_mb"] == pytest.approx(stats["wal_size_bytes"] / 1024 / 1024)
    assert stats["auto_vacuum"] == "NONE"
    assert stats["wal_autocheckpoint"] == 1000
    assert isinstance(stats["journal_size_limit"], int)
    assert stats["sqlite_version"] == sqlite3.sqlite_version
    assert (stats["is_queue"], stats["schema_problems"]) == (True, [])
    assert stats["task_counts"] == {"queued": 30, "leased": 5, "processing": 2, "completed": 0,
                                    "failed": 3, "dead_letter": 1}


def test_task_counts_are_left_out_when_not_asked_for(queue_db: Path) -> None:
    fill_queue(queue_db)
    stats = database_stats(queue_db, include_task_counts=False)
    assert stats["task_counts"] is None and stats["is_queue"] is True


def test_stats_of_a_plain_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    with closing_connection(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA auto_vacuum=INCREMENTAL")
        connection.execute("CREATE TABLE task_queue (id INTEGER PRIMARY KEY, status TEXT)")
        connection.commit()
    stats = QueueMaintenance(path).get_database_stats()
    assert stats["is_queue"] is False
    assert "task_queue lacks columns" in stats["schema_problems"][0]
    assert "table workers is missing" in stats["schema_problems"]
    assert stats["task_counts"] is None
    assert (stats["wal_mode"], stats["journal_mode"]) == (False, "delete")
    assert stats["auto_vacuum"] == "INCREMENTAL"
    assert stats["wal_size_bytes"] == 0 and stats["wal_size_mb"] == 0


def test_stats_never_change_the_file(queue_db: Path) -> None:
    fill_queue(queue_db)
    with closing_connection(connect(queue_db)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = digest(queue_db)
    modified = queue_db.stat().st_mtime_ns
    for _ in range(3):
        database_stats(queue_db)
    assert digest(queue_db) == before
    assert queue_db.stat().st_mtime_ns == modified


def test_stats_of_a_missing_or_foreign_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(QueueMaintenanceError) as caught:
        database_stats(tmp_path / "gone.db")
    assert caught.value.kind is ErrorKind.NOT_FOUND and "gone.db" in str(caught.value)
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database at all\n" * 100, encoding="utf-8")
    with pytest.raises(QueueMaintenanceError) as caught:
        database_stats(text_file)
    assert caught.value.kind is ErrorKind.NOT_A_DATABASE


def test_an_empty_database_has_no_fragmentation(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    stats = database_stats(path)
    assert stats["page_count"] == 0 and stats["fragmentation_percent"] == 0.0
    assert stats["is_queue"] is False
