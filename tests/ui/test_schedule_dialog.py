"""Tools > Schedule...: the jobs, their command lines, the tasks and their last runs.

Windows' schtasks is replaced by a recording runner (the same stand-in as the core tests),
so the Windows mode of the dialog is driven here too; the argv it hands schtasks are
checked. Last runs come from a real activity log written by running the real CLI.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMenu

from queue_admin_gui.app.messages import Level
from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.schedules.jobs import job_argv
from queue_admin_gui.ui.schedule_dialog import (
    FAILED_COLOR,
    JOB,
    LAST_RUN,
    RESULT,
    TASK,
    WHEN,
    ScheduleDialog,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from test_task_scheduler import FakeSchtasks  # noqa: E402

LEFT = Qt.MouseButton.LeftButton
PYTHON_CLI = [sys.executable, "-m", "queue_admin_gui.cli"]


@pytest.fixture
def open_session(session, demo_db):
    session.set_database(demo_db, True)
    return session


def _make(qtbot, session, **options) -> ScheduleDialog:
    options.setdefault("launcher", PYTHON_CLI)
    dialog = ScheduleDialog(session, ActivityLog(), **options)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.reads_shown == 1, timeout=10_000)
    return dialog


def _column(dialog: ScheduleDialog, column: int) -> list[str]:
    model = dialog.jobs_model
    return [model.row_texts(row)[column] for row in range(model.rowCount())]


def _cell(dialog: ScheduleDialog, row: int, column: int, role: Qt.ItemDataRole):
    return dialog.jobs_model.index(row, column).data(role)


def _colour(dialog: ScheduleDialog, row: int, column: int):
    brush = _cell(dialog, row, column, Qt.ItemDataRole.ForegroundRole)
    return brush.color() if brush is not None else None


def test_lists_the_five_jobs_and_shows_crontab_and_systemd_text_off_windows(
        qtbot, open_session, demo_db, tmp_path):
    dialog = _make(qtbot, open_session, on_windows=False, log_dir=tmp_path / "logs")
    assert _column(dialog, JOB) == ["Nightly backup", "Checkpoint", "Stale lease recovery",
                                    "Health check", "WAL archiver"]
    assert _column(dialog, WHEN) == ["daily at 02:00", "every 15 minutes", "every hour",
                                     "every 15 minutes", "at logon, kept running"]
    assert dialog.table.isColumnHidden(TASK)
    assert not dialog.create_button.isVisible() and dialog.copy_button.isVisible()
    text = dialog.posix_text.toPlainText()
    assert f"0 2 * * * {shlex.join(PYTHON_CLI)} --db {shlex.quote(str(demo_db))} backup" in text
    config = open_session.config
    assert f"--keep {config.backup_retention_count}" in text
    assert "[Timer]" in text and "OnCalendar=*:0/15" in text
    assert _column(dialog, LAST_RUN) == ["never"] * 3 + ["see the task's last result", "never"]

    dialog.keep_spin.setValue(3)
    dialog.backup_time.setTime(dialog.backup_time.time().fromString("23:15", "HH:mm"))
    assert "15 23 * * * " in dialog.posix_text.toPlainText()
    assert "--keep 3 " in dialog.posix_text.toPlainText()

    qtbot.mouseClick(dialog.copy_button, LEFT)
    assert QGuiApplication.clipboard().text() == dialog.posix_text.toPlainText()


def test_a_folder_with_percent_is_refused_in_words(qtbot, open_session, tmp_path):
    dialog = _make(qtbot, open_session, on_windows=True, runner=FakeSchtasks(),
                   log_dir=tmp_path)
    dialog.backup_dir_edit.setText(str(tmp_path / "100%"))
    assert "contains % or a quote" in dialog.problem_label.text()
    assert not dialog.create_button.isEnabled()
    dialog.backup_dir_edit.setText(str(tmp_path / "backups"))
    assert dialog.create_button.isEnabled()


def test_on_windows_creates_shows_and_removes_the_tasks(qtbot, open_session, presenter,
                                                        tmp_path):
    fake = FakeSchtasks()
    dialog = _make(qtbot, open_session, on_windows=True, runner=fake,
                   log_dir=tmp_path / "logs")
    assert _column(dialog, TASK) == ["not set up"] * 5
    assert _cell(dialog, 4, JOB, Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    model = dialog.jobs_model  # the user unticks the archiver, as a click on its box does
    assert model.setData(model.index(4, JOB), Qt.CheckState.Unchecked,
                         Qt.ItemDataRole.CheckStateRole)
    assert _cell(dialog, 4, JOB, Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    assert [job.key for job in dialog.checked_jobs()] == [
        job.key for job in dialog.jobs()[:4]]

    qtbot.mouseClick(dialog.create_button, LEFT)
    qtbot.waitUntil(lambda: _column(dialog, TASK)[0].startswith("set up"), timeout=10_000)
    assert _column(dialog, TASK)[4] == "not set up"
    creates = [call for call in fake.calls if call[1] == "/Create"]
    assert [call[-2] for call in creates] == [
        "Queue Admin\\Nightly backup", "Queue Admin\\Checkpoint",
        "Queue Admin\\Stale lease recovery", "Queue Admin\\Health check"]
    assert all(call[0].endswith("schtasks.exe") and call[-1] == "/F" for call in creates)
    assert any("Created in Task Scheduler" in text for text in presenter.texts(Level.INFO))

    qtbot.mouseClick(dialog.remove_button, LEFT)
    qtbot.waitUntil(lambda: _column(dialog, TASK)[0] == "not set up", timeout=10_000)
    assert presenter.questions[-1].title == "Remove scheduled tasks"
    assert [call[1:] for call in fake.calls if call[1] == "/Delete"][0] == [
        "/Delete", "/TN", "Queue Admin\\Nightly backup", "/F"]
    assert fake.tasks == {}


@pytest.mark.slow
def test_shows_each_jobs_last_run_and_a_failed_backup_in_red(qtbot, open_session, demo_db,
                                                             backup_dir, tmp_path):
    dialog = _make(qtbot, open_session, on_windows=False, log_dir=tmp_path / "logs")
    jobs = {job.key: job for job in dialog.jobs()}
    for key in ("checkpoint", "backup"):
        run = subprocess.run(job_argv(jobs[key], PYTHON_CLI), capture_output=True,
                             timeout=120, check=False)
        assert run.returncode == 0, run.stderr
    qtbot.mouseClick(dialog.refresh_button, LEFT)
    qtbot.waitUntil(lambda: dialog.reads_shown == 2, timeout=10_000)
    assert _column(dialog, RESULT)[:2] == ["succeeded", "succeeded"]
    assert _column(dialog, LAST_RUN)[2:] == ["never", "see the task's last result", "never"]
    assert _colour(dialog, 0, RESULT) != FAILED_COLOR

    backup_dir.mkdir(parents=True, exist_ok=True)
    blocker = backup_dir / "not a folder"
    blocker.write_text("a file where the backup folder should be")
    dialog.backup_dir_edit.setText(str(blocker))
    failed = subprocess.run(job_argv(dialog.jobs()[0], PYTHON_CLI), capture_output=True,
                            timeout=120, check=False)
    assert failed.returncode != 0
    qtbot.mouseClick(dialog.refresh_button, LEFT)
    qtbot.waitUntil(lambda: dialog.reads_shown == 3, timeout=10_000)
    assert _column(dialog, RESULT)[0] == "failed"
    assert _colour(dialog, 0, RESULT) == FAILED_COLOR
    assert _colour(dialog, 0, LAST_RUN) == FAILED_COLOR
    assert _cell(dialog, 0, RESULT, Qt.ItemDataRole.ToolTipRole)  # the CLI's sentence


def test_the_tools_menu_opens_the_dialog(qtbot, window, demo_db, open_db):
    action = window.window_actions.schedule
    assert not action.isEnabled()  # no database yet
    open_db(demo_db)
    assert action.isEnabled()
    tools = next(menu for menu in window.menuBar().findChildren(QMenu)
                 if menu.title() == "&Tools")
    assert action in tools.actions()
    action.trigger()
    dialog = window.window_actions.schedule_dialog
    qtbot.waitUntil(lambda: dialog.isVisible(), timeout=5_000)
    qtbot.waitUntil(lambda: dialog.reads_shown == 1, timeout=10_000)
    assert _column(dialog, LAST_RUN) == ["never"] * 3 + ["see the task's last result", "never"]
    dialog.close()


def test_the_schedule_writes_where_the_window_reads(qtbot, open_session, tmp_path):
    from queue_admin_gui.core.archive.controller import configured_archive_dir

    dialog = _make(qtbot, open_session, on_windows=False, log_dir=tmp_path / "logs")
    config = open_session.config
    assert dialog.keep_spin.value() == config.backup_retention_count
    assert dialog.archive_dir_edit.text() == str(configured_archive_dir(config))
    jobs = {job.key: job for job in dialog.jobs()}
    assert jobs["archive"].arguments[-1] == str(configured_archive_dir(config))
    assert jobs["check"].trigger.describe() == "every 15 minutes"
