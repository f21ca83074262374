"""The restore's gate: every sign of workers at work, read from real files and processes."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prismq import make_prismq_queue

from queue_admin_gui.core.measurements.holders import FileHolder, HolderLookup
from queue_admin_gui.core.restore import gate
from queue_admin_gui.core.restore.gate import CommitWatch, read_worker_signals

#: A program that opens the queue, says so, and keeps it open until its stdin closes.
HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
connection.execute("SELECT count(*) FROM task_queue").fetchone()
print("open", flush=True)
sys.stdin.read()
"""

#: A program that commits one task every 20 ms with a new connection each time (it holds
#: the file only for an instant), until its stdin closes.
COMMITTER = """
import sqlite3, sys, threading, time
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
print("committing", flush=True)
while not done.is_set():
    connection = sqlite3.connect(sys.argv[1], timeout=10)
    connection.execute("INSERT INTO task_queue (type, payload) VALUES ('c', '{}')")
    connection.commit()
    connection.close()
    time.sleep(0.02)
"""


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return make_prismq_queue(tmp_path / "queue.db", tasks=10)


@pytest.fixture
def holder(live: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(live)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "open"
    yield process
    process.communicate("", timeout=30)


def run_sql(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path)
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()


def lease(path: Path, worker: str, seconds: int = 600) -> None:
    run_sql(path, "UPDATE task_queue SET status = 'leased', locked_by = '" + worker + "', "
            f"lease_until_utc = datetime('now', '+{seconds} seconds') WHERE id IN (1, 2)")


def heartbeat(path: Path, worker: str, seconds_ago: int) -> None:
    run_sql(path, "INSERT OR REPLACE INTO workers (worker_id, capabilities, heartbeat_utc) "
            f"VALUES ('{worker}', '{{}}', datetime('now', '-{seconds_ago} seconds'))")


def signals_of(live: Path, **kwargs: object) -> gate.WorkerSignals:
    return read_worker_signals(live, sample_seconds=0.2, **kwargs)  # type: ignore[arg-type]


def test_a_quiet_queue_lets_the_restore_go(live: Path) -> None:
    signals = signals_of(live)
    assert not signals.blocking and signals.reasons() == []
    assert signals.sentence() == "No worker is at work on the queue."


def test_a_program_holding_the_file_blocks_and_is_named(live: Path, holder) -> None:
    signals = signals_of(live)
    assert signals.blocking
    assert signals.reasons()[0].startswith("1 program has the file open: ")
    assert f"(PID {holder.pid})" in signals.reasons()[0]
    assert signals.identities() == {f"pid:{holder.pid}"}
    assert signals.accepted_by({f"pid:{holder.pid}"})
    assert not signals.accepted_by({"pid:1"})
    assert signals.accepted_by(gate.ALL_WORKERS)


def test_the_tools_own_archiver_is_not_a_worker(live: Path, holder, tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "archiver.lock").write_text(json.dumps({
        "pid": holder.pid, "host": socket.gethostname(), "database": str(live)}))
    signals = signals_of(live, archive_dirs=[folder])
    assert not signals.blocking
    assert "the tool's own archiver has the file open" in signals.sentence()


def test_commits_by_a_program_that_never_keeps_the_file_open_block(live: Path) -> None:
    committer = subprocess.Popen([sys.executable, "-c", COMMITTER, str(live)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert committer.stdout is not None
        assert committer.stdout.readline().strip() == "committing"
        signals = signals_of(live)
    finally:
        committer.communicate("", timeout=30)
    assert signals.committed and signals.blocking
    assert any("another connection committed" in reason for reason in signals.reasons())


def test_a_commit_seen_long_ago_does_not_count(live: Path) -> None:
    watch = CommitWatch(live)
    try:
        run_sql(live, "INSERT INTO task_queue (type, payload) VALUES ('x', '{}')")
        watch.started -= gate.QUIET_SECONDS + 1  # that commit came more than a few s ago
        committed, watched = watch.commits(0.2)
    finally:
        watch.close()
    assert not committed and watched >= 0.2


def test_a_crashed_workers_lease_is_reported_not_waited_for(live: Path, monkeypatch) -> None:
    # Every process looked into, none holding the file (as for an administrator).
    monkeypatch.setattr(gate, "find_holders", lambda path: HolderLookup())
    lease(live, "worker-7")
    signals = signals_of(live)
    assert not signals.blocking
    note = signals.notes()[0]
    assert note.startswith("2 leases held by worker-7 until ")
    assert "its worker has stopped" in note


def test_a_lease_blocks_while_its_worker_shows_a_sign_of_life(live: Path, holder) -> None:
    lease(live, "worker-7")
    assert "2 leases held by worker-7" in " ".join(signals_of(live).reasons())


def test_a_lease_of_a_worker_that_reported_this_minute_blocks(live: Path) -> None:
    lease(live, "worker-7")
    heartbeat(live, "worker-7", 30)
    signals = signals_of(live)
    assert signals.blocking and signals.identities() == {"worker-7"}


def test_heartbeats_block_only_while_fresh(live: Path) -> None:
    heartbeat(live, "idle-worker", 30)
    signals = signals_of(live)
    assert not signals.blocking
    # 30 s old when written; a second more when the machine is slow to read it back.
    assert re.search(r"older heartbeats from idle-worker \((30|31|32) s ago\)",
                     signals.sentence())
    heartbeat(live, "busy-worker", 0)
    signals = signals_of(live)
    assert signals.blocking and "busy-worker" in " ".join(signals.reasons())


def test_without_a_holder_lookup_every_lease_and_minute_old_heartbeat_counts(
        live: Path, monkeypatch) -> None:
    monkeypatch.setattr(gate, "find_holders", lambda path: HolderLookup(
        unavailable="the Restart Manager answered 5"))
    lease(live, "worker-7")
    heartbeat(live, "idle-worker", 30)
    signals = signals_of(live)
    assert signals.blocking
    assert signals.identities() == {"worker-7", "idle-worker"}
    assert "could not be told" in signals.sentence()


@pytest.mark.parametrize(("program", "command", "shown"), [
    ("python.exe", r'"C:\Program Files\Python312\python.exe" C:\PrismQ\worker.py --queue q.db',
     "python worker.py --queue q.db (PID 4242)"),
    ("python3", "/usr/bin/python3 /srv/prismq/worker.py", "python3 worker.py (PID 4242)"),
    ("", "", "an unknown program (PID 4242)"),
])
def test_a_holder_is_named_by_its_program_and_first_arguments(
        program: str, command: str, shown: str) -> None:
    assert gate.describe_holder(FileHolder(4242, program, command)) == shown


def test_leases_count_while_some_processes_cannot_be_looked_into(
        live: Path, monkeypatch) -> None:
    monkeypatch.setattr(gate, "find_holders", lambda path: HolderLookup(hidden_processes=3))
    lease(live, "worker-7")
    signals = signals_of(live)
    assert signals.blocking and signals.identities() == {"worker-7"}
    assert "3 processes of other users could not be looked into" in signals.sentence()


def test_the_watch_lasts_the_sample_or_the_cap_the_tests_set(live: Path, monkeypatch) -> None:
    monkeypatch.delenv(gate.ENV_COMMIT_SAMPLE_CAP, raising=False)
    assert gate.commit_sample_seconds() == gate.COMMIT_SAMPLE_SECONDS
    watch = CommitWatch(live)
    try:
        committed, watched = watch.commits(0.3)
        assert not committed and watched >= 0.3
        monkeypatch.setenv(gate.ENV_COMMIT_SAMPLE_CAP, "0.05")
        assert gate.commit_sample_seconds() == 0.05
        assert gate.commit_sample_seconds(0.01) == 0.01
        watch.started = time.monotonic()
        committed, watched = watch.commits()
        assert not committed and 0.05 <= watched < gate.COMMIT_SAMPLE_SECONDS
        run_sql(live, "INSERT INTO task_queue (type, payload) VALUES ('x', '{}')")
        committed, _ = watch.commits()
        assert committed  # a short watch still sees a commit
    finally:
        watch.close()
    monkeypatch.setenv(gate.ENV_COMMIT_SAMPLE_CAP, "not a number")
    assert gate.commit_sample_seconds(0.7) == 0.7
