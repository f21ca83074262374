"""Where the queue's files are and what they are, before any connection is opened.

The database path (``PRISMQ_QUEUE_DB_PATH`` or the platform default), its ``-wal`` and
``-shm`` side files (spelled by :mod:`.side_files`), sizes that treat a missing side file as
empty, the ``file:`` URI SQLite needs for drive letters and shares, and the checks that a
path names a regular SQLite file.
Nothing here imports ``sqlite3``: these answers must hold even when SQLite cannot open the file.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from urllib.parse import quote

from ..errors import (
    ErrorKind,
    QueueAdminError,
    QueueDatabaseError,
    classify_os_error,
    translate_error,
)
from .file_access import read_file_head
from .side_files import SHM_SUFFIX, WAL_SUFFIX, side_file

ENV_DB_PATH = "PRISMQ_QUEUE_DB_PATH"
SQLITE_HEADER = b"SQLite format 3\x00"


def default_db_path() -> Path:
    """The queue file PrismQ uses: ``PRISMQ_QUEUE_DB_PATH``, else the platform default."""
    override = os.environ.get(ENV_DB_PATH)
    if override:
        return Path(override)
    if sys.platform == "win32":
        return Path(r"C:\Data\PrismQ\queue\queue.db")
    return Path("/tmp/prismq/queue/queue.db")  # noqa: S108 - the documented PrismQ default


def wal_path(db_path: str | Path) -> Path:
    """The ``-wal`` file beside a database."""
    return side_file(db_path, WAL_SUFFIX)


def shm_path(db_path: str | Path) -> Path:
    """The ``-shm`` file beside a database."""
    return side_file(db_path, SHM_SUFFIX)


def file_size(path: str | Path) -> int:
    """Size of a file in bytes, 0 when it does not exist (a missing -wal is an empty WAL)."""
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        return 0


def sqlite_uri(path: str | Path, **params: str) -> str:
    """An SQLite ``file:`` URI for ``path``, correct for drive letters, UNC shares and spaces."""
    posix = Path(path).absolute().as_posix()
    if posix.startswith("//"):  # UNC share: keep the authority empty
        posix = "//" + posix
    elif not posix.startswith("/"):  # C:/... on Windows
        posix = "/" + posix
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return "file:" + quote(posix, safe="/:") + (f"?{query}" if query else "")


def has_sqlite_header(path: str | Path) -> bool:
    """True when the file starts with the SQLite magic string."""
    try:
        return read_file_head(path, len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def describe_path(path: Path) -> str:
    """A path as error sentences quote it."""
    return f"'{path}'"


def require_existing_file(path: str | Path, action: str,
                          error_class: type[QueueAdminError] = QueueDatabaseError) -> Path:
    """Return ``path`` as a Path, or raise an error naming it and the real cause.

    NOT_FOUND only when nothing is there; a folder in its place is INVALID, a file where
    a folder of the path should be is NOT_A_FOLDER, an over-long name NAME_TOO_LONG.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if isinstance(error, FileNotFoundError) and classify_os_error(error) is ErrorKind.NOT_FOUND:
            raise error_class(
                f"{action} failed: {describe_path(path)} not found; check the path or choose "
                "another file.", ErrorKind.NOT_FOUND) from error
        raise translate_error(error, action, error_class) from error
    if stat.S_ISDIR(mode):
        raise error_class(f"{action} failed: {describe_path(path)} is a folder, not a file; "
                          "choose a file.", ErrorKind.INVALID)
    if not stat.S_ISREG(mode):
        raise error_class(f"{action} failed: {describe_path(path)} is not a regular file (a "
                          "device or a pipe); choose a file.", ErrorKind.INVALID)
    return path
