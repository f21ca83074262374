"""Maintenance settings: built-in defaults, then the TOML config file, then the environment.

The same settings drive the window, the monitor's warning levels and ``queue-admin-cli`` run
by Task Scheduler, so they live in one plain file an administrator can read and edit. Every
unusable value is a :class:`ConfigError` naming the file or variable, the key and what it
should be: the CLI stops on it (exit 2), the window starts on that setting's default and says
so once (:func:`load_settings`). Each setting is declared once, in :mod:`.catalog`; the
settings object here is made from those declarations.

The loader is written by hand rather than with pydantic-settings and tomli-w: it needs to
read Notepad's encodings, refuse one value while keeping the others, and write a flat file of
scalars, none of which those libraries would make shorter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ..errors import ConfigError, translate_error
from .catalog import SETTINGS, Setting, by_name
from .config_file import read_settings_file, toml_value
from .folders import config_file_path

SettingsType = TypeVar("SettingsType", bound="SettingsObject")


def declared_settings(declarations: Sequence[Setting]
                      ) -> Callable[[type[SettingsType]], type[SettingsType]]:
    """Make a settings class a dataclass whose fields are ``declarations``, in their order.

    Each :class:`~.catalog.Setting` becomes a field of its type with its default; the class
    keeps the declarations, from which it reads, checks and overrides its values.
    """
    def make(cls: type[SettingsType]) -> type[SettingsType]:
        cls.__annotations__ = {setting.name: setting.python_type for setting in declarations}
        for setting in declarations:
            default = (field(default_factory=setting.default) if callable(setting.default)
                       else field(default=setting.default))
            setattr(cls, setting.name, default)
        cls.declarations = tuple(declarations)
        return dataclass(cls)
    return make


class SettingsObject:
    """What every settings class does with its declared settings: read, check, save."""

    declarations: ClassVar[tuple[Setting, ...]] = ()

    @classmethod
    def setting(cls, name: str) -> Setting:
        """The declaration of setting ``name``."""
        return by_name(cls.declarations)[name]

    @classmethod
    def env_overrides(cls) -> dict[str, str]:
        """Environment variable -> the setting it overrides."""
        return {item.env_var: item.name for item in cls.declarations if item.env_var}

    @classmethod
    def level_pairs(cls) -> tuple[tuple[str, str], ...]:
        """(warning, critical) settings: the warning level must not exceed the critical one."""
        return tuple((item.name, item.warning_for) for item in cls.declarations
                     if item.warning_for)

    @classmethod
    def from_env(cls: type[SettingsType]) -> SettingsType:
        """Defaults with the environment overrides applied (no config file)."""
        return _strict(*cls._collect(None, os.environ))

    @classmethod
    def load(cls: type[SettingsType], path: Path | None = None) -> SettingsType:
        """Defaults, then the TOML file (if it exists), then environment overrides.

        Raises :class:`ConfigError` for the first refused setting (the CLI's behaviour);
        :func:`load_settings` keeps going on defaults instead (the window's).
        """
        path = Path(path) if path is not None else config_file_path()
        return _strict(*cls._collect(path, os.environ))

    @classmethod
    def _collect(cls: type[SettingsType], path: Path | None, environment: Mapping[str, str]
                 ) -> tuple[SettingsType, list[ConfigError]]:
        """Build a config from defaults, file and environment; a refused value keeps its default."""
        config = cls()
        refused: list[ConfigError] = []
        data: dict[str, Any] | None = None
        if path is not None:
            try:
                data = read_settings_file(path)
            except ConfigError as error:
                refused.append(error)
        declared = by_name(cls.declarations)
        for key, raw in (data or {}).items():
            if key not in declared:
                refused.append(ConfigError(
                    f"The settings file '{path}' has an unknown key '{key}'; remove it or "
                    f"correct its spelling (known keys: {', '.join(sorted(declared))})."))
                continue
            with _collecting(refused):
                setattr(config, key, declared[key].check(raw, f"Setting {key} in '{path}'"))
        for variable, name in cls.env_overrides().items():
            raw = environment.get(variable)
            if raw is None or not raw.strip():
                continue
            with _collecting(refused):
                setattr(config, name, declared[name].check(raw.strip(),
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
        overridden, _refused = type(self)._collect(None, os.environ)
        from_env = {name: value for name, value in overridden.to_dict().items()
                    if self._env_sets(name)}
        if not from_env:
            return values
        on_file, refused = type(self)._collect(path, {})
        kept = on_file.to_dict() if path.is_file() and not refused else {}
        for name, env_value in from_env.items():
            if values[name] == env_value:
                values[name] = kept.get(name)
        return values

    def validate(self) -> None:
        """Raise :class:`ConfigError` with one sentence when a setting cannot work.

        Each value must be of its kind and inside its declared range; each warning level
        must not exceed its critical level. A choice is normalised to capitals.
        """
        for item in self.declarations:
            value = getattr(self, item.name)
            if value is None and item.optional:
                continue
            raw = str(value) if isinstance(value, Path) else value
            setattr(self, item.name, item.check(raw, f"Setting {item.name}"))
        for problem in self._level_problems(""):
            raise problem

    @classmethod
    def _env_sets(cls, name: str) -> bool:
        """True when an environment variable overrides setting ``name`` right now."""
        return any(target == name and os.environ.get(variable, "").strip()
                   for variable, target in cls.env_overrides().items())

    def _level_problems(self, origin: str) -> list[ConfigError]:
        return [
            ConfigError(
                f"Setting {low} ({getattr(self, low)}) is above {high} "
                f"({getattr(self, high)}){origin}; the warning level must not exceed the "
                "critical one.")
            for low, high in self.level_pairs() if getattr(self, low) > getattr(self, high)
        ]

    def _reset_crossed_levels(self) -> None:
        """Put both halves of a crossed warning/critical pair back to their defaults."""
        defaults = {item.name: item.default_value() for item in self.declarations}
        for low, high in self.level_pairs():
            if getattr(self, low) > getattr(self, high):
                setattr(self, low, defaults[low])
                setattr(self, high, defaults[high])


@declared_settings(SETTINGS)
class MaintenanceConfig(SettingsObject):
    """How maintenance runs and when the monitor warns; field names are the file's keys.

    Its fields are the settings of :data:`~.catalog.SETTINGS`, each with its declared type
    and default.
    """


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


def checked_value(name: str, raw: object, source: str) -> Any:
    """Convert a file, environment or dialog value for setting ``name``, or say what fits.

    Numbers may be written as text ("12"); each must lie in the setting's range.
    """
    return MaintenanceConfig.setting(name).check(raw, source)
