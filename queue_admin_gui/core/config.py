"""Maintenance settings: built-in defaults, then the TOML config file, then the environment.

The same settings drive the window, the monitor's warning levels and ``queue-admin-cli`` run
by Task Scheduler, so they live in one plain file an administrator can read and edit. Every
unusable value raises :class:`ConfigError` naming the key or variable and what it should be.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from .database import ENV_DB_PATH
from .errors import ConfigError, translate_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

APP_NAME = "queue-admin"
APP_AUTHOR = "PrismQ"
ENV_CONFIG_FILE = "QUEUE_ADMIN_CONFIG"
CHECKPOINT_MODES = ("PASSIVE", "FULL", "RESTART", "TRUNCATE")

#: Environment variable -> setting it overrides.
ENV_OVERRIDES: dict[str, str] = {
    "QUEUE_ADMIN_BACKUP_DIR": "backup_dir",
    "QUEUE_ADMIN_BACKUP_RETENTION": "backup_retention_count",
    "QUEUE_ADMIN_CHECKPOINT_MODE": "checkpoint_mode",
    "QUEUE_ADMIN_WAL_THRESHOLD_MB": "wal_size_threshold_mb",
    "QUEUE_ADMIN_VACUUM_THRESHOLD_MB": "vacuum_threshold_mb",
    "QUEUE_ADMIN_ANALYZE_INTERVAL_HOURS": "analyze_interval_hours",
    "QUEUE_ADMIN_STALE_LEASE_TIMEOUT": "stale_lease_timeout_seconds",
    ENV_DB_PATH: "db_path",
}


def user_data_dir() -> Path:
    """Per-user folder for the tool's data (default backups live below it)."""
    return Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))


def user_log_dir() -> Path:
    """Per-user folder for the activity log."""
    return Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR))


def config_file_path() -> Path:
    """The settings file: ``QUEUE_ADMIN_CONFIG`` if set, else ``config.toml`` in the config dir."""
    override = os.environ.get(ENV_CONFIG_FILE)
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR)) / "config.toml"


def _default_backup_dir() -> Path:
    return user_data_dir() / "backups"


@dataclass
class MaintenanceConfig:
    """How maintenance runs and when the monitor warns; field names are the file's keys."""

    backup_dir: Path = field(default_factory=_default_backup_dir)
    backup_retention_count: int = 10
    checkpoint_mode: str = "PASSIVE"
    wal_size_threshold_mb: int = 100
    wal_size_warning_mb: int = 50
    vacuum_threshold_mb: int = 500
    analyze_interval_hours: int = 24
    stale_lease_timeout_seconds: int = 300
    db_path: Path | None = None
    fragmentation_warning_percent: float = 10.0
    fragmentation_critical_percent: float = 20.0
    stale_leases_warning: int = 10
    stale_leases_critical: int = 50
    backup_age_warning_hours: float = 24.0
    backup_age_critical_hours: float = 72.0
    sample_interval_seconds: float = 1.0

    @classmethod
    def from_env(cls) -> MaintenanceConfig:
        """Defaults with the environment overrides applied (no config file)."""
        config = cls()
        config._apply_env(os.environ)
        config.validate()
        return config

    @classmethod
    def load(cls, path: Path | None = None) -> MaintenanceConfig:
        """Defaults, then the TOML file (if it exists), then environment overrides."""
        path = Path(path) if path is not None else config_file_path()
        config = cls()
        if path.is_file():
            config._apply_file(path)
        config._apply_env(os.environ)
        config.validate()
        return config

    def save(self, path: Path | None = None) -> Path:
        """Write the settings as TOML, atomically (temp file, then replace); return the path."""
        self.validate()
        path = Path(path) if path is not None else config_file_path()
        temporary = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            text = self.to_toml(self._values_to_save(path))
            with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            raise translate_error(error, f"Saving the settings to '{path}'", ConfigError) from error
        return path

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (paths as strings, an unset db_path as None)."""
        result: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            result[item.name] = str(value) if isinstance(value, Path) else value
        return result

    def to_toml(self, values: Mapping[str, Any] | None = None) -> str:
        """The settings as the text of a TOML file (unset values are left out)."""
        lines = ["# Queue Admin settings; environment variables override these values."]
        for name, value in (self.to_dict() if values is None else values).items():
            if value is not None:
                lines.append(f"{name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def _values_to_save(self, path: Path) -> dict[str, Any]:
        """What the file should hold: a value that only came from the environment stays out.

        A config loaded with :meth:`load` carries environment overrides; saving it (from the
        settings dialog, say) must not copy ``PRISMQ_QUEUE_DB_PATH`` and friends into the
        file. A setting still equal to its environment value keeps what the file had.
        """
        values = self.to_dict()
        overridden = MaintenanceConfig()
        overridden._apply_env(os.environ)
        from_env = {name: value for name, value in overridden.to_dict().items()
                    if _env_sets(name)}
        if not from_env:
            return values
        on_file: dict[str, Any] = {}
        if path.is_file():
            with contextlib.suppress(ConfigError, OSError):
                on_file = MaintenanceConfig._file_only(path).to_dict()
        for name, env_value in from_env.items():
            if values[name] == env_value:
                values[name] = on_file.get(name)
        return values

    @classmethod
    def _file_only(cls, path: Path) -> MaintenanceConfig:
        config = cls()
        config._apply_file(path)
        return config

    def validate(self) -> None:
        """Raise :class:`ConfigError` with one sentence when a setting cannot work."""
        mode = str(self.checkpoint_mode).upper()
        if mode not in CHECKPOINT_MODES:
            raise ConfigError(
                f"Setting checkpoint_mode is '{self.checkpoint_mode}'; use PASSIVE, FULL, "
                "RESTART or TRUNCATE."
            )
        self.checkpoint_mode = mode
        for name in ("backup_retention_count", "sample_interval_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"Setting {name} must be greater than 0; fix it in the "
                                  "settings file or the environment.")
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"Setting {item.name} is {value}; it cannot be negative.")
        for low, high in (
            ("wal_size_warning_mb", "wal_size_threshold_mb"),
            ("fragmentation_warning_percent", "fragmentation_critical_percent"),
            ("stale_leases_warning", "stale_leases_critical"),
            ("backup_age_warning_hours", "backup_age_critical_hours"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ConfigError(
                    f"Setting {low} ({getattr(self, low)}) is above {high} "
                    f"({getattr(self, high)}); the warning level must not exceed the critical one."
                )

    def _apply_file(self, path: Path) -> None:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(
                f"The settings file '{path}' is not valid TOML ({error}); fix or delete it."
            ) from error
        except OSError as error:
            raise translate_error(error, f"Reading the settings file '{path}'",
                                  ConfigError) from error
        known = {item.name for item in dataclasses.fields(self)}
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(
                    f"The settings file '{path}' has an unknown key '{key}'; remove it or "
                    f"correct its spelling (known keys: {', '.join(sorted(known))})."
                )
            setattr(self, key, self._coerce(key, raw, f"Key '{key}' in '{path}'"))

    def _apply_env(self, environment: Mapping[str, str]) -> None:
        for variable, name in ENV_OVERRIDES.items():
            raw = environment.get(variable)
            if raw is None or not raw.strip():
                continue
            setattr(self, name, self._coerce(name, raw.strip(),
                                             f"Environment variable {variable}"))

    def _coerce(self, name: str, raw: object, source: str) -> Any:
        """Convert a file or environment value to the field's type, or say what is expected."""
        kind = _FIELD_KINDS[name]
        from_text = isinstance(raw, str)
        if kind == "path":
            if not isinstance(raw, str) or not raw:
                raise ConfigError(f"{source} must be a folder or file path in quotes; "
                                  f"got {raw!r}.")
            return Path(raw)
        if kind == "str":
            if not isinstance(raw, str):
                raise ConfigError(f"{source} must be text such as \"PASSIVE\"; got {raw!r}.")
            return raw
        if kind == "int":
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
            if from_text:
                try:
                    return int(str(raw))
                except ValueError:
                    pass
            raise ConfigError(f"{source} must be a whole number such as 10; got {raw!r}.")
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = float(raw)
        else:
            try:
                value = float(str(raw)) if from_text else math.nan
            except ValueError:
                value = math.nan
        if not math.isfinite(value):
            raise ConfigError(f"{source} must be a number such as 1.5; got {raw!r}.")
        return value


def _env_sets(name: str) -> bool:
    """True when an environment variable overrides setting ``name`` right now."""
    return any(target == name and os.environ.get(variable, "").strip()
               for variable, target in ENV_OVERRIDES.items())


def _field_kinds() -> dict[str, str]:
    kinds = {}
    for item in dataclasses.fields(MaintenanceConfig):
        annotation = str(item.type)
        if "Path" in annotation:
            kinds[item.name] = "path"
        elif annotation == "str":
            kinds[item.name] = "str"
        elif annotation == "int":
            kinds[item.name] = "int"
        else:
            kinds[item.name] = "float"
    return kinds


_FIELD_KINDS = _field_kinds()


def _toml_value(value: object) -> str:
    """One TOML scalar: basic strings escaped, integers and finite floats as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    escaped = []
    for character in text:
        if character in ('"', "\\"):
            escaped.append("\\" + character)
        elif ord(character) < 0x20 or ord(character) == 0x7F:
            escaped.append(f"\\u{ord(character):04x}")
        else:
            escaped.append(character)
    return '"' + "".join(escaped) + '"'
