from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from queue_admin_gui.core import activity
from queue_admin_gui.core.activity import (
    RESULT_FAILED,
    ActivityEntry,
    ActivityLog,
    default_activity_path,
)
from queue_admin_gui.core.settings.folders import user_log_dir


def test_default_path_is_in_the_user_log_folder():
    assert default_activity_path() == user_log_dir() / "activity.jsonl"


def test_entries_round_trip_through_the_file(tmp_path: Path):
    log = ActivityLog(tmp_path / "logs here" / "activity.jsonl")
    first = ActivityEntry.now("Back up", parameters={"name": "before upgrade",
                                                     "folder": tmp_path},
                              duration_seconds=1.23456, database=tmp_path / "q.db")
    second = ActivityEntry.now("Verify backup", result=RESULT_FAILED,
                               message="The backup is damaged; use another one.")
    log.append(first)
    log.append(second)
    lines = log.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    entries = log.read()
    assert entries[0].action == "Back up"
    assert entries[0].parameters == {"name": "before upgrade", "folder": str(tmp_path)}
    assert entries[0].duration_seconds == 1.235
    assert entries[0].database == str(tmp_path / "q.db")
    assert entries[1].result == RESULT_FAILED
    assert entries[1].local_time is not None
    assert [e.action for e in log.read(limit=1)] == ["Verify backup"]


def test_missing_file_reads_empty_and_bad_lines_are_skipped(tmp_path: Path):
    log = ActivityLog(tmp_path / "activity.jsonl")
    assert log.read() == []
    log.append(ActivityEntry.now("Checkpoint"))
    with open(log.path, "a", encoding="utf-8") as handle:
        handle.write('{"truncated": \n')
        handle.write("[1, 2]\n")
    log.append(ActivityEntry.now("Vacuum"))
    assert [entry.action for entry in log.read()] == ["Checkpoint", "Vacuum"]


# -- reading only the newest entries, and rotation by size -----------------------------------

def _write_entries(path: Path, count: int, start: int = 0) -> None:
    """``count`` real entry lines, numbered from ``start``, written in one go."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", newline="\n") as handle:
        handle.writelines(ActivityEntry.now(f"action {number}").to_json() + "\n"
                          for number in range(start, start + count))


@pytest.mark.slow
def test_the_newest_entries_are_read_from_the_end_without_reading_the_file(
        tmp_path: Path, monkeypatch) -> None:
    log = ActivityLog(tmp_path / "activity.jsonl")
    _write_entries(log.path, 100_000)
    size = log.path.stat().st_size
    read_bytes = []
    real_open = open

    class CountingFile:
        def __init__(self, handle):
            self.handle = handle

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.handle.close()

        def read(self, size=-1):
            data = self.handle.read(size)
            read_bytes.append(len(data))
            return data

    monkeypatch.setattr(activity, "open",
                        lambda *args, **kwargs: CountingFile(real_open(*args, **kwargs)),
                        raising=False)
    newest = log.read(limit=200)
    assert [entry.action for entry in newest] == [f"action {n}" for n in range(99_800, 100_000)]
    assert sum(read_bytes) <= 2 * activity.READ_BLOCK_BYTES < size / 10


def test_a_line_longer_than_a_block_and_a_damaged_last_line_are_handled(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(activity, "READ_BLOCK_BYTES", 16)
    log = ActivityLog(tmp_path / "activity.jsonl")
    log.append(ActivityEntry.now("first", message="x" * 500))
    log.append(ActivityEntry.now("second"))
    with open(log.path, "a", encoding="utf-8") as handle:
        handle.write('{"time": "2024-01-01T00:00:00+00:00", "act')  # a crash mid-line
    assert [entry.action for entry in log.read(limit=5)] == ["first", "second"]
    assert log.read(limit=1)[0].action == "second"
    assert log.read(limit=0) == []


def test_the_file_rotates_by_size_and_keeps_a_fixed_number_of_files(tmp_path: Path) -> None:
    log = ActivityLog(tmp_path / "activity.jsonl", max_bytes=2_000, keep_files=3)
    for number in range(200):
        log.append(ActivityEntry.now(f"action {number}"))
    existing = sorted(path.name for path in tmp_path.iterdir())
    assert existing == ["activity.jsonl", "activity.jsonl.1", "activity.jsonl.2",
                        "activity.jsonl.3"]
    assert all(path.stat().st_size < 2_000 + 200 for path in log.files)
    actions = [entry.action for entry in log.read()]
    assert actions == [f"action {n}" for n in range(200 - len(actions), 200)]
    assert 30 < len(actions) < 200
    newest = log.read(limit=len(actions) - 3)  # spans the rotated files
    assert [entry.action for entry in newest] == actions[3:]


def test_rotation_is_skipped_while_another_process_rotates_then_resumes(tmp_path: Path) -> None:
    log = ActivityLog(tmp_path / "activity.jsonl", max_bytes=1_000, keep_files=2)
    lock = tmp_path / "activity.jsonl.rotating"
    lock.touch()
    for number in range(40):
        log.append(ActivityEntry.now(f"action {number}"))
    assert not log.files[1].exists()
    assert log.path.stat().st_size > 1_000
    lock.unlink()
    log.append(ActivityEntry.now("action 40"))
    assert log.files[1].exists() and not lock.exists()
    assert len(log.read()) == 41


def test_a_lock_left_by_a_crash_is_taken_over(tmp_path: Path) -> None:
    log = ActivityLog(tmp_path / "activity.jsonl", max_bytes=500, keep_files=2)
    lock = tmp_path / "activity.jsonl.rotating"
    lock.touch()
    old = time.time() - activity.STALE_LOCK_SECONDS - 5
    os.utime(lock, (old, old))
    for number in range(10):
        log.append(ActivityEntry.now(f"action {number}"))
    assert log.files[1].exists() and not lock.exists()


def test_a_file_that_cannot_be_renamed_never_fails_the_append(tmp_path: Path,
                                                              monkeypatch) -> None:
    def refuse(source, target):  # what Windows says when another process has the file open
        raise PermissionError(13, "The process cannot access the file", str(source))

    monkeypatch.setattr(activity.os, "replace", refuse)
    log = ActivityLog(tmp_path / "activity.jsonl", max_bytes=300, keep_files=2)
    for number in range(20):
        log.append(ActivityEntry.now(f"action {number}"))
    assert len(log.read()) == 20
    assert not (tmp_path / "activity.jsonl.rotating").exists()


def _append_from_another_process(path: str, worker: int, count: int) -> None:
    log = ActivityLog(path, max_bytes=3_000, keep_files=100)
    for number in range(count):
        log.append(ActivityEntry.now(f"worker {worker} entry {number}"))


@pytest.mark.slow
def test_several_processes_appending_and_rotating_lose_no_entry(tmp_path: Path) -> None:
    path = tmp_path / "activity.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_from_another_process, args=(str(path), w, 150))
               for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    log = ActivityLog(path, max_bytes=3_000, keep_files=100)
    actions = [entry.action for entry in log.read()]
    assert sorted(actions) == sorted(f"worker {w} entry {n}" for w in range(3)
                                     for n in range(150))
    assert len(list(tmp_path.glob("activity.jsonl.*"))) > 5
