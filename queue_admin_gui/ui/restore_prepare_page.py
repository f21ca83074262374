"""Page 3 of the restore wizard: what could get in the way, and the safety backup.

Running workers, another program holding the database, free space on the drives, and the
safety backup of the current database (on by default; turning it off asks twice).
"""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QPushButton, QWizard

from ..core.errors import drive_label, format_bytes
from ..core.restore import TargetState
from ..core.restore_plan import Preflight, preflight
from ..session import Session
from .restore_pages import PROBLEM_STYLE, JobPage, RestoreState, text_label


class PreparePage(JobPage):
    """Page 3: what could get in the way, and the safety backup."""

    def __init__(self, session: Session, state: RestoreState) -> None:
        super().__init__(session, state, "Prepare the restore",
                         "Shows what could get in the way (running workers, programs holding "
                         "the database, free space) and sets up the safety backup.")
        self.live_label = text_label()
        self.workers_label = text_label()
        self.lock_label = text_label()
        self.space_label = text_label()
        self.safety_check = QCheckBox("Take a &safety backup of the current database first")
        self.safety_check.setChecked(True)
        self.safety_check.toggled.connect(self._on_safety_toggled)
        self.safety_label = text_label(f"Saved in: {state.backup_dir}")
        self.recheck_button = QPushButton("Check &again")
        self.recheck_button.setAutoDefault(False)
        self.recheck_button.clicked.connect(self._run_preflight)
        for widget in (self.stage_label, self.bar, self.live_label, self.workers_label,
                       self.lock_label, self.space_label, self.safety_check, self.safety_label):
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
        self.safety_label.setText(f"Saved in: {self.state.backup_dir}")
        self._run_preflight()
        self.safety_check.setFocus()

    def _run_preflight(self) -> None:
        live, folder, backup = self.state.live_path, self.state.backup_dir, self.state.backup_path
        assert live is not None
        self.run_job("Prepare the restore",
                     lambda progress, cancelled: preflight(live, folder, backup, progress,
                                                           cancelled),
                     self._on_prepared)

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        """Ready once checked and the disks have room."""
        result = self.state.preflight
        return (not self.busy and result is not None
                and result.space_problem(self._safety_possible() and self.state.safety_backup)
                is None)

    def _safety_possible(self) -> bool:
        result = self.state.preflight
        return result is None or result.live.ok

    def _on_prepared(self, result: Preflight) -> None:
        self.state.preflight = result
        live = result.live
        texts = {
            TargetState.HEALTHY: ("The live database is healthy.", ""),
            TargetState.MISSING: ("The live database does not exist; the backup will be "
                                  "restored to its path.", ""),
            TargetState.EMPTY: ("The live database is an empty file; the backup will be "
                                "written into it.", ""),
            TargetState.CORRUPT: (f"The live database is damaged ({live.problem}); it will be "
                                  "moved aside with its -wal and -shm files (never deleted) "
                                  "and the backup restored to its path.", PROBLEM_STYLE),
            TargetState.NOT_A_QUEUE: (f"The live file is not a queue database ({live.problem}); "
                                      "the restore will refuse it.", PROBLEM_STYLE),
        }
        text, style = texts[live.state]
        self.live_label.setText(f"{text} ({live.path})")
        self.live_label.setStyleSheet(style)
        if result.active_workers:
            names = ", ".join(f"{w.worker_id} ({int(w.heartbeat_age_seconds)} s ago)"
                              for w in result.active_workers)
            self.workers_label.setText(f"Workers active in the last minute: {names}. Stop them "
                                       "before restoring: they would keep working on tasks "
                                       "the restore puts back.")
            self.workers_label.setStyleSheet(PROBLEM_STYLE)
        else:
            self.workers_label.setText("No worker has reported in the last minute.")
            self.workers_label.setStyleSheet("")
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
        if not possible:
            self.safety_label.setText("No safety backup can be taken of a missing or damaged "
                                      "database; a damaged file is moved aside instead.")
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
        self.safety_label.setText(f"Saved in: {self.state.backup_dir}" if checked
                                  else "No safety backup will be taken.")
        self._show_space()

