"""Why a file the user named cannot be used, in the words an administrator acts on.

"Not found" is true only when nothing is there. A folder in its place, a device, or a file
this account may not read each get their own phrase, so ``--db D:/Queues`` says "is a
folder" and a file without read permission says "permission denied" instead of sending the
administrator to look for a file that is right there.
"""

from __future__ import annotations

import errno
import stat
from pathlib import Path

from .errors import ErrorKind, classify_os_error

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
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        return problem_for_os_error(error)
    return None
