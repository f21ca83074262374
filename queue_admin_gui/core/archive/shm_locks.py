"""Seeing, from outside, that another program's checkpoint is waiting on the archiver's readers.

SQLite keeps its WAL locks as byte-range locks on the -shm file, from byte 120 on: 120 is the
writer lock, 121 the checkpoint lock, 123 + i the read slot i. A FULL, RESTART or TRUNCATE
checkpoint holds the writer and the checkpoint lock, both exclusively, for as long as it waits
for readers; a worker's automatic checkpoint (PASSIVE) holds only the checkpoint lock, and a
writer only the writer lock. While the writer lock is held nobody can append a frame, so the
archiver can copy to the end of the log and then let the checkpoint finish.

The probe only asks; it never keeps a lock:
- Linux: the kernel's lock table (``/proc/locks``) names the other process holding each
  byte. The -shm file is never opened for this: closing any descriptor on it would release
  every POSIX lock this process holds there, SQLite's own included. Locks of this process
  are left out unless asked for (``include_own``): the window asks while it runs a
  checkpoint of its own beside its own archiver, and then holds its other in-process writers
  back (:mod:`..process_writers`), so a write lock of its own process is the checkpoint's.
- Windows: ``LockFileEx`` asks for a shared lock on the byte and fails at once when someone
  holds it exclusively; a lock it gets is released straight away. A writer that tries the byte
  at that instant sees SQLite's BUSY, which its busy handler retries. Locks are per handle
  there, so those of this process are always seen.
- Elsewhere nothing is detected, and the archiver relies on its own resets only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

WRITE_LOCK_BYTE = 120
CHECKPOINT_LOCK_BYTE = 121


@dataclass(frozen=True)
class HeldLock:
    """Someone else holds a lock byte; ``pid`` is known on Linux only."""

    exclusive: bool
    pid: int | None


def can_probe() -> bool:
    """True where the lock bytes can be examined (Linux and Windows)."""
    return sys.platform.startswith("linux") or os.name == "nt"


def owners_known() -> bool:
    """True where the probe names the process holding each lock byte (Linux)."""
    return sys.platform.startswith("linux")


def checkpoint_waiting(shm: Path, include_own: bool = False, owners: bool = True) -> bool:
    """True when one other program holds both the writer and the checkpoint lock exclusively.

    That is a FULL, RESTART or TRUNCATE checkpoint in progress: it is waiting for readers or
    copying pages, and no frame can be appended until it ends. ``include_own`` counts this
    process's own locks too (Linux; on Windows they always count). ``owners`` false: act as
    where holders are not named (Windows), taking both locks held for one holder.
    """
    held = probe_bytes(shm, (WRITE_LOCK_BYTE, CHECKPOINT_LOCK_BYTE), include_own)
    if held is None:
        return False
    writer, checkpointer = held
    if writer is None or checkpointer is None:
        return False
    if not (writer.exclusive and checkpointer.exclusive):
        return False
    return not owners or writer.pid is None or writer.pid == checkpointer.pid


def checkpoint_lock_held(shm: Path, include_own: bool = False) -> bool:
    """True while another program (or this one, ``include_own``) holds the checkpoint lock."""
    held = probe_bytes(shm, (CHECKPOINT_LOCK_BYTE,), include_own)
    return bool(held and held[0] is not None)


def probe_bytes(shm: Path, offsets: tuple[int, ...],
                include_own: bool = False) -> list[HeldLock | None] | None:
    """Who holds each lock byte (None: free); None overall when it cannot be told."""
    try:
        if sys.platform.startswith("linux"):
            return _probe_posix(shm, offsets, include_own)
        if os.name == "nt":
            return _probe_windows(shm, offsets)
    except OSError:
        return None
    return None


def _probe_posix(shm: Path, offsets: tuple[int, ...],
                 include_own: bool = False) -> list[HeldLock | None]:
    """Read the kernel's lock table instead of asking through a descriptor.

    Opening and closing a descriptor on the -shm file would drop every POSIX lock this
    process holds on it (SQLite's read marks included), so the file is never opened here.
    """
    info = os.stat(shm)
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    found: list[HeldLock | None] = [None] * len(offsets)
    with open("/proc/locks", encoding="ascii", errors="replace") as table:
        for line in table:
            fields = line.split()
            if len(fields) < 8 or "->" in fields or fields[5] != device:
                continue
            kind, pid_text, start_text, end_text = fields[3], fields[4], fields[6], fields[7]
            pid = int(pid_text)
            if pid == os.getpid() and not include_own:
                continue  # this process's own locks (its own connections)
            start = int(start_text)
            end = None if end_text == "EOF" else int(end_text)
            for index, offset in enumerate(offsets):
                if start <= offset and (end is None or offset <= end):
                    found[index] = HeldLock(exclusive=kind == "WRITE",
                                            pid=pid if pid > 0 else None)
    return found


def _probe_windows(shm: Path, offsets: tuple[int, ...]) -> list[HeldLock | None]:
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]

    class Overlapped(ctypes.Structure):
        _fields_ = [("Internal", ctypes.c_void_p), ("InternalHigh", ctypes.c_void_p),
                    ("Offset", wintypes.DWORD), ("OffsetHigh", wintypes.DWORD),
                    ("hEvent", wintypes.HANDLE)]

    kernel32.CreateFileW.restype = wintypes.HANDLE
    generic_read, share_all, open_existing = 0x80000000, 0x7, 3
    handle = kernel32.CreateFileW(str(shm), generic_read, share_all, None, open_existing, 0,
                                  None)
    if handle in (None, wintypes.HANDLE(-1).value):
        raise OSError(ctypes.get_last_error(), f"cannot open {shm}")
    found: list[HeldLock | None] = []
    try:
        for offset in offsets:
            overlapped = Overlapped(Offset=offset)
            fail_immediately = 0x1
            if kernel32.LockFileEx(handle, fail_immediately, 0, 1, 0, ctypes.byref(overlapped)):
                kernel32.UnlockFileEx(handle, 0, 1, 0, ctypes.byref(Overlapped(Offset=offset)))
                found.append(None)
            else:
                found.append(HeldLock(exclusive=True, pid=None))
    finally:
        kernel32.CloseHandle(handle)
    return found
