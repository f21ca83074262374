"""The archive as a safety copy: a proof that it holds the live queue's state of this moment.

Before a rescue or a restore writes to the live queue, it needs a copy of what it is about
to change. A full safety backup of a large queue takes as long as the backup itself; when an
archiver already copies every commit of that queue, the archive can be that copy instead,
provided it is shown to hold every commit made up to the moment of the write.

The proof is asked for by whoever holds the queue's write lock (so nothing can commit until
it lets go): it leaves a request file with a random token in the archive folder's
``proof-requests`` folder. The archiver looks for requests before each pass; a pass that
began after it saw a request has copied every commit made before the request was written,
and the archiver then appends a heartbeat record carrying the token to the generation's
frame log and syncs it to the disk. When the requester reads that record back, the archive
holds the state of the queue at the heartbeat's instant, and that state is the one the
writer is about to change: rebuilding that instant undoes the write.

No archiver, an archiver of another database, one that is busy starting a new generation or
one of an earlier version: no answer comes, and the caller takes a safety backup as before.
The generation's files are then checked in full (:func:`confirm_safety_point`): only an
instant that check finds restorable is a safety copy. The snapshot's SHA-256, the bulk of
that check, can be computed before the lock is taken (:func:`hash_snapshot_ahead`); under
the lock it is then reused only if the file is still the very same (size, modification and
change times, inode), and every frame log is read and checked as always.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files.durable import file_sha256
from ..progress import CancelCheck, raise_if_cancelled
from .store import (
    GENERATION_FILE,
    KIND_HEARTBEAT,
    LOCK_FILE,
    OPEN_SEGMENT_KEY,
    ArchiveError,
    Generation,
    SegmentRead,
    check_generation,
    instant_text,
    iter_records,
    list_generations,
    load_generation,
    lock_is_stale,
    read_lock,
)

#: The folder of the archive where requests for a proof are left for the archiver.
PROOF_FOLDER = "proof-requests"
PROOF_SUFFIX = ".request"
#: Bytes of randomness in a request's token (written hex in the file name).
TOKEN_BYTES = 16
#: How long a writer holding the lock waits for the archiver's answer before it takes a
#: safety backup instead (the archiver answers within one pass, normally 0.15 s).
PROOF_WAIT_SECONDS = 2.0
#: Why the archive is not the safety copy when its archiver gave no answer in time.
NOT_PROVEN = (f"its archiver did not prove within {PROOF_WAIT_SECONDS:g} s that it holds "
              "every commit")
#: How often the requester reads the frame log for the answer.
PROOF_POLL_SECONDS = 0.01


@dataclass(frozen=True)
class SafetyPoint:
    """An instant of the archive that holds the queue exactly as it was before a write."""

    archive: Path
    generation: str
    at: float
    #: None until :func:`confirm_safety_point` ran; then whether the generation's files,
    #: checked in full, can rebuild ``at`` (and if not, why).
    confirmed: bool | None = None
    problem: str | None = None

    def describe(self) -> str:
        """One sentence for the report: where the state before the write is kept."""
        where = (f"the point-in-time archive '{self.archive}' holds the queue as it was "
                 f"just before, at {instant_text(self.at)} (generation {self.generation})")
        if self.confirmed is False:
            return f"{where}, but checking it found a problem: {self.problem}"
        return where

    def to_dict(self) -> dict[str, Any]:
        """The safety point for JSON reports."""
        return {"archive": str(self.archive), "generation": self.generation, "at": self.at,
                "at_text": instant_text(self.at), "confirmed": self.confirmed,
                "problem": self.problem}


class ProofDesk:
    """The archiver's side: the requests waiting for an answer, and which were answered."""

    def __init__(self, archive_dir: Path) -> None:
        self.folder = archive_dir / PROOF_FOLDER
        self._answered: set[bytes] = set()

    def pending(self) -> list[bytes]:
        """Tokens of the requests in the folder not answered yet (cheap when there are none)."""
        try:
            names = [entry.name for entry in os.scandir(self.folder)]
        except OSError:
            return []
        tokens = {token for token in (_token_of(name) for name in names) if token}
        self._answered &= tokens
        return sorted(tokens - self._answered)

    def answered(self, tokens: Iterable[bytes]) -> None:
        """Remember tokens whose heartbeat was written (their files are the requester's)."""
        self._answered.update(tokens)


def _token_of(name: str) -> bytes | None:
    if not name.endswith(PROOF_SUFFIX):
        return None
    with contextlib.suppress(ValueError):
        token = bytes.fromhex(name[:-len(PROOF_SUFFIX)])
        return token if len(token) == TOKEN_BYTES else None
    return None


def archiving_this(database: Path, archive_dir: Path) -> bool:
    """Whether a live archiver (by its lock file) is archiving ``database`` into the folder."""
    data = read_lock(archive_dir)
    if not data:
        return False
    try:
        modified = (archive_dir / LOCK_FILE).stat().st_mtime
        named = Path(str(data.get("database", ""))).resolve()
    except OSError:
        return False
    return named == database.resolve() and not lock_is_stale(data, modified, time.time())


def prove_archived(database: str | Path, archive_dir: str | Path | None, *,
                   wait_seconds: float = PROOF_WAIT_SECONDS,
                   cancelled: CancelCheck | None = None) -> SafetyPoint | None:
    """Ask the archiver to prove it holds every commit made so far; None when it does not.

    Call it while holding the queue's write lock, so that the instant returned is the state
    the caller is about to change. Returns at once (None) when no live archiver is archiving
    this database into ``archive_dir``.
    """
    if archive_dir is None:
        return None
    database, archive_dir = Path(database), Path(archive_dir)
    if not archiving_this(database, archive_dir):
        return None
    token = secrets.token_bytes(TOKEN_BYTES)
    request = archive_dir / PROOF_FOLDER / f"{token.hex()}{PROOF_SUFFIX}"
    try:
        request.parent.mkdir(exist_ok=True)
        with open(request, "x", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
    except OSError:
        return None
    try:
        reader = _AnswerReader(archive_dir, database)
        deadline = time.monotonic() + wait_seconds
        while True:
            found = reader.find(token)
            if found is not None:
                return SafetyPoint(archive_dir, found[0], found[1])
            if time.monotonic() >= deadline:
                return None
            raise_if_cancelled(cancelled, "Waiting for the archive")
            time.sleep(PROOF_POLL_SECONDS)
    finally:
        with contextlib.suppress(OSError):
            request.unlink()


class _AnswerReader:
    """Reads the open frame logs of the newest generations from where it stopped last.

    Only generations made from ``database`` count: an archiver of another queue writing into
    the same folder may answer a request, but its archive holds nothing of this queue.
    """

    def __init__(self, archive_dir: Path, database: Path) -> None:
        self.archive_dir = archive_dir
        self.database = database.resolve()
        self._read_to: dict[Path, int] = {}

    def find(self, token: bytes) -> tuple[str, float] | None:
        """(generation id, stamp) of a heartbeat carrying ``token`` in a restorable generation."""
        for generation in list_generations(self.archive_dir, scan=False)[-2:]:
            if generation.unusable or generation.snapshot is None:
                continue
            try:
                made_from = Path(str(generation.data.get("database", ""))).resolve()
            except OSError:
                continue
            if made_from != self.database:
                continue
            name = generation.data.get(OPEN_SEGMENT_KEY)
            if not isinstance(name, str):
                continue
            segment = generation.folder / name
            outcome = SegmentRead(segment)
            start = self._read_to.get(segment, 0)
            for kind, stamp, payload in iter_records(segment, version=generation.format,
                                                     outcome=outcome, start=start):
                if kind == KIND_HEARTBEAT and payload == token:
                    return generation.id, stamp
            self._read_to[segment] = outcome.end_offset
        return None


@dataclass(frozen=True)
class KnownDigest:
    """A snapshot's SHA-256 computed a moment ago, with the file's identity then."""

    path: Path
    identity: tuple[int, int, int, int]
    sha256: str

    def still_valid(self, snapshot: Path | None) -> bool:
        """True when ``snapshot`` is this very file, unchanged since it was hashed."""
        return snapshot is not None and snapshot == self.path \
            and _identity(snapshot) == self.identity


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino


def hash_snapshot_ahead(archive_dir: str | Path | None) -> KnownDigest | None:
    """Before taking the write lock: hash the snapshot of the archive's newest generation.

    Returns None when there is nothing to hash or the file changed while it was read.
    """
    if archive_dir is None:
        return None
    try:
        newest = [g for g in list_generations(Path(archive_dir), scan=False)
                  if g.snapshot is not None and g.snapshot.is_file()]
        if not newest:
            return None
        snapshot = newest[-1].snapshot
        assert snapshot is not None
        before = _identity(snapshot)
        digest = file_sha256(snapshot)
    except (OSError, ArchiveError):
        return None
    if before is None or _identity(snapshot) != before:
        return None
    return KnownDigest(snapshot, before, digest)


def confirm_safety_point(point: SafetyPoint, known: KnownDigest | None = None) -> SafetyPoint:
    """Check every file of the generation in full: whether the archive rebuilds the instant.

    ``known``: the snapshot's digest from :func:`hash_snapshot_ahead`, used when the
    generation's snapshot is still that very file.
    """
    generation: Generation | None = load_generation(point.archive / point.generation)
    if generation is None or not (point.archive / point.generation / GENERATION_FILE).is_file():
        return _unconfirmed(point, "its generation is gone from the archive")
    reuse = known.sha256 if known is not None and known.still_valid(generation.snapshot) \
        else None
    check_generation(generation, snapshot_sha256=reuse)
    span = generation.restorable
    if span is not None and span[0] <= point.at <= span[1]:
        return SafetyPoint(point.archive, point.generation, point.at, True, None)
    reasons = "; ".join(f"{damage.file.name}: {damage.reason}" for damage in generation.damage)
    return _unconfirmed(point, reasons or "the instant is not inside what can be rebuilt")


def _unconfirmed(point: SafetyPoint, problem: str) -> SafetyPoint:
    return SafetyPoint(point.archive, point.generation, point.at, False, problem)


__all__ = [
    "PROOF_FOLDER",
    "PROOF_WAIT_SECONDS",
    "NOT_PROVEN",
    "KnownDigest",
    "ProofDesk",
    "SafetyPoint",
    "archiving_this",
    "confirm_safety_point",
    "hash_snapshot_ahead",
    "prove_archived",
]
