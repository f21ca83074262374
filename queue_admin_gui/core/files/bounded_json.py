"""Reading a small JSON file that anyone could have put in a folder, with bounds.

A manifest in a backup folder is written by this tool, but the folder is shared: a file can
be damaged, hand-edited or hostile. Reading one must never cost more than a glance, and a
bad one must fail with a reason instead of an unexpected error. So the file is refused
without being read when it is larger than a limit, its nesting depth is measured before the
parser sees it (Python's parser raises ``RecursionError`` on deep nesting), and values JSON
does not define (``NaN``, ``Infinity``) are refused.
"""

from __future__ import annotations

import json
import os
import re
import stat
from itertools import accumulate
from pathlib import Path
from typing import Any

#: Larger files are refused unread: a real manifest is well under 2 KB.
DEFAULT_MAX_BYTES = 1024 * 1024
#: Deeper nesting is refused before parsing: a real manifest nests two levels.
DEFAULT_MAX_DEPTH = 16

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


class UnreadableJson(ValueError):
    """The file is not a JSON object this tool can use; ``reason`` says why, as a phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text`` (brackets inside strings don't count)."""
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    steps = (1 if char in "[{" else -1 for char in brackets)
    return max(accumulate(steps, initial=0))


def _refuse_constant(name: str) -> Any:
    raise UnreadableJson(f"it holds {name}, which JSON does not allow")


def _check_size(info: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableJson("it is not a regular file")
    if info.st_size > max_bytes:
        raise UnreadableJson(f"it is {info.st_size:,} bytes, larger than the "
                             f"{max_bytes:,} bytes a manifest may have")


def read_json_object(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                     max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """Read a JSON object from ``path`` within the bounds, or raise :class:`UnreadableJson`.

    ``OSError`` (a missing file, a denied read) is raised as it is, for the caller to word.
    """
    _check_size(os.stat(path), max_bytes)  # before opening: a pipe would block the open
    with open(path, "rb") as handle:
        _check_size(os.fstat(handle.fileno()), max_bytes)
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:  # it grew while being opened
        raise UnreadableJson(f"it is larger than the {max_bytes:,} bytes a manifest may have")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableJson(f"it is not valid UTF-8 text (byte {error.start})") from error
    depth = nesting_depth(text)
    if depth > max_depth:
        raise UnreadableJson(f"it nests {depth} levels deep, more than the {max_depth} "
                             "allowed")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as error:  # defensive: the depth check should have caught it
        raise UnreadableJson("it nests too deeply to read") from error
    except UnreadableJson:
        raise
    except ValueError as error:
        raise UnreadableJson(f"it is not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise UnreadableJson(f"it holds a JSON {_JSON_TYPES.get(type(data), 'value')}, "
                             "not an object of fields")
    return data
