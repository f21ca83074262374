"""Free space and drives: what VACUUM, backups, restores and the health badge check first.

One place for the questions "how much room is there where this will be written?" and "are
these two folders on the same drive?", so every check answers them the same way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import drive_label


def nearest_existing_folder(folder: str | Path) -> Path:
    """The folder, or its nearest existing parent (a backup folder may not exist yet)."""
    path = Path(folder).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(folder: str | Path) -> int | None:
    """Free bytes on the drive that holds ``folder`` (or would); None when it cannot be read."""
    try:
        return shutil.disk_usage(nearest_existing_folder(folder)).free
    except OSError:
        return None


def same_drive(first: str | Path, second: str | Path) -> bool:
    """True when both folders are on one drive, so what they need adds up on one disk."""
    first, second = nearest_existing_folder(first), nearest_existing_folder(second)
    try:
        return os.stat(first).st_dev == os.stat(second).st_dev
    except OSError:
        return drive_label(first) == drive_label(second)
