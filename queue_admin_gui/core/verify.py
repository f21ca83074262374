"""Verification of a backup file before anyone trusts it.

A backup is checked as an untrusted file: opened read-only with ``trusted_schema`` off,
then its header, its manifest (size and SHA-256), SQLite's ``integrity_check`` and the
queue schema. Every problem found becomes one sentence in a :class:`VerifyReport`; nothing
here raises for a bad file, so the window and the CLI can show the whole list.

The SHA-256 and SQLite's check both read the whole file; they run side by side (the check
on a helper thread with its own connection, the hash on the caller's thread, which alone
reports progress and polls cancel), since hashlib and SQLite both release the GIL.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .database import SQLITE_HEADER, check_queue_schema, open_read_only, wal_path
from .errors import (
    ErrorKind,
    OperationCancelled,
    QueueAdminError,
    QueueBackupError,
    translate_error,
)
from .manifest import BackupManifest, file_sha256, manifest_path_for
from .progress import (
    CANCEL_CHECK_STEPS,
    CancelCheck,
    ProgressCallback,
    is_cancelled,
    raise_if_cancelled,
    report,
)

STAGE_INTEGRITY = "Checking integrity"
HEADER_BYTES = 100
MAX_LISTED_DAMAGE = 5
#: The two checks, written out in full (never assembled from input).
FULL_CHECK = f"PRAGMA integrity_check({MAX_LISTED_DAMAGE})"
QUICK_CHECK = f"PRAGMA quick_check({MAX_LISTED_DAMAGE})"
#: How often the caller's thread looks at ``cancelled()`` while the check thread runs.
_CANCEL_POLL_SECONDS = 0.05
_T = TypeVar("_T")


@dataclass
class VerifyReport:
    """The outcome of checking a backup: ``ok`` when ``problems`` is empty.

    ``problems`` are sentences naming what is wrong; ``notes`` are remarks that do not make
    the backup unusable (an older backup without a manifest, say). ``kind`` is the kind of
    the first problem, so callers can pick an exit code or an icon.
    """

    path: Path
    ok: bool
    problems: list[str]
    manifest: BackupManifest | None
    notes: list[str] = field(default_factory=list)
    kind: ErrorKind | None = None


@dataclass(frozen=True)
class SQLiteHeader:
    """The fields of an SQLite file header that tell a whole file from a truncated one."""

    page_size: int
    write_version: int
    read_version: int
    page_count: int
    page_count_valid: bool

    @property
    def expected_size(self) -> int:
        """Bytes the file must have, by its header (0 when the header does not say)."""
        return self.page_size * self.page_count if self.page_count_valid else 0

    @property
    def is_wal(self) -> bool:
        """True when the file says it is in WAL mode (older backups may)."""
        return self.write_version == 2 or self.read_version == 2


def read_header(path: Path) -> SQLiteHeader | None:
    """Parse the first 100 bytes of an SQLite file; None when they are not an SQLite header."""
    with open(path, "rb") as handle:
        data = handle.read(HEADER_BYTES)
    if len(data) < HEADER_BYTES or not data.startswith(SQLITE_HEADER):
        return None
    raw_page_size = struct.unpack(">H", data[16:18])[0]
    page_size = 65536 if raw_page_size == 1 else raw_page_size
    change_counter, page_count = struct.unpack(">II", data[24:32])
    valid_for = struct.unpack(">I", data[92:96])[0]
    return SQLiteHeader(page_size=page_size, write_version=data[18], read_version=data[19],
                        page_count=page_count,
                        page_count_valid=page_count > 0 and change_counter == valid_for)


@contextlib.contextmanager
def open_backup_file(path: Path) -> Iterator[sqlite3.Connection]:
    """Open a backup for reading (untrusted: read-only, trusted_schema off) and close it after.

    Backups made by older tools may still say "WAL" in their header; a normal open would
    make SQLite create an empty -wal and -shm beside them. When no -wal lies beside such a
    file, everything it holds is in the file itself, so it is opened immutable: no lock, no
    side file, and nothing to remove afterwards (the tool never deletes a -wal or -shm).
    """
    header = read_header(path) if path.is_file() else None
    immutable = header is not None and header.is_wal and not wal_path(path).exists()
    connection = open_read_only(path, error_class=QueueBackupError, immutable=immutable)
    try:
        yield connection
    finally:
        connection.close()


def manifest_of(backup_path: Path) -> BackupManifest | None:
    """The manifest beside a backup, or None when it has none or it cannot be read."""
    manifest_file = manifest_path_for(backup_path)
    if not manifest_file.is_file():
        return None
    with contextlib.suppress(QueueBackupError):
        return BackupManifest.read(manifest_file)
    return None


class _Findings:
    """Problems and notes gathered while checking, each problem with its kind."""

    def __init__(self) -> None:
        self.problems: list[tuple[ErrorKind, str]] = []
        self.notes: list[str] = []

    def problem(self, kind: ErrorKind, sentence: str) -> None:
        self.problems.append((kind, sentence))


@dataclass
class ContentCheck:
    """What SQLite's check of a file found: its rows, the schema gaps, or the error it met."""

    rows: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: BaseException | None = None


def _run_check(path: Path, pragma: str, stop: threading.Event, result: ContentCheck) -> None:
    """Run one check on its own read-only connection; every outcome lands in ``result``."""
    try:
        with open_backup_file(path) as connection:
            connection.set_progress_handler(lambda: 1 if stop.is_set() else 0,
                                            CANCEL_CHECK_STEPS)
            result.rows = [str(row[0]) for row in connection.execute(pragma)]
            result.missing = check_queue_schema(connection)
    except BaseException as error:  # noqa: BLE001 - handed to the caller's thread as is
        result.error = error


def check_beside(path: Path, pragma: str, work: Callable[[], _T],
                 cancelled: CancelCheck | None, action: str) -> tuple[_T, ContentCheck]:
    """Run ``pragma`` (:data:`QUICK_CHECK` or :data:`FULL_CHECK`) on ``path`` while ``work`` runs.

    The check runs on a helper thread with its own connection; ``work`` (hashing, flushing)
    runs on the caller's thread, which alone reports progress and polls ``cancelled``. The
    helper is always stopped and joined before this returns or raises, so no connection is
    left open on the file. A cancel raises :class:`OperationCancelled`.
    """
    if pragma not in (QUICK_CHECK, FULL_CHECK):
        raise ValueError(f"unknown check {pragma!r}")
    stop = threading.Event()
    result = ContentCheck()
    helper = threading.Thread(target=_run_check, args=(path, pragma, stop, result),
                              name="queue-admin-check", daemon=True)
    helper.start()
    try:
        value = work()
        while helper.is_alive():
            helper.join(_CANCEL_POLL_SECONDS)
            if is_cancelled(cancelled):
                stop.set()
    except BaseException:
        stop.set()
        helper.join()
        raise
    helper.join()
    if stop.is_set():
        raise_if_cancelled(lambda: True, action)
    return value, result


def check_backup_file(path: str | Path, progress: ProgressCallback | None = None,
                      cancelled: CancelCheck | None = None, *,
                      trust_checksum: bool = False) -> VerifyReport:
    """Check a backup file and list every problem; never raises for a bad file.

    Raises only :class:`OperationCancelled` when ``cancelled()`` turns true. A missing
    file is reported as the single problem "... not found".

    With ``trust_checksum`` (a restore uses it) a backup whose manifest's SHA-256 matches
    its bytes gets SQLite's ``quick_check`` instead of the full ``integrity_check``: the
    matching hash proves the file holds exactly the bytes that passed the check when the
    backup was made, and the quick check still proves the b-tree structure SQLite will
    read is sound before anything is written from it. What the quick check leaves out is
    whether every index agrees with its table, a property of the source at backup time
    that the hash cannot change. A backup without a manifest always gets the full check.
    """
    path = Path(path)
    found = _Findings()
    manifest: BackupManifest | None = None
    if not path.is_file():
        found.problem(ErrorKind.NOT_FOUND, f"The backup '{path}' was not found; check the path.")
        return _report(path, found, manifest)
    size = path.stat().st_size
    manifest = _read_manifest(path, size, found)
    hash_it = manifest is not None and size > 0 and manifest.size_bytes == size
    if size == 0:
        found.problem(ErrorKind.NOT_A_DATABASE,
                      "The file is empty (0 bytes), so it holds no backup; use another backup.")
        return _report(path, found, manifest)
    header = read_header(path)
    if header is None:
        if hash_it and manifest is not None:
            _compare_digest(path, manifest, found, progress, cancelled)
        found.problem(ErrorKind.NOT_A_DATABASE,
                      "The file is not an SQLite database (its header is wrong); "
                      "use another backup.")
        return _report(path, found, manifest)
    if header.expected_size and size < header.expected_size:
        found.problem(ErrorKind.CORRUPT,
                      f"The file is truncated: its header promises {header.expected_size} "
                      f"bytes but it has {size}; use another backup.")
    if manifest is not None and manifest.page_size != header.page_size:
        found.problem(ErrorKind.CORRUPT,
                      f"The page size ({header.page_size}) differs from the manifest's "
                      f"({manifest.page_size}); use another backup.")
    pragma = QUICK_CHECK if trust_checksum and hash_it else FULL_CHECK
    report(progress, 0, 0, STAGE_INTEGRITY)
    action = f"Verifying '{path}'"

    def hashing() -> None:
        if hash_it and manifest is not None:
            _compare_digest(path, manifest, found, progress, cancelled)

    _, content = check_beside(path, pragma, hashing, cancelled, action)
    _record_contents(content, found, action)
    report(progress, 1, 1, STAGE_INTEGRITY)
    raise_if_cancelled(cancelled, action)
    return _report(path, found, manifest)


def _read_manifest(path: Path, size: int, found: _Findings) -> BackupManifest | None:
    manifest_file = manifest_path_for(path)
    if not manifest_file.is_file():
        found.notes.append("This backup has no manifest (it was made by an older tool), so "
                           "its checksum cannot be compared.")
        return None
    try:
        manifest = BackupManifest.read(manifest_file)
    except QueueBackupError as error:
        found.problem(ErrorKind.CORRUPT, error.message)
        return None
    if manifest.size_bytes != size:
        found.problem(ErrorKind.CORRUPT,
                      f"The file has {size} bytes but its manifest says {manifest.size_bytes}; "
                      "it was changed or damaged after it was made, so use another backup.")
    return manifest


def _compare_digest(path: Path, manifest: BackupManifest, found: _Findings,
                    progress: ProgressCallback | None, cancelled: CancelCheck | None) -> None:
    digest = file_sha256(path, progress, cancelled, f"Verifying '{path}'")
    if digest != manifest.sha256:
        found.problem(ErrorKind.CORRUPT,
                      "The file's bytes no longer match its manifest (SHA-256 differs); it "
                      "was changed or damaged after it was made, so use another backup.")


def _record_contents(content: ContentCheck, found: _Findings, action: str) -> None:
    """Turn what SQLite's check found into sentences (or re-raise what is not about the file)."""
    error = content.error
    if error is None:
        if content.rows != ["ok"]:
            found.problem(ErrorKind.CORRUPT,
                          f"SQLite's integrity check found damage ({'; '.join(content.rows)}); "
                          "use another backup.")
        if content.missing:
            found.problem(ErrorKind.NOT_A_QUEUE,
                          f"The file is an SQLite database but not a PrismQ queue "
                          f"({'; '.join(content.missing)}); choose a queue backup.")
        return
    if not isinstance(error, sqlite3.Error | QueueAdminError):
        raise error
    translated = translate_error(error, action, QueueBackupError)
    if isinstance(translated, OperationCancelled):
        raise translated from error
    kind = translated.kind
    if kind is ErrorKind.BUG:
        raise translated from error
    if kind is ErrorKind.CORRUPT:
        found.problem(kind, "SQLite's integrity check stopped because the file is damaged "
                            f"({_detail(error)}); use another backup.")
    else:
        found.problem(kind, f"SQLite cannot read the file ({_detail(error)}); "
                            "use another backup.")


def _detail(error: BaseException) -> str:
    cause = error.__cause__ if isinstance(error, QueueAdminError) and error.__cause__ else error
    return str(cause)


def _report(path: Path, found: _Findings, manifest: BackupManifest | None) -> VerifyReport:
    return VerifyReport(
        path=path,
        ok=not found.problems,
        problems=[sentence for _, sentence in found.problems],
        manifest=manifest,
        notes=found.notes,
        kind=found.problems[0][0] if found.problems else None,
    )
