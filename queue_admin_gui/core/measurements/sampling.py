"""Live monitoring without Qt: one read-only sample of a database, bounded history, diagnosis.

A *sample* is what an administrator watches over minutes to a day: the sizes of the database,
``-wal`` and ``-shm`` files, ``page_count`` and ``freelist_count``, now and then the task
counts by status, and (when the ``-shm`` file can be read) how many WAL frames exist and how
many a checkpoint has already copied back. :func:`read_sample` opens the file read-only,
reads, and closes again, so the monitor never holds a read transaction that would itself keep
the WAL from being reset.

Samples go into :class:`SampleHistory` and :class:`TaskCountHistory`, fixed-size numpy ring
buffers: a day at one sample per second takes a few MB however long the window stays open.
:mod:`.starvation` reads that history to say when a long reader pins the WAL.
"""

from __future__ import annotations

import csv
import math
import os
import sqlite3
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..database import closing_connection, open_read_only, task_counts
from ..errors import ErrorKind, QueueDatabaseError, translate_error
from ..files.db_files import file_size, shm_path, wal_path
from ..maintenance_results import CheckpointResult
from ..schema import KNOWN_STATUSES

MEGABYTE = 1024 * 1024
SECONDS_PER_DAY = 24 * 3600
#: The writers' ``wal_autocheckpoint``: past this many frames a checkpoint should have run.
AUTOCHECKPOINT_FRAMES = 1000
WAL_HEADER_BYTES = 32
WAL_FRAME_HEADER_BYTES = 24
#: Readers wait at most this long for a lock: a busy file becomes a gap, not a stall.
SAMPLE_BUSY_TIMEOUT_MS = 250

SAMPLE_COLUMNS = ("time", "wal_bytes", "shm_bytes", "db_bytes", "page_count",
                  "freelist_count", "wal_frames", "backfilled_frames")
TASK_COLUMNS = ("time", *KNOWN_STATUSES)

FileIdentity = tuple[int, int]


@dataclass(frozen=True)
class Sample:
    """Read-only statistics of one database file at one moment (``time`` is epoch seconds)."""

    time: float
    db_bytes: int
    wal_bytes: int
    shm_bytes: int
    page_count: int
    freelist_count: int
    page_size: int
    wal_frames: int | None = None
    backfilled_frames: int | None = None
    task_counts: dict[str, int] | None = None
    identity: FileIdentity | None = None

    @property
    def wal_mb(self) -> float:
        """WAL size in MB (MiB, as Explorer shows it)."""
        return self.wal_bytes / MEGABYTE


def file_identity(path: str | Path) -> FileIdentity | None:
    """Device and file number of ``path``: they change when the file is replaced."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (int(status.st_dev), int(status.st_ino))


def _read_shm_head(shm_file: Path) -> bytes | None:
    """The first 100 bytes of the ``-shm`` file, read without touching anyone's locks.

    Where locks belong to a process (Linux, macOS), closing any descriptor of a file drops
    every lock the process holds on it: SQLite's write lock and read marks of every other
    connection of this process (a restore in the middle of writing, a reader) would be gone,
    and another program could then write or reset the WAL under them. So the file is never
    opened there: on Linux the descriptor SQLite keeps open in this process is read through
    (the caller keeps a connection open meanwhile); elsewhere nothing is read. Windows locks
    belong to handles, so the file is opened and read there.
    """
    if os.name == "nt":
        with open(shm_file, "rb") as handle:
            return handle.read(100)
    if not sys.platform.startswith("linux"):
        return None
    target = os.path.realpath(shm_file)
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                return os.pread(int(name), 100, 0)
        except OSError:
            continue
    return None


def read_wal_index(shm_file: str | Path) -> tuple[int, int] | None:
    """Frames in the WAL and frames already checkpointed, from the ``-shm`` header; or None.

    Only the first 100 bytes are read (the two header copies and the backfill count), never
    the lock bytes after them, and never by opening the file where that would drop this
    process's locks (:func:`_read_shm_head`). A header that is not initialised, of an unknown
    version, or caught half-written (the two copies differ) gives None: that sample then
    lacks frames.
    """
    try:
        head = _read_shm_head(Path(shm_file))
    except OSError:
        return None
    if head is None or len(head) < 100 or head[:48] != head[48:96]:
        return None
    version, _unused, _change, initialised = struct.unpack_from("=IIIB", head, 0)
    if version != 3007000 or not initialised:
        return None
    (max_frame,) = struct.unpack_from("=I", head, 16)
    (backfilled,) = struct.unpack_from("=I", head, 96)
    return int(max_frame), int(backfilled)


def read_sample(db_path: str | Path, at: float, *, with_task_counts: bool = False,
                busy_timeout_ms: int = SAMPLE_BUSY_TIMEOUT_MS) -> Sample:
    """Take one sample of ``db_path``, stamped ``at``; the connection is closed on return.

    Raises :class:`QueueDatabaseError` (NOT_FOUND, LOCKED, ...) when the file cannot be read;
    the monitor records a gap then. Task counts are None when the file has no task table.
    """
    path = Path(db_path)
    action = f"Sampling '{path}'"
    identity = file_identity(path)
    connection = open_read_only(path, busy_timeout_ms=busy_timeout_ms)
    counts: dict[str, int] | None = None
    with closing_connection(connection):
        try:
            page_count = int(connection.execute("PRAGMA page_count").fetchone()[0])
            freelist = int(connection.execute("PRAGMA freelist_count").fetchone()[0])
            page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
            if with_task_counts:
                counts = _task_counts_if_queue(connection)
        except sqlite3.Error as error:
            raise translate_error(error, action, QueueDatabaseError) from error
        wal_bytes = file_size(wal_path(path))
        frames: tuple[int, int] | None = (0, 0)
        if wal_bytes > 0:  # while the connection keeps SQLite's -shm descriptor open
            frames = read_wal_index(shm_path(path))
    return Sample(
        time=at, db_bytes=file_size(path), wal_bytes=wal_bytes,
        shm_bytes=file_size(shm_path(path)), page_count=page_count, freelist_count=freelist,
        page_size=page_size, wal_frames=None if frames is None else frames[0],
        backfilled_frames=None if frames is None else frames[1], task_counts=counts,
        identity=identity,
    )


def _task_counts_if_queue(connection: sqlite3.Connection) -> dict[str, int] | None:
    try:
        return task_counts(connection)
    except sqlite3.OperationalError as error:
        if "no such table" in str(error) or "no such column" in str(error):
            return None
        raise


def replaced_file_error(path: str | Path) -> QueueDatabaseError:
    """The error a sample reports when another file now sits at the monitored path."""
    return QueueDatabaseError(
        f"The database file '{path}' was replaced by another file; monitoring carries on "
        "with the new file.", ErrorKind.NOT_FOUND,
    )


class RingBuffer:
    """A fixed-size table of float columns: appending past capacity overwrites the oldest row.

    Memory is allocated once. Reads return time-ordered copies (oldest first); ``appended``
    counts every row ever added, so a view can tell cheaply whether anything is new.
    """

    def __init__(self, capacity: int, columns: Sequence[str]) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.columns = tuple(columns)
        self._index = {name: position for position, name in enumerate(self.columns)}
        self._data = np.full((capacity, len(self.columns)), np.nan, dtype=np.float64)
        self._next = 0
        self._count = 0
        self.appended = 0

    @property
    def capacity(self) -> int:
        """Rows kept at most."""
        return int(self._data.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer (fixed at construction)."""
        return int(self._data.nbytes)

    def __len__(self) -> int:
        """Rows held now (at most ``capacity``)."""
        return self._count

    def append(self, row: Sequence[float]) -> None:
        """Add one row (one value per column; NaN marks a missing value)."""
        self._data[self._next] = row
        self._next = (self._next + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)
        self.appended += 1

    def clear(self) -> None:
        """Forget every row (the allocation stays)."""
        self._data.fill(np.nan)
        self._next = 0
        self._count = 0
        self.appended += 1

    def _physical(self, logical: int) -> int:
        oldest = (self._next - self._count) % self.capacity
        return (oldest + logical) % self.capacity

    def row(self, logical: int) -> np.ndarray:
        """Row number ``logical`` in time order (negative counts from the newest)."""
        if logical < 0:
            logical += self._count
        if not 0 <= logical < self._count:
            raise IndexError("ring buffer row out of range")
        return self._data[self._physical(logical)].copy()

    def ordered(self, columns: Iterable[str] | None = None, start: int = 0) -> np.ndarray:
        """Rows ``start`` .. newest in time order, as an (n, k) copy of the chosen columns."""
        picks = [self._index[name] for name in (columns or self.columns)]
        start = max(0, start)
        if start >= self._count:
            return np.empty((0, len(picks)))
        first = self._physical(start)
        if first < self._next:
            return self._data[first:self._next, picks]
        return np.concatenate((self._data[first:, picks], self._data[:self._next, picks]))

    def column(self, name: str, start: int = 0) -> np.ndarray:
        """One column in time order from row ``start``."""
        return self.ordered((name,), start)[:, 0]

    def first_row_at_or_after(self, moment: float) -> int:
        """The first row whose ``time`` is at least ``moment`` (binary search; times ascend)."""
        time_column = self._index["time"]
        low, high = 0, self._count
        while low < high:
            middle = (low + high) // 2
            if self._data[self._physical(middle), time_column] < moment:
                low = middle + 1
            else:
                high = middle
        return low

    def since(self, moment: float, columns: Iterable[str] | None = None) -> np.ndarray:
        """Rows stamped at or after ``moment``, in time order: what a plot window shows."""
        return self.ordered(columns, self.first_row_at_or_after(moment))


class SampleHistory(RingBuffer):
    """The samples of the last ``capacity`` ticks (a day at 1 Hz by default)."""

    def __init__(self, capacity: int = SECONDS_PER_DAY) -> None:
        super().__init__(capacity, SAMPLE_COLUMNS)

    def append_sample(self, sample: Sample) -> None:
        """Record a sample; unknown frame counts are stored as NaN."""
        self.append((
            sample.time, sample.wal_bytes, sample.shm_bytes, sample.db_bytes,
            sample.page_count, sample.freelist_count, _or_nan(sample.wal_frames),
            _or_nan(sample.backfilled_frames),
        ))

    def append_gap(self, moment: float) -> None:
        """Record that no sample could be taken at ``moment`` (plots break the line there)."""
        self.append((moment, *([math.nan] * (len(self.columns) - 1))))


class TaskCountHistory(RingBuffer):
    """Task counts by status, taken less often than the samples."""

    def __init__(self, capacity: int = SECONDS_PER_DAY // 10) -> None:
        super().__init__(capacity, TASK_COLUMNS)

    def append_counts(self, moment: float, counts: dict[str, int] | None) -> None:
        """Record the counts at ``moment`` (None records a gap)."""
        known = counts or {}
        self.append((moment, *(known.get(status, math.nan) for status in KNOWN_STATUSES)))


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def history_capacity(interval_seconds: float, span_seconds: float = SECONDS_PER_DAY,
                     limit: int = 2 * SECONDS_PER_DAY) -> int:
    """Rows needed to keep ``span_seconds`` at one sample per ``interval_seconds`` (capped)."""
    return max(1, min(limit, math.ceil(span_seconds / max(interval_seconds, 1e-3))))


def wal_level(wal_bytes: float, warning_mb: float, critical_mb: float) -> str:
    """``"ok"``, ``"warning"`` or ``"critical"`` for a WAL size against the config's limits."""
    megabytes = wal_bytes / MEGABYTE
    if megabytes >= critical_mb:
        return "critical"
    if megabytes >= warning_mb:
        return "warning"
    return "ok"


def export_csv(path: str | Path, samples: SampleHistory | np.ndarray,
               tasks: TaskCountHistory | np.ndarray | None = None) -> int:
    """Write the samples (with task counts on the rows they were taken) to CSV; rows written.

    ``samples`` and ``tasks`` are histories or snapshots of them (``ordered()`` arrays), so a
    job can write a copy while the GUI thread keeps appending. The file is written beside
    the target and renamed into place, so a failed export never leaves half a file under the
    chosen name. Gaps are rows with empty values.
    """
    path = Path(path)
    rows = samples.ordered() if isinstance(samples, RingBuffer) else np.asarray(samples)
    if tasks is None:
        task_rows = np.empty((0, len(TASK_COLUMNS)))
    else:
        task_rows = tasks.ordered() if isinstance(tasks, RingBuffer) else np.asarray(tasks)
    task_by_time = {float(row[0]): row[1:] for row in task_rows}
    temporary = path.with_name(path.name + ".partial")
    header = ["time_utc", "epoch_seconds", *SAMPLE_COLUMNS[1:], *(
        f"tasks_{status}" for status in KNOWN_STATUSES)]
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in rows:
                stamp = datetime.fromtimestamp(float(row[0]), tz=timezone.utc)
                counts = task_by_time.get(float(row[0]))
                writer.writerow([
                    stamp.isoformat(timespec="seconds"), f"{row[0]:.3f}",
                    *(_csv_number(value) for value in row[1:]),
                    *(_csv_number(value) for value in (
                        counts if counts is not None else [math.nan] * len(KNOWN_STATUSES))),
                ])
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise translate_error(error, f"Exporting the samples to '{path}'",
                              QueueDatabaseError) from error
    return len(rows)


def _csv_number(value: float) -> str:
    return "" if math.isnan(value) else str(int(value))


@dataclass(frozen=True)
class CheckpointOutcome:
    """What one checkpoint run from the tool achieved (from its result dict)."""

    time: float
    mode: str
    busy: int
    log_frames: int
    checkpointed_frames: int

    @classmethod
    def from_result(cls, result: CheckpointResult | dict[str, Any],
                    moment: float) -> CheckpointOutcome:
        """Read a checkpoint result: the typed one, or its dict (old key names accepted)."""
        fields = result.as_dict() if isinstance(result, CheckpointResult) else result
        return cls(
            time=moment, mode=str(fields.get("mode", "?")), busy=int(fields.get("busy", 0)),
            log_frames=int(fields.get("log_frames", fields.get("log", -1))),
            checkpointed_frames=int(fields.get("checkpointed_frames",
                                               fields.get("checkpointed", -1))),
        )

    @property
    def left_frames_behind(self) -> bool:
        """True when the checkpoint could not copy every frame back into the database."""
        return self.log_frames > 0 and (self.checkpointed_frames < self.log_frames
                                        or (self.busy != 0 and self.mode != "PASSIVE"))
