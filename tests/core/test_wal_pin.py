"""Naming the reader that pins the WAL: by its lock where the system tells, else ranked."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from queue_admin_gui.core.database import QueueDatabase
from queue_admin_gui.core.measurements import wal_pin
from queue_admin_gui.core.measurements.wal_pin import (
    METHOD_LOCK,
    METHOD_RANKING,
    WalPinHolder,
    WalPinLookup,
    find_wal_pin,
    pinned_since,
)

READER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN")
connection.execute("SELECT count(*) FROM task_queue").fetchone()
print("reading", flush=True)
sys.stdin.read()
connection.execute("COMMIT")
"""

posix_only = pytest.mark.skipif(os.name == "nt", reason="the lock's owner is read on POSIX")


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    path = tmp_path / "queue.db"
    with QueueDatabase(path) as db:
        db.initialize_schema()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("INSERT INTO task_queue (type, payload) VALUES ('a', '{}')")
    yield path, writer
    writer.close()


def start_reader(path: Path, name: Path) -> subprocess.Popen[str]:
    name.write_text(READER)
    reader = subprocess.Popen([sys.executable, str(name), str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
    return reader


def stop(reader: subprocess.Popen[str]) -> None:
    assert reader.stdin is not None and reader.stdout is not None
    reader.stdin.close()
    reader.wait(30)
    reader.stdout.close()


@posix_only
def test_the_lock_names_the_one_reader_and_its_snapshot(queue, tmp_path):
    path, writer = queue
    reader = start_reader(path, tmp_path / "nightly_report.py")
    try:
        for _ in range(20):
            writer.execute("INSERT INTO task_queue (type, payload) VALUES ('a', '{}')")
        lookup = find_wal_pin(path)
        assert lookup.method == METHOD_LOCK and lookup.exact
        culprit = lookup.culprit
        assert culprit is not None and culprit.pid == reader.pid
        assert culprit.short_name().startswith(f"PID {reader.pid} ")
        assert culprit.short_name().endswith(" nightly_report.py")
        assert culprit.read_mark is not None and culprit.read_mark < 20
        # the same answer when the lock is asked through F_GETLK (what macOS does)
        asked = wal_pin.fcntl_holders(Path(f"{path}-shm"))
        assert {pid for pid, _slot in asked} == {reader.pid}
    finally:
        stop(reader)
    assert find_wal_pin(path).holders == ()


@posix_only
def test_this_process_and_archivers_are_never_named(queue, tmp_path):
    path, writer = queue
    own = sqlite3.connect(path, isolation_level=None)
    own.execute("BEGIN")
    own.execute("SELECT count(*) FROM task_queue").fetchone()
    archiver = start_reader(path, tmp_path / "archive.py")
    try:
        writer.execute("INSERT INTO task_queue (type, payload) VALUES ('a', '{}')")
        assert find_wal_pin(path, exclude_pids=[archiver.pid]).holders == ()
    finally:
        stop(archiver)
        own.execute("COMMIT")
        own.close()


def test_a_dead_program_is_never_named():
    lookup = WalPinLookup(METHOD_LOCK, (WalPinHolder(10, "a"), WalPinHolder(11, "b")))
    assert [h.pid for h in lookup.alive(lambda pid: pid == 11).holders] == [11]


def test_the_oldest_snapshot_is_the_culprit():
    lookup = WalPinLookup(METHOD_LOCK, (WalPinHolder(10, "worker", read_mark=600),
                                        WalPinHolder(11, "report", read_mark=12)))
    assert lookup.culprit is not None and lookup.culprit.pid == 11


def test_since_is_when_the_wal_passed_the_readers_snapshot():
    history = np.array([[100.0, 0], [101.0, 5], [102.0, 12], [103.0, 40], [104.0, 90]])
    assert pinned_since(12, history) == 103.0
    assert pinned_since(0, history) == 101.0
    assert pinned_since(1, np.array([[1.0, 5], [2.0, 9]])) is None  # before the samples
    assert pinned_since(None, history) is None


@posix_only
def test_the_ranking_lists_the_programs_with_the_shm_open_but_not_this_one(queue, tmp_path):
    path, writer = queue
    reader = start_reader(path, tmp_path / "report.py")
    try:
        writer.execute("INSERT INTO task_queue (type, payload) VALUES ('a', '{}')")
        ranked = wal_pin.ranked_holders(path, {os.getpid()}, None, None)
        assert ranked.method == METHOD_RANKING and not ranked.exact
        assert [holder.pid for holder in ranked.holders] == [reader.pid]
    finally:
        stop(reader)
