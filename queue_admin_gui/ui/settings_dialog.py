"""The settings dialog: edit the maintenance config the window and the CLI share.

Every declared setting with a dialog group (:data:`~..core.settings.catalog.SETTINGS`) has
a row made by its kind: a spin box with its range and unit, a check box, a list of choices or
a folder with Browse, each with the setting's help as its tooltip. Save validates the whole
config first (a warning level above its critical level is refused with the config's own
sentence) and writes the settings file, so scheduled ``queue-admin-cli`` runs use the same
values.
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
from ..core.settings.catalog import (
    DIALOG_GROUPS,
    KIND_CHOICE,
    KIND_INT,
    KIND_PATH,
    KIND_SWITCH,
    Setting,
)
from ..core.settings.config import MaintenanceConfig, SettingsObject
from ..core.settings.folders import config_file_path
from .icons import icon


def _labels(config_class: type[SettingsObject]) -> dict[str, str]:
    return {item.name: item.label for item in config_class.declarations if item.label}


def _field_pattern(labels: dict[str, str]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(sorted(map(re.escape, labels), key=len, reverse=True))
                      + r")\b")


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
        self.switches: dict[str, QCheckBox] = {}
        self.choices: dict[str, QComboBox] = {}
        self.paths: dict[str, QLineEdit] = {}
        self.labels = _labels(type(config))
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Saved to {self.config_path}; environment variables "
                                "override these values."))
        for title in DIALOG_GROUPS:
            rows = [item for item in type(config).declarations if item.group == title]
            if rows:
                layout.addWidget(self._group(title, rows, config))
        #: The backup folder's and the checkpoint mode's inputs, by their usual names.
        self.backup_dir_edit = self.paths["backup_dir"]
        self.checkpoint_combo = self.choices["checkpoint_mode"]
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setToolTip(
            "Check the values and write them to the settings file.")
        self.buttons.accepted.connect(self._on_save)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def _group(self, title: str, rows: list[Setting], config: MaintenanceConfig) -> QGroupBox:
        """One group of the dialog: a row per declared setting, made by its kind."""
        group = QGroupBox(title, self)
        form = QFormLayout(group)
        for item in rows:
            value = getattr(config, item.name)
            if item.kind == KIND_SWITCH:
                box = QCheckBox(item.label, group)
                box.setChecked(bool(value))
                box.setToolTip(item.help)
                self.switches[item.name] = box
                form.addRow(box)
            elif item.kind == KIND_CHOICE:
                combo = QComboBox(group)
                combo.addItems(list(item.choices))
                combo.setCurrentText(str(value))
                combo.setToolTip(item.help)
                self.choices[item.name] = combo
                form.addRow(item.label, combo)
            elif item.kind == KIND_PATH:
                form.addRow(item.label, self._path_row(item, value, group))
            else:
                form.addRow(item.label, self._number_input(item, value, group))
        return group

    def _path_row(self, item: Setting, value: object, group: QGroupBox) -> QHBoxLayout:
        edit = QLineEdit("" if value is None else str(value), group)
        edit.setToolTip(item.help)
        browse = QPushButton(icon("folder"), "Browse...", group)
        browse.setToolTip(f"Choose the {item.label.lower()}.")
        browse.clicked.connect(lambda: self._on_browse(item.name))
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(browse)
        self.paths[item.name] = edit
        return row

    def _number_input(self, item: Setting, value: object, group: QGroupBox
                      ) -> QSpinBox | QDoubleSpinBox:
        minimum, maximum = item.number_range or (0, 2**31 - 1)
        spin: QSpinBox | QDoubleSpinBox
        if item.kind == KIND_INT:
            spin = QSpinBox(group)
            spin.setRange(int(minimum), int(maximum))
        else:
            spin = QDoubleSpinBox(group)
            spin.setDecimals(1)
            spin.setRange(minimum, maximum)
        spin.setValue(value)  # type: ignore[arg-type]
        spin.setSuffix(item.unit)
        spin.setToolTip(item.help)
        self.inputs[item.name] = spin
        return spin

    def edited_config(self) -> MaintenanceConfig:
        """A new config with the dialog's values (not validated)."""
        values: dict[str, object] = {name: spin.value() for name, spin in self.inputs.items()}
        values.update({name: box.isChecked() for name, box in self.switches.items()})
        values.update({name: combo.currentText() for name, combo in self.choices.items()})
        for name, edit in self.paths.items():
            text = edit.text().strip()
            current = getattr(self.original, name)
            values[name] = Path(text) if text else current
        return dataclasses.replace(self.original, **values)

    def _on_browse(self, name: str) -> None:
        edit = self.paths[name]
        folder = QFileDialog.getExistingDirectory(self, self.labels.get(name, name), edit.text())
        if folder:
            edit.setText(folder)

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
        pattern = _field_pattern(self.labels)
        named = pattern.findall(text)
        if not named or not error.is_environment:
            self.messages.report_error(error)
            return
        self.messages.error(pattern.sub(lambda match: f"'{self.labels[match.group(1)]}'", text))
        widgets: dict[str, QWidget] = {**self.inputs, **self.switches, **self.choices,
                                       **self.paths}
        if named[0] in widgets:
            widgets[named[0]].setFocus()
