"""Scheduled jobs written out for the system's scheduler: Task Scheduler, cron, systemd.

Task Scheduler gets one XML definition per job (registered with ``schtasks /Create /XML``).
The action runs ``cmd.exe /d /s /c ""CLI" args >> "log" 2>&1"`` so each run's output is
appended to a log file beside the activity log; with ``/s`` cmd.exe drops only the outer
pair of quotes and runs the rest as written, so every path keeps its own quotes. The task
runs as the current user, only while that user is logged on (``InteractiveToken``), with
the least privileges: no password is asked for or stored. An administrator who wants the
task to run while nobody is logged on switches that on in Task Scheduler, which then asks
for the password itself.

On other systems the same jobs become crontab lines and systemd user units to copy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from xml.sax.saxutils import escape

from .jobs import (
    TRIGGER_DAILY,
    TRIGGER_EVERY,
    TRIGGER_LOGON,
    ScheduledJob,
    job_argv,
    posix_command_line,
    refuse_unquotable,
    windows_command_line,
)

TASK_NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"
#: The first day a calendar trigger counts from (any past date works; it sets the time).
START_DATE = date(2026, 1, 1)


def windows_shell() -> str:
    """The command interpreter a task runs (``%ComSpec%``, normally cmd.exe in System32)."""
    return os.environ.get("ComSpec") or r"C:\Windows\System32\cmd.exe"


def task_arguments(job: ScheduledJob, launcher: Sequence[str], log_dir: Path) -> str:
    """The Arguments of the task's action: cmd.exe runs the CLI and appends to the log."""
    argv = job_argv(job, launcher)
    log_file = str(log_dir / job.log_name)
    refuse_unquotable([*argv, log_file])
    command = f"{windows_command_line(argv)} >> {windows_command_line([log_file])} 2>&1"
    return f'/d /s /c "{command}"'


def _trigger_xml(job: ScheduledJob, user: str) -> str:
    trigger = job.trigger
    if trigger.kind == TRIGGER_DAILY:
        start = f"{START_DATE.isoformat()}T{trigger.at:%H:%M}:00"
        return ("    <CalendarTrigger>\n      <Enabled>true</Enabled>\n"
                f"      <StartBoundary>{start}</StartBoundary>\n"
                "      <ScheduleByDay>\n        <DaysInterval>1</DaysInterval>\n"
                "      </ScheduleByDay>\n    </CalendarTrigger>\n")
    if trigger.kind == TRIGGER_EVERY:
        start = f"{START_DATE.isoformat()}T00:00:00"
        return ("    <TimeTrigger>\n      <Enabled>true</Enabled>\n"
                f"      <StartBoundary>{start}</StartBoundary>\n"
                "      <Repetition>\n"
                f"        <Interval>PT{trigger.minutes}M</Interval>\n"
                "        <StopAtDurationEnd>false</StopAtDurationEnd>\n"
                "      </Repetition>\n    </TimeTrigger>\n")
    return ("    <LogonTrigger>\n      <Enabled>true</Enabled>\n"
            f"      <UserId>{escape(user)}</UserId>\n    </LogonTrigger>\n")


def task_xml(job: ScheduledJob, launcher: Sequence[str], log_dir: Path, user: str) -> str:
    r"""The Task Scheduler definition of ``job`` for ``user`` (DOMAIN\name), as text.

    Write it encoded as UTF-16 (what its declaration says) for ``schtasks /Create /XML``.
    """
    arguments = task_arguments(job, launcher, log_dir)
    return (
        '<?xml version="1.0" encoding="UTF-16"?>\n'
        f'<Task version="1.2" xmlns="{TASK_NAMESPACE}">\n'
        "  <RegistrationInfo>\n"
        "    <Author>Queue Admin</Author>\n"
        f"    <Description>{escape(job.description)}</Description>\n"
        f"    <URI>\\{escape(job.task_name)}</URI>\n"
        "  </RegistrationInfo>\n"
        "  <Triggers>\n"
        f"{_trigger_xml(job, user)}"
        "  </Triggers>\n"
        "  <Principals>\n"
        '    <Principal id="Author">\n'
        f"      <UserId>{escape(user)}</UserId>\n"
        "      <LogonType>InteractiveToken</LogonType>\n"
        "      <RunLevel>LeastPrivilege</RunLevel>\n"
        "    </Principal>\n"
        "  </Principals>\n"
        "  <Settings>\n"
        "    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\n"
        "    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>\n"
        "    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>\n"
        "    <StartWhenAvailable>true</StartWhenAvailable>\n"
        f"    <ExecutionTimeLimit>{job.time_limit}</ExecutionTimeLimit>\n"
        "    <Enabled>true</Enabled>\n"
        "  </Settings>\n"
        '  <Actions Context="Author">\n'
        "    <Exec>\n"
        f"      <Command>{escape(windows_shell())}</Command>\n"
        f"      <Arguments>{escape(arguments)}</Arguments>\n"
        f"      <WorkingDirectory>{escape(str(log_dir))}</WorkingDirectory>\n"
        "    </Exec>\n"
        "  </Actions>\n"
        "</Task>\n"
    )


def cron_schedule(job: ScheduledJob) -> str:
    """The five time fields of a crontab line (``@reboot`` for the logon job)."""
    trigger = job.trigger
    if trigger.kind == TRIGGER_DAILY:
        return f"{trigger.at.minute} {trigger.at.hour} * * *"
    if trigger.kind == TRIGGER_EVERY:
        if trigger.minutes % 60 == 0:
            hours = trigger.minutes // 60
            return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
        return f"*/{trigger.minutes} * * * *"
    return "@reboot"


def crontab_line(job: ScheduledJob, launcher: Sequence[str], log_dir: Path) -> str:
    r"""One crontab line: schedule, the shell-quoted command, output appended to the log.

    cron turns an unescaped ``%`` into a newline, so each is written as ``\%``.
    """
    command = (f"{posix_command_line(job_argv(job, launcher))} >> "
               f"{posix_command_line([str(log_dir / job.log_name)])} 2>&1")
    return f"{cron_schedule(job)} {command.replace('%', chr(92) + '%')}"


def crontab_text(jobs: Sequence[ScheduledJob], launcher: Sequence[str], log_dir: Path) -> str:
    """Every job as a crontab to paste into ``crontab -e``."""
    lines = ["# Queue Admin scheduled jobs (crontab -e)"]
    for job in jobs:
        lines += [f"# {job.title}: {job.description}", crontab_line(job, launcher, log_dir)]
    return "\n".join(lines) + "\n"


def systemd_quote(argument: str) -> str:
    """One ExecStart= word: double-quoted with C escapes, ``%`` and ``$`` doubled."""
    text = argument.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("%", "%%").replace("$", "$$") + '"'


def systemd_on_calendar(job: ScheduledJob) -> str:
    """The timer's OnCalendar= value."""
    trigger = job.trigger
    if trigger.kind == TRIGGER_DAILY:
        return f"*-*-* {trigger.at:%H:%M}:00"
    if trigger.minutes % 60 == 0:
        return f"*-*-* 00/{trigger.minutes // 60}:00:00"
    return f"*:0/{trigger.minutes}"


def systemd_units(jobs: Sequence[ScheduledJob], launcher: Sequence[str],
                  log_dir: Path) -> dict[str, str]:
    """File name -> contents of the systemd user units (``~/.config/systemd/user/``).

    Each timed job is a oneshot service with a timer; the archiver is a service started
    with the user's session and restarted when it stops.
    """
    units: dict[str, str] = {}
    for job in jobs:
        name = f"queue-admin-{job.key}"
        log_file = str(log_dir / job.log_name).replace("%", "%%")
        exec_start = " ".join(systemd_quote(word) for word in job_argv(job, launcher))
        timed = job.trigger.kind in (TRIGGER_DAILY, TRIGGER_EVERY)
        service = [
            "[Unit]", f"Description=Queue Admin: {job.title}", "",
            "[Service]", f"Type={'oneshot' if timed else 'simple'}",
            f"WorkingDirectory={str(log_dir).replace('%', '%%')}",
            f"ExecStart={exec_start}",
            f"StandardOutput=append:{log_file}", f"StandardError=append:{log_file}",
        ]
        if not timed:
            service += ["Restart=on-failure", "RestartSec=30", "",
                        "[Install]", "WantedBy=default.target"]
        units[f"{name}.service"] = "\n".join(service) + "\n"
        if timed:
            units[f"{name}.timer"] = "\n".join([
                "[Unit]", f"Description=Queue Admin: {job.title} ({job.trigger.describe()})",
                "", "[Timer]", f"OnCalendar={systemd_on_calendar(job)}", "Persistent=true",
                "", "[Install]", "WantedBy=timers.target"]) + "\n"
    return units


def systemd_text(jobs: Sequence[ScheduledJob], launcher: Sequence[str], log_dir: Path) -> str:
    """The systemd user units as one text to copy, each under its file name."""
    parts = []
    for file_name, contents in systemd_units(jobs, launcher, log_dir).items():
        parts.append(f"# ~/.config/systemd/user/{file_name}\n{contents}")
    enable = " ".join(
        f"queue-admin-{job.key}.{'service' if job.trigger.kind == TRIGGER_LOGON else 'timer'}"
        for job in jobs)
    parts.append("# then: systemctl --user daemon-reload && "
                 f"systemctl --user enable --now {enable}\n")
    return "\n".join(parts)
