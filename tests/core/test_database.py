"""Connections, the read-only open, the schema check, QueueDatabase and the Qt-free core."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from queue_admin_gui.core.database import (
    QueueDatabase,
    check_queue_schema,
    closing_connection,
    connect,
    database_path_of,
    open_read_only,
    require_queue_schema,
    task_counts,
    write_transaction,
    writer_lock,
)
from queue_admin_gui.core.errors import (
    ErrorKind,
    NotAQueueDatabaseError,
    QueueBackupError,
    QueueDatabaseError,
)
from queue_admin_gui.core.files.db_files import (
    default_db_path,
    file_size,
    has_sqlite_header,
    require_existing_file,
    shm_path,
    sqlite_uri,
    wal_path,
)
from queue_admin_gui.core.schema import (
    KNOWN_STATUSES,
    QUEUE_TABLES,
    REQUIRED_COLUMNS,
    SCHEMA_SQL,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def plain_sqlite(tmp_path: Path) -> Path:
    path = tmp_path / "plain.db"
    with closing_connection(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE task_queue (id INTEGER PRIMARY KEY, status TEXT)")
        connection.commit()
    return path


def test_default_path_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    assert default_db_path() == tmp_path / "default" / "queue.db"
    monkeypatch.delenv("PRISMQ_QUEUE_DB_PATH")
    expected = "queue.db" if sys.platform != "win32" else r"C:\Data\PrismQ\queue\queue.db"
    assert default_db_path().name == Path(expected).name


def test_side_files_and_sizes(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    assert wal_path(path) == tmp_path / "q.db-wal"
    assert shm_path(path) == tmp_path / "q.db-shm"
    assert file_size(path) == 0
    path.write_bytes(b"12345")
    assert file_size(path) == 5
    assert not has_sqlite_header(path) and not has_sqlite_header(tmp_path / "none")


def test_uris_survive_spaces_and_url_characters(tmp_path: Path) -> None:
    folder = tmp_path / "odd # folder ? with %20 spaces"
    path = folder / "queue file.db"
    with QueueDatabase(path) as db:
        db.initialize_schema()
    assert sqlite_uri(path, mode="ro").startswith("file:/")
    assert "#" not in sqlite_uri(path) and "?" not in sqlite_uri(path)
    with closing_connection(open_read_only(path)) as connection:
        assert check_queue_schema(connection) == []
    assert has_sqlite_header(path)


def test_require_existing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(QueueBackupError) as caught:
        require_existing_file(tmp_path / "gone.db", "Verify", QueueBackupError)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert str(tmp_path / "gone.db") in str(caught.value)


def test_connect_applies_writer_pragmas_without_touching_the_journal_mode(
        plain_sqlite: Path) -> None:
    with closing_connection(connect(plain_sqlite, busy_timeout_ms=1234)) as connection:
        pragma = {name: connection.execute(f"PRAGMA {name}").fetchone()[0]
                  for name in ("busy_timeout", "foreign_keys", "synchronous", "temp_store",
                               "journal_mode", "cache_size")}
        assert connection.in_transaction is False
        row = connection.execute("SELECT 1 AS one").fetchone()
    assert pragma == {"busy_timeout": 1234, "foreign_keys": 1, "synchronous": 1,
                      "temp_store": 2, "journal_mode": "delete", "cache_size": -20000}
    assert row["one"] == 1


def test_connect_refuses_a_missing_file_unless_asked_to_create(tmp_path: Path) -> None:
    missing = tmp_path / "new folder" / "q.db"
    with pytest.raises(QueueDatabaseError) as caught:
        connect(missing)
    assert caught.value.kind is ErrorKind.NOT_FOUND and not missing.exists()
    with closing_connection(connect(missing, create=True)):
        assert missing.exists()


def test_connect_to_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(QueueDatabaseError) as caught:
        connect(junk)
    assert caught.value.kind is ErrorKind.NOT_A_DATABASE
    assert "the file is not an SQLite database; choose another file" in str(caught.value)
    with pytest.raises(QueueBackupError) as caught_ro:
        open_read_only(junk, error_class=QueueBackupError)
    assert caught_ro.value.kind is ErrorKind.NOT_A_DATABASE


def test_read_only_open_reads_a_queue_but_cannot_change_it(queue_db: Path) -> None:
    with closing_connection(connect(queue_db)) as writer:
        writer.execute("INSERT INTO task_queue (type, payload, compatibility) "
                       "VALUES ('t', '{\"format\": \"mp4\"}', '{\"region\": \"eu\"}')")
    before = queue_db.read_bytes()
    with closing_connection(open_read_only(queue_db)) as connection:
        row = connection.execute("SELECT region, format FROM task_queue").fetchone()
        assert (row["region"], row["format"]) == ("eu", "mp4")
        assert connection.execute("PRAGMA query_only").fetchone()[0] == 1
        with pytest.raises(sqlite3.Error):
            connection.execute("DELETE FROM task_queue")
        with pytest.raises(sqlite3.Error):
            connection.execute("ATTACH DATABASE ':memory:' AS other")
        with pytest.raises(sqlite3.Error):
            connection.execute("SELECT load_extension('x')")
    assert queue_db.read_bytes() == before
    with pytest.raises(QueueDatabaseError) as caught:
        open_read_only(queue_db.parent / "missing.db")
    assert caught.value.kind is ErrorKind.NOT_FOUND


def test_schema_check_lists_what_is_missing(plain_sqlite: Path, queue_db: Path) -> None:
    with closing_connection(open_read_only(queue_db)) as connection:
        assert check_queue_schema(connection) == []
        require_queue_schema(connection, queue_db, "Requeue")
    with closing_connection(open_read_only(plain_sqlite)) as connection:
        problems = check_queue_schema(connection)
        assert problems[0].startswith("task_queue lacks columns: type, priority, payload")
        assert problems[1:] == ["table workers is missing", "table task_logs is missing"]
        with pytest.raises(NotAQueueDatabaseError) as caught:
            require_queue_schema(connection, plain_sqlite, "Requeue")
    assert str(caught.value).startswith(f"Requeue refused: '{plain_sqlite}' is not a PrismQ "
                                        "queue database (task_queue lacks columns")
    assert str(caught.value).endswith("only plain SQLite maintenance works on it.")


def test_task_counts_list_every_known_status(queue_db: Path) -> None:
    with closing_connection(connect(queue_db)) as connection:
        connection.executemany("INSERT INTO task_queue (type, payload, status) "
                               "VALUES ('t', '{}', ?)", [("queued",), ("queued",), ("odd",)])
        counts = task_counts(connection)
    assert set(KNOWN_STATUSES) <= set(counts)
    assert (counts["queued"], counts["failed"], counts["odd"]) == (2, 0, 1)


def test_write_transaction_commits_or_rolls_back(queue_db: Path) -> None:
    with closing_connection(connect(queue_db)) as connection:
        with write_transaction(connection):
            connection.execute("INSERT INTO workers (worker_id, capabilities) VALUES ('a', '')")
        with pytest.raises(RuntimeError), write_transaction(connection):
            connection.execute("INSERT INTO workers (worker_id, capabilities) VALUES ('b', '')")
            raise RuntimeError("stop")
        assert not connection.in_transaction
        names = [row[0] for row in connection.execute("SELECT worker_id FROM workers")]
    assert names == ["a"]


def test_a_failed_commit_does_not_leave_the_write_lock_held(queue_db: Path) -> None:
    """A COMMIT SQLite refuses must roll back, or every worker stays blocked behind it."""
    with QueueDatabase(queue_db) as db:
        with pytest.raises(sqlite3.IntegrityError), db.transaction() as connection:
            connection.execute("PRAGMA defer_foreign_keys=ON")
            connection.execute("INSERT INTO task_logs (task_id, level) VALUES (999, 'INFO')")
        assert not db.get_connection().in_transaction
        other = connect(queue_db, busy_timeout_ms=100)
        try:
            with write_transaction(other):
                other.execute("INSERT INTO workers (worker_id, capabilities) VALUES ('w', '')")
        finally:
            other.close()
        with db.transaction() as connection:
            assert connection.execute("SELECT count(*) FROM task_logs").fetchone()[0] == 0


def test_closing_connection_closes_even_on_error(queue_db: Path) -> None:
    connection = connect(queue_db)
    with pytest.raises(KeyError), closing_connection(connection):
        raise KeyError("x")
    with pytest.raises(sqlite3.ProgrammingError):
        connection.execute("SELECT 1")


def test_queue_database_keeps_the_original_api(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "queue.db"
    db = QueueDatabase(path)
    assert db.db_path == db.path == path and repr(db) == f"QueueDatabase({str(path)!r})"
    db.initialize_schema()
    db.initialize_schema()  # idempotent
    assert db.check_schema() == []
    assert db.get_connection() is db.get_connection()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA page_size").fetchone()[0] == 4096
    with db.transaction() as connection:
        connection.execute("INSERT INTO task_queue (type, payload) VALUES ('t', '{}')")
    with pytest.raises(ValueError), db.transaction() as connection:
        connection.execute("INSERT INTO task_queue (type, payload) VALUES ('u', '{}')")
        raise ValueError("undo")
    row = db.execute("SELECT type, status, attempts, max_attempts FROM task_queue").fetchone()
    assert (row["type"], row["status"], row["attempts"], row["max_attempts"]) == (
        "t", "queued", 0, 5)
    other = db.connect()
    try:
        assert other is not db.get_connection()
        assert other.execute("SELECT count(*) FROM task_queue").fetchone()[0] == 1
    finally:
        other.close()
    db.close()
    db.close()
    with QueueDatabase(path) as again:
        assert again.execute("SELECT count(*) FROM task_queue").fetchone()[0] == 1
    assert database_path_of(db) == path and database_path_of(str(path)) == path
    assert QueueDatabase().path == tmp_path / "default" / "queue.db"


def test_queue_database_on_a_foreign_file_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"garbage" * 2000)
    with pytest.raises(QueueDatabaseError) as caught:
        QueueDatabase(junk).initialize_schema()
    assert caught.value.kind is ErrorKind.NOT_A_DATABASE


def test_schema_matches_the_contract(tmp_path: Path) -> None:
    with closing_connection(sqlite3.connect(tmp_path / "s.db")) as connection:
        connection.executescript(SCHEMA_SQL)
        for table, columns in REQUIRED_COLUMNS.items():
            present = [row[1] for row in connection.execute(f"PRAGMA table_xinfo({table})")]
            assert set(columns) <= set(present)
        indexes = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'")}
    assert QUEUE_TABLES == ("task_queue", "workers", "task_logs")
    assert indexes == {"ix_task_status_prio_time", "ix_task_type_status", "ix_task_region",
                       "ix_task_format", "uq_task_idempotency", "ix_logs_task"}


def test_writer_lock_is_one_reentrant_lock_per_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lock = writer_lock(tmp_path / "q.db")
    assert writer_lock(Path("q.db")) is lock
    assert writer_lock(tmp_path / "other.db") is not lock
    with lock, lock:  # reentrant: optimize holds it while calling analyze and vacuum
        acquired = threading.Event()

        def try_from_another_thread() -> None:
            if lock.acquire(blocking=False):
                acquired.set()
                lock.release()

        thread = threading.Thread(target=try_from_another_thread)
        thread.start()
        thread.join(timeout=30)
    assert not acquired.is_set()


CHECK_NO_QT = """
import importlib, json, pkgutil, sys
import queue_admin_gui.core as core
names = [info.name for info in pkgutil.walk_packages(core.__path__, core.__name__ + ".")]
for name in names:
    importlib.import_module(name)
qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"))
print(json.dumps({"modules": names, "qt": qt}))
"""


def test_the_core_never_imports_qt() -> None:
    result = subprocess.run([sys.executable, "-c", CHECK_NO_QT], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"queue_admin_gui.core.maintenance", "queue_admin_gui.core.leases.manager",
            "queue_admin_gui.core.settings.config", "queue_admin_gui.core.measurements.stats"
            } <= set(report["modules"])
    assert report["qt"] == []
