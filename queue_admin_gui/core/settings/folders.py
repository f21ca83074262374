"""The per-user folders the tool keeps its settings, data, logs and state in.

One answer per platform through platformdirs (``%LOCALAPPDATA%/PrismQ/queue-admin`` on
Windows), and ``QUEUE_ADMIN_CONFIG`` to name another settings file.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "queue-admin"
APP_AUTHOR = "PrismQ"
ENV_CONFIG_FILE = "QUEUE_ADMIN_CONFIG"


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


def default_backup_dir() -> Path:
    """Where backups go unless the settings name another folder."""
    return user_data_dir() / "backups"
