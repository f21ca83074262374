"""Validation: the newest archived commit, rebuilt, is compared page by page with the live file.

A committer process writes while the archiver runs; validation must pass on a healthy
archive, and catch both a damaged archive file (on demand and on its interval) and a change
the archive never saw (a page of the live file changed behind SQLite's back): each becomes a
gap, a new snapshot, a failed entry in the activity log and a CRITICAL ``check``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from archive_workload import checkpoint_now, read_commit_log, spawn, table_rows
from queue_workload import fill_queue, wait_ready

from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.archive import (
    ArchiveEvent,
    Archiver,
    archive_status,
    generations,
    rebuild_to_time,
)
from queue_admin_gui.core.archive.generations import GenerationStarter
from queue_admin_gui.core.archive.pins import WalPins
from queue_admin_gui.core.archive.store import (
    VALIDATION_FAILED_KEY,
    Generation,
    list_generations,
    load_generation,
    new_generation,
    write_validation,
)
from queue_admin_gui.core.archive.validation import (
    VALIDATION_ACTION,
    ValidationResult,
    ValidationSchedule,
    last_validation,
    validate_archive,
)
from queue_admin_gui.core.measurements.alerts import activity_conditions
from queue_admin_gui.core.measurements.health import HealthLevel
from queue_admin_gui.core.settings.config import MaintenanceConfig

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow
DEADLINE = 60.0


def wait_until(condition, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def wait_for_commits(log: Path, count: int) -> None:
    start = len(read_commit_log(log)) if log.exists() else 0
    wait_until(lambda: len(read_commit_log(log)) >= start + count, "commits")


def restorable(archiver: Archiver) -> bool:
    status = archiver.status()
    return status.generation is not None and not status.snapshot_pending



def in_another_process(*argv: str | Path, env: dict[str, str] | None = None
                       ) -> subprocess.CompletedProcess[str]:
    """Run Python in a process of its own: plain file access from the archiver's process
    would drop SQLite's POSIX locks there (closing any descriptor of a file does)."""
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True,
                          env=environment, timeout=DEADLINE, check=False)


def check(queue: Path, config: Path) -> dict:
    """``queue-admin-cli check --json`` with the settings file naming the archive."""
    done = in_another_process("-m", "queue_admin_gui.cli", "--db", queue, "check", "--json",
                              env={"QUEUE_ADMIN_CONFIG": str(config)})
    return json.loads(done.stdout)


@dataclass
class Committing:
    """A committer process working the queue while an archiver follows it."""

    folder: Path
    stop: Path
    log: Path
    worker: subprocess.Popen
    archiver: Archiver


@contextlib.contextmanager
def archived_while_committing(queue: Path, tmp_path: Path) -> Iterator[Committing]:
    """The committer and the archiver started, the archive restorable and 60 commits in."""
    folder, stop, log = tmp_path / "archive", tmp_path / "stop", tmp_path / "commits.log"
    worker = spawn("committer", queue, stop, log, 100)
    wait_ready(worker)
    archiver = Archiver(queue, folder)
    archiver.start()
    try:
        wait_until(lambda: restorable(archiver), "a restorable generation")
        wait_for_commits(log, 60)
        yield Committing(folder, stop, log, worker, archiver)
    finally:
        stop.touch()
        if worker.poll() is None:
            worker.communicate(timeout=DEADLINE)
        archiver.stop()


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    db = tmp_path / "queue.db"
    fill_queue(db, 50, "seed")
    return db


@pytest.mark.slow
def test_validation_passes_under_a_worker_and_catches_a_change_the_archive_never_saw(
        queue: Path, tmp_path: Path) -> None:
    config = MaintenanceConfig(backup_dir=tmp_path / "backups",
                               archive_dir=tmp_path / "archive").save(tmp_path / "config.toml")
    with archived_while_committing(queue, tmp_path) as run:
        folder, stop, worker, archiver = run.folder, run.stop, run.worker, run.archiver
        passed = validate_archive(queue, folder)
        assert passed.ok is True, passed.sentence
        assert passed.transactions > 0 and passed.pages > 0 and passed.differing_pages == []
        assert passed.instant is not None and "identical" in passed.sentence
        recorded = last_validation(folder)
        assert recorded is not None and recorded.ok is True
        assert recorded.instant == passed.instant
        assert check(queue, config)["measurements"]["archive_problems"] == []

        stop.touch()
        worker.communicate(timeout=DEADLINE)
        assert checkpoint_now(queue, "TRUNCATE")["busy"] == 0  # every page in the file now
        tamper = ("import sys\nwith open(sys.argv[1], 'r+b') as f:\n"
                  "    f.seek(68)\n    f.write((4242).to_bytes(4, 'big'))")
        assert in_another_process("-c", tamper, queue).returncode == 0  # behind SQLite's back
        failed = validate_archive(queue, folder)
        assert failed.ok is False and failed.differing_pages == [1], failed.sentence
        assert "differs from the live file" in failed.sentence
        checked = check(queue, config)
        assert checked["state"] == "CRITICAL" and checked["exit_code"] == 2
        assert "last validation failed" in checked["summary"]

        # The failure is a gap: the archiver starts a new generation from a new snapshot.
        wait_until(lambda: archiver.status().generations_started >= 2 and restorable(archiver),
                   "a new generation after the failed validation")
        again = validate_archive(queue, folder)
        assert again.ok is True, again.sentence
    status = archive_status(folder)
    gaps = [gap for gap in status.gaps if gap.kind == "validation"]
    assert len(gaps) == 1 and "differs from the live file" in gaps[0].reason
    first = status.generations[0]
    assert first.restorable_until == passed.instant  # trusted up to what was proven
    final = tmp_path / "final.db"
    assert status.latest is not None
    rebuild_to_time(folder, status.latest, final)
    assert table_rows(final) == table_rows(queue)
    assert check(queue, config)["measurements"]["archive_problems"] == []


@pytest.mark.slow
def test_validation_on_its_interval_catches_a_damaged_frame_log(
        queue: Path, tmp_path: Path) -> None:
    folder, stop, log = tmp_path / "archive", tmp_path / "stop", tmp_path / "commits.log"
    events: list[ArchiveEvent] = []
    worker = spawn("committer", queue, stop, log, 100)
    wait_ready(worker)
    archiver = Archiver(queue, folder, validate_seconds=1.0, on_event=events.append)
    archiver.start()
    try:
        wait_until(lambda: restorable(archiver), "a restorable generation")
        wait_until(lambda: any(e.kind == "validation" for e in events), "a passed validation")
        first = last_validation(folder)
        assert first is not None and first.ok is True, first
        wait_for_commits(log, 50)
        segment = list_generations(folder)[-1].segments[0]
        data = bytearray(segment.read_bytes())
        data[len(data) // 2] ^= 0x01
        with open(segment, "r+b") as handle:  # one byte, in place: the archiver goes on
            handle.seek(len(data) // 2)
            handle.write(bytes([data[len(data) // 2]]))
        wait_until(lambda: any(e.kind == "validation failed" for e in events),
                   "the interval's validation to find the damage")
        failed = last_validation(folder)
        assert failed is not None and failed.ok is False
        assert segment.name in failed.sentence and "damaged" in failed.sentence
        wait_until(lambda: archiver.status().generations_started >= 2 and restorable(archiver),
                   "a new generation after the failed validation")
        wait_for_commits(log, 30)
    finally:
        stop.touch()
        worker.communicate(timeout=DEADLINE)
        archiver.stop()
    entries = [entry for entry in ActivityLog().read() if entry.action == VALIDATION_ACTION]
    assert entries and entries[-1].result == "failed" and segment.name in entries[-1].message
    alerts = activity_conditions(entries)  # what the tray notifies and the Event Log files
    assert [condition.level for condition in alerts] == [HealthLevel.CRITICAL]
    status = archive_status(folder)
    assert any(gap.kind == "damaged" and gap.file == str(segment) for gap in status.gaps)
    final = tmp_path / "final.db"
    assert status.latest is not None
    rebuild_to_time(folder, status.latest, final)
    assert table_rows(final) == table_rows(queue)


@pytest.mark.slow
def test_validation_holding_one_page_at_a_time_rebuilds_exactly_and_still_catches_a_change(
        queue: Path, tmp_path: Path) -> None:
    """Validation's rebuild holds only a few MB of page images (it runs inside the archiver
    all day); with room for a single page it writes every page far more often, and must
    still rebuild the very same file, and still see a page changed behind SQLite's back."""
    with archived_while_committing(queue, tmp_path) as run:
        folder, stop, worker = run.folder, run.stop, run.worker
        passed = validate_archive(queue, folder, held_bytes=1)
        assert passed.ok is True, passed.sentence
        assert passed.transactions >= 60 and passed.differing_pages == []
        stop.touch()
        worker.communicate(timeout=DEADLINE)
        assert checkpoint_now(queue, "TRUNCATE")["busy"] == 0
        page_size = int.from_bytes(queue.read_bytes()[16:18], "big")
        tamper = ("import sys\nwith open(sys.argv[1], 'r+b') as f:\n"
                  f"    f.seek({page_size} + 200)\n    f.write(b'\\x5a' * 8)")
        before = queue.read_bytes()[page_size + 200:page_size + 208]
        assert before != b"\x5a" * 8
        assert in_another_process("-c", tamper, queue).returncode == 0  # behind SQLite's back
        failed = validate_archive(queue, folder, held_bytes=1)
        assert failed.ok is False and failed.differing_pages == [2], failed.sentence


def test_validation_without_a_running_archiver_says_it_could_not_compare(
        queue: Path, tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    archiver = Archiver(queue, folder)
    archiver.start()
    try:
        wait_until(lambda: restorable(archiver), "a restorable generation")
    finally:
        archiver.stop()
    result = validate_archive(queue, folder)
    assert result.ok is None and "no archiver is writing" in result.sentence
    assert last_validation(folder) is not None


def test_a_failure_recorded_while_the_generation_ends_is_kept_in_the_generation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process's validation fails the generation between the archiver's look at
    validation.json and the save of the generation's end. That validation marks only ended
    generations, so the mark is the archiver's: it must look again once the end is saved,
    or losing validation.json would offer the instants the validation found wrong."""
    database, archive = tmp_path / "queue.db", tmp_path / "archive"
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x)")
    archive.mkdir()
    generation = new_generation(archive, database, "the archive's first generation", None, 0,
                                time.time())
    pins = WalPins(database)
    starter = GenerationStarter(Archiver(database, archive), connection, pins)
    starter.generation = generation
    looks = []
    real_note = generations.note_failed_validation

    def validation_fails_between(folder: Path, ending: Generation) -> None:
        real_note(folder, ending)  # the archiver's look: nothing recorded yet
        looks.append(ending.data.get(VALIDATION_FAILED_KEY))
        if len(looks) == 1:
            on_disk = load_generation(ending.folder, scan=False)
            assert on_disk is not None and on_disk.data.get("ended_at") is None
            write_validation(folder, {"passed": {}, "failures": [
                {"generation": ending.id, "trusted_until": ending.snapshot_at,
                 "reason": "validation failed", "checked_at": time.time(),
                 "handled": False}]})

    monkeypatch.setattr(generations, "note_failed_validation", validation_fails_between)
    try:
        starter.end_generation("a gap: the database file was changed outside its WAL")
    finally:
        pins.close()
        connection.close()
    saved = load_generation(generation.folder, scan=False)
    assert saved is not None and saved.data.get("ended_at") is not None
    assert looks[0] is None, "the failure was recorded before the archiver's first look"
    assert saved.data.get(VALIDATION_FAILED_KEY) is True


def _parked_in(thread_name: str, function: str) -> bool:
    """True when the thread named ``thread_name`` is inside ``function`` now."""
    frames = sys._current_frames()
    for thread in threading.enumerate():
        if thread.name != thread_name or thread.ident not in frames:
            continue
        frame = frames[thread.ident]
        while frame is not None:
            if frame.f_code.co_name == function:
                return True
            frame = frame.f_back
    return False


@pytest.mark.slow
def test_a_validation_waits_while_the_archivers_loop_copies_and_goes_on_when_it_rests(
        queue: Path, tmp_path: Path) -> None:
    results: list[ValidationResult] = []
    with archived_while_committing(queue, tmp_path) as run:
        generation = run.archiver.status().generation
        schedule = ValidationSchedule(queue, run.folder, 0.001, on_result=results.append)
        schedule.GIVE_WAY_SECONDS = DEADLINE
        schedule.working()  # as the archiver's loop does while it copies
        try:
            wait_until(lambda: schedule.tick(generation, True) is None and _parked_in(
                "archive-validation", "_give_way"), "the validation to wait at its first step")
            assert results == []  # it waits: nothing was validated
            schedule.resting()  # the loop sleeps until its next pass
            wait_until(lambda: bool(results), "the validation to go on and end")
        finally:
            schedule.stop()
    assert results[0].ok is True, results[0].sentence
