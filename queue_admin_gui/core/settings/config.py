"""Maintenance settings: built-in defaults, then the TOML config file, then the environment.

The same settings drive the window, the monitor's warning levels and ``queue-admin-cli`` run
by Task Scheduler, so they live in one plain file an administrator can read and edit. Every
unusable value is a :class:`ConfigError` naming the file or variable, the key and what it
should be: the CLI stops on it (exit 2), the window starts on that setting's default and says
so once (:func:`load_settings`). Each number setting has one range, :data:`SETTING_RANGES`.

The loader is written by hand rather than with pydantic-settings and tomli-w: it needs to
read Notepad's encodings, refuse one value while keeping the others, and write a flat file of
scalars, none of which those libraries would make shorter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from ..errors import ConfigError, translate_error
from ..files.db_files import ENV_DB_PATH
from .config_file import read_settings_file, toml_value

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
    "QUEUE_ADMIN_EVENT_LOG": "event_log_enabled",
    "QUEUE_ADMIN_ARCHIVE_KEEP_DAYS": "archive_retention_days",
    ENV_DB_PATH: "db_path",
}

#: The one range of each number setting. The file, the environment, the settings dialog,
#: the CLI and the engine all accept exactly these values. Every bound fits a QSpinBox
#: (at most 2**31 - 1) and the largest sample interval fits a QTimer's int milliseconds.
SETTING_RANGES: dict[str, tuple[float, float]] = {
    "backup_retention_count": (1, 10_000),
    "wal_size_threshold_mb": (0, 1_000_000),
    "wal_size_warning_mb": (0, 1_000_000),
    "vacuum_threshold_mb": (0, 10_000_000),
    "analyze_interval_hours": (0, 100_000),
    "stale_lease_timeout_seconds": (0, 10_000_000),
    "fragmentation_warning_percent": (0.0, 100.0),
    "fragmentation_critical_percent": (0.0, 100.0),
    "stale_leases_warning": (0, 10_000_000),
    "stale_leases_critical": (0, 10_000_000),
    "backup_age_warning_hours": (0.0, 100_000.0),
    "backup_age_critical_hours": (0.0, 100_000.0),
    "sample_interval_seconds": (0.1, 3600.0),
    "archive_retention_days": (0.1, 36_500.0),
    "archive_validate_minutes": (0.0, 10_080.0),
}

#: (warning, critical) settings: the warning level must not exceed the critical one.
LEVEL_PAIRS = (
    ("wal_size_warning_mb", "wal_size_threshold_mb"),
    ("fragmentation_warning_percent", "fragmentation_critical_percent"),
    ("stale_leases_warning", "stale_leases_critical"),
    ("backup_age_warning_hours", "backup_age_critical_hours"),
)


def user_data_dir() -> Path:
    """Per-user folder for the tool's data (default backups live below it)."""
    return Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))


def user_log_dir() -> Path:
    """Per-user folder for the activity log."""
    return Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR))


def user_state_dir() -> Path:
    """Per-user folder for what the tool keeps between runs (where a damage scan stopped)."""
    return Path(platformdirs.user_state_dir(APP_NAME, APP_AUTHOR))


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
    #: Closing the window leaves the monitor running in the tray (quit from the tray menu).
    keep_running_in_tray: bool = False
    #: Maintenance outcomes also go to the Windows Event Log (syslog elsewhere).
    event_log_enabled: bool = True
    #: The point-in-time archive the window writes and reads; unset: ``<backup_dir>/archive``.
    archive_dir: Path | None = None
    #: Point-in-time archive: generations whose newest instant is older are deleted whole.
    archive_retention_days: float = 7.0
    #: Point-in-time archive: the archiver validates the archive against the live file this
    #: often (0: only when asked).
    archive_validate_minutes: float = 10.0

    @classmethod
    def from_env(cls) -> MaintenanceConfig:
        """Defaults with the environment overrides applied (no config file)."""
        return _strict(*cls._collect(None, os.environ))

    @classmethod
    def load(cls, path: Path | None = None) -> MaintenanceConfig:
        """Defaults, then the TOML file (if it exists), then environment overrides.

        Raises :class:`ConfigError` for the first refused setting (the CLI's behaviour);
        :func:`load_settings` keeps going on defaults instead (the window's).
        """
        path = Path(path) if path is not None else config_file_path()
        return _strict(*cls._collect(path, os.environ))

    @classmethod
    def _collect(cls, path: Path | None, environment: Mapping[str, str]
                 ) -> tuple[MaintenanceConfig, list[ConfigError]]:
        """Build a config from defaults, file and environment; a refused value keeps its default."""
        config = cls()
        refused: list[ConfigError] = []
        data: dict[str, Any] | None = None
        if path is not None:
            try:
                data = read_settings_file(path)
            except ConfigError as error:
                refused.append(error)
        known = {item.name for item in dataclasses.fields(cls)}
        for key, raw in (data or {}).items():
            if key not in known:
                refused.append(ConfigError(
                    f"The settings file '{path}' has an unknown key '{key}'; remove it or "
                    f"correct its spelling (known keys: {', '.join(sorted(known))})."))
                continue
            with _collecting(refused):
                setattr(config, key, checked_value(key, raw, f"Setting {key} in '{path}'"))
        for variable, name in ENV_OVERRIDES.items():
            raw = environment.get(variable)
            if raw is None or not raw.strip():
                continue
            with _collecting(refused):
                setattr(config, name, checked_value(name, raw.strip(),
                                                    f"Environment variable {variable}"))
        origin = "" if path is None else f" (from '{path}' or the environment)"
        for problem in config._level_problems(origin):
            refused.append(problem)
        if refused:
            config._reset_crossed_levels()
        return config, refused

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
                lines.append(f"{name} = {toml_value(value)}")
        return "\n".join(lines) + "\n"

    def _values_to_save(self, path: Path) -> dict[str, Any]:
        """What the file should hold: a value that only came from the environment stays out.

        A config loaded with :meth:`load` carries environment overrides; saving it (from the
        settings dialog, say) must not copy ``PRISMQ_QUEUE_DB_PATH`` and friends into the
        file. A setting still equal to its environment value keeps what the file had.
        """
        values = self.to_dict()
        overridden, _refused = MaintenanceConfig._collect(None, os.environ)
        from_env = {name: value for name, value in overridden.to_dict().items()
                    if _env_sets(name)}
        if not from_env:
            return values
        on_file, refused = MaintenanceConfig._collect(path, {})
        kept = on_file.to_dict() if path.is_file() and not refused else {}
        for name, env_value in from_env.items():
            if values[name] == env_value:
                values[name] = kept.get(name)
        return values

    def validate(self) -> None:
        """Raise :class:`ConfigError` with one sentence when a setting cannot work.

        Each value must be of its kind and inside :data:`SETTING_RANGES`; each warning level
        must not exceed its critical level. The checkpoint mode is normalised to capitals.
        """
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is None and item.name in ("db_path", "archive_dir"):
                continue
            raw = str(value) if isinstance(value, Path) else value
            setattr(self, item.name, checked_value(item.name, raw, f"Setting {item.name}"))
        for problem in self._level_problems(""):
            raise problem

    def _level_problems(self, origin: str) -> list[ConfigError]:
        return [
            ConfigError(
                f"Setting {low} ({getattr(self, low)}) is above {high} "
                f"({getattr(self, high)}){origin}; the warning level must not exceed the "
                "critical one.")
            for low, high in LEVEL_PAIRS if getattr(self, low) > getattr(self, high)
        ]

    def _reset_crossed_levels(self) -> None:
        """Put both halves of a crossed warning/critical pair back to their defaults."""
        defaults = {item.name: item.default for item in dataclasses.fields(self)}
        for low, high in LEVEL_PAIRS:
            if getattr(self, low) > getattr(self, high):
                setattr(self, low, defaults[low])
                setattr(self, high, defaults[high])


@dataclass(frozen=True)
class LoadedSettings:
    """The settings the window starts with, and each value that was refused on the way."""

    config: MaintenanceConfig
    path: Path
    refused: tuple[ConfigError, ...] = ()

    @property
    def refusal(self) -> str:
        """What to tell the user once: every refusal, then that defaults stand in; or ""."""
        if not self.refused:
            return ""
        return (" ".join(str(error) for error in self.refused)
                + " Queue Admin uses the default for each refused setting until it is fixed.")


def load_settings(path: Path | None = None) -> LoadedSettings:
    """Settings for a window that must start whatever the file holds.

    Like :meth:`MaintenanceConfig.load`, but a refused file, key or variable falls back to
    its default and is listed in :attr:`LoadedSettings.refused` instead of raising.
    """
    path = Path(path) if path is not None else config_file_path()
    config, refused = MaintenanceConfig._collect(path, os.environ)
    return LoadedSettings(config, path, tuple(refused))


def _strict(config: MaintenanceConfig, refused: list[ConfigError]) -> MaintenanceConfig:
    """The config, or the first refusal raised (noting how many more there are)."""
    if not refused:
        return config
    first = refused[0]
    if len(refused) == 1:
        raise first
    more = len(refused) - 1
    raise ConfigError(f"{str(first).rstrip('.')}; {more} more setting"
                      f"{'s are' if more > 1 else ' is'} refused as well.", first.kind)


@contextlib.contextmanager
def _collecting(refused: list[ConfigError]) -> Iterator[None]:
    """Record a ConfigError raised inside the block and carry on."""
    try:
        yield
    except ConfigError as error:
        refused.append(error)


def _bound(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def checked_value(name: str, raw: object, source: str) -> Any:
    """Convert a file, environment or dialog value for setting ``name``, or say what fits.

    Numbers may be written as text ("12"); each must lie in the setting's range.
    """
    kind = _FIELD_KINDS[name]
    if kind == "bool":
        return _checked_switch(raw, source)
    if kind == "path":
        if not isinstance(raw, str) or not raw or "\x00" in raw:
            raise ConfigError(f"{source} must be a folder or file path in quotes; "
                              f"got {raw!r}.")
        return Path(raw)
    if kind == "str":
        mode = raw.strip().upper() if isinstance(raw, str) else None
        if mode not in CHECKPOINT_MODES:
            raise ConfigError(f"{source} is {raw!r}; use PASSIVE, FULL, RESTART or TRUNCATE.")
        return mode
    low, high = SETTING_RANGES[name]
    value: float | int | None = None
    if isinstance(raw, bool):
        value = None
    elif kind == "int":
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, str):
            with contextlib.suppress(ValueError):
                value = int(raw)
    elif isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str):
        with contextlib.suppress(ValueError):
            value = float(raw)
    if value is None or not math.isfinite(value) or not low <= value <= high:
        what = "a whole number" if kind == "int" else "a number"
        raise ConfigError(f"{source} must be {what} from {_bound(low)} to {_bound(high)}; "
                          f"got {raw!r}.")
    return value


#: How a switch may be written in the file, the environment or a dialog.
_SWITCH_WORDS = {"true": True, "yes": True, "on": True, "1": True,
                 "false": False, "no": False, "off": False, "0": False}


def _checked_switch(raw: object, source: str) -> bool:
    if isinstance(raw, bool):
        return raw
    word = raw.strip().lower() if isinstance(raw, str) else None
    if word not in _SWITCH_WORDS:
        raise ConfigError(f"{source} must be true or false; got {raw!r}.")
    return _SWITCH_WORDS[word]


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
        elif annotation == "bool":
            kinds[item.name] = "bool"
        elif annotation == "str":
            kinds[item.name] = "str"
        elif annotation == "int":
            kinds[item.name] = "int"
        else:
            kinds[item.name] = "float"
    return kinds


_FIELD_KINDS = _field_kinds()
