"""The page proof reads restored pages from the live WAL when a reader keeps them out of the
file: what it reads must be what SQLite itself reads, and nothing else may pass for equal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prismq import make_prismq_queue, prismq_connect
from sqlite_view import sqlite_view

from queue_admin_gui.core.archive.walfile import newest_frames
from queue_admin_gui.core.restore.page_proof import prove_pages_equal


def pages_through_map(path: Path) -> bytes:
    """The same state read the proof's way: each page's newest mapped frame, else the file."""
    found = newest_frames(Path(f"{path}-wal"))
    assert found is not None
    size = found.header.page_size
    log = Path(f"{path}-wal").read_bytes()
    file = path.read_bytes()
    pages = []
    for number in range(1, found.database_pages + 1):
        frame = found.frame_of(number)
        if frame:
            start = 32 + (frame - 1) * (24 + size) + 24
            pages.append(log[start:start + size])
        else:
            pages.append(file[(number - 1) * size:number * size])
    return b"".join(pages)


def restored_behind_reader(tmp_path: Path) -> tuple[Path, Path, sqlite3.Connection]:
    """A staged copy, and a database it was written into while a reader that began before
    kept every restored page in the WAL (as the archiver does while it reads)."""
    staged = make_prismq_queue(tmp_path / "staged.db", tasks=600)
    connection = sqlite3.connect(staged, isolation_level=None)
    connection.execute("UPDATE task_queue SET status = 'completed' WHERE id % 3 = 0")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    target = make_prismq_queue(tmp_path / "restored.db", tasks=50)
    reader = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM task_queue").fetchone()
    source = sqlite3.connect(staged)
    destination = prismq_connect(target)
    source.backup(destination)
    source.close()
    destination.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    destination.close()
    return staged, target, reader


def test_the_map_reads_what_sqlite_reads(tmp_path: Path) -> None:
    """Several transactions, pages rewritten in later ones, the database grown: the mapped
    pages equal SQLite's own view, byte for byte, with or without a reader."""
    queue = make_prismq_queue(tmp_path / "queue.db", tasks=200)
    connection = prismq_connect(queue)
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    for round_number in range(12):
        with connection:
            connection.execute("UPDATE task_queue SET attempts = attempts + 1 WHERE id % 7 = ?",
                               (round_number % 7,))
            connection.executemany(
                "INSERT INTO task_queue (type, payload, status) VALUES ('t', ?, 'queued')",
                [(f'{{"n": {n}, "pad": "{"x" * 300}"}}',) for n in range(40)])
    try:
        assert newest_frames(Path(f"{queue}-wal")) is not None
        assert pages_through_map(queue)[100:] == sqlite_view(queue)[100:]
    finally:
        connection.close()


def test_the_pages_a_reader_keeps_in_the_log_are_proven_equal(tmp_path: Path) -> None:
    staged, target, reader = restored_behind_reader(tmp_path)
    try:
        # The file still holds the old queue: only the log holds the restored pages.
        assert target.read_bytes()[4096:8192] != staged.read_bytes()[4096:8192]
        assert prove_pages_equal(staged, target, wait_seconds=0) is None
    finally:
        reader.close()


def test_a_commit_after_the_restore_is_never_proven_equal(tmp_path: Path) -> None:
    staged, target, reader = restored_behind_reader(tmp_path)
    try:
        connection = prismq_connect(target)
        with connection:
            connection.execute("UPDATE task_queue SET status = 'failed' WHERE id = 9")
        connection.close()
        unproven = prove_pages_equal(staged, target, wait_seconds=0)
    finally:
        reader.close()
    assert unproven is not None and "differs" in unproven


@pytest.mark.parametrize("where", [0.1, 0.5, 0.97])
def test_a_damaged_frame_is_never_proven_equal(tmp_path: Path, where: float) -> None:
    """A byte flipped in a restored page inside the log: its checksum fails, so the log's
    last commit is not found there, and the proof must not pass."""
    staged, target, reader = restored_behind_reader(tmp_path)
    try:
        wal = Path(f"{target}-wal")
        data = bytearray(wal.read_bytes())
        at = 32 + int((len(data) - 32) * where)
        data[at] ^= 0x40
        wal.write_bytes(bytes(data))
        unproven = prove_pages_equal(staged, target, wait_seconds=0.2)
    finally:
        reader.close()
    assert unproven is not None


def test_an_unfinished_transaction_after_the_commit_is_left_out(tmp_path: Path) -> None:
    """Frames of a transaction still being written (no commit frame yet) are not part of the
    committed state: the map ends at the last commit."""
    staged, target, reader = restored_behind_reader(tmp_path)
    try:
        found = newest_frames(Path(f"{target}-wal"))
        assert found is not None
        writer = prismq_connect(target)
        writer.execute("PRAGMA cache_size = 1")  # spill uncommitted pages into the log
        writer.execute("BEGIN IMMEDIATE")
        before = Path(f"{target}-wal").stat().st_size
        writer.executemany("INSERT INTO task_queue (type, payload, status) "
                           "VALUES ('t', ?, 'queued')",
                           [(f'{{"pad": "{"y" * 2000}"}}',) for _ in range(300)])
        try:
            assert Path(f"{target}-wal").stat().st_size > before  # uncommitted frames there
            again = newest_frames(Path(f"{target}-wal"))
            assert again is not None and again.last_commit == found.last_commit
            assert prove_pages_equal(staged, target, wait_seconds=0) is None
        finally:
            writer.rollback()
            writer.close()
    finally:
        reader.close()
