"""Verification of a backup file before anyone trusts it.

A backup is checked as an untrusted file (see :mod:`.untrusted`): opened immutable and
read-only with ``trusted_schema`` off, then its path (never the live database or one of its
side files), its header, its manifest (size and SHA-256), SQLite's full ``integrity_check``
(every index agrees with its table), the queue schema (every table, index, trigger and view
means to SQLite what the queue schema's or the live database's does, see
:mod:`.backup_schema`) and the id counters and the room left in them (see
:mod:`.backup_sequence`). A backup is called verified only when all of
these passed, that is when it can be restored into a sound queue. Every problem found
becomes one sentence in a :class:`VerifyReport`; nothing here raises for a bad file, so
the window and the CLI can show the whole list.

The SHA-256 and SQLite's check both read the whole file; they run side by side (the check
on a helper thread with its own connection, the hash on the caller's thread, which alone
reports progress and polls cancel), since hashlib and SQLite both release the GIL. The check
is bounded: a cancel stops it within a second, and one that runs far longer than the file's
size explains is stopped and reported.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import (
    ErrorKind,
    OperationCancelled,
    QueueAdminError,
    QueueBackupError,
    format_bytes,
    translate_error,
)
from ..files.durable import file_sha256
from ..files.side_files import JOURNAL_SUFFIX, WAL_SUFFIX, side_file
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from ..trust.backup_schema import read_live_schema, schema_problems
from ..trust.backup_sequence import counter_problems
from ..trust.check_seal import CheckSeal
from ..trust.untrusted import (
    FULL_CHECK,
    SEALED_FULL_CHECK,
    ContentCheck,
    check_beside,
    check_budget_seconds,
    read_header,
)
from .backup_paths import live_file_conflict
from .manifest import BackupManifest, manifest_beside, manifest_path_for

STAGE_INTEGRITY = "Checking integrity"
#: Files beside a backup that SQLite would read as part of it; the tool never reads them.
_SIDE_SUFFIXES = (WAL_SUFFIX, JOURNAL_SUFFIX)

__all__ = ["VerifyReport", "check_backup_file", "manifest_of"]


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


def check_backup_file(path: str | Path, progress: ProgressCallback | None = None,
                      cancelled: CancelCheck | None = None, *,
                      live_path: str | Path | None = None,
                      trust_checksum: bool = False,
                      earlier_check: CheckSeal | None = None,
                      known_sha256: str | None = None,
                      manifest_follows: bool = False) -> VerifyReport:
    """Check a backup file and list every problem; never raises for a bad file.

    Raises only :class:`OperationCancelled` when ``cancelled()`` turns true. A missing
    file is reported as the single problem "... not found".

    ``live_path`` is the live database the backup is meant for, when known. A backup path
    that is that database or one of its -wal, -shm or -journal files (by name, symbolic
    link or hard link) is refused before anything opens it. Each table, index, trigger
    and view of the backup is accepted only when the queue schema or the live database
    defines it the same way (same kind, name and table, same meaning as SQLite reports it);
    the live schema is read read-only. Without ``live_path`` only the queue schema's own
    objects are accepted. Its id counters must be whole numbers the tables can go on from,
    with room left below 2^62.

    The full ``integrity_check`` always runs: a file's manifest is as untrusted as the file,
    so a matching SHA-256 proves nothing about where the bytes came from.
    ``trust_checksum`` is accepted for older callers and changes nothing. The one
    exception is ``earlier_check``: a sealed record (its MAC verified with this user's key,
    :mod:`..trust.check_seal`) that this tool's full check passed on bytes whose SHA-256 the
    caller has just computed from the file itself and found equal to the record's. Then the
    page check is not repeated; everything else is.

    ``known_sha256``: the file's SHA-256 as the caller has just computed it from the file
    itself (a rebuild hashes the file it wrote for its manifest); it is compared with the
    manifest instead of hashing the bytes a second time. The full check still runs.

    ``manifest_follows``: the caller writes the file itself and its manifest after this
    check, from a hash of its own taken meanwhile (a rebuild checks its output while it
    hashes it): a file without a manifest then gets no note about it.
    """
    del trust_checksum  # kept in the signature only; see above
    path = Path(path)
    found = _Findings()
    manifest: BackupManifest | None = None
    live = Path(live_path) if live_path is not None else None
    conflict = live_file_conflict(path, live) if live is not None else None
    if conflict is not None:
        found.problem(ErrorKind.INVALID,
                      f"The path is not a backup: {conflict}; it was not opened, since SQLite "
                      "would treat it as part of the live database; choose a backup file.")
        return _report(path, found, manifest)
    if not path.is_file():
        found.problem(ErrorKind.NOT_FOUND, f"The backup '{path}' was not found; check the path.")
        return _report(path, found, manifest)
    size = path.stat().st_size
    manifest = None if manifest_follows and not manifest_path_for(path).exists() \
        else _read_manifest(path, size, found)
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
    _report_side_files(path, found)
    report(progress, 0, 0, STAGE_INTEGRITY)
    action = f"Verifying '{path}'"

    if earlier_check is not None and earlier_check.size != size:
        earlier_check = None

    def hashing() -> None:
        if hash_it and manifest is not None:
            _compare_digest(path, manifest, found, progress, cancelled,
                            known=earlier_check.sha256 if earlier_check else known_sha256)

    pragma = FULL_CHECK if earlier_check is None else SEALED_FULL_CHECK
    _, content = check_beside(path, pragma, hashing, cancelled, action,
                              budget_seconds=check_budget_seconds(size))
    _record_contents(content, found, action, size)
    if content.error is None and content.stalled_after is None:
        _compare_schema(content, live, found)
    report(progress, 1, 1, STAGE_INTEGRITY)
    raise_if_cancelled(cancelled, action)
    return _report(path, found, manifest)


def _report_side_files(path: Path, found: _Findings) -> None:
    """A -wal or -journal beside a backup may hold part of it; the tool never reads them."""
    for suffix in _SIDE_SUFFIXES:
        side = side_file(path, suffix)
        if side.exists():
            found.problem(ErrorKind.INVALID,
                          f"A file '{side.name}' lies beside the backup; the tool reads a "
                          "backup as one file and never opens or changes what lies beside "
                          "it, so whatever that file holds would be neither checked nor "
                          "restored; move it away to use the file as it is, or use another "
                          "backup.")


def _compare_schema(content: ContentCheck, live: Path | None, found: _Findings) -> None:
    """Each object must be the queue schema's or the live's; each counter must be sound."""
    live_schema, unreadable = read_live_schema(live) if not content.missing else (None, None)
    sentences = [] if content.missing else schema_problems(content.schema, live_schema)
    for sentence in sentences:
        found.problem(ErrorKind.NOT_A_QUEUE, sentence)
    if sentences and unreadable:
        found.notes.append(unreadable)
    for sentence in counter_problems(content.counters):
        found.problem(ErrorKind.CORRUPT, sentence)
    if content.counters_error is not None:
        found.problem(ErrorKind.CORRUPT,
                      f"The file's id counters (sqlite_sequence) cannot be read "
                      f"({content.counters_error}); use another backup.")


def _read_manifest(path: Path, size: int, found: _Findings) -> BackupManifest | None:
    manifest, unreadable = manifest_beside(path)
    if unreadable is not None:  # a pipe, a folder or damaged content is not "no manifest"
        found.problem(ErrorKind.CORRUPT, unreadable.message)
        return None
    if manifest is None:
        found.notes.append("This backup has no manifest (it was made by an older tool), so "
                           "its checksum cannot be compared.")
        return None
    if manifest.size_bytes != size:
        found.problem(ErrorKind.CORRUPT,
                      f"The file has {size} bytes but its manifest says {manifest.size_bytes}; "
                      "it was changed or damaged after it was made, so use another backup.")
    return manifest


def _compare_digest(path: Path, manifest: BackupManifest, found: _Findings,
                    progress: ProgressCallback | None, cancelled: CancelCheck | None,
                    known: str | None = None) -> None:
    digest = known or file_sha256(path, progress, cancelled, f"Verifying '{path}'")
    if digest != manifest.sha256:
        found.problem(ErrorKind.CORRUPT,
                      "The file's bytes no longer match its manifest (SHA-256 differs); it "
                      "was changed or damaged after it was made, so use another backup.")


def _record_contents(content: ContentCheck, found: _Findings, action: str,
                     size: int) -> None:
    """Turn what SQLite's check found into sentences (or re-raise what is not about the file)."""
    if content.stalled_after is not None:
        found.problem(ErrorKind.INVALID,
                      f"The check ran for {content.stalled_after:.0f} s, far longer than a "
                      f"file of {format_bytes(size)} needs, and was stopped; the file may be "
                      "crafted to stall checks, so use another backup.")
        return
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
    if kind is ErrorKind.BUG and isinstance(error, sqlite3.Error):
        # The file is untrusted: SQL in its schema that this SQLite cannot run (an unknown
        # collation, function or module) is a fault of the file, not of the tool.
        found.problem(ErrorKind.NOT_A_QUEUE,
                      f"SQLite cannot check the file, since its schema uses what this SQLite "
                      f"does not have ({_detail(error)}); it is not a queue the tool can "
                      "restore, so use another backup.")
        return
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
