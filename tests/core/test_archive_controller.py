"""The window's archiver controller and where the archive folder comes from."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from queue_admin_gui.core.archive import archive_status
from queue_admin_gui.core.archive.controller import (
    ArchiveController,
    configured_archive_dir,
    default_archive_dir,
)
from queue_admin_gui.core.config import MaintenanceConfig
from queue_admin_gui.core.maintenance import QueueMaintenance


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


def test_a_truncate_checkpoint_pauses_the_archiver_and_it_goes_on(queue_db: Path) -> None:
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
        assert result["busy"] == 0 and controller.pauses == 1 and controller.running
        assert controller.checkpoint("PASSIVE", lambda: "passive ran beside it") \
            == "passive ran beside it"
        assert controller.pauses == 1
        wait_restorable(controller)
    finally:
        controller.stop()
    assert not controller.running
    generations = archive_status(folder).generations
    assert len(generations) == 2
    assert generations[0].end_reason == "the archiver was stopped"
