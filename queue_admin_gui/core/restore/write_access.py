"""Can a restore write to the live database now? Probe it, and wait with a countdown.

A restore needs the write lock for its single transaction. These steps find out, without
changing anything, whether another program holds that lock or a long transaction, and let
the wizard wait for it to be released while showing how long it still waits.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from ..database import closing_connection, connect
from ..errors import ErrorKind, QueueAdminError, translate_error
from ..measurements.holders import HolderLookup, find_holders
from ..progress import CancelCheck, raise_if_cancelled

#: How long one probe waits for the lock before calling the file blocked.
PROBE_BUSY_TIMEOUT_MS = 250


def probe_write_access(live_path: str | Path,
                       busy_timeout_ms: int = PROBE_BUSY_TIMEOUT_MS) -> str | None:
    """Say what blocks writing to the live database, or None when a restore could write now.

    Takes the write lock the restore needs (``BEGIN IMMEDIATE``; ``BEGIN EXCLUSIVE`` outside
    WAL mode, where readers block a writer too) on a short busy timeout and rolls back at
    once. A missing or damaged file blocks nothing: the restore replaces it.
    """
    live_path = Path(live_path)
    if not live_path.exists():
        return None
    try:
        with closing_connection(connect(live_path, busy_timeout_ms=busy_timeout_ms)) as conn:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            conn.execute("BEGIN IMMEDIATE" if mode == "wal" else "BEGIN EXCLUSIVE")
            conn.execute("ROLLBACK")
    except (sqlite3.Error, QueueAdminError) as error:
        if translate_error(error, "Probing").kind is ErrorKind.LOCKED:
            return (f"another program holds a write lock or a long transaction on "
                    f"'{live_path.name}'")
    return None


def wait_for_write_access(live_path: str | Path, timeout_seconds: float,
                          tick: Callable[[float], None] | None = None,
                          cancelled: CancelCheck | None = None) -> bool:
    """Wait until nothing blocks writing to the live database; False when time ran out.

    ``tick(remaining_seconds)`` is called about once a second so a countdown can show; a
    cancel raises :class:`OperationCancelled`. Nothing is changed either way.
    """
    deadline = time.monotonic() + max(0.0, float(timeout_seconds))
    while True:
        raise_if_cancelled(cancelled, "Waiting for the database")
        remaining = deadline - time.monotonic()
        if tick is not None:
            tick(max(0.0, remaining))
        probe_ms = int(min(1000.0, max(50.0, remaining * 1000)))
        if probe_write_access(live_path, probe_ms) is None:
            return True
        if time.monotonic() >= deadline:
            if tick is not None:
                tick(0.0)
            return False


def blocked_sentence(live_path: str | Path, waited_seconds: float,
                     holders: HolderLookup | None = None) -> str:
    """What says a restore did not start because the file stayed locked, and who holds it.

    ``holders`` is looked up here when not given (so call this on a worker thread).
    """
    lookup = holders if holders is not None else find_holders(live_path)
    return (f"Restore not started: another program kept a write lock or a long transaction "
            f"on '{Path(live_path).name}' for {int(round(waited_seconds))} seconds "
            "(a worker, a script or a database browser); nothing was changed. Close that "
            f"program or stop the workers, then try again. {lookup.sentence()}")
