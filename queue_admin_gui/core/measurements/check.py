"""The monitoring check: the health badge's verdict in the form monitoring systems read.

Nagios, Icinga, Zabbix, PRTG and Checkmk all understand the monitoring-plugins convention:
exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, one status line, then ``|`` and performance
data. :func:`run_check` grades the queue with :func:`~.health.assess_health`, the same
grading as the window's badge, so a monitor and the window never disagree.

Everything is read through read-only connections: the check never changes the database or
its WAL. Damage is looked for twice: by the health read (which meets damage in the pages it
reads anyway) and by SQLite's ``quick_check`` on a time budget, stopped when the budget runs
out; a check that ran out says so and is not taken as "no damage".
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..archive.controller import configured_archive_dir
from ..archive.status import archive_findings
from ..backups.backup_folder import Leftovers, find_leftovers, folder_listing_problem
from ..database import closing_connection, open_read_only, task_counts
from ..errors import (
    ErrorKind,
    QueueAdminError,
    QueueMaintenanceError,
    format_bytes,
    translate_error,
)
from ..files.db_files import has_sqlite_header
from ..files.file_access import file_problem
from ..settings.config import MaintenanceConfig
from .damage_scan import load_state, save_state, scan_slice
from .health import (
    HealthReport,
    HealthSnapshot,
    assess_health,
    backup_age_hours,
    damage_of,
    measure_health,
)

STATE_OK = 0
STATE_WARNING = 1
STATE_CRITICAL = 2
STATE_UNKNOWN = 3
STATE_NAMES = {STATE_OK: "OK", STATE_WARNING: "WARNING", STATE_CRITICAL: "CRITICAL",
               STATE_UNKNOWN: "UNKNOWN"}
#: How long the quick check may read pages before it is stopped (0 skips it).
QUICK_CHECK_SECONDS = 10.0
#: SQLite virtual-machine steps between two looks at the clock during the quick check.
_CLOCK_STEPS = 1000
_MB = 1024 * 1024
_PLAIN_LABEL = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class PerfDatum:
    """One performance value: ``'label'=value[UOM];[warn];[crit];[min];[max]``.

    ``warn`` and ``crit`` are plugin ranges: ``"50"`` alerts above 50, ``"100:"`` below 100.
    A value of None is written ``U`` (could not be measured).
    """

    label: str
    value: float | None
    uom: str = ""
    warn: str = ""
    crit: str = ""
    minimum: str = ""
    maximum: str = ""

    def render(self) -> str:
        """The datum as monitoring plugins write it (trailing empty fields left off)."""
        name = self.label if _PLAIN_LABEL.fullmatch(self.label) else (
            "'" + self.label.replace("=", "").replace("'", "''") + "'")
        value = "U" if self.value is None else f"{_number(self.value)}{self.uom}"
        fields = [value, self.warn, self.crit, self.minimum, self.maximum]
        while len(fields) > 1 and not fields[-1]:
            fields.pop()
        return f"{name}=" + ";".join(fields)


@dataclass(frozen=True)
class QuickCheck:
    """What the bounded damage scan found: damage, or how far it got.

    ``mode`` is ``"whole"`` (SQLite's ``quick_check`` of the whole file in one run) or
    ``"slices"`` (a file too big for one budget, read a slice per run; see
    :mod:`.damage_scan`). ``finished`` is true when this run ended a full pass.
    """

    finished: bool
    seconds: float
    budget_seconds: float
    damage: str | None = None
    mode: str = "whole"
    #: Slices: what this run read, and where the next run starts.
    read: str = ""
    next_position: str = ""
    #: When the last full pass over the file ended (this run's time for a whole check).
    last_full_pass_ended_at: str | None = None
    #: A remark: the scan switching to slices, or its state that could not be kept.
    note: str | None = None

    def sentence(self) -> str:
        """One line for the long output."""
        if self.mode == "slices":
            text = self._slice_sentence()
        elif self.damage:
            text = f"Quick check found damage: {self.damage}."
        elif self.finished:
            text = f"Quick check passed in {self.seconds:.1f} s: no damage found."
        else:
            text = (f"Quick check stopped at its {self.budget_seconds:g} s budget with no "
                    "damage in the pages it read; run 'queue-admin-cli integrity' in a quiet "
                    "hour for the full check.")
        return text + (f" Note: {self.note}." if self.note else "")

    def _slice_sentence(self) -> str:
        if self.damage:
            return f"Damage scan (in slices) found damage: {self.damage}."
        where = f" ({self.read})" if self.read else ""
        if self.finished:
            return (f"Damage scan (in slices) ended a full pass of the file with no damage; "
                    f"this run read{where} in {self.seconds:.1f} s.")
        last = (f"the last full pass ended {self.last_full_pass_ended_at}"
                if self.last_full_pass_ended_at else "no full pass has ended yet")
        return (f"Damage scan (in slices) read{where} in {self.seconds:.1f} s with no damage; "
                f"the next run goes on at {self.next_position}; {last}.")


@dataclass
class CheckResult:
    """The verdict: state, the words after ``QUEUE <STATE> -``, performance data, details."""

    state: int
    summary: str
    perfdata: list[PerfDatum] = field(default_factory=list)
    report: HealthReport | None = None
    details: list[str] = field(default_factory=list)
    quick_check: QuickCheck | None = None
    measurements: dict[str, Any] = field(default_factory=dict)
    error_kind: str | None = None

    @property
    def state_name(self) -> str:
        """OK, WARNING, CRITICAL or UNKNOWN."""
        return STATE_NAMES[self.state]

    def status_line(self) -> str:
        """The first line a monitor shows, with the performance data after ``|``."""
        line = f"QUEUE {self.state_name} - {self.summary}"
        if self.perfdata:
            line += " | " + " ".join(datum.render() for datum in self.perfdata)
        return line

    def text(self) -> str:
        """The status line, then one line per finding and the quick check's outcome."""
        return "\n".join([self.status_line(), *self.details]) + "\n"

    def as_dict(self) -> dict[str, Any]:
        """The same verdict as one JSON-ready object."""
        findings = [] if self.report is None else [
            {"level": STATE_NAMES[int(finding.level)], "kind": finding.kind,
             "short": finding.short, "reason": finding.reason}
            for finding in self.report.findings]
        data: dict[str, Any] = {
            "ok": self.state == STATE_OK, "state": self.state_name, "exit_code": self.state,
            "status_line": self.status_line(), "summary": self.summary, "findings": findings,
            "perfdata": [dataclasses.asdict(datum) for datum in self.perfdata],
            "measurements": self.measurements,
            "quick_check": None if self.quick_check is None
            else dataclasses.asdict(self.quick_check),
        }
        if self.error_kind is not None:
            data.update(error=self.summary, kind=self.error_kind)
        return data


def unknown(message: str, kind: str = ErrorKind.INVALID.value) -> CheckResult:
    """The verdict when the database cannot be judged at all (exit 3)."""
    return CheckResult(STATE_UNKNOWN, message.rstrip("."), error_kind=kind)


def run_check(db_path: str | Path, config: MaintenanceConfig, *,
              quick_check_seconds: float = QUICK_CHECK_SECONDS,
              now: datetime | None = None) -> CheckResult:
    """Grade the queue at ``db_path`` as the health badge does, reading only.

    UNKNOWN when the file is missing, unreadable, not SQLite or not a queue; CRITICAL for
    damage found by the health read or the quick check; otherwise the badge's level.
    """
    path = Path(db_path)
    problem = file_problem(path)
    if problem is not None:
        kind, what, advice = problem
        return unknown(f"the database '{path}' {what}; {advice}", kind.value)
    if not has_sqlite_header(path):
        return unknown(f"'{path}' is not an SQLite database (it has no SQLite header); check "
                       "the path", ErrorKind.NOT_A_DATABASE.value)
    try:
        snapshot = measure_health(path, config)
    except QueueAdminError as error:
        return unknown(str(error), error.kind.value)
    try:
        counts, quick = _read_counts_and_check(path, snapshot.is_queue,
                                               quick_check_seconds)
    except QueueAdminError as error:
        return unknown(str(error), error.kind.value)
    measured = snapshot.measured
    if quick is not None and quick.damage and not measured.damage:
        measured = dataclasses.replace(measured, damage=quick.damage)
    folder_problem = folder_listing_problem(Path(config.backup_dir))
    if folder_problem is not None:  # "no backup" would be a guess: the listing failed
        measured = dataclasses.replace(measured, has_backups=None, last_backup_at=None)
        snapshot = dataclasses.replace(snapshot, measured=measured)
    report = assess_health(config, measured, now)
    if not measured.damage and not snapshot.is_queue:
        found = snapshot.stats.schema_problems if snapshot.stats is not None else []
        problems = "; ".join(found) or "no queue tables"
        return unknown(f"'{path}' is an SQLite database but not a PrismQ queue ({problems})",
                       ErrorKind.NOT_A_QUEUE.value)
    result = CheckResult(int(report.level), _summary(report, snapshot, now), report=report,
                         quick_check=quick)
    result.perfdata = _perfdata(config, snapshot, counts, now)
    result.details = [f"{STATE_NAMES[int(f.level)]}: {f.reason}" for f in report.findings]
    if quick is not None:
        result.details.append(quick.sentence())
    result.measurements = _measurements(snapshot, counts, measured.damage, now)
    archive = archive_findings(configured_archive_dir(config))
    if archive:  # a damaged archive, or a failed validation, is CRITICAL
        result.state = STATE_CRITICAL
        result.summary = "; ".join([*archive, *([result.summary] if report.findings else [])])
        result.details += [f"CRITICAL: {finding}" for finding in archive]
    result.measurements["archive_problems"] = archive
    result.measurements["backup_dir_problem"] = folder_problem and folder_problem[1]
    if folder_problem is not None:
        _unknown_backups(result, Path(config.backup_dir), *folder_problem)
    else:
        _report_leftovers(result, Path(config.backup_dir))
    return result


def _report_leftovers(result: CheckResult, folder: Path) -> None:
    """Name what interrupted runs left in the backup folder (no state change: no risk)."""
    try:
        leftovers = find_leftovers(folder)
    except QueueAdminError:
        leftovers = Leftovers()
    result.measurements["leftover_partials"] = [str(path) for path in leftovers.partials]
    result.measurements["orphan_manifests"] = [str(path) for path in leftovers.orphan_manifests]
    if leftovers.paths:
        result.details.append(
            f"Leftovers in the backup folder: {len(leftovers.partials)} partial file(s) of "
            f"interrupted backups or restores, {len(leftovers.orphan_manifests)} manifest(s) "
            "whose backup is gone; the next backup, restore or prune removes them.")


def _unknown_backups(result: CheckResult, folder: Path, kind: ErrorKind, problem: str
                     ) -> None:
    """UNKNOWN (unless already CRITICAL): the backups cannot be graded without the folder."""
    sentence = (f"cannot read the backup folder '{folder}': {problem}; whether there is a "
                "recent backup is unknown, so give this account read access or fix the "
                "backup_dir setting")
    findings = result.report.findings if result.report is not None else []
    if result.state == STATE_CRITICAL:
        result.summary = f"{result.summary}; {sentence}"
    else:
        result.state = STATE_UNKNOWN
        result.summary = f"{sentence}; {result.summary}" if findings else sentence
        result.error_kind = kind.value
    result.details.insert(0, f"UNKNOWN: {sentence[0].upper()}{sentence[1:]}.")


def _read_counts_and_check(path: Path, is_queue: bool, budget: float
                           ) -> tuple[dict[str, int] | None, QuickCheck | None]:
    """Task counts by status and the bounded quick check, on one read-only connection."""
    counts: dict[str, int] | None = None
    started = time.monotonic()
    try:
        connection = open_read_only(path, error_class=QueueMaintenanceError)
    except QueueAdminError as error:
        damage = damage_of(error)
        if damage is None:
            raise
        return None, QuickCheck(True, 0.0, budget, damage)
    with closing_connection(connection):
        if is_queue:
            try:
                counts = task_counts(connection)
            except sqlite3.DatabaseError:
                counts = None  # the quick check below says what is wrong
        if budget <= 0:
            return counts, None
        return counts, _damage_scan(path, connection, budget, started)


def _damage_scan(path: Path, connection: sqlite3.Connection, budget: float,
                 started: float) -> QuickCheck:
    """The whole quick check, or, for a file it could not finish before, the next slice."""
    state = load_state(path)
    if not state.sliced:
        quick = _quick_check(connection, budget, started)
        if quick.damage is not None:
            return quick
        if quick.finished:
            return dataclasses.replace(quick, last_full_pass_ended_at=_now_text())
        state.sliced = True
        kept = save_state(path, state)
        return dataclasses.replace(
            quick, last_full_pass_ended_at=state.last_full_pass_ended_at,
            note=kept or "the file is too big for one budget, so from the next run the "
                         "damage scan reads it in slices, going on where the last run stopped")
    try:
        outcome = scan_slice(connection, state, budget)
    except sqlite3.Error as error:
        translated = translate_error(error, "The damage scan", QueueMaintenanceError)
        translated.__cause__ = error
        damage = damage_of(translated)
        if damage is None:
            raise translated from error
        return QuickCheck(False, time.monotonic() - started, budget, damage, mode="slices",
                          last_full_pass_ended_at=state.last_full_pass_ended_at)
    if outcome.one_run:
        state.sliced = False  # the file fits one budget again (after a VACUUM, say)
    kept = save_state(path, state)
    if kept is None and outcome.pass_ended and state.skipped:
        kept = (f"SQLite would not walk {len(state.skipped)} index(es) on their own "
                f"({', '.join(state.skipped[:3])}); 'queue-admin-cli integrity' checks them")
    return QuickCheck(outcome.pass_ended, time.monotonic() - started, budget, outcome.damage,
                      mode="slices", read=outcome.read, next_position=outcome.next_position,
                      last_full_pass_ended_at=state.last_full_pass_ended_at, note=kept)


def _now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _quick_check(connection: sqlite3.Connection, budget: float, started: float) -> QuickCheck:
    deadline = time.monotonic() + budget
    # The handler stops the row checks; the timer's interrupt also stops SQLite's page walk,
    # which calls no progress handler before SQLite 3.44.
    connection.set_progress_handler(lambda: time.monotonic() > deadline, _CLOCK_STEPS)
    alarm = threading.Timer(budget, connection.interrupt)
    alarm.daemon = True
    alarm.start()
    try:
        rows = [str(row[0]) for row in connection.execute("PRAGMA quick_check(5)")]
    except sqlite3.Error as error:
        translated = translate_error(error, "The quick check", QueueMaintenanceError)
        translated.__cause__ = error  # damage_of quotes SQLite's own words
        if translated.kind is ErrorKind.CANCELLED:  # the budget ran out
            return QuickCheck(False, time.monotonic() - started, budget)
        damage = damage_of(translated)
        if damage is None:
            raise translated from error
        return QuickCheck(True, time.monotonic() - started, budget, damage)
    finally:
        alarm.cancel()
        alarm.join()
        connection.set_progress_handler(None, 0)
    damage = None if rows == ["ok"] else "; ".join(rows)
    return QuickCheck(True, time.monotonic() - started, budget, damage)


def _summary(report: HealthReport, snapshot: HealthSnapshot, now: datetime | None) -> str:
    """The worst finding first, then the others; or what was measured when all is well."""
    if report.findings:
        return "; ".join(finding.short or finding.reason for finding in report.findings)
    measured = snapshot.measured
    parts = ["every measurement is within its thresholds"]
    seen = []
    if measured.wal_size_bytes is not None:
        seen.append(f"WAL {format_bytes(measured.wal_size_bytes)}")
    if measured.stale_leases is not None:
        seen.append(f"{measured.stale_leases} stale leases")
    age = backup_age_hours(measured.last_backup_at, now)
    if age is not None:
        seen.append(f"last backup {age:.0f} h old")
    if measured.fragmentation_percent is not None:
        seen.append(f"{measured.fragmentation_percent:.0f} % free pages")
    if seen:
        parts.append("(" + ", ".join(seen) + ")")
    return " ".join(parts)


def _perfdata(config: MaintenanceConfig, snapshot: HealthSnapshot,
              counts: dict[str, int] | None, now: datetime | None) -> list[PerfDatum]:
    measured = snapshot.measured
    age = backup_age_hours(measured.last_backup_at, now)
    data = [
        PerfDatum("wal_bytes", measured.wal_size_bytes, "B",
                  _number(config.wal_size_warning_mb * _MB),
                  _number(config.wal_size_threshold_mb * _MB), "0"),
        PerfDatum("stale_leases", measured.stale_leases, "",
                  _number(config.stale_leases_warning), _number(config.stale_leases_critical),
                  "0"),
        PerfDatum("expired_live_leases", measured.expired_live_leases, "", "0", "", "0"),
        PerfDatum("backup_age_s", None if age is None else round(age * 3600), "s",
                  _number(config.backup_age_warning_hours * 3600),
                  _number(config.backup_age_critical_hours * 3600), "0"),
        PerfDatum("free_pages_percent",
                  None if measured.fragmentation_percent is None
                  else round(measured.fragmentation_percent, 2), "%",
                  _number(config.fragmentation_warning_percent),
                  _number(config.fragmentation_critical_percent), "0", "100"),
    ]
    size = measured.database_bytes
    if measured.database_free_bytes is not None and size:
        # The badge warns below twice the database and is critical below one copy.
        data.append(PerfDatum("db_drive_free_bytes", measured.database_free_bytes, "B",
                              f"{2 * size}:", f"{size}:", "0"))
    for status, count in (counts or {}).items():
        data.append(PerfDatum(f"tasks_{status}", count, "", "", "", "0"))
    return data


def _measurements(snapshot: HealthSnapshot, counts: dict[str, int] | None,
                  damage: str | None, now: datetime | None) -> dict[str, Any]:
    measured = snapshot.measured
    last = measured.last_backup_at
    age = backup_age_hours(last, now)
    return {
        "database": snapshot.database_path,
        "wal_bytes": measured.wal_size_bytes,
        "database_bytes": measured.database_bytes,
        "free_pages_percent": measured.fragmentation_percent,
        "stale_leases": measured.stale_leases,
        "expired_live_leases": measured.expired_live_leases,
        "has_backups": measured.has_backups,
        "last_backup_at": None if last is None else last.astimezone(timezone.utc).isoformat(),
        "backup_age_s": None if age is None else round(age * 3600),
        "database_drive_free_bytes": measured.database_free_bytes,
        "backup_drive_free_bytes": measured.backup_free_bytes,
        "damage": damage,
        "task_counts": counts,
    }


def _number(value: float) -> str:
    """A number as perfdata writes it: no exponent, no needless decimals."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


__all__ = [
    "CheckResult",
    "PerfDatum",
    "QUICK_CHECK_SECONDS",
    "QuickCheck",
    "STATE_NAMES",
    "run_check",
    "unknown",
]
