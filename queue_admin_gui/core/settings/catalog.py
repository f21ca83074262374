"""Every setting, declared once: its kind, default, range, variable, label, unit and help.

:data:`SETTINGS` is the one place a setting is declared. The settings object
(:class:`~.config.MaintenanceConfig`), reading and checking the file, the environment
overrides, the warning/critical pairs, the Settings dialog's rows and the settings table in
the user guide are all made from it, so adding a setting is adding one :class:`Setting`.
``python -m queue_admin_gui.core.settings.catalog`` prints the user guide's table.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files.db_files import ENV_DB_PATH
from .folders import default_backup_dir

CHECKPOINT_MODES = ("PASSIVE", "FULL", "RESTART", "TRUNCATE")

#: The kinds a setting can be, each read and shown its own way.
KIND_INT = "int"
KIND_FLOAT = "float"
KIND_SWITCH = "switch"
KIND_CHOICE = "choice"
KIND_PATH = "path"

#: The Settings dialog's groups, in the order it shows them.
GROUP_GENERAL = "General"
GROUP_BACKUPS = "Backups"
GROUP_WAL = "WAL and checkpoints"
GROUP_OPTIMIZATION = "Optimization"
GROUP_MONITORING = "Leases and monitoring"
DIALOG_GROUPS = (GROUP_GENERAL, GROUP_BACKUPS, GROUP_WAL, GROUP_OPTIMIZATION, GROUP_MONITORING)

#: How a switch may be written in the file, the environment or a dialog.
SWITCH_WORDS = {"true": True, "yes": True, "on": True, "1": True,
                "false": False, "no": False, "off": False, "0": False}


@dataclass(frozen=True)
class Setting:
    """One setting: everything the settings object, the file, the dialog and the docs need.

    ``default`` is the value, or a function returning it (for a per-user folder).
    ``number_range`` bounds a number setting (both ends allowed); every bound fits a
    QSpinBox (at most 2**31 - 1). ``env_var`` overrides the file when set. A setting with a
    ``group`` has a row in that group of the Settings dialog: ``label`` names it there and
    in refusals, ``unit`` follows its value (" MB"), ``help`` is its tooltip and its
    description in the user guide. ``optional`` allows no value at all (None).
    ``warning_for`` names the critical level this warning level must not exceed.
    ``default_shown`` is how the user guide writes a default computed per user.
    """

    name: str
    kind: str
    default: Any
    help: str
    number_range: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()
    env_var: str | None = None
    label: str = ""
    unit: str = ""
    group: str = ""
    optional: bool = False
    warning_for: str | None = None
    default_shown: str = ""

    @property
    def python_type(self) -> Any:
        """The type of the settings object's field."""
        base = {KIND_INT: int, KIND_FLOAT: float, KIND_SWITCH: bool, KIND_CHOICE: str,
                KIND_PATH: Path}[self.kind]
        return base | None if self.optional else base

    def default_value(self) -> Any:
        """The built-in value (computed now for a per-user folder)."""
        return self.default() if callable(self.default) else self.default

    def check(self, raw: object, source: str) -> Any:
        """Convert a file, environment or dialog value, or raise ConfigError saying what fits.

        Numbers may be written as text ("12"); each must lie in :attr:`number_range`.
        ``source`` opens the sentence ("Setting x in 'file'", "Environment variable X").
        """
        if self.kind == KIND_SWITCH:
            return _checked_switch(raw, source)
        if self.kind == KIND_PATH:
            if not isinstance(raw, str) or not raw or "\x00" in raw:
                raise ConfigError(f"{source} must be a folder or file path in quotes; "
                                  f"got {raw!r}.")
            return Path(raw)
        if self.kind == KIND_CHOICE:
            choice = raw.strip().upper() if isinstance(raw, str) else None
            if choice not in self.choices:
                listed = ", ".join(self.choices[:-1]) + " or " + self.choices[-1]
                raise ConfigError(f"{source} is {raw!r}; use {listed}.")
            return choice
        return self._checked_number(raw, source)

    def _checked_number(self, raw: object, source: str) -> int | float:
        low, high = self.number_range or (-math.inf, math.inf)
        value: float | int | None = None
        if isinstance(raw, bool):
            value = None
        elif self.kind == KIND_INT:
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
            what = "a whole number" if self.kind == KIND_INT else "a number"
            raise ConfigError(f"{source} must be {what} from {number_text(low)} to "
                              f"{number_text(high)}; got {raw!r}.")
        return value

    def range_text(self) -> str:
        """The range as the user guide writes it: "0 to 1,000,000 MB"."""
        if self.number_range is None:
            if self.kind == KIND_CHOICE:
                return ", ".join(self.choices)
            if self.kind == KIND_SWITCH:
                return "true or false"
            return "a path" + (" or unset" if self.optional else "")
        low, high = self.number_range
        return f"{number_text(low)} to {number_text(high)}{self.unit}"

    def default_text(self) -> str:
        """The default as the user guide writes it."""
        if self.default_shown:
            return self.default_shown
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, (int, float)):
            return f"{number_text(self.default)}{self.unit}"
        return str(self.default)


def number_text(value: float) -> str:
    """A bound or default as people write it: 10,000 or 0.1."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _checked_switch(raw: object, source: str) -> bool:
    if isinstance(raw, bool):
        return raw
    word = raw.strip().lower() if isinstance(raw, str) else None
    if word not in SWITCH_WORDS:
        raise ConfigError(f"{source} must be true or false; got {raw!r}.")
    return SWITCH_WORDS[word]


SETTINGS: tuple[Setting, ...] = (
    Setting("backup_dir", KIND_PATH, default_backup_dir, env_var="QUEUE_ADMIN_BACKUP_DIR",
            default_shown="`backups` in the per-user data folder",
            label="Backup folder", group=GROUP_GENERAL,
            help="Folder where backups are written and listed."),
    Setting("checkpoint_mode", KIND_CHOICE, "PASSIVE", choices=CHECKPOINT_MODES,
            env_var="QUEUE_ADMIN_CHECKPOINT_MODE", label="Checkpoint mode",
            group=GROUP_GENERAL, help="Checkpoint mode scheduled maintenance uses."),
    Setting("keep_running_in_tray", KIND_SWITCH, False,
            label="Keep monitoring in the tray when the window is closed", group=GROUP_GENERAL,
            help="Closing the window hides it; the tray icon keeps showing the health and "
                 "notifies when it changes. Quit from the tray icon's menu."),
    Setting("event_log_enabled", KIND_SWITCH, True, env_var="QUEUE_ADMIN_EVENT_LOG",
            label="Report maintenance outcomes to the Windows Event Log", group=GROUP_GENERAL,
            help="Backups, restores, checkpoints and the other maintenance runs, from this "
                 "window and from queue-admin-cli, are also written to the Application log "
                 "under the source 'Queue Admin' (to syslog on other systems)."),
    Setting("backup_retention_count", KIND_INT, 10, number_range=(1, 10_000),
            env_var="QUEUE_ADMIN_BACKUP_RETENTION", label="Keep newest backups",
            group=GROUP_BACKUPS,
            help="How many backups 'Keep newest' and scheduled pruning leave in the folder."),
    Setting("backup_age_warning_hours", KIND_FLOAT, 24.0, number_range=(0.0, 100_000.0),
            label="Backup age warning", unit=" h", group=GROUP_BACKUPS,
            warning_for="backup_age_critical_hours",
            help="Health turns to Warning when the newest backup is older than this."),
    Setting("backup_age_critical_hours", KIND_FLOAT, 72.0, number_range=(0.0, 100_000.0),
            label="Backup age critical", unit=" h", group=GROUP_BACKUPS,
            help="Health turns to Critical when the newest backup is older than this."),
    Setting("archive_retention_days", KIND_FLOAT, 7.0, number_range=(0.1, 36_500.0),
            env_var="QUEUE_ADMIN_ARCHIVE_KEEP_DAYS", label="Keep archive for", unit=" days",
            group=GROUP_BACKUPS,
            help="Point-in-time archive: the archiver (the window's and queue-admin-cli "
                 "archive) deletes whole generations whose newest instant is older than "
                 "this; the queue can be restored to any instant within it."),
    Setting("archive_validate_minutes", KIND_FLOAT, 10.0, number_range=(0.0, 10_080.0),
            label="Validate archive every", unit=" min", group=GROUP_BACKUPS,
            help="Point-in-time archive: the archiver rebuilds the newest archived commit "
                 "this often and compares it page by page with the live file at the same "
                 "commit; a difference is reported and a new snapshot taken. 0 validates "
                 "only when asked."),
    Setting("archive_low_priority", KIND_SWITCH, True,
            label="Archive at below-normal priority", group=GROUP_BACKUPS,
            help="Point-in-time archive: the archiver's thread (the window's and "
                 "queue-admin-cli archive's) runs at below-normal CPU priority (and on Linux "
                 "the lowest best-effort I/O priority), so it never takes a core from the "
                 "workers or a restore; it still uses every idle cycle."),
    Setting("wal_size_warning_mb", KIND_INT, 50, number_range=(0, 1_000_000),
            label="WAL warning size", unit=" MB", group=GROUP_WAL,
            warning_for="wal_size_threshold_mb",
            help="Health turns to Warning when the -wal file reaches this size."),
    Setting("wal_size_threshold_mb", KIND_INT, 100, number_range=(0, 1_000_000),
            env_var="QUEUE_ADMIN_WAL_THRESHOLD_MB", label="WAL critical size", unit=" MB",
            group=GROUP_WAL,
            help="Health turns to Critical when the -wal file reaches this size."),
    Setting("fragmentation_warning_percent", KIND_FLOAT, 10.0, number_range=(0.0, 100.0),
            label="Free pages warning", unit=" %", group=GROUP_OPTIMIZATION,
            warning_for="fragmentation_critical_percent",
            help="Health turns to Warning when this share of pages is free (VACUUM "
                 "reclaims them)."),
    Setting("fragmentation_critical_percent", KIND_FLOAT, 20.0, number_range=(0.0, 100.0),
            label="Free pages critical", unit=" %", group=GROUP_OPTIMIZATION,
            help="Health turns to Critical when this share of pages is free."),
    Setting("vacuum_threshold_mb", KIND_INT, 500, number_range=(0, 10_000_000),
            env_var="QUEUE_ADMIN_VACUUM_THRESHOLD_MB", label="VACUUM above", unit=" MB",
            group=GROUP_OPTIMIZATION,
            help="Scheduled optimization vacuums only when the database is larger than this."),
    Setting("analyze_interval_hours", KIND_INT, 24, number_range=(0, 100_000),
            env_var="QUEUE_ADMIN_ANALYZE_INTERVAL_HOURS", label="ANALYZE every", unit=" h",
            group=GROUP_OPTIMIZATION,
            help="Scheduled optimization re-runs ANALYZE after this many hours."),
    Setting("stale_lease_timeout_seconds", KIND_INT, 300, number_range=(0, 10_000_000),
            env_var="QUEUE_ADMIN_STALE_LEASE_TIMEOUT", label="Stale lease after", unit=" s",
            group=GROUP_MONITORING,
            help="A lease expired for longer than this counts as stale and may be requeued."),
    Setting("stale_leases_warning", KIND_INT, 10, number_range=(0, 10_000_000),
            label="Stale leases warning", group=GROUP_MONITORING,
            warning_for="stale_leases_critical",
            help="Health turns to Warning at this many stale leases."),
    Setting("stale_leases_critical", KIND_INT, 50, number_range=(0, 10_000_000),
            label="Stale leases critical", group=GROUP_MONITORING,
            help="Health turns to Critical at this many stale leases."),
    Setting("sample_interval_seconds", KIND_FLOAT, 1.0, number_range=(0.1, 3600.0),
            label="Sample every", unit=" s", group=GROUP_MONITORING,
            help="How often the live monitor measures the WAL and the database."),
    Setting("db_path", KIND_PATH, None, env_var=ENV_DB_PATH, optional=True,
            help="The queue database (the variable is the one the PrismQ workers use)."),
    Setting("archive_dir", KIND_PATH, None, optional=True,
            help="The point-in-time archive the window writes and reads; unset: "
                 "<backup_dir>/archive."),
)


#: The range of each number setting, as read by the CLI's options.
SETTING_RANGES: dict[str, tuple[float, float]] = {
    setting.name: setting.number_range for setting in SETTINGS
    if setting.number_range is not None}

#: Environment variable -> the setting it overrides.
ENV_OVERRIDES: dict[str, str] = {setting.env_var: setting.name for setting in SETTINGS
                                 if setting.env_var}

#: (warning, critical) settings: the warning level must not exceed the critical one.
LEVEL_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (setting.name, setting.warning_for) for setting in SETTINGS if setting.warning_for)


def by_name(settings: Iterable[Setting]) -> dict[str, Setting]:
    """The settings keyed by name."""
    return {setting.name: setting for setting in settings}


def markdown_table(settings: Iterable[Setting] = SETTINGS) -> str:
    """The user guide's settings table: key, default, range, variable, what it does."""
    rows = ["| setting | default | values | environment variable | what it does |",
            "|---|---|---|---|---|"]
    for setting in settings:
        variable = f"`{setting.env_var}`" if setting.env_var else ""
        rows.append(f"| `{setting.name}` | {setting.default_text()} | {setting.range_text()} "
                    f"| {variable} | {setting.help} |")
    return "\n".join(rows) + "\n"

if __name__ == "__main__":
    print(markdown_table(), end="")
