"""Telling a backup path from the live database and the files SQLite keeps beside it.

SQLite treats ``<db>-wal``, ``<db>-shm`` and ``<db>-journal`` as part of ``<db>``: it reads
them, rewrites them and deletes them. A "backup" stored under one of those names (or the
live file itself, also reached through a symbolic or hard link) would be opened as such and
could be overwritten or deleted, so such paths are refused before anything opens them.
The same holds the other way round: the live database must not be a side file of the
backup, which SQLite would read while opening the backup.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ErrorKind, QueueBackupError
from ..files.side_files import JOURNAL_SUFFIX, SHM_SUFFIX, WAL_SUFFIX

#: The files SQLite keeps beside a database, by suffix, with how a sentence names them.
SIDE_FILES: tuple[tuple[str, str], ...] = (
    ("", "the file itself"),
    *((suffix, f"the {suffix} file") for suffix in (WAL_SUFFIX, SHM_SUFFIX, JOURNAL_SUFFIX)),
)


def _spelled_alike(first: Path, second: Path) -> bool:
    """Same path once links and case (on Windows) are resolved, whether or not it exists."""
    def canonical(path: Path) -> str:
        return os.path.normcase(os.path.realpath(os.path.abspath(path)))

    return canonical(first) == canonical(second)


def _same_file(first: Path, second: Path) -> bool:
    """Same file on disk: one device and one inode (a hard link has both), or one name."""
    if _spelled_alike(first, second):
        return True
    try:
        one, other = os.stat(first), os.stat(second)
    except OSError:
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino) and one.st_ino != 0


def live_file_conflict(backup_path: str | Path, live_path: str | Path) -> str | None:
    """Say how ``backup_path`` is part of the live database, or None when it is not.

    The answer is a clause such as ``"'q.db-wal' is the -wal file of the live database
    'q.db'"``. It is also given when the live database is itself a side file of the backup.
    Only ``os.stat`` and path arithmetic are used: nothing is opened.
    """
    backup, live = Path(backup_path), Path(live_path)
    for suffix, role in SIDE_FILES:
        if any(_same_file(backup, Path(f"{name}{suffix}")) for name in _spellings(live)):
            return f"'{backup}' is {role} of the live database '{live}'"
    for suffix, role in SIDE_FILES[1:]:
        if any(_same_file(live, Path(f"{name}{suffix}")) for name in _spellings(backup)):
            return (f"the live database '{live}' is {role} SQLite would open beside "
                    f"'{backup}'")
    return None


def _spellings(path: Path) -> list[Path]:
    """``path`` as given and with its links resolved: SQLite keeps side files beside the latter.

    A database reached through a symbolic link has its -wal, -shm and -journal beside the
    file the link points to, not beside the link, so both names are compared.
    """
    resolved = Path(os.path.realpath(os.path.abspath(path)))
    return [path] if resolved == path else [path, resolved]


def refuse_live_side_paths(backup_path: str | Path, live_path: str | Path,
                           action: str) -> None:
    """Raise QueueBackupError (kind INVALID) when ``backup_path`` is part of the live database.

    Call it before anything opens the backup (verify, restore): a path that is the live
    file, or its -wal, -shm or -journal, by name, symbolic link or hard link, is refused
    with a sentence naming which, and so is a backup whose own side-file name is the live
    database. ``action`` begins the sentence, e.g. ``"Restoring 'queue.db' from 'x'"``.
    """
    conflict = live_file_conflict(backup_path, live_path)
    if conflict is not None:
        raise QueueBackupError(f"{action} refused: {conflict}; it is not a backup and was not "
                               "opened, so nothing was changed; choose a backup file stored "
                               "apart from the database.", ErrorKind.INVALID)
