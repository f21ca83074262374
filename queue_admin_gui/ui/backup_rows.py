"""How the Backups tab shows one backup: its name, task counts and verification state."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ..core.backup import BackupInfo
from ..core.errors import format_bytes
from ..core.manifest import parse_backup_name
from .widgets import Column

_STATUS_ORDER = ("queued", "leased", "processing", "completed", "failed", "dead_letter")


@dataclasses.dataclass(frozen=True)
class Verification:
    """What this window learnt about one backup file."""

    ok: bool
    at: datetime
    problem: str = ""


def describe_task_counts(counts: dict[str, int] | None) -> str:
    """Task counts as one short line: "2,000 tasks: 310 queued, 1,560 completed, ..."."""
    if counts is None:
        return "not recorded"
    total = sum(counts.values())
    ordered = [status for status in _STATUS_ORDER if counts.get(status)]
    ordered += sorted(status for status in counts if status not in _STATUS_ORDER
                      and counts[status])
    parts = ", ".join(f"{counts[status]:,} {status}" for status in ordered)
    return f"{total:,} tasks" + (f": {parts}" if parts else "")


def backup_label(path: Path) -> str:
    """The name the admin gave a backup, or "(no name)"."""
    parsed = parse_backup_name(path.name)
    return parsed[0] if parsed is not None and parsed[0] else "(no name)"


def verification_text(info: BackupInfo, known: Verification | None) -> str:
    """The "Verified" cell: checked in this window, checked when made, or an older backup.

    A manifest is written only after the copy passed its check, so a backup that has one
    was checked when it was made; Verify checks it again now.
    """
    if info.manifest_problem is not None:  # found at the last listing, after any check
        return f"\u2716 Manifest unreadable: {info.manifest_problem}"
    if known is not None:
        when = known.at.astimezone().strftime("%H:%M")
        return f"\u2714 OK ({when})" if known.ok else f"\u2716 Damaged: {known.problem}"
    if not info.has_manifest:
        return "No manifest (older backup)"
    when = info.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
    return f"\u2714 Checked when made ({when})"


def backup_columns(verified: Callable[[BackupInfo], str]) -> list[Column[BackupInfo]]:
    """The table's columns; ``verified`` gives the text of the "Verified" cell."""
    return [
        Column("Name", lambda info: backup_label(info.path),
               tooltip="The name given when the backup was made."),
        Column("Created", lambda info: info.created_at.astimezone().strftime(
            "%Y-%m-%d %H:%M:%S"), sort_key=lambda info: info.created_at,
            tooltip="When the snapshot was taken (local time)."),
        Column("Size", lambda info: format_bytes(info.size_bytes), numeric=True,
               sort_key=lambda info: info.size_bytes),
        Column("Tasks", lambda info: describe_task_counts(info.task_counts),
               tooltip="Tasks by status in the backup, from its manifest."),
        Column("Verified", verified,
               tooltip="Whether the backup was checked: integrity, queue schema and the "
               "manifest checksum."),
        Column("File", lambda info: info.path.name),
    ]
