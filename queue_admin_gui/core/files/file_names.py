"""File names that fit: backup labels, and the per-name limit of file systems, checked first.

NTFS allows 255 UTF-16 units per name, ext4 and most others 255 bytes of UTF-8. A name
built by the tool (a backup's, or a damaged database's moved-aside name) is checked against
both, so that a long label or a long database name is refused or shortened with a clear
reason instead of failing half-way with an operating-system error.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from ..errors import ErrorKind, QueueBackupError
from .side_files import LONGEST_SUFFIX

#: The per-name limit of NTFS (UTF-16 units) and of ext4, APFS and others (bytes).
NAME_LIMIT = 255
MAX_NAME_LENGTH = 64
#: What a backup label may use of one name's limit, after the longest name the tool builds
#: around it: ``queue_backup_`` + label + ``_<stamp>_<n>`` + ``.manifest.json.tmp``.
MAX_LABEL_SIZE = (NAME_LIMIT - len("queue_backup_") - len("_YYYYMMDD_HHMMSS_999")
                  - len(".manifest.json.tmp"))

_UNSAFE_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{n}" for n in range(10)} | {f"LPT{n}" for n in range(10)}
)


def sanitize_backup_name(name: str | None) -> str | None:
    r"""Check a user-chosen backup label and return it stripped, or ``None`` when there is none.

    The label becomes part of a file name on Windows, so it is refused rather than silently
    changed when it could not be one: a clear error beats a backup saved under a name the
    admin did not type. Refused: path separators, ``..``, the characters ``<>:"/\\|?*``,
    control characters, Windows reserved device names (CON, NUL, COM1, ...), names ending
    in a dot or space, names longer than 64 characters, and names whose UTF-8 bytes would
    make the file name longer than file systems allow (kind NAME_TOO_LONG for both).
    Surrounding whitespace is dropped, and a blank label means "no label".
    """
    if name is None:
        return None
    label = unicodedata.normalize("NFC", name).strip()
    if not label:
        return None
    reason = None
    if _UNSAFE_CHARS.search(label):
        reason = ('it contains a character that file names cannot hold '
                  '(<>:"/\\|?* or a control character)')
    elif ".." in label:
        reason = "it contains '..'"
    elif label.split(".")[0].upper().rstrip() in _WINDOWS_RESERVED:
        reason = "it is a name Windows reserves for devices"
    elif label.endswith("."):
        reason = "it ends with a dot"
    elif len(label) > MAX_NAME_LENGTH:
        reason = f"it is longer than {MAX_NAME_LENGTH} characters"
    elif name_size(label) > MAX_LABEL_SIZE:
        reason = (f"its characters take {name_size(label)} bytes in a file name, more than "
                  f"the {MAX_LABEL_SIZE} a backup's name leaves for it")
    if reason is not None:
        too_long = reason.startswith(("it is longer", "its characters"))
        raise QueueBackupError(
            f"The backup name {name!r} cannot be used because {reason}; "
            "choose a short name of letters, digits, '-' or '_'.",
            ErrorKind.NAME_TOO_LONG if too_long else ErrorKind.INVALID,
        )
    return label


def name_size(name: str) -> int:
    """How much of the per-name limit ``name`` uses: the larger of UTF-8 bytes, UTF-16 units."""
    return max(len(name.encode("utf-8", "surrogatepass")),
               len(name.encode("utf-16-le", "surrogatepass")) // 2)


def fits(name: str, reserve: int = 0) -> bool:
    """True when ``name`` plus ``reserve`` more ASCII characters fits in one file name."""
    return name_size(name) + reserve <= NAME_LIMIT


def shorten(stem: str, suffix: str, reserve: int = 0) -> str:
    """``stem + suffix``, with ``stem`` cut (and marked by a short hash of it) until it fits.

    ``reserve`` keeps room for ASCII characters added later (``-wal``, ``_2``). The cut
    keeps whole characters, and the hash keeps two long stems that share a beginning apart.
    """
    if fits(stem + suffix, reserve):
        return stem + suffix
    marker = "~" + hashlib.sha256(stem.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    budget = NAME_LIMIT - reserve - name_size(marker + suffix)
    if budget < 1:
        raise ValueError(f"the suffix {suffix!r} alone does not fit in a file name")
    kept = ""
    for char in stem:
        if name_size(kept + char) > budget:
            break
        kept += char
    return kept + marker + suffix


def aside_name(original: str, tag: str, reserve: int = LONGEST_SUFFIX + len("_999")) -> str:
    """The name a damaged ``original`` is renamed to: ``<original>.<tag>``, shortened if needed.

    ``reserve`` leaves room for the side-file suffixes added after it (``-wal``, ``-shm``,
    ``-journal``) and a ``_<n>`` to keep it unique, so every renamed file fits.
    """
    return shorten(original, f".{tag}", reserve)
