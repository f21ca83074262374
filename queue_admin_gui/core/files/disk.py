"""Free space and drives: what VACUUM, backups, restores and the health badge check first.

One place for the questions "how much room is there where this will be written?", "which
volume is that?" and "are these two folders on the same drive?", so every check answers them
the same way. A volume is named as an administrator finds it: ``D:`` or a UNC share on
Windows, the mount point (``/mnt/backups``) elsewhere, never ``/`` for a folder that lives
on another mount.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def nearest_existing_folder(folder: str | Path) -> Path:
    """The folder, or its nearest existing parent (a backup folder may not exist yet)."""
    path = Path(folder).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def volume_root(folder: str | Path) -> Path:
    """The mount point (or drive root, or share) of the volume that holds ``folder``."""
    path = nearest_existing_folder(folder)
    try:
        path = path.resolve()
    except OSError:
        pass
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return path


def volume_label(folder: str | Path) -> str:
    """The volume of ``folder`` as an admin says it: ``D:``, a UNC share, ``/data``."""
    root = volume_root(folder)
    if root.anchor and str(root) == root.anchor:  # a drive, a share or "/" itself
        return root.anchor.rstrip("\\/") or root.anchor
    return str(root)


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
        return volume_label(first) == volume_label(second)


def vacuum_space_by_volume(db_path: str | Path, needed: int) -> list[tuple[str, int]]:
    """Where VACUUM's ``needed`` bytes must be free: (volume, bytes) for each volume.

    The same split the engine checks before it starts: all of it on the database's volume
    when SQLite's temporary folder is there too, else half there and half on the temporary
    folder's volume. The confirmation quotes these figures, so a refusal never asks for a
    different amount than the question did.
    """
    folder = Path(db_path).absolute().parent
    temp_folder = Path(tempfile.gettempdir())
    if same_drive(folder, temp_folder):
        return [(volume_label(folder), needed)]
    return [(volume_label(folder), needed // 2), (volume_label(temp_folder), needed // 2)]
