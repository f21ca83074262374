"""What ``queue-admin-cli`` prints: results, errors, and progress, for people and for scripts.

A command returns a :class:`CommandResult`; :func:`emit` writes it either as short aligned
lines with human sizes or, with ``--json``, as one JSON object whose ``ok`` field matches the
exit code. Progress goes to stderr, and only when a person is watching a terminal.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from ..core.errors import ErrorKind, QueueAdminError, format_bytes

PROG = "queue-admin-cli"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

#: Error kinds that mean the command was used wrongly or pointed at an unusable file.
USAGE_KINDS = frozenset({
    ErrorKind.NOT_FOUND, ErrorKind.NOT_A_DATABASE, ErrorKind.NOT_A_QUEUE, ErrorKind.INVALID,
    ErrorKind.NAME_TOO_LONG, ErrorKind.NOT_A_FOLDER,
})

#: How many list items human output shows before summarising the rest.
MAX_LISTED = 20

_LABELS = {
    "path": "Path", "size_bytes": "Size", "page_count": "Pages", "seconds": "Time",
    "sha256": "SHA-256", "task_counts": "Tasks", "restarts": "Restarts", "pruned": "Pruned",
    "problems": "Problems", "problem_count": "Problems found", "finished": "Finished",
    "deleted": "Deleted", "restored_from": "Restored from",
    "target": "Database", "safety_backup": "Safety backup", "safety_copy": "Safety copy",
    "archive_problem": "Archive not used as the safety copy",
    "moved_aside": "Moved aside",
    "mode": "Mode", "busy": "Busy", "log_frames": "WAL frames",
    "checkpointed_frames": "Checkpointed", "wal_bytes_before": "WAL before",
    "wal_bytes_after": "WAL after", "size_before": "Size before", "size_after": "Size after",
    "freed_bytes": "Freed", "table": "Table", "analyzed": "Analyzed", "vacuumed": "Vacuumed",
    "stale": "Stale leases", "requeued": "Requeued", "dead_lettered": "Dead-lettered",
    "task_ids": "Task ids", "expired_worker_alive_ids": "Expired, worker alive",
    "dry_run": "Dry run", "timeout_seconds": "Lease timeout",
    "tasks": "Tasks", "workers": "Workers", "stats": "Workers did", "database": "Database",
    "fragmentation_percent": "Fragmentation", "db_size_bytes": "Database file",
    "wal_size_bytes": "WAL file", "shm_size_bytes": "SHM file", "wal_mode": "WAL mode",
    "journal_mode": "Journal mode", "auto_vacuum": "Auto-vacuum", "is_queue": "Queue database",
    "schema_problems": "Schema problems", "sqlite_version": "SQLite",
    "freelist_count": "Free pages", "page_size": "Page size", "backup_dir": "Folder",
}


class UsageError(Exception):
    """The command line could not be understood (exit 2)."""


@dataclass
class CommandResult:
    """What a command did: the JSON fields, and which of them a person reads, in order.

    ``problem`` is set when the command ran but found something wrong (a backup that fails
    verification, integrity problems): the CLI then says so on stderr and exits with
    ``failure_exit`` when given, else with the code the problem's kind calls for.
    """

    headline: str
    data: dict[str, Any] = field(default_factory=dict)
    shown: Sequence[str] = ()
    lines: list[str] = field(default_factory=list)
    problem: QueueAdminError | None = None
    failure_exit: int | None = None
    #: Set when the command ran but fell short ("did not finish", "found 3 problems"): the
    #: activity log records this instead of "succeeded".
    shortfall: str | None = None

    @property
    def exit_code(self) -> int:
        """0 when all is well, else the code for the problem."""
        if self.problem is None:
            return EXIT_OK
        return self.failure_exit if self.failure_exit is not None else exit_code_for(self.problem)


def exit_code_for(error: QueueAdminError) -> int:
    """2 for bad usage or an unusable file, 1 for an operation that failed."""
    return EXIT_USAGE if error.kind in USAGE_KINDS else EXIT_FAILED


def to_jsonable(value: Any) -> Any:
    """Plain JSON values for results that hold paths, datetimes, enums or dataclasses."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def label(key: str) -> str:
    """The name a person reads for a result field."""
    return _LABELS.get(key) or key.replace("_", " ").capitalize()


def human_value(key: str, value: Any) -> str:
    """One result value as a person reads it: sizes in KB/MB/GB, seconds with a unit."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and (key.endswith("bytes") or key.startswith("size")):
        return format_bytes(value)
    if isinstance(value, (int, float)) and (key == "seconds" or key.endswith("_seconds")):
        return f"{value:.2f} s" if isinstance(value, float) else f"{value} s"
    if key.endswith("percent") and isinstance(value, (int, float)):
        return f"{value:.1f} %"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        parts = [f"{name} {human_value(name, item)}" for name, item in value.items()
                 if item not in (0, None)]
        return ", ".join(parts) or "none"
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        shown = ", ".join(str(item) for item in value[:MAX_LISTED])
        more = len(value) - MAX_LISTED
        return shown + (f" ... and {more} more" if more > 0 else "")
    return str(value)


def render_human(result: CommandResult) -> str:
    """The headline, then one aligned ``Label  value`` line per shown field, then extra lines."""
    rows = [(label(key), human_value(key, result.data.get(key))) for key in result.shown
            if key in result.data]
    width = max((len(name) for name, _ in rows), default=0)
    text = [result.headline] + [f"  {name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(text + result.lines) + "\n"


def emit(result: CommandResult, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Write a result (and its problem, if any) and give the exit code."""
    problem = result.problem
    if as_json:
        payload: dict[str, Any] = {"ok": problem is None}
        payload.update(to_jsonable(result.data))
        if problem is not None:
            payload["ok"] = False
            payload.update(error=str(problem), kind=problem.kind.value)
        out.write(json_line(payload))
    else:
        out.write(render_human(result))
    if problem is not None:
        err.write(f"{PROG}: error: {problem}\n")
    return result.exit_code


def json_line(payload: dict[str, Any]) -> str:
    """``payload`` as one line of strict JSON (no NaN), whatever values it holds."""
    return json.dumps(to_jsonable(payload), ensure_ascii=False, allow_nan=False) + "\n"


def emit_error(message: str, kind: str, as_json: bool, out: TextIO, err: TextIO,
               data: dict[str, Any] | None = None) -> None:
    """One line on stderr; with --json, also ``{"ok": false, "error", "kind"}`` on stdout.

    ``data`` adds fields a script needs to know what was done before the failure.
    """
    if as_json:
        out.write(json_line({**(data or {}), "ok": False, "error": message, "kind": kind}))
    err.write(f"{PROG}: error: {message}\n")


class ProgressLine:
    """Progress on one rewritten stderr line, shown only to a person at a terminal."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and _is_terminal(self.stream)
        self._last: tuple[str, int] | None = None
        self._width = 0

    def __call__(self, done: int, total: int, stage: str) -> None:
        """Show ``stage`` with a percentage; repeats of the same line are skipped."""
        if not self.enabled:
            return
        percent = int(done * 100 / total) if total > 0 else 0
        if self._last == (stage, percent):
            return
        self._last = (stage, percent)
        text = f"{stage}: {percent}%"
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = max(self._width, len(text))

    def clear(self) -> None:
        """Erase the progress line so the result starts on a clean line."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
