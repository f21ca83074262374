"""The first three pages of the restore wizard: choose a backup, check it, prepare.

Nothing on these pages writes to the live database: they only read (on jobs) and show what
the restore will cost, so an administrator under pressure can stop before anything changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWizard,
    QWizardPage,
)

from ..app.jobs import Job
from ..app.operations import Operation
from ..app.session import Session
from ..core.backups.backup_store import BackupStore
from ..core.backups.manifest import BackupInfo
from ..core.backups.verify import VerifyReport
from ..core.errors import QueueAdminError, format_bytes
from ..core.restore.carry import NewerTasks
from ..core.restore.plan import RestoreComparison, compare_backup_with_live
from ..core.restore.preflight import Preflight
from ..core.restore.writing import TargetState
from ..core.schema import KNOWN_STATUSES
from .backup_rows import backup_label
from .palette import GOOD_TEXT, RED
from .restore_choices import RestoreChoices, newer_tasks
from .restore_point_picker import RestorePointPicker, instant_label
from .table_model import RecordListModel, make_list_view, record_column

PROBLEM_STYLE = f"color: {RED}; font-weight: bold;"
GOOD_STYLE = f"color: {GOOD_TEXT};"


@dataclass
class RestoreState:
    """What the pages decided so far; the wizard holds one and every page reads it."""

    live_path: Path | None
    backup_dir: Path
    backup_path: Path | None = None
    report: VerifyReport | None = None
    comparison: RestoreComparison | None = None
    preflight: Preflight | None = None
    safety_backup: bool = True
    outcome: Any = None
    checked: dict[Path, bool] = field(default_factory=dict)
    lock_wait_seconds: float = 30.0
    accepted_workers: frozenset[str] = frozenset()
    #: What the chosen past state is, in words (a backup's name, or an instant).
    past_label: str = ""
    #: The live tasks created after the past state, and whether the restore keeps them.
    newer_tasks: NewerTasks | None = None
    keep_newer_tasks: bool = False
    #: The point-in-time archive that is archiving the live database now: the restore asks
    #: it to stand in for the safety backup (a backup is taken when it cannot).
    archive_safety: Path | None = None


def text_label(text: str = "", style: str = "") -> QLabel:
    """A wrapping plain-text label whose text can be selected and copied."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setStyleSheet(style)
    return label


def counts_summary(counts: dict[str, int] | None) -> str:
    """``"120 tasks (80 queued, 3 leased)"`` from counts by status."""
    if counts is None:
        return "not recorded"
    parts = [f"{count:,} {status}" for status, count in counts.items() if count]
    total = sum(counts.values())
    summary = f"{total:,} task{'' if total == 1 else 's'}"
    return f"{summary} ({', '.join(parts)})" if parts else summary


class JobPage(QWizardPage):
    """A wizard page that runs one job at a time and shows its progress."""

    def __init__(self, session: Session, state: RestoreState, title: str, purpose: str) -> None:
        super().__init__()
        self.session = session
        self.state = state
        self.job: Job | None = None
        self.setTitle(title)
        self.setSubTitle(purpose)
        self.stage_label = text_label()
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.hide()
        self.layout_ = QVBoxLayout(self)

    @property
    def busy(self) -> bool:
        """True while this page's job runs."""
        return self.job is not None and not self.job.is_finished

    def run_job(self, title: str, func: Callable[..., Any], on_done: Callable[[Any], None],
                *, writes: bool = False) -> Job:
        """Run ``func(progress, cancelled)`` as a job (a read); the page follows its progress."""
        self._show_starting()
        return self._follow(self.session.run(title, func, writes=writes, on_done=on_done,
                                             on_error=self.on_job_error,
                                             on_cancelled=self.on_job_cancelled))

    def run_operation(self, operation: Operation, on_done: Callable[[Any], None]) -> Job:
        """Run a write as an operation: the session announces what it changed, not the page."""
        self._show_starting()
        return self._follow(self.session.run_operation(
            operation, on_success=on_done, on_error=self.on_job_error,
            on_cancelled=self.on_job_cancelled))

    def _show_starting(self) -> None:
        self.bar.setRange(0, 0)
        self.bar.show()
        self.stage_label.setStyleSheet("")
        self.stage_label.setText("Starting...")

    def _follow(self, job: Job) -> Job:
        job.progress.connect(self.on_progress)
        job.finished.connect(self._on_job_finished)
        self.job = job
        self.completeChanged.emit()
        return job

    def cancel_job(self) -> None:
        """Ask the running job, if any, to stop."""
        if self.busy and self.job is not None:
            self.job.cancel()

    def on_progress(self, done: int, total: int, stage: str) -> None:
        """Show the stage and how far it got."""
        if total and total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(max(done, 0), total) / total))
        else:
            self.bar.setRange(0, 0)
        self.stage_label.setText(stage)

    def on_job_error(self, error: BaseException) -> None:
        """Show the failure on the page (the session already told the user)."""
        self.stage_label.setText(str(error) if isinstance(error, QueueAdminError)
                                 else f"Something went wrong: {error}")
        self.stage_label.setStyleSheet(PROBLEM_STYLE)

    def on_job_cancelled(self) -> None:
        """Say that the job stopped."""
        self.stage_label.setText("Stopped; nothing was changed.")

    def _on_job_finished(self) -> None:
        self.bar.hide()
        if self.stage_label.styleSheet() != PROBLEM_STYLE and self.job is not None \
                and self.job.error is None:
            self.stage_label.setText("")
        self.completeChanged.emit()
        wizard = self.wizard()
        if isinstance(wizard, QWizard) and hasattr(wizard, "on_job_finished"):
            wizard.on_job_finished()

    def cleanupPage(self) -> None:  # noqa: N802 - Qt override
        """Going back stops this page's job."""
        self.cancel_job()
        super().cleanupPage()


class ChoosePage(JobPage):
    """Page 1: pick a backup from the backup folder or any file on disk."""

    def __init__(self, session: Session, state: RestoreState) -> None:
        super().__init__(session, state, "Choose a backup",
                         "Pick the backup to put back into the live database (the newest is "
                         "at the top), or an instant from the point-in-time archive.")
        self.backups: list[BackupInfo] = []
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Name", "Made at", "Size", "Tasks", "Verified", "File"])
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.currentItemChanged.connect(self._on_current_changed)
        self.other_button = QPushButton("&Other file...")
        self.other_button.setAutoDefault(False)
        self.other_button.clicked.connect(self._on_other_file)
        self.chosen_label = text_label()
        folder = QLabel(f"Backups in: {state.backup_dir}")
        folder.setWordWrap(True)
        list_label = QLabel("&Backups:")
        list_label.setBuddy(self.tree)
        row = QHBoxLayout()
        row.addWidget(self.chosen_label, 1)
        row.addWidget(self.other_button)
        for widget in (folder, list_label, self.tree):
            self.layout_.addWidget(widget)
        self.layout_.addLayout(row)
        self.point_picker = RestorePointPicker(session, self.run_job, state.backup_dir,
                                               state.live_path)
        self.point_picker.rebuilt.connect(self._on_rebuilt)
        self.layout_.addWidget(self.point_picker)
        self.layout_.addWidget(self.stage_label)
        self.layout_.addWidget(self.bar)
        if state.live_path is None:
            self.chosen_label.setText("Open a queue database first; a restore needs a live "
                                      "database path to write to.")
            self.chosen_label.setStyleSheet(PROBLEM_STYLE)

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        """Load the backup list on a job."""
        live, folder = self.state.live_path, self.state.backup_dir
        if live is None:
            return
        self.run_job("List backups",
                     lambda progress, cancelled: BackupStore(live, folder).list_backups(),
                     self._on_listed)
        self.point_picker.load()
        self.tree.setFocus()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        """A backup is chosen and there is a live path to restore into."""
        return self.state.live_path is not None and self.state.backup_path is not None

    def choose_path(self, path: str | Path) -> None:
        """Choose a backup file, from the list when it is there (also used by tests)."""
        path = Path(path)
        self.state.backup_path = path
        item = self._item_for(path)
        if item is None:
            item = QTreeWidgetItem(["Other file", "", "", "", "Not checked yet", str(path)])
            item.setData(0, Qt.ItemDataRole.UserRole, str(path))
            self.tree.insertTopLevelItem(0, item)
        self.tree.setCurrentItem(item)
        self.chosen_label.setText(f"Chosen: {path}")
        self.chosen_label.setStyleSheet("")
        self.state.past_label = path.name
        self.completeChanged.emit()

    def _item_for(self, path: Path) -> QTreeWidgetItem | None:
        for index in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(index)
            if Path(item.data(0, Qt.ItemDataRole.UserRole)) == path:
                return item
        return None

    def _on_listed(self, backups: list[BackupInfo]) -> None:
        self.backups = backups
        chosen = self.state.backup_path
        self.tree.clear()
        for info in backups:
            item = QTreeWidgetItem([
                backup_label(info.path),
                info.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                format_bytes(info.size_bytes), counts_summary(info.task_counts),
                self._verified_text(info), info.path.name,
            ])
            item.setData(0, Qt.ItemDataRole.UserRole, str(info.path))
            item.setToolTip(5, str(info.path))
            self.tree.addTopLevelItem(item)
        for column in range(5):
            self.tree.resizeColumnToContents(column)
        if chosen is not None:
            self.choose_path(chosen)
        elif backups:
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        else:
            self.stage_label.setText("No backups in this folder yet; choose another file "
                                     "with Other file....")

    def _verified_text(self, info: BackupInfo) -> str:
        if info.manifest_problem is not None:
            return f"Manifest unreadable: {info.manifest_problem}"
        checked = self.state.checked.get(info.path)
        if checked is not None:
            return "Checked: OK" if checked else "Checked: FAILED"
        return "Manifest recorded" if info.has_manifest else "No manifest (older backup)"

    def _on_current_changed(self, item: QTreeWidgetItem | None, _previous: object) -> None:
        if item is None:
            return
        path = Path(item.data(0, Qt.ItemDataRole.UserRole))
        self.state.backup_path = path
        self.state.past_label = path.name
        self.chosen_label.setText(f"Chosen: {path}")
        self.completeChanged.emit()

    def _on_rebuilt(self, result: Any) -> None:
        """A file rebuilt to an instant is an ordinary backup: check and restore it as one."""
        self.choose_path(result.path)
        when = instant_label(result.at.timestamp())
        self.chosen_label.setText(f"Chosen: the queue as it was at {when}, rebuilt into "
                                  f"{result.path}")
        self.state.past_label = f"the queue at {when}"
        wizard = self.wizard()
        if isinstance(wizard, QWizard) and wizard.currentPage() is self:
            wizard.next()

    def _on_other_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Choose a backup file", str(self.state.backup_dir),
            "SQLite databases (*.db *.sqlite *.sqlite3 *.backup);;All files (*)")
        if name:
            self.choose_path(name)


class CheckPage(JobPage):
    """Page 2: verify the backup and compare it with the live database."""

    def __init__(self, session: Session, state: RestoreState) -> None:
        super().__init__(session, state, "Check the backup",
                         "Verifies the backup (integrity, queue schema, checksum) and shows "
                         "what restoring it would change, before anything is touched.")
        self.verdict_label = text_label()
        self.table_model: RecordListModel[tuple[str, str, str]] = RecordListModel([
            record_column("Tasks", lambda row: row[0]),
            record_column("Backup", lambda row: row[1], numeric=True),
            record_column("Live database", lambda row: row[2], numeric=True),
        ], parent=self)
        # The rows are read in the order of a task's life, not sorted.
        self.table = make_list_view(self.table_model, sortable=False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.hide()
        self.consequences_label = text_label(style="font-weight: bold;")
        self.choices = RestoreChoices(session, self.consequences_label)
        self.choices.changed.connect(self._on_choice_changed)
        self.choices.rescued.connect(self.initializePage)  # compare again after a rescue
        for widget in (self.stage_label, self.bar, self.verdict_label, self.table,
                       self.consequences_label, self.choices):
            self.layout_.addWidget(widget)

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        """Run the check and the comparison on a job."""
        self.state.report = self.state.comparison = self.state.newer_tasks = None
        self.state.keep_newer_tasks = False
        self.choices.reset()
        self.verdict_label.clear()
        self.consequences_label.clear()
        self.table_model.set_records([])
        self.table.hide()
        backup, live = self.state.backup_path, self.state.live_path
        folder = self.state.backup_dir
        assert backup is not None and live is not None

        def check(progress: Any, cancelled: Any) -> tuple[VerifyReport, Any, Any]:
            report = BackupStore(live, folder).check_backup(backup, progress, cancelled)
            if not report.ok:
                return report, None, None
            comparison = compare_backup_with_live(backup, live, progress, cancelled)
            return report, comparison, newer_tasks(backup, live, comparison)

        self.run_job(f"Check backup {backup.name}", check, self._on_checked)

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        """Only a backup that passed every check may go further."""
        report = self.state.report
        return (not self.busy and report is not None and report.ok
                and self.state.comparison is not None)

    def _on_checked(self, result: tuple[VerifyReport, RestoreComparison | None,
                                        NewerTasks | None]) -> None:
        report, comparison, self.state.newer_tasks = result
        self.state.report, self.state.comparison = report, comparison
        self.state.checked[report.path] = report.ok
        if not report.ok:
            self.verdict_label.setText("This backup cannot be restored: "
                                       + " ".join(report.problems))
            self.verdict_label.setStyleSheet(PROBLEM_STYLE)
            return
        notes = " ".join(report.notes)
        self.verdict_label.setText(("The backup passed every check. " + notes).strip())
        self.verdict_label.setStyleSheet(GOOD_STYLE)
        assert comparison is not None
        self._fill_table(comparison)
        self.consequences_label.setText("\n".join(comparison.consequences()))
        assert self.state.backup_path is not None
        self.choices.show_for(comparison, self.state.newer_tasks, self.state.backup_path,
                              self.state.past_label)

    def _on_choice_changed(self) -> None:
        self.state.keep_newer_tasks = self.choices.keep_newer

    def _fill_table(self, comparison: RestoreComparison) -> None:
        backup, live = comparison.backup, comparison.live
        statuses = list(KNOWN_STATUSES)
        statuses += [s for s in {**backup.counts, **live.counts} if s not in statuses]
        state_text = {TargetState.MISSING: "missing", TargetState.EMPTY: "empty",
                      TargetState.CORRUPT: "cannot be opened", TargetState.DAMAGED: "damaged",
                      TargetState.NOT_A_QUEUE: "not a queue"}
        rows: list[tuple[str, str, str]] = []
        for status in statuses:
            rows.append((status, f"{backup.counts.get(status, 0):,}",
                         f"{live.counts.get(status, 0):,}" if live.ok else "-"))
        rows.append(("All tasks", f"{backup.total:,}",
                     f"{live.total:,}" if live.ok else state_text.get(live.state, "-")))
        rows.append(("Newest task (UTC)", backup.newest_created_at or "none",
                     (live.newest_created_at or "none") if live.ok else "-"))
        self.table_model.set_records(rows)
        self.table.setFixedHeight(self.table.verticalHeader().length()
                                  + self.table.horizontalHeader().height() + 4)
        self.table.show()
