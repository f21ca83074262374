"""How the Backups tab lists backups: names, task counts and verification state, as a model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

from ..core.backups.manifest import BackupInfo, is_rebuilt_file_name, parse_backup_name
from ..core.errors import format_bytes
from .table_model import ListColumn, ListModel

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


#: How the list names a file rebuilt to an instant from the point-in-time archive.
REBUILT_NAME = "(rebuilt to an instant, not a backup of now)"


def backup_label(path: Path) -> str:
    """The name the admin gave a backup, "(no name)", or what a rebuilt file is."""
    if is_rebuilt_file_name(path.name):
        return REBUILT_NAME
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


@dataclasses.dataclass(eq=False)
class BackupListing:
    """The backups of a folder, newest first, with the texts that do not change worked out.

    Made in the listing job, so a folder of thousands of backups costs the window nothing
    but the rows on screen; the "Verified" text depends on this window's checks and is
    written when a row is shown.
    """

    records: list[BackupInfo]
    names: list[str]
    created: list[str]
    tasks: list[str]
    created_keys: np.ndarray
    size_keys: np.ndarray

    def __len__(self) -> int:
        return len(self.records)

    def index_of(self, path: Path) -> int:
        """The row of the backup at ``path``; -1 when it is not listed."""
        for row, info in enumerate(self.records):
            if info.path == path:
                return row
        return -1


def backup_listing(backups: list[BackupInfo]) -> BackupListing:
    """The listing of ``backups`` (newest first), its fixed texts written once."""
    return BackupListing(
        records=backups, names=[backup_label(info.path) for info in backups],
        created=[info.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
                 for info in backups],
        tasks=[describe_task_counts(info.task_counts) for info in backups],
        created_keys=np.array([info.created_at.timestamp() for info in backups],
                              dtype=np.float64),
        size_keys=np.array([info.size_bytes for info in backups], dtype=np.int64))


def backup_columns(verified: Callable[[BackupInfo], str]) -> list[ListColumn]:
    """The table's columns; ``verified`` gives the text of the "Verified" cell."""
    return [
        ListColumn("Name", lambda listing, row: listing.names[row],
                   tooltip="The name given when the backup was made."),
        ListColumn("Created", lambda listing, row: listing.created[row],
                   lambda listing: listing.created_keys,
                   tooltip="When the snapshot was taken (local time)."),
        ListColumn("Size", lambda listing, row: format_bytes(listing.records[row].size_bytes),
                   lambda listing: listing.size_keys, numeric=True),
        ListColumn("Tasks", lambda listing, row: listing.tasks[row],
                   tooltip="Tasks by status in the backup, from its manifest."),
        ListColumn("Verified", lambda listing, row: verified(listing.records[row]),
                   tooltip="Whether the backup was checked: integrity, queue schema and the "
                   "manifest checksum."),
        ListColumn("File", lambda listing, row: listing.records[row].path.name),
    ]


class BackupListModel(ListModel):
    """The backups of the folder as a sortable list (newest first until sorted otherwise)."""

    @property
    def records(self) -> list[BackupInfo]:
        """Every listed backup, newest first."""
        listing = self.data_object
        return list(listing.records) if isinstance(listing, BackupListing) else []

    def record(self, row: int) -> BackupInfo:
        """The backup shown at view row ``row``."""
        return self.data_object.records[self.data_row(row)]

    def view_row_of(self, path: Path) -> int:
        """The view row showing the backup at ``path`` (fetched if needed); -1 when none."""
        listing = self.data_object
        if not isinstance(listing, BackupListing):
            return -1
        row = listing.index_of(path)
        return self.view_row(row) if row >= 0 else -1
