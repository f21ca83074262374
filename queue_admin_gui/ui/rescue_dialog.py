"""The Rescue window: what changed since a past state, and putting chosen tasks back.

Opened from the Backups tab on the selected backup, or from the restore wizard's last page
on the damaged copy a restore kept (its readable rows are the past state). It compares the
live queue with that past state (a read job), shows the differences as a tree, type ->
status change, with counts and check boxes, previews what a rescue of the ticked groups
would put back and skip (a dry run), and runs the rescue itself as a write operation on a
worker thread. Workers keep running throughout; tasks created after the past state are
shown but can never be ticked.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..app.jobs import Job
from ..app.operations import diff_with_backup, rescue_from_backup
from ..app.session import Session
from ..core.rescue import DiffGroup, QueueDiff, RescueReport, RescueSelection
from .icons import icon
from .widgets import BAD_COLOUR, GOOD_COLOUR, explanation, set_status, status_label

BACKUP_INTRO = (
    "Compares the live queue with this backup, task by task. Tick the groups to put back as "
    "they were in the backup: removed tasks return with their ids and logs, changed tasks "
    "get their backup row. Completed work and new tasks stay; a task a worker holds now is "
    "never touched. Workers can keep running.")
DAMAGED_INTRO = (
    "Compares the live queue with the rows still readable in the damaged file, task by task. "
    "Tick the groups to take from it: tasks the live queue lacks (created after the backup "
    "it was restored from) come back with their ids and logs, tasks whose newer state the "
    "damaged file holds get it back. A task whose row could not be read keeps its live "
    "state; a task a worker holds now is never touched. Workers can keep running.")
#: Skipped tasks listed one by one in the report box before the rest are counted.
LISTED_SKIPS = 50
_GROUP_ROLE = Qt.ItemDataRole.UserRole


class RescueDialog(QDialog):
    """Diff tree with check boxes, a preview, and Rescue; one job at a time."""

    def __init__(self, session: Session, backup: Path, parent: QWidget | None = None, *,
                 past_label: str = "", damaged: bool = False) -> None:
        super().__init__(parent)
        self.session = session
        self.backup = Path(backup)
        #: The past state is a damaged queue file: its readable rows are compared.
        self.damaged = damaged
        self.diff: QueueDiff | None = None
        self.job: Job | None = None
        self.last_report: RescueReport | None = None
        #: The job of the last rescue that went through (the activity log reads it).
        self.rescue_job: Job | None = None
        #: What the past state is, for the title: the backup's name unless told otherwise.
        self.past_label = past_label or self.backup.name
        self.setWindowTitle(f"Rescue tasks from {self.past_label}")
        self.resize(900, 640)
        intro = explanation(DAMAGED_INTRO if damaged else BACKUP_INTRO)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Difference from the damaged file" if damaged
                                   else "Change since the backup", "Tasks"])
        self.tree.setColumnWidth(0, 520)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.summary_label = QLabel("Comparing...", self)
        # A long summary wraps instead of widening the window past a 1024-pixel screen.
        self.summary_label.setWordWrap(True)
        self.preview_button = QPushButton(icon("verify"), "Preview", self)
        self.preview_button.setToolTip("Show what a rescue of the ticked groups would put back "
                                       "and skip; nothing is changed.")
        self.preview_button.clicked.connect(self.preview)
        self.rescue_button = QPushButton(icon("restore"), "Rescue...", self)
        self.rescue_button.setToolTip("Put the ticked tasks back (asks first); a safety backup "
                                      "is taken before anything changes.")
        self.rescue_button.clicked.connect(self.rescue)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.close)
        self.report_box = QPlainTextEdit(self)
        self.report_box.setReadOnly(True)
        self.report_box.setMaximumHeight(160)
        self.status = status_label()
        buttons = QHBoxLayout()
        buttons.addWidget(self.summary_label, 1)
        for button in (self.preview_button, self.rescue_button, self.close_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.report_box)
        layout.addWidget(self.status)
        self._update_buttons()
        self.compare()

    # -- state ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while a diff, a preview or a rescue runs."""
        return self.job is not None and not self.job.is_finished

    def checked_groups(self) -> list[DiffGroup]:
        """The ticked groups (removed or changed tasks only)."""
        groups = []
        for top in range(self.tree.topLevelItemCount()):
            type_item = self.tree.topLevelItem(top)
            for row in range(type_item.childCount()):
                item = type_item.child(row)
                group = item.data(0, _GROUP_ROLE)
                if isinstance(group, DiffGroup) and group.kind != "added" and \
                        item.checkState(0) == Qt.CheckState.Checked:
                    groups.append(group)
        return groups

    def selection(self) -> RescueSelection | None:
        """The ticked tasks as a selection by id; None when nothing is ticked."""
        ids = frozenset(task_id for group in self.checked_groups() for task_id in group.ids)
        return RescueSelection(ids=ids) if ids else None

    def check_group(self, task_type: str, kind: str, status_change: str) -> bool:
        """Tick one group (what a click on its box does); False when there is none."""
        for top in range(self.tree.topLevelItemCount()):
            type_item = self.tree.topLevelItem(top)
            for row in range(type_item.childCount()):
                item = type_item.child(row)
                group = item.data(0, _GROUP_ROLE)
                if isinstance(group, DiffGroup) and (group.type, group.kind,
                                                     group.status_change) == \
                        (task_type, kind, status_change):
                    if not item.flags() & Qt.ItemFlag.ItemIsUserCheckable:
                        return False  # tasks added since: no box to tick
                    item.setCheckState(0, Qt.CheckState.Checked)
                    return True
        return False

    # -- actions ----------------------------------------------------------------------------

    def compare(self) -> None:
        """Run the diff against the backup (the backup is verified first)."""
        live = self.session.db_path
        if live is None:
            self.summary_label.setText("No database is open.")
            return
        self.summary_label.setText("Reading the damaged file and comparing..." if self.damaged
                                   else "Verifying the backup and comparing...")
        self._run(diff_with_backup(live, self.backup, damaged=self.damaged), self._on_diff)

    def preview(self) -> None:
        """Run the rescue of the ticked groups as a dry run."""
        selection = self.selection()
        live = self.session.db_path
        if selection is None or live is None:
            return
        self._tell("Working out what the rescue would do...")
        self._run(rescue_from_backup(live, self.session.backup_dir, self.backup, selection,
                                     dry_run=True, damaged=self.damaged), self._on_previewed)

    def rescue(self) -> None:
        """Ask, then put the ticked tasks back as a write operation."""
        selection = self.selection()
        live = self.session.db_path
        if selection is None or live is None:
            return
        count = len(selection.ids or ())
        confirmed = self.session.messages.confirm(
            "Rescue tasks",
            f"Put {count} task(s) back as they were in {self.past_label}? The queue as it "
            "is now is kept first (by the point-in-time archive when it is running, else by "
            "a safety backup) and an undo file is written; tasks a worker holds now are left "
            "alone. Workers can keep running.", confirm_label=f"Rescue {count} task(s)")
        if not confirmed:
            return
        self._tell("Rescuing...")
        operation = rescue_from_backup(live, self.session.backup_dir, self.backup, selection,
                                       dry_run=False, archive=self.session.archive_dir,
                                       damaged=self.damaged)
        job = self._run(operation, lambda report: self._on_rescued(job, report))

    # -- slots ------------------------------------------------------------------------------

    def _run(self, operation: object, on_success: object) -> Job:
        self.job = self.session.run_operation(
            operation, on_success=on_success,  # type: ignore[arg-type]
            on_error=lambda error: self._tell(str(error), good=False))
        self.job.finished.connect(self._update_buttons)
        self._update_buttons()
        return self.job

    def _on_diff(self, diff: QueueDiff) -> None:
        self.diff = diff
        self.tree.blockSignals(True)
        self.tree.clear()
        for task_type, counts in diff.by_type.items():
            type_item = QTreeWidgetItem(self.tree, [task_type, _counts_text(counts)])
            type_item.setFlags(type_item.flags() | Qt.ItemFlag.ItemIsUserCheckable
                               | Qt.ItemFlag.ItemIsAutoTristate)
            type_item.setCheckState(0, Qt.CheckState.Unchecked)
            for group in (group for group in diff.groups if group.type == task_type):
                item = QTreeWidgetItem(type_item, [f"{group.kind}: {group.status_change}",
                                                   f"{group.count:,}"])
                item.setData(0, _GROUP_ROLE, group)
                item.setToolTip(0, "Ids: " + ", ".join(map(str, group.ids[:20]))
                                + (" ..." if group.count > 20 else ""))
                if group.kind == "added":
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsUserCheckable
                                  & ~Qt.ItemFlag.ItemIsEnabled)
                    item.setToolTip(0, "Not in the readable rows of the damaged file: a "
                                       "rescue never touches it." if self.damaged else
                                    "Created after the backup: a rescue never touches it.")
                else:
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(0, Qt.CheckState.Unchecked)
        self.tree.expandAll()
        self.tree.blockSignals(False)
        head = (f"Against the damaged file: {diff.removed:,} missing here, "
                f"{diff.changed:,} different, {diff.added:,} only here; "
                f"{diff.unreadable_ids:,} row(s) of it could not be read" if self.damaged
                else f"Since the backup: {diff.removed:,} removed, {diff.changed:,} changed, "
                     f"{diff.added:,} added")
        self.summary_label.setText(
            head + (f"; {diff.held_now:,} held by a worker now" if diff.held_now else "")
            + ". Tick what to put back.")
        self._update_buttons()

    def _on_item_changed(self, _item: QTreeWidgetItem, _column: int) -> None:
        if self.diff is None:
            return
        groups = self.checked_groups()
        removed = sum(group.count for group in groups if group.kind == "removed")
        changed = sum(group.count for group in groups if group.kind == "changed")
        self.summary_label.setText(f"Ticked: {removed:,} removed and {changed:,} changed "
                                   "task(s).")
        self._update_buttons()

    def _on_previewed(self, report: RescueReport) -> None:
        self.last_report = report
        self.report_box.setPlainText(_report_text(report))
        self._tell(report.headline)

    def _on_rescued(self, job: Job, report: RescueReport) -> None:
        self.last_report = report
        self.rescue_job = job
        if report.skipped:
            job.note = report.headline  # the activity log records the skips and the undo file
        self.report_box.setPlainText(_report_text(report))
        self._tell(report.headline, good=True)
        self.session.messages.info(report.headline)
        self.compare()

    def _tell(self, text: str, good: bool | None = None) -> None:
        colour = None if good is None else (GOOD_COLOUR if good else BAD_COLOUR)
        set_status(self.status, text, colour)

    def _update_buttons(self) -> None:
        ready = not self.busy and self.diff is not None
        chosen = ready and bool(self.checked_groups())
        self.preview_button.setEnabled(chosen)
        self.rescue_button.setEnabled(chosen and self.session.db_path is not None)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        """Stay open while a job runs: a rescue commits or rolls back whole, then closes."""
        if self.busy:
            self._tell("Wait for the running step to finish before closing.", good=False)
            event.ignore()
            return
        super().closeEvent(event)


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {kind}" for kind, count in counts.items() if count)


def _report_text(report: RescueReport) -> str:
    lines = [report.headline]
    if report.safety_backup is not None:
        lines.append(f"Safety backup: {report.safety_backup}")
    for skip in report.skipped[:LISTED_SKIPS]:
        lines.append(f"Skipped task {skip.task_id} ({skip.type or '-'}): {skip.detail}")
    if len(report.skipped) > LISTED_SKIPS:
        lines.append(f"... and {len(report.skipped) - LISTED_SKIPS} more skipped.")
    return "\n".join(lines)


def open_rescue_dialog(session: Session, backup: Path, parent: QWidget | None, *,
                       past_label: str = "", damaged: bool = False) -> RescueDialog:
    """Open the Rescue window on one backup or a file an instant was rebuilt into.

    With ``damaged``, the file is a damaged queue file and its readable rows are compared.
    """
    dialog = RescueDialog(session, backup, parent, past_label=past_label, damaged=damaged)
    dialog.setModal(True)
    dialog.show()
    return dialog
