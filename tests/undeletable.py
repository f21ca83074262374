"""Make one file impossible to delete for a while, even for root: the immutable attribute.

Permissions do not stop root from deleting a file, and a read-only folder would refuse every
deletion, not just one. ``chattr +i`` refuses exactly one file's deletion for any user; where
the file system or the platform does not offer it, the test is skipped.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _chattr(flag: str, path: Path) -> bool:
    tool = shutil.which("chattr")
    if tool is None:
        return False
    done = subprocess.run([tool, flag, str(path)], capture_output=True, check=False)
    return done.returncode == 0


@contextlib.contextmanager
def undeletable(path: Path) -> Iterator[Path]:
    """While inside, deleting ``path`` (or creating files in it, for a folder) fails."""
    if not _chattr("+i", path):
        pytest.skip("the immutable attribute (chattr +i) is not available here")
    try:
        yield path
    finally:
        _chattr("-i", path)
