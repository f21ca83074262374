"""The scheduled jobs: their arguments, the CLI they start, and their last runs in the log.

The generated command lines are run for real here: as an argv against a demo queue in
tmp_path, and as the crontab's shell text through /bin/sh.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time as time_module
from datetime import time
from pathlib import Path

import pytest
from schedule_helpers import cli_command_names

from queue_admin_gui.core.activity import ActivityEntry, ActivityLog
from queue_admin_gui.core.archive.status import archive_status
from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.core.schedules.jobs import (
    ScheduleSettings,
    Trigger,
    cli_launcher,
    is_run_of,
    job_argv,
    last_runs,
    refuse_unquotable,
    scheduled_jobs,
)
from queue_admin_gui.core.schedules.schedule_formats import crontab_line

PYTHON_CLI = [sys.executable, "-m", "queue_admin_gui.cli"]


@pytest.fixture
def settings(tmp_path: Path) -> ScheduleSettings:
    db = tmp_path / "queue dir" / "queue.db"
    create_demo_queue(db, tasks=200, seed=5)
    return ScheduleSettings(db_path=db, backup_dir=tmp_path / "backup folder")


def _jobs(settings: ScheduleSettings) -> dict:
    return {job.key: job for job in scheduled_jobs(settings)}


def test_the_five_jobs_carry_the_runbook_defaults(settings: ScheduleSettings) -> None:
    jobs = _jobs(settings)
    assert list(jobs) == ["backup", "checkpoint", "leases", "check", "archive"]
    db = ["--db", str(settings.db_path)]
    assert jobs["backup"].arguments == (*db, "backup", "--dir", str(settings.backup_dir),
                                        "--name", "nightly", "--keep", "10")
    assert jobs["backup"].trigger == Trigger("daily", at=time(2, 0))
    assert jobs["checkpoint"].arguments == (*db, "checkpoint", "--mode", "passive")
    assert jobs["checkpoint"].trigger.describe() == "every 15 minutes"
    assert jobs["leases"].arguments == (*db, "leases", "--requeue", "--timeout", "300")
    assert jobs["leases"].trigger.describe() == "every hour"
    assert jobs["check"].arguments == (*db, "check", "--dir", str(settings.backup_dir), "--log")
    assert jobs["check"].trigger.describe() == "every 15 minutes"
    assert jobs["archive"].arguments == (
        *db, "archive", "--dir", str(settings.backup_dir / "archive"))
    assert jobs["archive"].trigger.kind == "logon"
    assert jobs["archive"].time_limit == "PT0S"
    assert jobs["backup"].task_name == "Queue Admin\\Nightly backup"


def test_settings_change_the_arguments(tmp_path: Path) -> None:
    settings = ScheduleSettings(tmp_path / "q.db", tmp_path / "b", keep=3,
                                backup_at=time(23, 30), checkpoint_minutes=5,
                                lease_minutes=120, lease_timeout_seconds=900,
                                archive_dir=tmp_path / "wal")
    jobs = _jobs(settings)
    assert jobs["backup"].arguments[-2:] == ("--keep", "3")
    assert jobs["backup"].trigger.describe() == "daily at 23:30"
    assert jobs["leases"].arguments[-1] == "900"
    assert jobs["leases"].trigger.describe() == "every 2 hours"
    assert jobs["archive"].arguments[-1] == str(tmp_path / "wal")


def test_launcher_in_the_bundle_is_the_cli_beside_the_window(tmp_path: Path) -> None:
    window = r"C:\Program Files\Queue Admin\queue-admin.exe"
    assert cli_launcher(window, frozen=True) == [
        r"C:\Program Files\Queue Admin\queue-admin-cli.exe"]
    assert cli_launcher(str(tmp_path / "queue-admin"), frozen=True) == [
        str(tmp_path / "queue-admin-cli")]


def test_launcher_of_a_pip_install_prefers_the_installed_script(tmp_path: Path) -> None:
    scripts = tmp_path / "venv" / "bin"
    scripts.mkdir(parents=True)
    python = scripts / "python"
    assert cli_launcher(str(python), frozen=False) == [str(python), "-m", "queue_admin_gui.cli"]
    (scripts / "queue-admin-cli").write_text("#!/bin/sh\n")
    assert cli_launcher(str(python), frozen=False) == [str(scripts / "queue-admin-cli")]


def test_launcher_of_a_windows_pip_install_avoids_pythonw(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "Scripts").mkdir(parents=True)
    pythonw = venv / "pythonw.exe"
    assert cli_launcher(str(pythonw), frozen=False) == [
        str(venv / "python.exe"), "-m", "queue_admin_gui.cli"]
    (venv / "Scripts" / "queue-admin-cli.exe").write_bytes(b"MZ")
    assert cli_launcher(str(pythonw), frozen=False) == [
        str(venv / "Scripts" / "queue-admin-cli.exe")]


def test_a_percent_sign_is_refused_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="contains % or a quote"):
        refuse_unquotable(["--dir", r"D:\100%\backups"])
    refuse_unquotable([r"D:\Back ups\PrismQ"])


@pytest.mark.slow
@pytest.mark.parametrize("key", ["backup", "checkpoint", "leases", "check"])
def test_each_generated_argv_runs_the_real_cli(key: str, settings: ScheduleSettings,
                                               tmp_path: Path) -> None:
    job = _jobs(settings)[key]
    assert job.command in cli_command_names()
    argv = job_argv(job, PYTHON_CLI)
    if key == "check":  # the nightly backup first: without one the check is rightly CRITICAL
        backup = job_argv(_jobs(settings)["backup"], PYTHON_CLI)
        assert subprocess.run(backup, capture_output=True, timeout=120, cwd=tmp_path,
                              check=False).returncode == 0
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         check=False)
    assert run.returncode == 0, run.stderr + run.stdout
    if key == "check":
        assert run.stdout.startswith("QUEUE OK"), run.stdout
    if key == "backup":
        made = list(settings.backup_dir.glob("queue_backup_nightly_*.db"))
        assert len(made) == 1


def test_the_generated_archive_argv_starts_an_archiver_that_stops_cleanly(
        settings: ScheduleSettings, tmp_path: Path) -> None:
    job = _jobs(settings)["archive"]
    assert job.command in cli_command_names()
    argv = job_argv(job, PYTHON_CLI)
    folder = Path(argv[argv.index("--dir") + 1])
    windows = sys.platform == "win32"
    process = subprocess.Popen(  # noqa: S603 - the tool's own CLI
        argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        creationflags=subprocess.CREATE_NEW_PROCESS_GROUP if windows else 0)
    try:
        deadline = time_module.monotonic() + 60
        while not archive_status(folder, check=False).generations:
            assert process.poll() is None, process.communicate()
            assert time_module.monotonic() < deadline, "the archiver wrote no generation"
            time_module.sleep(0.1)
        process.send_signal(signal.CTRL_BREAK_EVENT if windows else signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err + out
    assert "archiver stopped" in out


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="crontab lines are for POSIX shells")
def test_the_crontab_command_runs_through_sh_and_appends_to_its_log(
        settings: ScheduleSettings, tmp_path: Path) -> None:
    job = _jobs(settings)["backup"]
    log_dir = tmp_path / "log folder"
    log_dir.mkdir()
    line = crontab_line(job, PYTHON_CLI, log_dir)
    command = line.split(" ", 5)[5]
    for _run in range(2):
        done = subprocess.run(["/bin/sh", "-c", command], cwd=tmp_path, timeout=120,
                              check=False)
        assert done.returncode == 0
    log = (log_dir / "schedule-backup.log").read_text(encoding="utf-8")
    assert log.count("Backup written and verified") == 2
    assert shlex.split(command)[:len(PYTHON_CLI)] == PYTHON_CLI


@pytest.mark.slow
def test_last_runs_come_from_the_activity_log_the_cli_writes(settings: ScheduleSettings,
                                                             tmp_path: Path) -> None:
    jobs = scheduled_jobs(settings)
    by_key = {job.key: job for job in jobs}
    for key in ("backup", "checkpoint", "leases"):
        run = subprocess.run(job_argv(by_key[key], PYTHON_CLI), capture_output=True,
                             timeout=120, cwd=tmp_path, check=False)
        assert run.returncode == 0
    manual = subprocess.run([*PYTHON_CLI, "--db", str(settings.db_path), "backup", "--dir",
                             str(tmp_path / "elsewhere")], capture_output=True, timeout=120,
                            check=False)
    assert manual.returncode == 0

    found = last_runs(ActivityLog().read(200), jobs)
    assert set(found) == {"backup", "checkpoint", "leases"}
    assert all(not run.failed for run in found.values())
    assert found["backup"].when is not None

    settings.db_path.rename(settings.db_path.with_suffix(".gone"))
    failed = subprocess.run(job_argv(by_key["backup"], PYTHON_CLI), capture_output=True,
                            timeout=120, check=False)
    assert failed.returncode != 0
    after = last_runs(ActivityLog().read(200), jobs)
    assert after["backup"].failed
    assert after["backup"].result == "failed"
    assert after["checkpoint"] == found["checkpoint"]


def test_a_run_on_another_database_or_a_manual_backup_is_not_the_job(
        settings: ScheduleSettings, tmp_path: Path) -> None:
    job = _jobs(settings)["backup"]
    nightly = {"name": "nightly", "keep": 14}
    assert is_run_of(ActivityEntry.now("cli backup", parameters=nightly,
                                       database=settings.db_path), job)
    assert not is_run_of(ActivityEntry.now("cli backup", parameters={"keep": 14},
                                           database=settings.db_path), job)
    assert not is_run_of(ActivityEntry.now("cli backup", parameters=nightly,
                                           database=tmp_path / "other.db"), job)
    assert not is_run_of(ActivityEntry.now("Back up", parameters=nightly,
                                           database=settings.db_path), job)


def test_the_schedule_reads_the_settings_the_window_reads(tmp_path: Path) -> None:
    from queue_admin_gui.core.archive.controller import configured_archive_dir
    from queue_admin_gui.core.settings.config import MaintenanceConfig

    config = MaintenanceConfig(backup_dir=tmp_path / "b", backup_retention_count=7,
                               stale_lease_timeout_seconds=600)
    settings = ScheduleSettings.from_config(tmp_path / "q.db", config)
    jobs = _jobs(settings)
    assert jobs["backup"].arguments[-2:] == ("--keep", "7")
    assert jobs["archive"].arguments[-1] == str(configured_archive_dir(config))
    assert jobs["leases"].arguments[-1] == "600"
    chosen = MaintenanceConfig(backup_dir=tmp_path / "b", archive_dir=tmp_path / "elsewhere")
    assert ScheduleSettings.from_config(tmp_path / "q.db", chosen).archive_folder == \
        tmp_path / "elsewhere"
