"""The built folder dist/queue-admin/ works on its own: the CLI backs up and verifies a queue,
the window starts offscreen, loads every tab and quits by itself.

Marked ``bundle``: skipped unless ``python packaging/build.py`` has made the folder, or
``QUEUE_ADMIN_BUILD_BUNDLE=1`` asks the test run to build it first (the Windows workflow and
.ci/run do). The programs run as separate processes with this test's data folders, and no
Python of the test run is on their path: the bundle carries its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.schedules.jobs import (
    ScheduleSettings,
    cli_launcher,
    job_argv,
    last_runs,
    scheduled_jobs,
)
from queue_admin_gui.ui.main_window import TAB_SPECS

pytestmark = pytest.mark.bundle

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "dist" / "queue-admin"
SUFFIX = ".exe" if sys.platform == "win32" else ""
TIMEOUT_SECONDS = 300


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The bundle folder, built first when QUEUE_ADMIN_BUILD_BUNDLE=1 asks for it."""
    if os.environ.get("QUEUE_ADMIN_BUILD_BUNDLE") == "1":
        subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py")], check=True,
                       timeout=1800)
    if not (BUNDLE / f"queue-admin-cli{SUFFIX}").is_file():
        pytest.skip("dist/queue-admin is not built; run python packaging/build.py")
    return BUNDLE


def _program_env() -> dict[str, str]:
    """This test's environment (data folders under tmp_path) without the test's Python."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def _run(program: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(program), *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT_SECONDS, env=_program_env(), cwd=cwd, check=False)


def test_built_cli_makes_a_demo_queue_backs_it_up_and_verifies_it(bundle: Path,
                                                                  tmp_path: Path) -> None:
    cli = bundle / f"queue-admin-cli{SUFFIX}"
    db = tmp_path / "queue folder" / "queue.db"
    backups = tmp_path / "backup folder"
    made = _run(cli, "--db", db, "demo", "--tasks", "300", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert db.is_file()

    backed_up = _run(cli, "--db", db, "--json", "backup", "--dir", backups, "--keep", "2",
                     cwd=tmp_path)
    assert backed_up.returncode == 0, backed_up.stderr
    backup = Path(json.loads(backed_up.stdout)["path"])
    assert backup.parent == backups and backup.is_file()

    verified = _run(cli, "--json", "verify", backup, cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["problems"] == []

    actions = [(entry.action, entry.result) for entry in ActivityLog().read()]
    assert ("cli backup", "succeeded") in actions
    assert ("cli verify", "succeeded") in actions


def test_built_cli_refuses_a_damaged_backup(bundle: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "queue_backup_20260101_000000.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    verified = _run(bundle / f"queue-admin-cli{SUFFIX}", "verify", damaged, cwd=tmp_path)
    assert verified.returncode == 1
    assert "The backup is NOT usable" in verified.stdout


def test_built_window_starts_offscreen_loads_every_tab_and_exits(bundle: Path,
                                                                 tmp_path: Path) -> None:
    window = bundle / f"queue-admin{SUFFIX}"
    report = tmp_path / "smoke report.txt"
    run = _run(window, "--smoke-test", report, cwd=tmp_path)
    text = report.read_text(encoding="utf-8") if report.is_file() else ""
    assert run.returncode == 0, text + run.stderr
    titles = [line.removeprefix("tab: ") for line in text.splitlines()
              if line.startswith("tab: ")]
    assert titles == [spec[2] for spec in TAB_SPECS]
    assert text.rstrip().endswith("smoke test passed")


@pytest.mark.skipif(sys.platform == "win32", reason="a windowed program has no stdout there")
def test_built_window_prints_the_report_to_stdout(bundle: Path, tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    assert _run(bundle / "queue-admin-cli", "--db", db, "demo", "--tasks", "100",
                cwd=tmp_path).returncode == 0
    run = _run(bundle / "queue-admin", "--db", db, "--smoke-test", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tab: Backups" in run.stdout.splitlines()
    assert run.stdout.rstrip().endswith("smoke test passed")


def test_bundle_is_lean_and_carries_icons_and_docs(bundle: Path) -> None:
    internal = bundle / "_internal"
    assert (internal / "queue_admin_gui" / "resources" / "app-icon.svg").is_file()
    assert (bundle / "docs" / "USER_GUIDE.md").is_file()
    assert (bundle / "docs" / "QUEUE_MAINTENANCE_RUNBOOK.md").is_file()
    shipped = {path.name.split(".")[0] for path in (internal / "PySide6").glob("Qt*")}
    assert {"QtCore", "QtGui", "QtWidgets"} <= shipped
    assert not shipped & {"QtNetwork", "QtQml", "QtQuick", "QtPdf", "QtSql", "QtDesigner"}


def test_scheduled_jobs_run_the_bundles_cli(bundle: Path, tmp_path: Path) -> None:
    db = tmp_path / "queue folder" / "queue.db"
    launcher = cli_launcher(str(bundle / f"queue-admin{SUFFIX}"), frozen=True)
    assert launcher == [str(bundle / f"queue-admin-cli{SUFFIX}")]
    assert _run(Path(launcher[0]), "--db", db, "demo", "--tasks", "100",
                cwd=tmp_path).returncode == 0
    settings = ScheduleSettings(db_path=db, backup_dir=tmp_path / "backup folder")
    for job in scheduled_jobs(settings)[:3]:  # the archiver keeps running: not here
        argv = job_argv(job, launcher)
        run = _run(Path(argv[0]), *argv[1:], cwd=tmp_path)
        assert run.returncode == 0, f"{job.title}: {run.stderr}"
    found = last_runs(ActivityLog().read(), scheduled_jobs(settings))
    assert {key: run.result for key, run in found.items()} == {
        "backup": "succeeded", "checkpoint": "succeeded", "leases": "succeeded"}
