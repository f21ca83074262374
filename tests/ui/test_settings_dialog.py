from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox

from queue_admin_gui.app.messages import Level
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.ui.settings_dialog import SettingsDialog


def save_button(dialog):
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Save)


def test_save_writes_the_settings_file(qtbot, session, tmp_path):
    path = tmp_path / "config" / "config.toml"
    dialog = SettingsDialog(MaintenanceConfig(backup_dir=tmp_path / "b"), session.messages,
                            config_path=path)
    qtbot.addWidget(dialog)
    dialog.backup_dir_edit.setText(str(tmp_path / "new backups"))
    dialog.checkpoint_combo.setCurrentText("TRUNCATE")
    dialog.inputs["wal_size_warning_mb"].setValue(20)
    dialog.inputs["fragmentation_critical_percent"].setValue(30.5)
    save_button(dialog).click()
    assert dialog.result() == QDialog.DialogCode.Accepted
    saved = MaintenanceConfig.load(path)
    assert saved.backup_dir == tmp_path / "new backups"
    assert saved.checkpoint_mode == "TRUNCATE"
    assert saved.wal_size_warning_mb == 20
    assert saved.fragmentation_critical_percent == 30.5
    assert dialog.saved_config is not None
    assert dialog.saved_config.backup_dir == saved.backup_dir


def test_warning_above_critical_is_refused_and_nothing_is_written(qtbot, session, presenter,
                                                                 tmp_path):
    path = tmp_path / "config.toml"
    dialog = SettingsDialog(MaintenanceConfig(), session.messages, config_path=path)
    qtbot.addWidget(dialog)
    dialog.inputs["stale_leases_warning"].setValue(80)
    save_button(dialog).click()
    assert dialog.saved_config is None
    assert dialog.result() != QDialog.DialogCode.Accepted
    errors = presenter.texts(Level.ERROR)
    assert len(errors) == 1 and "'Stale leases warning'" in errors[0]
    assert not path.exists()


def test_a_refused_value_is_named_as_the_dialog_shows_it_and_focused(qtbot, session,
                                                                      presenter, tmp_path):
    dialog = SettingsDialog(MaintenanceConfig(), session.messages,
                            config_path=tmp_path / "config.toml")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.inputs["wal_size_warning_mb"].setValue(200)
    save_button(dialog).click()
    [error] = presenter.texts(Level.ERROR)
    assert "'WAL warning size' (200" in error and "'WAL critical size' (100" in error
    assert "wal_size_warning_mb" not in error and "wal_size_threshold_mb" not in error
    qtbot.waitUntil(lambda: dialog.inputs["wal_size_warning_mb"].hasFocus(), timeout=5_000)


def test_every_input_explains_itself(qtbot, session):
    dialog = SettingsDialog(MaintenanceConfig(), session.messages)
    qtbot.addWidget(dialog)
    assert dialog.inputs
    assert all(spin.toolTip() for spin in dialog.inputs.values())
    assert dialog.backup_dir_edit.toolTip() and dialog.checkpoint_combo.toolTip()
