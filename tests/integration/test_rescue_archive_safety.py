"""The archive as the rescue's safety copy: proven under the write lock, or not used at all.

A rescue beside a running archiver takes no safety backup when the archiver proves that it
holds every commit made up to the moment of the write. These tests hold the tool to its
words: the instant it names rebuilds to exactly the queue as it was before the rescue, and
wherever the proof cannot be had (no archiver, an archiver of another queue, one that never
answers) a safety backup is taken as before and the rescue still happens once.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from prismq import PrismQWorker, add_prismq_tasks, prismq_connect
from rescue_scenario import copy_of, log_rows, make_incident, sequence, task_rows
from test_archive_under_load import wait_restorable

from queue_admin_gui.core.archive import Archiver, rebuild_to_time
from queue_admin_gui.core.archive.safety_point import (
    PROOF_FOLDER,
    KnownDigest,
    confirm_safety_point,
    hash_snapshot_ahead,
    prove_archived,
)
from queue_admin_gui.core.archive.store import LOCK_FILE
from queue_admin_gui.core.rescue import RescueSelection, open_past_state, rescue_tasks

SELECTION = RescueSelection(types=frozenset({"alpha", "beta"}))


@pytest.fixture
def incident(tmp_path: Path) -> dict:
    """The rescue scenario's bad deploy (see :func:`rescue_scenario.make_incident`)."""
    return make_incident(tmp_path)


@pytest.fixture
def archiving(incident: dict):
    """An archiver on the incident's queue, started and restorable."""
    archiver = Archiver(incident["live"], incident["tmp"] / "archive")
    archiver.start()
    try:
        wait_restorable(archiver)
        yield archiver
    finally:
        archiver.stop()


def wait_for(condition, timeout: float = 60.0) -> None:
    """Until ``condition()`` holds (a worker's progress, read from its log)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.02)


def test_the_archive_is_the_safety_copy_and_its_instant_is_the_queue_before(
        incident: dict, archiving: Archiver) -> None:
    live, tmp = incident["live"], incident["tmp"]
    before = copy_of(live, tmp / "before.db")
    with open_past_state(live, backup=incident["backup"]) as past:
        report = rescue_tasks(live, past, SELECTION, backup_dir=incident["backup_dir"],
                              archive_dir=archiving.archive_dir)
    assert report.put_back == 49 + 20
    assert report.safety_backup is None
    assert not (incident["backup_dir"] / "pre-rescue").exists()
    point = report.safety_point
    assert point is not None and point.confirmed is True, point
    assert point.describe() in report.headline
    assert report.as_dict()["safety_point"]["generation"] == point.generation
    rebuilt = tmp / "rebuilt.db"
    assert rebuild_to_time(point.archive, point.at, rebuilt, live_path=live).check.ok
    assert task_rows(rebuilt) == task_rows(before)
    assert log_rows(rebuilt) == log_rows(before)
    assert sequence(rebuilt) == sequence(before)
    assert task_rows(live) != task_rows(before)  # the rescue did change the queue
    assert not any((archiving.archive_dir / PROOF_FOLDER).iterdir())  # request withdrawn


def test_without_an_archiver_a_safety_backup_is_taken(incident: dict) -> None:
    folder = incident["tmp"] / "archive"
    with open_past_state(incident["live"], backup=incident["backup"]) as past:
        report = rescue_tasks(incident["live"], past, SELECTION,
                              backup_dir=incident["backup_dir"], archive_dir=folder)
    assert report.safety_point is None
    assert report.safety_backup is not None and report.safety_backup.is_file()
    assert report.put_back == 49 + 20


def test_an_archiver_of_another_queue_is_no_safety_copy(incident: dict,
                                                        tmp_path: Path) -> None:
    other = copy_of(incident["live"], tmp_path / "other.db")
    archiver = Archiver(other, tmp_path / "archive")
    archiver.start()
    try:
        wait_restorable(archiver)
        with open_past_state(incident["live"], backup=incident["backup"]) as past:
            report = rescue_tasks(incident["live"], past, SELECTION,
                                  backup_dir=incident["backup_dir"],
                                  archive_dir=tmp_path / "archive")
    finally:
        archiver.stop()
    assert report.safety_point is None and report.safety_backup is not None
    assert report.put_back == 49 + 20


@pytest.mark.slow
def test_an_archiver_that_never_answers_costs_a_wait_then_a_safety_backup(
        incident: dict) -> None:
    """A lock file naming this queue and a live process, but nothing archiving: the rescue
    waits for the proof, gives up, takes a safety backup and puts each task back once."""
    folder = incident["tmp"] / "archive"
    folder.mkdir()
    (folder / LOCK_FILE).write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(),
        "database": str(incident["live"].resolve()), "started_at": time.time()}),
        encoding="utf-8")
    assert prove_archived(incident["live"], folder, wait_seconds=0.2) is None
    with open_past_state(incident["live"], backup=incident["backup"]) as past:
        report = rescue_tasks(incident["live"], past, SELECTION,
                              backup_dir=incident["backup_dir"], archive_dir=folder)
    assert report.safety_point is None and report.safety_backup is not None
    assert report.put_back == 49 + 20
    assert len(task_rows(incident["live"])) == len(incident["before"]) + 15
    assert not any((folder / PROOF_FOLDER).iterdir())


@pytest.mark.slow
def test_the_safety_instant_is_exact_while_a_worker_keeps_committing(
        incident: dict, archiving: Archiver) -> None:
    """A PrismQ worker completes tasks throughout: the rescue waits for the proof under the
    lock, the worker sees no error, and the instant named holds every rescued task as the
    undo file says it was just before."""
    live, tmp = incident["live"], incident["tmp"]
    connection = prismq_connect(live)
    add_prismq_tasks(connection, 2000, "delta", key_prefix="d")
    with connection:  # claimed before anything else, so the damage stays as it is
        connection.execute("UPDATE task_queue SET priority = 1 WHERE type = 'delta'")
    connection.close()
    worker = PrismQWorker(live, "prismq-1", tmp / "worker.log", work_seconds=0.002)
    worker.wait_started()
    try:
        wait_for(lambda: len(worker.executed()) >= 20)
        with open_past_state(live, backup=incident["backup"]) as past:
            report = rescue_tasks(live, past, SELECTION, backup_dir=incident["backup_dir"],
                                  archive_dir=archiving.archive_dir)
        done = len(worker.executed())
        wait_for(lambda: len(worker.executed()) >= done + 20)
    finally:
        worker.stop()
    errors = worker.errors()
    assert errors == []
    point = report.safety_point
    assert point is not None and point.confirmed is True
    rebuilt = tmp / "rebuilt.db"
    assert rebuild_to_time(point.archive, point.at, rebuilt, live_path=live).check.ok
    with sqlite3.connect(report.undo_file) as undo:
        before_rows = dict(undo.execute("SELECT id, status FROM before_tasks").fetchall())
    undo.close()
    rescued = list(report.put_back_changed)
    with sqlite3.connect(rebuilt) as connection:
        at_instant = dict(connection.execute(
            "SELECT id, status FROM task_queue WHERE id IN"
            f" ({','.join(map(str, rescued))})").fetchall())
    connection.close()
    assert at_instant == {task_id: before_rows[task_id] for task_id in rescued}
    assert not set(report.put_back_removed) & set(task_rows(rebuilt))


def test_a_damaged_archive_is_no_safety_copy_and_a_safety_backup_is_taken(
        incident: dict, archiving: Archiver) -> None:
    """One byte of the generation's snapshot flipped: the full check made before the commit
    finds it, the transaction is rolled back, a safety backup is taken and the rescue goes
    through once, saying why the archive was not used."""
    snapshot = next((archiving.archive_dir).glob("gen-*/snapshot/*.db"))
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0x01
    snapshot.write_bytes(bytes(data))
    before = task_rows(incident["live"])
    with open_past_state(incident["live"], backup=incident["backup"]) as past:
        report = rescue_tasks(incident["live"], past, SELECTION,
                              backup_dir=incident["backup_dir"],
                              archive_dir=archiving.archive_dir)
    assert report.safety_point is None
    assert "snapshot" in (report.archive_problem or "")
    assert "not used as the safety copy" in report.headline
    assert report.safety_backup is not None
    assert task_rows(report.safety_backup) == before
    assert report.put_back == 49 + 20
    undo_files = list((incident["backup_dir"] / "rescue-undo").iterdir())
    assert undo_files == [report.undo_file]  # the rolled-back attempt left nothing behind


def test_a_snapshot_hashed_ahead_is_trusted_only_while_it_is_the_same_file(
        incident: dict, archiving: Archiver) -> None:
    """The snapshot's digest taken before the lock is reused only for that very file: a byte
    flipped after it was hashed (its modification time even put back) is found."""
    live, archive = incident["live"], archiving.archive_dir
    known = hash_snapshot_ahead(archive)
    assert known is not None
    connection = prismq_connect(live)
    connection.execute("BEGIN IMMEDIATE")
    try:
        point = prove_archived(live, archive)
        assert point is not None
    finally:
        connection.execute("ROLLBACK")
        connection.close()
    assert confirm_safety_point(point, known).confirmed is True
    # The digest really is reused while the file is unchanged: a wrong one is believed.
    forged = KnownDigest(known.path, known.identity, "0" * 64)
    assert confirm_safety_point(point, forged).confirmed is False
    # A changed file is hashed again, even with its modification time put back.
    stat = known.path.stat()
    data = bytearray(known.path.read_bytes())
    data[len(data) // 3] ^= 0x10
    known.path.write_bytes(bytes(data))
    os.utime(known.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    damaged = confirm_safety_point(point, known)
    assert damaged.confirmed is False and "snapshot" in (damaged.problem or "")
