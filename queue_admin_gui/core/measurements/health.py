"""Is the queue healthy? Measurements against the config's thresholds, with the reasons.

The status bar's badge and ``queue-admin-cli`` share :func:`assess_health`, so a warning in
the window and a non-zero exit code in Task Scheduler mean the same thing. Each reason is one
sentence naming the measurement, the threshold and what to do.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..backups.manifest import (
    is_backup_file_name,
    is_rebuilt_file_name,
    manifest_beside,
    parse_backup_name,
)
from ..errors import ErrorKind, QueueAdminError, drive_label, format_bytes
from ..files.db_files import file_size, wal_path
from ..files.disk import free_bytes, nearest_existing_folder
from ..leases.manager import LeaseManager
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from ..settings.config import MaintenanceConfig
from .stats import DatabaseStats, read_database_stats


class HealthLevel(enum.IntEnum):
    """How urgent the worst finding is; higher is worse."""

    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        """The word the badge shows."""
        return {HealthLevel.OK: "OK", HealthLevel.WARNING: "Warning",
                HealthLevel.CRITICAL: "Critical"}[self]


@dataclass(frozen=True)
class HealthFinding:
    """One measurement that crossed a threshold."""

    level: HealthLevel
    reason: str
    #: A few words for the badge: "WAL 120 MB", "20 stale leases".
    short: str = ""
    #: Which measurement it is (one of :data:`FINDING_KINDS`), the same whatever its value,
    #: so alerts can tell a new problem from a known one that changed a little.
    kind: str = ""


#: The kinds of finding :func:`assess_health` makes.
FINDING_KINDS = ("damage", "wal", "free_pages", "stale_leases", "expired_leases", "backup",
                 "disk_database", "disk_backup")


@dataclass(frozen=True)
class HealthMeasurements:
    """What the health check looks at; None means "not measured" and is not judged."""

    wal_size_bytes: int | None = None
    #: What SQLite said when a read met a damaged page; None when nothing was found.
    damage: str | None = None
    fragmentation_percent: float | None = None
    #: Abandoned tasks: lease overdue by the timeout and worker silent that long or unknown.
    stale_leases: int | None = None
    #: Tasks whose lease is overdue by the timeout while their worker still heartbeats.
    expired_live_leases: int | None = None
    last_backup_at: datetime | None = None
    has_backups: bool | None = None
    #: Database plus WAL, the most a VACUUM or a backup has to write again.
    database_bytes: int | None = None
    #: Free space on the database's drive and on the backup folder's drive.
    database_free_bytes: int | None = None
    backup_free_bytes: int | None = None
    database_drive: str = ""
    backup_drive: str = ""

    @classmethod
    def from_stats(cls, stats: DatabaseStats | None, *, damage: str | None = None,
                   file_bytes: tuple[int, int] | None = None,
                   stale_leases: int | None = None,
                   expired_live_leases: int | None = None,
                   last_backup_at: datetime | None = None,
                   has_backups: bool | None = None,
                   database_free: tuple[str, int] | None = None,
                   backup_free: tuple[str, int] | None = None) -> HealthMeasurements:
        """Measurements from the file's statistics plus the lease, backup and disk facts.

        ``stats`` is None when SQLite could not read the file; ``file_bytes`` then gives
        the database's and its WAL's sizes on disk. ``database_free`` and ``backup_free``
        are ``(drive, free bytes)`` pairs.
        """
        database_bytes = wal_bytes = None
        if stats is not None:
            wal_bytes = stats.wal_size_bytes
            database_bytes = stats.db_size_bytes + stats.wal_size_bytes
        elif file_bytes is not None:
            wal_bytes = file_bytes[1]
            database_bytes = file_bytes[0] + file_bytes[1]
        return cls(
            wal_size_bytes=wal_bytes,
            damage=damage,
            fragmentation_percent=stats.fragmentation_percent if stats is not None else None,
            stale_leases=stale_leases,
            expired_live_leases=expired_live_leases,
            last_backup_at=last_backup_at,
            has_backups=has_backups,
            database_bytes=database_bytes,
            database_free_bytes=database_free[1] if database_free else None,
            backup_free_bytes=backup_free[1] if backup_free else None,
            database_drive=database_free[0] if database_free else "",
            backup_drive=backup_free[0] if backup_free else "",
        )


@dataclass(frozen=True)
class HealthReport:
    """The overall level and every finding behind it (empty when all is well)."""

    level: HealthLevel
    findings: list[HealthFinding] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        """The findings' sentences, worst first."""
        return [finding.reason for finding in self.findings]

    def headline(self) -> str:
        """The badge text: the level and the worst finding in a few words."""
        if not self.findings:
            return self.level.label
        more = len(self.findings) - 1
        extra = f" (+{more} more)" if more else ""
        return f"{self.level.label}: {self.findings[0].short or self.findings[0].reason}{extra}"

    def summary(self) -> str:
        """A tooltip-ready text: the level and one reason per line."""
        if not self.findings:
            return "OK: every measurement is within the thresholds in the settings."
        return f"{self.level.label}:\n" + "\n".join(f"\u2022 {r}" for r in self.reasons)


_MB = 1024 * 1024


def _grade(value: float, warning: float, critical: float) -> HealthLevel:
    if value >= critical:
        return HealthLevel.CRITICAL
    if value >= warning:
        return HealthLevel.WARNING
    return HealthLevel.OK


def backup_age_hours(last_backup_at: datetime | None, now: datetime | None = None
                     ) -> float | None:
    """Hours since the last backup, or None when there is none."""
    if last_backup_at is None:
        return None
    now = now or datetime.now(timezone.utc)
    if last_backup_at.tzinfo is None:
        last_backup_at = last_backup_at.replace(tzinfo=timezone.utc)
    return max(0.0, (now - last_backup_at).total_seconds() / 3600)


def assess_health(config: MaintenanceConfig, measured: HealthMeasurements,
                  now: datetime | None = None) -> HealthReport:
    """Grade each measurement against the config's warning and critical levels."""
    candidates: list[HealthFinding | None] = []
    if measured.damage:
        # First among the critical findings: nothing else on the badge matters until the
        # file is sound, and the other measurements of a damaged file are not to be trusted.
        candidates.append(HealthFinding(HealthLevel.CRITICAL, (
            f"The database is damaged ({measured.damage}); stop the workers, then restore it "
            "from a backup. The Optimization tab's integrity check lists what is damaged."),
            f"database damaged: {measured.damage}", "damage"))
    if measured.wal_size_bytes is not None:
        size = format_bytes(measured.wal_size_bytes)
        candidates.append(_threshold_finding(
            measured.wal_size_bytes / _MB, config.wal_size_warning_mb,
            config.wal_size_threshold_mb,
            lambda limit: (f"The WAL file is {size} (limit {limit:g} MB); run a TRUNCATE "
                           "checkpoint on the WAL/Checkpoint tab."),
            f"WAL {size}", "wal"))
    if measured.fragmentation_percent is not None:
        free = f"{measured.fragmentation_percent:.0f} %"
        candidates.append(_threshold_finding(
            measured.fragmentation_percent, config.fragmentation_warning_percent,
            config.fragmentation_critical_percent,
            lambda limit: (f"{free} of the database pages are free (limit {limit:g} %); run "
                           "VACUUM on the Optimization tab in a quiet hour."),
            f"{free} free pages", "free_pages"))
    if measured.stale_leases is not None:
        stale = measured.stale_leases
        candidates.append(_threshold_finding(
            stale, config.stale_leases_warning, config.stale_leases_critical,
            lambda _limit: (f"{stale} tasks are abandoned: their lease expired and their worker "
                            "has gone silent; requeue them on the Leases tab."),
            f"{stale} stale leases", "stale_leases"))
    if measured.expired_live_leases:
        alive = measured.expired_live_leases
        candidates.append(HealthFinding(HealthLevel.WARNING, (
            f"{alive} tasks' leases expired while their workers still heartbeat: those "
            "workers do not renew their leases; look into them (the tasks are not "
            "requeued while their workers are alive)."),
            f"{alive} expired leases, workers alive", "expired_leases"))
    candidates.append(_backup_finding(config, measured, now))
    findings = [finding for finding in candidates if finding is not None]
    findings.extend(_disk_findings(measured))
    findings.sort(key=lambda finding: finding.level, reverse=True)
    worst = max((finding.level for finding in findings), default=HealthLevel.OK)
    return HealthReport(worst, findings)


def _threshold_finding(value: float, warning: float, critical: float,
                       reason: Callable[[float], str], short: str,
                       kind: str) -> HealthFinding | None:
    """A finding when ``value`` reaches a level; ``reason`` gets the limit it crossed."""
    level = _grade(value, warning, critical)
    if not level:
        return None
    limit = critical if level is HealthLevel.CRITICAL else warning
    return HealthFinding(level, reason(limit), short, kind)


def _backup_finding(config: MaintenanceConfig, measured: HealthMeasurements,
                    now: datetime | None) -> HealthFinding | None:
    if measured.has_backups is False:
        return HealthFinding(HealthLevel.CRITICAL, (
            "There is no backup in the backup folder; back up now."), "no backup",
            "backup")
    age = backup_age_hours(measured.last_backup_at, now)
    if age is None:
        return None
    warning, critical = config.backup_age_warning_hours, config.backup_age_critical_hours
    return _threshold_finding(
        age, warning, critical,
        lambda limit: (f"The last backup is {hours_text(age, limit)} old (limit {limit:g} h); "
                       "back up now."),
        f"last backup {hours_text(age, min(warning, critical))} old", "backup")


def hours_text(hours: float, limit: float) -> str:
    """``hours`` in hours, as precise as ``limit`` is written, so the two compare as graded.

    A limit of 0.1 h shows an age of 0.12 h as "0.12 h (7 min)", never "0 hours" beside a
    Critical; rounding to the limit's own decimals keeps an age at or past the limit at or
    past it in the sentence too. Under an hour the minutes follow in brackets.
    """
    written = f"{limit:g}"
    decimals = len(written.split(".")[1]) if "." in written and "e" not in written else 0
    if 0 < limit < 1:
        decimals = max(decimals, 1) + 1
    text = f"{hours:.{decimals}f} h"
    if 0 < hours < 1 and decimals:
        text += f" ({hours * 60:.0f} min)"
    return text


def _disk_findings(measured: HealthMeasurements) -> list[HealthFinding]:
    """VACUUM needs about twice the database free on its drive; a backup needs one copy."""
    size = measured.database_bytes
    if not size:
        return []
    findings: list[HealthFinding] = []
    free = measured.database_free_bytes
    if free is not None and free < 2 * size:
        level = HealthLevel.CRITICAL if free < size else HealthLevel.WARNING
        findings.append(HealthFinding(level, (
            f"Only {format_bytes(free)} free on {measured.database_drive or 'the database drive'}"
            f", less than twice the database ({format_bytes(size)}): VACUUM would be refused; "
            "free some space on that drive."), f"{format_bytes(free)} free", "disk_database"))
    free = measured.backup_free_bytes
    same_drive = measured.backup_drive and measured.backup_drive == measured.database_drive
    if free is not None and free < size and not same_drive:
        findings.append(HealthFinding(HealthLevel.CRITICAL, (
            f"Only {format_bytes(free)} free on {measured.backup_drive or 'the backup drive'}, "
            f"less than one copy of the database ({format_bytes(size)}): the next backup will "
            "fail; free space or choose another backup folder."),
            f"{format_bytes(free)} free for backups", "disk_backup"))
    return findings


def free_space(folder: str | Path) -> tuple[str, int] | None:
    """``(drive, free bytes)`` for the nearest existing folder of ``folder``; None if unknown."""
    free = free_bytes(folder)
    if free is None:
        return None
    return drive_label(nearest_existing_folder(folder).resolve()), free


@dataclass(frozen=True)
class HealthSnapshot:
    """One periodic measurement: the statistics, what was judged, and the verdict.

    ``stats`` is None when SQLite could not read the file (the damage is in ``measured``).
    """

    stats: DatabaseStats | None
    measured: HealthMeasurements
    report: HealthReport
    path: str = ""

    @property
    def database_path(self) -> str:
        """The file that was measured (also known when SQLite could not read it)."""
        return self.path or (self.stats.path if self.stats is not None else "")

    @property
    def is_queue(self) -> bool:
        """True when the file was read and holds the queue's tables."""
        return self.stats is not None and self.stats.is_queue


def latest_backup_time(backup_dir: str | Path, db_path: str | Path | None = None
                       ) -> tuple[datetime | None, bool]:
    """The time of the newest backup in ``backup_dir`` and whether there is any backup.

    Reads the folder listing (times come from the file names, else the modification time),
    so it is cheap enough to run every few seconds; a missing folder has no backups. A file
    rebuilt to an earlier instant from the archive is not a backup of the queue as it is,
    however recently it was written, and is left out. With ``db_path``, a backup whose
    manifest names another database is not this one's (a folder can be shared by several
    queues): manifests are read newest first until one belongs to ``db_path``, so usually
    only one is read. A backup without a readable manifest (an older tool's) counts.
    """
    folder = Path(backup_dir)
    try:
        names = [entry.name for entry in os.scandir(folder)
                 if entry.is_file() and is_backup_file_name(entry.name)
                 and not is_rebuilt_file_name(entry.name)]
    except OSError:
        return None, False
    dated: list[tuple[datetime, str]] = []
    for name in names:
        parsed = parse_backup_name(name)
        if parsed is not None:
            dated.append((parsed[1], name))
            continue
        try:
            dated.append((datetime.fromtimestamp((folder / name).stat().st_mtime,
                                                 timezone.utc), name))
        except OSError:
            continue
    dated.sort(reverse=True)
    for when, name in dated:
        if db_path is None or _taken_of(folder / name, Path(db_path)):
            return when, True
    return None, bool(dated) and db_path is None


def _taken_of(backup: Path, db_path: Path) -> bool:
    """False only when the backup's manifest names a database other than ``db_path``."""
    manifest, unreadable = manifest_beside(backup)
    if manifest is None or unreadable is not None or not manifest.source_path:
        return True
    return _same_file(Path(manifest.source_path), db_path)


def _same_file(one: Path, other: Path) -> bool:
    try:
        if one.exists() and other.exists():
            return os.path.samefile(one, other)
    except OSError:
        pass
    return os.path.normcase(os.path.abspath(one)) == os.path.normcase(os.path.abspath(other))


#: Error kinds that mean the file itself is damaged (SQLITE_CORRUPT, SQLITE_NOTADB).
_DAMAGE_KINDS = frozenset({ErrorKind.CORRUPT, ErrorKind.NOT_A_DATABASE})


def damage_of(error: QueueAdminError) -> str | None:
    """SQLite's own words when ``error`` says the file is damaged, else None."""
    if error.kind not in _DAMAGE_KINDS:
        return None
    cause = error.__cause__
    return str(cause) if cause is not None else error.message


def measure_health(db_path: str | Path, config: MaintenanceConfig,
                   progress: ProgressCallback | None = None,
                   cancelled: CancelCheck | None = None) -> HealthSnapshot:
    """Read the statistics, stale leases and newest backup, and grade them (read-only).

    Damage is found by catching SQLITE_CORRUPT / SQLITE_NOTADB from the reads made here
    anyway (the header and schema for the statistics; the in-flight tasks, their lease
    columns and the workers for the lease counts), not by a check of every page: that
    would read the whole file every few seconds. So a damaged page no read touches shows
    only in the integrity check, while damage in the pages the badge reports on is never
    shown as stale leases or as a healthy queue.
    """
    action = "Reading the database health"
    report(progress, 0, 3, "Reading statistics")
    damage = None
    stats: DatabaseStats | None
    try:
        stats = read_database_stats(db_path, include_task_counts=False)
    except QueueAdminError as error:
        damage = damage_of(error)
        if damage is None:
            raise
        stats = None
    raise_if_cancelled(cancelled, action)
    stale = expired_live = None
    if stats is not None and stats.is_queue:
        report(progress, 1, 3, "Looking for stale leases")
        try:
            counts = LeaseManager(db_path).lease_counts(config.stale_lease_timeout_seconds)
            stale, expired_live = counts.stale, counts.expired_worker_alive
        except QueueAdminError as error:
            damage = damage_of(error)
            if damage is None:
                raise
    raise_if_cancelled(cancelled, action)
    report(progress, 2, 3, "Looking at the backup folder")
    last_backup_at, has_backups = latest_backup_time(config.backup_dir, db_path)
    path = Path(db_path)
    measured = HealthMeasurements.from_stats(
        stats, damage=damage, file_bytes=(file_size(path), file_size(wal_path(path))),
        stale_leases=stale, expired_live_leases=expired_live,
        last_backup_at=last_backup_at, has_backups=has_backups,
        database_free=free_space(Path(db_path).parent), backup_free=free_space(config.backup_dir))
    report(progress, 3, 3, "Done")
    return HealthSnapshot(stats, measured, assess_health(config, measured), str(path))
