"""Demo queue files: a real-schema queue with a realistic mix of tasks, marked as a demo.

:func:`create_demo_queue` writes tasks in every interesting state (done, failed, leased, a few
with stale leases, some waiting out a back-off). The file carries
:data:`DEMO_APPLICATION_ID` in its header, so that the demo never overwrites a real queue by
accident. The live part (simulated workers) is in :mod:`queue_admin_gui.core.demo.workers`.
"""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..database import QueueDatabase, connect
from ..errors import ErrorKind, QueueDatabaseError, translate_error
from ..files.db_files import SQLITE_HEADER, shm_path, wal_path
from ..files.file_access import read_file_head
from ..schema import PAGE_SIZE
from ..settings.folders import user_data_dir

#: ``PRAGMA application_id`` of a demo queue ("PQDM"); real queues leave it 0.
DEMO_APPLICATION_ID = 0x5051444D
_APPLICATION_ID_OFFSET = 68

TASK_TYPES = ("render", "transcode", "thumbnail", "ocr", "index", "notify")
PRIORITIES = (10, 50, 100, 100, 100, 200)
REGIONS = ("eu-west", "us-east", "ap-south")
FORMATS = ("mp4", "png", "pdf", "json", "webm")

_SQL_TIME = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class DemoInfo:
    """What :func:`create_demo_queue` made: the file and how many tasks it holds."""

    path: Path
    tasks: int


def demo_queue_path() -> Path:
    """The demo queue file in the user data folder (``<data>/demo/queue.db``)."""
    return user_data_dir() / "demo" / "queue.db"


def is_demo_queue(path: str | Path) -> bool:
    """True when ``path`` is an SQLite file carrying the demo marker in its header."""
    try:
        header = read_file_head(path, 100)
    except OSError:
        return False
    if not header.startswith(SQLITE_HEADER) or len(header) < _APPLICATION_ID_OFFSET + 4:
        return False
    marker = int.from_bytes(header[_APPLICATION_ID_OFFSET:_APPLICATION_ID_OFFSET + 4], "big")
    return marker == DEMO_APPLICATION_ID


def _sql_time(moment: datetime) -> str:
    return moment.strftime(_SQL_TIME)


def random_task(rng: random.Random, key: str) -> tuple[str, int, str, str, str]:
    """Type, priority, payload, compatibility and idempotency key of one random task."""
    task_format = rng.choice(FORMATS)
    payload = {
        "format": task_format,
        "source": f"s3://prismq-demo/{key}.{task_format}",
        "size_kb": rng.randint(4, 40_000),
        "note": "x" * rng.randint(0, 200),
    }
    compatibility = {"region": rng.choice(REGIONS), "gpu": rng.random() < 0.3}
    return (rng.choice(TASK_TYPES), rng.choice(PRIORITIES), json.dumps(payload),
            json.dumps(compatibility), key)


def _demo_rows(tasks: int, rng: random.Random, now: datetime) -> list[tuple[Any, ...]]:
    """Rows for ``task_queue`` in every interesting state, a few stale leases included."""
    rows: list[tuple[Any, ...]] = []
    stale = min(tasks, max(3, tasks // 100))
    for index in range(tasks):
        task_type, priority, payload, compatibility, key = random_task(rng, f"demo-{index:07d}")
        created = now - timedelta(seconds=rng.uniform(60, 7200))
        status, attempts, run_after = "queued", 0, created
        lease = reserved = started = finished = locked_by = error = None
        roll = rng.random()
        if index < stale:
            status, attempts = "leased", 1
            reserved = started = created + timedelta(seconds=5)
            lease = now - timedelta(seconds=rng.uniform(600, 3600))
            locked_by = f"demo-lost-{index % 3}"
        elif roll < 0.25:
            status, attempts = "completed", 1
            finished = created + timedelta(seconds=rng.uniform(1, 50))
        elif roll < 0.31:
            status, attempts = "failed", 5
            finished = created + timedelta(seconds=rng.uniform(30, 50))
            error = "Demo failure: source file could not be decoded."
        elif roll < 0.35:
            status, attempts = "leased", 1
            reserved = started = now - timedelta(seconds=rng.uniform(1, 20))
            lease = now + timedelta(seconds=rng.uniform(30, 120))
            locked_by = "demo-worker-01"
        elif roll < 0.40:
            attempts = rng.randint(1, 3)
            run_after = now + timedelta(seconds=rng.uniform(5, 300))
            error = "Demo failure: upstream service timed out."
        rows.append((
            task_type, priority, payload, compatibility, status, attempts,
            _sql_time(run_after), *(_sql_time(v) if v else None for v in (
                lease, reserved, started, finished)),
            locked_by, error, key, _sql_time(created), _sql_time(max(created, finished or created)),
        ))
    return rows


_INSERT_DEMO_TASK = """
INSERT INTO task_queue (type, priority, payload, compatibility, status, attempts,
    run_after_utc, lease_until_utc, reserved_at_utc, processing_started_utc, finished_at_utc,
    locked_by, error_message, idempotency_key, created_at_utc, updated_at_utc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

def _remove_database_files(path: Path) -> None:
    for leftover in (path, wal_path(path), shm_path(path)):
        try:
            leftover.unlink(missing_ok=True)
        except OSError as error:
            raise translate_error(
                error, f"Replacing the demo queue '{path}'", QueueDatabaseError
            ) from error


def create_demo_queue(path: str | Path, tasks: int = 2000, force: bool = False,
                      seed: int | None = None) -> DemoInfo:
    """Create (or replace) a demo queue file holding ``tasks`` tasks in mixed states.

    An existing file is replaced only when it is a demo queue or ``force`` is true; a real
    queue is never overwritten by accident.
    """
    path = Path(path)
    if tasks < 0:
        raise QueueDatabaseError(
            f"Creating the demo queue refused: the task count must be 0 or more, not {tasks}.",
            ErrorKind.INVALID,
        )
    if path.exists():
        if not (force or is_demo_queue(path)):
            raise QueueDatabaseError(
                f"Creating the demo queue refused: '{path}' already exists and is not a demo "
                "queue; choose another path or force replacing it.",
                ErrorKind.INVALID,
            )
        _remove_database_files(path)
    rng = random.Random(seed)
    action = f"Creating the demo queue '{path}'"
    marker = connect(path, create=True)
    try:
        marker.execute(f"PRAGMA page_size={PAGE_SIZE}")
        marker.execute(f"PRAGMA application_id={DEMO_APPLICATION_ID}")
    except sqlite3.Error as error:
        raise translate_error(error, action, QueueDatabaseError) from error
    finally:
        marker.close()
    now = datetime.now(timezone.utc)
    with QueueDatabase(path) as database:
        database.initialize_schema()
        try:
            with database.transaction() as connection:
                connection.executemany(_INSERT_DEMO_TASK, _demo_rows(tasks, rng, now))
                connection.executemany(
                    "INSERT INTO workers (worker_id, capabilities, heartbeat_utc) VALUES (?,?,?)",
                    [(f"demo-worker-0{n}", json.dumps({"types": list(TASK_TYPES)}),
                      _sql_time(now - timedelta(seconds=n * 5))) for n in range(1, 4)]
                    + [("demo-lost-0", json.dumps({"types": ["render"]}),
                        _sql_time(now - timedelta(hours=1)))],
                )
        except sqlite3.Error as error:
            raise translate_error(error, action, QueueDatabaseError) from error
    return DemoInfo(path=path, tasks=tasks)
