"""The settings dialog: edit the maintenance config the window and the CLI share.

Every field of :class:`MaintenanceConfig` that an administrator tunes has an input with a
tooltip saying what it does. Save validates the whole config first (a warning level above its
critical level is refused with the config's own sentence) and writes the settings file, so
scheduled ``queue-admin-cli`` runs use the same values.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..app.messages import Messages
from ..core.errors import QueueAdminError
from ..core.settings.config import (
    CHECKPOINT_MODES,
    SETTING_RANGES,
    MaintenanceConfig,
    config_file_path,
)
from .icons import icon

#: (field, label, tooltip, suffix) of each number setting, by group; the range of each is
#: the config's own (:data:`SETTING_RANGES`), so the dialog accepts what the file may hold.
_NUMBER_GROUPS: dict[str, list[tuple[str, str, str, str]]] = {
    "Backups": [
        ("backup_retention_count", "Keep newest backups", "How many backups 'Keep newest' "
         "and scheduled pruning leave in the folder.", ""),
        ("backup_age_warning_hours", "Backup age warning", "Health turns to Warning when the "
         "newest backup is older than this.", " h"),
        ("backup_age_critical_hours", "Backup age critical", "Health turns to Critical when "
         "the newest backup is older than this.", " h"),
        ("archive_retention_days", "Keep archive for", "Point-in-time archive: the archiver "
         "(the window's and queue-admin-cli archive) deletes whole generations whose newest "
         "instant is older than this; the queue can be restored to any instant within it.",
         " days"),
        ("archive_validate_minutes", "Validate archive every", "Point-in-time archive: the "
         "archiver rebuilds the newest archived commit this often and compares it page by "
         "page with the live file at the same commit; a difference is reported and a new "
         "snapshot taken. 0 validates only when asked.", " min"),
    ],
    "WAL and checkpoints": [
        ("wal_size_warning_mb", "WAL warning size", "Health turns to Warning when the -wal "
         "file reaches this size.", " MB"),
        ("wal_size_threshold_mb", "WAL critical size", "Health turns to Critical when the "
         "-wal file reaches this size.", " MB"),
    ],
    "Optimization": [
        ("fragmentation_warning_percent", "Free pages warning", "Health turns to Warning "
         "when this share of pages is free (VACUUM reclaims them).", " %"),
        ("fragmentation_critical_percent", "Free pages critical", "Health turns to Critical "
         "when this share of pages is free.", " %"),
        ("vacuum_threshold_mb", "VACUUM above", "Scheduled optimization vacuums only when "
         "the database is larger than this.", " MB"),
        ("analyze_interval_hours", "ANALYZE every", "Scheduled optimization re-runs ANALYZE "
         "after this many hours.", " h"),
    ],
    "Leases and monitoring": [
        ("stale_lease_timeout_seconds", "Stale lease after", "A lease expired for longer "
         "than this counts as stale and may be requeued.", " s"),
        ("stale_leases_warning", "Stale leases warning", "Health turns to Warning at this "
         "many stale leases.", ""),
        ("stale_leases_critical", "Stale leases critical", "Health turns to Critical at this "
         "many stale leases.", ""),
        ("sample_interval_seconds", "Sample every", "How often the live monitor measures "
         "the WAL and the database.", " s"),
    ],
}


#: (field, text, tooltip) of each on/off setting.
_SWITCHES = (
    ("keep_running_in_tray", "Keep monitoring in the tray when the window is closed",
     "Closing the window hides it; the tray icon keeps showing the health and notifies "
     "when it changes. Quit from the tray icon's menu."),
    ("event_log_enabled", "Report maintenance outcomes to the Windows Event Log",
     "Backups, restores, checkpoints and the other maintenance runs, from this window and "
     "from queue-admin-cli, are also written to the Application log under the source "
     "'Queue Admin' (to syslog on other systems)."),
)

_FIELD_TYPES = {item.name: str(item.type) for item in dataclasses.fields(MaintenanceConfig)}
_LABELS = {name: label for rows in _NUMBER_GROUPS.values() for name, label, *_rest in rows}
_LABELS.update(backup_dir="Backup folder", checkpoint_mode="Checkpoint mode",
               keep_running_in_tray="Keep monitoring in the tray",
               event_log_enabled="Report to the Windows Event Log")
_FIELD_NAME = re.compile(r"\b(" + "|".join(sorted(_LABELS, key=len, reverse=True)) + r")\b")


class SettingsDialog(QDialog):
    """Edits a copy of the config; :attr:`saved_config` holds it after a successful Save."""

    def __init__(self, config: MaintenanceConfig, messages: Messages,
                 config_path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setWindowIcon(icon("settings"))
        self.messages = messages
        self.config_path = config_path or config_file_path()
        self.original = config
        self.saved_config: MaintenanceConfig | None = None
        self.inputs: dict[str, QSpinBox | QDoubleSpinBox] = {}
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Saved to {self.config_path}; environment variables "
                                "override these values."))
        layout.addWidget(self._general_group(config))
        for title, rows in _NUMBER_GROUPS.items():
            layout.addWidget(self._number_group(title, rows, config))
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setToolTip(
            "Check the values and write them to the settings file.")
        self.buttons.accepted.connect(self._on_save)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def _general_group(self, config: MaintenanceConfig) -> QGroupBox:
        group = QGroupBox("General", self)
        form = QFormLayout(group)
        self.backup_dir_edit = QLineEdit(str(config.backup_dir), group)
        self.backup_dir_edit.setToolTip("Folder where backups are written and listed.")
        browse = QPushButton(icon("folder"), "Browse...", group)
        browse.setToolTip("Choose the backup folder.")
        browse.clicked.connect(self._on_browse)
        row = QHBoxLayout()
        row.addWidget(self.backup_dir_edit, 1)
        row.addWidget(browse)
        form.addRow("Backup folder", row)
        self.checkpoint_combo = QComboBox(group)
        self.checkpoint_combo.addItems(list(CHECKPOINT_MODES))
        self.checkpoint_combo.setCurrentText(config.checkpoint_mode)
        self.checkpoint_combo.setToolTip("Checkpoint mode scheduled maintenance uses.")
        form.addRow("Checkpoint mode", self.checkpoint_combo)
        self.switches: dict[str, QCheckBox] = {}
        for name, text, tooltip in _SWITCHES:
            box = QCheckBox(text, group)
            box.setChecked(bool(getattr(config, name)))
            box.setToolTip(tooltip)
            self.switches[name] = box
            form.addRow(box)
        return group

    def _number_group(self, title: str, rows: list[tuple[str, str, str, str]],
                      config: MaintenanceConfig) -> QGroupBox:
        group = QGroupBox(title, self)
        form = QFormLayout(group)
        for name, label, tooltip, suffix in rows:
            minimum, maximum = SETTING_RANGES[name]
            value = getattr(config, name)
            spin: QSpinBox | QDoubleSpinBox
            if _FIELD_TYPES[name] == "int":
                spin = QSpinBox(group)
                spin.setRange(int(minimum), int(maximum))
            else:
                spin = QDoubleSpinBox(group)
                spin.setDecimals(1)
                spin.setRange(minimum, maximum)
            spin.setValue(value)
            spin.setSuffix(suffix)
            spin.setToolTip(tooltip)
            self.inputs[name] = spin
            form.addRow(label, spin)
        return group

    def edited_config(self) -> MaintenanceConfig:
        """A new config with the dialog's values (not validated)."""
        values: dict[str, object] = {name: spin.value() for name, spin in self.inputs.items()}
        values.update({name: box.isChecked() for name, box in self.switches.items()})
        return dataclasses.replace(
            self.original,
            backup_dir=Path(self.backup_dir_edit.text().strip() or str(self.original.backup_dir)),
            checkpoint_mode=self.checkpoint_combo.currentText(),
            **values,
        )

    def _on_browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Backup folder",
                                                  self.backup_dir_edit.text())
        if folder:
            self.backup_dir_edit.setText(folder)

    def _on_save(self) -> None:
        config = self.edited_config()
        try:
            config.validate()
            config.save(self.config_path)
        except QueueAdminError as error:
            self._report_refused(error)
            return
        self.saved_config = config
        self.accept()

    def _report_refused(self, error: QueueAdminError) -> None:
        """Tell why Save was refused in the dialog's own words and put the cursor there.

        The config names its keys (``wal_size_warning_mb``); the admin sees labels
        ("WAL warning size"), so each key in the sentence is replaced by its label.
        """
        text = str(error)
        named = _FIELD_NAME.findall(text)
        if not named or not error.is_environment:
            self.messages.report_error(error)
            return
        self.messages.error(_FIELD_NAME.sub(lambda match: f"'{_LABELS[match.group(1)]}'",
                                            text))
        field = self.inputs.get(named[0])
        widget = field if field is not None else (
            self.backup_dir_edit if named[0] == "backup_dir" else self.checkpoint_combo)
        widget.setFocus()
