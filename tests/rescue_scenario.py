"""A bad-deploy incident on PrismQ's own queue, and readers of a queue file's rows.

Shared by the rescue tests of the engine and of the command line.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from prismq import add_prismq_tasks, make_prismq_queue, prismq_connect

from queue_admin_gui.core.backups.backup_store import BackupStore


def task_rows(path: Path, ids: list[int] | None = None) -> dict[int, tuple]:
    """Every stored column of every task (or of ``ids``), by id."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        columns = [row[1] for row in connection.execute("PRAGMA table_xinfo(task_queue)")
                   if row[6] == 0]
        rows = connection.execute(f"SELECT {', '.join(columns)} FROM task_queue").fetchall()
    finally:
        connection.close()
    found = {row[0]: tuple(row) for row in rows}
    return found if ids is None else {task_id: found[task_id] for task_id in ids
                                      if task_id in found}


def log_rows(path: Path) -> dict[int, tuple]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0]: tuple(row) for row in connection.execute("SELECT * FROM task_logs")}
    finally:
        connection.close()


def sequence(path: Path) -> dict[str, int]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(connection.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    finally:
        connection.close()


def ids_of(path: Path, sql: str, params: tuple = ()) -> list[int]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[0] for row in connection.execute(sql, params)]
    finally:
        connection.close()


def make_incident(tmp_path: Path) -> dict:
    """A queue with three types, a backup of it, then a bad script and good work after it.

    After the backup: every queued ``alpha`` task is failed by the script, 20 ``beta`` tasks
    are deleted with their logs, ``gamma`` tasks are completed by a worker, one ``alpha``
    task is leased by a worker, and new tasks arrive.
    """
    live = make_prismq_queue(tmp_path / "live dir" / "queue.db")
    connection = prismq_connect(live)
    add_prismq_tasks(connection, 50, "alpha", key_prefix="a")
    add_prismq_tasks(connection, 40, "beta", key_prefix="b")
    add_prismq_tasks(connection, 30, "gamma", key_prefix="g")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO task_logs (task_id, level, message) SELECT id, 'info',"
                       " 'enqueued' FROM task_queue WHERE type = 'beta'")
    connection.commit()
    backup_dir = tmp_path / "backups"
    backup = BackupStore(live, backup_dir).backup("before").path
    before = task_rows(live)
    beta = ids_of(live, "SELECT id FROM task_queue WHERE type = 'beta' ORDER BY id")[:20]
    connection.execute("BEGIN IMMEDIATE")
    leased = connection.execute(
        "UPDATE task_queue SET status = 'leased', locked_by = 'w1',"
        " lease_until_utc = datetime('now', '+600 seconds'), reserved_at_utc = datetime('now')"
        " WHERE id = (SELECT min(id) FROM task_queue WHERE type = 'alpha') RETURNING id"
    ).fetchone()[0]
    connection.execute("UPDATE task_queue SET status = 'failed', attempts = attempts + 1,"
                       " error_message = 'bad deploy', updated_at_utc = datetime('now')"
                       " WHERE type = 'alpha' AND status = 'queued'")
    connection.execute(f"DELETE FROM task_logs WHERE task_id IN ({','.join(map(str, beta))})")
    connection.execute(f"DELETE FROM task_queue WHERE id IN ({','.join(map(str, beta))})")
    connection.execute("UPDATE task_queue SET status = 'completed',"
                       " finished_at_utc = datetime('now'), updated_at_utc = datetime('now')"
                       " WHERE type = 'gamma'")
    connection.commit()
    add_prismq_tasks(connection, 15, "gamma", key_prefix="new")
    connection.close()
    return {"live": live, "backup": backup, "backup_dir": backup_dir, "before": before,
            "beta": beta, "leased": leased, "tmp": tmp_path}


PAGE = 4096


def varint(data: bytes, at: int) -> tuple[int, int]:
    """An SQLite varint at ``at``: its value and the offset after it."""
    value = 0
    for step in range(9):
        byte = data[at + step]
        if step == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + step + 1
    raise AssertionError("unreachable")


def table_leaves(path: Path, table: str) -> dict[int, list[int]]:
    """Leaf page number -> the rowids it holds, found by walking the table's b-tree."""
    connection = sqlite3.connect(path)
    root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                              (table,)).fetchone()[0]
    connection.close()
    data = path.read_bytes()
    leaves: dict[int, list[int]] = {}

    def walk(number: int) -> None:
        page = data[(number - 1) * PAGE: number * PAGE]
        kind, cells = page[0], int.from_bytes(page[3:5], "big")
        header = 8 if kind == 0x0D else 12
        pointers = [int.from_bytes(page[header + 2 * n: header + 2 * n + 2], "big")
                    for n in range(cells)]
        if kind == 0x0D:
            rowids = []
            for pointer in pointers:
                _, after_size = varint(page, pointer)
                rowids.append(varint(page, after_size)[0])
            leaves[number] = rowids
            return
        assert kind == 0x05, f"page {number} is not a table b-tree page"
        for pointer in pointers:
            walk(int.from_bytes(page[pointer: pointer + 4], "big"))
        walk(int.from_bytes(page[8:12], "big"))

    walk(root)
    return leaves


def damage_pages(path: Path, pages: list[int]) -> None:
    """Overwrite whole pages of a closed database file with zeros."""
    with open(path, "r+b") as handle:
        for number in pages:
            handle.seek((number - 1) * PAGE)
            handle.write(bytes(PAGE))


def copy_of(path: Path, target: Path) -> Path:
    """A consistent copy of a queue file (one read transaction through SQLite's backup)."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    return target
