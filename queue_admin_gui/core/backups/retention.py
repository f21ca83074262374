"""Which backups "keep the newest N" deletes, and how a prune reports what it did.

Pruning decides by age, and a backup's age is only trusted when the backup can be
described: one whose manifest is there but unreadable (damaged, hand-edited, hostile) is
never deleted by pruning and does not count as one of the N kept, because it may not be
restorable and deleting it would destroy the evidence. It is reported as skipped so the
admin can look at it. Backups made before manifests existed have none to misread and are
pruned by the time in their file name, as always.

A prune that fails part way (a file another program holds, a folder that refuses
deletion) stops at the first failure and says exactly which backups it had deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ErrorKind, QueueAdminError, QueueBackupError
from .manifest import BackupInfo


@dataclass
class PrunePlan:
    """The backups a prune keeps, deletes (oldest last) and skips (manifest unreadable)."""

    keep: list[BackupInfo]
    delete: list[BackupInfo]
    skipped: list[BackupInfo]


@dataclass
class PruneResult:
    """What a prune did: backups deleted, kept, skipped, and leftovers of crashed backups."""

    deleted: list[Path]
    kept: list[Path]
    skipped: list[BackupInfo] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)


class PruneStopped(QueueBackupError):
    """A prune failed part way; ``deleted`` lists the backups it had deleted before that."""

    def __init__(self, message: str, kind: ErrorKind, deleted: Sequence[Path],
                 not_deleted: Sequence[Path], skipped: Sequence[BackupInfo]) -> None:
        super().__init__(message, kind)
        self.deleted = list(deleted)
        self.not_deleted = list(not_deleted)
        self.skipped = list(skipped)


def require_keep_count(keep_count: object) -> int:
    """``keep_count`` when it is a whole number of 0 or more; INVALID otherwise."""
    if isinstance(keep_count, bool) or not isinstance(keep_count, int) or keep_count < 0:
        raise QueueBackupError(f"Pruning backups refused: keep count {keep_count!r} must be "
                               "a whole number of 0 or more.", ErrorKind.INVALID)
    return keep_count


def plan_prune(backups: Sequence[BackupInfo], keep_count: int) -> PrunePlan:
    """Split a newest-first listing into what "keep the newest ``keep_count``" keeps and deletes.

    Backups whose manifest is unreadable are set apart first: never deleted, never counted.
    """
    require_keep_count(keep_count)
    skipped = [info for info in backups if info.manifest_unreadable]
    judged = [info for info in backups if not info.manifest_unreadable]
    return PrunePlan(keep=judged[:keep_count], delete=judged[keep_count:], skipped=skipped)


def prune_stopped(error: QueueAdminError, deleted: Sequence[Path], plan: PrunePlan,
                  failed: Path | None) -> PruneStopped:
    """The error of a prune that stopped at ``failed`` after deleting ``deleted``."""
    names = ", ".join(path.name for path in deleted) or "none"
    not_deleted = [info.path for info in plan.delete if info.path not in deleted]
    where = f" at '{failed.name}'" if failed is not None else ""
    message = (f"Pruning stopped part way{where}: {error.message.rstrip('.')}. "
               f"Deleted before stopping: {len(deleted)} backup(s) ({names}); "
               f"{len(not_deleted)} backup(s) due for deletion were not deleted.")
    return PruneStopped(message, error.kind, deleted, not_deleted, plan.skipped)
