"""Settings files as Windows editors save them, and values no part of the tool could use."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from queue_admin_gui.core.errors import ConfigError, ErrorKind
from queue_admin_gui.core.settings.catalog import LEVEL_PAIRS, SETTING_RANGES
from queue_admin_gui.core.settings.config import MaintenanceConfig, load_settings

TEXT = 'backup_dir = "D:/Sicherungen/Bäckerei"\nbackup_retention_count = 4\n'


@pytest.mark.parametrize("encoded", [
    codecs.BOM_UTF8 + TEXT.encode("utf-8"),
    codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
    codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
    TEXT.encode("utf-8"),
], ids=["utf-8-bom", "utf-16-le", "utf-16-be", "utf-8"])
def test_notepad_encodings_are_read(tmp_path: Path, encoded: bytes) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(encoded)
    config = MaintenanceConfig.load(path)
    assert config.backup_dir == Path("D:/Sicherungen/Bäckerei")
    assert config.backup_retention_count == 4


def test_ansi_text_is_refused_with_the_byte_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"backup_retention_count = 4\n" + TEXT.encode("cp1252"))
    with pytest.raises(ConfigError) as caught:
        MaintenanceConfig.load(path)
    assert f"The settings file '{path}' is not UTF-8: byte 0xE4 at line 2" in str(caught.value)
    assert caught.value.kind is ErrorKind.INVALID


def test_a_folder_named_like_the_settings_file_is_refused_not_ignored(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.mkdir()
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        MaintenanceConfig.load(path)
    loaded = load_settings(path)
    assert loaded.config == MaintenanceConfig.from_env()
    assert str(path) in loaded.refusal


@pytest.mark.parametrize(("line", "name"), [
    ("stale_lease_timeout_seconds = 99999999999", "stale_lease_timeout_seconds"),
    ("backup_retention_count = 99999999999", "backup_retention_count"),
    ("sample_interval_seconds = 10000000000.0", "sample_interval_seconds"),
    ("sample_interval_seconds = nan", "sample_interval_seconds"),
    ("backup_age_warning_hours = inf", "backup_age_warning_hours"),
    ("vacuum_threshold_mb = -1", "vacuum_threshold_mb"),
    ("stale_leases_warning = 2.5", "stale_leases_warning"),
    ("analyze_interval_hours = [24]", "analyze_interval_hours"),
    ("fragmentation_warning_percent = 101", "fragmentation_warning_percent"),
    ("sample_interval_seconds = 0", "sample_interval_seconds"),
    ('backup_dir = "a\\u0000b"', "backup_dir"),
])
def test_a_value_outside_its_range_is_refused_and_the_rest_is_kept(
        tmp_path: Path, line: str, name: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"checkpoint_mode = \"full\"\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        MaintenanceConfig.load(path)
    assert f"Setting {name} in '{path}'" in str(caught.value)
    loaded = load_settings(path)
    assert len(loaded.refused) == 1
    assert str(caught.value) in loaded.refusal
    assert loaded.refusal.endswith("uses the default for each refused setting until it is "
                                   "fixed.")
    assert getattr(loaded.config, name) == getattr(MaintenanceConfig(), name)
    assert loaded.config.checkpoint_mode == "FULL"


def test_the_range_is_stated_in_the_sentence(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("stale_lease_timeout_seconds = 99999999999\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        MaintenanceConfig.load(path)
    assert str(caught.value) == (
        f"Setting stale_lease_timeout_seconds in '{path}' must be a whole number from 0 to "
        "10,000,000; got 99999999999.")


def test_every_bound_of_every_range_is_accepted_and_one_step_beyond_is_not() -> None:
    # warning levels at their lowest and critical levels at their highest never cross
    spread = {low: SETTING_RANGES[low][0] for low, _high in LEVEL_PAIRS}
    spread.update({high: SETTING_RANGES[high][1] for _low, high in LEVEL_PAIRS})
    for name, (low, high) in SETTING_RANGES.items():
        for value in (low, high):
            MaintenanceConfig(**{**spread, name: value}).validate()
        step = 1 if isinstance(high, int) else 0.5
        for beyond in (low - step, high + step):
            with pytest.raises(ConfigError, match=name):
                MaintenanceConfig(**{**spread, name: beyond}).validate()


def test_crossed_levels_both_fall_back_to_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("stale_leases_warning = 80\nstale_leases_critical = 40\n"
                    "wal_size_threshold_mb = 300\n", encoding="utf-8")
    loaded = load_settings(path)
    assert "warning level must not exceed" in loaded.refusal
    assert (loaded.config.stale_leases_warning, loaded.config.stale_leases_critical) == (10, 50)
    assert loaded.config.wal_size_threshold_mb == 300


def test_several_refusals_are_one_sentence_for_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("backup_retention_count = 0\nsample_interval_seconds = -1\n"
                    "colour = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        MaintenanceConfig.load(path)
    text = str(caught.value)
    assert text.startswith(f"Setting backup_retention_count in '{path}'")
    assert text.endswith("; 2 more settings are refused as well.")
    assert len(load_settings(path).refused) == 3


def test_a_refused_environment_variable_is_named_and_the_file_still_applies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text("backup_retention_count = 4\n", encoding="utf-8")
    monkeypatch.setenv("QUEUE_ADMIN_STALE_LEASE_TIMEOUT", "1e12")
    loaded = load_settings(path)
    assert "Environment variable QUEUE_ADMIN_STALE_LEASE_TIMEOUT" in loaded.refusal
    assert loaded.config.backup_retention_count == 4
    assert loaded.config.stale_lease_timeout_seconds == 300
