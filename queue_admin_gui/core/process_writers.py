"""Writers inside the window's own process, held apart from its own RESTART or TRUNCATE.

On Linux the kernel's lock table says which *process* holds SQLite's write lock, not which
connection. When the window runs a RESTART or TRUNCATE checkpoint while its own archiver
runs, the archiver sees the write and checkpoint locks held by its own process and must be
sure the write lock is the checkpoint's: another connection of the same process (the demo's
worker threads) could be holding it in the middle of a transaction, and frames it then
appended would be reset away unarchived. Every in-process writer that is not one of the
engine's maintenance writers (those already run one at a time under
:func:`~.database.writer_lock`) writes under :meth:`WriteGate.writing`; the checkpoint runs
under :meth:`WriteGate.exclusive`, which waits for them to finish and holds new ones back.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path


class WriteGate:
    """Many in-process writers at a time, or one checkpoint that none of them overlaps."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._writers = 0
        self._checkpoints = 0

    @contextlib.contextmanager
    def writing(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the gate open for one write transaction; TimeoutError when held back too long."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._checkpoints:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("a checkpoint of this process holds the database")
                self._condition.wait(left)
            self._writers += 1
        try:
            yield
        finally:
            with self._condition:
                self._writers -= 1
                self._condition.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Wait until no in-process writer is inside, and keep new ones out until the end."""
        with self._condition:
            self._checkpoints += 1
            while self._writers:
                self._condition.wait()
        try:
            yield
        finally:
            with self._condition:
                self._checkpoints -= 1
                self._condition.notify_all()


_GATES: dict[str, WriteGate] = {}
_GATES_GUARD = threading.Lock()


def write_gate(path: str | Path) -> WriteGate:
    """The one gate of this process for the database file at ``path``."""
    key = os.path.normcase(str(Path(path).absolute()))
    with _GATES_GUARD:
        return _GATES.setdefault(key, WriteGate())
