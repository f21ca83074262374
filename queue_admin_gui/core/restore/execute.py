"""Carrying out a restore: the one path the CLI, the wizard and the public API all take.

The order of the steps is what makes the restore unable to lose a committed write:

1. The backup (and its manifest) is copied into a private staging folder beside the live
   database (:mod:`.staging`), hashed on the way, and the copy is verified fully (checksum,
   integrity check, queue schema). The user's backup file is only ever read as plain
   bytes; SQLite never opens it, so nothing can create, delete or change a file beside it.
   When this tool sealed a full check of exactly these bytes (:mod:`..trust.check_seal`),
   the integrity check is not run again; every other check is.
2. The backup's id counters are made sound (:func:`.keep.repair_counters`), then workers
   at work refuse the restore unless the caller names them as accepted (:mod:`.gate`: other
   programs holding the file, commits watched since step 1, leases, fresh heartbeats): they
   would go on working on tasks the restore puts back, and run them twice.
3. The staging copy is written into the live database through SQLite's backup API. The first
   step of that copy takes the live database's write lock (outside WAL mode its exclusive
   lock) and keeps it until the copy commits. Only then, with no writer able to commit, are
   the safety backup taken and the live AUTOINCREMENT counters read: every write committed
   before the restore is in the safety backup, and the counters copied into the staging
   file never go below what the live database had handed out, so no task id is reused.
4. The safety copy is checked in full, while the restored file is compared page by page
   with the staging copy (:mod:`.page_proof`); only when that comparison cannot be made
   does SQLite's integrity check of the result run. When the point-in-time archive is to
   be the safety copy, its snapshot is hashed beside step 1's staging copy, so its check
   beside the write reads only the frame logs (the digest is used only if the snapshot is
   still that very file). Its schema and counters are checked
   either way, and the staging folder removed. Once the copy has committed nothing raises:
   what goes wrong after it is reported in the result, which always says the backup was
   written in.

A live database SQLite cannot open, or one whose queue schema is broken, is moved aside
whole; a missing one is created from the backup; one that opens but is damaged is
written over in place (workers may have it open) after an unchecked copy of it is kept; see
:mod:`.keep`. Workers are held off from the first write step until the commit: they
see SQLite "busy" and retry within their busy timeout: the safety copy's pages and the
write, nothing more.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from ..archive.safety_point import KnownDigest, archiving_this, hash_snapshot_ahead
from ..backups.backup_paths import refuse_live_side_paths
from ..backups.backup_store import BackupStore
from ..backups.verify import check_backup_file
from ..database import writer_lock
from ..errors import (
    ErrorKind,
    OperationCancelled,
    QueueAdminError,
    QueueBackupError,
)
from ..files.db_files import require_existing_file
from ..progress import CancelCheck, ProgressCallback, report
from ..trust.check_seal import record_full_check, trusted_check
from .gate import ALL_WORKERS, CommitWatch, WorkerSignals, read_worker_signals
from .keep import (
    ArchiveNotConfirmed,
    LiveStateKeeper,
    RestoreReport,
    RestoreRequest,
    carry_set_aside_counters,
    counter_problems,
    repair_counters,
    safety_folder,
)
from .page_proof import STAGE_PROOF, prove_pages_equal
from .plan import RestoredCheck, check_restored
from .staging import make_staging_dir, remove_stale_staging, stage_copy
from .write_access import blocked_sentence, probe_write_access, wait_for_write_access
from .writing import (
    LogSettler,
    TargetState,
    holds_queue_tables,
    inspect_target,
    move_aside,
    write_into,
)

#: Safety backups kept in that folder; older ones are pruned after each restore.
SAFETY_KEEP_COUNT = 5
STAGE_WAITING = "Waiting for another program to let go of the database"
STAGE_CHECK_RESTORED = "Checking the restored database"
STAGE_SAFETY_CHECK = "Checking the safety copy (workers are no longer held off)"
#: The report's words for a backup checked in full by this restore.
CHECKED_NOW = "checked fully now"
#: The report's words for a result proven equal to the checked backup.
PROVEN_EQUAL = "every page equal to the checked backup's"


def execute_restore(request: RestoreRequest, progress: ProgressCallback | None = None,
                    cancelled: CancelCheck | None = None) -> RestoreReport:
    """Restore ``request.backup_path`` into ``request.target``; see the module docstring.

    Raises :class:`QueueBackupError` (kinds INVALID, CORRUPT, NOT_A_QUEUE, LOCKED,
    WORKERS_ACTIVE, ...) when the restore is refused or fails, and
    :class:`OperationCancelled` on cancel; either way the live database is as it was (a
    safety copy taken under the lock is removed, since nothing changed). Runs under this
    process's writer lock of the target (:func:`..database.writer_lock`), so the window's
    own writes wait for it.
    """
    with writer_lock(Path(request.target)):
        return _restore_locked(request, progress, cancelled)


def _restore_locked(request: RestoreRequest, progress: ProgressCallback | None,
                    cancelled: CancelCheck | None) -> RestoreReport:
    backup_path, target = Path(request.backup_path), Path(request.target)
    action = f"Restoring '{target}' from '{backup_path}'"
    started = time.monotonic()
    require_existing_file(backup_path, action, QueueBackupError)
    if target.exists() and os.path.samefile(target, backup_path):
        raise QueueBackupError(f"{action} refused: the backup and the database are the same "
                               "file; choose another backup.", ErrorKind.INVALID)
    refuse_live_side_paths(backup_path, target, action)
    remove_stale_staging(target.parent)
    staging_dir = make_staging_dir(target, action)
    # Commits by other connections are watched from now on, while the backup is checked.
    watch = (CommitWatch(target) if target.exists()
             and not set(request.accepted_workers) >= ALL_WORKERS else None)
    # The archive's snapshot is hashed beside the staging copy, so that its check beside
    # the write (when the archive is the safety copy) only reads the frame logs.
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queue-admin-snapshot-hash")
    known: Future[KnownDigest | None] | None = None
    if request.safety_backup and request.archive_safety is not None and target.exists() \
            and archiving_this(target, Path(request.archive_safety)):
        known = ahead.submit(hash_snapshot_ahead, request.archive_safety)
    ahead.shutdown(wait=False)
    try:
        staged, digest = stage_copy(backup_path, staging_dir, action, progress, cancelled)
        size = staged.stat().st_size
        earlier = trusted_check(digest, size)
        verdict = check_backup_file(staged, progress, cancelled,
                                    live_path=target if target.exists() else None,
                                    earlier_check=earlier)
        if not verdict.ok:
            raise QueueBackupError(f"{action} refused: the backup failed verification: "
                                   f"{verdict.problems[0]}", verdict.kind)
        if earlier is None:
            record_full_check(digest, size)
        repaired = repair_counters(staged, action)
        _wait_for_lock(target, request.lock_wait_seconds, progress, cancelled)
        signals = _refuse_live_workers(request, action, watch, cancelled)
        if watch is not None:
            watch.close()

        def restage() -> None:
            """The checked backup's bytes again, for a second attempt of the write."""
            for leftover in staging_dir.iterdir():
                leftover.unlink()
            _, again = stage_copy(backup_path, staging_dir, action, progress, cancelled)
            if again != digest:
                raise QueueBackupError(f"{action} stopped: the backup changed while it was "
                                       "being restored; nothing was changed.",
                                       ErrorKind.CORRUPT)
            repair_counters(staged, action)

        outcome = _write(request, staged, action, started, progress, cancelled, restage,
                         _known_digest(known))
        outcome.counters_repaired = repaired
        outcome.source_check = earlier.describe() if earlier is not None else CHECKED_NOW
        outcome.workers_seen = signals.notes() if signals is not None else []
        return outcome
    finally:
        if watch is not None:
            watch.close()
        shutil.rmtree(staging_dir, ignore_errors=True)


def _known_digest(known: Future[KnownDigest | None] | None) -> KnownDigest | None:
    """The snapshot's digest hashed ahead, or None (nothing hashed, or it failed)."""
    if known is None:
        return None
    try:
        return known.result()
    except Exception:  # noqa: BLE001 - without it, the check beside the write hashes instead
        return None


def _write(request: RestoreRequest, staged: Path, action: str, started: float,
           progress: ProgressCallback | None, cancelled: CancelCheck | None,
           restage: Callable[[], None], known: KnownDigest | None = None) -> RestoreReport:
    target = Path(request.target)
    inspection = inspect_target(target, check=False, progress=progress, cancelled=cancelled,
                                busy_timeout_ms=request.busy_timeout_ms)
    damaged_queue = inspection.state is TargetState.NOT_A_QUEUE and holds_queue_tables(target)
    if inspection.state is TargetState.NOT_A_QUEUE and not damaged_queue:
        raise QueueBackupError(
            f"{action} refused: '{target}' holds an SQLite database that is not a PrismQ "
            f"queue ({'; '.join(inspection.problems)}) and none of its tables; check that "
            "--db names the queue file, or move that file aside first.",
            ErrorKind.NOT_A_QUEUE)
    outcome = RestoreReport(restored_from=Path(request.backup_path), target=target,
                            safety_backup=None, seconds=0.0,
                            created=inspection.state is TargetState.MISSING)
    if inspection.state in (TargetState.CORRUPT, TargetState.MISSING) or damaged_queue:
        # SQLite cannot open it, or its queue schema is broken, so no worker can work it:
        # set it aside whole (renamed, never deleted).
        outcome.moved_aside = move_aside(target)
        if inspection.state is not TargetState.MISSING and outcome.moved_aside:
            carry_set_aside_counters(outcome.moved_aside[0], staged, outcome)
    keeper = LiveStateKeeper(request, outcome, action, progress, cancelled,
                             wal=inspection.journal_mode == "wal", known=known)
    guarded = inspection.state in (TargetState.HEALTHY, TargetState.DAMAGED)
    # The restored pages are copied from the WAL into the file after the commit, beside the
    # proof and the safety copy's check, not while the write still holds the lock.
    settler = (LogSettler.open(target, request.busy_timeout_ms)
               if guarded and inspection.journal_mode == "wal" else None)

    def write(keeper: LiveStateKeeper | None) -> None:
        write_into(staged, target, progress, cancelled, pages_per_step=request.pages_per_step,
                   busy_timeout_ms=request.busy_timeout_ms,
                   while_locked=None if keeper is None else keeper.while_locked,
                   before_last_step=None if keeper is None else keeper.before_commit,
                   shrink_wal=settler is None)

    try:
        try:
            try:
                write(keeper if guarded else None)
            except ArchiveNotConfirmed:
                # The archive failed its check beside the write, which rolled back: write
                # again with a safety backup instead (the problem stays in the report), from
                # the backup's own bytes (the first attempt carried counters and tasks into
                # the staged copy, as they were then).
                keeper.discard()
                restage()
                keeper = LiveStateKeeper(replace(request, archive_safety=None), outcome,
                                         action, progress, cancelled,
                                         wal=inspection.journal_mode == "wal")
                write(keeper)
        except QueueBackupError as error:
            if error.kind not in (ErrorKind.CORRUPT, ErrorKind.NOT_A_DATABASE) or \
                    outcome.moved_aside or keeper.locked_at is not None:
                raise
            # The file opened but SQLite cannot write into it: set it aside whole.
            if settler is not None:
                settler.close(shrink=False)
                settler = None
            outcome.moved_aside = move_aside(target)
            write(None)
    except BaseException as error:
        if settler is not None:
            settler.close(shrink=False)
        keeper.discard()  # nothing changed, so the copy taken under the lock is not needed
        if isinstance(error, QueueAdminError):
            raise _explain_failure(error, action, outcome) from error
        raise
    # The restore has committed: from here on nothing raises, whatever is reported.
    if request.keep_newer_tasks and outcome.carried is None and not outcome.created:
        outcome.carry_problem = ("the live database could not be opened, so no task created "
                                 "after the backup could be kept; salvage them from the file "
                                 "moved aside")
    if keeper.locked_at is not None:
        outcome.held_seconds = time.monotonic() - keeper.locked_at
    # The result's proof reads the files on a thread of its own, and the restored pages are
    # copied into the file on another, while the safety copy is checked on this one (which
    # alone reports progress); workers are no longer held off.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="queue-admin-proof") as pool:
        proof = pool.submit(prove_pages_equal, staged, target)
        settled = pool.submit(settler.copy_into_file) if settler is not None else None
        report(progress, 0, 0, STAGE_SAFETY_CHECK)
        try:
            keeper.finish()
        except (QueueAdminError, sqlite3.Error, OSError) as error:
            outcome.safety_problem = f"the safety copy could not be sealed ({error})"
        report(progress, 0, 0, STAGE_PROOF)
        try:
            unproven = proof.result()
        except Exception as error:  # noqa: BLE001 - no proof then; the full check runs
            unproven = f"the pages could not be compared ({error})"
        if settled is not None:
            settled.result()
    if settler is not None:
        settler.close()
    outcome.result_check = (PROVEN_EQUAL if unproven is None
                            else f"SQLite's integrity check ({unproven})")
    report(progress, 0, 0, STAGE_CHECK_RESTORED)
    try:
        outcome.check = check_restored(target, integrity=unproven is not None)
        outcome.check.problems += counter_problems(target, outcome.counters_kept)
    except (QueueAdminError, sqlite3.Error, OSError) as error:
        outcome.check = RestoredCheck(target, [
            f"the backup was restored, but the restored database could not be checked "
            f"({error}); run the integrity check once other programs let go of it"])
    if outcome.safety_backup is not None:
        with contextlib.suppress(QueueAdminError, sqlite3.Error, OSError):
            BackupStore(target, safety_folder(request.backup_dir)).prune(SAFETY_KEEP_COUNT)
    outcome.seconds = time.monotonic() - started
    return outcome


def _explain_failure(error: QueueAdminError, action: str,
                     outcome: RestoreReport) -> QueueAdminError:
    """Add what was kept (a safety backup) or set aside (a damaged file) to the sentence."""
    kept = []
    if outcome.safety_backup is not None:
        kept.append(f"the safety backup it had taken was kept: {outcome.safety_backup}")
    if outcome.damaged_copy is not None:
        kept.append(f"a copy of the damaged database was kept: {outcome.damaged_copy}")
    if outcome.moved_aside:
        kept.append("the damaged database was moved aside, not deleted: "
                    + ", ".join(str(path) for path in outcome.moved_aside))
    if not kept:
        return error
    if isinstance(error, OperationCancelled):
        head = (f"{action} was cancelled" if outcome.moved_aside
                else f"{action} was cancelled; the live database was not changed")
        return OperationCancelled(f"{head}; {'; '.join(kept)}.")
    return QueueBackupError(f"{error.message.rstrip('.')}; {'; '.join(kept)}.", error.kind)


def _refuse_live_workers(request: RestoreRequest, action: str, watch: CommitWatch | None,
                         cancelled: CancelCheck | None) -> WorkerSignals | None:
    """Refuse while workers are at work (see :mod:`.gate`), unless the caller accepted them."""
    target = Path(request.target)
    if watch is None or not target.exists():
        return None
    try:
        signals = read_worker_signals(target, watch=watch, archive_dirs=archive_dirs(request),
                                      cancelled=cancelled)
    except QueueAdminError as error:
        if isinstance(error, OperationCancelled):
            raise
        raise QueueBackupError(f"{action} refused: whether workers are at work could not be "
                               f"read ({error.message.rstrip('.')}); nothing was changed.",
                               error.kind) from error
    if not signals.accepted_by(request.accepted_workers):
        raise QueueBackupError(
            f"{action} refused: workers are at work on the queue: "
            f"{'; '.join(signals.reasons())}; they would keep working on tasks the restore "
            "puts back and may run them twice, so nothing was changed; stop them first (the "
            "restore can go as soon as none of this is seen) or confirm that they may keep "
            "running (--allow-live-workers).", ErrorKind.WORKERS_ACTIVE)
    return signals


def archive_dirs(request: RestoreRequest) -> list[Path]:
    """Where the tool's archiver of this database may keep its lock (to recognise it)."""
    folder = Path(request.backup_dir)
    safety = [request.archive_safety] if request.archive_safety is not None else []
    return [*map(Path, request.archive_dirs), *safety, folder / "archive",
            folder / "wal-archive"]


def _wait_for_lock(target: Path, wait_seconds: float, progress: ProgressCallback | None,
                   cancelled: CancelCheck | None) -> None:
    """Wait up to ``wait_seconds`` for another program to let go of the live database."""
    if wait_seconds <= 0 or probe_write_access(target) is None:
        return

    def tick(remaining: float) -> None:
        report(progress, int((wait_seconds - remaining) * 1000), int(wait_seconds * 1000),
               STAGE_WAITING)

    if not wait_for_write_access(target, wait_seconds, tick, cancelled):
        raise QueueBackupError(blocked_sentence(target, wait_seconds), ErrorKind.LOCKED)


__all__ = ["SAFETY_KEEP_COUNT", "execute_restore"]
