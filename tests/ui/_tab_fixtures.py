"""Helpers shared by the maintenance tab tests: a real session, idle waits, lock holders.

A lock is held by a separate Python process (another program, as in production), started
with a pipe: it prints ``ready`` once it holds the lock and lets go when told on stdin.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from queue_admin_gui.app.jobs import JobRunner
from queue_admin_gui.app.messages import Messages, RecordingPresenter
from queue_admin_gui.app.session import Session
from queue_admin_gui.core.settings.config import MaintenanceConfig

JOB_TIMEOUT_MS = 60_000

_HOLDER = r"""
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
mode = sys.argv[2]
if mode == "write":
    connection.execute("BEGIN IMMEDIATE")
elif mode == "exclusive":
    connection.execute("PRAGMA locking_mode=EXCLUSIVE")
    connection.execute("BEGIN EXCLUSIVE")
else:
    connection.execute("BEGIN")
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    connection.execute("SELECT count(*) FROM task_queue").fetchone()
print("ready", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
connection.close()
"""


_HEARTBEAT = r"""
import os, sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
worker = sys.argv[2]
announced = False
while not os.path.exists(sys.argv[3]):
    connection.execute(
        "INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
        "VALUES (?, '{}', datetime('now')) "
        "ON CONFLICT(worker_id) DO UPDATE SET heartbeat_utc = datetime('now')", (worker,))
    if not announced:
        print("ready", flush=True)
        announced = True
    time.sleep(0.2)
connection.close()
"""


@contextlib.contextmanager
def worker_heartbeating(db_path: Path, worker_id: str,
                        stop_file: Path) -> Iterator[subprocess.Popen[str]]:
    """A worker process that reports a heartbeat every 200 ms until the context ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HEARTBEAT, str(db_path), worker_id, str(stop_file)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        stop_file.touch()
        process.communicate(timeout=30)


@contextlib.contextmanager
def tab_session(db_path: Path | None, *, answer: bool = True,
                is_queue: bool | None = True) -> Iterator[Session]:
    """A Session as the window builds it, with a recording presenter answering ``answer``."""
    runner = JobRunner()
    presenter = RecordingPresenter(answer=answer)
    session = Session(runner, Messages(presenter), MaintenanceConfig(), db_path)
    session.is_queue = is_queue
    try:
        yield session
    finally:
        assert runner.shutdown(JOB_TIMEOUT_MS)


def presenter_of(session: Session) -> RecordingPresenter:
    """The recorder that stands in for message boxes."""
    presenter = session.messages.presenter
    assert isinstance(presenter, RecordingPresenter)
    return presenter


def open_tab(qtbot, session: Session, tab_class: type, *, size: tuple[int, int] = (1100, 800),
             load: bool = True) -> Any:
    """A tab on ``session`` as the window builds it; with ``load``, read once and wait."""
    tab = tab_class(session)
    qtbot.addWidget(tab)
    tab.resize(*size)
    if load:
        tab.refresh()
        wait_idle(qtbot, session)
    return tab


def wait_idle(qtbot, session: Session, timeout: int = JOB_TIMEOUT_MS) -> None:
    """Wait until no job runs or waits, then let queued signals arrive."""
    qtbot.waitUntil(lambda: not session.runner.busy, timeout=timeout)


@contextlib.contextmanager
def lock_held(db_path: Path, mode: str = "write") -> Iterator[subprocess.Popen[str]]:
    """Another process holding a write lock, an exclusive lock or a read transaction.

    ``write`` is a writer between BEGIN IMMEDIATE and COMMIT; ``exclusive`` also keeps
    readers out; ``read`` is a reader that pins the WAL at its snapshot.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db_path), mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.communicate("\n", timeout=30)


def query(db_path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    """Read the file directly, as a second program would, to check what is on disk."""
    connection = sqlite3.connect(db_path)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def execute(db_path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    """Change the file directly (test setup), committing at once."""
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        connection.execute(sql, params)
    finally:
        connection.close()
