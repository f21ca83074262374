"""What the window is working on: the database, the config, the job runner and messages.

Every tab receives the one :class:`Session`. A tab never opens the database itself: it asks
the session to run an operation (or a plain core callable) as a job, and listens to
``changed`` to refresh when another tab altered something it shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..core.archive.controller import configured_archive_dir
from ..core.errors import QueueAdminError
from ..core.maintenance import Maintenance
from ..core.measurements.health import damage_of
from ..core.measurements.holders import name_holders
from ..core.measurements.readings import CheckpointSummary
from ..core.measurements.sampling import SampleHistory, TaskCountHistory
from ..core.progress import CancelCheck, ProgressCallback
from ..core.settings.config import MaintenanceConfig
from .jobs import Job, JobFunction, JobRunner
from .messages import Messages
from .operations import TOPIC_STATS, Operation


class Session(QObject):
    """Shared state of one window.

    ``checkpoint_done(result)`` and ``checkpoint_failed(mode, error)`` fire for every
    checkpoint, whichever button started it, because every one runs through
    :meth:`run_checkpoint`: the "Last checkpoint" panel, the plot's markers and the health
    follow each run.
    """

    database_changed = Signal(object)
    config_changed = Signal(object)
    changed = Signal(str)
    #: The open file was found damaged (SQLite's words); emitted once per opened database.
    damage_found = Signal(str)
    checkpoint_done = Signal(object)
    checkpoint_failed = Signal(str, object)
    backup_done = Signal(object)

    def __init__(self, runner: JobRunner, messages: Messages, config: MaintenanceConfig,
                 db_path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.messages = messages
        self.config = config
        self.db_path = db_path
        #: None until the schema was checked; then True for a queue file, False otherwise.
        self.is_queue: bool | None = None
        #: Runs each checkpoint in its job's thread: ``around_checkpoint(mode, run)``; the
        #: window's archiver replaces it to step aside (ui/archive_panel.py).
        self.around_checkpoint: Callable[[str, Callable[[], Any]], Any] = _run_checkpoint
        #: The live monitor's ring buffers (WAL samples, task counts) once a sampler runs;
        #: read on the GUI thread, where they are written (the restore wizard's timeline).
        self.histories: tuple[SampleHistory, TaskCountHistory] | None = None
        #: Counts the databases opened: a job's result belongs to the one open when it began.
        self.generation = 0
        #: What SQLite said when a read met a damaged page of the open file, else None.
        self.damage: str | None = None

    @property
    def backup_dir(self) -> Path:
        """Where backups of the current database go."""
        return Path(self.config.backup_dir)

    @property
    def archive_dir(self) -> Path:
        """The point-in-time archive folder of the settings."""
        return configured_archive_dir(self.config)

    def set_database(self, db_path: Path | None, is_queue: bool | None = None) -> None:
        """Switch to another database file and tell every tab.

        Everything known about the previous file is forgotten first (its damage, the jobs
        still reading it: their results are dropped, see :meth:`is_current`), so no screen
        shows one file's figures under another's name.
        """
        self.generation += 1
        self.db_path = db_path
        self.is_queue = is_queue
        self.damage = None
        self.database_changed.emit(db_path)

    def is_current(self, generation: int) -> bool:
        """True while the database open at ``generation`` is still the one open."""
        return generation == self.generation

    def mark_damaged(self, damage: str) -> bool:
        """Record that the open file is damaged; True the first time for this file.

        The first finding is told in one message (what happened, what to do); later reads
        failing on the same damage add nothing but their activity-log line.
        """
        if self.db_path is None or self.damage is not None:
            return False
        self.damage = damage
        self.messages.error(
            f"{self.db_path} is damaged ({damage}). Stop the workers, then restore it from the "
            "newest backup: the Optimization tab lists the damaged tables and pages and "
            "opens the restore.")
        self.damage_found.emit(damage)
        return True

    def set_config(self, config: MaintenanceConfig) -> None:
        """Replace the config (after the settings dialog) and tell every tab."""
        self.config = config
        self.config_changed.emit(config)

    def notify(self, topic: str) -> None:
        """Say that something on ``topic`` changed on disk, so views showing it refresh."""
        self.changed.emit(topic)

    def run(self, title: str, func: JobFunction, *, writes: bool = False,
            parameters: dict[str, Any] | None = None,
            on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None,
            on_cancelled: Callable[[], None] | None = None,
            report_errors: bool = True) -> Job:
        """Run ``func(progress, cancelled)`` as a job; failures reach the user unless told not.

        ``title`` names the action for the activity log ("Back up", "Checkpoint TRUNCATE").
        """
        job = Job(title, _naming_holders(func, self.db_path), writes=writes,
                  parameters=parameters, parent=self)
        generation = self.generation
        if report_errors:
            job.failed.connect(lambda error: self._report_failure(generation, error,
                                                                  job.error_details))
        return self.runner.run(job, on_done=on_done, on_error=on_error,
                               on_cancelled=on_cancelled)

    def _report_failure(self, generation: int, error: BaseException, details: str) -> None:
        """Tell a job's failure once: a damaged file is one incident, an old file's is none.

        A read of a file the window has since left is history (the activity log keeps it);
        a failure saying the open file is damaged becomes the one damage message.
        """
        if not self.is_current(generation):
            return
        damage = damage_of(error) if isinstance(error, QueueAdminError) else None
        if damage is not None and self.db_path is not None:
            self.mark_damaged(damage)
            return
        self.messages.report_error(error, details)

    def run_operation(self, operation: Operation, *,
                      on_success: Callable[[Any], None] | None = None,
                      on_error: Callable[[BaseException], None] | None = None,
                      on_cancelled: Callable[[], None] | None = None,
                      report_errors: bool = True) -> Job:
        """Run ``operation`` as a job; once it succeeded, announce each topic it changes.

        ``on_success`` runs first (the caller's own message), then ``changed`` is emitted for
        every topic in ``operation.changes``; a failed or cancelled run emits only those in
        ``operation.changes_when_stopped``.
        """
        job = self.run(operation.title, operation.func, writes=operation.writes,
                       parameters=dict(operation.parameters), on_done=on_success,
                       on_error=on_error, on_cancelled=on_cancelled,
                       report_errors=report_errors)
        if operation.changes:
            job.succeeded.connect(lambda _result: self._announce(operation.changes))
        if operation.changes_when_stopped:
            stopped = operation.changes_when_stopped
            job.failed.connect(lambda _error: self._announce(stopped))
            job.cancelled.connect(lambda: self._announce(stopped))
        return job

    def _announce(self, topics: frozenset[str]) -> None:
        for topic in sorted(topics):
            self.notify(topic)

    def run_checkpoint(self, mode: str, *, origin: str = "",
                       on_done: Callable[[Any], None] | None = None) -> Job | None:
        """Run a checkpoint in ``mode`` as a write job; None when no database is open.

        A run that could not copy every frame succeeds with a note saying what was left (the
        activity log shows it); every outcome reaches ``checkpoint_done`` or
        ``checkpoint_failed``, then ``on_done`` for the caller's own message.
        """
        path = self.db_path
        if path is None:
            return None

        def checkpoint(progress: ProgressCallback, cancelled: CancelCheck) -> Any:
            progress(0, 0, f"Checkpoint {mode}: waiting for the WAL")
            return self.around_checkpoint(mode, lambda: Maintenance(path).run_checkpoint(mode))

        parameters = {"mode": mode, **({"from": origin} if origin else {})}
        job = self.run(f"Checkpoint {mode}", checkpoint, writes=True, parameters=parameters,
                       on_error=lambda error: self.checkpoint_failed.emit(mode, error))
        job.succeeded.connect(lambda result: self._on_checkpoint_succeeded(job, result))
        if on_done is not None:
            job.succeeded.connect(on_done)
        return job

    def _on_checkpoint_succeeded(self, job: Job, result: Any) -> None:
        summary = CheckpointSummary.of(result)
        if not summary.finished:
            job.note = summary.sentence()
        self.checkpoint_done.emit(result)
        self.notify(TOPIC_STATS)


def _run_checkpoint(_mode: str, run: Callable[[], Any]) -> Any:
    return run()


def _naming_holders(func: JobFunction, db_path: Path | None) -> JobFunction:
    """``func``, whose "database is locked" errors name the programs holding the database.

    The lookup runs in the job's worker thread, after the failure, so it costs nothing else.
    """
    if db_path is None:
        return func

    def run(progress: ProgressCallback, cancelled: CancelCheck) -> Any:
        try:
            return func(progress, cancelled)
        except QueueAdminError as error:
            raise name_holders(error, db_path) from error.__cause__

    return run
