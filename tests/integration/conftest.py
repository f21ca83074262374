"""Fixtures the integration tests share."""

from __future__ import annotations

from pathlib import Path

import pytest
from prismq import add_prismq_tasks, make_prismq_queue, prismq_connect

from queue_admin_gui.core import QueueBackup


@pytest.fixture
def changed_queue(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A PrismQ queue, a backup of it, then more work: (live, backup folder, backup)."""
    live, folder = tmp_path / "queue.db", tmp_path / "backups"
    make_prismq_queue(live, tasks=300)
    backup = QueueBackup(live, folder).create_backup("before")
    connection = prismq_connect(live)
    add_prismq_tasks(connection, 120, "after", key_prefix="after")
    with connection:
        connection.execute("UPDATE task_queue SET status = 'completed' WHERE id <= 40")
    connection.close()
    return live, folder, backup
