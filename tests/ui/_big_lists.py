"""Big lists for the Leases and Backups tabs: a queue of 100,000 stale leases, many backups.

The queue is written with ``executemany`` in one transaction, in a few seconds: every task
is leased with a lease that ran out an hour ago (a quarter on their last attempt). Most
belong to workers silent for two hours (abandoned), ``alive`` tasks to a worker that
heartbeats now (lease expired, worker alive), and ``dead`` tasks are in the dead letters.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from queue_admin_gui.core.backups.manifest import manifest_path_for
from queue_admin_gui.core.database import QueueDatabase

LIVE_WORKER = "worker-live"
SILENT_WORKERS = tuple(f"worker-{n:02d}" for n in range(8))


def make_lease_queue(path: Path, stale: int = 98_000, alive: int = 2_000,
                     dead: int = 0) -> Path:
    """A queue file whose in-flight tasks all have a lease that ran out an hour ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    database = QueueDatabase(path)
    database.initialize_schema()
    database.close()
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO workers (worker_id, capabilities, heartbeat_utc) VALUES "
            "(?, '{}', datetime('now', '-2 hours'))", [(w,) for w in SILENT_WORKERS])
        connection.execute("INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
                           "VALUES (?, '{}', datetime('now'))", (LIVE_WORKER,))
        leased = ("INSERT INTO task_queue (type, payload, status, attempts, max_attempts, "
                  "lease_until_utc, reserved_at_utc, locked_by) VALUES (?, '{}', 'leased', ?, "
                  "5, datetime('now', '-1 hour'), datetime('now', '-2 hours'), ?)")
        connection.executemany(leased, (
            (f"render-{n % 7}", 1 + n % 4, SILENT_WORKERS[n % len(SILENT_WORKERS)])
            for n in range(stale)))
        connection.executemany(leased, ((f"render-{n % 7}", 1, LIVE_WORKER)
                                        for n in range(alive)))
        connection.executemany(
            "INSERT INTO task_queue (type, payload, status, attempts, max_attempts, "
            "error_message, finished_at_utc) VALUES ('mail', '{}', 'failed', 5, 5, ?, "
            "datetime('now', ?))", ((f"SMTP timeout {n}", f"-{n} seconds")
                                    for n in range(dead)))
        connection.execute("COMMIT")
    finally:
        connection.close()
    return path


def make_backup_folder(folder: Path, count: int) -> list[Path]:
    """``count`` small backup files with manifests, one a minute, newest last."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "template.sqlite"
    QueueDatabase(source).initialize_schema()
    data = source.read_bytes()
    source.unlink()
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    paths = []
    for number in range(count):
        made = start + timedelta(minutes=number)
        path = folder / f"queue_backup_n{number}_{made:%Y%m%d_%H%M%S}.db"
        path.write_bytes(data)
        manifest = {"format_version": 1, "name": path.name, "sha256": "0" * 64,
                    "size_bytes": len(data), "page_count": len(data) // 4096,
                    "page_size": 4096, "source_path": "C:/Data/queue.db",
                    "created_at": made.isoformat(), "sqlite_version": "3.45.0",
                    "task_counts": {"queued": number, "completed": 2 * number}}
        manifest_path_for(path).write_text(json.dumps(manifest), encoding="utf-8")
        paths.append(path)
    return paths
