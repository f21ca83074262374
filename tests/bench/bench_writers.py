"""What writes to the benchmark queue: the bulk generator and the PrismQ-like writer processes.

The generator fills a queue file with the real schema and about 1.4 KB per task, fast (one
transaction, no journal while it fills). The writers are separate processes (spawn start
method, as on Windows), each with its own connection and the writers' PRAGMAs, taking every
write transaction with ``BEGIN IMMEDIATE`` and alternating an enqueue and a claim at full
speed. Each writer records when every transaction started and how long it took (lock wait
included), so the benchmark can compare an idle window with the window of a backup.
"""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from queue_admin_gui.core.database import QueueDatabase, connect

TASK_TYPES = ("render", "transcode", "thumbnail", "ocr", "index", "notify")
PRIORITIES = (10, 50, 100, 100, 100, 200)
REGIONS = ("eu-west", "us-east", "ap-south")
FORMATS = ("mp4", "png", "pdf", "json", "webm")
#: Padding that brings a payload to about 1 KB of JSON.
PAYLOAD_NOTE = "lorem ipsum dolor sit amet " * 30

_INSERT_TASK = """
INSERT INTO task_queue (type, priority, payload, compatibility, status, attempts,
                        run_after_utc, finished_at_utc, idempotency_key,
                        created_at_utc, updated_at_utc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_ENQUEUE = """
INSERT INTO task_queue (type, priority, payload, compatibility, idempotency_key)
VALUES (?, ?, ?, ?, ?)
"""

_CLAIM = """
UPDATE task_queue SET status = 'leased', reserved_at_utc = datetime('now'),
       lease_until_utc = datetime('now', '+60 seconds'), locked_by = ?,
       updated_at_utc = datetime('now')
WHERE status = 'queued'
  AND id = (SELECT id FROM task_queue
            WHERE status = 'queued' AND run_after_utc <= datetime('now')
            ORDER BY priority, run_after_utc, id LIMIT 1)
RETURNING id
"""


def payload_json(key: str, rng: random.Random) -> str:
    """A ~1 KB task payload like PrismQ's (its ``format`` feeds a generated column)."""
    task_format = rng.choice(FORMATS)
    return (f'{{"format": "{task_format}", "source": "s3://prismq-bench/{key}.{task_format}", '
            f'"size_kb": {rng.randint(4, 40_000)}, "note": "{PAYLOAD_NOTE}"}}')


def compatibility_json(rng: random.Random) -> str:
    """A task's compatibility JSON (its ``region`` feeds a generated column)."""
    gpu = "true" if rng.random() < 0.3 else "false"
    return f'{{"region": "{rng.choice(REGIONS)}", "gpu": {gpu}}}'


def _task_rows(start: int, count: int, rng: random.Random) -> Iterator[tuple[object, ...]]:
    """Rows for the generator: mostly done, a third waiting, a few dead, all in the past."""
    for number in range(start, start + count):
        key = f"bench-{number:08d}"
        roll = rng.random()
        if roll < 0.60:
            status, attempts, finished = "completed", 1, "2024-01-02 03:04:05"
        elif roll < 0.95:
            status, attempts, finished = "queued", 0, None
        else:
            status, attempts, finished = "failed", 5, "2024-01-02 03:04:05"
        yield (rng.choice(TASK_TYPES), rng.choice(PRIORITIES), payload_json(key, rng),
               compatibility_json(rng), status, attempts, "2024-01-01 00:00:00", finished, key,
               "2024-01-01 00:00:00", "2024-01-02 03:04:05")


def generate_queue(path: Path, tasks: int, *, chunk: int = 20_000, seed: int = 7) -> None:
    """Create a queue file with the real schema holding ``tasks`` tasks, as fast as SQLite can.

    The schema comes from :meth:`QueueDatabase.initialize_schema`; the rows go in within one
    transaction with the journal off (nothing to protect in a file being made), then the file
    is switched back to WAL like every real queue.
    """
    with QueueDatabase(path) as database:
        database.initialize_schema()
    rng = random.Random(seed)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-1000000")
        connection.execute("BEGIN")
        for start in range(0, tasks, chunk):
            connection.executemany(_INSERT_TASK, _task_rows(start, min(chunk, tasks - start), rng))
        connection.execute(
            "INSERT INTO workers (worker_id, capabilities) VALUES ('bench-worker', '{}')"
        )
        connection.execute("COMMIT")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


@dataclass
class WriterSamples:
    """What the writers recorded: the start and duration of every write transaction."""

    starts: array = field(default_factory=lambda: array("d"))
    latencies: array = field(default_factory=lambda: array("d"))
    enqueued: int = 0
    claimed: int = 0
    errors: int = 0
    last_error: str = ""

    def extend(self, other: WriterSamples) -> None:
        """Merge another writer's samples into these."""
        self.starts.extend(other.starts)
        self.latencies.extend(other.latencies)
        self.enqueued += other.enqueued
        self.claimed += other.claimed
        self.errors += other.errors
        self.last_error = other.last_error or self.last_error

    def between(self, start: float, end: float) -> list[float]:
        """Latencies (seconds) of the transactions that started in ``[start, end)``."""
        return [latency for began, latency in zip(self.starts, self.latencies, strict=True)
                if start <= began < end]


def writer_main(db_path: str, worker_id: str, ready: Connection, go: object, stop: object,
                results: Connection) -> None:
    """One writer process: enqueue, claim, enqueue, claim ... until told to stop.

    ``go`` and ``stop`` are multiprocessing Events. Every transaction is timed from
    ``BEGIN IMMEDIATE`` to the end of ``COMMIT`` with :func:`time.monotonic`, which every
    process reads from the same system clock.
    """
    rng = random.Random(worker_id)
    samples = WriterSamples()
    connection = connect(db_path)
    ready.send(True)
    go.wait()  # type: ignore[attr-defined]
    number = 0
    while not stop.is_set():  # type: ignore[attr-defined]
        number += 1
        enqueue = number % 2 == 1
        began = time.monotonic()
        try:
            connection.execute("BEGIN IMMEDIATE")
            if enqueue:
                key = f"{worker_id}-{number}"
                connection.execute(_ENQUEUE, (rng.choice(TASK_TYPES), rng.choice(PRIORITIES),
                                              payload_json(key, rng), compatibility_json(rng),
                                              key))
            else:
                connection.execute(_CLAIM, (worker_id,)).fetchall()
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            samples.errors += 1
            samples.last_error = str(error)
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            continue
        samples.starts.append(began)
        samples.latencies.append(time.monotonic() - began)
        if enqueue:
            samples.enqueued += 1
        else:
            samples.claimed += 1
    connection.close()
    results.send(samples)
    results.close()


class WriterPool:
    """N writer processes against one queue file: start, release together, stop, collect."""

    def __init__(self, db_path: Path, count: int = 4) -> None:
        self.db_path = db_path
        self.count = count
        self._context = multiprocessing.get_context("spawn")
        self._go = self._context.Event()
        self._stop = self._context.Event()
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._results: list[Connection] = []

    def start(self, timeout: float = 120.0) -> None:
        """Spawn the writers and wait until each has its connection open."""
        readies: list[Connection] = []
        for index in range(self.count):
            ready_recv, ready_send = self._context.Pipe(duplex=False)
            result_recv, result_send = self._context.Pipe(duplex=False)
            process = self._context.Process(
                target=writer_main, name=f"bench-writer-{index}",
                args=(str(self.db_path), f"bench-writer-{index}", ready_send, self._go,
                      self._stop, result_send),
            )
            process.start()
            ready_send.close()
            result_send.close()
            self._processes.append(process)
            self._results.append(result_recv)
            readies.append(ready_recv)
        for ready in readies:
            if not ready.poll(timeout):
                raise RuntimeError("a writer process did not start in time")
            ready.recv()

    def go(self) -> float:
        """Release every writer at once; returns the monotonic time they were released."""
        released = time.monotonic()
        self._go.set()
        return released

    def stop(self, timeout: float = 120.0) -> WriterSamples:
        """Stop the writers and merge what they recorded."""
        self._stop.set()
        self._go.set()
        merged = WriterSamples()
        for receiver in self._results:
            if not receiver.poll(timeout):
                raise RuntimeError("a writer process did not report in time")
            merged.extend(receiver.recv())
        for process in self._processes:
            process.join(timeout)
        return merged

    def kill(self) -> None:
        """Terminate any writer still running (after an error in the benchmark)."""
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join(10)

    def __enter__(self) -> WriterPool:
        """Start the writers (not yet released)."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Never leave a writer process behind."""
        self.kill()
