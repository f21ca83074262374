"""Which program pins the WAL, and since when.

A reader keeps SQLite from resetting the WAL while it holds a read mark: a shared lock on one
of the -shm file's read-mark bytes, 123 + i for read mark i. A reader on mark 0 reads the
database file alone, so no checkpoint may copy a single frame back while it reads; a reader on
mark 1 to 4 lets frames up to its mark be copied, but a RESTART or TRUNCATE checkpoint waits
for it to end. The holder of a shared lock on bytes 123 to 127 with the oldest snapshot is
the culprit; the mark's value (``aReadMark[i]`` at byte 100 + 4 i of the -shm header; 0 for
mark 0) is the WAL's length in frames when that reader's snapshot began.

- Linux: the kernel's lock table (``/proc/locks``) lists every process holding each byte.
- macOS and other POSIX systems: ``fcntl(F_GETLK)`` on each byte names one holder.
- Windows: the owner of a byte-range lock cannot be read; the processes with the -shm open,
  less this one and the archivers, are ranked (those running since before the pin began
  first) and the answer says it is a ranking.

A descriptor opened on the -shm file here is never closed: on POSIX, closing any descriptor
on a file drops every lock this process holds on it, SQLite's own included. One descriptor
per file is kept for the life of the process.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from ..files.db_files import shm_path
from .holders import describe_process, find_holders

#: The read-mark bytes whose shared holders pin the WAL (read marks 0 to 4).
PIN_BYTES = (123, 124, 125, 126, 127)
#: Where ``aReadMark[0]`` sits in the -shm file (after the two copies of the WAL header).
READ_MARKS_OFFSET = 100
#: A read mark that holds no snapshot (SQLite's READMARK_NOT_USED).
READ_MARK_UNUSED = 0xFFFFFFFF
#: Words in a command line that mark an archiver, which holds the WAL on purpose.
ARCHIVER_WORDS = ("archive",)

METHOD_LOCK = "lock"
METHOD_RANKING = "ranking"

_KEPT_DESCRIPTORS: dict[tuple[int, int], int] = {}


@dataclass(frozen=True)
class WalPinHolder:
    """A program holding a read mark of the WAL (or, for a ranking, possibly holding one)."""

    pid: int
    program: str
    command_line: str = ""
    #: The WAL's length in frames when its snapshot began; None when not known.
    read_mark: int | None = None
    #: Since when it holds the WAL, as far as the samples tell (epoch seconds), or None.
    since: float | None = None

    def short_name(self) -> str:
        """``"PID 4242 python nightly_report.py"``: the program and what it runs, briefly."""
        name = self.program or "(unknown program)"
        words = self.command_line.replace('"', " ").split()
        script = next((word for word in words[1:]
                       if word.lower().endswith((".py", ".pyw", ".ps1", ".js"))), "")
        if script:
            name = f"{name} {script.replace(chr(92), '/').rsplit('/', 1)[-1]}"
        return f"PID {self.pid} {name}"

    def describe(self) -> str:
        """``"PID 4242 python (python report.py)"``."""
        command = self.command_line if self.command_line != self.program else ""
        if len(command) > 120:
            command = command[:119] + "\u2026"
        name = self.program or "(unknown program)"
        return f"PID {self.pid} {name}" + (f" ({command})" if command else "")


@dataclass(frozen=True)
class WalPinLookup:
    """Who pins the WAL: named by the lock (exact) or ranked (Windows); empty when free."""

    method: str
    holders: tuple[WalPinHolder, ...] = ()
    #: Why nothing could be told, if so ("" when the lookup ran).
    unavailable: str = ""

    @property
    def exact(self) -> bool:
        """True when the lock itself named the holder."""
        return self.method == METHOD_LOCK

    @property
    def culprit(self) -> WalPinHolder | None:
        """The one program to name: the holder of the oldest snapshot, or the first ranked."""
        if not self.holders:
            return None
        if self.exact:
            return min(self.holders, key=lambda holder: (holder.read_mark is None,
                                                         holder.read_mark or 0))
        return self.holders[0]

    def alive(self, pid_exists: Callable[[int], bool] = psutil.pid_exists) -> WalPinLookup:
        """The lookup without the programs that have ended since (never name a dead PID)."""
        kept = tuple(holder for holder in self.holders if pid_exists(holder.pid))
        return WalPinLookup(self.method, kept, self.unavailable)


def find_wal_pin(db_path: str | Path, *, exclude_pids: Sequence[int] = (),
                 history: np.ndarray | None = None,
                 now: float | None = None) -> WalPinLookup:
    """Who holds a read mark of ``db_path``'s WAL, other than this process and archivers.

    ``history``: rows of (time, WAL frames) from the sampler, oldest first, to tell since
    when each reader's snapshot holds the WAL. Never raises for a process that vanishes.
    """
    shm = shm_path(Path(db_path))
    if not shm.exists():
        return WalPinLookup(METHOD_LOCK)
    excluded = {os.getpid(), *exclude_pids}
    if os.name == "nt":
        return ranked_holders(Path(db_path), excluded, history, now)
    try:
        if sys.platform.startswith("linux") and Path("/proc/locks").exists():
            held = _linux_holders(shm)
        else:
            held = fcntl_holders(shm)
    except OSError as error:
        return WalPinLookup(METHOD_LOCK, unavailable=f"the -shm file cannot be read ({error})")
    marks = read_marks(shm)
    holders: list[WalPinHolder] = []
    for pid, slot in sorted(held):
        if pid in excluded:
            continue
        program, command = describe_process(pid)
        if _is_archiver(command):
            continue
        if slot == 0:
            mark: int | None = 0  # the database file alone, before any frame of the WAL
        elif marks is not None and marks[slot] != READ_MARK_UNUSED:
            mark = marks[slot]
        else:
            mark = None
        since = pinned_since(mark, history) if mark is not None else None
        holders.append(WalPinHolder(pid, program, command, mark, since))
    return WalPinLookup(METHOD_LOCK, _one_per_pid(holders))


def _one_per_pid(holders: list[WalPinHolder]) -> tuple[WalPinHolder, ...]:
    """A program on several read marks once, with its oldest snapshot."""
    best: dict[int, WalPinHolder] = {}
    for holder in holders:
        known = best.get(holder.pid)
        if known is None or (holder.read_mark or 0) < (known.read_mark or 0):
            best[holder.pid] = holder
    return tuple(best.values())


def _is_archiver(command: str) -> bool:
    words = command.lower().split()
    return any(word in ARCHIVER_WORDS for word in words)


def read_marks(shm: Path) -> list[int] | None:
    """The five read marks of the -shm header, index = read mark; None when unreadable."""
    try:
        descriptor = _kept_descriptor(shm)
        data = os.pread(descriptor, 20, READ_MARKS_OFFSET) if hasattr(os, "pread") else None
    except OSError:
        return None
    if data is None or len(data) < 20:
        return None
    marks = list(struct.unpack("=5I", data))
    # the holder's slot i is byte 123 + i; the caller indexes by (byte - 123)
    return marks


def _kept_descriptor(shm: Path) -> int:
    """A read-only descriptor on ``shm`` kept open for good (closing one drops our locks)."""
    info = os.stat(shm)
    key = (info.st_dev, info.st_ino)
    descriptor = _KEPT_DESCRIPTORS.get(key)
    if descriptor is None:
        descriptor = os.open(shm, os.O_RDONLY)
        _KEPT_DESCRIPTORS[key] = descriptor
    return descriptor


def _linux_holders(shm: Path) -> set[tuple[int, int]]:
    """(pid, read mark) of every shared lock on the pinning bytes, from ``/proc/locks``."""
    info = os.stat(shm)
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    found: set[tuple[int, int]] = set()
    with open("/proc/locks", encoding="ascii", errors="replace") as table:
        for line in table:
            fields = line.split()
            if len(fields) < 8 or "->" in fields or fields[5] != device:
                continue
            if fields[1] != "POSIX" or fields[3] != "READ":
                continue
            pid = int(fields[4])
            start = int(fields[6])
            end = None if fields[7] == "EOF" else int(fields[7])
            for byte in PIN_BYTES:
                if start <= byte and (end is None or byte <= end) and pid > 0:
                    found.add((pid, byte - 123))
    return found


def fcntl_holders(shm: Path) -> set[tuple[int, int]]:
    """(pid, read mark) of one holder of each pinning byte, asked with ``F_GETLK``."""
    import fcntl

    descriptor = _kept_descriptor(shm)
    found: set[tuple[int, int]] = set()
    for byte in PIN_BYTES:
        request = _flock(fcntl.F_WRLCK, byte)
        answer = fcntl.fcntl(descriptor, fcntl.F_GETLK, request)
        kind, pid = _flock_answer(answer)
        if kind == fcntl.F_RDLCK and pid > 0:
            found.add((pid, byte - 123))
    return found


def _flock(kind: int, byte: int) -> bytes:
    """A ``struct flock`` asking about one byte (the layout differs between systems)."""
    if sys.platform == "darwin" or "bsd" in sys.platform:
        return struct.pack("qqihh", byte, 1, 0, kind, os.SEEK_SET)
    return struct.pack("hhqqi", kind, os.SEEK_SET, byte, 1, 0)


def _flock_answer(answer: bytes) -> tuple[int, int]:
    """(lock type, pid) from a ``struct flock`` returned by ``F_GETLK``."""
    if sys.platform == "darwin" or "bsd" in sys.platform:
        _start, _length, pid, kind, _whence = struct.unpack("qqihh", answer[:struct.calcsize(
            "qqihh")])
        return kind, pid
    kind, _whence, _start, _length, pid = struct.unpack("hhqqi", answer[:struct.calcsize(
        "hhqqi")])
    return kind, pid


def pinned_since(read_mark: int | None, history: np.ndarray | None) -> float | None:
    """Since when a reader whose snapshot ends at ``read_mark`` frames holds the WAL back.

    ``history`` rows are (time, WAL frames), oldest first. The WAL cannot be reset while the
    reader reads, so its frames stayed above the mark once they passed it: the answer is the
    first sample of that last stretch above the mark (the reader began before it). None when
    the WAL has not passed the mark, or was above it in every sample kept (then it began
    before the window was watching).
    """
    if read_mark is None or history is None or not len(history):
        return None
    rows = history[~np.isnan(history[:, 1])]
    if not len(rows):
        return None
    at_or_below = np.nonzero(rows[:, 1] <= read_mark)[0]
    if not len(at_or_below):
        return None
    first_after = at_or_below[-1] + 1
    if first_after >= len(rows):
        return None
    return float(rows[first_after, 0])


def ranked_holders(db_path: Path, excluded: set[int], history: np.ndarray | None,
             now: float | None) -> WalPinLookup:
    """The processes with the -shm open, likeliest first (Windows cannot name the owner)."""
    lookup = find_holders(db_path)
    if lookup.unavailable:
        return WalPinLookup(METHOD_RANKING, unavailable=lookup.unavailable)
    shm_name = shm_path(db_path).name
    candidates: list[tuple[float, WalPinHolder]] = []
    for holder in lookup.holders:
        if holder.pid in excluded or _is_archiver(holder.command_line):
            continue
        if holder.files and shm_name not in holder.files:
            continue
        try:
            started = psutil.Process(holder.pid).create_time()
        except psutil.Error:
            continue
        candidates.append((started, WalPinHolder(holder.pid, holder.program,
                                                 holder.command_line)))
    candidates.sort(key=lambda pair: pair[0])
    return WalPinLookup(METHOD_RANKING, tuple(holder for _started, holder in candidates))


def pin_age_text(since: float | None, now: float | None = None) -> str:
    """``"for 6 min (since 02:14:12)"``, or "" when not known."""
    if since is None:
        return ""
    now = time.time() if now is None else now
    seconds = max(0.0, now - since)
    if seconds < 120:
        age = f"{seconds:.0f} s"
    elif seconds < 7200:
        age = f"{seconds / 60:.0f} min"
    else:
        age = f"{seconds / 3600:.1f} h"
    stamp = time.strftime("%H:%M:%S", time.localtime(since))
    return f"for {age} (since {stamp})"


__all__ = ["METHOD_LOCK", "METHOD_RANKING", "WalPinHolder", "WalPinLookup", "find_wal_pin",
           "pin_age_text", "pinned_since", "read_marks"]
