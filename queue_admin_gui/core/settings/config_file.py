"""Reading the settings file as an administrator may have saved it on Windows.

Notepad offers UTF-8, UTF-8 with BOM, UTF-16 LE and UTF-16 BE (both with a byte order mark)
and ANSI (cp1252 on Western systems). The first four are read as they are. ANSI text is
refused with the byte and the line it is on, rather than guessed: a backup folder typed with
an "ä" and read with the wrong code page would silently point somewhere else. Every failure
is a :class:`ConfigError` of one sentence naming the file.
"""

from __future__ import annotations

import codecs
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ErrorKind, translate_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: Byte order marks Notepad writes, longest first, and the codec each one announces.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_SAVE_AS_UTF8 = "save it as UTF-8 (in Notepad: File, Save as, Encoding UTF-8)"


def decode_settings_text(raw: bytes, path: Path) -> str:
    """The file's text: UTF-8 with or without BOM, or UTF-16 with a BOM; else ConfigError."""
    for mark, codec in _BYTE_ORDER_MARKS:
        if raw.startswith(mark):
            try:
                return raw[len(mark):].decode(codec)
            except UnicodeDecodeError as error:
                raise ConfigError(
                    f"The settings file '{path}' starts like {codec.upper()} text but is not "
                    f"({error.reason} at byte {error.start + len(mark)}); {_SAVE_AS_UTF8}."
                ) from error
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"The settings file '{path}' is not UTF-8: byte 0x{raw[error.start]:02X} at line "
            f"{line} (ANSI text, perhaps an accented letter); {_SAVE_AS_UTF8}."
        ) from error


def read_settings_file(path: Path) -> dict[str, Any] | None:
    """The file's keys and values; None when there is no file; ConfigError when unusable.

    A folder where the file should be is refused rather than ignored, so an administrator
    who made one by mistake learns why the settings do not apply.
    """
    if path.is_dir():
        raise ConfigError(
            f"The settings file '{path}' is a folder, not a file; remove or rename the "
            "folder so the settings can be saved there.", ErrorKind.INVALID)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise translate_error(error, f"Reading the settings file '{path}'",
                              ConfigError) from error
    text = decode_settings_text(raw, path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"The settings file '{path}' is not valid TOML ({error}); fix or delete it."
        ) from error
    except RecursionError as error:  # the TOML reader recurses once per level of nesting
        raise ConfigError(
            f"The settings file '{path}' nests arrays or tables too deeply to be read (no "
            "setting nests at all); fix or delete it.") from error


def toml_value(value: object) -> str:
    """One TOML scalar: basic strings escaped, integers and finite floats as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    escaped = []
    for character in text:
        if character in ('"', "\\"):
            escaped.append("\\" + character)
        elif ord(character) < 0x20 or ord(character) == 0x7F:
            escaped.append(f"\\u{ord(character):04x}")
        else:
            escaped.append(character)
    return '"' + "".join(escaped) + '"'
