"""The archive as the restore's safety copy, with the archiver in this process or its own.

A restore of a queue whose archiver proves, under the restore's write lock, that it holds
every commit takes no safety backup: the instant it names must rebuild to exactly the queue
as it was before the restore. Where the proof fails (no archiver) the safety backup is taken
as before.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rescue_scenario import copy_of, log_rows, sequence, task_rows
from test_archive_under_load import wait_restorable
from test_prismq_restore import PROJECT_ROOT, run_cli, wait_until

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.archive import Archiver, archive_status, rebuild_to_time

# Nothing here tells workers at work: the gate watches for commits a moment, not a second.
pytestmark = pytest.mark.usefixtures("short_commit_watch")


def test_the_archive_is_the_restores_safety_copy(changed_queue: tuple[Path, Path, Path],
                                                 tmp_path: Path) -> None:
    live, folder, backup = changed_queue
    archiver = Archiver(live, folder / "archive")
    archiver.start()
    try:
        wait_restorable(archiver)
        before = copy_of(live, tmp_path / "before.db")
        result = QueueBackup(live, folder).restore_backup(backup,
                                                          archive_safety=folder / "archive")
    finally:
        archiver.stop()
    assert result.safety_backup is None
    assert not (folder / "pre-restore").exists() or not any((folder / "pre-restore").iterdir())
    point = result.safety_point
    assert point is not None and point.confirmed is True, point
    assert result.safety_problem is None and result.check.ok
    assert task_rows(live) == task_rows(backup) != task_rows(before)
    rebuilt = tmp_path / "rebuilt.db"
    assert rebuild_to_time(point.archive, point.at, rebuilt, live_path=live).check.ok
    assert task_rows(rebuilt) == task_rows(before)
    assert log_rows(rebuilt) == log_rows(before)
    assert sequence(rebuilt) == sequence(before)


def test_without_a_running_archiver_the_restore_takes_a_safety_backup(
        changed_queue: tuple[Path, Path, Path]) -> None:
    live, folder, backup = changed_queue
    before = task_rows(live)
    result = QueueBackup(live, folder).restore_backup(backup,
                                                      archive_safety=folder / "archive")
    assert result.safety_point is None
    assert result.safety_backup is not None and task_rows(result.safety_backup) == before


def test_a_damaged_archive_rolls_the_write_back_and_a_safety_backup_is_taken(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """One byte of the generation's snapshot flipped after the archiver proved itself: the
    full check beside the write finds it before the commit, the write rolls back, and the
    restore goes through once more with a safety backup of the queue as it was."""
    live, folder, backup = changed_queue
    archive = folder / "archive"
    archiver = Archiver(live, archive)
    archiver.start()
    try:
        wait_restorable(archiver)
        snapshot = next(archive.glob("gen-*/snapshot/*.db"))
        data = bytearray(snapshot.read_bytes())
        data[len(data) // 2] ^= 0x01
        snapshot.write_bytes(bytes(data))
        before = copy_of(live, tmp_path / "before.db")
        result = QueueBackup(live, folder, pages_per_step=8).restore_backup(
            backup, archive_safety=archive)
    finally:
        archiver.stop()
    assert result.safety_point is None
    assert "snapshot" in (result.archive_problem or ""), result.archive_problem
    assert result.safety_backup is not None and result.safety_problem is None
    assert task_rows(result.safety_backup) == task_rows(before)
    assert sequence(result.safety_backup) == sequence(before)
    assert task_rows(live) == task_rows(backup) and result.check.ok
    assert result.result_check == "every page equal to the checked backup's"


@pytest.mark.slow
def test_cli_restore_beside_an_archiver_process_names_the_instant_that_undoes_it(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """`queue-admin-cli archive` runs as its own process into the settings' archive folder;
    `restore --yes` takes no safety backup, says which instant holds the queue as it was,
    and `restore --at` that instant gives back exactly that queue."""
    live, folder, backup = changed_queue
    archive = folder / "archive"
    env_path = {"PYTHONPATH": str(PROJECT_ROOT), "QUEUE_ADMIN_BACKUP_DIR": str(folder)}
    process = subprocess.Popen(
        [sys.executable, "-m", "queue_admin_gui.cli", "--db", str(live), "archive", "--dir",
         str(archive)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**dict(__import__("os").environ), **env_path})
    try:
        wait_until(lambda: any(generation.restorable_from is not None
                               for generation in archive_status(archive).generations),
                   "the archiver's first snapshot")
        before = copy_of(live, tmp_path / "before.db")
        code, report, err = run_cli(folder, "--db", live, "restore", backup, "--yes")
        assert code == 0, err
        assert report["safety_backup"] is None
        point = report["safety_point"]
        assert point["confirmed"] is True and point["generation"]
        assert point["at_text"] in report["safety_copy"]
        assert task_rows(live) == task_rows(backup)
        rebuilt = tmp_path / "rebuilt.db"
        code, _, err = run_cli(folder, "--db", live, "restore", "--at", point["at_text"],
                               "--archive", archive, "--output", rebuilt)
        assert code == 0, err
    finally:
        process.terminate()
        process.wait(30)
    assert task_rows(rebuilt) == task_rows(before)
    assert sequence(rebuilt) == sequence(before)
