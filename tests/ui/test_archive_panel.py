"""The archive panel on the Backups tab, driven through its real toggle over a real queue."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt

from queue_admin_gui.core.archive import archive_status
from queue_admin_gui.core.archive.store import LOCK_FILE
from queue_admin_gui.ui.backups_tab import BackupsTab

TIMEOUT_MS = 60_000
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def add_tasks(db: Path, kind: str, count: int) -> None:
    connection = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        for _ in range(count):
            connection.execute("INSERT INTO task_queue (type, payload) VALUES (?, '{}')",
                               (kind,))
    finally:
        connection.close()


def click_toggle(qtbot, panel) -> None:
    box = panel.toggle
    qtbot.waitUntil(box.isEnabled, timeout=TIMEOUT_MS)
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))


@pytest.fixture
def panel(qtbot, session, queue_db):
    tab = BackupsTab(session)
    qtbot.addWidget(tab)
    tab.resize(1024, 700)
    tab.show()
    session.set_database(queue_db, True)
    qtbot.waitUntil(lambda: not tab.loading, timeout=TIMEOUT_MS)
    panel = tab.archive_panel
    yield panel
    job = panel.stop_archiving()
    if job is not None:
        qtbot.waitUntil(lambda: job.is_finished, timeout=TIMEOUT_MS)
    assert not [t for t in threading.enumerate() if t.name == "wal-archiver" and t.is_alive()]


def wait_restorable(qtbot, panel) -> None:
    qtbot.waitUntil(lambda: panel.archiving and not panel.switching, timeout=TIMEOUT_MS)
    # generation is None until the first generation starts (its snapshot is not pending yet)
    qtbot.waitUntil(lambda: panel.controller.status().generation is not None
                    and not panel.controller.status().snapshot_pending, timeout=TIMEOUT_MS)


def test_toggle_archives_shows_the_state_and_stops(qtbot, panel, session, queue_db,
                                                   backup_dir):
    assert panel.archive_dir == backup_dir / "archive"
    assert panel.grid.value("state") == "off"
    click_toggle(qtbot, panel)
    wait_restorable(qtbot, panel)
    add_tasks(queue_db, "archived", 5)
    qtbot.waitUntil(lambda: panel.controller.status().transactions >= 5, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: panel.grid.value("state").startswith("on ("), timeout=TIMEOUT_MS)
    assert panel.grid.value("behind").endswith(" ms")
    assert int(panel.grid.value("behind").split()[0]) < 5_000

    panel.refresh()
    qtbot.waitUntil(lambda: panel.status is not None and panel.status.latest is not None,
                    timeout=TIMEOUT_MS)
    assert panel.grid.value("generations") == "1"
    assert panel.grid.value("earliest") != "\u2013"
    assert panel.grid.value("latest") != "\u2013"
    assert panel.grid.value("size") != "\u2013"
    assert "No gap" in panel.gap_label.text()

    click_toggle(qtbot, panel)
    qtbot.waitUntil(lambda: not panel.archiving and not panel.switching, timeout=TIMEOUT_MS)
    assert panel.grid.value("state") == "off"
    assert not panel.toggle.isChecked()
    assert not (panel.archive_dir / LOCK_FILE).exists()
    status = archive_status(panel.archive_dir)
    assert len(status.generations) == 1 and status.generations[0].transactions >= 5


def test_own_truncate_checkpoint_does_not_wait_on_the_archiver(qtbot, panel, session,
                                                               queue_db):
    click_toggle(qtbot, panel)
    wait_restorable(qtbot, panel)
    add_tasks(queue_db, "before", 20)
    qtbot.waitUntil(lambda: panel.controller.status().transactions >= 20, timeout=TIMEOUT_MS)
    started = time.monotonic()
    job = session.run_checkpoint("TRUNCATE")
    assert job is not None
    with qtbot.waitSignal(session.checkpoint_done, timeout=TIMEOUT_MS) as blocker:
        pass
    result = blocker.args[0]
    assert time.monotonic() - started < 4.0
    assert result.busy == 0 and result.wal_bytes_after == 0
    assert panel.controller.checkpoints_let_through == 1
    assert panel.controller.retention_days == session.config.archive_retention_days == 7.0
    assert panel.archiving and panel.toggle.isChecked()
    assert result.checkpointed == result.log
    status = panel.controller.status()
    assert status is not None and status.generations_started == 1  # no new snapshot


def test_an_archiver_in_another_process_disables_the_toggle(qtbot, panel, session, queue_db):
    folder = panel.archive_dir
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                      env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "queue_admin_gui.cli", "--db", str(queue_db), "archive",
         "--dir", str(folder), "--heartbeat", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("Archiving ")
        panel.refresh()
        qtbot.waitUntil(lambda: panel.elsewhere is not None, timeout=TIMEOUT_MS)
        assert panel.grid.value("state") == (f"archived by another process (PID "
                                             f"{process.pid} on {panel.elsewhere['host']})")
        assert not panel.toggle.isEnabled()
    finally:
        process.terminate()
        process.communicate(timeout=60)
    assert process.returncode == 0
    panel.refresh()
    qtbot.waitUntil(lambda: panel.elsewhere is None and not panel.reading, timeout=TIMEOUT_MS)
    assert panel.toggle.isEnabled()
    assert panel.grid.value("state") == "off"


def test_the_archive_folder_follows_the_setting(qtbot, panel, session, tmp_path):
    chosen = tmp_path / "archive share"
    session.set_config(dataclasses.replace(session.config, archive_dir=chosen))
    assert panel.archive_dir == chosen
    assert panel.folder_label.text() == f"Folder: {chosen}"
    qtbot.waitUntil(lambda: panel.status is not None and panel.status.folder == chosen,
                    timeout=TIMEOUT_MS)
    assert panel.grid.value("generations") == "0"


@pytest.mark.slow
def test_validate_now_shows_the_result_and_catches_a_damaged_archive(qtbot, panel, session,
                                                                      queue_db, presenter):
    assert panel.grid.value("validation") == "none yet"
    assert not panel.validate_button.isEnabled()  # nothing archives yet: nothing to compare
    click_toggle(qtbot, panel)
    wait_restorable(qtbot, panel)
    add_tasks(queue_db, "validated", 10)
    qtbot.waitUntil(lambda: panel.controller.status().transactions >= 10, timeout=TIMEOUT_MS)
    qtbot.waitUntil(panel.validate_button.isEnabled, timeout=TIMEOUT_MS)
    qtbot.mouseClick(panel.validate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.grid.value("validation").startswith("passed at"),
                    timeout=TIMEOUT_MS)
    assert panel.grid.value("validation").endswith("identical to the live file")

    segment = next(panel.archive_dir.glob("gen-*/frames-000001.qaf"))
    middle = segment.stat().st_size // 2
    with open(segment, "r+b") as handle:  # one byte flipped in place; the archiver goes on
        handle.seek(middle)
        byte = handle.read(1)[0]
        handle.seek(middle)
        handle.write(bytes([byte ^ 0x10]))
    qtbot.waitUntil(panel.validate_button.isEnabled, timeout=TIMEOUT_MS)
    qtbot.mouseClick(panel.validate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.grid.value("validation").startswith("FAILED at"),
                    timeout=TIMEOUT_MS)
    assert segment.name in panel.grid.value("validation")
    assert any("failed its validation" in text and segment.name in text
               for text in presenter.texts())
    # The failure ends the generation: the archiver starts a new one from a new snapshot.
    qtbot.waitUntil(lambda: panel.controller.status().generations_started >= 2
                    and not panel.controller.status().snapshot_pending, timeout=TIMEOUT_MS)
