"""MaintenanceConfig: defaults, environment overrides, the TOML file, round trips, bad values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from queue_admin_gui.core.errors import ConfigError, ErrorKind
from queue_admin_gui.core.settings.catalog import ENV_OVERRIDES
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.core.settings.folders import config_file_path, user_data_dir, user_log_dir


def test_defaults_follow_the_original_design(isolated_dirs: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRISMQ_QUEUE_DB_PATH")
    config = MaintenanceConfig.from_env()
    assert config.backup_dir == user_data_dir() / "backups"
    assert str(config.backup_dir).startswith(str(isolated_dirs))
    assert (config.backup_retention_count, config.checkpoint_mode) == (10, "PASSIVE")
    assert (config.wal_size_threshold_mb, config.wal_size_warning_mb) == (100, 50)
    assert (config.vacuum_threshold_mb, config.analyze_interval_hours) == (500, 24)
    assert config.stale_lease_timeout_seconds == 300
    assert config.db_path is None
    assert (config.fragmentation_warning_percent, config.fragmentation_critical_percent) == (10, 20)
    assert (config.stale_leases_warning, config.stale_leases_critical) == (10, 50)
    assert (config.backup_age_warning_hours, config.backup_age_critical_hours) == (24, 72)
    assert config.sample_interval_seconds == 1.0
    floats = ("fragmentation_warning_percent", "fragmentation_critical_percent",
              "backup_age_warning_hours", "backup_age_critical_hours", "sample_interval_seconds")
    assert all(type(getattr(config, name)) is float for name in floats)  # the dialog relies on it


def test_platform_folders_live_under_the_user_dirs(isolated_dirs: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert str(user_data_dir()).startswith(str(isolated_dirs))
    assert "queue-admin" in str(user_log_dir())
    assert config_file_path().name == "config.toml"
    assert str(config_file_path()).startswith(str(isolated_dirs))
    monkeypatch.setenv("QUEUE_ADMIN_CONFIG", str(isolated_dirs / "elsewhere.toml"))
    assert config_file_path() == isolated_dirs / "elsewhere.toml"


def test_every_environment_variable_overrides_its_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "QUEUE_ADMIN_BACKUP_DIR": str(tmp_path / "my backups"),
        "QUEUE_ADMIN_BACKUP_RETENTION": "3",
        "QUEUE_ADMIN_CHECKPOINT_MODE": "truncate",
        "QUEUE_ADMIN_WAL_THRESHOLD_MB": "250",
        "QUEUE_ADMIN_VACUUM_THRESHOLD_MB": "42",
        "QUEUE_ADMIN_ANALYZE_INTERVAL_HOURS": " 6 ",
        "QUEUE_ADMIN_STALE_LEASE_TIMEOUT": "90",
        "QUEUE_ADMIN_EVENT_LOG": "Off",
        "QUEUE_ADMIN_ARCHIVE_KEEP_DAYS": "2.5",
        "PRISMQ_QUEUE_DB_PATH": str(tmp_path / "q dir" / "queue.db"),
    }
    assert set(values) == set(ENV_OVERRIDES)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    config = MaintenanceConfig.from_env()
    assert config.backup_dir == tmp_path / "my backups"
    assert config.backup_retention_count == 3
    assert config.checkpoint_mode == "TRUNCATE"
    assert config.wal_size_threshold_mb == 250
    assert config.vacuum_threshold_mb == 42
    assert config.analyze_interval_hours == 6
    assert config.stale_lease_timeout_seconds == 90
    assert config.event_log_enabled is False
    assert config.archive_retention_days == 2.5
    assert config.db_path == tmp_path / "q dir" / "queue.db"


def test_an_empty_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_ADMIN_BACKUP_RETENTION", "  ")
    monkeypatch.setenv("PRISMQ_QUEUE_DB_PATH", "")
    config = MaintenanceConfig.from_env()
    assert config.backup_retention_count == 10
    assert config.db_path is None


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("QUEUE_ADMIN_BACKUP_RETENTION", "ten", "whole number"),
    ("QUEUE_ADMIN_STALE_LEASE_TIMEOUT", "1.5", "whole number"),
    ("QUEUE_ADMIN_CHECKPOINT_MODE", "SOMETIMES", "PASSIVE, FULL, RESTART or TRUNCATE"),
    ("QUEUE_ADMIN_BACKUP_RETENTION", "0", "whole number from 1 to 10,000; got '0'"),
    ("QUEUE_ADMIN_WAL_THRESHOLD_MB", "-5", "whole number from 0 to 1,000,000; got '-5'"),
    ("QUEUE_ADMIN_WAL_THRESHOLD_MB", "20", "warning level must not exceed"),
])
def test_a_bad_environment_value_names_the_problem(
        monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        MaintenanceConfig.from_env()
    assert expected in str(caught.value)
    assert caught.value.kind is ErrorKind.INVALID
    if "whole number" in expected:
        assert variable in str(caught.value)


def test_load_layers_defaults_then_file_then_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings dir" / "config.toml"
    path.parent.mkdir()
    path.write_text(
        'backup_dir = "D:/Backups/queue"\n'
        "backup_retention_count = 4\n"
        'checkpoint_mode = "full"\n'
        "fragmentation_warning_percent = 12.5\n"
        "sample_interval_seconds = 2\n"
        "stale_lease_timeout_seconds = 120\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("QUEUE_ADMIN_STALE_LEASE_TIMEOUT", "45")
    config = MaintenanceConfig.load(path)
    assert config.backup_dir == Path("D:/Backups/queue")
    assert config.backup_retention_count == 4
    assert config.checkpoint_mode == "FULL"
    assert config.fragmentation_warning_percent == 12.5
    assert config.sample_interval_seconds == 2.0
    assert config.stale_lease_timeout_seconds == 45  # the environment wins over the file
    assert config.vacuum_threshold_mb == 500  # untouched keys keep their defaults


def test_load_reads_the_default_file_and_works_without_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert not config_file_path().exists()
    assert MaintenanceConfig.load() == MaintenanceConfig.from_env()
    monkeypatch.setenv("QUEUE_ADMIN_CONFIG", str(tmp_path / "picked.toml"))
    (tmp_path / "picked.toml").write_text("backup_retention_count = 7\n", encoding="utf-8")
    assert MaintenanceConfig.load().backup_retention_count == 7


def test_save_then_load_round_trips_every_setting(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRISMQ_QUEUE_DB_PATH")
    original = MaintenanceConfig(
        backup_dir=tmp_path / 'odd "name" \\ with\ttab',
        backup_retention_count=3, checkpoint_mode="RESTART", wal_size_threshold_mb=80,
        wal_size_warning_mb=40, db_path=tmp_path / "q.db", fragmentation_warning_percent=7.5,
        sample_interval_seconds=0.25,
    )
    written = original.save()
    assert written == config_file_path()
    assert not written.with_name(written.name + ".tmp").exists()
    assert MaintenanceConfig.load() == original
    assert MaintenanceConfig.load().to_dict() == original.to_dict()


def test_save_leaves_out_an_unset_database_path(tmp_path: Path) -> None:
    path = MaintenanceConfig().save(tmp_path / "c.toml")
    assert "db_path" not in path.read_text(encoding="utf-8")
    assert MaintenanceConfig().to_dict()["db_path"] is None
    assert isinstance(MaintenanceConfig().to_dict()["backup_dir"], str)


def test_save_refuses_an_invalid_config_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="checkpoint_mode"):
        MaintenanceConfig(checkpoint_mode="NOW").save(tmp_path / "c.toml")
    assert not (tmp_path / "c.toml").exists()


def test_save_into_an_unwritable_place_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="Saving the settings"):
        MaintenanceConfig().save(blocker / "config.toml")


@pytest.mark.parametrize(("text", "expected"), [
    ("backup_retention_count = \"ten\"\n", "Setting backup_retention_count in"),
    ("backup_retention_count = true\n", "whole number"),
    ("sample_interval_seconds = \"fast\"\n", "must be a number"),
    ("checkpoint_mode = 3\n", "use PASSIVE, FULL, RESTART or TRUNCATE"),
    ("backup_dir = 5\n", "folder or file path"),
    ("backup_dir = \"\"\n", "folder or file path"),
    ("retention = 3\n", "unknown key 'retention'"),
    ("backup_retention_count = \n", "not valid TOML"),
])
def test_a_bad_file_value_names_the_key_and_the_file(
        tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        MaintenanceConfig.load(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


def test_numbers_written_as_text_in_the_file_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('backup_retention_count = "12"\nbackup_age_warning_hours = "1.5"\n',
                    encoding="utf-8")
    config = MaintenanceConfig.load(path)
    assert (config.backup_retention_count, config.backup_age_warning_hours) == (12, 1.5)


def test_validate_normalises_the_checkpoint_mode() -> None:
    config = MaintenanceConfig(checkpoint_mode="truncate")
    config.validate()
    assert config.checkpoint_mode == "TRUNCATE"
    with pytest.raises(ConfigError, match="stale_leases_warning"):
        MaintenanceConfig(stale_leases_warning=60).validate()


def test_saving_a_loaded_config_keeps_environment_values_out_of_the_file(tmp_path, monkeypatch):
    config_file = tmp_path / "settings" / "config.toml"
    MaintenanceConfig(backup_dir=tmp_path / "file backups", stale_lease_timeout_seconds=120,
                      checkpoint_mode="FULL").save(config_file)
    monkeypatch.setenv("PRISMQ_QUEUE_DB_PATH", str(tmp_path / "from env.db"))
    monkeypatch.setenv("QUEUE_ADMIN_BACKUP_DIR", str(tmp_path / "env backups"))
    monkeypatch.setenv("QUEUE_ADMIN_CHECKPOINT_MODE", "TRUNCATE")

    loaded = MaintenanceConfig.load(config_file)
    assert loaded.db_path == tmp_path / "from env.db"
    assert loaded.backup_dir == tmp_path / "env backups"
    edited = dataclasses.replace(loaded, stale_lease_timeout_seconds=900,
                                 checkpoint_mode="RESTART")
    edited.save(config_file)

    text = config_file.read_text(encoding="utf-8")
    assert "from env.db" not in text and "db_path" not in text
    assert "env backups" not in text and "file backups" in text
    assert 'checkpoint_mode = "RESTART"' in text
    for variable in ("PRISMQ_QUEUE_DB_PATH", "QUEUE_ADMIN_BACKUP_DIR",
                     "QUEUE_ADMIN_CHECKPOINT_MODE"):
        monkeypatch.delenv(variable)
    reloaded = MaintenanceConfig.load(config_file)
    assert reloaded.db_path is None
    assert reloaded.backup_dir == tmp_path / "file backups"
    assert reloaded.stale_lease_timeout_seconds == 900
    assert reloaded.checkpoint_mode == "RESTART"


@pytest.mark.parametrize(("raw", "expected"), [
    (True, True), (False, False), ("yes", True), (" ON ", True), ("0", False), ("false", False)])
def test_switches_accept_true_and_false_in_their_spellings(raw: object, expected: bool) -> None:
    config = MaintenanceConfig(keep_running_in_tray=raw, event_log_enabled=raw)  # type: ignore[arg-type]
    config.validate()
    assert config.keep_running_in_tray is expected and config.event_log_enabled is expected


@pytest.mark.parametrize("raw", [2, "maybe", 1.0, None])
def test_a_switch_refuses_anything_else(raw: object, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"keep_running_in_tray = {'2' if raw == 2 else repr(str(raw))}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="keep_running_in_tray .* must be true or false"):
        MaintenanceConfig.load(path)


def test_switches_default_to_tray_off_and_event_log_on_and_survive_saving(tmp_path: Path) -> None:
    config = MaintenanceConfig()
    assert config.keep_running_in_tray is False and config.event_log_enabled is True
    config.keep_running_in_tray = True
    config.event_log_enabled = False
    saved = config.save(tmp_path / "config.toml")
    assert "keep_running_in_tray = true" in saved.read_text(encoding="utf-8")
    loaded = MaintenanceConfig.load(saved)
    assert loaded.keep_running_in_tray is True and loaded.event_log_enabled is False
