"""An instant at which the queue itself was damaged is kept, not dropped.

The archive holds every page faithfully, so an instant at which the live queue was already
damaged (an index that disagrees with its table, written through the WAL) rebuilds into that
damaged queue, which fails the rebuild's check. It must not become a backup, but its rows
must not be lost either: the rebuild keeps it as ``queue_damaged_at_<time>.db``, as a restore
keeps a damaged live file, and says so.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from prismq import make_prismq_queue
from rescue_scenario import task_rows
from test_archive_under_load import wait_restorable
from test_safety_copy_attacks import disagree_index_with_table

from queue_admin_gui.core.archive import ArchiveError, Archiver, archive_status, rebuild_to_time


def test_a_damaged_instant_is_kept_as_a_damaged_copy_with_every_row(tmp_path: Path) -> None:
    live, archive = tmp_path / "queue.db", tmp_path / "archive"
    make_prismq_queue(live, tasks=150)
    archiver = Archiver(live, archive)
    archiver.start()
    try:
        wait_restorable(archiver)
        disagree_index_with_table(live)
        damaged_at = time.time()
        deadline = time.monotonic() + 60
        while (archive_status(archive, check=False).latest or 0) <= damaged_at + 0.2:
            assert time.monotonic() < deadline, "the archive never passed the damage"
            time.sleep(0.05)
    finally:
        archiver.stop()
    expected = task_rows(live)
    output = tmp_path / "backups" / "queue_backup_at_test.db"
    output.parent.mkdir()
    with pytest.raises(ArchiveError) as raised:
        rebuild_to_time(archive, archive_status(archive).latest, output, live_path=live)
    message = str(raised.value)
    assert "did not pass its check" in message and "kept unchecked" in message, message
    kept = Path(re.search(r"as '([^']+)'", message).group(1))
    assert kept.name.startswith("queue_damaged_at_") and kept.parent == output.parent
    assert task_rows(kept) == expected
    assert not output.exists()
    assert [path.name for path in output.parent.iterdir()] == [kept.name]  # no manifest
