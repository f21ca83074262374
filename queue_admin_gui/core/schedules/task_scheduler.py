"""Windows Task Scheduler through ``schtasks.exe``: create, look up and remove the jobs' tasks.

Every call goes through a :data:`CommandRunner`, a function that runs one argv and returns
its exit code and output. The program uses :func:`run_command` (a real process, no console
window flashing up); the tests pass a runner that records each argv and answers as schtasks
would, so what is asked of schtasks is checked on any system. These calls are slow (each
starts a process and may wait on the Task Scheduler service): the window runs them as jobs.
"""

from __future__ import annotations

import csv
import getpass
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from ..errors import ErrorKind, QueueAdminError
from .jobs import ScheduledJob
from .schedule_formats import task_xml

#: How long one schtasks call may take before it counts as hung.
SCHTASKS_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class CommandOutcome:
    """What one command did: its exit code and what it printed."""

    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def reason(self) -> str:
        """The command's own explanation (its first non-empty line of output)."""
        for line in (self.stderr + "\n" + self.stdout).splitlines():
            if line.strip():
                return line.strip()
        return f"exit code {self.returncode}"


CommandRunner = Callable[[Sequence[str]], CommandOutcome]


def run_command(argv: Sequence[str]) -> CommandOutcome:
    """Run ``argv`` as a process without a console window and collect its output."""
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, errors="replace",
                              timeout=SCHTASKS_TIMEOUT_SECONDS, creationflags=flags,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return CommandOutcome(-1, "", f"{argv[0]} could not be run: {error}")
    return CommandOutcome(done.returncode, done.stdout or "", done.stderr or "")


def schtasks_path() -> str:
    """schtasks.exe in System32, named in full so no other program of that name runs."""
    root = PureWindowsPath(os.environ.get("SystemRoot") or r"C:\Windows")
    return str(root / "System32" / "schtasks.exe")


def current_user() -> str:
    r"""The account the tasks run as: ``DOMAIN\name`` when Windows says the domain."""
    name = os.environ.get("USERNAME") or getpass.getuser()
    domain = os.environ.get("USERDOMAIN")
    return f"{domain}\\{name}" if domain else name


def create_argv(job: ScheduledJob, xml_file: Path) -> list[str]:
    """Register (or replace) the job's task from its XML definition."""
    return [schtasks_path(), "/Create", "/XML", str(xml_file), "/TN", job.task_name, "/F"]


def query_argv(job: ScheduledJob) -> list[str]:
    """Look up the job's task: one CSV row (name, next run, status) when it exists."""
    return [schtasks_path(), "/Query", "/TN", job.task_name, "/FO", "CSV", "/NH"]


def delete_argv(job: ScheduledJob) -> list[str]:
    """Remove the job's task without asking."""
    return [schtasks_path(), "/Delete", "/TN", job.task_name, "/F"]


@dataclass(frozen=True)
class TaskState:
    """Whether a job's task exists, and when Task Scheduler runs it next."""

    exists: bool
    next_run: str = ""
    status: str = ""

    def describe(self) -> str:
        """The state in words for the dialog."""
        if not self.exists:
            return "not set up"
        return f"set up, next run {self.next_run}" if self.next_run else "set up"


def parse_query(outcome: CommandOutcome) -> TaskState:
    """The state from ``schtasks /Query /FO CSV /NH`` (exit 1: there is no such task).

    Columns are read by position (task name, next run time, status): their headings are
    translated on non-English Windows, their order is not.
    """
    if outcome.returncode != 0:
        return TaskState(False)
    for row in csv.reader(io.StringIO(outcome.stdout)):
        if len(row) >= 3:
            return TaskState(True, row[1].strip(), row[2].strip())
    return TaskState(True)


class TaskSchedulerError(QueueAdminError):
    """schtasks refused a request; the message carries its reason."""

    default_kind = ErrorKind.PERMISSION


class TaskScheduler:
    """Creates, looks up and removes the scheduled jobs' tasks for the current user."""

    def __init__(self, launcher: Sequence[str], log_dir: Path, *,
                 runner: CommandRunner = run_command, user: str | None = None) -> None:
        self.launcher = list(launcher)
        self.log_dir = Path(log_dir)
        self.runner = runner
        self.user = user or current_user()

    def create(self, jobs: Sequence[ScheduledJob]) -> list[str]:
        """Register each job's task (replacing one of the same name); returns the names.

        The log folder, which is also the tasks' working directory, is made first.
        """
        self.log_dir.mkdir(parents=True, exist_ok=True)
        created = []
        with tempfile.TemporaryDirectory(prefix="queue-admin-tasks-") as folder:
            for job in jobs:
                xml_file = Path(folder) / f"{job.key}.xml"
                text = task_xml(job, self.launcher, self.log_dir, self.user)
                xml_file.write_text(text, encoding="utf-16")
                outcome = self.runner(create_argv(job, xml_file))
                if outcome.returncode != 0:
                    raise TaskSchedulerError(
                        f"Task Scheduler refused '{job.task_name}': {outcome.reason}"
                        + (f" (created before it: {', '.join(created)})" if created else ""))
                created.append(job.task_name)
        return created

    def query(self, jobs: Sequence[ScheduledJob]) -> dict[str, TaskState]:
        """Each job's task state, by job key."""
        return {job.key: parse_query(self.runner(query_argv(job))) for job in jobs}

    def remove(self, jobs: Sequence[ScheduledJob]) -> list[str]:
        """Remove the tasks that exist; returns the names removed."""
        removed = []
        for job in jobs:
            if not parse_query(self.runner(query_argv(job))).exists:
                continue
            outcome = self.runner(delete_argv(job))
            if outcome.returncode != 0:
                raise TaskSchedulerError(
                    f"Task Scheduler did not remove '{job.task_name}': {outcome.reason}")
            removed.append(job.task_name)
        return removed
