"""What every command checks in its arguments before it calls the engine."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ErrorKind, QueueMaintenanceError
from ..core.files.file_access import file_problem
from ..core.settings.catalog import SETTING_RANGES

if TYPE_CHECKING:
    from .program import Context


def database_path(context: Context, action: str) -> Path:
    """The database path, refused with a sentence naming where it came from and what is wrong.

    A folder, a file this account may not read and a missing file each say so.
    """
    path = context.db_path
    problem = file_problem(path)
    if problem is not None:
        kind, what, advice = problem
        if kind is ErrorKind.NOT_FOUND:
            advice = "pass --db PATH or set PRISMQ_QUEUE_DB_PATH"
        raise QueueMaintenanceError(
            f"{action} failed: the database '{path}' (from {context.db_source}) {what}; "
            f"{advice}.", kind)
    return path


def count_argument(text: str) -> int:
    """A whole number of 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def setting_range_argument(name: str) -> Callable[[str], int]:
    """An argument type for a number that stands in for a setting: same kind, same range."""
    low, high = SETTING_RANGES[name]

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {int(low):,} to {int(high):,}, not {text}")
        return value

    return parse


keep_count_argument = setting_range_argument("backup_retention_count")
lease_timeout_argument = setting_range_argument("stale_lease_timeout_seconds")


def seconds_argument(text: str) -> float:
    """A number of seconds, 0 or more."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value
