"""Page 3 of the restore wizard: what could get in the way, and the safety backup.

Workers at work (every signal the restore's gate reads: programs holding the file, commits,
leases, heartbeats), another program's lock, free space on the drives, and the safety backup
of the current database (on by default; turning it off asks twice). While workers are at
work the page says what it is waiting for, checks again every few seconds with a countdown,
and enables Restore as soon as nothing is seen.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QPushButton, QWizard

from ..app.jobs import Job, mark_background
from ..app.session import Session
from ..core.errors import drive_label, format_bytes
from ..core.measurements.holders import HolderLookup, find_holders
from ..core.restore.gate import WorkerSignals, read_worker_signals
from ..core.restore.keep import safety_folder
from ..core.restore.preflight import Preflight, preflight
from ..core.restore.writing import TargetState
from .restore_pages import PROBLEM_STYLE, JobPage, RestoreState, text_label


def damage_in_brief(problem: str) -> str:
    """SQLite's damage report as one clause: its first finding and how many more follow.

    An integrity check answers with a heading and up to a screenful of lines; the page says
    the first and counts the rest (the Optimization tab lists them all).
    """
    findings = [line.strip() for line in problem.splitlines()
                if line.strip() and not line.strip().startswith("***")]
    if not findings:
        return problem.strip()
    more = len(findings) - 1
    if not more:
        return findings[0]
    return f"{findings[0]}, and {more} more finding{'s' if more > 1 else ''}"

#: Seconds between two looks at the workers while they are at work.
RECHECK_SECONDS = 3


class PreparePage(JobPage):
    """Page 3: what could get in the way, and the safety backup."""

    def __init__(self, session: Session, state: RestoreState) -> None:
        super().__init__(session, state, "Prepare the restore",
                         "Shows what could get in the way (running workers, programs holding "
                         "the database, free space) and sets up the safety backup.")
        self.live_label = text_label()
        self.workers_label = text_label()
        #: "Checking again in 2 s...": shown while the page waits for workers to stop.
        self.countdown_label = text_label()
        self.countdown_label.hide()
        self.lock_label = text_label()
        #: Which programs have the live database, its -wal or its -shm open.
        self.holders_label = text_label("Looking up which programs have the database open...")
        self.space_label = text_label()
        self.safety_check = QCheckBox("Take a &safety backup of the current database first")
        self.safety_check.setChecked(True)
        self.safety_check.toggled.connect(self._on_safety_toggled)
        self.safety_label = text_label(f"Saved in: {safety_folder(state.backup_dir)}")
        self.workers_check = QCheckBox("Restore &while these workers keep running")
        self.workers_check.setToolTip("They would keep working on tasks the restore puts "
                                      "back, and may run them twice.")
        self.workers_check.hide()
        self.workers_check.toggled.connect(self._on_workers_toggled)
        self.recheck_button = QPushButton("Check &again")
        self.recheck_button.setAutoDefault(False)
        self.recheck_button.clicked.connect(self._run_preflight)
        self.gate_job: Job | None = None
        self.seconds_to_recheck = 0
        self.recheck_timer = QTimer(self)
        self.recheck_timer.setInterval(1000)
        self.recheck_timer.timeout.connect(self._tick)
        for widget in (self.stage_label, self.bar, self.live_label, self.workers_label,
                       self.countdown_label, self.workers_check, self.lock_label,
                       self.holders_label,
                       self.space_label,
                       self.safety_check, self.safety_label):
            self.layout_.addWidget(widget)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.recheck_button)
        self.layout_.addLayout(row)
        self.layout_.addStretch(1)
        self.setButtonText(QWizard.WizardButton.NextButton, "&Restore")

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        """Run the preflight on a job."""
        self.state.preflight = None
        self.state.safety_backup = True
        self.safety_check.blockSignals(True)
        self.safety_check.setChecked(True)
        self.safety_check.blockSignals(False)
        self.state.archive_safety = None
        self.safety_label.setText(self._safety_text())
        self._set_workers_accepted(False)
        self._run_preflight()
        self.safety_check.setFocus()

    def cleanupPage(self) -> None:  # noqa: N802 - Qt override
        """Going back stops the re-checks."""
        self._stop_rechecks()
        super().cleanupPage()

    def _run_preflight(self) -> None:
        live, folder, backup = self.state.live_path, self.state.backup_dir, self.state.backup_path
        archive = self.session.archive_dir
        assert live is not None
        self._stop_rechecks()
        self._look_up_holders()
        self.run_job("Prepare the restore",
                     lambda progress, cancelled: preflight(live, folder, backup, progress,
                                                           cancelled, archive_safety=archive),
                     self._on_prepared)

    def _look_up_holders(self, background: bool = False) -> None:
        """Name the programs holding the live database, in a read job beside the preflight.

        ``background`` keeps the periodic re-checks out of the activity log.
        """
        live = self.state.live_path
        assert live is not None
        self.holders_label.setText("Looking up which programs have the database open...")
        self.holders_label.setStyleSheet("")
        self.holders_job = self.session.run(
            "Find programs holding the database", lambda progress, cancelled:
            find_holders(live), parameters={"database": str(live)}, report_errors=False,
            on_done=self._on_holders_found,
            on_error=lambda error: self.holders_label.setText(
                f"Could not tell which programs have the database open: {error}"))
        if background:
            mark_background(self.holders_job)

    def _on_holders_found(self, lookup: HolderLookup) -> None:
        self.holders_label.setText(lookup.sentence())
        self.holders_label.setStyleSheet(PROBLEM_STYLE if lookup.holders else "")

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        """Ready once checked and the disks have room."""
        result = self.state.preflight
        return (not self.busy and result is not None
                and result.space_problem(self._safety_possible() and self.state.safety_backup)
                is None and self._workers_settled(result))

    def _workers_settled(self, result: Preflight) -> bool:
        """No worker is at work, or the admin accepted every one seen, by name."""
        return result.signals is None or result.signals.accepted_by(self.state.accepted_workers)

    def _show_workers(self, signals: WorkerSignals | None) -> None:
        """What the gate sees; while it blocks, what the page waits for and a countdown."""
        blocking = signals is not None and signals.blocking
        accepted = signals is not None and signals.accepted_by(self.state.accepted_workers)
        if signals is None:
            self.workers_label.setText("No database at that path, so no worker can be at work "
                                       "on it.")
        elif blocking:
            self.workers_label.setText(
                f"Waiting for the workers to stop: {'; '.join(signals.reasons())}. They would "
                "keep working on tasks the restore puts back and may run them twice. Restore "
                "is enabled as soon as none of this is seen, or confirm below that they may "
                "keep running.")
        else:
            self.workers_label.setText(signals.sentence())
        self.workers_label.setStyleSheet(PROBLEM_STYLE if blocking and not accepted else "")
        self.workers_check.setVisible(blocking)
        if blocking and not accepted:
            if not self.recheck_timer.isActive() and not self._gate_busy():
                self.seconds_to_recheck = RECHECK_SECONDS
                self.recheck_timer.start()
            self._show_countdown()
        else:
            self._stop_rechecks()

    def _show_countdown(self) -> None:
        if self._gate_busy():
            text = "Checking again now..."
        else:
            text = f"Checking again in {self.seconds_to_recheck} s..."
        self.countdown_label.setText(text)
        self.countdown_label.show()

    def _tick(self) -> None:
        """One second of the countdown; at zero, look at the workers again (a read job)."""
        if self._gate_busy():
            return
        self.seconds_to_recheck -= 1
        if self.seconds_to_recheck > 0:
            self._show_countdown()
            return
        self.recheck_timer.stop()
        live, folder = self.state.live_path, self.state.backup_dir
        assert live is not None
        self.gate_job = mark_background(self.session.run(
            "Check for workers at work", lambda progress, cancelled: read_worker_signals(
                live, archive_dirs=[folder / "archive", folder / "wal-archive"],
                cancelled=cancelled),
            parameters={"database": str(live)}, report_errors=False,
            on_done=self._on_rechecked, on_error=self._on_recheck_failed))
        self._show_countdown()
        self._look_up_holders(background=True)

    def _gate_busy(self) -> bool:
        return self.gate_job is not None and not self.gate_job.is_finished

    def _on_rechecked(self, signals: WorkerSignals) -> None:
        self.gate_job = None
        result = self.state.preflight
        if result is None:
            return
        result.signals = signals
        self._show_workers(signals)
        self.completeChanged.emit()

    def _on_recheck_failed(self, error: BaseException) -> None:
        self.gate_job = None
        self.workers_label.setText(f"Whether workers are at work could not be read: {error}")
        self.workers_label.setStyleSheet(PROBLEM_STYLE)
        self.seconds_to_recheck = RECHECK_SECONDS
        self.recheck_timer.start()

    def _stop_rechecks(self) -> None:
        self.recheck_timer.stop()
        self.countdown_label.hide()

    def _safety_possible(self) -> bool:
        result = self.state.preflight
        return result is None or result.live.state in (TargetState.HEALTHY,
                                                       TargetState.DAMAGED)

    def _safety_text(self) -> str:
        """Where the safety copy will be: the running archive, or a backup in its folder."""
        folder = safety_folder(self.state.backup_dir)
        if self.state.archive_safety is None:
            return f"Saved in: {folder}"
        return (f"The point-in-time archive in {self.state.archive_safety} is following this "
                "database now, so it is the safety copy: while workers are held off its "
                "archiver proves that it holds every commit, and it is checked in full before "
                "the restore commits; Undo rebuilds the queue from it. Nothing is copied while "
                f"workers wait. If it cannot prove it, a safety backup is saved in: {folder}")

    def _on_prepared(self, result: Preflight) -> None:
        self.state.preflight = result
        self.state.archive_safety = result.archive_safety
        live = result.live
        problem = damage_in_brief(live.problem or "")
        texts = {
            TargetState.HEALTHY: ("The live database is healthy.", ""),
            TargetState.MISSING: ("The live database does not exist; the backup will be "
                                  "restored to its path.", ""),
            TargetState.EMPTY: ("The live database is an empty file; the backup will be "
                                "written into it.", ""),
            TargetState.CORRUPT: (f"The live database cannot be opened ({problem}); it "
                                  "will be moved aside with its -wal and -shm files (never "
                                  "deleted) and the backup restored to its path.",
                                  PROBLEM_STYLE),
            TargetState.DAMAGED: (f"The live database is damaged ({problem}); the backup "
                                  "will be written into it in one transaction, so workers "
                                  "that have it open go on with the restored queue.",
                                  PROBLEM_STYLE),
            TargetState.NOT_A_QUEUE: (f"The live file is not a queue database ({live.problem}); "
                                      "a queue whose schema is broken is moved aside (never "
                                      "deleted) and the backup restored to its path; a file "
                                      "with none of the queue's tables is refused.",
                                      PROBLEM_STYLE),
        }
        text, style = texts[live.state]
        self.live_label.setText(f"{text} ({live.path})")
        self.live_label.setStyleSheet(style)
        self._set_workers_accepted(bool(self.state.accepted_workers)
                                   and self._workers_settled(result))
        self._show_workers(result.signals)
        if result.blocked:
            self.lock_label.setText(f"Right now {result.blocked_reason}; the restore will wait "
                                    f"up to {int(self.state.lock_wait_seconds)} seconds for it "
                                    "to let go, and change nothing if it does not.")
            self.lock_label.setStyleSheet(PROBLEM_STYLE)
        else:
            self.lock_label.setText("No other program blocks writing to the database.")
            self.lock_label.setStyleSheet("")
        possible = self._safety_possible()
        self.safety_check.setEnabled(possible)
        if self.state.safety_backup:
            self.safety_label.setText(self._safety_text())
        if not possible:
            self.safety_label.setText("No safety backup can be taken of a database that is "
                                      "missing or cannot be opened; such a file is moved "
                                      "aside instead.")
        elif result.live.state is TargetState.DAMAGED:
            self.safety_label.setText("A damaged database cannot pass a backup's check: an "
                                      "unchecked page copy of it is kept instead, in "
                                      f"{safety_folder(self.state.backup_dir)}.")
        self._show_space()

    def _show_space(self) -> None:
        result = self.state.preflight
        if result is None:
            return
        safety = self._safety_possible() and self.state.safety_backup
        problem = result.space_problem(safety)
        if problem is not None:
            self.space_label.setText(problem)
            self.space_label.setStyleSheet(PROBLEM_STYLE)
        else:
            self.space_label.setText("Free space: " + "; ".join(
                f"{format_bytes(need.free_bytes)} on {drive_label(need.folder)} "
                f"(needs {format_bytes(need.needed_bytes)})"
                for need in result.space_needs(safety)))
            self.space_label.setStyleSheet("")
        self.completeChanged.emit()

    def _on_workers_toggled(self, checked: bool) -> None:
        result = self.state.preflight
        if not checked or result is None:
            self._set_workers_accepted(False)
            if result is not None:
                self._show_workers(result.signals)
            return
        signals = result.signals
        seen = "; ".join(signals.reasons()) if signals is not None else ""
        accepted = self.session.messages.confirm(
            "Restore while workers are running?",
            f"Workers are at work on the queue: {seen}. They will keep working during and "
            "after the restore, on tasks the restore puts back, and may run some of them "
            "twice. Stopping them first is safer.",
            confirm_label="Restore while they run", destructive=True)
        self.state.accepted_workers = (signals.identities() if accepted and signals is not None
                                       else frozenset())
        self._set_workers_accepted(accepted)
        self._show_workers(signals)

    def _set_workers_accepted(self, accepted: bool) -> None:
        if not accepted:
            self.state.accepted_workers = frozenset()
        self.workers_check.blockSignals(True)
        self.workers_check.setChecked(accepted)
        self.workers_check.blockSignals(False)
        self.completeChanged.emit()

    def _on_safety_toggled(self, checked: bool) -> None:
        if not checked and not self.session.messages.confirm(
                "Restore without a safety backup?",
                "Without a safety backup this restore cannot be undone: everything in the "
                "current database that is not in the backup is lost for good.",
                confirm_label="Restore without a safety backup", destructive=True):
            self.safety_check.blockSignals(True)
            self.safety_check.setChecked(True)
            self.safety_check.blockSignals(False)
            checked = True
        self.state.safety_backup = checked
        self.safety_label.setText(self._safety_text() if checked
                                  else "No safety backup will be taken.")
        self._show_space()
