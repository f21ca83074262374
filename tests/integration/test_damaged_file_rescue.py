"""A damaged queue file: restore the newest good backup, then rescue the newer work from the
damaged copy the restore kept, the way an administrator runs it (CLI processes).

Every task ends with its newest state that is still readable: from the damaged file where
its row can be read there, from the backup where it cannot; the tool says how many rows it
could not read, and what it says it put back is exactly what changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prismq import add_prismq_tasks, make_prismq_queue, prismq_connect
from rescue_scenario import damage_pages, sequence, table_leaves, task_rows
from test_prismq_restore import run_cli

from queue_admin_gui.core import QueueBackup


@pytest.fixture
def damaged_after_backup(tmp_path: Path) -> dict:
    """A backup of 3,000 tasks; then 600 completed and 400 added; then 4 pages damaged."""
    live, folder = tmp_path / "queue.db", tmp_path / "backups"
    make_prismq_queue(live)
    connection = prismq_connect(live)
    add_prismq_tasks(connection, 3000, "render")
    connection.close()
    backup = QueueBackup(live, folder).create_backup("nightly")
    connection = prismq_connect(live)
    with connection:
        connection.execute("UPDATE task_queue SET status = 'completed', attempts = 1,"
                           " finished_at_utc = datetime('now') WHERE id % 5 = 0")
    add_prismq_tasks(connection, 400, "render", key_prefix="late")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    newest = task_rows(live)
    leaves = table_leaves(live, "task_queue")
    chosen = sorted(leaves)[2:len(leaves) - 2:max(1, (len(leaves) - 4) // 4)][:4]
    lost = sorted(rowid for number in chosen for rowid in leaves[number])
    damage_pages(live, chosen)
    return {"live": live, "folder": folder, "backup": backup, "newest": newest,
            "lost": lost, "in_backup": task_rows(backup)}


@pytest.mark.slow
def test_newest_readable_state_from_the_damaged_copy_and_the_rest_from_the_backup(
        damaged_after_backup: dict) -> None:
    case = damaged_after_backup
    live, folder = case["live"], case["folder"]
    code, restored, err = run_cli(folder, "--db", live, "restore", case["backup"], "--yes")
    assert code == 0, err
    damaged_copy = Path(restored["damaged_copy"] or restored["moved_aside"][0])
    assert task_rows(live) == case["in_backup"]

    code, diff, err = run_cli(folder, "--db", live, "diff", "--damaged", damaged_copy)
    assert code == 0, err
    lost = case["lost"]
    assert diff["unreadable_ids"] == len(lost)

    code, rescued, err = run_cli(folder, "--db", live, "rescue", "--damaged", damaged_copy,
                                 "--yes")
    assert code == 0, err
    assert rescued["unreadable_in_past"] == len(lost)
    newest, in_backup = case["newest"], case["in_backup"]
    expected = {task_id: row for task_id, row in newest.items() if task_id not in lost}
    expected.update({task_id: in_backup[task_id] for task_id in lost if task_id in in_backup})
    assert task_rows(live) == expected
    changed = [task_id for task_id in expected
               if task_id not in lost and in_backup.get(task_id) != newest[task_id]]
    assert sorted(rescued["put_back_removed"] + rescued["put_back_changed"]) == sorted(changed)
    assert sequence(live)["task_queue"] >= max(newest)
