"""Backup files on disk: their names, their manifests, and what a backup folder lists.

A backup is ``queue_backup_[<name>_]<YYYYMMDD_HHMMSS>[_<n>].db`` with a manifest
``queue_backup_..._<stamp>.manifest.json`` beside it. The manifest records what the backup
should be (checksum, size, pages, task counts, source, time, SQLite version), so that a
later verification can tell a damaged or altered file from a good one. Older backups made
before manifests existed are still listed; they simply have none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import ErrorKind, QueueBackupError, translate_error
from .progress import CancelCheck, ProgressCallback, raise_if_cancelled, report

BACKUP_PREFIX = "queue_backup_"
BACKUP_SUFFIX = ".db"
PARTIAL_SUFFIX = ".partial"
MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT_VERSION = 1
STAMP_FORMAT = "%Y%m%d_%H%M%S"
MAX_NAME_LENGTH = 64
CHUNK_BYTES = 1024 * 1024
STAGE_CHECKSUM = "Computing the checksum"

_NAME_RE = re.compile(
    r"^queue_backup_(?:(?P<name>.+)_)?(?P<stamp>\d{8}_\d{6})(?:_(?P<seq>\d+))?\.db$"
)
_UNSAFE_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{n}" for n in range(10)} | {f"LPT{n}" for n in range(10)}
)
_RENAME_RETRY_SECONDS = 2.0


def manifest_path_for(backup_path: str | Path) -> Path:
    """The manifest beside a backup: ``x_<stamp>.db`` -> ``x_<stamp>.manifest.json``."""
    path = Path(backup_path)
    stem = path.name[: -len(BACKUP_SUFFIX)] if path.name.endswith(BACKUP_SUFFIX) else path.name
    return path.with_name(stem + MANIFEST_SUFFIX)


def sanitize_backup_name(name: str | None) -> str | None:
    r"""Check a user-chosen backup label and return it stripped, or ``None`` when there is none.

    The label becomes part of a file name on Windows, so it is refused rather than silently
    changed when it could not be one: a clear error beats a backup saved under a name the
    admin did not type. Refused: path separators, ``..``, the characters ``<>:"/\\|?*``,
    control characters, Windows reserved device names (CON, NUL, COM1, ...), names ending
    in a dot or space, and names longer than 64 characters. Surrounding whitespace is
    dropped, and a blank label means "no label".
    """
    if name is None:
        return None
    label = unicodedata.normalize("NFC", name).strip()
    if not label:
        return None
    reason = None
    if _UNSAFE_CHARS.search(label):
        reason = ('it contains a character that file names cannot hold '
                  '(<>:"/\\|?* or a control character)')
    elif ".." in label:
        reason = "it contains '..'"
    elif label.split(".")[0].upper().rstrip() in _WINDOWS_RESERVED:
        reason = "it is a name Windows reserves for devices"
    elif label.endswith("."):
        reason = "it ends with a dot"
    elif len(label) > MAX_NAME_LENGTH:
        reason = f"it is longer than {MAX_NAME_LENGTH} characters"
    if reason is not None:
        raise QueueBackupError(
            f"The backup name {name!r} cannot be used because {reason}; "
            "choose a short name of letters, digits, '-' or '_'.",
            ErrorKind.INVALID,
        )
    return label


def backup_file_name(label: str | None, when: datetime, sequence: int = 1) -> str:
    """The file name of a backup; ``sequence`` > 1 adds ``_<n>`` to keep names unique."""
    parts = [BACKUP_PREFIX.rstrip("_")]
    if label:
        parts.append(label)
    parts.append(when.strftime(STAMP_FORMAT))
    if sequence > 1:
        parts.append(str(sequence))
    return "_".join(parts) + BACKUP_SUFFIX


def parse_backup_name(file_name: str) -> tuple[str | None, datetime, int] | None:
    """Label, local time stamp (as an aware UTC datetime) and sequence of a backup file name."""
    match = _NAME_RE.match(file_name)
    if match is None:
        return None
    try:
        local = datetime.strptime(match["stamp"], STAMP_FORMAT)  # noqa: DTZ007 - local time
    except ValueError:
        return None
    return match["name"], local.astimezone().astimezone(timezone.utc), int(match["seq"] or 1)


def is_backup_file_name(file_name: str) -> bool:
    """True for names this tool gives backups (``queue_backup_*.db``), partial files excluded."""
    return file_name.startswith(BACKUP_PREFIX) and file_name.endswith(BACKUP_SUFFIX)


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def file_sha256(path: Path, progress: ProgressCallback | None = None,
                cancelled: CancelCheck | None = None, action: str = "Checksum") -> str:
    """SHA-256 of a file in hex, reading in chunks so progress and cancel work on big files."""
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            done += len(chunk)
            report(progress, done, total, STAGE_CHECKSUM)
            raise_if_cancelled(cancelled, action)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    """Flush a closed file's data to the disk."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_directory(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX only; Windows has no directory handles)."""
    if os.name == "nt":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def retry_on_windows_lock(operation: Callable[[], Any]) -> Any:
    """Run a rename or delete, retrying briefly while Windows says another program has the file."""
    deadline = time.monotonic() + _RENAME_RETRY_SECONDS
    while True:
        try:
            return operation()
        except PermissionError:
            if os.name != "nt" or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write JSON via a temporary file, flush it, then rename: readers see all or nothing."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        retry_on_windows_lock(lambda: os.replace(temporary, path))
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


@dataclass(frozen=True)
class BackupManifest:
    """What a backup should be, written beside it so that verification can prove it intact."""

    format_version: int
    name: str
    sha256: str
    size_bytes: int
    page_count: int
    page_size: int
    task_counts: dict[str, int] | None
    source_path: str
    created_at: str
    sqlite_version: str
    tool_version: str

    @staticmethod
    def manifest_path_for(backup_path: str | Path) -> Path:
        """The manifest path beside ``backup_path``."""
        return manifest_path_for(backup_path)

    @property
    def created_datetime(self) -> datetime | None:
        """``created_at`` as an aware datetime, or None when it cannot be read."""
        try:
            value = datetime.fromisoformat(self.created_at)
        except ValueError:
            return None
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupManifest:
        """Build a manifest from a dict, refusing one that lacks fields or has wrong types."""
        try:
            counts = data.get("task_counts")
            return cls(
                format_version=int(data["format_version"]),
                name=str(data["name"]),
                sha256=str(data["sha256"]).lower(),
                size_bytes=int(data["size_bytes"]),
                page_count=int(data["page_count"]),
                page_size=int(data["page_size"]),
                task_counts=None if counts is None
                else {str(key): int(value) for key, value in dict(counts).items()},
                source_path=str(data["source_path"]),
                created_at=str(data["created_at"]),
                sqlite_version=str(data["sqlite_version"]),
                tool_version=str(data.get("tool_version", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise QueueBackupError(
                f"The backup manifest is incomplete or malformed ({error}); "
                "verify the backup again or use another one.",
                ErrorKind.CORRUPT,
            ) from error

    @classmethod
    def read(cls, path: str | Path) -> BackupManifest:
        """Read a manifest file; a missing or unreadable one raises QueueBackupError."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise translate_error(error, f"Reading the manifest '{path}'", QueueBackupError
                                  ) from error
        except ValueError as error:
            raise QueueBackupError(
                f"The backup manifest '{path}' is not valid JSON; verify the backup again "
                "or use another one.",
                ErrorKind.CORRUPT,
            ) from error
        if not isinstance(data, dict):
            raise QueueBackupError(
                f"The backup manifest '{path}' holds no fields; use another backup.",
                ErrorKind.CORRUPT,
            )
        return cls.from_dict(data)

    def write(self, backup_path: str | Path) -> Path:
        """Write this manifest beside ``backup_path`` atomically; returns the manifest path."""
        target = manifest_path_for(backup_path)
        write_json_atomically(target, self.to_dict())
        return target


@dataclass
class BackupInfo:
    """One backup in a folder, as a list shows it: file, size, time, and manifest if any."""

    path: Path
    size_bytes: int
    created_at: datetime
    manifest: BackupManifest | None = None
    sequence: int = field(default=1, repr=False, compare=False)

    @property
    def size_mb(self) -> float:
        """Size in megabytes (MiB), as the original API reported it."""
        return self.size_bytes / (1024 * 1024)

    @property
    def has_manifest(self) -> bool:
        """False for older backups made before manifests existed, or with an unreadable one."""
        return self.manifest is not None

    @property
    def task_counts(self) -> dict[str, int] | None:
        """Tasks by status at backup time, when the manifest recorded them."""
        return self.manifest.task_counts if self.manifest is not None else None

    @classmethod
    def from_path(cls, path: str | Path) -> BackupInfo:
        """Describe a backup file: time from its manifest, else its name, else its mtime."""
        path = Path(path)
        try:
            stat = path.stat()
        except OSError as error:
            raise translate_error(error, f"Reading the backup '{path}'", QueueBackupError
                                  ) from error
        manifest = None
        manifest_file = manifest_path_for(path)
        if manifest_file.is_file():
            with contextlib.suppress(QueueBackupError):
                manifest = BackupManifest.read(manifest_file)
        parsed = parse_backup_name(path.name)
        created = manifest.created_datetime if manifest is not None else None
        if created is None and parsed is not None:
            created = parsed[1]
        if created is None:
            created = datetime.fromtimestamp(stat.st_mtime, timezone.utc)
        return cls(path=path, size_bytes=stat.st_size, created_at=created, manifest=manifest,
                   sequence=parsed[2] if parsed is not None else 1)


def sqlite_library_version() -> str:
    """The SQLite version the engine runs on, recorded in every manifest."""
    return sqlite3.sqlite_version
