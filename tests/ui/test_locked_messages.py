""""The database is locked" messages name the programs that hold the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from _tab_fixtures import lock_held

from queue_admin_gui.app.messages import Level
from queue_admin_gui.core.database import connect
from queue_admin_gui.core.errors import QueueDatabaseError, translate_error
from queue_admin_gui.core.restore.write_access import blocked_sentence


def take_write_lock(path: Path) -> None:
    connection = connect(path, busy_timeout_ms=100)
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        raise translate_error(error, f"Writing to '{path}'", QueueDatabaseError) from error
    finally:
        connection.close()


def test_a_locked_error_in_a_job_names_the_holder(qtbot, session, presenter, queue_db: Path):
    session.set_database(queue_db, True)
    with lock_held(queue_db) as holder:
        job = session.run("Write something", lambda progress, cancelled:
                          take_write_lock(queue_db))
        qtbot.waitUntil(lambda: job.is_finished, timeout=30_000)
    errors = presenter.texts(Level.ERROR)
    assert len(errors) == 1
    assert "locked" in errors[0]
    assert f"PID {holder.pid}" in errors[0] and "Programs with the database open" in errors[0]


def test_other_errors_are_left_as_they_are(qtbot, session, presenter, tmp_path: Path):
    session.set_database(tmp_path / "queue.db", True)
    job = session.run("Read something", lambda progress, cancelled: (_ for _ in ()).throw(
        QueueDatabaseError("The file is gone; open another one.")))
    qtbot.waitUntil(lambda: job.is_finished, timeout=30_000)
    assert presenter.texts(Level.ERROR) == ["The file is gone; open another one."]


def test_the_restore_blocked_sentence_names_the_holder(queue_db: Path):
    with lock_held(queue_db) as holder:
        text = blocked_sentence(queue_db, 30)
    assert "Restore not started" in text and f"PID {holder.pid}" in text
