"""schtasks calls, through a recording runner: the argv asked for and the XML handed over.

No Windows is needed: the runner stands in for schtasks.exe, records each argv and reads
the task XML file at the moment schtasks would, then answers as schtasks does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest

from queue_admin_gui.core.schedules.jobs import ScheduleSettings, scheduled_jobs
from queue_admin_gui.core.schedules.task_scheduler import (
    CommandOutcome,
    TaskScheduler,
    TaskSchedulerError,
    parse_query,
    schtasks_path,
)

LAUNCHER = [r"C:\Program Files\Queue Admin\queue-admin-cli.exe"]


class FakeSchtasks:
    """Records argv; keeps the tasks it was asked to create, like Task Scheduler would."""

    def __init__(self, refuse: str = "") -> None:
        self.calls: list[list[str]] = []
        self.tasks: dict[str, ET.Element] = {}
        self.refuse = refuse

    def __call__(self, argv: Sequence[str]) -> CommandOutcome:
        argv = list(argv)
        self.calls.append(argv)
        name = argv[argv.index("/TN") + 1]
        if argv[1] == "/Create":
            if name == self.refuse:
                return CommandOutcome(1, "", "ERROR: Access is denied.")
            self.tasks[name] = ET.fromstring(Path(argv[argv.index("/XML") + 1]).read_bytes())
            return CommandOutcome(0, f'SUCCESS: The scheduled task "{name}" has been created.')
        if argv[1] == "/Query":
            if name not in self.tasks:
                return CommandOutcome(1, "", "ERROR: The system cannot find the file specified.")
            return CommandOutcome(0, f'"\\{name}","11/30/2026 2:00:00 AM","Ready"\n')
        if argv[1] == "/Delete":
            del self.tasks[name]
            return CommandOutcome(0, "SUCCESS")
        raise AssertionError(argv)


@pytest.fixture
def jobs(tmp_path: Path):
    return scheduled_jobs(ScheduleSettings(tmp_path / "q.db", tmp_path / "b"))


def test_create_registers_each_task_from_its_xml(jobs, tmp_path: Path) -> None:
    fake = FakeSchtasks()
    scheduler = TaskScheduler(LAUNCHER, tmp_path / "logs", runner=fake, user=r"PRISMQ\ann")
    created = scheduler.create(jobs)
    assert created == [job.task_name for job in jobs]
    for call, job in zip(fake.calls, jobs, strict=True):
        assert call[0] == schtasks_path() and call[0].endswith(r"System32\schtasks.exe")
        assert call[1:3] == ["/Create", "/XML"]
        assert call[4:] == ["/TN", job.task_name, "/F"]
        assert "/RU" not in call and "/RP" not in call  # the XML names the user, no password
    assert set(fake.tasks) == {job.task_name for job in jobs}
    assert (tmp_path / "logs").is_dir()  # the working directory exists before a task runs


def test_query_reads_existing_and_missing_tasks(jobs, tmp_path: Path) -> None:
    fake = FakeSchtasks()
    scheduler = TaskScheduler(LAUNCHER, tmp_path, runner=fake, user="ann")
    scheduler.create(jobs[:1])
    states = scheduler.query(jobs)
    assert states["backup"].exists and states["backup"].next_run == "11/30/2026 2:00:00 AM"
    assert states["backup"].describe() == "set up, next run 11/30/2026 2:00:00 AM"
    assert not states["checkpoint"].exists
    assert states["checkpoint"].describe() == "not set up"
    queries = [call for call in fake.calls if call[1] == "/Query"]
    assert queries[0][1:] == ["/Query", "/TN", jobs[0].task_name, "/FO", "CSV", "/NH"]


def test_remove_deletes_only_what_exists(jobs, tmp_path: Path) -> None:
    fake = FakeSchtasks()
    scheduler = TaskScheduler(LAUNCHER, tmp_path, runner=fake, user="ann")
    scheduler.create(jobs[:2])
    assert scheduler.remove(jobs) == [jobs[0].task_name, jobs[1].task_name]
    deletes = [call for call in fake.calls if call[1] == "/Delete"]
    assert [call[1:] for call in deletes] == [["/Delete", "/TN", job.task_name, "/F"]
                                               for job in jobs[:2]]
    assert fake.tasks == {}


def test_a_refusal_names_the_task_and_schtasks_reason(jobs, tmp_path: Path) -> None:
    fake = FakeSchtasks(refuse=jobs[1].task_name)
    scheduler = TaskScheduler(LAUNCHER, tmp_path, runner=fake, user="ann")
    with pytest.raises(TaskSchedulerError) as raised:
        scheduler.create(jobs)
    assert str(raised.value) == (f"Task Scheduler refused '{jobs[1].task_name}': ERROR: Access "
                                 f"is denied. (created before it: {jobs[0].task_name})")


def test_parse_query_without_output_still_says_it_exists() -> None:
    assert parse_query(CommandOutcome(0, "")).exists
    assert not parse_query(CommandOutcome(1, "", "ERROR")).exists
