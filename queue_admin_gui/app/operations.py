"""Operations: one engine call described once, with what it changes.

An :class:`Operation` names its title (the activity log's action), the core callable
``func(progress, cancelled)``, whether it writes (write jobs run one at a time) and the session
topics it changes. :meth:`~queue_admin_gui.app.session.Session.run_operation` runs it as a job
and, once it has succeeded, emits ``changed`` for each of those topics; every view showing one
of them refreshes from that signal, so no call site notifies by hand. A failed or cancelled
operation emits only its ``changes_when_stopped``: the topics it may have changed before it
stopped (a restore takes its safety backup before it writes, and keeps it when it fails).

The functions below build the operations the tabs and the restore wizard run: backups,
restores, leases and maintenance, and the rescue window's diff and rescue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.activity import ActivityEntry, ActivityLog
from ..core.archive.validation import VALIDATION_ACTION, require_valid_archive
from ..core.backups.backup_folder import remove_leftovers
from ..core.backups.backup_store import BackupStore
from ..core.errors import QueueAdminError
from ..core.leases.manager import LeaseManager
from ..core.maintenance import Maintenance
from ..core.progress import CancelCheck, ProgressCallback
from ..core.rescue import (
    QueueDiff,
    RescueReport,
    RescueSelection,
    diff_queue,
    open_past_state,
    rescue_tasks,
)
from ..core.restore.execute import execute_restore
from ..core.restore.gate import ACTIVE_WORKER_SECONDS
from ..core.restore.keep import RestoreRequest, safety_folder

#: Topics for ``Session.changed``; a view refreshes on the topics it shows.
TOPIC_BACKUPS = "backups"
TOPIC_DATABASE = "database"
TOPIC_LEASES = "leases"
TOPIC_STATS = "stats"


@dataclass(frozen=True)
class Operation:
    """One engine call to run as a job, and the topics it changes when it succeeds."""

    title: str
    func: Callable[[ProgressCallback, CancelCheck], Any]
    writes: bool = False
    changes: frozenset[str] = frozenset()
    #: Topics a failed or cancelled run may still have changed (announced after it stops).
    changes_when_stopped: frozenset[str] = frozenset()
    #: What the activity log records beside the title.
    parameters: Mapping[str, Any] = field(default_factory=dict)


LEFTOVERS_ACTION = "Remove leftovers of interrupted runs"


def clear_leftovers(folder: Path, log: ActivityLog | None = None) -> list[Path]:
    """Remove what interrupted runs left in a backup folder and its safety-backup folder.

    Partial files no running backup writes and orphan manifests go, as the command line
    does before a backup, a prune or a restore; what was removed is one activity entry.
    An unusable folder is left for the operation itself to report.
    """
    removed: list[Path] = []
    for where in (folder, safety_folder(folder)):
        with contextlib.suppress(QueueAdminError):
            removed += remove_leftovers(where)
    if removed:
        names = ", ".join(path.name for path in removed)
        with contextlib.suppress(QueueAdminError):
            (log or ActivityLog()).append(ActivityEntry.now(
                LEFTOVERS_ACTION, parameters={"folder": str(folder)},
                message=f"Removed {len(removed)} leftover file(s) of interrupted runs: {names}."))
    return removed


def _after_clearing_leftovers(folder: Path, func: Callable[[ProgressCallback, CancelCheck], Any]
                              ) -> Callable[[ProgressCallback, CancelCheck], Any]:
    def run(progress: ProgressCallback, cancelled: CancelCheck) -> Any:
        clear_leftovers(folder)
        return func(progress, cancelled)
    return run


def back_up(db_path: Path, folder: Path, name: str | None) -> Operation:
    """Take a backup of ``db_path`` into ``folder`` (optionally named)."""
    return Operation(
        "Back up",
        _after_clearing_leftovers(folder, lambda progress, cancelled: BackupStore(
            db_path, folder).backup(name, progress, cancelled)),
        writes=True, changes=frozenset({TOPIC_BACKUPS}),
        parameters={"name": name, "database": str(db_path), "folder": str(folder)})


def verify_backup(db_path: Path, folder: Path, path: Path) -> Operation:
    """Check one backup file; reads only, so it changes nothing."""
    return Operation(
        "Verify backup",
        lambda progress, cancelled: BackupStore(db_path, folder).check_backup(path, progress,
                                                                              cancelled),
        parameters={"backup": str(path)})


def validate_archive(db_path: Path, archive_dir: Path) -> Operation:
    """Rebuild the archive's newest commit and compare it with the live file; reads only."""
    return Operation(
        VALIDATION_ACTION,
        lambda progress, cancelled: require_valid_archive(db_path, archive_dir, progress,
                                                          cancelled),
        parameters={"database": str(db_path), "folder": str(archive_dir)})


def delete_backup(db_path: Path, folder: Path, path: Path) -> Operation:
    """Delete one backup and its manifest."""
    return Operation(
        "Delete backup",
        lambda progress, cancelled: BackupStore(db_path, folder).delete_backup(path),
        writes=True, changes=frozenset({TOPIC_BACKUPS}), parameters={"backup": str(path)})


def prune_backups(db_path: Path, folder: Path, keep: int) -> Operation:
    """Delete all but the newest ``keep`` backups in ``folder``."""
    return Operation(
        "Prune backups",
        _after_clearing_leftovers(folder, lambda progress, cancelled: BackupStore(
            db_path, folder).prune(keep).deleted),
        writes=True, changes=frozenset({TOPIC_BACKUPS}),
        parameters={"keep": keep, "folder": str(folder)})


def restore_backup(live: Path, folder: Path, backup: Path, *, safety_backup: bool,
                   accepted_workers: frozenset[str], lock_wait_seconds: float,
                   keep_newer_tasks: bool = False,
                   archive_safety: Path | None = None) -> Operation:
    """Write ``backup`` into the live database (the restore wizard's commit step).

    A restore that went through changes the database and adds its safety backup to the
    folder; one that failed or was cancelled may still have kept that safety backup.
    ``keep_newer_tasks`` keeps the tasks created after the backup in the restored queue;
    ``archive_safety`` is the point-in-time archive that may be the safety copy instead.
    """
    return Operation(
        f"Restore {live.name} from {backup.name}",
        lambda progress, cancelled: execute_restore(RestoreRequest(
            backup, live, folder, safety_backup=safety_backup,
            accepted_workers=accepted_workers, lock_wait_seconds=lock_wait_seconds,
            keep_newer_tasks=keep_newer_tasks, archive_safety=archive_safety),
            progress, cancelled),
        writes=True, changes=frozenset({TOPIC_BACKUPS, TOPIC_DATABASE}),
        changes_when_stopped=frozenset({TOPIC_BACKUPS}))


def requeue_restored_tasks(live: Path, task_ids: list[int]) -> Operation:
    """Requeue tasks a restore brought back in flight, sparing workers seen within a minute."""
    return Operation(
        "Requeue tasks in flight in the backup",
        lambda progress, cancelled: LeaseManager(live).requeue_tasks(
            task_ids, spare_workers_seen_within=ACTIVE_WORKER_SECONDS),
        writes=True, changes=frozenset({TOPIC_LEASES, TOPIC_DATABASE}))


def requeue_stale_leases(db_path: Path, timeout_seconds: int) -> Operation:
    """Requeue (or dead-letter) the abandoned tasks: changes the leases and the counts."""
    return Operation(
        "Requeue stale leases",
        lambda progress, cancelled: LeaseManager(db_path).requeue_stale_leases(timeout_seconds),
        writes=True, changes=frozenset({TOPIC_LEASES, TOPIC_STATS}),
        parameters={"timeout_seconds": timeout_seconds})


def retry_dead_tasks(db_path: Path, task_ids: list[int]) -> Operation:
    """Send chosen dead tasks back to the queue: changes the leases and the counts."""
    return Operation(
        "Retry dead tasks",
        lambda progress, cancelled: LeaseManager(db_path).retry_dead_tasks(task_ids),
        writes=True, changes=frozenset({TOPIC_LEASES, TOPIC_STATS}),
        parameters={"task_ids": task_ids})


def analyze(db_path: Path, table: str | None) -> Operation:
    """Refresh the query planner's statistics (one table, or all): changes the statistics."""
    return Operation(
        "ANALYZE", lambda progress, cancelled: Maintenance(db_path).run_analyze(table),
        writes=True, changes=frozenset({TOPIC_STATS}), parameters={"table": table or "all"})


def pragma_optimize(db_path: Path) -> Operation:
    """SQLite's own ``PRAGMA optimize``."""
    return Operation(
        "PRAGMA optimize",
        lambda progress, cancelled: Maintenance(db_path).run_pragma_optimize(), writes=True)


def vacuum(db_path: Path, func: Callable[[ProgressCallback, CancelCheck], Any]) -> Operation:
    """Rebuild the database file; ``func`` runs the VACUUM with the caller's progress wording."""
    return Operation("VACUUM", func, writes=True, changes=frozenset({TOPIC_STATS}),
                     parameters={"database": str(db_path)})


def _past_source(backup: Path, damaged: bool) -> dict[str, Path]:
    """The past state's argument: a backup (verified first) or a damaged file (salvaged)."""
    return {"damaged": backup} if damaged else {"backup": backup}


def diff_with_backup(live: Path, backup: Path, *, damaged: bool = False) -> Operation:
    """Compare the live queue with a backup (verified first), task by task; reads only.

    With ``damaged``, ``backup`` is a damaged queue file: its readable rows are compared.
    """
    def run(progress: ProgressCallback, cancelled: CancelCheck) -> QueueDiff:
        with open_past_state(live, progress=progress, cancelled=cancelled,
                             **_past_source(backup, damaged)) as past:
            return diff_queue(live, past, progress, cancelled)

    return Operation(f"Compare {live.name} with {backup.name}", run,
                     parameters={"backup": str(backup)})


def rescue_from_backup(live: Path, folder: Path, backup: Path, selection: RescueSelection,
                       *, dry_run: bool, archive: Path | None = None,
                       damaged: bool = False) -> Operation:
    """Put the selected tasks back as they were in ``backup`` (or, dry, say what would be).

    A rescue that went through changes the queue and adds its safety backup (unless the
    point-in-time archive in ``archive`` proved it holds the queue as it was) and undo file
    to the backup folder; one that failed may still have kept the safety backup. With
    ``damaged``, ``backup`` is a damaged queue file whose readable rows are the past state.
    """
    def run(progress: ProgressCallback, cancelled: CancelCheck) -> RescueReport:
        with open_past_state(live, progress=progress, cancelled=cancelled,
                             **_past_source(backup, damaged)) as past:
            return rescue_tasks(live, past, selection, backup_dir=folder, dry_run=dry_run,
                                archive_dir=archive, progress=progress, cancelled=cancelled)

    if dry_run:
        return Operation(f"Preview the rescue from {backup.name}", run,
                         parameters={"backup": str(backup)})
    return Operation(
        f"Rescue tasks from {backup.name}", run, writes=True,
        changes=frozenset({TOPIC_BACKUPS, TOPIC_DATABASE, TOPIC_LEASES, TOPIC_STATS}),
        changes_when_stopped=frozenset({TOPIC_BACKUPS}),
        parameters={"backup": str(backup), "selection": selection.describe(),
                    "tasks_chosen": len(selection.ids or ())})
