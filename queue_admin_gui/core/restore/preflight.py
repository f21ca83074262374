"""Before a restore: running workers, another program's write lock and the free space.

The preflight only reads (the write-lock probe rolls back at once). Whether workers are at
work is judged from every signal (:mod:`.gate`), exactly as the restore itself judges it, so
what the wizard shows is what the restore then refuses or lets through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..archive.safety_point import archiving_this
from ..errors import ErrorKind, QueueAdminError, drive_label, format_bytes
from ..files.db_files import file_size, wal_path
from ..files.disk import free_bytes, nearest_existing_folder, same_drive
from ..leases.manager import LeaseManager, WorkerInfo
from ..progress import CancelCheck, ProgressCallback
from .file_summary import QueueSnapshot
from .gate import ACTIVE_WORKER_SECONDS, COMMIT_SAMPLE_SECONDS, WorkerSignals, read_worker_signals
from .write_access import PROBE_BUSY_TIMEOUT_MS, probe_write_access
from .writing import TargetState, inspect_target


@dataclass
class SpaceNeed:
    """Free space one drive must have for the restore, and what it has."""

    folder: Path
    needed_bytes: int
    free_bytes: int

    @property
    def ok(self) -> bool:
        """True when the drive has room."""
        return self.free_bytes >= self.needed_bytes


@dataclass
class Preflight:
    """What stands in the way of a restore right now."""

    live: QueueSnapshot
    #: Workers with a heartbeat in the last minute (their in-flight tasks are spared).
    active_workers: list[WorkerInfo] = field(default_factory=list)
    #: Every signal of workers at work; blocking ones refuse the restore.
    signals: WorkerSignals | None = None
    blocked_reason: str | None = None
    backup_size: int = 0
    safety_size: int = 0
    live_folder: Path | None = None
    backup_dir: Path | None = None
    free_bytes: dict[str, int] = field(default_factory=dict)
    same_drive: bool = True
    #: The point-in-time archive an archiver is archiving this database into right now: it
    #: can be the safety copy (:mod:`..archive.safety_point`), or None.
    archive_safety: Path | None = None

    @property
    def blocked(self) -> bool:
        """True when another program holds a write lock or a long transaction."""
        return self.blocked_reason is not None

    def space_needs(self, safety_backup: bool = True) -> list[SpaceNeed]:
        """Room needed per drive for the staged copy, the backup's pages and the safety backup.

        The restore first copies the backup beside the live database to check it, then
        writes its pages into the live database's WAL: twice the backup's size on the live
        drive. The safety backup goes to the backup folder; on one drive all add up.
        """
        if self.live_folder is None or self.backup_dir is None:
            return []
        safety = self.safety_size if safety_backup else 0
        live_free = self.free_bytes.get("live", 0)
        on_live = 2 * self.backup_size
        if self.same_drive:
            return [SpaceNeed(self.live_folder, on_live + safety, live_free)]
        needs = [SpaceNeed(self.live_folder, on_live, live_free)]
        if safety:
            needs.append(SpaceNeed(self.backup_dir, safety, self.free_bytes.get("backup", 0)))
        return needs

    def space_problem(self, safety_backup: bool = True) -> str | None:
        """One sentence when a drive is too full for the restore, else None."""
        for need in self.space_needs(safety_backup):
            if not need.ok:
                return (f"Restore refused: not enough free space on {drive_label(need.folder)}: "
                        f"need {format_bytes(need.needed_bytes)}, "
                        f"{format_bytes(need.free_bytes)} free; free some space first.")
        return None


def running_workers(live_path: str | Path) -> list[WorkerInfo]:
    """Workers a restore must treat as running.

    That is a heartbeat in the last minute, or one that cannot be read as a time (then
    nobody can tell that the worker stopped). A file too damaged to list its workers has
    none that count (a damaged database is moved aside whole); any other failure to read
    them (a lock, an I/O error) is raised, so a restore never goes ahead because the check
    could not be made.
    """
    try:
        workers = LeaseManager(live_path).list_workers()
    except QueueAdminError as error:
        if error.kind in (ErrorKind.CORRUPT, ErrorKind.NOT_A_DATABASE, ErrorKind.NOT_A_QUEUE):
            return []
        raise
    return [worker for worker in workers
            if not math.isfinite(worker.heartbeat_age_seconds)
            or worker.heartbeat_age_seconds <= ACTIVE_WORKER_SECONDS]


def preflight(live_path: str | Path, backup_dir: str | Path,
              backup_path: str | Path | None = None,
              progress: ProgressCallback | None = None,
              cancelled: CancelCheck | None = None, *,
              sample_seconds: float = COMMIT_SAMPLE_SECONDS,
              archive_dirs: list[Path] | None = None,
              archive_safety: Path | None = None) -> Preflight:
    """Check the live database, its workers, its locks and the free space before a restore.

    The live file is judged exactly as the restore will judge it (a whole-file quick check),
    so what this says about moving a damaged file aside is what the restore then does.
    ``archive_safety``: the archive folder that may stand in for the safety backup; named in
    the result when an archiver is archiving this healthy database into it now.
    """
    live_path, backup_dir = Path(live_path), Path(backup_dir)
    try:
        target = inspect_target(live_path, progress=progress, cancelled=cancelled,
                                busy_timeout_ms=PROBE_BUSY_TIMEOUT_MS)
        live = QueueSnapshot(live_path, target.state, "; ".join(target.problems))
    except QueueAdminError as error:
        if error.kind is not ErrorKind.LOCKED:
            raise
        live = QueueSnapshot(live_path, TargetState.HEALTHY)
    result = Preflight(live)
    if result.live.ok:
        result.active_workers = running_workers(live_path)
    if live_path.exists():
        folders = archive_dirs if archive_dirs is not None else [
            backup_dir / "archive", backup_dir / "wal-archive"]
        if archive_safety is not None:
            folders = [*folders, Path(archive_safety)]
        result.signals = read_worker_signals(live_path, sample_seconds=sample_seconds,
                                             archive_dirs=folders, cancelled=cancelled)
    if (archive_safety is not None and result.live.state is TargetState.HEALTHY
            and archiving_this(live_path, Path(archive_safety))):
        result.archive_safety = Path(archive_safety)
    result.blocked_reason = probe_write_access(live_path)
    result.backup_size = file_size(backup_path) if backup_path is not None else 0
    result.safety_size = file_size(live_path) + file_size(wal_path(live_path))
    result.live_folder = nearest_existing_folder(live_path.parent)
    result.backup_dir = backup_dir
    result.free_bytes = {"live": free_bytes(result.live_folder) or 0,
                         "backup": free_bytes(backup_dir) or 0}
    result.same_drive = same_drive(result.live_folder, backup_dir)
    return result
