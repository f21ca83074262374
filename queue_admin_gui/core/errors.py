"""The exception tree of the engine.

Every error the engine raises is a :class:`QueueAdminError` whose message is one sentence an
administrator can act on. Each error also says who is at fault: the *environment* (a locked
file, a full disk, a corrupt backup: the user can do something about it) or the *program*
(a bug: the window shows details to copy). SQLite and OS errors are sorted here, where they
are raised, by :func:`translate_error`.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from .files.disk import volume_label
from .files.side_files import SHM_SUFFIX, side_file


class ErrorKind(enum.Enum):
    """What went wrong, coarsely: the UI and the CLI choose wording and exit codes by it."""

    LOCKED = "locked"
    DISK_FULL = "disk_full"
    CORRUPT = "corrupt"
    NOT_FOUND = "not_found"
    NOT_A_DATABASE = "not_a_database"
    NOT_A_QUEUE = "not_a_queue"
    PERMISSION = "permission"
    READ_ONLY = "read_only"
    IO = "io"
    INVALID = "invalid"
    NAME_TOO_LONG = "name_too_long"
    NOT_A_FOLDER = "not_a_folder"
    ALREADY_EXISTS = "already_exists"
    WORKERS_ACTIVE = "workers_active"
    CANCELLED = "cancelled"
    BUG = "bug"


#: Kinds for which the environment, not the program, is at fault.
ENVIRONMENT_KINDS = frozenset(kind for kind in ErrorKind if kind is not ErrorKind.BUG)


class QueueAdminError(Exception):
    """Base of every error the engine raises on purpose.

    ``str(error)`` is one sentence saying what happened and what to do.
    """

    default_kind = ErrorKind.BUG

    def __init__(self, message: str, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind or self.default_kind

    @property
    def is_environment(self) -> bool:
        """True when the user can fix the cause (lock, space, file); False for a program bug."""
        return self.kind in ENVIRONMENT_KINDS


class QueueDatabaseError(QueueAdminError):
    """Opening or reading the queue database failed."""

    default_kind = ErrorKind.IO


class QueueBackupError(QueueAdminError):
    """A backup, a verification or a restore failed."""

    default_kind = ErrorKind.IO


class QueueMaintenanceError(QueueAdminError):
    """A checkpoint, VACUUM, ANALYZE, integrity check or lease operation failed."""

    default_kind = ErrorKind.IO


class ConfigError(QueueAdminError):
    """The configuration file or an environment override is unusable."""

    default_kind = ErrorKind.INVALID


class NotAQueueDatabaseError(QueueDatabaseError):
    """The file is SQLite but lacks the queue schema; queue operations are refused."""

    default_kind = ErrorKind.NOT_A_QUEUE


class OperationCancelled(QueueAdminError):
    """The user cancelled the operation; nothing was changed by it."""

    default_kind = ErrorKind.CANCELLED


_SQLITE_KINDS = {
    "SQLITE_BUSY": ErrorKind.LOCKED,
    "SQLITE_LOCKED": ErrorKind.LOCKED,
    "SQLITE_FULL": ErrorKind.DISK_FULL,
    "SQLITE_CORRUPT": ErrorKind.CORRUPT,
    "SQLITE_NOTADB": ErrorKind.NOT_A_DATABASE,
    "SQLITE_CANTOPEN": ErrorKind.NOT_FOUND,
    "SQLITE_READONLY": ErrorKind.READ_ONLY,
    "SQLITE_PERM": ErrorKind.PERMISSION,
    "SQLITE_AUTH": ErrorKind.PERMISSION,
    "SQLITE_IOERR": ErrorKind.IO,
    "SQLITE_INTERRUPT": ErrorKind.CANCELLED,
}

_ERRNO_KINDS = {
    errno.ENOSPC: ErrorKind.DISK_FULL,
    errno.EFBIG: ErrorKind.DISK_FULL,
    errno.EDQUOT: ErrorKind.DISK_FULL,
    errno.ENOENT: ErrorKind.NOT_FOUND,
    errno.EACCES: ErrorKind.PERMISSION,
    errno.EPERM: ErrorKind.PERMISSION,
    errno.EROFS: ErrorKind.READ_ONLY,
    errno.ENAMETOOLONG: ErrorKind.NAME_TOO_LONG,
    errno.ENOTDIR: ErrorKind.NOT_A_FOLDER,
    errno.EEXIST: ErrorKind.ALREADY_EXISTS,
    errno.EISDIR: ErrorKind.INVALID,
}

#: Windows errors Python reports under a misleading errno (206 becomes ENOENT).
_WINERROR_KINDS = {
    32: ErrorKind.LOCKED, 33: ErrorKind.LOCKED,  # sharing / lock violation
    39: ErrorKind.DISK_FULL, 112: ErrorKind.DISK_FULL,
    206: ErrorKind.NAME_TOO_LONG,  # ERROR_FILENAME_EXCED_RANGE
    267: ErrorKind.NOT_A_FOLDER,  # ERROR_DIRECTORY
    80: ErrorKind.ALREADY_EXISTS, 183: ErrorKind.ALREADY_EXISTS,
}

#: Advice that depends on the exact OS error, not only on its kind.
_ERRNO_ADVICE = {
    errno.EISDIR: "it is a folder, not a file; choose a file",
}

_ADVICE = {
    ErrorKind.LOCKED: "the database is locked by another program; close it or retry",
    ErrorKind.DISK_FULL: "the disk is full; free some space or choose another folder",
    ErrorKind.CORRUPT: "the database file is damaged; restore it from a backup",
    ErrorKind.NOT_FOUND: "the file or folder does not exist or cannot be opened; check the path",
    ErrorKind.NOT_A_DATABASE: "the file is not an SQLite database; choose another file",
    ErrorKind.PERMISSION: "access was denied; check the file's permissions or run as a user "
    "who may write there",
    ErrorKind.READ_ONLY: "the file or folder is read-only; choose a writable location",
    ErrorKind.IO: "a disk or network error occurred; check the drive and retry",
    ErrorKind.NAME_TOO_LONG: "a name in the path is longer than the file system allows "
    "(255 bytes or characters per name); choose a shorter name or folder",
    ErrorKind.NOT_A_FOLDER: "a part of the path that must be a folder is a file; check the path",
    ErrorKind.ALREADY_EXISTS: "a file or folder of that name already exists; choose another "
    "name or move it away",
    ErrorKind.CANCELLED: "it was cancelled",
}


def classify_sqlite_error(error: sqlite3.Error) -> ErrorKind:
    """Sort an ``sqlite3.Error`` into an :class:`ErrorKind` by its primary result code."""
    name = getattr(error, "sqlite_errorname", None) or ""
    primary = name.split("_")[0:2]
    key = "_".join(primary) if len(primary) == 2 else name
    if key in _SQLITE_KINDS:
        return _SQLITE_KINDS[key]
    text = str(error).lower()
    if "locked" in text or "busy" in text:
        return ErrorKind.LOCKED
    if "malformed" in text or "corrupt" in text:
        return ErrorKind.CORRUPT
    if "not a database" in text:
        return ErrorKind.NOT_A_DATABASE
    if "disk is full" in text or "database or disk is full" in text:
        return ErrorKind.DISK_FULL
    if "interrupted" in text:
        return ErrorKind.CANCELLED
    if "unable to open" in text:
        return ErrorKind.NOT_FOUND
    if "readonly" in text or "read-only" in text:
        return ErrorKind.READ_ONLY
    if "disk i/o" in text:
        return ErrorKind.IO
    return ErrorKind.BUG


def classify_os_error(error: OSError) -> ErrorKind:
    """Sort an ``OSError`` into an :class:`ErrorKind` by its errno (or Windows error)."""
    winerror = getattr(error, "winerror", None)
    if winerror in _WINERROR_KINDS:
        return _WINERROR_KINDS[winerror]
    if error.errno == errno.ENAMETOOLONG:
        return ErrorKind.NAME_TOO_LONG
    if isinstance(error, FileNotFoundError):
        return ErrorKind.NOT_FOUND
    if isinstance(error, PermissionError):
        return ErrorKind.PERMISSION
    return _ERRNO_KINDS.get(error.errno or 0, ErrorKind.IO)


def translate_error(
    error: BaseException,
    action: str,
    error_class: type[QueueAdminError] = QueueAdminError,
    *,
    path: Path | None = None,
) -> QueueAdminError:
    """Turn a low-level exception into an engine error with one actionable sentence.

    ``action`` names what was being done, e.g. ``"Backup of queue.db"``; the
    message reads "<action> failed: <what happened and what to do>.".
    ``path`` is the database SQLite was opening: when SQLite cannot open a file that does
    exist, the real cause is found from the file and its folder (see
    :func:`explain_cannot_open`) instead of calling it missing.
    A :class:`QueueAdminError` is returned unchanged.
    """
    if isinstance(error, QueueAdminError):
        return error
    advice: str | None = None
    if isinstance(error, sqlite3.Error):
        kind = classify_sqlite_error(error)
        if kind is ErrorKind.NOT_FOUND and path is not None:
            kind, advice = explain_cannot_open(Path(path)) or (kind, None)
    elif isinstance(error, OSError):
        kind = classify_os_error(error)
        advice = _ERRNO_ADVICE.get(error.errno or 0)
    else:
        kind = ErrorKind.BUG
    if kind is ErrorKind.CANCELLED:
        return OperationCancelled(f"{action} was cancelled; nothing was changed.")
    advice = advice or _ADVICE.get(kind)
    if advice is None:
        message = f"{action} failed unexpectedly ({type(error).__name__}: {error})."
    else:
        message = f"{action} failed: {advice} ({error})."
    result = error_class(message, kind)
    result.__cause__ = error
    return result


def explain_cannot_open(path: Path) -> tuple[ErrorKind, str] | None:
    """Why SQLite could not open ``path`` although it exists; None when it does not exist.

    The case that misleads most: a WAL database whose ``-shm`` file is missing, in a folder
    nobody may write to (read-only media, a read-only share). Even a read-only connection
    needs the -shm, and SQLite cannot create it there.
    """
    if not path.exists():
        return None
    if path.is_dir():
        return ErrorKind.INVALID, "it is a folder, not a database file; choose the file"
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError as error:
        return classify_os_error(error), f"the file exists but cannot be read ({error.strerror})"
    shm = side_file(path, SHM_SUFFIX)
    is_wal = len(header) == 20 and header[18] == 2 and header[19] == 2
    if is_wal and not shm.exists() and not folder_accepts_files(path.parent):
        return ErrorKind.READ_ONLY, (
            "it cannot be opened, not even read-only, because it is in WAL mode, its -shm "
            f"file is missing and the folder '{path.parent}' is read-only, so SQLite cannot "
            "create the -shm it needs; copy the database (with its -wal, if any) to a "
            "writable folder and open the copy")
    return ErrorKind.IO, "the file exists but SQLite could not open it; check the file"


def folder_accepts_files(folder: Path) -> bool:
    """True when a new file can be created in ``folder`` now (tried, then removed at once).

    Permissions alone do not tell: an administrator passes them, and read-only media or
    an immutable folder still refuse.
    """
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".queue-admin-probe-", dir=folder)
    except OSError:
        return False
    os.close(descriptor)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return True


def format_bytes(size: float) -> str:
    """Format a byte count the way Windows Explorer would: ``"2.9 GB"``, ``"512 KB"``."""
    units = ("bytes", "KB", "MB", "GB", "TB")
    value = float(size)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def drive_label(path: Path) -> str:
    """Name the volume of ``path`` as an admin says it: ``D:``, a UNC share, a mount point."""
    return volume_label(path)


def require_free_space(folder: Path, needed_bytes: int, action: str,
                       error_class: type[QueueAdminError] = QueueAdminError) -> int:
    """Raise a DISK_FULL error naming the volume when ``folder`` has less than ``needed_bytes``.

    The volume is the one that holds ``folder`` (its mount point or drive), and the figure
    is ``needed_bytes`` as given, so it matches what the confirmation before quoted.

    Returns the free bytes found, so callers can report them.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError as error:
        raise translate_error(error, action, error_class) from error
    if free < needed_bytes:
        raise error_class(
            f"{action} refused: not enough free space on {volume_label(folder)}: "
            f"need {format_bytes(needed_bytes)}, {format_bytes(free)} free; "
            "free some space or choose another folder.",
            ErrorKind.DISK_FULL,
        )
    return free
