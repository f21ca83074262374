"""Real workloads for the backup and restore integration tests.

Imported by the tests for its helpers, and run as a child process
(``python queue_workload.py <role> ...``) for writers, readers, and a backup or restore
that pauses at a chosen progress step so the parent can kill it there. A child says
``ready`` on stdout when it reaches the agreed point and then waits on stdin.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO_ROOT = HERE.parents[2]
PAYLOAD_PAD = "y" * 300
DEADLINE_SECONDS = 60.0


def fill_queue(path: Path, count: int, marker: str) -> None:
    """Create a queue file (real schema, WAL) holding ``count`` tasks of type ``marker``."""
    from queue_admin_gui.core.database import QueueDatabase

    with QueueDatabase(path) as db:
        db.initialize_schema()
        with db.transaction() as connection:
            connection.executemany(
                "INSERT INTO task_queue(type, payload) VALUES (?, ?)",
                [(marker, json.dumps({"format": "mp4", "n": n, "pad": PAYLOAD_PAD}))
                 for n in range(count)],
            )


def fingerprint(path: Path) -> tuple[int, int, tuple[str, ...]]:
    """Task count, sum of ids and the distinct task types: tells old from new from a mix."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("BEGIN")
        count, total = connection.execute(
            "SELECT count(*), coalesce(sum(id), 0) FROM task_queue").fetchone()
        types = tuple(row[0] for row in connection.execute(
            "SELECT DISTINCT type FROM task_queue ORDER BY type"))
        connection.execute("COMMIT")
        return int(count), int(total), types
    finally:
        connection.close()


def integrity(path: Path) -> list[str]:
    """SQLite's integrity_check of a file, as a list of lines (["ok"] when sound)."""
    connection = sqlite3.connect(path)
    try:
        return [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
    finally:
        connection.close()


def spawn(role: str, *args: object) -> subprocess.Popen[str]:
    """Start a child running ``role`` with pipes on stdin and stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, str(HERE), role, *map(str, args)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )


def read_line(process: subprocess.Popen[str], timeout: float = DEADLINE_SECONDS) -> str:
    """The child's next stdout line, waiting at most ``timeout`` seconds."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise AssertionError(f"child gave no output within {timeout} s")
        return process.stdout.readline().strip()
    finally:
        selector.close()


def wait_ready(process: subprocess.Popen[str]) -> None:
    """Wait for the child's ``ready`` line; fail with its stderr if it ended instead."""
    line = read_line(process)
    if line != "ready":
        process.kill()
        _, error = process.communicate(timeout=DEADLINE_SECONDS)
        raise AssertionError(f"child said {line!r} instead of ready: {error}")


def kill_hard(process: subprocess.Popen[str]) -> None:
    """SIGKILL the child, as a power cut or Task Manager would, and reap it."""
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=DEADLINE_SECONDS)
    assert process.returncode == -signal.SIGKILL


# -- child roles ------------------------------------------------------------------------


def _pause_at(stage: str, step: int):  # type: ignore[no-untyped-def]
    """A progress callback that reports ready and blocks at the ``step``-th call in ``stage``."""
    seen = {"calls": 0}

    def progress(done: int, total: int, current: str) -> None:
        if current != stage:
            return
        seen["calls"] += 1
        if seen["calls"] == step:
            print("ready", flush=True)
            sys.stdin.readline()  # the parent kills this process meanwhile

    return progress


def begin_immediate(connection: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, retried as real workers do when SQLite answers BUSY at once.

    SQLite may return SQLITE_BUSY without calling the busy handler (several processes
    opening a WAL file at the same moment, one of them recovering the WAL index).
    """
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _writer(db: str, stop_file: str) -> None:
    """Enqueue and claim tasks in short write transactions until ``stop_file`` appears."""
    connection = sqlite3.connect(db, isolation_level=None, timeout=30)
    connection.execute("PRAGMA busy_timeout=30000")
    announced = False
    while not os.path.exists(stop_file):
        try:
            begin_immediate(connection)
            connection.executemany(
                "INSERT INTO task_queue(type, payload) VALUES ('written', ?)",
                [(json.dumps({"format": "mkv", "pid": os.getpid()}),)] * 5)
            connection.execute(
                "UPDATE task_queue SET status = 'leased', locked_by = ? WHERE id = (SELECT id "
                "FROM task_queue WHERE status = 'queued' ORDER BY id DESC LIMIT 1)",
                (f"worker-{os.getpid()}",))
            connection.execute("COMMIT")
        except sqlite3.OperationalError as error:
            # Three writers starting at once on one WAL file: one may be told "locked" after
            # its BEGIN too (the WAL index being rebuilt); a worker rolls back and tries again.
            if "locked" not in str(error):
                raise
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            time.sleep(0.01)
            continue
        if not announced:
            print("ready", flush=True)
            announced = True
    connection.close()


def _committer(db: str, stop_file: str, log_file: str) -> None:
    """Commit one task per transaction until ``stop_file`` appears, logging each commit.

    After every COMMIT returns, ``<id> <token>`` is appended to ``log_file``: exactly the
    writes this worker knows to be durable, which a restore must not lose.
    """
    connection = sqlite3.connect(db, isolation_level=None, timeout=60)
    connection.execute("PRAGMA busy_timeout=60000")
    with open(log_file, "a", encoding="utf-8") as log:
        count = 0
        while not os.path.exists(stop_file):
            token = f"{os.getpid()}-{count}"
            begin_immediate(connection)
            cursor = connection.execute(
                "INSERT INTO task_queue(type, payload) VALUES ('committed', ?)",
                (json.dumps({"token": token}),))
            connection.execute("COMMIT")
            log.write(f"{cursor.lastrowid} {token}\n")
            log.flush()
            count += 1
            if count == 1:
                print("ready", flush=True)
            time.sleep(0.002)
    connection.close()


def _reader(db: str, stop_file: str) -> None:
    """Print every distinct fingerprint seen while reading until ``stop_file`` appears."""
    last = None
    print("ready", flush=True)
    while True:
        stopping = os.path.exists(stop_file)
        current = fingerprint(Path(db))
        if current != last:
            print(json.dumps(current), flush=True)
            last = current
        if stopping:
            break
    print("done", flush=True)


def _backup(db: str, folder: str, stage: str, step: str) -> None:
    from queue_admin_gui.core import QueueBackup

    QueueBackup(db, folder, pages_per_step=4).backup(progress=_pause_at(stage, int(step)))
    print("finished", flush=True)


def _restore(db: str, folder: str, backup: str, stage: str, step: str) -> None:
    from queue_admin_gui.core import QueueBackup

    QueueBackup(db, folder, pages_per_step=4).restore_backup(
        backup, progress=_pause_at(stage, int(step)))
    print("finished", flush=True)


def _disk_full(db: str, folder: str, limit: str) -> None:
    """Back up under a file-size limit, as on a disk that fills up; print the outcome as JSON."""
    import resource

    from queue_admin_gui.core import QueueBackup
    from queue_admin_gui.core.errors import QueueAdminError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    engine = QueueBackup(db, folder, pages_per_step=4)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
    try:
        engine.backup()
    except QueueAdminError as error:
        print(json.dumps({"kind": error.kind.value, "message": str(error)}), flush=True)
        return
    print(json.dumps({"kind": None, "message": "backup succeeded"}), flush=True)


if __name__ == "__main__":
    roles = {"writer": _writer, "committer": _committer, "reader": _reader, "backup": _backup,
             "restore": _restore, "disk-full": _disk_full}
    roles[sys.argv[1]](*sys.argv[2:])
