"""Keeping the archiver small all day: memory freed after a burst of work goes back to the system.

CPython hands large freed blocks back to the C allocator, which on Linux (glibc) keeps them
for reuse instead of returning them: after a validation (which rebuilds a copy of the
queue on its own thread, in an arena of that thread's), the archiver's private memory would
stay at its peak until the process ends (a snapshot, or a burst of commits, leaves the same).
:func:`give_back_memory` asks glibc to return every free page of every arena
(``malloc_trim(0)``); the validation thread calls it when it ends, the archiver's loop every
minute. Elsewhere (Windows, macOS, musl) there is nothing to ask or the call does not exist,
and it does nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache


def give_back_memory() -> bool:
    """Return the C allocator's free memory to the system; True when it was asked to.

    Never raises. False where the platform has no such call (anywhere but glibc).
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    try:
        trim(0)
    except OSError:
        return False
    return True


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` (glibc's), or None where it has none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # on first use: nothing else of the archiver needs it

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this Python runs on
    except (OSError, AttributeError):
        return None
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]
