"""Salvage: a PrismQ queue with damaged pages gives back every row outside them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prismq import add_prismq_tasks, make_prismq_queue, prismq_connect
from rescue_scenario import damage_pages, table_leaves, task_rows

from queue_admin_gui.core.rescue import (
    RescueError,
    RescueSelection,
    diff_queue,
    open_past_state,
    rescue_tasks,
    salvage_queue,
)


@pytest.fixture
def damaged_queue(tmp_path: Path) -> tuple[Path, dict[int, tuple], list[int]]:
    """A 3,000-task PrismQ queue with 4 leaf pages of task_queue overwritten with zeros."""
    path = make_prismq_queue(tmp_path / "queue.db")
    connection = prismq_connect(path)
    add_prismq_tasks(connection, 3000, "render")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO task_logs (task_id, level, message) SELECT id, 'info',"
                       " 'enqueued' FROM task_queue WHERE id % 10 = 0")
    connection.commit()
    connection.close()
    original = task_rows(path)
    leaves = table_leaves(path, "task_queue")
    assert sum(len(rowids) for rowids in leaves.values()) == 3000
    chosen = sorted(leaves)[3:len(leaves) - 3:max(1, (len(leaves) - 6) // 4)][:4]
    assert len(chosen) == 4
    lost = sorted(rowid for number in chosen for rowid in leaves[number])
    damage_pages(path, chosen)
    return path, original, lost


def test_salvage_reads_every_row_outside_the_damaged_pages(
        tmp_path: Path, damaged_queue: tuple[Path, dict[int, tuple], list[int]]) -> None:
    path, original, lost = damaged_queue
    with pytest.raises(sqlite3.DatabaseError):  # the file really is damaged
        sqlite3.connect(path).execute("SELECT count(*), sum(length(payload))"
                                      " FROM task_queue").fetchone()
    report = salvage_queue(path, tmp_path / "salvaged.db")
    salvaged = task_rows(report.output)
    assert sorted(set(original) - set(salvaged)) == lost
    assert salvaged == {task_id: row for task_id, row in original.items()
                        if task_id not in lost}
    assert report.rows_read["task_queue"] == 3000 - len(lost)
    assert report.unreadable_ids == len(lost)
    assert report.counted_from_index["task_queue"] is True
    assert sum(last - first + 1 for first, last in report.unreadable_ranges["task_queue"]) \
        == len(lost)
    assert report.rows_read["task_logs"] == 300
    assert f"{len(lost)} task(s) could not be read" in report.headline
    check = sqlite3.connect(report.output)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert check.execute("SELECT seq FROM sqlite_sequence WHERE name = 'task_queue'"
                         ).fetchone()[0] == 3000
    check.close()


def test_a_damaged_file_is_a_past_state_for_diff_and_rescue(
        tmp_path: Path, damaged_queue: tuple[Path, dict[int, tuple], list[int]]) -> None:
    damaged, original, lost = damaged_queue
    live = make_prismq_queue(tmp_path / "new" / "queue.db")
    with open_past_state(live, damaged=damaged) as past:
        diff = diff_queue(live, past)
        report = rescue_tasks(live, past, RescueSelection(), backup_dir=tmp_path / "b")
    assert diff.removed == 3000 - len(lost) and diff.unreadable_ids == len(lost)
    assert task_rows(live) == {task_id: row for task_id, row in original.items()
                               if task_id not in lost}
    assert report.put_back == 3000 - len(lost)
    assert report.unreadable_in_past == len(lost)
    assert f"{len(lost)} task row(s) of the damaged file could not be read" in report.headline
    assert not list(tmp_path.joinpath("new").glob(".queue-admin-rescue-*"))


def test_a_file_without_a_readable_queue_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"SQLite format 3\x00" + bytes(4096))
    with pytest.raises(RescueError):
        salvage_queue(path, tmp_path / "out.db")
    assert not (tmp_path / "out.db").exists()
