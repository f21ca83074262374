from __future__ import annotations

from pathlib import Path

from queue_admin_gui.core.activity import (
    RESULT_FAILED,
    ActivityEntry,
    ActivityLog,
    default_activity_path,
)
from queue_admin_gui.core.config import user_log_dir


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
