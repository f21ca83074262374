"""Progress and cancellation callbacks shared by every long core operation.

Core callables take ``progress(done, total, stage)`` and ``cancelled()``; they know nothing of
Qt. The job runner passes callables that emit signals and read a thread-safe flag; the CLI
passes a printer or nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator

from .errors import OperationCancelled

ProgressCallback = Callable[[int, int, str], None]
CancelCheck = Callable[[], bool]

#: SQLite virtual-machine steps between two cancellation checks inside one statement.
CANCEL_CHECK_STEPS = 10_000


def report(progress: ProgressCallback | None, done: int, total: int, stage: str) -> None:
    """Call ``progress`` if there is one."""
    if progress is not None:
        progress(done, total, stage)


def is_cancelled(cancelled: CancelCheck | None) -> bool:
    """True when the caller asked to stop."""
    return cancelled is not None and bool(cancelled())


def raise_if_cancelled(cancelled: CancelCheck | None, action: str) -> None:
    """Raise :class:`OperationCancelled` for ``action`` when the caller asked to stop."""
    if is_cancelled(cancelled):
        raise OperationCancelled(f"{action} was cancelled; nothing was changed.")


@contextlib.contextmanager
def interruptible(connection: sqlite3.Connection, cancelled: CancelCheck | None
                  ) -> Iterator[None]:
    """Let a long single statement (VACUUM, integrity_check) stop when ``cancelled()`` turns true.

    SQLite calls the progress handler every few thousand steps; returning true interrupts the
    statement with SQLITE_INTERRUPT, which :func:`errors.translate_error` turns into
    :class:`OperationCancelled`. This is the in-thread twin of ``connection.interrupt()``.
    """
    if cancelled is None:
        yield
        return
    connection.set_progress_handler(lambda: 1 if cancelled() else 0, CANCEL_CHECK_STEPS)
    try:
        yield
    finally:
        connection.set_progress_handler(None, 0)
