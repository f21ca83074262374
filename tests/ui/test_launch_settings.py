"""The window starts whatever the settings file holds, and says once what it refused."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from queue_admin_gui.app.messages import Level, RecordingPresenter
from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.settings.catalog import SETTING_RANGES
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.core.settings.folders import config_file_path
from queue_admin_gui.ui.launch import create_window, parse_arguments
from queue_admin_gui.ui.settings_dialog import SettingsDialog

#: (id, bytes of config.toml or None for a folder, what the message must name)
MALFORMED = [
    ("utf-16-with-a-bad-value", codecs.BOM_UTF16_LE
     + "backup_retention_count = 0\n".encode("utf-16-le"), "backup_retention_count"),
    ("ansi-byte", 'backup_dir = "C:/Sicherung/ä"\n'.encode("cp1252"), "byte 0xE4 at line 1"),
    ("invalid-toml", b"backup_retention_count = = 3\n", "is not valid TOML"),
    ("folder", None, "is a folder"),
    ("huge-lease-timeout", b"stale_lease_timeout_seconds = 99999999999\n",
     "stale_lease_timeout_seconds"),
    ("huge-retention", b"backup_retention_count = 99999999999\n", "backup_retention_count"),
    ("huge-interval", b"sample_interval_seconds = 10000000000.0\n", "sample_interval_seconds"),
    ("negative", b"wal_size_threshold_mb = -4\n", "wal_size_threshold_mb"),
    ("nan", b"fragmentation_warning_percent = nan\n", "fragmentation_warning_percent"),
    ("inf", b"backup_age_critical_hours = inf\n", "backup_age_critical_hours"),
    ("wrong-type", b'stale_leases_critical = "many"\n', "stale_leases_critical"),
]


@pytest.fixture
def start_window(qtbot, settings):
    made = []

    def start():
        presenter = RecordingPresenter()
        window = create_window(parse_arguments([]), settings=settings, presenter=presenter)
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        return window, presenter

    yield start
    for window in made:
        window.health_timer.stop()
        assert window.session.runner.shutdown(30_000)


@pytest.mark.slow
@pytest.mark.parametrize(("content", "named"), [item[1:] for item in MALFORMED],
                         ids=[item[0] for item in MALFORMED])
def test_a_malformed_settings_file_starts_on_defaults_and_says_so_once(
        qtbot, start_window, content: bytes | None, named: str) -> None:
    path = config_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    window, presenter = start_window()
    qtbot.waitUntil(lambda: len(presenter.messages) > 0, timeout=10_000)
    QApplication.processEvents()  # a second report would be queued behind the first
    assert len(presenter.messages) == 1
    message = presenter.messages[0]
    assert message.level is Level.WARNING
    assert str(path) in message.text and named in message.text
    assert "uses the default" in message.text
    defaults = MaintenanceConfig.from_env()
    assert window.session.config == defaults
    assert window.sampler is not None
    logged = [entry for entry in ActivityLog().read() if entry.action == "Read settings"]
    assert [entry.message for entry in logged] == [message.text]
    assert window.activity_dock.entries[-1].message == message.text


def test_a_good_settings_file_starts_without_a_word(qtbot, start_window) -> None:
    path = config_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(codecs.BOM_UTF8 + b"backup_retention_count = 3\n")
    window, presenter = start_window()
    QApplication.processEvents()  # where the report would have run
    assert presenter.messages == []
    assert window.session.config.backup_retention_count == 3


def test_the_settings_dialog_takes_every_setting_at_both_ends_of_its_range(qtbot) -> None:
    presenter = RecordingPresenter()
    from queue_admin_gui.app.messages import Messages

    for end in (0, 1):
        values = {name: bounds[end] for name, bounds in SETTING_RANGES.items()}
        if end == 1:  # warning levels at their top would exceed the critical ones
            values.update({name: bounds[0] for name, bounds in SETTING_RANGES.items()
                           if "warning" in name})
        config = MaintenanceConfig(**values)
        config.validate()
        dialog = SettingsDialog(config, Messages(presenter), config_path=Path("unused.toml"))
        qtbot.addWidget(dialog)
        for name, spin in dialog.inputs.items():
            assert spin.value() == pytest.approx(values[name]), name
            assert (spin.minimum(), spin.maximum()) == pytest.approx(SETTING_RANGES[name])
        assert dialog.edited_config() == config
    assert presenter.messages == []
