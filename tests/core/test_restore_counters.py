"""Id counters across a restore: never below what the live database handed out, and a backup
whose counter is missing is repaired (and said so) or, with no room left, refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prismq import make_prismq_queue

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.manifest import manifest_path_for
from queue_admin_gui.core.database import QueueDatabase
from queue_admin_gui.core.errors import QueueBackupError
from queue_admin_gui.core.restore.execute import execute_restore
from queue_admin_gui.core.restore.keep import RestoreRequest

# Nothing here tells workers at work: the gate watches for commits a moment, not a second.
pytestmark = pytest.mark.usefixtures("short_commit_watch")


def run_sql(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path)
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


def next_id(path: Path) -> int:
    """The id PrismQ's producer gets for a new task."""
    connection = sqlite3.connect(path)
    try:
        cursor = connection.execute("INSERT INTO task_queue (type, payload) VALUES ('n', '{}')")
        connection.commit()
        return int(cursor.lastrowid or 0)
    finally:
        connection.close()


def crafted_backup(tmp_path: Path, *statements: str) -> Path:
    """A backup file of a PrismQ queue changed by ``statements`` after it was written.

    It has no manifest (an older tool's backup), so only its contents are checked.
    """
    source = make_prismq_queue(tmp_path / "source.db", tasks=100)
    backup = QueueBackup(source, tmp_path / "backups").create_backup("crafted")
    manifest_path_for(backup).unlink()
    run_sql(backup, *statements)
    return backup


def restore(backup: Path, live: Path, folder: Path) -> object:
    return execute_restore(RestoreRequest(backup_path=backup, target=live, backup_dir=folder))


@pytest.mark.slow
@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_counters_never_go_below_what_the_live_database_handed_out(
        tmp_path: Path, journal: str) -> None:
    live = make_prismq_queue(tmp_path / "queue.db", tasks=500)
    run_sql(live, "DELETE FROM task_queue WHERE id > 10", f"PRAGMA journal_mode={journal}")
    source = make_prismq_queue(tmp_path / "source.db", tasks=100)
    backup = QueueBackup(source, tmp_path / "backups").create_backup()
    result = restore(backup, live, tmp_path / "backups")
    assert result.counters_kept["task_queue"] == 500  # type: ignore[attr-defined]
    assert next_id(live) == 501


def test_a_missing_counter_is_refused_as_an_altered_file(tmp_path: Path) -> None:
    """Nothing records which ids above the highest row were handed out: never guessed."""
    backup = crafted_backup(tmp_path, "DELETE FROM sqlite_sequence WHERE name = 'task_queue'",
                            "DELETE FROM task_queue WHERE id > 90")
    live = make_prismq_queue(tmp_path / "queue.db", tasks=5)  # its counter is 5
    with pytest.raises(QueueBackupError) as refused:
        restore(backup, live, tmp_path / "backups")
    assert "no counter" in refused.value.message
    assert next_id(live) == 6  # the live queue is as it was


def test_a_backup_with_no_room_for_new_ids_is_refused_and_nothing_changes(
        tmp_path: Path) -> None:
    backup = crafted_backup(
        tmp_path, f"UPDATE task_queue SET id = {2**63 - 1} WHERE id = 100",
        "DELETE FROM sqlite_sequence WHERE name = 'task_queue'")
    live = make_prismq_queue(tmp_path / "queue.db", tasks=7)
    with pytest.raises(QueueBackupError) as refused:
        restore(backup, live, tmp_path / "backups")
    assert "refused" in refused.value.message
    assert next_id(live) == 8  # the live queue still takes new tasks, its counter intact


@pytest.mark.slow
def test_counters_of_a_broken_queue_moved_aside_are_carried_over(tmp_path: Path) -> None:
    live = make_prismq_queue(tmp_path / "queue.db", tasks=400)
    run_sql(live, "DELETE FROM task_queue WHERE id > 3", "DROP TABLE workers")
    source = make_prismq_queue(tmp_path / "source.db", tasks=100)
    backup = QueueBackup(source, tmp_path / "backups").create_backup()
    result = restore(backup, live, tmp_path / "backups")
    assert result.moved_aside  # type: ignore[attr-defined]
    assert result.counters_kept == {"task_queue": 400}  # type: ignore[attr-defined]
    assert next_id(live) == 401


def test_a_file_too_damaged_to_give_its_counters_says_so(tmp_path: Path) -> None:
    live = tmp_path / "queue.db"
    live.write_bytes(b"not a database" * 500)
    source = tmp_path / "source.db"  # the tool's own schema: verified without a live file
    with QueueDatabase(source) as db:
        db.initialize_schema()
        with db.transaction() as connection:
            connection.executemany("INSERT INTO task_queue (type, payload) VALUES ('r', '{}')",
                                   [()] * 100)
    backup = QueueBackup(source, tmp_path / "backups").create_backup()
    result = restore(backup, live, tmp_path / "backups")
    assert "could not be read" in (result.counters_problem or "")  # type: ignore[attr-defined]
    assert next_id(live) == 101
