"""A backup or restore killed at any moment, or a disk that fills up, loses nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from queue_workload import (
    DEADLINE_SECONDS,
    fill_queue,
    fingerprint,
    integrity,
    kill_hard,
    spawn,
    wait_ready,
)

from queue_admin_gui.core import QueueBackup

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and RLIMIT_FSIZE are POSIX"),
]

COPY = "Copying pages"
WRITE = "Writing the backup into the database"


@pytest.fixture
def live(tmp_path: Path) -> Path:
    path = tmp_path / "queue dir" / "queue.db"
    fill_queue(path, 3000, "old")
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "step"), [
    (COPY, 1), (COPY, 40), (COPY, 90), ("Checking the copy", 1),
    ("Computing the checksum", 1), ("Finishing the backup", 1),
])
def test_backup_killed_leaves_no_backup_and_an_untouched_source(
        live: Path, tmp_path: Path, stage: str, step: int) -> None:
    before = fingerprint(live)
    folder = tmp_path / "backups"
    child = spawn("backup", live, folder, stage, step)
    wait_ready(child)
    kill_hard(child)

    engine = QueueBackup(live, folder)
    assert engine.list_backups() == []
    assert engine.get_latest_backup() is None
    assert not [p for p in folder.iterdir() if p.name.endswith(".db")]
    assert fingerprint(live) == before
    assert integrity(live) == ["ok"]
    # The next backup works and does not collide with what the killed one left.
    made = engine.backup()
    assert engine.verify_backup(made.path) is True
    assert [info.path for info in engine.list_backups()] == [made.path]


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "step"), [
    (COPY, 5), (WRITE, 1), (WRITE, 30), (WRITE, 60),
])
def test_restore_killed_leaves_the_live_database_wholly_old(
        live: Path, tmp_path: Path, stage: str, step: int) -> None:
    folder = tmp_path / "backups"
    source = tmp_path / "new.db"
    fill_queue(source, 2000, "new")
    backup = QueueBackup(source, folder).create_backup("new")
    old, new = fingerprint(live), fingerprint(backup)
    assert old != new
    pages = QueueBackup(live, folder).check_backup(backup).manifest.page_count
    assert pages // 4 > 60  # enough steps for every kill point above to lie mid-write

    child = spawn("restore", live, folder, backup, stage, step)
    wait_ready(child)
    kill_hard(child)

    assert fingerprint(live) == old
    assert integrity(live) == ["ok"]
    engine = QueueBackup(live, folder)
    assert {info.path.name for info in engine.list_backups()} <= {
        backup.name, *(p.name for p in folder.glob("queue_backup_pre_restore_*.db"))}
    # Once nobody is killed, the same restore completes and the file is wholly new.
    engine.restore_backup(backup)
    assert fingerprint(live) == new
    assert integrity(live) == ["ok"]


@pytest.mark.slow
def test_restore_completed_before_the_kill_is_wholly_new(live: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    source = tmp_path / "new.db"
    fill_queue(source, 2000, "new")
    backup = QueueBackup(source, folder).create_backup("new")
    new = fingerprint(backup)
    pages = QueueBackup(live, folder).check_backup(backup).manifest.page_count
    steps = -(-pages // 4)
    child = spawn("restore", live, folder, backup, WRITE, steps)  # the call after the commit
    wait_ready(child)
    kill_hard(child)
    assert fingerprint(live) == new
    assert integrity(live) == ["ok"]


def test_disk_full_during_backup_reports_it_and_leaves_nothing(live: Path,
                                                                tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    before = fingerprint(live)
    limit = live.stat().st_size // 2 + 100
    child = spawn("disk-full", live, folder, limit)
    output, error = child.communicate(timeout=DEADLINE_SECONDS)
    assert child.returncode == 0, error
    outcome = json.loads(output.strip().splitlines()[-1])
    assert outcome["kind"] == "disk_full"
    assert "disk is full" in outcome["message"]
    assert outcome["message"].startswith("Backup of ")
    assert list(folder.iterdir()) == []
    assert fingerprint(live) == before
    assert integrity(live) == ["ok"]
