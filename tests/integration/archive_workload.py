"""Child processes for the WAL archiving tests: a timed committer, an admin's checkpoint, and
an archiver that can be killed.

Run as ``python archive_workload.py <role> ...``. A child says ``ready`` on stdout when it
has started its work. The committer logs ``<id> <before> <after>`` per transaction: wall
times just before COMMIT was called and just after it returned.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

from queue_workload import REPO_ROOT, begin_immediate, read_line  # noqa: E402

PAD = "z" * 1500


def spawn(role: str, *args: object) -> subprocess.Popen[str]:
    """Start this file as a child in ``role``, with pipes on stdin and stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, str(HERE), role, *map(str, args)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def table_rows(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, in rowid order: two files with equal rows hold one state."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {table: connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
                for table in tables}
    finally:
        connection.close()


def read_commit_log(path: Path) -> list[tuple[int, float, float]]:
    """The committer's log: (task id, before COMMIT, after COMMIT), in commit order."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3:
            rows.append((int(parts[0]), float(parts[1]), float(parts[2])))
    return rows


def _connect_like_a_worker(db: str) -> sqlite3.Connection:
    connection = sqlite3.connect(db, isolation_level=None, timeout=5)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000",
                   "wal_autocheckpoint=1000", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    return connection


def _committer(db: str, stop_file: str, log_file: str, rate: str, hold: str = "0") -> None:
    """Commit a task and its log row per transaction at ``rate`` per second; log each.

    ``hold`` seconds: keep the write lock that long after writing, before COMMIT (a worker
    in the middle of a transaction when a checkpoint comes for the lock).
    """
    connection = _connect_like_a_worker(db)
    period = 1.0 / float(rate)
    count = 0
    next_at = time.monotonic()
    with open(log_file, "a", encoding="utf-8") as log:
        while not os.path.exists(stop_file):
            begin_immediate(connection)
            cursor = connection.execute(
                "INSERT INTO task_queue(type, payload) VALUES ('timed', ?)",
                (json.dumps({"n": count, "pad": PAD}),))
            connection.execute(
                "INSERT INTO task_logs(task_id, level, message) VALUES (?, 'INFO', ?)",
                (cursor.lastrowid, PAD[:200]))
            if float(hold):
                time.sleep(float(hold))
            before = time.time()
            connection.execute("COMMIT")
            after = time.time()
            log.write(f"{cursor.lastrowid} {before:.6f} {after:.6f}\n")
            log.flush()
            count += 1
            if count == 1:
                print("ready", flush=True)
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    connection.close()


def _timed_writer(db: str, stop_file: str, log_file: str, rate: str = "0") -> None:
    """Commit a task and its log row per transaction, ``rate`` per second (0: as fast as the
    lock allows); log each as ``<id> <before BEGIN IMMEDIATE> <after COMMIT>``, so the wait
    for the lock counts."""
    connection = _connect_like_a_worker(db)
    count = 0
    period = 1.0 / float(rate) if float(rate) else 0.0
    next_at = time.monotonic()
    with open(log_file, "a", encoding="utf-8") as log:
        while not os.path.exists(stop_file):
            if period:
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            began = time.time()
            begin_immediate(connection)
            cursor = connection.execute(
                "INSERT INTO task_queue(type, payload) VALUES ('timed', ?)",
                (json.dumps({"n": count, "pad": PAD[:200]}),))
            connection.execute(
                "INSERT INTO task_logs(task_id, level, message) VALUES (?, 'INFO', 'x')",
                (cursor.lastrowid,))
            connection.execute("COMMIT")
            log.write(f"{cursor.lastrowid} {began:.6f} {time.time():.6f}\n")
            count += 1
            if count == 1:
                log.flush()
                print("ready", flush=True)
    connection.close()


def _checkpoint(db: str, mode: str) -> None:
    """Run one checkpoint as an admin's tool would; print busy, log, checkpointed, seconds."""
    connection = sqlite3.connect(db, isolation_level=None, timeout=5)
    connection.execute("PRAGMA busy_timeout=5000")
    started = time.monotonic()
    busy, log, done = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    print(json.dumps({"busy": busy, "log": log, "checkpointed": done,
                      "seconds": time.monotonic() - started}), flush=True)
    connection.close()


def _storm(db: str, stop_file: str, seed: str) -> None:
    """Checkpoint as another program would, over and over: TRUNCATE, RESTART or FULL every
    5-50 ms until ``stop_file`` exists; print how many ran and how many were busy."""
    import random

    chooser = random.Random(int(seed))
    connection = sqlite3.connect(db, isolation_level=None, timeout=5)
    connection.execute("PRAGMA busy_timeout=5000")
    done = busy = 0
    print("ready", flush=True)
    while not os.path.exists(stop_file):
        mode = chooser.choice(("TRUNCATE", "RESTART", "FULL"))
        try:
            busy += connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[0]
        except sqlite3.OperationalError:
            busy += 1
        done += 1
        time.sleep(chooser.uniform(0.005, 0.05))
    connection.close()
    print(json.dumps({"checkpoints": done, "busy": busy}), flush=True)


def _archiver(db: str, folder: str, reset_frames: str) -> None:
    """Run an archiver until killed or until stdin closes."""
    from queue_admin_gui.core.archive import Archiver

    archiver = Archiver(db, folder, reset_frames=int(reset_frames))
    archiver.start()
    print("ready", flush=True)
    sys.stdin.readline()
    archiver.stop()
    print("stopped", flush=True)


def checkpoint_now(db: Path, mode: str = "TRUNCATE") -> dict:
    """Run a checkpoint in another process and return what it printed."""
    process = spawn("checkpoint", db, mode)
    line = read_line(process)
    process.communicate(timeout=30)
    return json.loads(line)


if __name__ == "__main__":
    roles = {"committer": _committer, "checkpoint": _checkpoint, "archiver": _archiver,
             "storm": _storm, "timed_writer": _timed_writer}
    roles[sys.argv[1]](*sys.argv[2:])
