"""Validation: proof that the archive rebuilds the queue exactly as the live file holds it.

Checksums prove that the archive's files are the ones written; validation proves that what
was written is right. It checks every file of the archive against its checksums, then:

1. takes the queue's write lock for a moment (workers wait in their busy handler), begins a
   read transaction on the live file and notes where its WAL ends (the cycle's salts and the
   last committed frame), and lets go of the write lock: the read transaction holds exactly
   the state after that commit;
2. copies that state (SQLite's backup API, inside the read transaction) to a scratch file,
   and ends the read transaction;
3. waits until the running archiver has archived the transaction that ends at that frame,
   and rebuilds the archive's current generation up to exactly that transaction;
4. compares the two files page by page (page 1's fields that differ between a WAL file and
   a rebuilt backup aside: the file format bytes, the change counter, the schema cookie and
   the version fields).

A mismatch, or damage in the current generation, is recorded in ``validation.json`` as a
failure: the generation is trusted only up to the last instant a validation proved (its
snapshot's, when none did), the status shows the rest as a gap, and the archiver starts a
new generation from a new snapshot (it reads the failure on its next pass, whichever process
validated). Each failure also goes to the activity log (and from there the Windows Event Log
and the tray), and ``check`` reports it as CRITICAL.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..activity import RESULT_FAILED, ActivityEntry, ActivityLog
from ..errors import ErrorKind
from ..event_log import SystemLogSink, setting_switch
from ..files.db_files import sqlite_uri, wal_path
from ..progress import CancelCheck, ProgressCallback, raise_if_cancelled, report
from ..settings.config import MaintenanceConfig
from . import pace
from .footprint import give_back_memory
from .rebuild import rebuild_generation
from .store import (
    LOCK_FILE,
    SEGMENT_PREFIX,
    TRANSACTION_KINDS,
    VALIDATION_FAILED_KEY,
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
    read_validation,
    transaction_position,
    write_validation,
)
from .walfile import read_committed, read_header

#: The activity log's name for a validation (also an Event Log action).
VALIDATION_ACTION = "Validate the archive"
#: How long a validation waits for the archiver to archive the live file's last commit.
WAIT_FOR_ARCHIVER_SECONDS = 60.0
#: How long the write lock is waited for (workers keep it for one transaction at a time).
WRITE_LOCK_TIMEOUT_MS = 5000
STAGE_CHECK = "Checking the archive's files"
STAGE_LIVE = "Copying the live state"
STAGE_WAIT = "Waiting for the archiver"
STAGE_REBUILD = "Rebuilding the same commit"
STAGE_COMPARE = "Comparing every page"
#: Page 1 bytes that differ between a live WAL file and a rebuilt rollback-journal file of
#: the same contents: file format versions (18-19), change counter (24-27), the schema cookie
#: (40-43: SQLite's backup gives every copy, the generation's snapshot included, one of its
#: own) and version-valid-for and SQLite version (92-99).
_HEADER_FIELDS_IGNORED = ((18, 20), (24, 28), (40, 44), (92, 100))
_FAILURES_KEPT = 50
#: What validation's rebuild holds at most: page images before they are written out, and
#: each of the snapshot copy's two buffers. Validation runs inside the archiver all day, so
#: it stays a few MB above the archiver's own memory (a restore's rebuild holds 64 MB and
#: 16 MB: it runs once, and wants its speed).
VALIDATION_HELD_BYTES = 2 * 1024 * 1024
VALIDATION_COPY_CHUNK_BYTES = 1024 * 1024


@dataclass
class ValidationResult:
    """One validation's outcome: passed, failed (with why), or could not compare (and why)."""

    #: True passed, False failed (a mismatch or damage), None could not compare.
    ok: bool | None
    checked_at: float
    sentence: str
    generation: str | None = None
    #: The archived instant compared with the live file (the transaction's stamp).
    instant: float | None = None
    transactions: int = 0
    pages: int = 0
    differing_pages: list[int] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (instants as seconds since the epoch)."""
        return asdict(self)

    @property
    def shortfall(self) -> str | None:
        """What the activity log records instead of "succeeded" when nothing was compared."""
        return "did not compare" if self.ok is None else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationResult | None:
        """The result a ``validation.json`` holds, or None when it holds none."""
        last = data.get("last")
        if not isinstance(last, dict):
            return None
        with contextlib.suppress(TypeError, ValueError):
            return cls(**{key: last[key] for key in cls.__dataclass_fields__ if key in last})
        return None


def last_validation(archive: str | Path) -> ValidationResult | None:
    """The archive's last validation, or None when none ran (or its record is damaged)."""
    record = read_validation(Path(archive))
    return ValidationResult.from_dict(record) if record else None


def validate_archive(database: str | Path, archive: str | Path,
                     progress: ProgressCallback | None = None,
                     cancelled: CancelCheck | None = None, *,
                     wait_seconds: float = WAIT_FOR_ARCHIVER_SECONDS,
                     record_activity: bool = False,
                     held_bytes: int = VALIDATION_HELD_BYTES) -> ValidationResult:
    """Validate the archive against the live database (see the module's description).

    The outcome is recorded in the archive's ``validation.json`` (and, with
    ``record_activity``, a failure in the activity log); it is returned, not raised.
    ``held_bytes``: the page images the rebuild holds before writing them out (see
    :func:`.replay.apply_transactions`); any limit rebuilds the same file.
    """
    database, archive = Path(database).absolute(), Path(archive)
    action = f"Validating the archive '{archive}'"
    report(progress, 0, 0, STAGE_CHECK)
    generations = list_generations(archive, check=True)
    raise_if_cancelled(cancelled, action)
    damage = [f"{damage.reason}: {damage.file}" for g in generations for damage in g.damage
              if damage.kind == "damaged"]
    current = _current_generation(archive, generations)
    if current is None:
        result = ValidationResult(
            None if not damage else False, time.time(),
            "Not compared with the live file: no archiver is writing into this archive (or "
            "its generation has no snapshot yet); start the archiver and validate again."
            if not damage else f"The archive is damaged: {damage[0]}.", damage=damage)
        return _record(archive, result, None, record_activity)
    own = [d for d in current.damage if d.kind == "damaged"]
    if own:
        result = ValidationResult(False, time.time(), f"The archive's current generation is "
                                  f"damaged: {own[0].reason}: {own[0].file}.", current.id,
                                  damage=damage)
        return _record(archive, result, current, record_activity, own[0].lost_after)
    with tempfile.TemporaryDirectory(prefix="queue-admin-validate-") as scratch:
        result, intact_until = _compare(database, archive, current, Path(scratch), progress,
                                        cancelled, wait_seconds, action, held_bytes)
    result.damage = damage
    failed = current if result.ok is False else None
    if result.ok and damage:
        result.ok = False
        result.sentence = (f"{result.sentence[:-1]}, but other files of the archive are "
                           f"damaged: {damage[0]}.")
    return _record(archive, result, failed, record_activity, intact_until)


def require_valid_archive(database: str | Path, archive: str | Path,
                          progress: ProgressCallback | None = None,
                          cancelled: CancelCheck | None = None) -> ValidationResult:
    """:func:`validate_archive`, raising :class:`ArchiveError` when the validation failed."""
    result = validate_archive(database, archive, progress, cancelled)
    if result.ok is False:
        raise ArchiveError(f"The archive failed its validation: {result.sentence} The instants "
                           "it cannot prove are shown as a gap and the archiver starts a new "
                           "snapshot; take a backup now.", ErrorKind.CORRUPT)
    return result


def _current_generation(archive: Path, generations: list[Generation]) -> Generation | None:
    """The generation a running archiver writes, once restorable (None if none runs)."""
    lock = read_lock(archive)
    if lock is None:
        return None
    try:
        modified = (archive / LOCK_FILE).stat().st_mtime
    except OSError:
        return None
    if lock_is_stale(lock, modified, time.time()):
        return None
    running = [g for g in generations if not g.unusable and g.snapshot is not None
               and g.data.get("ended_at") is None]
    return running[-1] if running else None


def _compare(database: Path, archive: Path, generation: Generation, scratch: Path,
             progress: ProgressCallback | None, cancelled: CancelCheck | None,
             wait_seconds: float, action: str, held_bytes: int = VALIDATION_HELD_BYTES
             ) -> tuple[ValidationResult, float | None]:
    """Steps 1 to 4 of the module's description, and the last intact instant of damage.

    For damage found meanwhile, the generation is trusted up to its last intact instant, not
    only up to the last validation.
    """
    report(progress, 0, 0, STAGE_LIVE)
    live = scratch / "live.db"
    cycle, end_frame, sizes = _copy_live_state(database, generation, live)
    raise_if_cancelled(cancelled, action)
    report(progress, 0, 0, STAGE_WAIT)
    found = _wait_for_commit(generation, cycle, end_frame, sizes, wait_seconds, cancelled,
                             action)
    if isinstance(found, str):
        return ValidationResult(None, time.time(), found, generation.id), None
    count, stamp = found
    if count < 0:
        return ValidationResult(False, time.time(), f"The archive has no transaction ending "
                                f"at the live file's last commit (frame {end_frame} of the WAL "
                                "cycle it is in): a commit was missed.", generation.id), None
    report(progress, 0, 0, STAGE_REBUILD)
    fresh = check_generation(_reloaded(generation))
    if any(d.kind == "damaged" for d in fresh.damage):
        first = next(d for d in fresh.damage if d.kind == "damaged")
        return ValidationResult(False, time.time(), f"The archive's current generation is "
                                f"damaged: {first.reason}: {first.file}.",
                                generation.id), first.lost_after
    rebuilt = rebuild_generation(fresh, stamp, scratch / "rebuilt.db", None, cancelled,
                                 limit=count, held_bytes=held_bytes,
                                 copy_chunk_bytes=VALIDATION_COPY_CHUNK_BYTES, durable=False)
    report(progress, 0, 0, STAGE_COMPARE)
    pages, differing = compare_pages(live, rebuilt.path)
    when = instant_text(stamp)
    if differing:
        shown = ", ".join(str(number) for number in differing[:10])
        return ValidationResult(False, time.time(), f"The archive rebuilt at {when} differs "
                                f"from the live file at the same commit in {len(differing)} of "
                                f"{pages} pages (pages {shown}).", generation.id, stamp, count,
                                pages, differing[:100]), None
    return ValidationResult(True, time.time(), f"The archive rebuilt at {when} is identical to "
                            f"the live file at the same commit ({pages} pages, {count} "
                            "transactions after the snapshot).", generation.id, stamp, count,
                            pages), None


def _reloaded(generation: Generation) -> Generation:
    """The generation read again from disk (it grew while the archiver caught up)."""
    again = list_generations(generation.folder.parent)
    for candidate in again:
        if candidate.id == generation.id:
            return candidate
    raise ArchiveError(f"The archive's generation {generation.id} disappeared while it was "
                       "being validated (retention?); validate again.", ErrorKind.NOT_FOUND)


def _copy_live_state(database: Path, generation: Generation, target: Path
                     ) -> tuple[tuple[int, int] | None, int, dict[str, int]]:
    """Copy the live state at a commit; returns (WAL salts, its end frame, frame log sizes).

    The frame log sizes are those seen while the write lock was held: with no frame in the
    current WAL cycle, every transaction before it is already in them.
    """
    uri = sqlite_uri(database, mode="ro")
    writer = sqlite3.connect(sqlite_uri(database, mode="rw"), uri=True, isolation_level=None,
                             timeout=WRITE_LOCK_TIMEOUT_MS / 1000, check_same_thread=False)
    reader = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        writer.execute(f"PRAGMA busy_timeout={WRITE_LOCK_TIMEOUT_MS}")
        try:
            writer.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise ArchiveError(f"Validating the archive could not take the queue's write lock "
                               f"for a moment ({error}); validate again.",
                               ErrorKind.LOCKED) from error
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
            cycle, end_frame = _wal_end(wal_path(database))
            sizes = {path.name: path.stat().st_size
                     for path in generation.folder.glob(f"{SEGMENT_PREFIX}*")}
        finally:
            writer.execute("ROLLBACK")
        copy = sqlite3.connect(target)
        try:
            # A scratch file, deleted once compared: nothing to flush to the disk (a flush
            # of the whole queue would hold the archiver's own writes back).
            copy.execute("PRAGMA synchronous=OFF")
            copy.execute("PRAGMA journal_mode=OFF")
            reader.backup(copy)
        finally:
            copy.close()
        reader.execute("ROLLBACK")
    finally:
        reader.close()
        writer.close()
    return cycle, end_frame, sizes


def _wal_end(wal: Path) -> tuple[tuple[int, int] | None, int]:
    """The live WAL's salts and last committed frame (None, 0 with no WAL header)."""
    header, _ = read_header(wal)
    if header is None:
        return None, 0
    frame, checksum = 0, header.checksum
    while True:
        found = read_committed(wal, header, frame, checksum)
        if found.oversized_end is not None:
            frame, checksum = found.oversized_end
            continue
        if found.end_frame == frame:
            return header.salts, frame
        frame, checksum = found.end_frame, found.checksum


def _wait_for_commit(generation: Generation, cycle: tuple[int, int] | None, end_frame: int,
                     sizes: dict[str, int], wait_seconds: float,
                     cancelled: CancelCheck | None, action: str
                     ) -> tuple[int, float] | str:
    """(transactions up to the live commit, the stamp of the last) once archived.

    -1 transactions: the archive went past the commit without a transaction ending there.
    A sentence instead when the archiver did not get there in time.
    """
    deadline = time.monotonic() + wait_seconds
    start = generation.data.get("start")
    if start and cycle is not None and (start[1], start[2]) == cycle and start[3] == end_frame:
        return 0, float(generation.snapshot_at or 0)
    finder = _CommitFinder(generation, cycle, end_frame, sizes)
    while True:
        found = finder.look()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            return (f"Not compared with the live file: the archiver did not archive the live "
                    f"file's last commit within {wait_seconds:.0f} s (it may be far behind, or "
                    "a new generation started); validate again.")
        raise_if_cancelled(cancelled, action)
        time.sleep(0.1)


class _CommitFinder:
    """Reads on through a generation's frame logs for the live commit, from where it stopped.

    With a commit in the live WAL's current cycle, the transaction ending at its frame is
    looked for. With none (the WAL was just reset or truncated), every transaction archived
    before the write lock was taken is the live state: those in the frame logs' sizes then.
    """

    def __init__(self, generation: Generation, cycle: tuple[int, int] | None, end_frame: int,
                 sizes: dict[str, int]) -> None:
        self.generation = generation
        self.cycle = cycle if end_frame else None
        self.end_frame = end_frame
        self.sizes = sizes
        self.count, self.stamp = 0, float(generation.snapshot_at or 0)
        self.offsets: dict[str, int] = {}
        self.finished: set[str] = set()

    def look(self) -> tuple[int, float] | None:
        """(transactions, last stamp) once found, -1 transactions if passed, else None."""
        segments = sorted(self.generation.folder.glob(f"{SEGMENT_PREFIX}*"))
        for index, segment in enumerate(segments):
            if segment.name in self.finished:
                continue
            read = SegmentRead(segment)
            limit = self.sizes.get(segment.name, 0)
            for kind, seen, payload in iter_records(segment, version=self.generation.format,
                                                    outcome=read,
                                                    start=self.offsets.get(segment.name, 0)):
                if kind in TRANSACTION_KINDS:
                    if self.cycle is None and read.end_offset > limit:
                        return self.count, self.stamp  # archived after the lock was taken
                    self.count, self.stamp = self.count + 1, seen
                    if self.cycle is not None:
                        position, frames = transaction_position(kind, payload)
                        last = position.frame + frames - 1
                        if (position.salt1, position.salt2) == self.cycle:
                            if last == self.end_frame:
                                return self.count, self.stamp
                            if last > self.end_frame:
                                return -1, seen
                self.offsets[segment.name] = read.end_offset
            if index < len(segments) - 1 and read.problem is None:
                self.finished.add(segment.name)
        return (self.count, self.stamp) if self.cycle is None else None


def compare_pages(live: Path, rebuilt: Path) -> tuple[int, list[int]]:
    """(pages, numbers of the pages that differ) between two database files."""
    with open(live, "rb") as first:
        header = first.read(100)
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    differing = []
    pages = 0
    with open(live, "rb") as first, open(rebuilt, "rb") as second:
        while True:
            one, two = first.read(page_size), second.read(page_size)
            if not one and not two:
                break
            pages += 1
            if pages == 1:
                one, two = _masked(one), _masked(two)
            elif pages % pace.STEP_EVERY == 0:
                pace.step()
            if hashlib.sha256(one).digest() != hashlib.sha256(two).digest():
                differing.append(pages)
    return pages, differing


def _masked(page: bytes) -> bytes:
    data = bytearray(page)
    for start, end in _HEADER_FIELDS_IGNORED:
        data[start:end] = bytes(end - start)
    return bytes(data)


def _record(archive: Path, result: ValidationResult, failed: Generation | None,
            record_activity: bool, intact_until: float | None = None) -> ValidationResult:
    """Write the outcome to validation.json; a failure cuts its generation (see module).

    The generation is trusted up to its last validated instant (its snapshot's when none),
    or up to ``intact_until`` when the failure is damage its checksums located.
    """
    record = read_validation(archive) or {}
    if "damaged" in record:
        record = {}
    passed = dict(record.get("passed") or {})
    failures = list(record.get("failures") or [])
    if result.ok and result.generation is not None and result.instant is not None:
        passed[result.generation] = result.instant
    if failed is not None:
        trusted = intact_until if intact_until is not None else passed.get(
            failed.id, failed.snapshot_at)
        failures.append({"generation": failed.id, "trusted_until": trusted,
                         "reason": f"validation failed at {instant_text(result.checked_at)}: "
                                   f"{result.sentence.rstrip('.')}",
                         "checked_at": result.checked_at, "handled": False})
    if failed is not None:
        _mark_closed_generation(failed)
    present = {path.name for path in archive.glob("gen-*")}
    record = {"last": result.as_dict(),
              "passed": {key: value for key, value in passed.items() if key in present},
              "failures": [f for f in failures if f.get("generation") in present][
                  -_FAILURES_KEPT:]}
    with contextlib.suppress(OSError):
        write_validation(archive, record)
    if record_activity and result.ok is False:
        record_failure_activity(result)
    return result


def _mark_closed_generation(failed: Generation) -> None:
    """Note a failed validation in an ended generation's own (checksummed) generation.json.

    validation.json says how far the generation was proven; losing it must never widen what
    is offered, so the generation itself keeps the fact that a validation failed it (see
    :func:`~.store.apply_validation_failures`). A generation still being written is ended by
    its archiver with a reason that says the same.
    """
    with contextlib.suppress(OSError, ValueError):
        closed = load_generation(failed.folder, scan=False)
        if closed is None or closed.data.get("ended_at") is None:
            return
        if not closed.data.get(VALIDATION_FAILED_KEY):
            closed.data[VALIDATION_FAILED_KEY] = True
            closed.save()


def record_failure_activity(result: ValidationResult) -> None:
    """A failed validation in the activity log (and so the Event Log and the tray)."""
    entry = ActivityEntry.now(VALIDATION_ACTION, result=RESULT_FAILED, message=result.sentence,
                              parameters={"generation": result.generation})
    with contextlib.suppress(Exception):
        ActivityLog(sink=SystemLogSink(enabled=setting_switch(MaintenanceConfig.load))
                    ).append(entry)


def unhandled_failure(archive: Path, generation_id: str) -> str | None:
    """A recorded validation failure of ``generation_id`` nobody acted on yet: its reason.

    Marks it handled, so the archiver starts one new generation for it, not one per pass.
    """
    record = read_validation(archive)
    if not record or "damaged" in record:
        return None
    failures = record.get("failures") or []
    for failure in failures:
        if failure.get("generation") == generation_id and not failure.get("handled"):
            failure["handled"] = True
            with contextlib.suppress(OSError):
                write_validation(archive, {k: v for k, v in record.items() if k != "checksum"})
            return str(failure.get("reason") or "a validation failed")
    return None


class ValidationSchedule:
    """The archiver's side of validation: on an interval, and a new generation after a failure.

    Validation runs on a thread of its own; a failure recorded by any process for the
    current generation makes the archiver start a new one. :meth:`tick` is called on every
    pass of the archiver's loop; it returns the reason for a gap when one is due. It never
    blocks the loop: validation waits for the loop itself.

    The archiver's own work comes first: while the loop copies (between :meth:`working` and
    :meth:`resting`), a validation stops at its next step until the loop rests (at most
    :data:`GIVE_WAY_SECONDS`). Both run in one Python process, so without it the archiver
    waited for the interpreter lock after each of its reads while a long validation ran,
    and fell seconds behind at 500 commits a second.
    """

    #: How often the archive's validation record is looked at for a failure.
    LOOK_EVERY_SECONDS = 2.0
    #: The longest a validation waits at one step for the archiver's loop to rest.
    GIVE_WAY_SECONDS = 1.0

    def __init__(self, database: Path, archive: Path, interval_seconds: float | None,
                 on_result: Callable[[ValidationResult], None] | None = None) -> None:
        self.database = database
        self.archive = archive
        self.interval_seconds = interval_seconds if interval_seconds else None
        self.on_result = on_result
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._next = (time.monotonic() + self.interval_seconds
                      if self.interval_seconds is not None else None)
        self._looked = 0.0
        self._mtime: float | None = None
        #: Set while the archiver's loop rests (sleeps until its next pass).
        self._resting = threading.Event()
        self._resting.set()

    def working(self) -> None:
        """The archiver's loop copies: a running validation waits at its next step."""
        self._resting.clear()

    def resting(self) -> None:
        """The archiver's loop sleeps until its next pass: a validation may go on."""
        self._resting.set()

    def _give_way(self) -> bool:
        """A validation's check between its steps: wait while the loop copies; True to stop."""
        self._resting.wait(self.GIVE_WAY_SECONDS)
        return self._stop.is_set()

    def tick(self, generation_id: str | None, restorable: bool) -> str | None:
        """Start a due validation; the reason to end the current generation, if any."""
        now = time.monotonic()
        running = self._thread is not None and self._thread.is_alive()
        if (self._next is not None and now >= self._next and not running and restorable
                and generation_id is not None):
            self._start()
        if generation_id is None or now - self._looked < self.LOOK_EVERY_SECONDS:
            return None
        self._looked = now
        try:
            mtime = (self.archive / "validation.json").stat().st_mtime
        except OSError:
            return None
        if mtime == self._mtime:
            return None
        self._mtime = mtime
        return unhandled_failure(self.archive, generation_id)

    def _start(self) -> None:
        assert self.interval_seconds is not None
        self._next = time.monotonic() + self.interval_seconds
        self._thread = threading.Thread(target=self._run, name="archive-validation",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with pace.giving_way(self._give_way):
                result = validate_archive(self.database, self.archive,
                                          cancelled=self._give_way, record_activity=True)
        except Exception as error:  # noqa: BLE001 - reported as a result, never fatal
            result = ValidationResult(None, time.time(), f"Validation could not run: {error}")
        give_back_memory()  # the rebuild's freed pages, back to the system for the day
        self._mtime = None  # look at the record at once
        self._looked = 0.0
        if self.on_result is not None and not self._stop.is_set():
            self.on_result(result)

    def stop(self) -> None:
        """Stop a validation that runs (it gives up at its next step) and wait for it."""
        self._stop.set()
        self._resting.set()
        if self._thread is not None:
            self._thread.join(30)

