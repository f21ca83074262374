"""Simulated PrismQ workers, so the tool shows live data out of the box.

:class:`DemoWorkers` runs worker threads against a queue file that behave like PrismQ's real
workers: they heartbeat, claim, renew, complete, fail with back-off and now and then die
holding a lease, while new tasks keep arriving. WAL growth and stale leases in the window are
therefore real. The demo file itself comes from :func:`~.queue_file.create_demo_queue`.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..database import connect, write_transaction
from ..errors import ErrorKind, QueueDatabaseError, classify_sqlite_error
from ..process_writers import write_gate
from .queue_file import (
    REGIONS,
    TASK_TYPES,
    random_task,
)

__all__ = ["MAX_BACKOFF_SECONDS", "DemoStats", "DemoWorkers", "backoff_seconds", "run_demo"]

MAX_BACKOFF_SECONDS = 300.0


def backoff_seconds(attempts: int, rng: random.Random) -> float:
    """The retry delay after the ``attempts``-th failure: 1 s x 2^(n-1), capped, +-10 %."""
    base = min(2.0 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    return base * rng.uniform(0.9, 1.1)


_INSERT_ARRIVAL = """
INSERT INTO task_queue (type, priority, payload, compatibility, idempotency_key)
VALUES (?, ?, ?, ?, ?)
"""


@dataclass(frozen=True)
class DemoStats:
    """Counters of what the simulated workers did (a snapshot; read ``DemoWorkers.stats``)."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    died: int = 0
    renewed: int = 0
    arrived: int = 0
    busy_retries: int = 0
    errors: int = 0
    last_error: str | None = None


@dataclass
class _Counters:
    values: DemoStats = field(default_factory=DemoStats)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, amount: int = 1, error: str | None = None) -> None:
        with self.lock:
            changes: dict[str, Any] = {name: getattr(self.values, name) + amount}
            if error is not None:
                changes["last_error"] = error
            self.values = replace(self.values, **changes)


class _Busy(Exception):
    """The database stayed locked past the busy timeout; the step is retried."""


class DemoWorkers:
    """K simulated PrismQ workers plus a stream of arriving tasks, on background threads.

    Each thread opens its own connection and writes with ``BEGIN IMMEDIATE`` like the real
    workers. :meth:`stop` ends them promptly; a worker holding a task when stopped puts it
    back in the queue, as a real worker shutting down cleanly does.
    """

    def __init__(self, path: str | Path, workers: int = 4, *, lease_seconds: float = 30,
                 die_probability: float = 0.02, arrival_per_second: float = 5,
                 seed: int | None = None, fail_probability: float = 0.1,
                 work_seconds: tuple[float, float] = (0.05, 0.5),
                 busy_timeout_ms: int = 2000) -> None:
        self.path = Path(path)
        self.workers = workers
        self.lease_seconds = lease_seconds
        self.die_probability = die_probability
        self.arrival_per_second = arrival_per_second
        self.fail_probability = fail_probability
        self.work_seconds = work_seconds
        self.busy_timeout_ms = busy_timeout_ms
        self._seed_source = random.Random(seed)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._counters = _Counters()

    @property
    def stats(self) -> DemoStats:
        """What the workers did so far."""
        return self._counters.values

    @property
    def is_running(self) -> bool:
        """True while any worker or the arrival thread is still alive."""
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        """Start the worker threads and the arrival thread (no-op when already running)."""
        if self.is_running:
            return
        self._stop.clear()
        targets = [self._run_worker] * self.workers
        if self.arrival_per_second > 0:
            targets.append(self._run_arrivals)
        self._threads = [
            threading.Thread(target=target, args=(random.Random(self._seed_source.random()),),
                             name=f"demo-{target.__name__.strip('_')}-{n}", daemon=True)
            for n, target in enumerate(targets)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10) -> bool:
        """Ask every thread to stop and wait up to ``timeout`` seconds; True when all ended."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not self.is_running

    def run_for(self, seconds: float) -> DemoStats:
        """Start, run for ``seconds`` (or until :meth:`stop` is called), stop, give the stats."""
        self.start()
        try:
            self._stop.wait(seconds)
        finally:
            self.stop()
        return self.stats

    @contextlib.contextmanager
    def _write_transaction(self, connection: sqlite3.Connection
                           ) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction that raises _Busy when the lock wait ran out."""
        try:
            with write_gate(self.path).writing(self.busy_timeout_ms / 1000), \
                    write_transaction(connection):
                yield connection
        except TimeoutError as error:
            self._counters.add("busy_retries")
            raise _Busy from error
        except sqlite3.OperationalError as error:
            if classify_sqlite_error(error) is ErrorKind.LOCKED:
                self._counters.add("busy_retries")
                raise _Busy from error
            raise

    def _write(self, connection: sqlite3.Connection, sql: str,
               params: tuple[Any, ...]) -> list[sqlite3.Row]:
        """One statement in its own write transaction, giving the rows it returned."""
        with self._write_transaction(connection):
            return connection.execute(sql, params).fetchall()

    def _guarded(self, step: Any, *args: Any) -> Any:
        """Run a step, retrying while busy; other errors are counted and end the step."""
        while not self._stop.is_set():
            try:
                return step(*args)
            except _Busy:
                self._stop.wait(0.02)
            except sqlite3.Error as error:
                self._counters.add("errors", error=str(error))
                self._stop.wait(0.5)
                return None
        return None

    def _run_worker(self, rng: random.Random) -> None:
        while not self._stop.is_set():
            try:
                connection = connect(self.path, busy_timeout_ms=self.busy_timeout_ms)
            except QueueDatabaseError as error:
                self._counters.add("errors", error=str(error))
                self._stop.wait(1.0)
                continue
            try:
                self._work_until_death(connection, rng)
            finally:
                connection.close()

    def _work_until_death(self, connection: sqlite3.Connection, rng: random.Random) -> None:
        """Serve tasks as one worker id until stopped or until the worker dies."""
        worker_id = f"demo-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}"
        capabilities = json.dumps({"types": list(TASK_TYPES), "region": rng.choice(REGIONS)})
        self._guarded(self._write, connection,
                      "INSERT OR REPLACE INTO workers (worker_id, capabilities, heartbeat_utc) "
                      "VALUES (?, ?, datetime('now'))", (worker_id, capabilities))
        while not self._stop.is_set():
            self._guarded(self._write, connection,
                          "UPDATE workers SET heartbeat_utc = datetime('now') WHERE worker_id = ?",
                          (worker_id,))
            claimed = self._guarded(self._write, connection, _CLAIM, (
                self._lease_modifier(), worker_id))
            if not claimed:
                self._stop.wait(0.2)
                continue
            self._counters.add("claimed")
            task = claimed[0]
            if self._do_work(connection, worker_id, task["id"], rng):
                return
            self._finish(connection, worker_id, task, rng)

    def _lease_modifier(self) -> str:
        return f"+{self.lease_seconds:.3f} seconds"

    def _do_work(self, connection: sqlite3.Connection, worker_id: str, task_id: int,
                 rng: random.Random) -> bool:
        """Spend the work time (renewing the lease half-way); True when the worker died."""
        half = rng.uniform(*self.work_seconds) / 2
        if self._stop.wait(half):
            self._release(connection, worker_id, task_id)
            return False
        if rng.random() < self.die_probability:
            self._counters.add("died")
            return True
        if self._guarded(self._write, connection, _RENEW, (
                self._lease_modifier(), task_id, worker_id)):
            self._counters.add("renewed")
        if self._stop.wait(half):
            self._release(connection, worker_id, task_id)
        return False

    def _finish(self, connection: sqlite3.Connection, worker_id: str, task: sqlite3.Row,
                rng: random.Random) -> None:
        """Complete the task, or fail it with back-off (or for good at max_attempts)."""
        if self._stop.is_set():  # stopped after the work: a stopped worker gives its lease back
            self._release(connection, worker_id, task["id"])
            return
        if rng.random() >= self.fail_probability:
            if self._guarded(self._write, connection, _COMPLETE, (task["id"], worker_id)):
                self._counters.add("completed")
            return
        attempts = int(task["attempts"]) + 1
        if attempts >= int(task["max_attempts"]):
            done = self._guarded(self._write, connection, _FAIL_FOR_GOOD, (
                attempts, "Demo failure: gave up after the last attempt.", task["id"], worker_id))
            if done:
                self._counters.add("dead_lettered")
        else:
            delay = backoff_seconds(attempts, rng)
            done = self._guarded(self._write, connection, _FAIL_RETRY, (
                attempts, f"+{delay:.3f} seconds", "Demo failure: upstream service timed out.",
                task["id"], worker_id))
        if done:
            self._counters.add("failed")

    def _release(self, connection: sqlite3.Connection, worker_id: str, task_id: int) -> None:
        """Give a task back on shutdown, once, without waiting on a busy database."""
        with contextlib.suppress(sqlite3.Error, _Busy):
            self._write(connection, _RELEASE, (task_id, worker_id))

    def _run_arrivals(self, rng: random.Random) -> None:
        try:
            connection = connect(self.path, busy_timeout_ms=self.busy_timeout_ms)
        except QueueDatabaseError as error:
            self._counters.add("errors", error=str(error))
            return
        tick = 0.2
        owed = 0.0
        try:
            while not self._stop.wait(tick):
                owed += self.arrival_per_second * tick
                count = int(owed)
                if count == 0:
                    continue
                rows = [random_task(rng, f"arrival-{uuid.UUID(int=rng.getrandbits(128)).hex}")
                        for _ in range(count)]
                if self._guarded(self._insert_arrivals, connection, rows) is not None:
                    owed -= count
                    self._counters.add("arrived", count)
        finally:
            connection.close()

    def _insert_arrivals(self, connection: sqlite3.Connection,
                         rows: list[tuple[str, int, str, str, str]]) -> int:
        with self._write_transaction(connection):
            connection.executemany(_INSERT_ARRIVAL, rows)
        return len(rows)


_CLAIM = """
UPDATE task_queue SET status = 'leased', reserved_at_utc = datetime('now'),
    processing_started_utc = datetime('now'), lease_until_utc = datetime('now', ?),
    locked_by = ?, updated_at_utc = datetime('now')
WHERE id = (SELECT id FROM task_queue WHERE status = 'queued'
            AND run_after_utc <= datetime('now') ORDER BY priority, run_after_utc, id LIMIT 1)
RETURNING id, attempts, max_attempts
"""
_RENEW = """
UPDATE task_queue SET lease_until_utc = datetime('now', ?), updated_at_utc = datetime('now')
WHERE id = ? AND status = 'leased' AND locked_by = ? RETURNING id
"""
_COMPLETE = """
UPDATE task_queue SET status = 'completed', finished_at_utc = datetime('now'),
    lease_until_utc = NULL, updated_at_utc = datetime('now')
WHERE id = ? AND status = 'leased' AND locked_by = ? RETURNING id
"""
_FAIL_FOR_GOOD = """
UPDATE task_queue SET status = 'failed', attempts = ?, error_message = ?,
    finished_at_utc = datetime('now'), lease_until_utc = NULL, locked_by = NULL,
    updated_at_utc = datetime('now')
WHERE id = ? AND status = 'leased' AND locked_by = ? RETURNING id
"""
_FAIL_RETRY = """
UPDATE task_queue SET status = 'queued', attempts = ?, run_after_utc = datetime('now', ?),
    error_message = ?, lease_until_utc = NULL, reserved_at_utc = NULL,
    processing_started_utc = NULL, locked_by = NULL, updated_at_utc = datetime('now')
WHERE id = ? AND status = 'leased' AND locked_by = ? RETURNING id
"""
_RELEASE = """
UPDATE task_queue SET status = 'queued', lease_until_utc = NULL, reserved_at_utc = NULL,
    processing_started_utc = NULL, locked_by = NULL, updated_at_utc = datetime('now')
WHERE id = ? AND status = 'leased' AND locked_by = ?
"""


def run_demo(path: str | Path, workers: int = 4, seconds: float = 10.0,
             **options: Any) -> DemoStats:
    """Run ``workers`` simulated workers on ``path`` for ``seconds``, then stop them cleanly."""
    return DemoWorkers(path, workers, **options).run_for(seconds)
