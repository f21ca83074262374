"""Sealed records of full checks this tool ran: a file's bytes checked once need no second check.

A manifest beside a backup is a plain file anyone can write, so a matching SHA-256 in it
proves nothing about whether the bytes were ever checked. When this tool itself runs SQLite's
full ``integrity_check`` on a file and it passes, it records that fact with an HMAC-SHA256
over the file's SHA-256, its size, the scope of the check and the time, under a secret key
kept in the tool's per-user state folder (created on first use, readable by this user
alone: mode 0600 in a 0700 folder on POSIX; on Windows the per-user local application
data folder is already private to the user). A later restore of a file whose bytes still
hash to the sealed SHA-256 may trust that check; a record without a valid MAC (written by
anyone without this user's key), for other bytes, another size or another scope is ignored,
and the full check runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..settings.folders import user_state_dir

#: What a seal vouches for: SQLite's full integrity check of the whole file passed.
FULL_INTEGRITY_SCOPE = "sqlite-integrity_check-full"
_SEAL_VERSION = 1
_FOLDER_NAME = "full-checks"
_KEY_NAME = "seal.key"
_KEY_BYTES = 32
#: Seal records kept; the oldest are removed beyond this.
KEEP_SEALS = 200


@dataclass(frozen=True)
class CheckSeal:
    """A full check this tool ran and sealed: which bytes, what scope, when (UTC)."""

    sha256: str
    size: int
    scope: str
    checked_at: str

    def describe(self) -> str:
        """"checked fully on 2026-12-07 05:40 UTC by this tool; bytes unchanged"."""
        try:
            moment = datetime.fromisoformat(self.checked_at).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            moment = self.checked_at
        return f"checked fully on {moment} by this tool; bytes unchanged"


def seal_folder() -> Path:
    """The per-user folder holding the key and the sealed records."""
    return user_state_dir() / _FOLDER_NAME


def _private_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if sys.platform != "win32":
        os.chmod(folder, 0o700)
    return folder


def _key(create: bool) -> bytes | None:
    """The user's secret key, made on first use when ``create``; None when there is none."""
    path = seal_folder() / _KEY_NAME
    with contextlib.suppress(FileNotFoundError):
        key = path.read_bytes()
        return key if len(key) == _KEY_BYTES else None
    if not create:
        return None
    _private_folder(seal_folder())
    key = secrets.token_bytes(_KEY_BYTES)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(
            os, "O_BINARY", 0), 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _key(create=False)
    with os.fdopen(descriptor, "wb") as file:
        file.write(key)
    return key


def _mac(key: bytes, seal: CheckSeal) -> str:
    message = json.dumps([_SEAL_VERSION, seal.sha256, seal.size, seal.scope,
                          seal.checked_at]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _record_path(sha256: str) -> Path | None:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        return None
    return seal_folder() / f"{sha256}.json"


def record_full_check(sha256: str, size: int, scope: str = FULL_INTEGRITY_SCOPE) -> bool:
    """Seal that the full check of the bytes hashing to ``sha256`` passed; False if it could not.

    Call it only right after this tool's own full check of exactly those bytes passed.
    Failing to write a record costs a later restore a second check, nothing more, so
    errors of the state folder are swallowed.
    """
    path = _record_path(sha256.lower())
    if path is None:
        return False
    try:
        key = _key(create=True)
        if key is None:
            return False
        seal = CheckSeal(sha256.lower(), int(size), scope, datetime.now(UTC).isoformat())
        record = {"sha256": seal.sha256, "size": seal.size, "scope": seal.scope,
                  "checked_at": seal.checked_at, "mac": _mac(key, seal)}
        temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temporary, path)
        _prune()
    except OSError:
        return False
    return True


def trusted_check(sha256: str, size: int, scope: str = FULL_INTEGRITY_SCOPE) -> CheckSeal | None:
    """The sealed full check of these exact bytes, when one with a valid MAC exists, else None."""
    path = _record_path(sha256.lower())
    if path is None:
        return None
    try:
        key = _key(create=False)
        if key is None:
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
        seal = CheckSeal(str(record["sha256"]), int(record["size"]), str(record["scope"]),
                         str(record["checked_at"]))
        mac = str(record["mac"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (seal.sha256, seal.size, seal.scope) != (sha256.lower(), int(size), scope):
        return None
    if not hmac.compare_digest(mac, _mac(key, seal)):
        return None
    return seal


def _prune() -> None:
    records = sorted(seal_folder().glob("*.json"), key=lambda p: p.stat().st_mtime,
                     reverse=True)
    for old in records[KEEP_SEALS:]:
        with contextlib.suppress(OSError):
            old.unlink()


__all__ = ["FULL_INTEGRITY_SCOPE", "CheckSeal", "record_full_check", "seal_folder",
           "trusted_check"]
