"""PrismQ's own queue, as its code makes and works it: the reference fixture for compatibility.

PrismQ's backend (``Backend/src/queue/`` of Nomoos/PrismQ.Client at commit c3bb23e) creates
the queue with ``QueueDatabase.initialize_schema()``: every statement of its schema module run
in order on a connection that first applied its PRAGMAs, then one commit. Its schema differs
from this tool's built-in one in ways a schema check must accept: ``task_logs`` carries its
foreign key as a table constraint, statements keep PrismQ's own spacing and ``IF NOT EXISTS``,
and five observability views exist in every real queue.

Its ``WorkerEngine.run_loop`` claims with one ``UPDATE ... RETURNING`` inside ``BEGIN
IMMEDIATE``, marks the task as processing in a second transaction, runs the handler, then
completes (or fails) it in a third; it keeps one connection open for its whole life and writes
no heartbeat row. :data:`WORKER_SCRIPT` is a process that does exactly that, and records every
task it executed, so that a test can prove no task ran twice.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

#: The PRAGMAs PrismQ applies to every connection, in its order (mmap as on Linux).
PRISMQ_PRAGMAS = (
    ("journal_mode", "WAL"),
    ("synchronous", "NORMAL"),
    ("busy_timeout", 5000),
    ("wal_autocheckpoint", 1000),
    ("foreign_keys", "ON"),
    ("temp_store", "MEMORY"),
    ("mmap_size", 134217728),
    ("page_size", 4096),
    ("cache_size", -20000),
)

#: PrismQ's schema statements, in the order ``initialize_schema()`` runs them.
PRISMQ_SCHEMA_STATEMENTS = (
    """
CREATE TABLE IF NOT EXISTS task_queue (
  id                 INTEGER PRIMARY KEY AUTOINCREMENT,
  type               TEXT NOT NULL,
  priority           INTEGER NOT NULL DEFAULT 100,
  payload            TEXT NOT NULL,
  compatibility      TEXT NOT NULL DEFAULT '{}',
  
  status             TEXT NOT NULL DEFAULT 'queued',
  attempts           INTEGER NOT NULL DEFAULT 0,
  max_attempts       INTEGER NOT NULL DEFAULT 5,
  
  run_after_utc      DATETIME NOT NULL DEFAULT (datetime('now')),
  lease_until_utc    DATETIME,
  reserved_at_utc    DATETIME,
  processing_started_utc DATETIME,
  finished_at_utc    DATETIME,
  
  locked_by          TEXT,
  error_message      TEXT,
  idempotency_key    TEXT,
  
  created_at_utc     DATETIME NOT NULL DEFAULT (datetime('now')),
  updated_at_utc     DATETIME NOT NULL DEFAULT (datetime('now')),
  
  -- Generated columns for JSON filtering
  -- region: from compatibility (worker matching), format: from payload (task data)
  region             TEXT GENERATED ALWAYS AS (json_extract(compatibility, '$.region')) VIRTUAL,
  format             TEXT GENERATED ALWAYS AS (json_extract(payload, '$.format')) VIRTUAL
);
""",
    """
CREATE TABLE IF NOT EXISTS workers (
  worker_id      TEXT PRIMARY KEY,
  capabilities   TEXT NOT NULL,
  heartbeat_utc  DATETIME NOT NULL DEFAULT (datetime('now'))
);
""",
    """
CREATE TABLE IF NOT EXISTS task_logs (
  log_id     INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id    INTEGER NOT NULL,
  at_utc     DATETIME NOT NULL DEFAULT (datetime('now')),
  level      TEXT NOT NULL,
  message    TEXT,
  details    TEXT,
  FOREIGN KEY (task_id) REFERENCES task_queue(id)
);
""",
    """
CREATE INDEX IF NOT EXISTS ix_task_status_prio_time
  ON task_queue (status, priority, run_after_utc, id);
""",
    """
CREATE INDEX IF NOT EXISTS ix_task_type_status
  ON task_queue (type, status);
""",
    """
CREATE INDEX IF NOT EXISTS ix_task_region 
  ON task_queue (region);
""",
    """
CREATE INDEX IF NOT EXISTS ix_task_format 
  ON task_queue (format);
""",
    """
CREATE UNIQUE INDEX IF NOT EXISTS uq_task_idempotency
  ON task_queue (idempotency_key)
  WHERE idempotency_key IS NOT NULL;
""",
    """
CREATE INDEX IF NOT EXISTS ix_logs_task 
  ON task_logs (task_id, at_utc);
""",
    """
CREATE VIEW IF NOT EXISTS v_queue_status_summary AS
SELECT
    status,
    COUNT(*) as task_count,
    ROUND(AVG(attempts), 2) as avg_attempts,
    MIN(created_at_utc) as oldest_task,
    MAX(created_at_utc) as newest_task
FROM task_queue
GROUP BY status;
""",
    """
CREATE VIEW IF NOT EXISTS v_queue_type_summary AS
SELECT
    type,
    status,
    COUNT(*) as task_count,
    ROUND(AVG(priority), 2) as avg_priority
FROM task_queue
GROUP BY type, status;
""",
    """
CREATE VIEW IF NOT EXISTS v_worker_status AS
SELECT
    w.worker_id,
    w.capabilities,
    w.heartbeat_utc,
    COUNT(t.id) as active_tasks,
    ROUND((JULIANDAY('now') - JULIANDAY(w.heartbeat_utc)) * 86400) as seconds_since_heartbeat
FROM workers w
LEFT JOIN task_queue t ON t.locked_by = w.worker_id AND t.status = 'processing'
GROUP BY w.worker_id, w.capabilities, w.heartbeat_utc;
""",
    """
CREATE VIEW IF NOT EXISTS v_task_performance AS
SELECT
    type,
    status,
    COUNT(*) as task_count,
    ROUND(AVG(JULIANDAY(finished_at_utc) - JULIANDAY(processing_started_utc)) * 86400, 2) as avg_processing_seconds,
    ROUND(AVG(attempts), 2) as avg_attempts
FROM task_queue
WHERE finished_at_utc IS NOT NULL
GROUP BY type, status;
""",
    """
CREATE VIEW IF NOT EXISTS v_recent_failures AS
SELECT
    id,
    type,
    status,
    attempts,
    error_message,
    finished_at_utc
FROM task_queue
WHERE status IN ('failed', 'dead_letter')
ORDER BY finished_at_utc DESC
LIMIT 100;
""",
)

#: The five views every real PrismQ queue carries.
PRISMQ_VIEWS = (
    "v_queue_status_summary",
    "v_queue_type_summary",
    "v_worker_status",
    "v_task_performance",
    "v_recent_failures",
)


def prismq_connect(path: str | Path) -> sqlite3.Connection:
    """A connection set up as PrismQ's ``QueueDatabase.get_connection()`` sets its own up."""
    connection = sqlite3.connect(str(path), check_same_thread=False, timeout=5.0)
    connection.row_factory = sqlite3.Row
    for pragma, value in PRISMQ_PRAGMAS:
        connection.execute(f"PRAGMA {pragma} = {value}")
    return connection


def make_prismq_queue(path: str | Path, tasks: int = 0, task_type: str = "render") -> Path:
    """Create a queue exactly as PrismQ's ``initialize_schema()`` does, with ``tasks`` queued.

    Tasks are inserted as PrismQ's producers insert them (type, payload, compatibility and
    an idempotency key; every other column from its default).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = prismq_connect(path)
    try:
        for statement in PRISMQ_SCHEMA_STATEMENTS:
            connection.execute(statement)
        connection.commit()
        if tasks:
            add_prismq_tasks(connection, tasks, task_type=task_type)
    finally:
        connection.close()
    return path


def add_prismq_tasks(connection: sqlite3.Connection, count: int, task_type: str = "render",
                     key_prefix: str = "k") -> None:
    """Enqueue ``count`` tasks in one ``BEGIN IMMEDIATE`` transaction, as a producer does."""
    start = connection.execute("SELECT COALESCE(MAX(id), 0) FROM task_queue").fetchone()[0]
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(
        "INSERT INTO task_queue (type, priority, payload, compatibility, idempotency_key)"
        " VALUES (?, 100, ?, ?, ?)",
        [(task_type, f'{{"format": "mp4", "n": {start + n}}}', '{"region": "eu-west"}',
          f"{key_prefix}-{start + n}") for n in range(1, count + 1)],
    )
    connection.commit()


#: A worker process that behaves as PrismQ's ``WorkerEngine.run_loop`` (priority claimer):
#: one connection for its whole life, claim / processing / complete as three IMMEDIATE
#: transactions, no heartbeat row. Each executed task id is appended to the log file,
#: flushed, before it is completed. SIGTERM ends the loop after the current task.
WORKER_SCRIPT = r'''
import signal, sqlite3, sys, time

db_path, worker_id, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
work_seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 0.01
lease_seconds = int(sys.argv[5]) if len(sys.argv) > 5 else 60
running = True

def stop(*_):
    global running
    running = False

signal.signal(signal.SIGTERM, stop)
connection = sqlite3.connect(db_path, check_same_thread=False, timeout=5.0)
connection.row_factory = sqlite3.Row
for pragma, value in (("journal_mode", "WAL"), ("synchronous", "NORMAL"),
                      ("busy_timeout", 5000), ("wal_autocheckpoint", 1000),
                      ("foreign_keys", "ON"), ("temp_store", "MEMORY"),
                      ("mmap_size", 134217728), ("page_size", 4096),
                      ("cache_size", -20000)):
    connection.execute(f"PRAGMA {pragma} = {value}")

CLAIM = """
WITH candidate AS (
    SELECT id FROM task_queue
    WHERE status = 'queued' AND run_after_utc <= datetime('now')
    ORDER BY priority ASC, id ASC LIMIT 1
)
UPDATE task_queue
SET status = 'leased', reserved_at_utc = datetime('now'),
    lease_until_utc = datetime('now', printf('+%d seconds', ?)), locked_by = ?
WHERE id = (SELECT id FROM candidate)
RETURNING *
"""

def transaction(sql, params):
    connection.execute("BEGIN IMMEDIATE")
    try:
        row = connection.execute(sql, params).fetchone()
        connection.commit()
        return row
    except BaseException:
        connection.rollback()
        raise

with open(log_path, "a", buffering=1) as log:
    log.write("started\n")
    while running:
        try:
            task = transaction(CLAIM, (lease_seconds, worker_id))
            if task is None:
                time.sleep(0.05)
                continue
            transaction("UPDATE task_queue SET processing_started_utc = datetime('now'),"
                        " updated_at_utc = datetime('now') WHERE id = ?", (task["id"],))
            time.sleep(work_seconds)
            log.write(f"{task['id']}\n")
            transaction("UPDATE task_queue SET status = 'completed',"
                        " finished_at_utc = datetime('now'), updated_at_utc = datetime('now')"
                        " WHERE id = ? AND status = 'leased'", (task["id"],))
        except sqlite3.Error as error:
            log.write(f"error {error}\n")
            time.sleep(0.05)
    log.write("stopped\n")
connection.close()
'''


class PrismQWorker:
    """One running PrismQ-style worker process (see :data:`WORKER_SCRIPT`)."""

    def __init__(self, db_path: Path, worker_id: str, log_path: Path,
                 work_seconds: float = 0.01, lease_seconds: int = 60) -> None:
        self.worker_id = worker_id
        self.log_path = log_path
        script = log_path.with_suffix(".py")
        script.write_text(WORKER_SCRIPT, encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(db_path), worker_id, str(log_path),
             str(work_seconds), str(lease_seconds)],
        )

    def log_lines(self) -> list[str]:
        """Lines the worker has written so far."""
        try:
            return self.log_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    def wait_started(self, timeout: float = 30.0) -> None:
        """Block until the worker has opened the queue and entered its loop."""
        deadline = time.monotonic() + timeout
        while "started" not in self.log_lines():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.worker_id} exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {self.worker_id} did not start")
            time.sleep(0.02)

    def executed(self) -> list[int]:
        """Ids of the tasks this worker executed, in order."""
        return [int(line) for line in self.log_lines() if line.isdigit()]

    def errors(self) -> list[str]:
        """SQLite errors the worker met."""
        return [line for line in self.log_lines() if line.startswith("error")]

    def stop(self, timeout: float = 30.0) -> int:
        """Ask the worker to finish its task and exit (SIGTERM, or terminate on Windows)."""
        if self.process.poll() is None:
            if os.name == "nt":
                self.process.terminate()
            else:
                self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """Kill the worker at once, leaving whatever lease it holds (a crashed worker)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)


def executed_twice(workers: list[PrismQWorker]) -> list[int]:
    """Task ids executed more than once across the workers."""
    counts = Counter(task_id for worker in workers for task_id in worker.executed())
    return sorted(task_id for task_id, count in counts.items() if count > 1)
