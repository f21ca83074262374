"""Demo queue files: real schema, realistic contents, the demo marker, no accidental overwrite."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from queue_admin_gui.core.database import (
    QueueDatabase,
    check_queue_schema,
    closing_connection,
    connect,
    task_counts,
)
from queue_admin_gui.core.demo.queue_file import (
    DEMO_APPLICATION_ID,
    create_demo_queue,
    demo_queue_path,
    is_demo_queue,
)
from queue_admin_gui.core.errors import ErrorKind, QueueAdminError


def _schema(path: Path) -> list[tuple[str, str, str]]:
    with closing_connection(sqlite3.connect(path)) as connection:
        return connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        ).fetchall()


def test_demo_schema_equals_the_real_schema(tmp_path: Path, queue_db: Path) -> None:
    info = create_demo_queue(tmp_path / "demo.db", tasks=50, seed=1)
    assert _schema(info.path) == _schema(queue_db)
    with closing_connection(connect(info.path)) as connection:
        assert check_queue_schema(connection) == []
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA page_size").fetchone()[0] == 4096
        assert connection.execute("PRAGMA application_id").fetchone()[0] == DEMO_APPLICATION_ID


def test_demo_holds_tasks_in_every_interesting_state(tmp_path: Path) -> None:
    info = create_demo_queue(tmp_path / "demo.db", tasks=2000, seed=7)
    assert info.tasks == 2000
    with closing_connection(connect(info.path)) as connection:
        counts = task_counts(connection)
        assert sum(counts.values()) == 2000
        for status in ("queued", "leased", "completed", "failed"):
            assert counts[status] > 0, status
        stale = connection.execute(
            "SELECT count(*) FROM task_queue WHERE status = 'leased' "
            "AND lease_until_utc < datetime('now', '-300 seconds')"
        ).fetchone()[0]
        assert stale >= 3
        kinds = connection.execute(
            "SELECT count(DISTINCT type), count(DISTINCT priority), count(DISTINCT region), "
            "count(DISTINCT format) FROM task_queue"
        ).fetchone()
        assert min(kinds) >= 3
        payload = json.loads(connection.execute("SELECT payload FROM task_queue").fetchone()[0])
        assert "format" in payload
        assert connection.execute("SELECT count(*) FROM workers").fetchone()[0] >= 3
        waiting = connection.execute(
            "SELECT count(*) FROM task_queue WHERE status = 'queued' "
            "AND run_after_utc > datetime('now')"
        ).fetchone()[0]
        assert waiting > 0


def test_same_seed_gives_the_same_tasks(tmp_path: Path) -> None:
    first = create_demo_queue(tmp_path / "a.db", tasks=100, seed=3).path
    second = create_demo_queue(tmp_path / "b.db", tasks=100, seed=3).path
    query = "SELECT type, priority, payload, status FROM task_queue ORDER BY id"
    with closing_connection(connect(first)) as a, closing_connection(connect(second)) as b:
        assert a.execute(query).fetchall() == b.execute(query).fetchall()


def test_a_real_queue_is_not_a_demo(queue_db: Path, tmp_path: Path) -> None:
    assert not is_demo_queue(queue_db)
    assert not is_demo_queue(tmp_path / "missing.db")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 200)
    assert not is_demo_queue(junk)


def test_refuses_to_overwrite_a_real_queue(queue_db: Path) -> None:
    with QueueDatabase(queue_db) as db, db.transaction() as connection:
        connection.execute("INSERT INTO task_queue (type, payload) VALUES ('real', '{}')")
    with pytest.raises(QueueAdminError) as caught:
        create_demo_queue(queue_db, tasks=10)
    assert caught.value.kind is ErrorKind.INVALID
    assert "not a demo queue" in str(caught.value)
    assert str(queue_db) in str(caught.value)
    with closing_connection(connect(queue_db)) as connection:
        assert connection.execute("SELECT type FROM task_queue").fetchall()[0][0] == "real"


def test_refuses_to_overwrite_any_other_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me", encoding="utf-8")
    with pytest.raises(QueueAdminError):
        create_demo_queue(notes, tasks=10)
    assert notes.read_text(encoding="utf-8") == "keep me"


def test_force_replaces_a_real_queue(queue_db: Path) -> None:
    info = create_demo_queue(queue_db, tasks=25, force=True)
    assert is_demo_queue(info.path)
    with closing_connection(connect(queue_db)) as connection:
        assert connection.execute("SELECT count(*) FROM task_queue").fetchone()[0] == 25


def test_a_demo_is_replaced_without_force(tmp_path: Path) -> None:
    path = tmp_path / "demo with spaces" / "queue.db"
    create_demo_queue(path, tasks=30)
    with closing_connection(connect(path)) as connection:  # leave a -wal beside it
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("DELETE FROM task_queue")
        connection.execute("COMMIT")
    create_demo_queue(path, tasks=12)
    with closing_connection(connect(path)) as connection:
        assert connection.execute("SELECT count(*) FROM task_queue").fetchone()[0] == 12
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_negative_task_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(QueueAdminError) as caught:
        create_demo_queue(tmp_path / "demo.db", tasks=-1)
    assert caught.value.kind is ErrorKind.INVALID
    assert not (tmp_path / "demo.db").exists()


def test_demo_queue_path_is_in_the_user_data_folder(isolated_dirs: Path) -> None:
    path = demo_queue_path()
    assert path.name == "queue.db"
    assert path.parent.name == "demo"
    assert "queue-admin" in str(path)
