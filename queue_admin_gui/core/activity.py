"""The audit trail: every admin action, one JSON object per line in the user log folder.

The window appends an :class:`ActivityEntry` for each job it ran (what, with which
parameters, how it ended, how long it took); the file survives the window, so after an
incident an administrator can read what was done and when. Lines are appended and flushed
one at a time, so a crash loses at most the line being written, and a damaged line is
skipped on reading instead of hiding the rest.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .config import user_log_dir
from .errors import QueueAdminError, translate_error

ACTIVITY_FILE_NAME = "activity.jsonl"

RESULT_SUCCEEDED = "succeeded"
RESULT_FAILED = "failed"
RESULT_CANCELLED = "cancelled"


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
    """Appends entries to, and reads them back from, one JSON-lines file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_activity_path()

    def append(self, entry: ActivityEntry) -> None:
        """Add one line and flush it to disk; raises QueueAdminError when it cannot be written."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8", newline="\n") as handle:
                handle.write(entry.to_json() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise translate_error(error, f"Writing the activity log '{self.path}'",
                                  QueueAdminError) from error

    def read(self, limit: int | None = None) -> list[ActivityEntry]:
        """The entries in the file, oldest first; the newest ``limit`` when given.

        A missing file is an empty log; unreadable lines are skipped.
        """
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                lines = handle.readlines()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise translate_error(error, f"Reading the activity log '{self.path}'",
                                  QueueAdminError) from error
        if limit is not None:
            lines = lines[-limit:] if limit > 0 else []
        entries = []
        for line in lines:
            try:
                data = json.loads(line)
                if isinstance(data, dict):
                    entries.append(ActivityEntry.from_dict(data))
            except ValueError:
                continue
        return entries
