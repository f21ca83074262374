"""The Backups tab: take a backup, see and verify the ones there are, prune, start a restore.

Every file operation runs as a job: backing up, deleting and pruning are write jobs (one at
a time, beside nothing else that writes), listing and verifying are reads. The table comes
from the manifests beside the backups; the "Verified" column says what this window knows
about each file: checked when it was made, verified now, damaged, or not checked yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..app.operations import (
    TOPIC_BACKUPS,
    back_up,
    delete_backup,
    prune_backups,
    verify_backup,
)
from ..app.session import Session
from ..core.backups.backup_store import BackupResult, BackupStore
from ..core.backups.manifest import BackupInfo
from ..core.backups.retention import plan_prune
from ..core.backups.verify import VerifyReport
from ..core.errors import QueueAdminError, format_bytes
from .backup_rows import (
    BackupListing,
    BackupListModel,
    Verification,
    backup_columns,
    backup_listing,
    describe_task_counts,
    verification_text,
)
from .icons import icon
from .maintenance_tab import MaintenanceTab
from .rescue_dialog import open_rescue_dialog
from .restore_wizard import RestoreWizard
from .table_model import keep_place_when_hidden, make_list_view
from .widgets import BAD_COLOUR, GOOD_COLOUR, explanation, set_status, status_label


class BackupsTab(MaintenanceTab):
    """Backup folder, "Back up now", the list of backups and what can be done with one."""

    topics = (TOPIC_BACKUPS,)
    show_refresh_delay_ms = 100

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.verifications: dict[Path, Verification] = {}
        self.restore_wizard: QWidget | None = None
        self.rescue_dialog: QWidget | None = None
        self._select_after_load: Path | None = None
        #: Asks for a folder; returns "" when the user cancels (replaceable in tests).
        self.choose_folder: Callable[[QWidget, str], str] = _ask_for_folder
        #: Shows a folder in the file manager (replaceable in tests).
        self.show_folder: Callable[[Path], object] = _open_in_file_manager
        self.model = BackupListModel(
            backup_columns(self._verified_text),
            highlight=lambda listing, row: self._is_damaged(listing.records[row]), parent=self)
        self.table = make_list_view(self.model, multi_select=False)
        # a header and one row at the least, so the tab still fits a 1024x700 screen
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height()
                                    + 2 * self.table.verticalHeader().defaultSectionSize())
        self.table.setToolTip("Backups in the folder, newest first. Select one to verify, "
                              "restore or delete it.")
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.result_label = status_label()
        layout = QVBoxLayout(self)
        layout.addWidget(self._folder_box())
        layout.addWidget(self._backup_box())
        layout.addWidget(self._list_box(), 1)
        from .archive_panel import ArchivePanel

        self.archive_panel = ArchivePanel(session, self)
        layout.addWidget(self.archive_panel)
        layout.addWidget(self.result_label)
        layout.addWidget(keep_place_when_hidden(self.progress_panel))
        self._show_folder()
        session.config_changed.connect(self._on_config_changed)

    # -- building ---------------------------------------------------------------------------

    def _folder_box(self) -> QGroupBox:
        box = QGroupBox("Backup folder", self)
        self.folder_label = QLabel(box)
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.change_folder_button = QPushButton(icon("folder"), "Change...", box)
        self.change_folder_button.clicked.connect(self._on_change_folder)
        self.open_folder_button = QPushButton(icon("open"), "Open folder", box)
        self.open_folder_button.setToolTip("Show the backup folder in the file manager.")
        self.open_folder_button.clicked.connect(self._on_open_folder)
        self.add_action(self.change_folder_button,
                        "Choose another folder for backups; the setting is saved.", writes=True)
        row = QHBoxLayout(box)
        row.addWidget(self.folder_label, 1)
        row.addWidget(self.change_folder_button)
        row.addWidget(self.open_folder_button)
        return box

    def _backup_box(self) -> QGroupBox:
        box = QGroupBox("New backup", self)
        self.name_edit = QLineEdit(box)
        self.name_edit.setPlaceholderText("Optional name, e.g. before-upgrade")
        self.name_edit.setToolTip("A short label put in the file name (letters, digits, - "
                                  "and _); leave empty for a plain time-stamped backup.")
        self.name_edit.setMaxLength(64)
        self.name_edit.returnPressed.connect(self.back_up_now)
        self.backup_button = QPushButton(icon("backup"), "Back up now", box)
        self.add_action(self.backup_button, "Take a consistent snapshot of the database "
                        "into the backup folder; workers keep running (Ctrl+B).", writes=True)
        self.backup_button.clicked.connect(self.back_up_now)
        row = QHBoxLayout()
        row.addWidget(self.name_edit, 1)
        row.addWidget(self.backup_button)
        column = QVBoxLayout(box)
        column.addLayout(row)
        column.addWidget(explanation(
            "A backup is one self-contained file with a manifest (checksum and task counts) "
            "beside it. Workers can keep running while it is taken."))
        return box

    def _list_box(self) -> QGroupBox:
        box = QGroupBox("Backups", self)
        self.verify_button = QPushButton(icon("verify"), "Verify", box)
        self.restore_button = QPushButton(icon("restore"), "Restore...", box)
        self.rescue_button = QPushButton(icon("restore"), "Rescue...", box)
        self.delete_button = QPushButton(icon("delete"), "Delete", box)
        self.keep_spin = QSpinBox(box)
        self.keep_spin.setRange(1, 10_000)
        self.keep_spin.setValue(self.session.config.backup_retention_count)
        self.keep_spin.setPrefix("Keep newest ")
        self.keep_spin.setToolTip("How many of the newest backups pruning keeps.")
        self.prune_button = QPushButton(icon("delete"), "Prune older", box)
        self.refresh_button = QPushButton(icon("refresh"), "Refresh", box)
        self.add_action(self.verify_button, "Check the selected backup: integrity, queue "
                        "schema and the manifest checksum. Nothing is changed.")
        self.add_action(self.restore_button, "Open the restore wizard for the selected "
                        "backup; it checks everything and asks before changing anything.",
                        writes=True)
        self.add_action(self.rescue_button, "Compare the queue with the selected backup and "
                        "put back only the tasks that went wrong since; workers keep "
                        "running.", writes=True)
        self.add_action(self.delete_button, "Delete the selected backup and its manifest "
                        "(asks first).", writes=True)
        self.add_action(self.prune_button, "Delete every backup except the newest N "
                        "(asks first).", writes=True)
        self.add_action(self.refresh_button, "Read the backup folder again (F5).")
        self.verify_button.clicked.connect(self.verify_selected)
        self.restore_button.clicked.connect(self.restore_selected)
        self.rescue_button.clicked.connect(self.rescue_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.prune_button.clicked.connect(self.prune)
        self.refresh_button.clicked.connect(self.refresh)
        buttons = QHBoxLayout()
        for button in (self.verify_button, self.restore_button, self.rescue_button,
                       self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        for widget in (self.keep_spin, self.prune_button, self.refresh_button):
            buttons.addWidget(widget)
        column = QVBoxLayout(box)
        column.addWidget(self.table, 1)
        column.addLayout(buttons)
        return box

    # -- state ------------------------------------------------------------------------------

    @property
    def backup_dir(self) -> Path:
        """The folder backups are written to and listed from."""
        return self.session.backup_dir

    def selected_backup(self) -> BackupInfo | None:
        """The backup selected in the table, if any."""
        rows = self.table.selectionModel().selectedRows()
        return self.model.record(rows[0].row()) if rows else None

    def select_backup(self, path: Path) -> bool:
        """Select the row of ``path``; False when it is not listed."""
        row = self.model.view_row_of(path)
        if row < 0:
            return False
        self.table.selectRow(row)
        return True

    def update_actions(self) -> None:
        """Enable actions as the base does; row actions also need a selection."""
        super().update_actions()
        if not hasattr(self, "prune_button"):
            return
        selected = self.selected_backup() is not None
        for button in (self.verify_button, self.restore_button, self.rescue_button,
                       self.delete_button):
            if button.isEnabled() and not selected:
                button.setEnabled(False)
                button.setToolTip("Select a backup in the table first.")

    def _verified_text(self, info: BackupInfo) -> str:
        return verification_text(info, self.verifications.get(info.path))

    def _is_damaged(self, info: BackupInfo) -> bool:
        known = self.verifications.get(info.path)
        return known is not None and not known.ok

    def _show_folder(self) -> None:
        self.folder_label.setText(str(self.backup_dir))
        self.folder_label.setToolTip(f"Backups are written to {self.backup_dir}")

    def _tell(self, text: str, good: bool | None = None) -> None:
        colour = None if good is None else (GOOD_COLOUR if good else BAD_COLOUR)
        set_status(self.result_label, text, colour)

    # -- actions ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """List the backup folder again (as a read job)."""
        if self.session.db_path is None:
            return
        db_path, folder = self.session.db_path, self.backup_dir
        self.run_load("List backups", lambda progress, cancelled: backup_listing(
            BackupStore(db_path, folder).list_backups()), self._on_listed)

    def clear(self) -> None:
        """Forget the listing, the checks made and the last result (another file opens)."""
        self.verifications.clear()
        self._select_after_load = None
        self.model.set_data(None, 0)
        self.result_label.clear()
        self.update_actions()

    def show_load_failed(self, error: BaseException) -> None:
        """The folder could not be listed: no rows, the reason in the result line."""
        self.clear()
        self._tell(f"The backup folder could not be listed: {error}", good=False)

    def back_up_now(self) -> None:
        """Start a backup with the optional name typed in the name box."""
        reason = self.disabled_reason(writes=True, queue_only=False)
        if reason is not None:
            self.session.messages.warning(f"Backing up is not possible now: {reason}")
            return
        name = self.name_edit.text().strip() or None
        db_path, folder = self.session.db_path, self.backup_dir
        self._tell("Backing up...")
        self.run_operation(back_up(db_path, folder, name), on_success=self._on_backed_up,
                           on_error=lambda error: self._tell(str(error), good=False))

    def verify_selected(self) -> None:
        """Check the selected backup without changing anything."""
        info = self.selected_backup()
        if info is None:
            return
        db_path, folder, path = self.session.db_path, self.backup_dir, info.path
        self._tell(f"Verifying {path.name}...")
        self.run_operation(verify_backup(db_path, folder, path), on_success=self._on_verified)

    def delete_selected(self) -> None:
        """Delete the selected backup and its manifest, after asking."""
        info = self.selected_backup()
        if info is None:
            return
        confirmed = self.session.messages.confirm(
            "Delete backup",
            f"Delete the backup {info.path.name} ({format_bytes(info.size_bytes)}) and its "
            "manifest? This cannot be undone.",
            confirm_label="Delete", destructive=True)
        if not confirmed:
            return
        db_path, folder, path = self.session.db_path, self.backup_dir, info.path
        self.run_operation(delete_backup(db_path, folder, path),
                           on_success=lambda _result: self._on_deleted([path]))

    def prune(self) -> None:
        """Delete all but the newest N backups, after saying which ones would go."""
        keep = self.keep_spin.value()
        doomed = plan_prune(self.model.records, keep).delete  # never one it cannot read
        if not doomed:
            self.session.messages.info(
                f"Nothing to prune: the folder holds {len(self.model.records)} backups, "
                f"no more than the {keep} to keep.")
            return
        oldest = doomed[-1].created_at.astimezone().strftime("%Y-%m-%d %H:%M")
        confirmed = self.session.messages.confirm(
            "Prune old backups",
            f"Delete {len(doomed)} backups older than the newest {keep} (the oldest from "
            f"{oldest}), freeing {format_bytes(sum(i.size_bytes for i in doomed))}? "
            "This cannot be undone.",
            confirm_label=f"Delete {len(doomed)} backups", destructive=True)
        if not confirmed:
            return
        db_path, folder = self.session.db_path, self.backup_dir
        self.run_operation(prune_backups(db_path, folder, keep), on_success=self._on_deleted)

    def restore_selected(self) -> None:
        """Open the restore wizard for the selected backup."""
        info = self.selected_backup()
        self.restore_wizard = open_restore_wizard(self.session, info.path if info else None,
                                                  self)

    def rescue_selected(self) -> None:
        """Open the Rescue window on the selected backup."""
        info = self.selected_backup()
        if info is not None:
            self.rescue_dialog = open_rescue_dialog(self.session, info.path, self)

    def set_backup_folder(self, folder: Path) -> bool:
        """Use ``folder`` for backups from now on and save the setting; False on failure."""
        config = dataclasses.replace(self.session.config, backup_dir=Path(folder))
        try:
            config.save()
        except QueueAdminError as error:
            self.session.messages.report_error(error)
            return False
        self.session.set_config(config)
        self.session.messages.info(f"Backups now go to {folder}.")
        return True

    # -- slots ------------------------------------------------------------------------------

    def _on_change_folder(self) -> None:
        chosen = self.choose_folder(self, str(self.backup_dir))
        if chosen:
            self.set_backup_folder(Path(chosen))

    def _on_open_folder(self) -> None:
        try:
            self.backup_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            self.session.messages.error(
                f"The backup folder {self.backup_dir} cannot be created ({error}); choose "
                "another folder.")
            return
        self.show_folder(self.backup_dir)

    def _on_config_changed(self, _config: object) -> None:
        self._show_folder()
        self.keep_spin.setValue(self.session.config.backup_retention_count)
        self.refresh()

    def _on_selection_changed(self, *_args: object) -> None:
        self.update_actions()

    def _on_listed(self, listing: BackupListing) -> None:
        selected = self.selected_backup()
        wanted = self._select_after_load or (selected.path if selected else None)
        self._select_after_load = None
        self.model.set_data(listing, len(listing))
        if wanted is None or not self.select_backup(wanted):
            if len(listing):
                self.table.selectRow(0)
        self.update_actions()

    def _on_backed_up(self, result: BackupResult) -> None:
        self.verifications[result.path] = Verification(True, datetime.now(timezone.utc))
        self._select_after_load = result.path
        counts = describe_task_counts(result.task_counts)
        text = (f"Backup saved: {result.path.name} ({format_bytes(result.size_bytes)}, "
                f"{counts}) in {result.seconds:.1f} s.")
        self._tell(text, good=True)
        self.name_edit.clear()
        self.session.messages.info(text)
        self.session.backup_done.emit(result)

    def _on_verified(self, report: VerifyReport) -> None:
        now = datetime.now(timezone.utc)
        if report.ok:
            self.verifications[report.path] = Verification(True, now)
            text = (f"{report.path.name} is intact: integrity, queue schema and checksum "
                    "all passed.")
            self._tell(text, good=True)
            self.session.messages.info(text)
        else:
            problem = report.problems[0] if report.problems else "unknown problem"
            self.verifications[report.path] = Verification(False, now, problem)
            self._tell(f"{report.path.name} is damaged: {problem}", good=False)
            # Each engine finding already ends with what to do ("use another backup").
            self.session.messages.error(
                f"The backup {report.path.name} failed verification: {problem}")
        self.model.refresh_cells()
        self.select_backup(report.path)

    def _on_deleted(self, paths: list[Path]) -> None:
        for path in paths:
            self.verifications.pop(path, None)
        text = (f"Deleted {paths[0].name}." if len(paths) == 1
                else f"Deleted {len(paths)} old backups.")
        self._tell(text, good=True)
        self.session.messages.info(text)


def open_restore_wizard(session: Session, backup_path: Path | None,
                        parent: QWidget | None) -> QWidget | None:
    """Open the restore wizard (optionally on one backup)."""
    wizard = RestoreWizard(session, backup_path, parent)
    wizard.setModal(True)
    wizard.show()
    return wizard


def _ask_for_folder(parent: QWidget, start: str) -> str:
    return QFileDialog.getExistingDirectory(parent, "Backup folder", start)


def _open_in_file_manager(folder: Path) -> bool:
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
