"""Seeing another program's checkpoint wait on the -shm lock bytes, without losing our locks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from queue_admin_gui.core.archive import shm_locks

pytestmark = pytest.mark.skipif(not shm_locks.can_probe(), reason="no lock probe here")
CHECKPOINT = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0); "
              "c.execute(f'PRAGMA busy_timeout={sys.argv[2]}'); "
              "print(c.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()[0], flush=True)")


def _database(tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    db = tmp_path / "q.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t(x)")
    writer.execute("INSERT INTO t VALUES (1)")
    return db, writer


def _reader(db: Path) -> sqlite3.Connection:
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()
    return reader


def test_probing_keeps_this_process_s_read_locks(tmp_path: Path) -> None:
    db, writer = _database(tmp_path)
    writer.execute("INSERT INTO t VALUES (2)")
    reader = _reader(db)
    writer.execute("INSERT INTO t VALUES (3)")
    for _ in range(5):
        assert not shm_locks.checkpoint_waiting(Path(f"{db}-shm"))
    # Our read transaction still holds: another program's TRUNCATE cannot finish.
    busy = subprocess.run([sys.executable, "-c", CHECKPOINT, str(db), "200"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert busy.stdout.strip() == "1"
    reader.execute("COMMIT")
    reader.close()
    writer.close()


def test_a_waiting_truncate_is_seen_and_finishes_once_released(tmp_path: Path) -> None:
    db, writer = _database(tmp_path)
    reader = _reader(db)
    writer.execute("INSERT INTO t VALUES (2)")
    shm = Path(f"{db}-shm")
    process = subprocess.Popen([sys.executable, "-c", CHECKPOINT, str(db), "30000"],
                               stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not shm_locks.checkpoint_waiting(shm):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        reader.execute("COMMIT")
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert out.strip() == "0"  # not busy: it completed
    assert not shm_locks.checkpoint_waiting(shm)
    reader.close()
    writer.close()
