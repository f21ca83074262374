"""The monitor's sample never drops this process's SQLite locks on the -shm file.

On POSIX, closing any descriptor of a file releases every lock the process holds on it. A
sample that opened and closed the -shm to read its header released the write lock of a
restore running in the same window: another program could then write into the WAL at the
same time, and the database (and the archive following it) came out malformed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from queue_admin_gui.core.database import connect
from queue_admin_gui.core.measurements.sampling import read_sample

OTHER_WRITER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0.05)
try:
    connection.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as error:
    print("refused", error)
else:
    connection.execute("ROLLBACK")
    print("got the write lock")
"""


def other_program_writes(db: Path) -> str:
    """What another program gets when it asks for the write lock now."""
    return subprocess.run([sys.executable, "-c", OTHER_WRITER, str(db)], capture_output=True,
                          text=True, timeout=60, check=True).stdout.strip()


@pytest.mark.skipif(sys.platform == "win32", reason="locks belong to handles on Windows")
def test_a_sample_keeps_the_write_lock_of_another_connection_of_this_process(
        queue_db: Path) -> None:
    writer = connect(queue_db)
    try:
        writer.execute("INSERT INTO task_queue (type, payload) VALUES ('warm', '{}')")
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO task_queue (type, payload) VALUES ('held', '{}')")
        assert other_program_writes(queue_db).startswith("refused")
        sample = read_sample(queue_db, 0.0)
        assert other_program_writes(queue_db).startswith("refused"), \
            "the sample released this process's write lock"
        writer.execute("COMMIT")
    finally:
        writer.close()
    if sys.platform.startswith("linux"):
        assert sample.wal_frames is not None and sample.wal_frames >= 1
