"""The commands of ``queue-admin-cli``: each calls the engine once and describes the result.

Every command takes the :class:`~queue_admin_gui.cli.Context` and returns a
:class:`~queue_admin_gui.cli.output.CommandResult`; errors are the engine's own
:class:`QueueAdminError` sentences, which :func:`queue_admin_gui.cli.main` prints.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.archive.controller import configured_archive_dir
from ..core.backups.backup_folder import find_leftovers, remove_leftovers
from ..core.backups.backup_store import BackupStore
from ..core.backups.manifest import BackupInfo, remove_stale_manifest
from ..core.backups.retention import PruneStopped
from ..core.backups.verify import check_backup_file
from ..core.demo.queue_file import create_demo_queue, demo_queue_path
from ..core.demo.workers import DemoWorkers
from ..core.errors import (
    ErrorKind,
    QueueAdminError,
    QueueBackupError,
    QueueMaintenanceError,
    format_bytes,
)
from ..core.files.db_files import file_size, require_existing_file
from ..core.leases.manager import LeaseManager
from ..core.maintenance import Maintenance
from ..core.restore.execute import execute_restore
from ..core.restore.gate import ALL_WORKERS
from ..core.restore.keep import RestoreRequest, safety_folder
from . import rescue  # noqa: F401 - declares diff and rescue
from .archive import add_restore_point_options, restore_at
from .arguments import (
    count_argument,
    database_path,
    keep_count_argument,
    lease_timeout_argument,
    seconds_argument,
)
from .declared import DECLARED, command
from .output import EXIT_FAILED, CommandResult

if TYPE_CHECKING:
    from .program import Context

CHECKPOINT_CHOICES = ("passive", "full", "restart", "truncate")

def _backups(context: Context) -> BackupStore:
    return BackupStore(context.db_path, context.backup_dir())


def clearing_leftovers(command: Callable[[Context], CommandResult]
                        ) -> Callable[[Context], CommandResult]:
    """``command``, after removing what interrupted runs left in the backup folder.

    Partial files no running backup writes (in the folder and in its ``pre-restore``
    sub-folder) and orphan manifests go; the result lists them in ``leftovers_removed``
    and its headline, which is also the activity log's message, says so.
    """
    def run(context: Context) -> CommandResult:
        removed: list[Path] = []
        try:
            folder = context.backup_dir()
            for where in (folder, safety_folder(folder)):
                removed += remove_leftovers(where)
        except QueueAdminError:
            pass  # an unusable folder is the command's own error to report
        result = command(context)
        result.data["leftovers_removed"] = removed
        if removed:
            names = ", ".join(path.name for path in removed[:3])
            more = f" and {len(removed) - 3} more" if len(removed) > 3 else ""
            result.headline = (f"{result.headline} Removed {len(removed)} leftover file(s) of "
                               f"interrupted runs ({names}{more}).")
        return result

    run.__doc__ = command.__doc__
    return run


def _backup_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, help="backup folder (default: from the settings)")
    parser.add_argument("--name", help="label put into the backup's file name")
    parser.add_argument("--keep", type=keep_count_argument, metavar="K",
                        help="after a successful backup, keep only the newest K backups")


@command("backup", "Write a consistent, verified backup of the database.",
         options=_backup_options, logged=True)
@clearing_leftovers
def backup(context: Context) -> CommandResult:
    """Write a verified backup; with --keep, prune older backups after it succeeded."""
    args = context.args
    database_path(context, "Backup")
    engine = _backups(context)
    with context.slow_operation() as progress:
        made = engine.backup(args.name, progress=progress, cancelled=context.interrupt)
    data: dict[str, Any] = {
        "path": made.path, "size_bytes": made.size_bytes, "page_count": made.page_count,
        "seconds": made.seconds, "sha256": made.sha256, "task_counts": made.task_counts,
        "restarts": made.restarts,
    }
    shown = ["path", "size_bytes", "page_count", "seconds", "task_counts", "sha256"]
    if args.keep is None:
        return CommandResult("Backup written and verified.", data, shown)
    shown.append("pruned")
    try:
        pruned = engine.prune(args.keep)
    except QueueAdminError as error:  # the backup stands; say what pruning did before failing
        stopped = getattr(error, "deleted", [])
        data.update(pruned=stopped, skipped=_skipped_rows(getattr(error, "skipped", [])))
        return CommandResult("Backup written and verified; pruning older backups stopped "
                             f"part way after deleting {len(stopped)}.", data, shown,
                             problem=error, failure_exit=EXIT_FAILED)
    data.update(pruned=pruned.deleted, skipped=_skipped_rows(pruned.skipped))
    return CommandResult("Backup written and verified.", data, shown,
                         _skipped_lines(pruned.skipped))


def _verify_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="PATH")


@command("verify", "Check that a backup file is intact and usable for restore.",
         options=_verify_options, logged=True)
def verify(context: Context) -> CommandResult:
    """Check a backup file: exit 1 when it is not usable, 2 when PATH does not exist."""
    path = require_existing_file(context.args.path, "Verification", QueueBackupError)
    with context.slow_operation() as progress:
        report = check_backup_file(path, progress=progress, cancelled=context.interrupt,
                                   live_path=context.db_path)
    data = {"path": path, "problems": report.problems, "notes": report.notes,
            "manifest": report.manifest}
    notes = [f"  note: {note}" for note in report.notes]
    if report.ok:
        return CommandResult("The backup is intact and can be restored.", data, ["path"], notes)
    first = report.problems[0].rstrip(".")
    more = len(report.problems) - 1
    problem = QueueBackupError(
        f"The backup '{path}' failed verification: {first}"
        + (f" (and {more} more problem(s))" if more else "") + ".",
        report.kind or ErrorKind.CORRUPT)
    lines = [f"  - {item}" for item in report.problems] + notes
    return CommandResult("The backup is NOT usable:", data, ["path"], lines, problem,
                         failure_exit=EXIT_FAILED)


def _folder_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, help="backup folder (default: from the settings)")


@command("list-backups", "List the backups in the backup folder, newest first.",
         options=_folder_option)
def list_backups(context: Context) -> CommandResult:
    """List the backups in the folder, newest first."""
    folder = context.backup_dir()
    found = _backups(context).list_backups()
    rows = [{"path": info.path, "created_at": info.created_at, "size_bytes": info.size_bytes,
             "verified": info.has_manifest, "has_manifest": info.has_manifest,
             "manifest_problem": info.manifest_problem}
            for info in found]
    lines = [f"  {info.created_at.astimezone():%Y-%m-%d %H:%M:%S}  "
             f"{format_bytes(info.size_bytes):>9}  {_manifest_column(info)}  {info.path.name}"
             + (f"  (manifest unreadable: {info.manifest_problem})"
                if info.manifest_problem is not None else "")
             for info in found]
    headline = f"{len(rows)} backup(s) in {folder}" + (":" if rows else ".")
    leftovers = find_leftovers(folder)
    lines += [f"  leftover: {path.name} (the partial file of an interrupted backup or restore; "
              "the next backup, restore or prune removes it)" for path in leftovers.partials]
    lines += [f"  leftover: {path.name} (a manifest whose backup is gone; the next backup, "
              "restore or prune removes it)" for path in leftovers.orphan_manifests]
    return CommandResult(headline, {"backup_dir": folder, "backups": rows,
                                    "leftover_partials": leftovers.partials,
                                    "orphan_manifests": leftovers.orphan_manifests}, (), lines)


def _manifest_column(info: BackupInfo) -> str:
    if info.manifest_problem is not None:
        return "unreadable "
    return "manifest   " if info.has_manifest else "no manifest"


def _skipped_rows(skipped: list[BackupInfo]) -> list[dict[str, Any]]:
    return [{"path": info.path, "manifest_problem": info.manifest_problem} for info in skipped]


def _skipped_lines(skipped: list[BackupInfo]) -> list[str]:
    return [f"  not pruned: {info.path.name} (manifest unreadable: {info.manifest_problem})"
            for info in skipped]


def _prune_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", type=keep_count_argument, metavar="K", required=True)
    _folder_option(parser)


@command("prune", "Delete all but the newest K backups.", options=_prune_options, logged=True)
@clearing_leftovers
def prune(context: Context) -> CommandResult:
    """Delete all but the newest K backups; a stop part way says what was deleted (exit 1)."""
    keep = context.args.keep
    try:
        done = _backups(context).prune(keep)
    except PruneStopped as stopped:
        data = {"deleted": stopped.deleted, "not_deleted": stopped.not_deleted,
                "skipped": _skipped_rows(stopped.skipped)}
        return CommandResult(f"Pruning stopped part way after deleting "
                             f"{len(stopped.deleted)} backup(s).", data,
                             ["deleted", "not_deleted"],
                             _skipped_lines(stopped.skipped), problem=stopped,
                             failure_exit=EXIT_FAILED)
    data = {"deleted": done.deleted, "not_deleted": [], "skipped": _skipped_rows(done.skipped)}
    skipped = (f" {len(done.skipped)} backup(s) with an unreadable manifest were left alone."
               if done.skipped else "")
    return CommandResult(f"Kept the newest {keep} backup(s); deleted {len(done.deleted)}."
                         + skipped, data, ["deleted"], _skipped_lines(done.skipped))


def _restore_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="PATH", nargs="?",
                        help="backup file (or use --at with --archive)")
    parser.add_argument("--yes", action="store_true",
                        help="confirm: the database's current contents will be replaced")
    parser.add_argument("--no-safety-backup", action="store_true",
                        help="skip the backup of the current database taken first")
    parser.add_argument("--allow-live-workers", action="store_true",
                        help="restore even though workers are at work: programs holding "
                             "the file, recent commits, leases, fresh heartbeats (they may "
                             "run restored tasks twice)")
    parser.add_argument("--wait", type=seconds_argument, default=0.0, metavar="SECONDS",
                        help="wait up to this long for another program to release the "
                             "database (default: 0)")
    parser.add_argument("--keep-newer-tasks", action="store_true",
                        help="keep the tasks created after the backup (ids above its "
                             "highest), with their logs, in the restored queue")
    add_restore_point_options(parser)


@command("restore", "Replace the database's contents with a backup.",
         options=_restore_options, logged=True)
@clearing_leftovers
def restore(context: Context) -> CommandResult:
    """Restore a backup into the database; refused (exit 2) without --yes.

    Running workers refuse it (exit 1) unless --allow-live-workers; the restored database
    is checked, and a failed check exits 1 with the safety backup's path.
    """
    args = context.args
    if getattr(args, "at", None) is not None:
        stale = (remove_stale_manifest(args.output)
                 if getattr(args, "output", None) is not None else None)
        result = restore_at(context, restore)
        result.data["stale_manifest_removed"] = stale
        if stale is not None:
            result.lines.append(f"  Replaced the stale manifest {stale.name} (its file was "
                                "not there).")
        return result
    if args.path is None:
        raise QueueBackupError("restore needs a backup PATH, or --at TIME with --archive DIR.",
                               ErrorKind.INVALID)
    target = context.db_path
    if not args.yes:
        raise QueueBackupError(
            f"Restore refused: it replaces the contents of '{target}' with '{args.path}'; "
            "add --yes to confirm.", ErrorKind.INVALID)
    source = require_existing_file(args.path, "Restore", QueueBackupError)
    # A second Ctrl+C must not cut the restore between its commit and its report: the
    # engine stops before its last step or finishes, and then says which.
    context.interrupt.hard_stop = False
    with context.slow_operation() as progress:
        done = execute_restore(RestoreRequest(
            source, target, _backups(context).backup_dir,
            safety_backup=not args.no_safety_backup,
            accepted_workers=ALL_WORKERS if args.allow_live_workers else (),
            lock_wait_seconds=args.wait,
            archive_dirs=(Path(context.config.archive_dir),) if context.config.archive_dir
            else (),
            keep_newer_tasks=args.keep_newer_tasks,
            archive_safety=configured_archive_dir(context.config)), progress,
            context.interrupt)
    check = done.check
    data = {"restored_from": done.restored_from, "target": done.target,
            "safety_backup": done.safety_backup, "seconds": done.seconds,
            "moved_aside": done.moved_aside, "damaged_copy": done.damaged_copy,
            "safety_problem": done.safety_problem,
            "counters_kept": done.counters_kept, "counters_problem": done.counters_problem,
            "counters_repaired": done.counters_repaired, "workers_seen": done.workers_seen,
            "created": done.created,
            "workers_held_off_seconds": done.held_seconds,
            "backup_check": done.source_check, "result_check": done.result_check,
            "safety_check": done.safety_checked,
            "safety_point": done.safety_point.to_dict() if done.safety_point else None,
            "archive_problem": done.archive_problem,
            "check_problems": check.problems if check is not None else []}
    shown = ["restored_from", "target", "safety_backup", "seconds", "moved_aside",
             "damaged_copy", "safety_problem", "counters_kept", "counters_problem",
             "counters_repaired", "workers_seen", "backup_check", "result_check",
             "safety_check", "workers_held_off_seconds"]
    if done.safety_point is not None:
        data["safety_copy"] = done.safety_point.describe()
        shown.insert(shown.index("safety_backup") + 1, "safety_copy")
    if done.archive_problem:
        shown.insert(shown.index("safety_backup") + 1, "archive_problem")
    if args.keep_newer_tasks:
        data.update(carried_tasks(done))
        shown += ["carried_tasks", "carried_logs", "not_carried", "carry_problem"]
    if check is not None and not check.ok:
        kept = f" The safety backup is {done.safety_backup}." if done.safety_backup else ""
        return CommandResult(
            "The backup was written in, but the restored database failed its check.", data,
            shown, problem=QueueBackupError(
                f"The restored database failed its check ({'; '.join(check.problems[:3])})."
                f"{kept}", ErrorKind.CORRUPT), failure_exit=EXIT_FAILED)
    summary = "Database restored and checked."
    if done.created:
        summary = "The database did not exist; it was created from the backup and checked."
    elif done.moved_aside:
        summary += (" The unusable database was kept aside (renamed, not deleted): "
                    f"{done.moved_aside[0]}.")
    return CommandResult(summary, data, shown)


def carried_tasks(done: Any) -> dict[str, Any]:
    """The JSON fields of ``restore --keep-newer-tasks``: what was carried, what was not."""
    carried = done.carried
    return {"carried_tasks": carried.tasks if carried else 0,
            "carried_above_id": carried.above_id if carried else None,
            "carried_task_ids": carried.task_ids if carried else [],
            "carried_logs": carried.logs if carried else 0,
            "carry_conflicts": [c.as_dict() for c in carried.conflicts] if carried else [],
            "not_carried": [c.sentence() for c in carried.conflicts] if carried else [],
            "carry_problem": done.carry_problem}


def _checkpoint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", type=str.lower, choices=CHECKPOINT_CHOICES,
                        help="checkpoint mode (default: from the settings, else passive)")


@command("checkpoint", "Copy the WAL into the database file.", options=_checkpoint_options,
         logged=True)
def checkpoint(context: Context) -> CommandResult:
    """Checkpoint the WAL; exit 1 when readers or writers kept it from finishing."""
    path = database_path(context, "Checkpoint")
    mode = (context.args.mode or context.config.checkpoint_mode).upper()
    result = Maintenance(path).run_checkpoint(mode)
    keys = ["mode", "finished", "busy", "log_frames", "checkpointed_frames",
            "wal_bytes_before", "wal_bytes_after", "seconds"]
    data = {key: getattr(result, key) for key in keys}
    problem = None
    # PASSIVE never waits: meeting another checkpoint (a worker's automatic one) is not a
    # failure, as docs/cli.md promises; only the waiting modes fail when kept from finishing.
    if data["busy"] and data["mode"] != Maintenance.CHECKPOINT_PASSIVE:
        problem = QueueMaintenanceError(
            f"Checkpoint ({mode}) could not finish: other connections were reading or writing "
            f"({data['log_frames'] - data['checkpointed_frames']} WAL frames left); retry "
            "later or use PASSIVE.", ErrorKind.LOCKED)
    headline = f"Checkpoint ({mode}) done."
    if not result.finished:
        headline = (f"Checkpoint ({mode}) did not finish: "
                    f"{max(0, result.log_frames - max(0, result.checkpointed_frames))} WAL "
                    "frames left.")
    return CommandResult(headline, data, keys, problem=problem, shortfall=result.shortfall)


@command("vacuum", "Rebuild the database file without free pages (blocks writers).",
         logged=True)
def vacuum(context: Context) -> CommandResult:
    """Rebuild the file without free pages; sizes before and after."""
    path = database_path(context, "VACUUM")
    with context.slow_operation() as progress:
        result = Maintenance(path).run_vacuum(progress, context.interrupt).as_dict()
    keys = ["size_before", "size_after", "freed_bytes", "seconds"]
    return CommandResult("VACUUM done.", {key: result[key] for key in keys}, keys)


def _analyze_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", metavar="T", help="only this table")


@command("analyze", "Refresh the query planner's statistics.", options=_analyze_options,
         logged=True)
def analyze(context: Context) -> CommandResult:
    """Refresh planner statistics for the whole file or one table."""
    path = database_path(context, "ANALYZE")
    size = file_size(path)
    result = Maintenance(path).run_analyze(context.args.table).as_dict()
    data = {"table": result.get("table"), "size_before": size,
            "size_after": file_size(path), "seconds": result["seconds"]}
    return CommandResult("ANALYZE done.", data, ["table", "seconds"])


def _optimize_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full", action="store_true", help="also VACUUM (blocks writers)")


@command("optimize", "ANALYZE, and with --full also VACUUM.", options=_optimize_options,
         logged=True)
def optimize(context: Context) -> CommandResult:
    """ANALYZE, plus VACUUM with --full; sizes before and after."""
    path = database_path(context, "Optimize")
    with context.slow_operation() as progress:
        result = Maintenance(path).run_optimize(context.args.full, progress,
                                                context.interrupt).as_dict()
    data = {"analyzed": result["analyzed"], "vacuumed": result["vacuumed"],
            "size_before": _stats_size(result["stats_before"]),
            "size_after": _stats_size(result["stats_after"]), "seconds": result["seconds"],
            "stats_before": result["stats_before"], "stats_after": result["stats_after"]}
    return CommandResult("Optimize done.", data,
                         ["analyzed", "vacuumed", "size_before", "size_after", "seconds"])


def _integrity_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="faster, fewer checks")


@command("integrity", "Run SQLite's integrity check on the database.",
         options=_integrity_options, logged=True)
def integrity(context: Context) -> CommandResult:
    """Run SQLite's integrity check; exit 1 when it reports problems."""
    path = database_path(context, "Integrity check")
    with context.interrupt:
        found = Maintenance(path).check_integrity(quick=context.args.quick,
                                                       cancelled=context.interrupt)
    problems = found.problems
    name = "Quick check" if found.quick else "Integrity check"
    data = {"path": path, "quick": found.quick, "problem_count": found.problem_count,
            "problems": problems}
    if found.ok:
        return CommandResult(f"{name} passed: no problems found.", data, ["path"])
    problem = QueueMaintenanceError(
        f"The {name.lower()} of '{path}' found {found.count_text()}, first: "
        f"{problems[0].rstrip('.')}; restore from a backup.", ErrorKind.CORRUPT)
    return CommandResult(f"{name} FAILED: found {found.count_text()}:", data,
                         ["path", "problem_count"], [f"  - {item}" for item in problems],
                         problem, shortfall=found.shortfall)


def _leases_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=lease_timeout_argument, metavar="S",
                        help="seconds a lease must be expired to count as stale "
                             "(default: from the settings)")
    parser.add_argument("--requeue", action="store_true", help="requeue the stale tasks")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --requeue: show what would happen, change nothing")


def _requeues(args: argparse.Namespace) -> bool:
    return bool(args.requeue and not args.dry_run)


@command("leases", "Find tasks whose worker lease expired, and requeue them.",
         options=_leases_options, logged=True, logged_when=_requeues)
def leases(context: Context) -> CommandResult:
    """Find stale leases; with --requeue recover them (--dry-run only previews)."""
    args = context.args
    path = database_path(context, "Stale lease check")
    timeout = args.timeout
    if timeout is None:
        timeout = context.config.stale_lease_timeout_seconds
    manager = LeaseManager(path)
    data: dict[str, Any] = {"timeout_seconds": timeout,
                            "dry_run": args.dry_run or not args.requeue}
    if args.requeue:
        result = manager.requeue_stale_leases(timeout, dry_run=args.dry_run)
        data.update(stale=result.stale, requeued=result.requeued,
                    dead_lettered=result.dead_lettered, task_ids=result.task_ids,
                    requeued_ids=result.requeued_ids, dead_lettered_ids=result.dead_lettered_ids)
        alive_ids = result.expired_worker_alive_ids
        verb = "would be" if args.dry_run else "were"
        headline = (f"{result.stale} stale lease(s): {result.requeued} {verb} requeued, "
                    f"{result.dead_lettered} {verb} dead-lettered.")
    else:
        stale = manager.find_stale_leases(timeout)
        alive_ids = [task.id for task in manager.find_expired_live_leases(timeout)]
        data.update(stale=len(stale), requeued=0, dead_lettered=0,
                    task_ids=[task.id for task in stale])
        headline = f"{len(stale)} stale lease(s) found" + (
            "; run with --requeue to recover them." if stale else ".")
    # Rule 8: an overdue lease whose worker still heartbeats is a renewal problem, not stale.
    data.update(expired_worker_alive=len(alive_ids), expired_worker_alive_ids=alive_ids)
    lines = []
    if alive_ids:
        lines.append(f"{len(alive_ids)} more lease(s) expired while the worker still "
                     "heartbeats (a lease-renewal problem): left alone, look into those "
                     "workers.")
    return CommandResult(headline, data, ["timeout_seconds", "stale", "requeued",
                                          "dead_lettered", "task_ids",
                                          "expired_worker_alive_ids"], lines)


@command("stats", "Sizes, pages, WAL, fragmentation and task counts.")
def stats(context: Context) -> CommandResult:
    """Stats: sizes, pages, WAL, fragmentation and task counts."""
    path = database_path(context, "Reading statistics")
    result = Maintenance(path).read_stats().as_dict()
    return CommandResult(f"Statistics of {path}", result,
                         [key for key in result if key not in _STATS_HIDDEN])


def _demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", type=count_argument, default=2000, metavar="N")
    parser.add_argument("--workers", type=count_argument, default=4, metavar="K")
    parser.add_argument("--seconds", type=seconds_argument, default=0.0, metavar="S",
                        help="run the workers for S seconds (default 0: only create the queue)")
    parser.add_argument("--force", action="store_true",
                        help="replace the file even when it is not a demo queue")
    parser.add_argument("--path", type=Path, metavar="P",
                        help="demo file (default: --db if given, else the user data folder)")


@command("demo", "Create a demo queue and optionally run simulated workers on it.",
         options=_demo_options)
def demo(context: Context) -> CommandResult:
    """Create a demo queue, then optionally run simulated workers on it for a while."""
    args = context.args
    path = Path(args.path or args.db or demo_queue_path()).absolute()
    info = create_demo_queue(path, tasks=args.tasks, force=args.force)
    data: dict[str, Any] = {"path": info.path, "tasks": info.tasks}
    shown = ["path", "tasks"]
    if args.seconds > 0 and args.workers > 0:
        workers = DemoWorkers(info.path, args.workers)
        deadline = time.monotonic() + args.seconds
        interrupt = context.interrupt
        # The first Ctrl+C only sets the flag (no KeyboardInterrupt can land half-way
        # through starting the threads), so the workers are always stopped.
        with interrupt:
            try:
                workers.start()
                while (workers.is_running and not interrupt()
                       and time.monotonic() < deadline):
                    interrupt.requested.wait(min(0.25, max(0.0, deadline - time.monotonic())))
            finally:
                workers.stop()
        if interrupt():
            data["interrupted"] = True
        data.update(workers=args.workers, seconds=args.seconds, stats=asdict(workers.stats))
        shown += ["workers", "seconds", "stats"]
    return CommandResult("Demo queue ready.", data, shown)


#: Stats fields scripts get but a person does not need twice (the headline names the path).
_STATS_HIDDEN = frozenset({"path", "total_size_mb", "wal_size_mb"})


def _stats_size(stats_result: dict[str, Any]) -> int:
    return int(stats_result.get("db_size_bytes", 0)) + int(stats_result.get("wal_size_bytes", 0))


#: Each declared command's handler by name (``check`` has its own entry point).
COMMANDS: dict[str, Callable[[Context], CommandResult]] = {
    name: declared.run for name, declared in DECLARED.items() if declared.run is not None}
