"""The damage report: SQLite's findings grouped by table, index and page, none lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.core.measurements.damage_report import (
    DamagedObject,
    group_findings,
    page_owners,
    read_damage_report,
)


def _root(path: Path, name: str) -> tuple[int, int]:
    connection = sqlite3.connect(path)
    try:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                                  (name,)).fetchone()[0]
    finally:
        connection.close()
    return page_size, root


def _overwrite(path: Path, pages: list[int], page_size: int) -> None:
    with open(path, "r+b") as handle:
        for page in pages:
            handle.seek((page - 1) * page_size + 16)
            handle.write(b"\xa5" * (page_size - 32))


def test_a_sound_file_has_no_findings(tmp_path):
    create_demo_queue(tmp_path / "queue.db", tasks=200, seed=1)
    report = read_damage_report(tmp_path / "queue.db")
    assert report.ok and report.objects == [] and report.summary() == "No problems found."
    assert report.shortfall is None


def test_damaged_table_pages_are_named_with_their_table(tmp_path):
    path = tmp_path / "queue.db"
    create_demo_queue(path, tasks=2000, seed=7)
    page_size, root = _root(path, "task_queue")
    owners = page_owners(path)
    leaves = sorted(page for page, (name, _kind) in owners.items()
                    if name == "task_queue" and page != root)[:2]
    _overwrite(path, leaves, page_size)
    report = read_damage_report(path)
    assert not report.ok
    assert report.shortfall == f"found {len(report.lines)} problems"
    table = next(obj for obj in report.objects if obj.name == "task_queue")
    assert table.kind == "table"
    assert set(leaves) <= set(table.pages)
    assert "task_queue" in report.summary()


def test_a_damaged_index_is_named_as_an_index(tmp_path):
    path = tmp_path / "queue.db"
    create_demo_queue(path, tasks=400, seed=7)
    page_size, root = _root(path, "ix_task_type_status")
    _overwrite(path, [root], page_size)
    report = read_damage_report(path)
    index = next(obj for obj in report.objects if obj.name == "ix_task_type_status")
    assert index.kind == "index" and root in index.pages
    assert report.summary().startswith("Damage found in index ix_task_type_status")


def test_lines_packed_in_one_row_are_counted_one_by_one():
    owners = {126: ("task_queue", "table"), 250: ("ix_status", "index")}
    lines = ["On tree page 126 cell 1: Rowid 5 out of order",
             "On tree page 126 cell 2: invalid page number -1",
             "On tree page 250 cell 3: Extends off end of page",
             "row 7 missing from index ix_status",
             "Page 300 is never used"]
    objects = group_findings(lines, owners)
    assert objects[:2] == [DamagedObject("ix_status", "index", (250,), 2),
                           DamagedObject("task_queue", "table", (126,), 2)]
    assert objects[-1].sentence().startswith("Page 300: cut off from their table or index")


def test_many_pages_are_listed_with_a_count_of_the_rest():
    damaged = DamagedObject("task_queue", "table", tuple(range(1, 31)), 30)
    assert damaged.sentence() == ("task_queue (table): pages 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "
                                  "11, 12 and 18 more; 30 problems")
