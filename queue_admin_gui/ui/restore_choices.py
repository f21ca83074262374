"""The restore wizard's two ways to keep newer work, on its consequences page.

- **Keep the tasks created after this point**: a full restore that carries the live tasks
  created after the chosen past state (ids above its id counter) into the restored queue,
  with their ids and logs (:mod:`..core.restore.carry`).
- **Put back the damaged tasks only**: instead of a full restore, the Rescue window on the
  same past state (the chosen backup, or the file the chosen instant was rebuilt into), so
  the administrator picks the damaged tasks there and the rest of the queue stays as it is.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..app.session import Session
from ..core.errors import QueueAdminError
from ..core.restore.carry import NewerTasks, count_newer_tasks
from ..core.restore.keep import RestoreReport
from ..core.restore.plan import RestoreComparison
from ..core.restore.writing import TargetState
from .rescue_dialog import RescueDialog, open_rescue_dialog
from .widgets import BAD_COLOUR, explanation

KEEP_NEWER_TEXT = "&Keep the tasks created after this point"
DAMAGED_ONLY_TEXT = "Put back the &damaged tasks only..."
PROBLEM_COLOUR_STYLE = f"color: {BAD_COLOUR}; font-weight: bold;"


def newer_tasks(past: Path, live: Path, comparison: RestoreComparison) -> NewerTasks | None:
    """The live tasks a restore of ``past`` would drop; None when the live file is unusable.

    Runs on the check page's job, after the comparison (it only reads).
    """
    if comparison.live.state is not TargetState.HEALTHY:
        return None
    with contextlib.suppress(QueueAdminError):
        return count_newer_tasks(past, live)
    return None


def consequence_sentences(comparison: RestoreComparison, newer: NewerTasks | None,
                          keep: bool) -> list[str]:
    """The consequences page's sentences, with the newer tasks kept when ``keep`` is ticked."""
    sentences = comparison.consequences()
    if not keep or newer is None or comparison.live.state is not TargetState.HEALTHY:
        return sentences
    other = comparison.lost_after_backup - newer.count
    first = (f"{_tasks(newer.count)} created after this backup (ids above {newer.above_id}) "
             "will be kept, with their ids and logs")
    if other > 0:
        first += f"; {_tasks(other)} not in this backup with lower ids will be lost"
    sentences[0] = (f"{first}; {_tasks(comparison.rerun_after_backup)} completed after it "
                    "will run again.")
    return sentences


class RestoreChoices(QWidget):
    """The check box and the button under the consequences; they follow the check's result."""

    #: The "keep newer tasks" box was ticked or cleared.
    changed = Signal()
    #: The Rescue window closed after putting tasks back: the comparison is out of date.
    rescued = Signal()

    def __init__(self, session: Session, consequences: QLabel,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.consequences = consequences
        self.comparison: RestoreComparison | None = None
        self.newer: NewerTasks | None = None
        self.past: Path | None = None
        self.past_label = ""
        #: The Rescue window this page opened last (tests and the wizard read it).
        self.rescue_dialog: RescueDialog | None = None
        self.keep_box = QCheckBox(KEEP_NEWER_TEXT)
        self.keep_box.setToolTip("Carry the tasks the live queue got after this point into the "
                                 "restored queue, with their ids, rows and logs, in the same "
                                 "transaction as the restore.")
        self.keep_box.toggled.connect(self._on_toggled)
        self.rescue_button = QPushButton(DAMAGED_ONLY_TEXT)
        self.rescue_button.setAutoDefault(False)
        self.rescue_button.setToolTip("Instead of a full restore: compare the live queue with "
                                      "this point and put back only the tasks you pick.")
        self.rescue_button.clicked.connect(self.open_rescue)
        self.note = explanation("Or, instead of a full restore, put back only the damaged "
                                "tasks from this point; the rest of the queue, with the work "
                                "done since, stays as it is.")
        row = QHBoxLayout()
        row.addWidget(self.rescue_button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.keep_box)
        layout.addWidget(self.note)
        layout.addLayout(row)
        self.reset()

    @property
    def keep_newer(self) -> bool:
        """True when the box is ticked and there are newer tasks to keep."""
        return not self.keep_box.isHidden() and self.keep_box.isChecked()

    def reset(self) -> None:
        """Before a check: nothing known yet, the box cleared and both hidden."""
        self.comparison = self.newer = None
        self.keep_box.blockSignals(True)
        self.keep_box.setChecked(False)
        self.keep_box.blockSignals(False)
        self.setVisible(False)

    def show_for(self, comparison: RestoreComparison, newer: NewerTasks | None, past: Path,
                 past_label: str) -> None:
        """Show the choices for a checked past state and write the consequences."""
        self.comparison, self.newer, self.past, self.past_label = (comparison, newer, past,
                                                                   past_label)
        healthy = comparison.live.state is TargetState.HEALTHY
        self.setVisible(healthy)
        self.keep_box.setVisible(newer is not None and newer.count > 0)
        if newer is not None:
            self.keep_box.setText(f"&Keep the {_tasks(newer.count)} created after this point")
        self.rescue_button.setEnabled(healthy)
        self._write_consequences()

    def open_rescue(self) -> RescueDialog | None:
        """Open the Rescue window on the same past state as the wizard's."""
        if self.past is None or self.session.db_path is None:
            return None
        dialog = open_rescue_dialog(self.session, self.past, self.window(),
                                    past_label=self.past_label)
        dialog.finished.connect(lambda _code: self._on_rescue_closed(dialog))
        self.rescue_dialog = dialog
        return dialog

    def _on_rescue_closed(self, dialog: RescueDialog) -> None:
        if dialog.rescue_job is not None:
            self.rescued.emit()

    def _on_toggled(self, _checked: bool) -> None:
        self._write_consequences()
        self.changed.emit()

    def _write_consequences(self) -> None:
        if self.comparison is not None:
            self.consequences.setText("\n".join(consequence_sentences(
                self.comparison, self.newer, self.keep_newer)))


def _tasks(count: int) -> str:
    return f"{count:,} task" if count == 1 else f"{count:,} tasks"


def show_carried(label: QLabel, result: RestoreReport) -> None:
    """The done page's line on the tasks kept from after the backup (hidden when not asked)."""
    carried, problem = result.carried, result.carry_problem
    label.setVisible(carried is not None or problem is not None)
    if problem is not None:
        label.setText(problem[0].upper() + problem[1:] + ".")
        label.setStyleSheet(PROBLEM_COLOUR_STYLE)
    elif carried is not None:
        text = carried.sentence()
        label.setText(text[0].upper() + text[1:] + ".")
        label.setStyleSheet(PROBLEM_COLOUR_STYLE if carried.conflicts else "")
