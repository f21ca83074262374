"""The audit trail: every admin action, one JSON object per line in the user log folder.

The window appends an :class:`ActivityEntry` for each job it ran (what, with which
parameters, how it ended, how long it took); the file survives the window, so after an
incident an administrator can read what was done and when. Lines are appended and flushed
one at a time, so a crash loses at most the line being written, and a damaged line is
skipped on reading instead of hiding the rest. The file rotates by size and the window reads
only the newest entries, backwards from the end, so a trail of years starts as fast as a new
one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import QueueAdminError, translate_error
from .settings.folders import user_log_dir

ACTIVITY_FILE_NAME = "activity.jsonl"
#: Size at which ``activity.jsonl`` is moved aside to ``activity.jsonl.1``.
MAX_LOG_BYTES = 10 * 1024 * 1024
#: Rotated files kept besides the current one (``.1`` newest ... ``.5`` oldest).
KEEP_LOG_FILES = 5
#: How much of a file one backwards read step takes.
READ_BLOCK_BYTES = 64 * 1024
#: A rotation lock older than this was left by a crash and is taken over.
STALE_LOCK_SECONDS = 60.0

RESULT_SUCCEEDED = "succeeded"
RESULT_FAILED = "failed"
RESULT_CANCELLED = "cancelled"
#: An operation that ran to its end without doing all it was asked (a checkpoint that left
#: frames behind). A check that found problems records "found N problems" instead.
RESULT_DID_NOT_FINISH = "did not finish"


def result_of_completed(value: object, note: str = "") -> str:
    """The result word for an operation that returned: never "succeeded" when it fell short.

    A result object says so with a ``shortfall`` text ("did not finish", "found 3
    problems"); otherwise a ``note`` from whoever handled the result (set only when the
    operation did not do all it was asked) means it did not finish.
    """
    shortfall = getattr(value, "shortfall", None)
    if isinstance(shortfall, str) and shortfall:
        return shortfall
    return RESULT_DID_NOT_FINISH if note else RESULT_SUCCEEDED


def default_activity_path() -> Path:
    """Where the audit trail lives: ``activity.jsonl`` in the user log folder."""
    return user_log_dir() / ACTIVITY_FILE_NAME


def _json_safe(value: Any) -> Any:
    """Parameters as JSON can hold them: paths and other objects become text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(item) for item in value]
    return str(value)


@dataclass(frozen=True)
class ActivityEntry:
    """One admin action: when it ran, what it was, and how it ended."""

    time: str
    action: str
    parameters: dict[str, Any] = field(default_factory=dict)
    result: str = RESULT_SUCCEEDED
    message: str = ""
    duration_seconds: float | None = None
    database: str | None = None

    @classmethod
    def now(cls, action: str, *, parameters: dict[str, Any] | None = None,
            result: str = RESULT_SUCCEEDED, message: str = "",
            duration_seconds: float | None = None,
            database: str | Path | None = None) -> ActivityEntry:
        """An entry stamped with the current UTC time."""
        return cls(
            time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            action=action,
            parameters=_json_safe(dict(parameters or {})),
            result=result,
            message=message,
            duration_seconds=None if duration_seconds is None else round(duration_seconds, 3),
            database=None if database is None else str(database),
        )

    @property
    def local_time(self) -> datetime | None:
        """The time in the local zone, for display; None when the stamp cannot be read."""
        try:
            value = datetime.fromisoformat(self.time)
        except ValueError:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone()

    def to_json(self) -> str:
        """One line of the audit file (no newline)."""
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActivityEntry:
        """Rebuild an entry from a parsed line; raises ValueError when fields are missing."""
        try:
            duration = data.get("duration_seconds")
            return cls(
                time=str(data["time"]),
                action=str(data["action"]),
                parameters=dict(data.get("parameters") or {}),
                result=str(data.get("result", RESULT_SUCCEEDED)),
                message=str(data.get("message", "")),
                duration_seconds=None if duration is None else float(duration),
                database=None if data.get("database") is None else str(data["database"]),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not an activity entry: {error}") from error


class ActivityLog:
    """Appends entries to, and reads the newest back from, a size-rotated JSON-lines file.

    When ``activity.jsonl`` grows past ``max_bytes`` it becomes ``activity.jsonl.1`` (the
    older ones move up to ``.2`` ... ``.<keep_files>``; the oldest beyond that is deleted),
    so the trail on disk stays under about ``(keep_files + 1) * max_bytes``. The window and
    any number of ``queue-admin-cli`` runs append to the same file: each append opens,
    writes one line and closes, and rotation is done by whoever holds a short-lived lock
    file. Rotation never fails an append: when another process is rotating, or (on Windows)
    has the file open so it cannot be renamed, the file simply grows a little longer and a
    later append rotates it.
    """

    def __init__(self, path: str | Path | None = None, *, max_bytes: int = MAX_LOG_BYTES,
                 keep_files: int = KEEP_LOG_FILES,
                 sink: Callable[[ActivityEntry], None] | None = None) -> None:
        self.path = Path(path) if path is not None else default_activity_path()
        self.max_bytes = max_bytes
        self.keep_files = keep_files
        #: Also told of each entry once it is on disk (the Event Log, see ``event_log``).
        self.sink = sink

    @property
    def files(self) -> list[Path]:
        """The current file, then the rotated ones from newest to oldest (existing or not)."""
        return [self.path] + [self.path.with_name(f"{self.path.name}.{number}")
                              for number in range(1, self.keep_files + 1)]

    def append(self, entry: ActivityEntry) -> None:
        """Add one line and flush it to disk; raises QueueAdminError when it cannot be written."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8", newline="\n") as handle:
                handle.write(entry.to_json() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                size = handle.tell()
        except OSError as error:
            raise translate_error(error, f"Writing the activity log '{self.path}'",
                                  QueueAdminError) from error
        if size >= self.max_bytes:
            self.rotate()
        if self.sink is not None:
            with contextlib.suppress(Exception):  # the line on disk is the record that counts
                self.sink(entry)

    def rotate(self) -> bool:
        """Move the full file aside now; False when it was skipped (busy, or not full).

        The line is already safely written when this runs, so every failure here is only
        "not this time".
        """
        lock = self.path.with_name(self.path.name + ".rotating")
        if not _take_lock(lock):
            return False
        try:
            if _size(self.path) < self.max_bytes:  # another process rotated just before
                return False
            files = self.files
            for older, newer in zip(reversed(files[1:]), reversed(files[:-1]), strict=True):
                if newer.exists():
                    os.replace(newer, older)
            return True
        except OSError:  # Windows: open in another process; the next append tries again
            return False
        finally:
            with contextlib.suppress(OSError):
                lock.unlink()

    def read(self, limit: int | None = None) -> list[ActivityEntry]:
        """The entries, oldest first: all of them, or only the newest ``limit``.

        With a limit the files are read backwards from their end in blocks, so showing the
        newest entries of a huge trail costs the same as of a small one. A missing file is
        an empty log; unreadable lines are skipped.
        """
        if limit is not None and limit <= 0:
            return []
        newest_first: list[ActivityEntry] = []
        for path in self.files:
            for line in _lines_backwards(path, self.path):
                entry = _parse(line)
                if entry is not None:
                    newest_first.append(entry)
                    if limit is not None and len(newest_first) >= limit:
                        return newest_first[::-1]
        return newest_first[::-1]


def _parse(line: bytes) -> ActivityEntry | None:
    try:
        data = json.loads(line.decode("utf-8", errors="replace"))
        return ActivityEntry.from_dict(data) if isinstance(data, dict) else None
    except ValueError:
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _take_lock(lock: Path) -> bool:
    """Create ``lock`` exclusively; a lock left by a crash is taken over once it is stale."""
    for _attempt in range(2):
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            try:
                stale = time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS
                if not stale:
                    return False
                lock.unlink()
            except OSError:
                return False
        except OSError:
            return False
    return False


def _lines_backwards(path: Path, log_path: Path) -> Iterator[bytes]:
    """The file's non-empty lines from the last to the first, reading blocks from the end."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; a generator holds it open
    except FileNotFoundError:
        return
    except OSError as error:
        raise translate_error(error, f"Reading the activity log '{log_path}'",
                              QueueAdminError) from error
    with handle:
        position = handle.seek(0, os.SEEK_END)
        partial = b""
        while position > 0:
            step = min(READ_BLOCK_BYTES, position)
            position -= step
            handle.seek(position)
            pieces = (handle.read(step) + partial).split(b"\n")
            partial = pieces[0]  # may continue in the block before
            for line in reversed(pieces[1:]):
                if line.strip():
                    yield line
        if partial.strip():
            yield partial
