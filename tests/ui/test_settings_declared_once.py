"""Adding a setting is adding one declaration: the file, the environment, the checks and the
Settings dialog all know it from there."""

from __future__ import annotations

from pathlib import Path

import pytest

from queue_admin_gui.app.messages import Messages, RecordingPresenter
from queue_admin_gui.core.errors import ConfigError
from queue_admin_gui.core.settings.catalog import GROUP_MONITORING, KIND_INT, SETTINGS, Setting
from queue_admin_gui.core.settings.config import SettingsObject, declared_settings
from queue_admin_gui.ui.settings_dialog import SettingsDialog

PAUSE = Setting("pause_after_failures", KIND_INT, 3, number_range=(1, 50),
                env_var="QUEUE_ADMIN_TEST_PAUSE_AFTER", label="Pause after failures",
                unit=" runs", group=GROUP_MONITORING,
                help="Stop scheduled runs after this many failures in a row.")


@declared_settings((*SETTINGS, PAUSE))
class ExtendedConfig(SettingsObject):
    """The shipped settings and one more, declared in one place."""


def test_a_new_declaration_is_read_from_the_file_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(PAUSE.env_var, raising=False)
    assert ExtendedConfig().pause_after_failures == 3
    path = tmp_path / "config.toml"
    path.write_text("pause_after_failures = 7\n", encoding="utf-8")
    assert ExtendedConfig.load(path).pause_after_failures == 7
    monkeypatch.setenv(PAUSE.env_var, "9")
    assert ExtendedConfig.load(path).pause_after_failures == 9
    path.write_text("pause_after_failures = 51\n", encoding="utf-8")
    monkeypatch.delenv(PAUSE.env_var)
    with pytest.raises(ConfigError, match="pause_after_failures in .* must be a whole number "
                                          "from 1 to 50; got 51"):
        ExtendedConfig.load(path)
    saved = ExtendedConfig(pause_after_failures=12).save(tmp_path / "saved.toml")
    assert "pause_after_failures = 12" in saved.read_text(encoding="utf-8")


def test_a_new_declaration_gets_its_row_in_the_settings_dialog(qtbot, tmp_path: Path):
    presenter = RecordingPresenter()
    config = ExtendedConfig(backup_dir=tmp_path / "b", pause_after_failures=5)
    dialog = SettingsDialog(config, Messages(presenter), config_path=tmp_path / "c.toml")
    qtbot.addWidget(dialog)
    spin = dialog.inputs["pause_after_failures"]
    assert (spin.minimum(), spin.maximum(), spin.value()) == (1, 50, 5)
    assert spin.suffix() == " runs" and spin.toolTip() == PAUSE.help
    spin.setValue(20)
    assert dialog.edited_config().pause_after_failures == 20
    assert isinstance(dialog.edited_config(), ExtendedConfig)
