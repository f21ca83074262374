"""Task Scheduler XML, crontab lines and systemd units generated for the scheduled jobs."""

from __future__ import annotations

import shlex
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from schedule_helpers import split_windows_command_line

from queue_admin_gui.core.schedules.jobs import ScheduleSettings, job_argv, scheduled_jobs
from queue_admin_gui.core.schedules.schedule_formats import (
    crontab_line,
    crontab_text,
    systemd_text,
    systemd_units,
    task_arguments,
    task_xml,
)

NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
BUNDLE_CLI = [r"C:\Program Files\Queue Admin\queue-admin-cli.exe"]
PIP_CLI = [r"C:\Users\Ann Admin\venv\Scripts\python.exe", "-m", "queue_admin_gui.cli"]
LOG_DIR = Path(r"C:\Users\Ann Admin\AppData\Local\PrismQ\queue-admin\Logs")
USER = r"PRISMQ\ann"


@pytest.fixture
def jobs():
    settings = ScheduleSettings(db_path=Path(r"C:\Data\Prism Q\queue\queue.db"),
                                backup_dir=Path(r"D:\Backups\Prism Q" + "\\"))
    return {job.key: job for job in scheduled_jobs(settings)}


def _parse(job, launcher=BUNDLE_CLI) -> ET.Element:
    """Parse the XML as schtasks reads it: the UTF-16 bytes, declaration included."""
    return ET.fromstring(task_xml(job, launcher, LOG_DIR, USER).encode("utf-16"))


def _cmd_inner(arguments: str) -> tuple[list[str], str]:
    """Undo cmd.exe /d /s /c "...": the CLI argv, and the log file after '>>'."""
    assert arguments.startswith('/d /s /c "') and arguments.endswith('"')
    inner = arguments[len('/d /s /c "'):-1]
    command, _, redirect = inner.rpartition(" >> ")
    assert redirect.endswith(" 2>&1")
    log = split_windows_command_line(redirect.removesuffix(" 2>&1"))
    assert len(log) == 1
    return split_windows_command_line(command), log[0]


@pytest.mark.parametrize("launcher", [BUNDLE_CLI, PIP_CLI])
@pytest.mark.parametrize("key", ["backup", "checkpoint", "leases", "archive"])
def test_task_xml_is_well_formed_and_runs_the_cli_with_the_jobs_arguments(jobs, key, launcher):
    job = jobs[key]
    root = _parse(job, launcher)
    assert root.tag == f"{{{NS['t']}}}Task" and root.get("version") == "1.2"
    exec_ = root.find("t:Actions/t:Exec", NS)
    assert exec_.find("t:Command", NS).text.lower().endswith("cmd.exe")
    argv, log = _cmd_inner(exec_.find("t:Arguments", NS).text)
    assert argv == job_argv(job, launcher)
    assert log == str(LOG_DIR / f"schedule-{key}.log")
    assert exec_.find("t:WorkingDirectory", NS).text == str(LOG_DIR)
    assert root.find("t:RegistrationInfo/t:URI", NS).text == f"\\Queue Admin\\{job.title}"


def test_no_password_is_stored_and_the_task_runs_as_the_logged_on_user(jobs):
    for job in jobs.values():
        root = _parse(job)
        assert not [element for element in root.iter() if "Password" in element.tag]
        principal = root.find("t:Principals/t:Principal", NS)
        assert principal.find("t:UserId", NS).text == USER
        assert principal.find("t:LogonType", NS).text == "InteractiveToken"
        assert principal.find("t:RunLevel", NS).text == "LeastPrivilege"
        assert "Password" not in task_xml(job, BUNDLE_CLI, LOG_DIR, USER)


def _children(element: ET.Element) -> list[str]:
    return [child.tag.split("}")[1] for child in element]


def test_triggers_follow_the_schema(jobs):
    daily = _parse(jobs["backup"]).find("t:Triggers/t:CalendarTrigger", NS)
    assert _children(daily) == ["Enabled", "StartBoundary", "ScheduleByDay"]
    assert daily.find("t:StartBoundary", NS).text.endswith("T02:00:00")
    assert daily.find("t:ScheduleByDay/t:DaysInterval", NS).text == "1"

    every = _parse(jobs["checkpoint"]).find("t:Triggers/t:TimeTrigger", NS)
    assert _children(every) == ["Enabled", "StartBoundary", "Repetition"]
    assert every.find("t:Repetition/t:Interval", NS).text == "PT15M"
    assert every.find("t:Repetition/t:Duration", NS) is None  # repeats forever
    assert _parse(jobs["leases"]).find(
        "t:Triggers/t:TimeTrigger/t:Repetition/t:Interval", NS).text == "PT60M"

    logon = _parse(jobs["archive"]).find("t:Triggers/t:LogonTrigger", NS)
    assert logon.find("t:UserId", NS).text == USER
    assert _parse(jobs["archive"]).find("t:Settings/t:ExecutionTimeLimit", NS).text == "PT0S"
    for job in jobs.values():
        assert len(_parse(job).find("t:Triggers", NS)) == 1


def test_a_path_with_percent_is_refused_not_mangled(tmp_path):
    settings = ScheduleSettings(db_path=Path(r"C:\100%\queue.db"), backup_dir=tmp_path)
    with pytest.raises(ValueError, match="%"):
        task_arguments(scheduled_jobs(settings)[0], BUNDLE_CLI, LOG_DIR)


def test_crontab_lines_quote_paths_for_the_shell(tmp_path):
    settings = ScheduleSettings(db_path=tmp_path / "Prism Q" / "queue's.db",
                                backup_dir=tmp_path / "back ups")
    jobs = scheduled_jobs(settings)
    launcher = [str(tmp_path / "my venv" / "bin" / "queue-admin-cli")]
    log_dir = tmp_path / "log dir"
    for job in jobs:
        line = crontab_line(job, launcher, log_dir)
        words = shlex.split(line.split(" ", 5)[5] if not line.startswith("@") else
                            line.split(" ", 1)[1])
        assert words[:-3] == job_argv(job, launcher)
        assert words[-3:] == [">>", str(log_dir / job.log_name), "2>&1"]
    text = crontab_text(jobs, launcher, log_dir)
    assert "0 2 * * * " in text and "*/15 * * * * " in text and "0 * * * * " in text
    assert "@reboot " in text


def test_crontab_escapes_percent_which_cron_would_turn_into_a_newline(tmp_path):
    settings = ScheduleSettings(db_path=tmp_path / "50%" / "q.db", backup_dir=tmp_path)
    line = crontab_line(scheduled_jobs(settings)[0], ["queue-admin-cli"], tmp_path)
    assert "50\\%" in line and "50%" not in line.replace("\\%", "")


def test_systemd_units_have_a_timer_per_timed_job_and_a_service_for_the_archiver(tmp_path):
    settings = ScheduleSettings(db_path=tmp_path / "Prism Q" / "q.db",
                                backup_dir=tmp_path / "b")
    jobs = scheduled_jobs(settings)
    units = systemd_units(jobs, ["/opt/queue admin/queue-admin-cli"], tmp_path)
    assert set(units) == {"queue-admin-backup.service", "queue-admin-backup.timer",
                          "queue-admin-checkpoint.service", "queue-admin-checkpoint.timer",
                          "queue-admin-leases.service", "queue-admin-leases.timer",
                          "queue-admin-check.service", "queue-admin-check.timer",
                          "queue-admin-archive.service"}
    assert "OnCalendar=*-*-* 02:00:00" in units["queue-admin-backup.timer"]
    assert "OnCalendar=*:0/15" in units["queue-admin-checkpoint.timer"]
    assert "OnCalendar=*-*-* 00/1:00:00" in units["queue-admin-leases.timer"]
    assert "OnCalendar=*:0/15" in units["queue-admin-check.timer"]
    assert "WantedBy=default.target" in units["queue-admin-archive.service"]
    exec_start = next(line for line in units["queue-admin-backup.service"].splitlines()
                      if line.startswith("ExecStart="))
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == job_argv(
        jobs[0], ["/opt/queue admin/queue-admin-cli"])
    assert "systemctl --user enable --now" in systemd_text(jobs, ["cli"], tmp_path)


@pytest.mark.skipif(subprocess.run(["which", "systemd-analyze"], capture_output=True,
                                   check=False).returncode != 0,
                    reason="systemd-analyze is not installed")
def test_systemd_accepts_the_calendar_expressions(jobs):
    for expression in ("*-*-* 02:00:00", "*:0/15", "*-*-* 00/1:00:00"):
        done = subprocess.run(["systemd-analyze", "calendar", expression], capture_output=True,
                              check=False)
        assert done.returncode == 0, expression
