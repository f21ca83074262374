"""The recurring jobs an administrator schedules, and the command lines that run them.

Four jobs keep a queue healthy unattended (the runbook's maintenance schedule): a nightly
backup that keeps the newest N, a periodic PASSIVE checkpoint, stale-lease recovery, and the
WAL archiver started at logon. Each is a :class:`ScheduledJob`: a name, a trigger and the
``queue-admin-cli`` arguments it runs. The same jobs become Task Scheduler XML, crontab lines
or systemd units (:mod:`.schedule_formats`); the CLI is found from the running program
(:func:`cli_launcher`), so a task runs the same installation the window runs from.

Each run of a scheduled job lands in the activity log as ``cli <command>``;
:func:`last_runs` finds the newest of each job there, so the window can say when it last ran
and how it ended.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as clock_time
from pathlib import Path, PureWindowsPath

from ..activity import RESULT_SUCCEEDED, ActivityEntry
from ..archive.controller import configured_archive_dir, default_archive_dir
from ..settings.config import MaintenanceConfig
from ..settings.folders import user_log_dir

#: The Task Scheduler folder the tasks are created in ("Queue Admin\Nightly backup").
TASK_FOLDER = "Queue Admin"
#: The label the nightly backup puts into its file names (queue_backup_nightly_...).
NIGHTLY_LABEL = "nightly"

TRIGGER_DAILY = "daily"
TRIGGER_EVERY = "every"
TRIGGER_LOGON = "logon"


@dataclass(frozen=True)
class Trigger:
    """When a job runs: daily at a time, every N minutes, or when the user logs on."""

    kind: str
    at: clock_time = clock_time(0, 0)
    minutes: int = 0

    def describe(self) -> str:
        """The trigger in words, for the dialog ("daily at 02:00", "every 15 minutes")."""
        if self.kind == TRIGGER_DAILY:
            return f"daily at {self.at:%H:%M}"
        if self.kind == TRIGGER_EVERY:
            if self.minutes % 60 == 0:
                hours = self.minutes // 60
                return "every hour" if hours == 1 else f"every {hours} hours"
            return f"every {self.minutes} minutes"
        return "at logon, kept running"


@dataclass(frozen=True)
class ScheduleSettings:
    """What the jobs work on and how often; the defaults are the runbook's.

    ``keep`` and ``archive_dir`` follow the settings the window uses (see
    :meth:`from_config`): ``archive_dir`` left empty means the archive folder beside the
    backups, the one the archive panel and the restore wizard read.
    """

    db_path: Path
    backup_dir: Path
    keep: int = MaintenanceConfig.backup_retention_count
    backup_at: clock_time = clock_time(2, 0)
    checkpoint_minutes: int = 15
    lease_minutes: int = 60
    lease_timeout_seconds: int = 300
    archive_dir: Path | None = None
    check_minutes: int = 15

    @classmethod
    def from_config(cls, db_path: Path, config: MaintenanceConfig) -> ScheduleSettings:
        """The schedule of the settings: one backup folder, retention and archive folder."""
        return cls(db_path=Path(db_path), backup_dir=Path(config.backup_dir),
                   keep=int(config.backup_retention_count),
                   lease_timeout_seconds=int(config.stale_lease_timeout_seconds),
                   archive_dir=configured_archive_dir(config))

    @property
    def archive_folder(self) -> Path:
        """Where the WAL archiver writes (and the window reads)."""
        return self.archive_dir if self.archive_dir is not None else (
            default_archive_dir(self.backup_dir))


@dataclass(frozen=True)
class ScheduledJob:
    """One recurring job: its task name, trigger and the CLI arguments it runs.

    ``command`` is the CLI sub-command; an activity entry ``cli <command>`` whose parameters
    include every item of ``match`` (and whose database is this job's) is a run of this job.
    """

    key: str
    title: str
    description: str
    trigger: Trigger
    arguments: tuple[str, ...]
    command: str
    db_path: Path
    match: dict[str, object] = field(default_factory=dict)
    #: How long Task Scheduler lets one run last ("PT0S": no limit, for the archiver).
    time_limit: str = "PT2H"
    #: False for a job whose runs are not in the activity log (``check`` only reads; its
    #: exit code is what the scheduler and the monitoring record).
    logged: bool = True

    @property
    def task_name(self) -> str:
        """The task's full name under Task Scheduler's folder tree."""
        return f"{TASK_FOLDER}\\{self.title}"

    @property
    def log_name(self) -> str:
        """The file the task's output is appended to, in the schedule log folder."""
        return f"schedule-{self.key}.log"


def scheduled_jobs(settings: ScheduleSettings) -> list[ScheduledJob]:
    """The five jobs for ``settings``, in the order the dialog lists them."""
    db = ["--db", str(settings.db_path)]
    return [
        ScheduledJob(
            "backup", "Nightly backup",
            f"Back up and verify the queue, keep the newest {settings.keep}.",
            Trigger(TRIGGER_DAILY, at=settings.backup_at),
            (*db, "backup", "--dir", str(settings.backup_dir), "--name", NIGHTLY_LABEL,
             "--keep", str(settings.keep)),
            "backup", settings.db_path, {"name": NIGHTLY_LABEL}),
        ScheduledJob(
            "checkpoint", "Checkpoint",
            "PASSIVE checkpoint: copies the WAL into the database without blocking anyone.",
            Trigger(TRIGGER_EVERY, minutes=settings.checkpoint_minutes),
            (*db, "checkpoint", "--mode", "passive"), "checkpoint", settings.db_path,
            {"mode": "passive"}, time_limit="PT30M"),
        ScheduledJob(
            "leases", "Stale lease recovery",
            f"Requeue tasks whose lease expired over {settings.lease_timeout_seconds} s ago "
            "while their worker is silent.",
            Trigger(TRIGGER_EVERY, minutes=settings.lease_minutes),
            (*db, "leases", "--requeue", "--timeout", str(settings.lease_timeout_seconds)),
            "leases", settings.db_path, {"requeue": True}, time_limit="PT30M"),
        ScheduledJob(
            "check", "Health check",
            "Grade the queue's health (the window's badge, as a monitoring plugin); a "
            "problem exits non-zero and reaches the Event Log, with the window closed.",
            Trigger(TRIGGER_EVERY, minutes=settings.check_minutes),
            (*db, "check", "--dir", str(settings.backup_dir), "--log"), "check",
            settings.db_path,
            time_limit="PT10M", logged=False),
        ScheduledJob(
            "archive", "WAL archiver",
            "Archive the WAL continuously for point-in-time recovery, from logon on.",
            Trigger(TRIGGER_LOGON),
            (*db, "archive", "--dir", str(settings.archive_folder)), "archive",
            settings.db_path, time_limit="PT0S"),
    ]


def cli_launcher(executable: str | None = None, frozen: bool | None = None) -> list[str]:
    """The argv prefix that starts ``queue-admin-cli`` of the installation running now.

    In the bundle it is ``queue-admin-cli(.exe)`` beside the window's program; in a pip
    install the ``queue-admin-cli`` script beside the Python interpreter, else
    ``python -m queue_admin_gui.cli`` (with ``python.exe``, never the console-less
    ``pythonw.exe``, so output reaches the task's log).
    """
    executable = executable or sys.executable
    frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    program = Path(executable)
    windows = program.suffix.lower() == ".exe"
    cli_name = "queue-admin-cli.exe" if windows else "queue-admin-cli"
    if frozen:
        named = PureWindowsPath(executable) if "\\" in executable else program
        return [str(named.with_name(cli_name))]
    if windows and program.stem.lower() == "pythonw":
        program = program.with_name("python.exe")
    for folder in (program.parent, program.parent / "Scripts"):
        if (folder / cli_name).is_file():
            return [str(folder / cli_name)]
    return [str(program), "-m", "queue_admin_gui.cli"]


def schedule_log_dir() -> Path:
    """Where scheduled runs append their output (and their working directory)."""
    return user_log_dir()


def job_argv(job: ScheduledJob, launcher: Sequence[str]) -> list[str]:
    """The full argv of one run: the CLI, then the job's arguments."""
    return [*launcher, *job.arguments]


def windows_command_line(argv: Sequence[str]) -> str:
    """``argv`` as one Windows command line, quoted as the C runtime splits it back."""
    return subprocess.list2cmdline(list(argv))


def posix_command_line(argv: Sequence[str]) -> str:
    """``argv`` as one POSIX shell command line."""
    return shlex.join(argv)


def refuse_unquotable(argv: Iterable[str]) -> None:
    """Raise ValueError for a path ``cmd.exe`` would change even inside quotes.

    ``%NAME%`` is expanded by cmd.exe before the program sees it, and a double quote
    cannot be part of a Windows path; neither can be scheduled safely.
    """
    for argument in argv:
        if "%" in argument or '"' in argument:
            raise ValueError(f"'{argument}' contains % or a quote, which a scheduled task "
                             "cannot pass on unchanged; choose a folder without them.")


@dataclass(frozen=True)
class LastRun:
    """The newest run of a scheduled job found in the activity log."""

    when: datetime | None
    result: str
    message: str

    @property
    def failed(self) -> bool:
        """True unless the run succeeded."""
        return self.result != RESULT_SUCCEEDED

    def describe_time(self) -> str:
        """The local time of the run, or what the log said when it cannot be read."""
        return f"{self.when:%Y-%m-%d %H:%M}" if self.when is not None else "unknown time"


def _same_path(recorded: str | None, path: Path) -> bool:
    if recorded is None:
        return True
    try:
        return Path(recorded).resolve() == path.resolve()
    except OSError:
        return Path(recorded) == path


def is_run_of(entry: ActivityEntry, job: ScheduledJob) -> bool:
    """True when ``entry`` records a run of ``job`` (same command, parameters, database)."""
    if entry.action != f"cli {job.command}" or not _same_path(entry.database, job.db_path):
        return False
    return all(entry.parameters.get(key) == value for key, value in job.match.items())


def last_runs(entries: Iterable[ActivityEntry],
              jobs: Sequence[ScheduledJob]) -> dict[str, LastRun]:
    """The newest run of each job among ``entries`` (oldest first, as ActivityLog.read gives)."""
    found: dict[str, LastRun] = {}
    for entry in entries:
        for job in jobs:
            if is_run_of(entry, job):
                found[job.key] = LastRun(entry.local_time, entry.result, entry.message)
    return found
