"""The guided restore wizard, for incidents: a restore that cannot be clicked into losing data.

Five pages: choose a backup, check it and see what restoring it costs, prepare (workers,
locks, space, safety backup), restore (a commit page with progress and a countdown while
another program holds the database), done (integrity, in-flight tasks to requeue, undo).
Every database step runs as a job, and the two that write (the restore and the requeue) as
operations, which announce what they changed; the pages only show what the jobs found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QPushButton,
    QWidget,
    QWizard,
)

from ..app.operations import requeue_restored_tasks, restore_backup
from ..app.session import Session
from ..core.errors import QueueAdminError
from ..core.leases.manager import RequeueResult
from ..core.restore.execute import STAGE_CHECK_RESTORED, STAGE_WAITING
from ..core.restore.file_summary import TaskRef
from ..core.restore.keep import RestoreReport
from ..core.restore.plan import RestoredCheck
from ..core.restore.writing import STAGE_WRITE
from .rescue_dialog import RescueDialog, open_rescue_dialog
from .restore_choices import show_carried
from .restore_pages import (
    GOOD_STYLE,
    PROBLEM_STYLE,
    CheckPage,
    ChoosePage,
    JobPage,
    RestoreState,
    counts_summary,
    text_label,
)
from .restore_prepare_page import PreparePage

PAGE_CHOOSE, PAGE_CHECK, PAGE_PREPARE, PAGE_RESTORE, PAGE_DONE = range(5)


@dataclass
class RestoreOutcome:
    """What the restore job did and what the restored database looks like."""

    result: RestoreReport
    check: RestoredCheck


class RestorePage(JobPage):
    """Page 4 (the commit page): runs the restore with progress and a lock countdown."""

    def __init__(self, session: Session, state: RestoreState) -> None:
        super().__init__(session, state, "Restore",
                         "Writes the backup into the live database in one transaction; until "
                         "its final step, Cancel leaves everything as it was.")
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "&Continue")
        self.countdown_label = text_label(style=PROBLEM_STYLE)
        self.countdown_label.hide()
        self.result_label = text_label()
        self.finishing = False
        self.cancel_asked = False
        for widget in (self.stage_label, self.bar, self.countdown_label, self.result_label):
            self.layout_.addWidget(widget)
        self.layout_.addStretch(1)

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        """Start the restore job as soon as the page opens."""
        state = self.state
        state.outcome = None
        self.finishing = self.cancel_asked = False
        self.result_label.clear()
        self.result_label.setStyleSheet("")
        live, folder, backup = state.live_path, state.backup_dir, state.backup_path
        assert live is not None and backup is not None
        self.run_operation(
            restore_backup(live, folder, backup, safety_backup=state.safety_backup,
                           accepted_workers=state.accepted_workers,
                           lock_wait_seconds=float(state.lock_wait_seconds),
                           keep_newer_tasks=state.keep_newer_tasks,
                           archive_safety=state.archive_safety),
            self._on_restored)

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        """Continue only after a restore that went through."""
        return not self.busy and self.state.outcome is not None

    def request_cancel(self) -> None:
        """Cancel while that still changes nothing; after that, say the restore is finishing."""
        if self.finishing:
            self.result_label.setText("Finishing the restore: its final step has started and "
                                      "can no longer be cancelled.")
            return
        self.cancel_asked = True
        self.cancel_job()
        self.result_label.setText("Cancelling: the restore stops before its final step and "
                                  "changes nothing.")

    def on_progress(self, done: int, total: int, stage: str) -> None:
        """Show the stage; while waiting for a lock, a countdown."""
        super().on_progress(done, total, stage)
        if stage == STAGE_WAITING:
            remaining = max(0, round((total - done) / 1000))
            self.countdown_label.setText(f"Another program is holding the database; waiting "
                                         f"{remaining} s for it to let go...")
            self.countdown_label.show()
            return
        self.countdown_label.hide()
        if (stage == STAGE_WRITE and total and done >= total) or stage == STAGE_CHECK_RESTORED:
            self.finishing = True

    def on_job_error(self, error: BaseException) -> None:
        """Say what stopped the restore, and that the live database is as it was."""
        super().on_job_error(error)
        self.countdown_label.hide()
        self.stage_label.clear()
        text = str(error) if isinstance(error, QueueAdminError) else f"Restore failed: {error}"
        self.result_label.setText(f"{text}\nGo Back to try again, or Cancel to close.")
        self.result_label.setStyleSheet(PROBLEM_STYLE)

    def on_job_cancelled(self) -> None:
        """Say that nothing changed, and where a safety backup already taken was kept."""
        self.countdown_label.hide()
        self.stage_label.clear()
        error = self.job.error if self.job is not None else None
        text = "Restore cancelled; the live database was not changed."
        if error is not None and "kept" in str(error):
            text = str(error)
        self.result_label.setText(text)
        self.session.messages.info(text)

    def _on_restored(self, result: RestoreReport) -> None:
        assert isinstance(result, RestoreReport) and result.check is not None
        self.state.outcome = RestoreOutcome(result, result.check)
        late = " (it had already finished when Cancel was pressed)" if self.cancel_asked else ""
        self.session.messages.info(f"Restored '{result.target}' from '{result.restored_from.name}'"
                                   f" in {result.seconds:.1f} s{late}.")
        self.result_label.setText(f"Restore finished{late}.")
        self.result_label.setStyleSheet(GOOD_STYLE)
        self._read_again_if_no_longer_damaged(result)

    def _read_again_if_no_longer_damaged(self, result: RestoreReport) -> None:
        """The open file was damaged and now passes the checks: every screen reads it anew.

        The badge, the integrity findings and the tray showed the damage; the file is opened
        again as it is now, so none of them goes on calling a healthy file damaged.
        """
        session = self.session
        if (result.check is not None and result.check.ok and session.damage is not None
                and session.db_path is not None
                and Path(result.target).resolve() == Path(session.db_path).resolve()):
            session.set_database(session.db_path, True)

    def _on_job_finished(self) -> None:
        super()._on_job_finished()
        wizard = self.wizard()
        if self.state.outcome is not None and wizard is not None \
                and wizard.currentPage() is self:
            wizard.next()


class DonePage(JobPage):
    """Page 5: the restored database's health, in-flight tasks to requeue, and undo."""

    def __init__(self, session: Session, state: RestoreState) -> None:
        super().__init__(session, state, "Restore finished",
                         "Shows how the restored database looks and what to do next.")
        self.integrity_label = text_label()
        self.moved_label = text_label()
        self.counters_label = text_label()
        self.in_flight_label = text_label()
        #: Signs of workers that did not hold the restore (a crashed worker's leases).
        self.seen_label = text_label()
        #: The tasks created after the backup that the restore kept.
        self.carried_label = text_label()
        self.tasks = QListWidget()
        self.tasks.setMaximumHeight(120)
        self.requeue_button = QPushButton("&Requeue these tasks")
        self.requeue_button.setAutoDefault(False)
        self.requeue_button.clicked.connect(self._on_requeue)
        #: After a restore over a damaged file: take the newer work from the copy it kept.
        self.salvage_button = QPushButton("Bring back &newer work from the damaged copy...")
        self.salvage_button.setAutoDefault(False)
        self.salvage_button.setToolTip(
            "Compare the restored queue with the rows still readable in the damaged copy and "
            "put back the tasks it holds a newer state of (tasks created or finished after "
            "the backup).")
        self.salvage_button.clicked.connect(self._on_salvage)
        self.rescue_dialog: RescueDialog | None = None
        self.safety_label = text_label()
        self.undo_button = QPushButton("&Undo this restore")
        self.undo_button.setAutoDefault(False)
        self.undo_button.setToolTip("Restore the safety backup through the same steps.")
        self.undo_button.clicked.connect(self._on_undo)
        for widget in (self.integrity_label, self.carried_label, self.moved_label,
                       self.counters_label, self.seen_label, self.in_flight_label, self.tasks):
            self.layout_.addWidget(widget)
        self.layout_.addLayout(_row(self.requeue_button))
        self.layout_.addLayout(_row(self.salvage_button))
        self.layout_.addWidget(self.safety_label)
        self.layout_.addLayout(_row(self.undo_button))
        self.layout_.addWidget(self.stage_label)
        self.layout_.addWidget(self.bar)
        self.layout_.addStretch(1)

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        """Show the outcome the restore page left."""
        outcome: RestoreOutcome = self.state.outcome
        check, result = outcome.check, outcome.result
        if check.ok:
            self.integrity_label.setText("The restored database passed SQLite's integrity "
                                         f"check and holds {counts_summary(check.counts)}.")
            self.integrity_label.setStyleSheet(GOOD_STYLE)
        else:
            self.integrity_label.setText("The restored database did NOT pass the integrity "
                                         f"check ({'; '.join(check.problems)}); undo this "
                                         "restore or choose another backup.")
            self.integrity_label.setStyleSheet(PROBLEM_STYLE)
        self.moved_label.setVisible(bool(result.moved_aside) or result.damaged_copy is not None)
        if result.damaged_copy is not None:
            self.moved_label.setText("The live database was damaged; the backup was written "
                                     "into it in place, and an unchecked copy of the damaged "
                                     f"file was kept: {result.damaged_copy}")
        else:
            self.moved_label.setText("The damaged files were moved aside, not deleted: "
                                     + ", ".join(str(path) for path in result.moved_aside))
        self.salvage_button.setVisible(damaged_copy_of(result) is not None)
        kept = result.counters_kept.get("task_queue")
        self.counters_label.setVisible(kept is not None or bool(result.counters_problem))
        if result.counters_problem:
            self.counters_label.setText(result.counters_problem[0].upper()
                                        + result.counters_problem[1:] + ".")
            self.counters_label.setStyleSheet(PROBLEM_STYLE)
        else:
            self.counters_label.setText(
                f"New tasks get ids above {kept}, the highest the live database had handed "
                "out, so no task id is used twice." if kept is not None else "")
            self.counters_label.setStyleSheet("")
        if result.counters_repaired:
            self.counters_label.setText(" ".join(
                [self.counters_label.text()] + [sentence[0].upper() + sentence[1:] + "."
                                                for sentence in result.counters_repaired]
            ).strip())
            self.counters_label.setVisible(True)
        if result.created:
            self.moved_label.setText("No database existed at that path; it was created from "
                                     "the backup.")
            self.moved_label.setVisible(True)
        show_carried(self.carried_label, result)
        self.seen_label.setText("Seen before the restore, without holding it: "
                                + "; ".join(result.workers_seen) + ".")
        self.seen_label.setVisible(bool(result.workers_seen))
        self.tasks.clear()
        orphaned, held = self._split_in_flight()
        for task in orphaned:
            self.tasks.addItem(f"Task {task.id} ({task.type}, {task.status} by "
                               f"{task.locked_by or 'an unknown worker'})")
        count = len(orphaned)
        sentences = []
        if count:
            sentences.append(
                f"{count} task{' was' if count == 1 else 's were'} in flight when the backup "
                "was taken, held by workers that showed no sign of life before the "
                "restore; requeue them to run again.")
        if held:
            sentences.append(
                f"{len(held)} more in-flight task{'' if len(held) == 1 else 's'} belong to "
                "workers that were still running before the restore "
                f"({', '.join(sorted({t.locked_by or '' for t in held}))}); they are left "
                "alone: a running worker may still finish them.")
        self.in_flight_label.setText(" ".join(sentences) if sentences else
                                     "No task was in flight in the backup; nothing needs "
                                     "requeueing.")
        self.tasks.setVisible(bool(count))
        self.requeue_button.setVisible(bool(count))
        self.requeue_button.setEnabled(bool(count))
        point = result.safety_point
        not_used = (f" The point-in-time archive was not used as the safety copy: "
                    f"{result.archive_problem}." if result.archive_problem else "")
        if result.safety_problem:
            self.safety_label.setText(f"The safety copy could not be checked "
                                      f"({result.safety_problem}); it is kept unchecked: "
                                      f"{result.damaged_copy}")
        elif point is not None and point.confirmed:
            self.safety_label.setText(f"Safety copy: {point.describe()}. Undo rebuilds the "
                                      "queue at that instant and restores it.")
        elif result.safety_backup is not None:
            self.safety_label.setText(f"Safety backup of the database as it was before: "
                                      f"{result.safety_backup}.{not_used}")
        else:
            self.safety_label.setText("No safety backup was taken, so this restore cannot be "
                                      "undone from here.")
        self.undo_button.setEnabled(result.safety_backup is not None
                                    or (point is not None and point.confirmed is True))
        self.undo_button.setToolTip(
            "Rebuild the queue at the instant the archive holds and restore it through the "
            "same steps." if result.safety_backup is None
            else "Restore the safety backup through the same steps.")
        (self.requeue_button if count else self.wizard().button(
            QWizard.WizardButton.FinishButton)).setFocus()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        """Finish once nothing runs."""
        return not self.busy

    def _split_in_flight(self) -> tuple[list[TaskRef], list[TaskRef]]:
        """In-flight tasks of the backup: those of silent workers, and those of running ones.

        A worker counts as running when the prepare page saw its heartbeat within the last
        minute, or a lease of its with a sign of life, just before the restore; its tasks
        are never offered for requeueing. Tasks kept from after the backup were not in it.
        """
        preflight = self.state.preflight
        running: set[str] = set()
        if preflight is not None:
            running = {worker.worker_id for worker in preflight.active_workers}
            if preflight.signals is not None:
                running |= {lease.worker_id for lease in preflight.signals.live_leases()}
        carried = self.state.outcome.result.carried
        tasks = [task for task in self.state.outcome.check.in_flight
                 if carried is None or task.id <= carried.above_id]  # not in the backup
        return ([task for task in tasks if task.locked_by not in running],
                [task for task in tasks if task.locked_by in running])

    def _on_requeue(self) -> None:
        live = self.state.live_path
        ids = [task.id for task in self._split_in_flight()[0]]
        assert live is not None
        self.requeue_button.setEnabled(False)
        self.run_operation(requeue_restored_tasks(live, ids), self._on_requeued)

    def _on_requeued(self, result: RequeueResult) -> None:
        text = f"Requeued {result.requeued} task{'' if result.requeued == 1 else 's'}"
        if result.dead_lettered:
            text += f"; {result.dead_lettered} ran out of attempts and went to dead letters"
        text += "."
        self.in_flight_label.setText(text)
        self.in_flight_label.setStyleSheet(GOOD_STYLE)
        self.tasks.clear()
        self.tasks.hide()
        self.requeue_button.hide()
        self.session.messages.info(text)

    def on_job_error(self, error: BaseException) -> None:
        """Let the admin try the requeue again."""
        super().on_job_error(error)
        self.requeue_button.setEnabled(True)

    def _on_salvage(self) -> None:
        copy = damaged_copy_of(self.state.outcome.result)
        if copy is not None:
            self.rescue_dialog = open_rescue_dialog(
                self.session, copy, self.window(), damaged=True,
                past_label=f"the damaged copy {copy.name}")

    def _on_undo(self) -> None:
        wizard = self.wizard()
        if isinstance(wizard, RestoreWizard):
            wizard.undo()


def damaged_copy_of(result: RestoreReport) -> Path | None:
    """The damaged file a restore kept (copied, or moved aside whole), if it still exists."""
    candidates = [result.damaged_copy, *result.moved_aside[:1]]
    return next((Path(path) for path in candidates
                 if path is not None and Path(path).is_file()), None)


class RestoreWizard(QWizard):
    """Restore the queue database from a backup, step by step, with nothing lost by accident."""

    def __init__(self, session: Session, backup_path: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.state = RestoreState(session.db_path, session.backup_dir)
        self._close_when_idle = False
        self.setWindowTitle("Restore the queue database")
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.choose_page = ChoosePage(session, self.state)
        self.check_page = CheckPage(session, self.state)
        self.prepare_page = PreparePage(session, self.state)
        self.restore_page = RestorePage(session, self.state)
        self.done_page = DonePage(session, self.state)
        self.job_pages: list[JobPage] = [self.choose_page, self.check_page, self.prepare_page,
                                         self.restore_page, self.done_page]
        for page_id, page in enumerate(self.job_pages):
            self.setPage(page_id, page)
        self._normal_layout = [QWizard.WizardButton.Stretch, QWizard.WizardButton.BackButton,
                               QWizard.WizardButton.NextButton,
                               QWizard.WizardButton.CommitButton,
                               QWizard.WizardButton.FinishButton,
                               QWizard.WizardButton.CancelButton]
        self.setButtonLayout(self._normal_layout)
        self.currentIdChanged.connect(self._on_page_changed)
        self.resize(960, 640)
        if backup_path is not None:
            self.choose_path(backup_path)

    def choose_path(self, path: str | Path) -> None:
        """Choose the backup to restore, as if picked on the first page."""
        self.choose_page.choose_path(path)

    @property
    def busy(self) -> bool:
        """True while any page's job runs."""
        return any(page.busy for page in self.job_pages)

    def undo(self) -> None:
        """Restore the safety copy just kept, through the same pages and checks.

        A safety backup is chosen as the backup to restore; with the archive as the safety
        copy, the queue is rebuilt at its instant first (the first page goes on by itself).
        """
        outcome = self.state.outcome
        if outcome is None or self.busy:
            return
        safety, point = outcome.result.safety_backup, outcome.result.safety_point
        if safety is not None:
            self.restart()
            self.choose_path(safety)
            self.next()
        elif point is not None and point.confirmed:
            self.restart()
            self.choose_page.point_picker.rebuild_instant(point.at, point.archive)

    def reject(self) -> None:
        """Cancel: stop a running job first (the restore only while that changes nothing)."""
        if self.restore_page.busy:
            self.restore_page.request_cancel()
            return
        if self.busy:
            for page in self.job_pages:
                page.cancel_job()
            self._close_when_idle = True
            return
        super().reject()

    def on_job_finished(self) -> None:
        """A page's job ended: close if the user asked to, and put the buttons back."""
        self._update_buttons()
        if self._close_when_idle and not self.busy:
            self._close_when_idle = False
            super().reject()

    def _on_page_changed(self, page_id: int) -> None:
        self.setOption(QWizard.WizardOption.NoDefaultButton,
                       page_id in (PAGE_PREPARE, PAGE_RESTORE))
        self._update_buttons()

    def _update_buttons(self) -> None:
        if self.currentId() == PAGE_RESTORE and self.restore_page.busy:
            self.setButtonLayout([QWizard.WizardButton.Stretch,
                                  QWizard.WizardButton.CancelButton])
        else:
            self.setButtonLayout(self._normal_layout)


def _row(button: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(button)
    row.addStretch(1)
    return row
