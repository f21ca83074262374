"""Durable file operations the backups, manifests and archives share.

Hashing with progress and cancel, flushing a file and its folder to disk, renaming on
Windows (where a file another program just opened cannot be renamed for a moment), and
writing JSON so that readers see the old file or the new one, never half of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report

CHUNK_BYTES = 1024 * 1024
STAGE_CHECKSUM = "Computing the checksum"
_RENAME_RETRY_SECONDS = 2.0


def file_sha256(path: Path, progress: ProgressCallback | None = None,
                cancelled: CancelCheck | None = None, action: str = "Checksum") -> str:
    """SHA-256 of a file in hex, reading in chunks so progress and cancel work on big files."""
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            done += len(chunk)
            report(progress, done, total, STAGE_CHECKSUM)
            raise_if_cancelled(cancelled, action)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    """Flush a closed file's data to the disk."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_directory(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX only; Windows has no directory handles)."""
    if os.name == "nt":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def retry_on_windows_lock(operation: Callable[[], Any]) -> Any:
    """Run a rename or delete, retrying briefly while Windows says another program has the file."""
    deadline = time.monotonic() + _RENAME_RETRY_SECONDS
    while True:
        try:
            return operation()
        except PermissionError:
            if os.name != "nt" or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write JSON via a temporary file, flush it, then rename: readers see all or nothing."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        retry_on_windows_lock(lambda: os.replace(temporary, path))
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
