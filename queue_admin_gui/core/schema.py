"""The PrismQ queue schema, exactly as real deployments have it.

:data:`SCHEMA_SQL` means to SQLite what PrismQ's own ``initialize_schema()`` creates: the
three tables (``task_logs``' foreign key as a table constraint), their indexes and the five
observability views. The demo, ``initialize_schema()`` and the tests create queue files with
it; the schema check uses :data:`REQUIRED_COLUMNS` to tell a queue database from any other
SQLite file.
"""

from __future__ import annotations

#: Connection PRAGMAs every writer of the queue uses (mmap only where production enables it).
WRITER_PRAGMAS: tuple[tuple[str, str | int], ...] = (
    ("busy_timeout", 5000),
    ("journal_mode", "WAL"),
    ("synchronous", "NORMAL"),
    ("wal_autocheckpoint", 1000),
    ("foreign_keys", "ON"),
    ("temp_store", "MEMORY"),
    ("cache_size", -20000),
)

PAGE_SIZE = 4096
MMAP_SIZE_LINUX = 134_217_728

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS task_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 100,
    payload TEXT NOT NULL,
    compatibility TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 5,
    run_after_utc DATETIME NOT NULL DEFAULT (datetime('now')),
    lease_until_utc DATETIME,
    reserved_at_utc DATETIME,
    processing_started_utc DATETIME,
    finished_at_utc DATETIME,
    locked_by TEXT,
    error_message TEXT,
    idempotency_key TEXT,
    created_at_utc DATETIME NOT NULL DEFAULT (datetime('now')),
    updated_at_utc DATETIME NOT NULL DEFAULT (datetime('now')),
    region TEXT GENERATED ALWAYS AS (json_extract(compatibility, '$.region')) VIRTUAL,
    format TEXT GENERATED ALWAYS AS (json_extract(payload, '$.format')) VIRTUAL
);

CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT PRIMARY KEY,
    capabilities TEXT NOT NULL,
    heartbeat_utc DATETIME NOT NULL DEFAULT (datetime('now'))
);

CREATE TABLE IF NOT EXISTS task_logs (
    log_id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL,
    at_utc DATETIME NOT NULL DEFAULT (datetime('now')),
    level TEXT NOT NULL,
    message TEXT,
    details TEXT,
    FOREIGN KEY (task_id) REFERENCES task_queue(id)
);

CREATE INDEX IF NOT EXISTS ix_task_status_prio_time
    ON task_queue(status, priority, run_after_utc, id);
CREATE INDEX IF NOT EXISTS ix_task_type_status ON task_queue(type, status);
CREATE INDEX IF NOT EXISTS ix_task_region ON task_queue(region);
CREATE INDEX IF NOT EXISTS ix_task_format ON task_queue(format);
CREATE UNIQUE INDEX IF NOT EXISTS uq_task_idempotency
    ON task_queue(idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS ix_logs_task ON task_logs(task_id, at_utc);

CREATE VIEW IF NOT EXISTS v_queue_status_summary AS
SELECT
    status,
    COUNT(*) as task_count,
    ROUND(AVG(attempts), 2) as avg_attempts,
    MIN(created_at_utc) as oldest_task,
    MAX(created_at_utc) as newest_task
FROM task_queue
GROUP BY status;

CREATE VIEW IF NOT EXISTS v_queue_type_summary AS
SELECT
    type,
    status,
    COUNT(*) as task_count,
    ROUND(AVG(priority), 2) as avg_priority
FROM task_queue
GROUP BY type, status;

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

CREATE VIEW IF NOT EXISTS v_task_performance AS
SELECT
    type,
    status,
    COUNT(*) as task_count,
    ROUND(AVG(JULIANDAY(finished_at_utc) - JULIANDAY(processing_started_utc)) * 86400, 2)
        as avg_processing_seconds,
    ROUND(AVG(attempts), 2) as avg_attempts
FROM task_queue
WHERE finished_at_utc IS NOT NULL
GROUP BY type, status;

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
"""

#: PrismQ's observability views, part of every real queue (and of :data:`SCHEMA_SQL`).
QUEUE_VIEWS = (
    "v_queue_status_summary", "v_queue_type_summary", "v_worker_status",
    "v_task_performance", "v_recent_failures",
)

#: Columns a file must have, per table, to be treated as a queue database.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "task_queue": (
        "id", "type", "priority", "payload", "compatibility", "status", "attempts",
        "max_attempts", "run_after_utc", "lease_until_utc", "reserved_at_utc",
        "processing_started_utc", "finished_at_utc", "locked_by", "error_message",
        "idempotency_key", "created_at_utc", "updated_at_utc",
    ),
    "workers": ("worker_id", "capabilities", "heartbeat_utc"),
    "task_logs": ("log_id", "task_id", "at_utc", "level", "message", "details"),
}

#: Tables the tool's queue operations cannot work without; the others are reported but optional.
ESSENTIAL_TABLES = ("task_queue",)

#: Status spellings: both the current and the older ones appear in real files.
STATUS_QUEUED = "queued"
STATUS_LEASED = "leased"
STATUS_PROCESSING = "processing"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_DEAD_LETTER = "dead_letter"
IN_FLIGHT_STATUSES = (STATUS_LEASED, STATUS_PROCESSING)
DEAD_STATUSES = (STATUS_FAILED, STATUS_DEAD_LETTER)
KNOWN_STATUSES = (
    STATUS_QUEUED, STATUS_LEASED, STATUS_PROCESSING, STATUS_COMPLETED, STATUS_FAILED,
    STATUS_DEAD_LETTER,
)

#: Table names that ANALYZE and friends accept: checked against this, never formatted from input.
QUEUE_TABLES = tuple(REQUIRED_COLUMNS)
