"""The base of the maintenance tabs: jobs through the session, progress, action states.

Every tab runs its work as jobs through the session (never SQL in the GUI thread), shows
their progress, refreshes when the database or one of its topics changes, and keeps write
and queue-only actions disabled, with a tooltip saying why, while they cannot run.

One database at a time: when another file is opened (or the open one is closed) every tab
first empties what it shows (:meth:`MaintenanceTab.clear`), a read that was still running
for the previous file is dropped when it ends, and a read of the new file that fails leaves
the tab empty with the reason, never the previous file's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QAbstractButton, QWidget

from ..app.jobs import Job, JobFunction, mark_background
from ..app.operations import Operation
from ..app.session import Session
from .job_progress import JobProgressPanel


@dataclass
class _Action:
    button: QAbstractButton
    tooltip: str
    writes: bool
    queue_only: bool
    blocked_by_damage: bool


class MaintenanceTab(QWidget):
    """Base of the maintenance tabs: jobs through the session, progress, action states.

    Subclasses set :attr:`topics` (the :meth:`Session.notify` topics they show), build their
    widgets, register buttons with :meth:`add_action` and implement :meth:`refresh`.
    """

    topics: tuple[str, ...] = ()
    #: Coming to the front, read again at once (-1) or this many ms later: a tab of long
    #: lists is painted first, so its paint does not wait on the job reading them.
    show_refresh_delay_ms = -1

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.progress_panel = JobProgressPanel()
        self._actions: list[_Action] = []
        self._load_job: Job | None = None
        self._load_again = False
        self._quiet_load = False
        session.database_changed.connect(self._on_database_changed)
        session.damage_found.connect(lambda _damage: self.update_actions())
        session.changed.connect(self._on_topic_changed)
        session.runner.write_busy_changed.connect(self._on_write_busy_changed)

    def refresh(self) -> None:
        """Reload what the tab shows from the database (as a job)."""
        raise NotImplementedError

    def clear(self) -> None:
        """Forget everything shown about the database (another file is being opened)."""
        raise NotImplementedError

    def show_load_failed(self, error: BaseException) -> None:
        """A read of the open file failed: show nothing of an earlier read.

        Subclasses add the reason where they have room for it.
        """
        self.clear()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        """Read again when the tab comes to the front, so it never shows figures from earlier.

        Workers keep changing the file while another tab is in front; an admin switching
        tabs must see the state of now, not of when the database was opened. A failure of
        this read is not put in a box (the health badge already says the file cannot be
        read); Refresh still reports it.
        """
        super().showEvent(event)
        if self.session.db_path is None or self.loading:
            return
        if self.show_refresh_delay_ms < 0:
            self._refresh_quietly()
        else:
            QTimer.singleShot(self.show_refresh_delay_ms, self, self._refresh_quietly)

    def _refresh_quietly(self) -> None:
        if self.isVisible() and self.session.db_path is not None and not self.loading:
            self._quiet_load = True
            try:
                self.refresh()
            finally:
                self._quiet_load = False

    def add_action(self, button: QAbstractButton, tooltip: str, *, writes: bool = False,
                   queue_only: bool = False,
                   blocked_by_damage: bool = False) -> QAbstractButton:
        """Register a button whose enabled state follows the database and the write jobs.

        ``blocked_by_damage``: the action changes rows in place, which a damaged file must
        not get before it is restored (requeue, retry, ANALYZE, VACUUM).
        """
        self._actions.append(_Action(button, tooltip, writes, queue_only, blocked_by_damage))
        self.update_actions()
        return button

    def update_actions(self) -> None:
        """Enable each action that can run now; a disabled one says why in its tooltip."""
        for action in self._actions:
            reason = self.disabled_reason(action.writes, action.queue_only)
            if reason is None and action.blocked_by_damage and self.session.damage:
                reason = ("The database file is damaged; restore it from a backup before "
                          "changing it.")
            action.button.setEnabled(reason is None)
            action.button.setToolTip(reason or action.tooltip)

    def disabled_reason(self, writes: bool, queue_only: bool) -> str | None:
        """Why an action of this kind cannot run now, or None when it can."""
        if self.session.db_path is None:
            return "Open a database first."
        if queue_only and self.session.is_queue is False:
            return ("This file is not a PrismQ queue database, so queue actions are off; "
                    "plain SQLite maintenance still works.")
        if writes and self.session.runner.write_busy:
            current = self.session.runner.current_write_job
            title = current.title if current is not None else "a queued job"
            return f"Another maintenance job is running: {title}. Wait for it to finish."
        return None

    def run_job(self, title: str, func: JobFunction, *, writes: bool = False,
                parameters: dict[str, Any] | None = None,
                on_done: Callable[[Any], None] | None = None,
                on_error: Callable[[BaseException], None] | None = None,
                report_errors: bool = True) -> Job:
        """Run ``func`` as a job through the session and show its progress in this tab."""
        job = self.session.run(title, func, writes=writes, parameters=parameters,
                               on_done=on_done, on_error=on_error,
                               report_errors=report_errors)
        self.progress_panel.track(job)
        return job

    def run_operation(self, operation: Operation, *,
                      on_success: Callable[[Any], None] | None = None,
                      on_error: Callable[[BaseException], None] | None = None) -> Job:
        """Run ``operation`` through the session (which announces its changes) with progress."""
        job = self.session.run_operation(operation, on_success=on_success, on_error=on_error)
        self.progress_panel.track(job)
        return job

    @property
    def loading(self) -> bool:
        """True while this tab's last load job runs."""
        return self._load_job is not None and not self._load_job.is_finished

    def run_load(self, title: str, func: JobFunction, on_done: Callable[[Any], None], *,
                 report_errors: bool = True,
                 on_error: Callable[[BaseException], None] | None = None) -> Job | None:
        """Run a read job that fills the tab; asked again meanwhile, it refreshes once after."""
        if self.loading:
            self._load_again = True
            return None
        generation = self.session.generation

        def done(result: Any) -> None:
            if self.session.is_current(generation):
                on_done(result)

        def failed(error: BaseException) -> None:
            if not self.session.is_current(generation):
                return
            self.show_load_failed(error)
            if on_error is not None:
                on_error(error)

        job = mark_background(self.run_job(title, func, on_done=done, on_error=failed,
                                           report_errors=report_errors
                                           and not self._quiet_load))
        self._load_job = job
        job.finished.connect(self._on_load_finished)
        return job

    def _on_load_finished(self) -> None:
        again, self._load_again = self._load_again, False
        if again and self.session.db_path is not None:
            self.refresh()

    def _on_database_changed(self, _path: object) -> None:
        self.clear()
        self.update_actions()
        if self.session.db_path is not None:
            # a read still running for the previous file ends unheard; read the new one now
            self._load_job = None
            self._load_again = False
            self.refresh()

    def _on_topic_changed(self, topic: str) -> None:
        if topic in self.topics and self.session.db_path is not None:
            self.refresh()

    def _on_write_busy_changed(self, _busy: bool) -> None:
        self.update_actions()
