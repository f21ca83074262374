"""Long loops on a thread beside the archiver's loop give way to it now and then.

Validation runs on a thread of the archiver's own process, and Python runs one thread at a
time: a thread that computes for long stretches (checking every record of the frame logs,
replaying them, comparing pages) made the archiver wait for the interpreter after each of
its own reads, lock probes and SQLite calls, and fall seconds behind at 500 commits a second.

Loops that go through many records or pages call :func:`step` every :data:`STEP_EVERY` of
them. On a thread inside :func:`giving_way` that calls the wait it was given (validation
waits there while the archiver's loop copies); on any other thread it does nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

#: Records or pages between two calls of :func:`step` (well under a millisecond of work).
STEP_EVERY = 64

_local = threading.local()


@contextlib.contextmanager
def giving_way(wait: Callable[[], object]) -> Iterator[None]:
    """Within it, :func:`step` on this thread calls ``wait()`` (its result is ignored)."""
    previous = getattr(_local, "wait", None)
    _local.wait = wait
    try:
        yield
    finally:
        _local.wait = previous


def step() -> None:
    """Give way if this thread was asked to (see :func:`giving_way`); otherwise nothing."""
    wait = getattr(_local, "wait", None)
    if wait is not None:
        wait()


__all__ = ["STEP_EVERY", "giving_way", "step"]
