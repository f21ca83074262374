"""The window's archiver controller and where the archive folder comes from."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from queue_admin_gui.core import QueueMaintenance
from queue_admin_gui.core.archive import archive_status
from queue_admin_gui.core.archive.controller import (
    ArchiveController,
    configured_archive_dir,
    default_archive_dir,
)
from queue_admin_gui.core.process_writers import write_gate
from queue_admin_gui.core.settings.config import MaintenanceConfig


def wait_restorable(controller: ArchiveController) -> None:
    """Until the current generation's snapshot is written (polled: no event loop here)."""
    deadline = time.monotonic() + 60
    while controller.status().snapshot_pending or controller.status().generation is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_the_archive_folder_is_the_setting_or_beside_the_backups(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    assert configured_archive_dir(MaintenanceConfig(backup_dir=backups)) == backups / "archive"
    chosen = tmp_path / "share" / "queue archive"
    saved = MaintenanceConfig(backup_dir=backups, archive_dir=chosen).save(tmp_path / "c.toml")
    loaded = MaintenanceConfig.load(saved)
    assert loaded.archive_dir == chosen
    assert configured_archive_dir(loaded) == chosen
    assert "archive_dir" not in MaintenanceConfig(backup_dir=backups).to_toml()


def test_a_truncate_checkpoint_goes_through_and_the_generation_goes_on(queue_db: Path) -> None:
    folder = default_archive_dir(queue_db.parent / "backups")
    controller = ArchiveController(queue_db, folder)
    controller.start()
    try:
        wait_restorable(controller)
        writer = sqlite3.connect(queue_db, isolation_level=None)
        writer.execute("INSERT INTO task_queue (type, payload) VALUES ('x', '{}')")
        writer.close()
        started = time.monotonic()
        result = controller.checkpoint("TRUNCATE",
                                       lambda: QueueMaintenance(queue_db).checkpoint("TRUNCATE"))
        assert time.monotonic() - started < 4.0
        assert result["busy"] == 0 and result["wal_bytes_after"] == 0
        assert controller.checkpoints_let_through == 1 and controller.running
        assert controller.checkpoint("PASSIVE", lambda: "passive ran beside it") \
            == "passive ran beside it"
        assert controller.checkpoints_let_through == 1
        status = controller.status()
        assert status is not None and status.generations_started == 1
        assert status.last_gap is None
    finally:
        controller.stop()
    assert not controller.running
    generations = archive_status(folder).generations
    assert len(generations) == 1
    assert generations[0].end_reason == "the archiver was stopped"


def test_the_gate_holds_in_process_writers_apart_from_the_checkpoint(tmp_path: Path) -> None:
    gate = write_gate(tmp_path / "queue.db")
    assert write_gate(tmp_path / "." / "queue.db") is gate
    writing = threading.Event()
    finish = threading.Event()
    order: list[str] = []

    def writer() -> None:
        with gate.writing():
            writing.set()
            finish.wait(10)
            order.append("writer done")

    thread = threading.Thread(target=writer)
    thread.start()
    assert writing.wait(10)
    threading.Timer(0.2, finish.set).start()
    with gate.exclusive():
        order.append("checkpoint")  # only once the writer's transaction ended
        with pytest.raises(TimeoutError):
            with gate.writing(timeout=0.05):
                pass  # pragma: no cover - never entered while the checkpoint runs
    thread.join(10)
    assert order == ["writer done", "checkpoint"]
    with gate.writing(timeout=0.05):
        order.append("writer again")
    assert order[-1] == "writer again"
