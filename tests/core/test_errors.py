"""The error tree: real SQLite and OS failures become one sentence of the right kind."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from queue_admin_gui.core.errors import (
    ENVIRONMENT_KINDS,
    ConfigError,
    ErrorKind,
    NotAQueueDatabaseError,
    OperationCancelled,
    QueueAdminError,
    QueueBackupError,
    QueueDatabaseError,
    QueueMaintenanceError,
    classify_os_error,
    classify_sqlite_error,
    drive_label,
    format_bytes,
    require_free_space,
    translate_error,
)


def real_sqlite_error(tmp_path: Path, case: str) -> sqlite3.Error:
    """Provoke a genuine SQLite failure of the requested sort and return it."""
    path = tmp_path / "real.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS t (x)")
    try:
        if case == "locked":
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")
            try:
                other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
                connection.execute("ROLLBACK")
        elif case == "not a database":
            junk = tmp_path / "junk.db"
            junk.write_bytes(b"definitely not sqlite" * 100)
            reader = sqlite3.connect(junk)
            try:
                reader.execute("SELECT * FROM sqlite_master")
            finally:
                reader.close()
        elif case == "cannot open":
            sqlite3.connect(tmp_path / "missing dir" / "x.db")
        elif case == "read-only":
            reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                reader.execute("INSERT INTO t VALUES (1)")
            finally:
                reader.close()
        elif case == "interrupted":
            connection.set_progress_handler(lambda: 1, 1)
            connection.execute("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
                               "FROM c LIMIT 100000) SELECT count(*) FROM c").fetchone()
        elif case == "bug":
            connection.execute("SELEC nothing")
    except sqlite3.Error as error:
        return error
    finally:
        connection.close()
    raise AssertionError(f"no SQLite error for {case}")


@pytest.mark.parametrize(("case", "kind"), [
    ("locked", ErrorKind.LOCKED),
    ("not a database", ErrorKind.NOT_A_DATABASE),
    ("cannot open", ErrorKind.NOT_FOUND),
    ("read-only", ErrorKind.READ_ONLY),
    ("interrupted", ErrorKind.CANCELLED),
    ("bug", ErrorKind.BUG),
])
def test_real_sqlite_failures_are_sorted_by_kind(tmp_path: Path, case: str,
                                                 kind: ErrorKind) -> None:
    assert classify_sqlite_error(real_sqlite_error(tmp_path, case)) is kind


@pytest.mark.parametrize(("text", "kind"), [
    ("database is locked", ErrorKind.LOCKED),
    ("database disk image is malformed", ErrorKind.CORRUPT),
    ("file is not a database", ErrorKind.NOT_A_DATABASE),
    ("database or disk is full", ErrorKind.DISK_FULL),
    ("interrupted", ErrorKind.CANCELLED),
    ("unable to open database file", ErrorKind.NOT_FOUND),
    ("attempt to write a readonly database", ErrorKind.READ_ONLY),
    ("disk I/O error", ErrorKind.IO),
    ("no such table: x", ErrorKind.BUG),
])
def test_errors_without_a_result_code_are_sorted_by_their_text(text: str,
                                                               kind: ErrorKind) -> None:
    assert classify_sqlite_error(sqlite3.OperationalError(text)) is kind


@pytest.mark.parametrize(("error", "kind"), [
    (FileNotFoundError(errno.ENOENT, "gone"), ErrorKind.NOT_FOUND),
    (PermissionError(errno.EACCES, "no"), ErrorKind.PERMISSION),
    (OSError(errno.ENOSPC, "No space left on device"), ErrorKind.DISK_FULL),
    (OSError(errno.EFBIG, "File too large"), ErrorKind.DISK_FULL),
    (OSError(errno.EROFS, "Read-only file system"), ErrorKind.READ_ONLY),
    (OSError(errno.EIO, "Input/output error"), ErrorKind.IO),
])
def test_os_errors_are_sorted_by_errno(error: OSError, kind: ErrorKind) -> None:
    assert classify_os_error(error) is kind


def test_a_real_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(OSError) as caught:
        (tmp_path / "absent.txt").read_bytes()
    assert classify_os_error(caught.value) is ErrorKind.NOT_FOUND


def test_translate_error_gives_one_actionable_sentence(tmp_path: Path) -> None:
    error = real_sqlite_error(tmp_path, "locked")
    translated = translate_error(error, "Backup of 'queue.db'", QueueBackupError)
    assert isinstance(translated, QueueBackupError)
    assert translated.kind is ErrorKind.LOCKED and translated.is_environment
    assert str(translated).startswith("Backup of 'queue.db' failed: the database is locked by "
                                      "another program; close it or retry (")
    assert str(translated).endswith(").")
    assert translated.__cause__ is error


def test_translate_error_keeps_engine_errors_and_flags_bugs(tmp_path: Path) -> None:
    original = QueueMaintenanceError("Already one sentence.", ErrorKind.INVALID)
    assert translate_error(original, "Anything") is original
    bug = translate_error(ValueError("bad value"), "Requeue")
    assert bug.kind is ErrorKind.BUG and not bug.is_environment
    assert str(bug) == "Requeue failed unexpectedly (ValueError: bad value)."
    cancelled = translate_error(real_sqlite_error(tmp_path, "interrupted"), "VACUUM")
    assert isinstance(cancelled, OperationCancelled)
    assert str(cancelled) == "VACUUM was cancelled; nothing was changed."
    disk = translate_error(OSError(errno.ENOSPC, "No space left"), "Copy", QueueBackupError)
    assert "the disk is full; free some space or choose another folder" in str(disk)


def test_the_tree_and_its_default_kinds() -> None:
    assert issubclass(NotAQueueDatabaseError, QueueDatabaseError)
    for error_class in (QueueDatabaseError, QueueBackupError, QueueMaintenanceError,
                        ConfigError, OperationCancelled):
        assert issubclass(error_class, QueueAdminError)
    assert NotAQueueDatabaseError("x").kind is ErrorKind.NOT_A_QUEUE
    assert ConfigError("x").kind is ErrorKind.INVALID
    assert OperationCancelled("x").kind is ErrorKind.CANCELLED
    assert QueueAdminError("x").kind is ErrorKind.BUG
    assert QueueBackupError("x", ErrorKind.CORRUPT).kind is ErrorKind.CORRUPT
    assert ErrorKind.BUG not in ENVIRONMENT_KINDS and ErrorKind.LOCKED in ENVIRONMENT_KINDS
    assert QueueAdminError("Say it once.").message == "Say it once."


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 bytes"), (512, "512 bytes"), (2048, "2.0 KB"), (5 * 1024 ** 2, "5.0 MB"),
    (int(2.9 * 1024 ** 3), "2.9 GB"), (3 * 1024 ** 4, "3.0 TB"), (5000 * 1024 ** 4, "5000.0 TB"),
])
def test_format_bytes_reads_like_explorer(size: int, text: str) -> None:
    assert format_bytes(size) == text


def test_drive_label_names_the_volume_that_holds_the_path(tmp_path: Path, monkeypatch) -> None:
    mounted = tmp_path / "mnt" / "backups"
    mounted.mkdir(parents=True)
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount",
                        lambda path: Path(path) == mounted.resolve() or real_ismount(path))
    assert drive_label(mounted / "sub dir" / "x.db") == str(mounted.resolve())
    assert drive_label(tmp_path / "elsewhere") != str(mounted.resolve())


def test_a_free_space_refusal_names_the_mount_of_the_folder_not_the_root(
        tmp_path: Path, monkeypatch) -> None:
    mounted = tmp_path / "mnt" / "backups"
    mounted.mkdir(parents=True)
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount",
                        lambda path: Path(path) == mounted.resolve() or real_ismount(path))
    free = shutil.disk_usage(mounted).free
    needed = free + 279 * 1024 * 1024
    with pytest.raises(QueueBackupError) as caught:
        require_free_space(mounted, needed, "Backup", QueueBackupError)
    assert f"not enough free space on {mounted.resolve()}: need {format_bytes(needed)}" in \
        str(caught.value)


def test_require_free_space_passes_then_refuses_with_both_figures(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    assert require_free_space(tmp_path, 1, "Backup") >= 1
    with pytest.raises(QueueBackupError) as caught:
        require_free_space(tmp_path, free * 1000 + 1, "Backup of 'queue.db'", QueueBackupError)
    message = str(caught.value)
    assert caught.value.kind is ErrorKind.DISK_FULL
    assert message.startswith(f"Backup of 'queue.db' refused: not enough free space on "
                              f"{drive_label(tmp_path)}: need ")
    assert " free; free some space or choose another folder." in message


def test_require_free_space_on_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(QueueMaintenanceError) as caught:
        require_free_space(tmp_path / "nope", 1, "VACUUM", QueueMaintenanceError)
    assert caught.value.kind is ErrorKind.NOT_FOUND
