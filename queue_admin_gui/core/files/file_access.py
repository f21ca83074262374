"""Why a file the user named cannot be used, in the words an administrator acts on.

"Not found" is true only when nothing is there. A folder in its place, a device, or a file
this account may not read each get their own phrase, so ``--db D:/Queues`` says "is a
folder" and a file without read permission says "permission denied" instead of sending the
administrator to look for a file that is right there.

Also here: reading the first bytes of a file this process may hold open through SQLite
without dropping SQLite's locks on it (:func:`read_file_head`), since on Linux and macOS
closing any descriptor of a file frees every lock the process holds on that file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import ErrorKind, classify_os_error

#: What is wrong (completing "the file ...") and what to do, for each kind of refusal.
_PHRASES = {
    ErrorKind.NOT_FOUND: ("was not found", "check the path"),
    ErrorKind.PERMISSION: ("cannot be read: permission denied",
                           "give this account read access to the file, or run as a user who "
                           "has it"),
    ErrorKind.LOCKED: ("cannot be read: another program holds it locked",
                       "close that program or retry"),
}


def problem_for_os_error(error: OSError) -> tuple[ErrorKind, str, str]:
    """(kind, what is wrong, what to do) for an error met while opening a named file."""
    kind = classify_os_error(error)
    if error.errno == errno.EACCES or getattr(error, "winerror", None) == 5:
        kind = ErrorKind.PERMISSION  # ERROR_ACCESS_DENIED on Windows
    if error.errno == errno.EISDIR:
        return ErrorKind.INVALID, "is a folder, not a file", "choose the file inside it"
    if kind in _PHRASES:
        return (kind, *_PHRASES[kind])
    reason = error.strerror or str(error)
    return kind, f"cannot be read ({reason})", "check the file and the drive"


def file_problem(path: Path) -> tuple[ErrorKind, str, str] | None:
    """Why ``path`` cannot be opened for reading as a file; None when it can.

    It opens the file for a moment (and reads nothing), which is what tells an unreadable
    file from a missing one: the folder listing may show a file this account cannot open.
    """
    try:
        mode = path.stat().st_mode
    except OSError as error:
        return problem_for_os_error(error)
    if stat.S_ISDIR(mode):
        return ErrorKind.INVALID, "is a folder, not a file", "choose the file inside it"
    if not stat.S_ISREG(mode):
        return ErrorKind.INVALID, "is not a regular file (a device or a pipe)", "choose a file"
    if descriptor_held(path) is not None:
        return None  # this process reads it already; opening it again could drop locks
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        return problem_for_os_error(error)
    return None


def descriptor_held(path: str | Path) -> int | None:
    """A descriptor this process already holds on the file at ``path`` (POSIX), else None.

    It is found by the file's identity (device and inode), so SQLite's own descriptors
    count. Windows has no such table to read and needs none (see :func:`read_file_head`).
    """
    if os.name == "nt":
        return None
    try:
        wanted = os.stat(path)
    except OSError:
        return None
    table = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        names = os.listdir(table)
    except OSError:
        return None
    for name in names:
        if not name.isdigit():
            continue
        try:
            held = os.fstat(int(name))
        except OSError:
            continue
        if (held.st_dev, held.st_ino) == (wanted.st_dev, wanted.st_ino) and stat.S_ISREG(
                held.st_mode):
            return int(name)
    return None


def read_file_head(path: str | Path, size: int) -> bytes:
    """The first ``size`` bytes of a file, read without dropping SQLite's locks on it.

    On Linux and macOS a byte-range lock belongs to the process and the file, and closing
    any descriptor of the file releases every lock the process holds on it, including the
    ones SQLite's connections took through their own descriptors. A plain open and close of
    the queue file (or its ``-shm``) in a process that also has the queue open would then
    let another program checkpoint past this process's readers or delete the WAL under it.
    So when this process already holds the file, the bytes are read through that
    descriptor and nothing is opened or closed; only a file it does not hold is opened.
    On Windows locks belong to a handle, and a plain open is harmless.
    """
    descriptor = descriptor_held(path)
    if descriptor is not None:
        try:
            before = os.fstat(descriptor)
            data = os.pread(descriptor, size, 0)
            after = os.fstat(descriptor)
        except OSError:
            data = None
        else:
            if (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino):
                return data
    with open(path, "rb") as handle:
        return handle.read(size)
