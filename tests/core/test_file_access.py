"""Why a named file cannot be used: missing, a folder, not readable."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from queue_admin_gui.core.demo.queue_file import is_demo_queue
from queue_admin_gui.core.errors import ErrorKind
from queue_admin_gui.core.files.db_files import has_sqlite_header, wal_path
from queue_admin_gui.core.files.file_access import (
    file_problem,
    problem_for_os_error,
    read_file_head,
)


def test_a_readable_file_has_no_problem(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    path.write_bytes(b"x")
    assert file_problem(path) is None


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    kind, what, _advice = file_problem(tmp_path / "nowhere" / "queue.db")
    assert (kind, what) == (ErrorKind.NOT_FOUND, "was not found")


def test_a_folder_is_a_folder(tmp_path: Path) -> None:
    kind, what, advice = file_problem(tmp_path)
    assert (kind, what) == (ErrorKind.INVALID, "is a folder, not a file")
    assert "choose the file" in advice


@pytest.mark.parametrize("error", [
    PermissionError(errno.EACCES, "Permission denied", "q.db"),
    OSError(errno.EACCES, "Access is denied", "q.db"),
], ids=["posix", "windows-errno"])
def test_an_unreadable_file_says_permission_denied(error: OSError) -> None:
    kind, what, advice = problem_for_os_error(error)
    assert kind is ErrorKind.PERMISSION
    assert what == "cannot be read: permission denied"
    assert "read access" in advice


def test_a_windows_access_denied_says_permission_denied() -> None:
    error = OSError(errno.EINVAL, "Access is denied", "q.db")
    error.winerror = 5  # what Windows sets for ERROR_ACCESS_DENIED
    assert problem_for_os_error(error)[:2] == (ErrorKind.PERMISSION,
                                              "cannot be read: permission denied")


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0,
                    reason="needs a file the test user cannot read (root reads everything)")
def test_a_real_unreadable_file_says_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    path.write_bytes(b"x")
    path.chmod(0)
    try:
        assert file_problem(path)[:2] == (ErrorKind.PERMISSION,
                                          "cannot be read: permission denied")
    finally:
        path.chmod(0o600)


def _write_and_close_from_another_process(db: Path) -> None:
    """Another program commits and closes; the last connection to close removes the WAL."""
    script = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.execute(\"INSERT INTO task_queue (type, payload) VALUES ('t', '{}')\")\n"
        "c.commit(); c.close()\n"
    )
    subprocess.run([sys.executable, "-c", script, str(db)], check=True, timeout=60)


def _open_in_this_process(db: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("SELECT COUNT(*) FROM task_queue").fetchone()
    return connection


@pytest.mark.skipif(os.name == "nt",
                    reason="Windows locks belong to a handle; a plain open is harmless")
def test_a_plain_open_and_close_drops_this_process_locks(queue_db: Path) -> None:
    """The hazard the careful reads avoid: closing any descriptor frees SQLite's locks."""
    connection = _open_in_this_process(queue_db)
    try:
        _write_and_close_from_another_process(queue_db)
        assert wal_path(queue_db).exists()  # this process still has the queue open
        with open(queue_db, "rb") as handle:
            handle.read(16)
        _write_and_close_from_another_process(queue_db)
        assert not wal_path(queue_db).exists()  # the other program thought it was the last
    finally:
        connection.close()


def test_reading_the_queue_file_keeps_this_process_locks(queue_db: Path) -> None:
    """Header reads and readability checks leave SQLite's locks on the queue in place."""
    connection = _open_in_this_process(queue_db)
    try:
        assert has_sqlite_header(queue_db)
        assert not is_demo_queue(queue_db)
        assert file_problem(queue_db) is None
        assert read_file_head(queue_db, 16) == b"SQLite format 3\x00"
        _write_and_close_from_another_process(queue_db)
        assert wal_path(queue_db).exists()
        assert connection.execute("SELECT COUNT(*) FROM task_queue").fetchone()[0] == 1
    finally:
        connection.close()
