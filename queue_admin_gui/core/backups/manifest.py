"""Backup files on disk: their names, their manifests, and what a backup folder lists.

A backup is ``queue_backup_[<name>_]<YYYYMMDD_HHMMSS>[_<n>].db`` with a manifest
``queue_backup_..._<stamp>.manifest.json`` beside it. The manifest records what the backup
should be (checksum, size, pages, task counts, source, time, SQLite version), so that a
later verification can tell a damaged or altered file from a good one. Older backups made
before manifests existed are still listed; they simply have none.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ErrorKind, QueueBackupError, classify_os_error, translate_error
from ..files.bounded_json import UnreadableJson, read_json_object
from ..files.durable import write_json_atomically

BACKUP_PREFIX = "queue_backup_"
BACKUP_SUFFIX = ".db"
PARTIAL_SUFFIX = ".partial"
MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT_VERSION = 1
STAMP_FORMAT = "%Y%m%d_%H%M%S"

_NAME_RE = re.compile(
    r"^queue_backup_(?:(?P<name>.+)_)?(?P<stamp>\d{8}_\d{6})(?:_(?P<seq>\d+))?\.db$"
)
#: Times outside these years are refused: they cannot be a backup's, and the extremes of
#: ``datetime`` break time-zone conversion and arithmetic.
EARLIEST_YEAR = 1970
LATEST_YEAR = 9000


def manifest_path_for(backup_path: str | Path) -> Path:
    """The manifest beside a backup: ``x_<stamp>.db`` -> ``x_<stamp>.manifest.json``."""
    path = Path(backup_path)
    stem = path.name[: -len(BACKUP_SUFFIX)] if path.name.endswith(BACKUP_SUFFIX) else path.name
    return path.with_name(stem + MANIFEST_SUFFIX)


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
        when = checked_time(local.astimezone())
    except (ValueError, OverflowError, OSError):
        return None
    return match["name"], when, int(match["seq"] or 1)


def checked_time(value: datetime) -> datetime:
    """``value`` in UTC, or ValueError when its year is implausible or it cannot be converted.

    A time that passes can be converted to local time and compared with any other.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        utc = value.astimezone(timezone.utc)
        utc.astimezone()
    except (OverflowError, OSError, ValueError) as error:
        raise ValueError("it cannot be converted to local time") from error
    if not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        raise ValueError(f"year {utc.year} is outside {EARLIEST_YEAR}-{LATEST_YEAR}")
    return utc


def is_backup_file_name(file_name: str) -> bool:
    """True for names this tool gives backups (``queue_backup_*.db``), partial files excluded."""
    return file_name.startswith(BACKUP_PREFIX) and file_name.endswith(BACKUP_SUFFIX)


#: The label of a file rebuilt from the point-in-time archive (``restore --at``): it holds the
#: queue as it was at an earlier instant, so it is no backup of the queue as it is.
REBUILT_LABEL = "at"


def is_rebuilt_file_name(file_name: str) -> bool:
    """True for a file rebuilt to an instant from the archive (``queue_backup_at_*.db``)."""
    parsed = parse_backup_name(file_name)
    return parsed is not None and parsed[0] == REBUILT_LABEL


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


MAX_MANIFEST_BYTES = 1024 * 1024
MAX_MANIFEST_DEPTH = 16


class ManifestUnreadable(QueueBackupError):
    """A manifest that cannot be used; ``reason`` says why as a short phrase for listings."""

    def __init__(self, reason: str, path: Path | None = None,
                 kind: ErrorKind = ErrorKind.CORRUPT, message: str | None = None) -> None:
        where = f" '{path}'" if path is not None else ""
        super().__init__(message or f"The backup manifest{where} cannot be used: {reason}; "
                         "verify the backup again or use another one.", kind)
        self.reason = reason


def _whole(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} is {json.dumps(value)[:40]}, not a whole number")
    return value


def _check_created_at(text: str) -> None:
    try:
        checked_time(datetime.fromisoformat(text))
    except ValueError as error:
        raise ValueError(f"created_at {text[:40]!r} is not a usable time: {error}") from error


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is {json.dumps(value)[:40]}, not text")
    return value


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
        """``created_at`` as an aware datetime, or None when it cannot be read or is implausible."""
        try:
            value = datetime.fromisoformat(self.created_at)
            checked_time(value)
        except ValueError:
            return None
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupManifest:
        """Build a manifest from a dict, refusing one that lacks fields or has wrong types.

        Fields must have the JSON type the tool writes (a number is not accepted as text, nor
        text as a number), and ``created_at`` must be a plausible ISO time.
        """
        try:
            if not isinstance(data, dict):
                raise TypeError(f"it holds a {type(data).__name__}, not an object of fields")
            counts = data.get("task_counts")
            if counts is not None and not isinstance(counts, dict):
                raise TypeError("task_counts is not an object")
            _check_created_at(_text(data, "created_at"))
            return cls(
                format_version=_whole(data, "format_version"),
                name=_text(data, "name"),
                sha256=_text(data, "sha256").lower(),
                size_bytes=_whole(data, "size_bytes"),
                page_count=_whole(data, "page_count"),
                page_size=_whole(data, "page_size"),
                task_counts=None if counts is None
                else {str(key): _whole(counts, key) for key in counts},
                source_path=_text(data, "source_path"),
                created_at=_text(data, "created_at"),
                sqlite_version=_text(data, "sqlite_version"),
                tool_version=_text(data, "tool_version") if "tool_version" in data else "",
            )
        except KeyError as error:
            raise ManifestUnreadable(f"the field {error} is missing") from error
        except (TypeError, ValueError) as error:
            raise ManifestUnreadable(str(error)) from error

    @classmethod
    def read(cls, path: str | Path) -> BackupManifest:
        """Read a manifest file; a missing or unusable one raises :class:`ManifestUnreadable`.

        Reading is bounded: a file over :data:`MAX_MANIFEST_BYTES` is refused unread, and
        one nesting deeper than :data:`MAX_MANIFEST_DEPTH` is refused before parsing.
        """
        path = Path(path)
        try:
            data = read_json_object(path, max_bytes=MAX_MANIFEST_BYTES,
                                    max_depth=MAX_MANIFEST_DEPTH)
            return cls.from_dict(data)
        except OSError as error:
            translated = translate_error(error, f"Reading the manifest '{path}'",
                                         QueueBackupError)
            raise ManifestUnreadable(f"it cannot be read ({error.strerror or error})",
                                     path, classify_os_error(error), translated.message
                                     ) from error
        except UnreadableJson as error:
            raise ManifestUnreadable(error.reason, path) from error
        except ManifestUnreadable as error:
            raise ManifestUnreadable(error.reason, path) from error

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
    #: Why the manifest beside the backup could not be used; None when it was read or absent.
    manifest_problem: str | None = None

    @property
    def size_mb(self) -> float:
        """Size in megabytes (MiB), as the original API reported it."""
        return self.size_bytes / (1024 * 1024)

    @property
    def has_manifest(self) -> bool:
        """False for older backups made before manifests existed, or with an unreadable one."""
        return self.manifest is not None

    @property
    def manifest_unreadable(self) -> bool:
        """True when a manifest file is there but could not be used (see manifest_problem)."""
        return self.manifest_problem is not None

    @property
    def task_counts(self) -> dict[str, int] | None:
        """Tasks by status at backup time, when the manifest recorded them."""
        return self.manifest.task_counts if self.manifest is not None else None

    @classmethod
    def from_path(cls, path: str | Path) -> BackupInfo:
        """Describe a backup file: time from its manifest, else its name, else its mtime.

        A manifest that cannot be used affects this backup only: it is described without
        one, and :attr:`manifest_problem` says why.
        """
        path = Path(path)
        try:
            stat = path.stat()
        except OSError as error:
            raise translate_error(error, f"Reading the backup '{path}'", QueueBackupError
                                  ) from error
        manifest, unreadable = manifest_beside(path)
        problem = unreadable.reason if unreadable is not None else None
        parsed = parse_backup_name(path.name)
        created = manifest.created_datetime if manifest is not None else None
        if created is None and parsed is not None:
            created = parsed[1]
        if created is None:
            created = _modified_time(stat.st_mtime)
        return cls(path=path, size_bytes=stat.st_size, created_at=created, manifest=manifest,
                   sequence=parsed[2] if parsed is not None else 1, manifest_problem=problem)


def manifest_beside(backup_path: str | Path
                    ) -> tuple[BackupManifest | None, ManifestUnreadable | None]:
    """The manifest beside a backup, told apart from none at all.

    ``(manifest, None)`` when it was read; ``(None, None)`` only when no file of that name
    exists (a backup made before manifests); ``(None, error)`` when something is there but
    cannot be used: damaged or hostile content, and also a named pipe, a folder, a device or
    a dangling link, which are not "no manifest" but an unreadable one (``error.reason``
    says which).
    """
    manifest_file = manifest_path_for(backup_path)
    if not os.path.lexists(manifest_file):
        return None, None
    try:
        return BackupManifest.read(manifest_file), None
    except ManifestUnreadable as error:
        return None, error


def remove_stale_manifest(output: str | Path) -> Path | None:
    """Delete a manifest left beside a file that is not there; return its path, else None.

    A backup or rebuilt file is written as ``<output>.partial`` and its manifest just before
    the rename, so a manifest beside a missing ``output`` with no ``.partial`` in progress is
    what an interrupted run or a deleted file left: stale, and in the way of a new ``output``.
    Anything else (the file exists, a partial file is there, the manifest is not a regular
    file) is left alone.
    """
    output = Path(output)
    manifest = manifest_path_for(output)
    partial = output.with_name(output.name + PARTIAL_SUFFIX)
    if os.path.lexists(output) or os.path.lexists(partial):
        return None
    try:
        if not stat.S_ISREG(os.lstat(manifest).st_mode):
            return None
        manifest.unlink()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise translate_error(error, f"Removing the stale manifest '{manifest}'",
                              QueueBackupError) from error
    return manifest


def _modified_time(mtime: float) -> datetime:
    """A file's modification time, or the epoch when it is beyond what datetime can hold."""
    try:
        return checked_time(datetime.fromtimestamp(mtime, timezone.utc))
    except (ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, timezone.utc)


def sqlite_library_version() -> str:
    """The SQLite version the engine runs on, recorded in every manifest."""
    return sqlite3.sqlite_version
