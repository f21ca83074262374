"""Tools > Schedule...: set up the recurring maintenance jobs and see how each last ran.

The dialog lists the four jobs of :mod:`..core.schedules` (nightly backup, PASSIVE
checkpoint, stale-lease recovery, WAL archiver) with their trigger, the exact command line a
task runs, and the newest run of each found in the activity log: when, and how it ended; a
run that did not succeed is red, so a failed nightly backup is seen the next morning.

On Windows the dialog creates, looks up and removes the Task Scheduler entries itself
(``schtasks`` through :class:`..core.task_scheduler.TaskScheduler`, run as jobs, never on the
GUI thread). Elsewhere it shows the crontab lines and systemd units to copy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QTime
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

from ..app.jobs import JobFunction, mark_background
from ..app.session import Session
from ..core.activity import ActivityLog
from ..core.schedules.jobs import (
    LastRun,
    ScheduledJob,
    ScheduleSettings,
    cli_launcher,
    job_argv,
    last_runs,
    posix_command_line,
    refuse_unquotable,
    schedule_log_dir,
    scheduled_jobs,
    windows_command_line,
)
from ..core.schedules.schedule_formats import crontab_text, systemd_text, task_arguments
from ..core.schedules.task_scheduler import CommandRunner, TaskScheduler, TaskState, run_command
from .icons import icon
from .palette import RED
from .table_model import ListColumn, RecordListModel, make_list_view, record_column

COLUMNS = ("Job", "When", "Command", "Task", "Last run", "Result")
JOB, WHEN, COMMAND, TASK, LAST_RUN, RESULT = range(len(COLUMNS))
FAILED_COLOR = QColor(RED)
#: How many of the newest activity entries are searched for the jobs' last runs.
HISTORY_ENTRIES = 5000


class ScheduleDialog(QDialog):
    """The scheduled jobs: their settings, command lines, tasks and last runs."""

    def __init__(self, session: Session, activity_log: ActivityLog | None = None, *,
                 on_windows: bool | None = None, runner: CommandRunner = run_command,
                 launcher: Sequence[str] | None = None, log_dir: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Schedule maintenance")
        self.setWindowIcon(icon("settings"))
        self.session = session
        self.activity_log = activity_log or ActivityLog()
        self.on_windows = sys.platform == "win32" if on_windows is None else on_windows
        self.launcher = list(launcher) if launcher is not None else cli_launcher()
        self.log_dir = log_dir or schedule_log_dir()
        self.scheduler = TaskScheduler(self.launcher, self.log_dir, runner=runner)
        self.runs: dict[str, LastRun] = {}
        self.task_states: dict[str, TaskState] = {}
        #: How many reads of the activity log (and tasks) have been shown; 0 until the first.
        self.reads_shown = 0
        self._busy = False
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(
            f"Recurring maintenance of {session.db_path}. Each job runs queue-admin-cli; its "
            f"output is appended to a log file in {self.log_dir}, and each run lands in the "
            "activity log, which the last two columns are read from."))
        layout.addLayout(self._build_form())
        #: Keys of the jobs whose tick the user took off (every job starts ticked).
        self.unticked: set[str] = set()
        self.jobs_model: RecordListModel[ScheduledJob] = RecordListModel(
            self._columns(), parent=self)
        # The jobs keep the runbook's order: the table is read, not sorted.
        self.table = make_list_view(self.jobs_model, sortable=False, fit_every_row=True)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.horizontalHeader().setSectionResizeMode(COMMAND,
                                                           QHeaderView.ResizeMode.Stretch)
        self.table.setColumnHidden(TASK, not self.on_windows)
        layout.addWidget(self.table)
        self.problem_label = QLabel("")
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet(f"color: {FAILED_COLOR.name()}")
        layout.addWidget(self.problem_label)
        self.create_button = QPushButton("Create tasks")
        self.remove_button = QPushButton("Remove tasks")
        self.refresh_button = QPushButton(icon("refresh"), "Refresh")
        self.copy_button = QPushButton("Copy")
        self.posix_text = QPlainTextEdit(self)
        self.posix_text.setReadOnly(True)
        buttons = QHBoxLayout()
        if self.on_windows:
            self.create_button.setToolTip("Create or replace the ticked jobs' tasks in Task "
                                          "Scheduler (folder 'Queue Admin'), run as you while "
                                          "you are logged on; no password is stored.")
            self.remove_button.setToolTip("Remove the ticked jobs' tasks from Task Scheduler.")
            buttons.addWidget(self.create_button)
            buttons.addWidget(self.remove_button)
            self.posix_text.hide()
            self.copy_button.hide()
        else:
            layout.addWidget(QLabel("This system has no Task Scheduler: add these lines with "
                                    "'crontab -e', or install the systemd user units."))
            layout.addWidget(self.posix_text, 1)
            self.create_button.hide()
            self.remove_button.hide()
            buttons.addWidget(self.copy_button)
        buttons.addWidget(self.refresh_button)
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        self.create_button.clicked.connect(self.create_tasks)
        self.remove_button.clicked.connect(self.remove_tasks)
        self.refresh_button.clicked.connect(self.refresh)
        self.copy_button.clicked.connect(self._on_copy)
        self.resize(1000, 620)
        self._fill_table()
        self.refresh()

    def _build_form(self) -> QFormLayout:
        form = QFormLayout()
        # the same backup folder, retention and archive folder as Settings, the archive
        # panel and the restore wizard: one source for every setting
        defaults = ScheduleSettings.from_config(Path(self.session.db_path or ""),
                                                self.session.config)
        self.backup_dir_edit = QLineEdit(str(defaults.backup_dir))
        self.keep_spin = _spin(1, 10_000, defaults.keep, "")
        self.backup_time = QTimeEdit(QTime(2, 0))
        self.backup_time.setDisplayFormat("HH:mm")
        self.checkpoint_spin = _spin(1, 1440, defaults.checkpoint_minutes, " min")
        self.lease_spin = _spin(1, 1440, defaults.lease_minutes, " min")
        self.timeout_spin = _spin(0, 10_000_000, defaults.lease_timeout_seconds, " s")
        self.check_spin = _spin(1, 1440, defaults.check_minutes, " min")
        self.archive_dir_edit = QLineEdit(str(defaults.archive_folder))
        form.addRow("Backup folder", self.backup_dir_edit)
        form.addRow("Nightly backup at", self.backup_time)
        form.addRow("Keep the newest", self.keep_spin)
        form.addRow("PASSIVE checkpoint every", self.checkpoint_spin)
        form.addRow("Stale lease recovery every", self.lease_spin)
        form.addRow("Lease timeout", self.timeout_spin)
        form.addRow("Health check every", self.check_spin)
        form.addRow("WAL archive folder", self.archive_dir_edit)
        for edit in (self.backup_dir_edit, self.archive_dir_edit):
            edit.textChanged.connect(self._fill_table)
        for spin in (self.keep_spin, self.checkpoint_spin, self.lease_spin, self.timeout_spin,
                     self.check_spin):
            spin.valueChanged.connect(self._fill_table)
        self.backup_time.timeChanged.connect(self._fill_table)
        return form

    # -- what the jobs are ----------------------------------------------------------------

    def schedule_settings(self) -> ScheduleSettings:
        """The settings as the form shows them now."""
        at = self.backup_time.time()
        return ScheduleSettings(
            db_path=Path(self.session.db_path or ""),
            backup_dir=Path(self.backup_dir_edit.text().strip()),
            keep=self.keep_spin.value(), backup_at=clock_time(at.hour(), at.minute()),
            checkpoint_minutes=self.checkpoint_spin.value(),
            lease_minutes=self.lease_spin.value(),
            lease_timeout_seconds=self.timeout_spin.value(),
            archive_dir=Path(self.archive_dir_edit.text().strip()),
            check_minutes=self.check_spin.value())

    def jobs(self) -> list[ScheduledJob]:
        """The jobs as the form describes them."""
        return scheduled_jobs(self.schedule_settings())

    def checked_jobs(self) -> list[ScheduledJob]:
        """The jobs whose row is ticked."""
        return [job for job in self.jobs() if job.key not in self.unticked]

    def set_ticked(self, job: ScheduledJob, ticked: bool) -> None:
        """Tick or untick a job's row (what a click on its box does)."""
        if ticked:
            self.unticked.discard(job.key)
        else:
            self.unticked.add(job.key)

    def command_line(self, job: ScheduledJob) -> str:
        """What a run of ``job`` executes, as this system's scheduler is given it."""
        if self.on_windows:
            return windows_command_line(job_argv(job, self.launcher))
        return posix_command_line(job_argv(job, self.launcher))

    # -- showing ----------------------------------------------------------------------------

    def _columns(self) -> list[ListColumn]:
        def failed_colour(job: ScheduledJob) -> QColor | None:
            run = self.runs.get(job.key)
            return FAILED_COLOR if run is not None and run.failed else None

        def last_run(job: ScheduledJob) -> str:
            run = self.runs.get(job.key)
            if run is not None:
                return run.describe_time()
            if not self.reads_shown:
                return "..."
            return "never" if job.logged else "see the task's last result"

        def result_hint(job: ScheduledJob) -> str:
            run = self.runs.get(job.key)
            return run.message if run is not None else ""

        def task(job: ScheduledJob) -> str:
            state = self.task_states.get(job.key)
            return state.describe() if state is not None else "..."

        columns = {
            JOB: record_column(COLUMNS[JOB], lambda job: job.title,
                               hint=lambda job: job.description,
                               checked=lambda job: job.key not in self.unticked,
                               set_checked=self.set_ticked),
            WHEN: record_column(COLUMNS[WHEN], lambda job: job.trigger.describe()),
            COMMAND: record_column(COLUMNS[COMMAND], self.command_line),
            TASK: record_column(COLUMNS[TASK], task),
            LAST_RUN: record_column(COLUMNS[LAST_RUN], last_run, colour=failed_colour),
            RESULT: record_column(COLUMNS[RESULT],
                                  lambda job: run.result if (run := self.runs.get(job.key))
                                  else "", colour=failed_colour, hint=result_hint),
        }
        return [columns[column] for column in range(len(COLUMNS))]

    def _fill_table(self) -> None:
        jobs = self.jobs()
        self.jobs_model.set_records(jobs)
        self._check_paths(jobs)

    def _check_paths(self, jobs: list[ScheduledJob]) -> None:
        problem = ""
        try:
            for job in jobs:
                refuse_unquotable(job_argv(job, self.launcher))
                if self.on_windows:
                    task_arguments(job, self.launcher, self.log_dir)
        except ValueError as error:
            problem = str(error)
        self.problem_label.setText(problem)
        self.problem_label.setVisible(bool(problem))
        self.create_button.setEnabled(not problem and not self._busy)
        self.remove_button.setEnabled(not self._busy)
        if not self.on_windows:
            self.posix_text.setPlainText(
                "" if problem else crontab_text(jobs, self.launcher, self.log_dir) + "\n"
                + systemd_text(jobs, self.launcher, self.log_dir))

    def _show_states(self) -> None:
        self.jobs_model.refresh_cells()

    # -- jobs -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the last runs from the activity log, and on Windows the tasks, as a job."""
        jobs, log = self.jobs(), self.activity_log
        scheduler = self.scheduler if self.on_windows else None

        def read(progress: object, cancelled: object) -> tuple[dict, dict]:
            runs = last_runs(log.read(HISTORY_ENTRIES), jobs)
            return runs, (scheduler.query(jobs) if scheduler is not None else {})

        mark_background(self.session.run("Read scheduled jobs", read,
                                         on_done=self._while_open(self._on_read)))

    def _on_read(self, result: tuple[dict, dict]) -> None:
        self.runs, self.task_states = result
        self.reads_shown += 1
        self._show_states()

    def create_tasks(self) -> None:
        """Create (or replace) the ticked jobs' tasks in Task Scheduler, as a job."""
        jobs = self.checked_jobs()
        if not jobs:
            self.session.messages.warning("Tick the jobs to set up first.")
            return
        scheduler = self.scheduler
        self._run_tasks("Create scheduled tasks", lambda p, c: scheduler.create(jobs),
                        "Created in Task Scheduler: {}.", jobs)

    def remove_tasks(self) -> None:
        """Remove the ticked jobs' tasks from Task Scheduler, after asking."""
        jobs = self.checked_jobs()
        if not jobs or not self.session.messages.confirm(
                "Remove scheduled tasks",
                "Remove these tasks from Task Scheduler? They stop running: "
                + ", ".join(job.task_name for job in jobs) + ".",
                confirm_label="Remove tasks", destructive=True):
            return
        scheduler = self.scheduler
        self._run_tasks("Remove scheduled tasks", lambda p, c: scheduler.remove(jobs),
                        "Removed from Task Scheduler: {}.", jobs)

    def _run_tasks(self, title: str, func: JobFunction, done_text: str,
                   jobs: list[ScheduledJob]) -> None:
        self._set_busy(True)

        def on_done(names: list[str]) -> None:
            self.session.messages.info(done_text.format(", ".join(names) or "nothing"))
            self._finish_tasks()

        self.session.run(title, func, parameters={"tasks": [job.task_name for job in jobs]},
                         on_done=self._while_open(on_done),
                         on_error=self._while_open(lambda _error: self._finish_tasks()))

    def _while_open(self, slot: Callable[[Any], None]) -> Callable[[Any], None]:
        """``slot``, skipped once the dialog is gone: a job may end after it was closed."""
        def call(value: Any) -> None:
            if shiboken6.isValid(self):
                slot(value)

        return call

    def _finish_tasks(self) -> None:
        self._set_busy(False)
        self.refresh()

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._check_paths(self.jobs())

    def _on_copy(self) -> None:
        QGuiApplication.clipboard().setText(self.posix_text.toPlainText())
        self.session.messages.info("The crontab lines and systemd units were copied.")


def _spin(low: int, high: int, value: int, suffix: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    spin.setSuffix(suffix)
    return spin


__all__ = ["ScheduleDialog"]
