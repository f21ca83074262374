"""Errors name their real cause: a name too long, a file where a folder should be, a name
already taken, a folder where a file should be, and a WAL database on read-only media."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.database import open_read_only
from queue_admin_gui.core.errors import (
    ErrorKind,
    QueueAdminError,
    QueueBackupError,
    classify_os_error,
    folder_accepts_files,
    translate_error,
)
from queue_admin_gui.core.files.db_files import require_existing_file
from queue_admin_gui.core.files.file_names import (
    MAX_LABEL_SIZE,
    NAME_LIMIT,
    aside_name,
    fits,
    name_size,
    sanitize_backup_name,
)


def _raised(action: Callable[[], object]) -> OSError:
    try:
        action()
    except OSError as error:
        return error
    raise AssertionError("no OSError")


def real_os_error(tmp_path: Path, case: str) -> OSError:
    """Provoke a genuine operating-system failure of the requested sort."""
    a_file = tmp_path / "a file.txt"
    a_file.write_text("x", encoding="utf-8")
    if case == "name too long":
        return _raised(lambda: open(tmp_path / ("n" * 300), "xb"))
    if case == "not a folder":
        return _raised(lambda: open(a_file / "inside.db", "xb"))
    if case == "already exists":
        return _raised(lambda: os.mkdir(a_file))
    return _raised(lambda: open(tmp_path, "rb"))  # "is a folder"


@pytest.mark.parametrize(("case", "kind", "words"), [
    ("name too long", ErrorKind.NAME_TOO_LONG, "longer than the file system allows"),
    ("not a folder", ErrorKind.NOT_A_FOLDER, "must be a folder is a file"),
    ("already exists", ErrorKind.ALREADY_EXISTS, "already exists"),
    ("is a folder", ErrorKind.INVALID, "it is a folder, not a file"),
])
def test_real_os_errors_name_their_cause(tmp_path: Path, case: str, kind: ErrorKind,
                                         words: str) -> None:
    error = real_os_error(tmp_path, case)
    assert classify_os_error(error) is kind
    translated = translate_error(error, "Writing the backup")
    assert translated.kind is kind and words in str(translated)
    assert "disk or network error" not in str(translated)


@pytest.mark.parametrize(("make", "kind", "words"), [
    (lambda tmp: tmp / ("n" * 300) / "q.db", ErrorKind.NAME_TOO_LONG, "longer than"),
    (lambda tmp: tmp / "a file.txt" / "q.db", ErrorKind.NOT_A_FOLDER, "is a file"),
    (lambda tmp: tmp, ErrorKind.INVALID, "is a folder, not a file"),
    (lambda tmp: tmp / "nothing.db", ErrorKind.NOT_FOUND, "not found"),
])
def test_require_existing_file_says_why_it_is_unusable(tmp_path: Path, make: Callable,
                                                       kind: ErrorKind, words: str) -> None:
    (tmp_path / "a file.txt").write_text("x", encoding="utf-8")
    with pytest.raises(QueueAdminError) as caught:
        require_existing_file(make(tmp_path), "Opening the queue")
    assert caught.value.kind is kind and words in str(caught.value)


def test_a_label_whose_bytes_do_not_fit_is_refused_before_anything_is_made(
        queue_db: Path, tmp_path: Path) -> None:
    emoji = "\N{GRINNING FACE}"
    label = emoji * 64  # 64 characters pass the length rule; 256 bytes do not fit
    with pytest.raises(QueueBackupError) as caught:
        sanitize_backup_name(label)
    assert caught.value.kind is ErrorKind.NAME_TOO_LONG
    assert "256 bytes" in str(caught.value)
    engine = QueueBackup(queue_db, tmp_path / "labels")
    with pytest.raises(QueueBackupError) as caught:
        engine.backup(label)
    assert caught.value.kind is ErrorKind.NAME_TOO_LONG
    assert list(engine.backup_dir.iterdir()) == []


def test_the_longest_label_that_fits_makes_a_real_backup(queue_db: Path, tmp_path: Path) -> None:
    label = "\N{GRINNING FACE}" * (MAX_LABEL_SIZE // 4)
    assert sanitize_backup_name(label) == label
    engine = QueueBackup(queue_db, tmp_path / "labels")
    first, second = engine.backup(label).path, engine.backup(label).path
    assert first != second and first.is_file() and second.is_file()
    assert all(fits(path.name) for path in engine.backup_dir.iterdir())


@pytest.mark.parametrize("original", ["queue.db", "q" * 250 + ".db",
                                      "\N{GRINNING FACE}" * 60 + ".db"])
def test_aside_names_fit_with_every_side_file_suffix(tmp_path: Path, original: str) -> None:
    tag = "corrupt-20261201_120000"
    name = aside_name(original, tag)
    assert name.endswith("." + tag)
    for suffix in ("", "-wal", "-shm", "-journal", "_999-journal"):
        assert name_size(name + suffix) <= NAME_LIMIT
    if fits(original + "." + tag, 12):
        assert name == f"{original}.{tag}"
    else:
        (tmp_path / name).write_bytes(b"")  # the file system accepts it
        (tmp_path / (name + "_999-journal")).write_bytes(b"")
        assert aside_name(original[:-1] + "x", tag) != name  # cut names stay apart


# -- a WAL database on read-only media without its -shm ------------------------------------

@pytest.fixture
def read_only_wal_db(tmp_path: Path):
    """A WAL database left without -shm (clean close), then its folder made read-only."""
    from undeletable import undeletable

    folder = tmp_path / "read-only media"
    folder.mkdir()
    path = folder / "queue.db"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()
    assert sorted(item.name for item in folder.iterdir()) == ["queue.db"]
    with undeletable(folder):
        assert not folder_accepts_files(folder)
        yield path


def test_a_wal_database_on_read_only_media_without_its_shm_is_not_called_missing(
        read_only_wal_db: Path) -> None:
    with pytest.raises(QueueAdminError) as caught:
        open_read_only(read_only_wal_db)
    error = caught.value
    assert error.kind is ErrorKind.READ_ONLY
    text = str(error)
    assert "-shm file is missing" in text and "is read-only" in text
    assert "does not exist" not in text and "not found" not in text


def test_folder_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    assert folder_accepts_files(tmp_path)
    assert list(tmp_path.iterdir()) == []
