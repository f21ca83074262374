"""Which ``.partial`` files a running backup is still writing: a claim held while it lives.

A backup is written as ``<name>.partial`` and renamed when sealed; a process killed half way
(kill -9, a power cut) leaves the partial file behind. To tell such a leftover from the file
of a backup still running in another process (or another thread), the process that creates a
partial file keeps it open, and locked, until it renames or removes it:

- on POSIX an exclusive ``flock`` on its own descriptor (separate from SQLite's ``fcntl``
  locks, and released by the system when the process dies, however it dies);
- on Windows the open handle itself: a file opened without delete sharing cannot be deleted
  by anyone else, so a cleaner's deletion of a live partial simply fails.

:func:`is_claimed` asks the POSIX question without deleting anything; the cleaner in
:mod:`.backup_folder` uses it and, on Windows, the failed deletion.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from pathlib import Path

if sys.platform != "win32":
    import fcntl

_CLAIMS: dict[str, int] = {}
_CLAIMS_GUARD = threading.Lock()


def _key(path: Path) -> str:
    return os.path.normcase(os.path.abspath(path))


def create_claimed(path: Path) -> None:
    """Create ``path`` exclusively (FileExistsError when it exists) and hold it as claimed.

    The claim lasts until :func:`release` (or the end of the process). A file system that
    cannot lock still gets the file, claimed by its open descriptor only.
    """
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_BINARY", 0),
                         0o666)
    if sys.platform != "win32":
        with contextlib.suppress(OSError):  # NFS without lockd, say: age decides there
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with _CLAIMS_GUARD:
        _CLAIMS[_key(path)] = descriptor


def release(path: Path) -> None:
    """Give up the claim on ``path`` (before renaming or deleting it on Windows); no-op if none."""
    with _CLAIMS_GUARD:
        descriptor = _CLAIMS.pop(_key(path), None)
    if descriptor is not None:
        with contextlib.suppress(OSError):
            os.close(descriptor)


def is_claimed(path: Path) -> bool | None:
    """True when a live process holds the claim on ``path``, False when none does.

    None when it cannot be told: on Windows (where only a deletion can ask), or on a file
    system that does not lock.
    """
    if sys.platform == "win32":
        return None
    with _CLAIMS_GUARD:
        if _key(path) in _CLAIMS:
            return True
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError as error:
        return True if error.errno in (errno.EAGAIN, errno.EACCES) else None
    finally:
        os.close(descriptor)  # closing also drops the lock just taken
    return False


__all__ = ["create_claimed", "is_claimed", "release"]
