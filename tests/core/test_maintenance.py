"""QueueMaintenance on real files: checkpoints beside real readers, VACUUM, ANALYZE, integrity."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from queue_admin_gui.core import QueueMaintenance
from queue_admin_gui.core.database import QueueDatabase, closing_connection, connect
from queue_admin_gui.core.errors import (
    ErrorKind,
    NotAQueueDatabaseError,
    OperationCancelled,
    QueueMaintenanceError,
)
from queue_admin_gui.core.files.db_files import file_size, wal_path

SHORT_BUSY_MS = 200


def insert_tasks(connection: sqlite3.Connection, count: int, payload_bytes: int = 2000) -> None:
    payload = json.dumps({"format": "png", "blob": "x" * payload_bytes})
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO task_queue (type, payload) VALUES ('render', ?)",
                           [(payload,)] * count)
    connection.execute("COMMIT")


@pytest.fixture
def fragmented_queue(queue_db: Path) -> Path:
    """A queue file where half the pages are free after a big delete."""
    with closing_connection(connect(queue_db)) as connection:
        insert_tasks(connection, 1500)
        connection.execute("DELETE FROM task_queue WHERE id % 2 = 0")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return queue_db


@pytest.fixture
def plain_sqlite(tmp_path: Path) -> Path:
    """An SQLite file that is not a queue, in rollback-journal mode."""
    path = tmp_path / "plain file.db"
    with closing_connection(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.execute('CREATE TABLE "we""ird" (id INTEGER PRIMARY KEY)')
        connection.executemany("INSERT INTO notes (body) VALUES (?)",
                               [(f"note {number}" * 20,) for number in range(2000)])
        connection.execute("CREATE INDEX ix_notes_body ON notes(body)")
        connection.commit()
    return path


HOLD_READ_SNAPSHOT = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN")
connection.execute("SELECT count(*) FROM task_queue").fetchone()
print("reading", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
"""

HOLD_WRITE_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
"""


@contextlib.contextmanager
def other_program(script: str, path: Path, ready: str) -> Iterator[None]:
    """Run ``script`` in another process on ``path`` until the block ends."""
    process = subprocess.Popen([sys.executable, "-c", script, str(path)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == ready
        yield
    finally:
        process.communicate("\n", timeout=30)
    assert process.returncode == 0


@contextlib.contextmanager
def wal_with_frames(path: Path) -> Iterator[sqlite3.Connection]:
    """Keep a connection open (so the WAL survives) with automatic checkpoints off."""
    with closing_connection(connect(path)) as keeper:
        keeper.execute("PRAGMA wal_autocheckpoint=0")
        insert_tasks(keeper, 50)
        yield keeper


@pytest.mark.parametrize("mode", ["PASSIVE", "full", "Restart", "TRUNCATE"])
def test_checkpoint_copies_every_frame_when_nobody_reads(queue_db: Path, mode: str) -> None:
    with wal_with_frames(queue_db):
        result = QueueMaintenance(queue_db).checkpoint(mode)
    assert result["mode"] == mode.upper()
    assert result["busy"] == 0
    assert result["log_frames"] == result["checkpointed_frames"] > 0
    if mode == "TRUNCATE":  # SQLite's own figures after truncating the WAL to nothing
        assert (result["log"], result["checkpointed"]) == (0, 0)
    else:
        assert result["log"] == result["checkpointed"] == result["log_frames"]
    assert result["wal_bytes_before"] > 0
    assert result["seconds"] >= 0
    if mode == "TRUNCATE":
        assert result["wal_bytes_after"] == 0
    else:
        assert result["wal_bytes_after"] == result["wal_bytes_before"]


@pytest.mark.parametrize(("mode", "busy"), [
    ("PASSIVE", 0), ("FULL", 1), ("RESTART", 1), ("TRUNCATE", 1),
])
def test_a_reader_keeps_frames_in_the_wal(queue_db: Path, mode: str, busy: int) -> None:
    maintenance = QueueMaintenance(queue_db, busy_timeout_ms=SHORT_BUSY_MS)
    with wal_with_frames(queue_db) as keeper, \
            other_program(HOLD_READ_SNAPSHOT, queue_db, "reading"):
        insert_tasks(keeper, 50)  # frames the reader's snapshot does not include
        result = maintenance.checkpoint(mode)
        assert result["busy"] == busy
        assert 0 < result["checkpointed_frames"] < result["log_frames"]
        assert result["wal_bytes_after"] > 0
    assert maintenance.checkpoint("TRUNCATE")["busy"] == 0
    assert file_size(wal_path(queue_db)) == 0


@pytest.mark.parametrize(("mode", "busy"), [("PASSIVE", 0), ("FULL", 1)])
def test_a_checkpoint_kept_from_copying_every_frame_did_not_finish(
        queue_db: Path, mode: str, busy: int) -> None:
    maintenance = QueueMaintenance(queue_db, busy_timeout_ms=SHORT_BUSY_MS)
    with wal_with_frames(queue_db) as keeper, \
            other_program(HOLD_READ_SNAPSHOT, queue_db, "reading"):
        insert_tasks(keeper, 50)
        result = maintenance.run_checkpoint(mode)
    assert (result.mode, result.busy) == (mode, busy)
    assert result.log != result.checkpointed
    assert not result.finished and result.shortfall == "did not finish"
    done = maintenance.run_checkpoint("TRUNCATE")
    assert done.finished and done.shortfall is None
    assert done.as_dict() == {**done.as_dict(), "mode": "TRUNCATE", "busy": 0}


def test_checkpoint_keeps_returning_the_dict_scripts_read(queue_db: Path) -> None:
    with wal_with_frames(queue_db):
        result = QueueMaintenance(queue_db).checkpoint("passive")
    assert isinstance(result, dict)
    assert {"busy", "log", "checkpointed", "mode", "log_frames", "checkpointed_frames",
            "wal_bytes_before", "wal_bytes_after", "seconds"} <= set(result)


def test_an_invalid_checkpoint_mode_is_refused_in_one_sentence(queue_db: Path) -> None:
    with pytest.raises(QueueMaintenanceError) as caught:
        QueueMaintenance(queue_db).checkpoint("NOW")
    assert str(caught.value) == ("Invalid checkpoint mode 'NOW'; use PASSIVE, FULL, RESTART "
                                 "or TRUNCATE.")
    assert caught.value.kind is ErrorKind.INVALID


def test_checkpoint_of_a_file_without_wal_reports_no_frames(plain_sqlite: Path) -> None:
    result = QueueMaintenance(plain_sqlite).checkpoint()
    assert (result["busy"], result["log_frames"], result["checkpointed_frames"]) == (0, -1, -1)


def test_the_original_constants_and_attributes_are_kept(queue_db: Path) -> None:
    with QueueDatabase(queue_db) as db:
        maintenance = QueueMaintenance(db)
        assert maintenance.db is db and maintenance.db_path == queue_db
    assert QueueMaintenance.CHECKPOINT_MODES == ("PASSIVE", "FULL", "RESTART", "TRUNCATE")
    assert QueueMaintenance.CHECKPOINT_TRUNCATE == "TRUNCATE"


def test_vacuum_shrinks_a_fragmented_file(fragmented_queue: Path) -> None:
    maintenance = QueueMaintenance(fragmented_queue)
    before = maintenance.get_database_stats(include_task_counts=False)
    assert before["fragmentation_percent"] > 30
    stages: list[tuple[int, int, str]] = []
    result = maintenance.vacuum(progress=lambda done, total, stage: stages.append(
        (done, total, stage)))
    assert result["size_before"] == before["page_count"] * before["page_size"]
    assert result["size_after"] < result["size_before"] * 0.7
    assert result["freed_bytes"] == result["size_before"] - result["size_after"]
    assert stages[0][0] == 0 and stages[-1][:2] == (3, 3)
    after = maintenance.get_database_stats()
    assert after["freelist_count"] == 0
    assert after["db_size_bytes"] == result["size_after"] == result["file_size_after"]
    assert after["task_counts"]["queued"] == 750
    assert maintenance.integrity_check() == ["ok"]


class _ShortOfSpace(QueueMaintenance):
    """Claims VACUUM needs more room than any disk has, to exercise the refusal."""

    def vacuum_space_needed(self) -> int:
        return 1 << 60


def test_vacuum_refuses_when_free_space_is_short(fragmented_queue: Path) -> None:
    assert QueueMaintenance(fragmented_queue).vacuum_space_needed() >= 2 * file_size(
        fragmented_queue)
    maintenance = _ShortOfSpace(fragmented_queue)
    freelist = maintenance.get_database_stats()["freelist_count"]
    with pytest.raises(QueueMaintenanceError) as caught:
        maintenance.vacuum()
    assert caught.value.kind is ErrorKind.DISK_FULL
    assert "VACUUM of" in str(caught.value) and "not enough free space on" in str(caught.value)
    assert maintenance.get_database_stats()["freelist_count"] == freelist


def test_vacuum_cancelled_before_or_during_the_statement_changes_nothing(
        fragmented_queue: Path) -> None:
    maintenance = QueueMaintenance(fragmented_queue)
    freelist = maintenance.get_database_stats()["freelist_count"]
    with pytest.raises(OperationCancelled):
        maintenance.vacuum(cancelled=lambda: True)
    calls = []

    def cancel_once_running() -> bool:
        calls.append(1)
        return len(calls) > 1  # the first check happens before VACUUM starts

    with pytest.raises(OperationCancelled, match="cancelled; nothing was changed"):
        maintenance.vacuum(cancelled=cancel_once_running)
    assert len(calls) > 1
    assert maintenance.get_database_stats()["freelist_count"] == freelist
    assert maintenance.integrity_check() == ["ok"]


def test_vacuum_on_a_locked_database_waits_then_says_so(fragmented_queue: Path) -> None:
    maintenance = QueueMaintenance(fragmented_queue, busy_timeout_ms=SHORT_BUSY_MS)
    with other_program(HOLD_WRITE_LOCK, fragmented_queue, "locked"):
        with pytest.raises(QueueMaintenanceError) as caught:
            maintenance.vacuum()
        assert caught.value.kind is ErrorKind.LOCKED
        assert "the database is locked by another program; close it or retry" in str(
            caught.value)
        assert maintenance.get_database_stats()["is_queue"]  # reading still works
    assert maintenance.vacuum()["freed_bytes"] > 0


def test_analyze_whole_file_and_one_table(queue_db: Path) -> None:
    with closing_connection(connect(queue_db)) as connection:
        insert_tasks(connection, 20, payload_bytes=10)
    maintenance = QueueMaintenance(queue_db)
    assert maintenance.analyze()["table"] is None
    result = maintenance.analyze("TASK_QUEUE")
    assert result["table"] == "task_queue" and result["seconds"] >= 0
    with closing_connection(connect(queue_db)) as connection:
        analyzed = {row[0] for row in connection.execute("SELECT tbl FROM sqlite_stat1")}
    assert "task_queue" in analyzed
    assert maintenance.pragma_optimize()["seconds"] >= 0


@pytest.mark.parametrize("name", ["task_queue; DROP TABLE workers", 'task_queue"', "",
                                  "sqlite_master", "nonexistent"])
def test_analyze_refuses_a_table_that_is_not_in_the_file(queue_db: Path, name: str) -> None:
    with pytest.raises(QueueMaintenanceError) as caught:
        QueueMaintenance(queue_db).analyze(name)
    assert "has no such table; choose one of task_logs, task_queue, workers" in str(caught.value)
    assert caught.value.kind is ErrorKind.INVALID
    assert QueueMaintenance(queue_db).get_database_stats()["is_queue"]


def test_analyze_quotes_an_odd_but_real_table_name(plain_sqlite: Path) -> None:
    assert QueueMaintenance(plain_sqlite).table_names() == ["notes", 'we"ird']
    assert QueueMaintenance(plain_sqlite).analyze('we"ird')["table"] == 'we"ird'


def test_table_names_lists_the_queue_tables_only(queue_db: Path) -> None:
    maintenance = QueueMaintenance(queue_db)
    maintenance.analyze()  # creates sqlite_stat1, which is SQLite's, not the user's
    assert maintenance.table_names() == ["task_logs", "task_queue", "workers"]


def test_optimize_analyzes_and_vacuums_only_when_full(fragmented_queue: Path) -> None:
    maintenance = QueueMaintenance(fragmented_queue)
    light = maintenance.optimize()
    assert (light["analyzed"], light["vacuumed"], light["vacuum"]) == (True, False, None)
    # ANALYZE may reuse a free page or two for sqlite_stat1, but nothing is rebuilt
    assert light["stats_after"]["freelist_count"] >= light["stats_before"]["freelist_count"] - 2
    assert light["stats_after"]["freelist_count"] > 100
    stages: list[str] = []
    full = maintenance.optimize(full=True, progress=lambda done, total, stage: stages.append(
        stage))
    assert full["vacuumed"] and full["vacuum"]["freed_bytes"] > 0
    assert full["stats_after"]["freelist_count"] == 0
    assert full["stats_after"]["total_size_mb"] < full["stats_before"]["total_size_mb"]
    assert stages[-1] == "Done" and len(stages) == 3


def test_integrity_check_of_clean_files(queue_db: Path, plain_sqlite: Path) -> None:
    assert QueueMaintenance(queue_db).integrity_check() == ["ok"]
    assert QueueMaintenance(queue_db).integrity_check(quick=True) == ["ok"]
    assert QueueMaintenance(plain_sqlite).integrity_check() == ["ok"]


def _damage_index(path: Path) -> None:
    """Overwrite the middle of one page of an index with garbage, as a bad sector would."""
    with closing_connection(sqlite3.connect(path)) as connection:
        root = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'ix_notes_body'").fetchone()[0]
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size + 8)
        handle.write(b"\xff" * (page_size - 16))


def test_integrity_check_reports_a_damaged_file(plain_sqlite: Path) -> None:
    _damage_index(plain_sqlite)
    maintenance = QueueMaintenance(plain_sqlite)
    problems = maintenance.integrity_check()
    assert problems and problems != ["ok"]
    assert len(maintenance.integrity_check(max_errors=1)) == 1
    assert maintenance.integrity_check(quick=True) != ["ok"]


def test_quick_check_says_how_many_problems_it_found(plain_sqlite: Path) -> None:
    assert QueueMaintenance(plain_sqlite).check_integrity(quick=True).problem_count == 0
    _damage_index(plain_sqlite)
    maintenance = QueueMaintenance(plain_sqlite)
    found = maintenance.check_integrity(quick=True)
    assert not found.ok and found.quick
    assert found.problem_count == len(found.problems) > 0
    assert found.problems == maintenance.integrity_check(quick=True)
    assert found.shortfall == f"found {found.count_text()}"
    assert found.count_text() == (f"{found.problem_count} problem"
                                  + ("" if found.problem_count == 1 else "s"))
    capped = maintenance.check_integrity(max_errors=1)
    assert capped.problem_count == 1 and capped.count_text() == "at least 1 problem"


def test_integrity_check_of_a_file_damaged_at_its_schema(plain_sqlite: Path) -> None:
    with open(plain_sqlite, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\xff" * 100)  # the sqlite_master page's header and cell pointers
    (problem,) = QueueMaintenance(plain_sqlite).integrity_check()
    assert "damaged" in problem or "cannot be read" in problem


def test_integrity_check_can_be_cancelled_and_refuses_non_sqlite(
        plain_sqlite: Path, tmp_path: Path) -> None:
    with pytest.raises(OperationCancelled):
        QueueMaintenance(plain_sqlite).integrity_check(cancelled=lambda: True)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 500)
    with pytest.raises(QueueMaintenanceError) as caught:
        QueueMaintenance(junk).integrity_check()
    assert caught.value.kind is ErrorKind.NOT_A_DATABASE


def test_cleanup_stale_leases_counts_requeued_and_dead_lettered(queue_db: Path) -> None:
    with closing_connection(connect(queue_db)) as connection:
        connection.executemany(
            "INSERT INTO task_queue (type, payload, status, attempts, lease_until_utc, locked_by) "
            "VALUES ('t', '{}', 'leased', ?, datetime('now', '-1 hour'), 'gone')",
            [(0,), (4,), (1,)],
        )
    maintenance = QueueMaintenance(queue_db)
    assert maintenance.cleanup_stale_leases(300) == 3
    assert maintenance.cleanup_stale_leases(300) == 0
    assert maintenance.get_database_stats()["task_counts"]["failed"] == 1


def test_cleanup_stale_leases_spares_the_task_of_a_worker_that_still_heartbeats(
        queue_db: Path) -> None:
    with closing_connection(connect(queue_db)) as connection:
        connection.execute("INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
                           "VALUES ('busy', '{}', datetime('now', '-3 seconds'))")
        connection.executemany(
            "INSERT INTO task_queue (type, payload, status, lease_until_utc, locked_by) "
            "VALUES ('t', '{}', 'leased', datetime('now', '-1 hour'), ?)",
            [("busy",), ("gone",)])
    maintenance = QueueMaintenance(queue_db)
    assert maintenance.cleanup_stale_leases(300) == 1
    counts = maintenance.get_database_stats()["task_counts"]
    assert (counts["leased"], counts["queued"]) == (1, 1)


def test_queue_operations_refuse_a_plain_file_but_sqlite_maintenance_works(
        plain_sqlite: Path) -> None:
    maintenance = QueueMaintenance(plain_sqlite)
    with pytest.raises(NotAQueueDatabaseError):
        maintenance.cleanup_stale_leases()
    assert maintenance.analyze()["table"] is None
    assert maintenance.vacuum()["size_after"] > 0
    assert maintenance.integrity_check() == ["ok"]


def test_a_missing_file_is_reported_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no such folder" / "queue.db"
    for operation in (QueueMaintenance(missing).checkpoint, QueueMaintenance(missing).vacuum,
                      QueueMaintenance(missing).integrity_check):
        with pytest.raises(QueueMaintenanceError) as caught:
            operation()
        assert caught.value.kind is ErrorKind.NOT_FOUND
    assert not missing.parent.exists()


def test_several_threads_may_share_one_maintenance_object(fragmented_queue: Path) -> None:
    maintenance = QueueMaintenance(fragmented_queue)
    start = threading.Barrier(5)
    failures: list[BaseException] = []
    results: dict[str, object] = {}

    def run(name: str, operation: object) -> None:
        try:
            start.wait(timeout=30)
            results[name] = operation()  # type: ignore[operator]
        except BaseException as error:  # collected and asserted on below
            failures.append(error)

    operations = {
        "vacuum": maintenance.vacuum,
        "checkpoint": lambda: maintenance.checkpoint("TRUNCATE"),
        "analyze": maintenance.analyze,
        "stats": maintenance.get_database_stats,
        "leases": maintenance.cleanup_stale_leases,
    }
    threads = [threading.Thread(target=run, args=item) for item in operations.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert set(results) == set(operations)
    assert maintenance.get_database_stats()["freelist_count"] == 0
    assert maintenance.integrity_check() == ["ok"]


def test_a_truncate_that_waits_out_a_reader_reports_every_frame_copied(queue_db: Path) -> None:
    """The PASSIVE pass before a TRUNCATE stops at a reader; the TRUNCATE then waits for the
    reader to finish and copies the rest, so the frames it reports are all copied."""
    with wal_with_frames(queue_db) as keeper:
        reader = sqlite3.connect(queue_db, isolation_level=None, check_same_thread=False)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM task_queue").fetchone()
        insert_tasks(keeper, 50)  # frames the reader's snapshot does not include
        threading.Timer(0.3, lambda: reader.execute("COMMIT")).start()
        result = QueueMaintenance(queue_db, busy_timeout_ms=5000).run_checkpoint("TRUNCATE")
        reader.close()
    assert result.finished and result.wal_bytes_after == 0
    assert result.checkpointed_frames == result.log_frames > 0
