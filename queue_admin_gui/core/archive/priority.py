"""Running the archiver below the queue's own work: lower CPU and I/O priority for its thread.

The archiver runs all day beside the workers (and, in an incident, beside a restore). At
below-normal priority it never takes a core from them while they need it, and still gets
every idle cycle, which on a queue's machine is nearly all of them: a pass at 500 commits/s
costs a few milliseconds.

Priority is lowered for the archiver's own thread, not its process, so the window that runs
an archiver keeps its normal priority:

- Linux: the thread's nice value is raised to :data:`NICE` and its I/O priority set to the
  lowest of the best-effort class (``ionice -c2 -n7``, not the idle class, which could wait
  behind a busy disk for as long as it stays busy). The threads the archiver starts (the
  snapshot's copy, validation) inherit both.
- Windows: the thread runs at ``THREAD_PRIORITY_BELOW_NORMAL``; its I/O priority stays
  normal (Windows lowers a thread's I/O only together with a background CPU priority).
- Elsewhere (macOS): nothing; priority there is per process.
"""

from __future__ import annotations

import os
import sys
import threading

import psutil

#: The nice value the archiver's thread runs at on Linux (normal is 0, lowest 19).
NICE = 5
#: The I/O priority on Linux: best-effort class, level 7 (the lowest of that class).
IO_CLASS_BEST_EFFORT = 2
IO_LEVEL = 7
_THREAD_PRIORITY_BELOW_NORMAL = -1


def lower_current_thread() -> str | None:
    """Lower the calling thread's CPU (and on Linux I/O) priority; what was done, or None.

    Never raises: a priority that cannot be changed leaves the thread as it was.
    """
    if sys.platform.startswith("linux"):
        return _lower_linux_thread()
    if sys.platform == "win32":
        return _lower_windows_thread()
    return None


def _lower_linux_thread() -> str | None:
    thread = threading.get_native_id()
    done = []
    try:
        now = os.getpriority(os.PRIO_PROCESS, thread)
        if now < NICE:
            os.setpriority(os.PRIO_PROCESS, thread, NICE)
        done.append(f"nice {max(now, NICE)}")
    except OSError:
        pass
    try:
        psutil.Process(thread).ionice(IO_CLASS_BEST_EFFORT, IO_LEVEL)
        done.append(f"I/O best-effort {IO_LEVEL}")
    except (OSError, ValueError, psutil.Error):
        pass
    return ", ".join(done) or None


def _lower_windows_thread() -> str | None:  # pragma: no cover - Windows only
    try:
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        kernel32.GetCurrentThread.restype = ctypes.c_void_p
        kernel32.SetThreadPriority.argtypes = (ctypes.c_void_p, ctypes.c_int)
        if kernel32.SetThreadPriority(kernel32.GetCurrentThread(),
                                      _THREAD_PRIORITY_BELOW_NORMAL):
            return "below normal"
    except (OSError, AttributeError):
        pass
    return None


def thread_priority(native_id: int) -> tuple[int, tuple[int, int]] | None:
    """(nice value, (I/O class, I/O level)) of a thread of this process on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    io = psutil.Process(native_id).ionice()
    return os.getpriority(os.PRIO_PROCESS, native_id), (int(io.ioclass), int(io.value))
