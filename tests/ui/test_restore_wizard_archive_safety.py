"""The wizard's restore with the point-in-time archive as its safety copy, clicked through.

`queue-admin-cli archive` follows the queue as its own process, into the folder the settings
name. The wizard then says on its Prepare page that the archive is the safety copy, takes no
safety backup, names the instant on its Done page, and its Undo rebuilds that instant and
restores it: the queue must come back exactly as it was before the first restore.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from queue_admin_gui.app.jobs import JobRunner
from queue_admin_gui.app.messages import Messages, RecordingPresenter
from queue_admin_gui.app.session import Session
from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.archive import archive_status
from queue_admin_gui.core.archive.controller import default_archive_dir
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.ui.restore_wizard import (
    PAGE_CHECK,
    PAGE_DONE,
    PAGE_PREPARE,
    PAGE_RESTORE,
    RestoreWizard,
)

pytestmark = pytest.mark.slow
TIMEOUT_MS = 60_000
LEFT = Qt.MouseButton.LeftButton
REPO_ROOT = Path(__file__).resolve().parents[2]


def table_rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of the queue's tables and its id counters."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {table: connection.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
                for table in ("task_queue", "task_logs", "sqlite_sequence")}
    finally:
        connection.close()


def add_work(path: Path, kind: str, count: int) -> None:
    """``count`` new tasks with a log row each, and the oldest queued task completed."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        connection.execute("BEGIN IMMEDIATE")
        for number in range(count):
            cursor = connection.execute("INSERT INTO task_queue (type, payload) VALUES (?, ?)",
                                        (kind, f'{{"n": {number}}}'))
            connection.execute("INSERT INTO task_logs (task_id, level, message) "
                               "VALUES (?, 'INFO', 'made')", (cursor.lastrowid,))
        connection.execute("UPDATE task_queue SET status = 'completed' WHERE id = "
                           "(SELECT min(id) FROM task_queue WHERE status = 'queued')")
        connection.execute("COMMIT")
    finally:
        connection.close()


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    return tmp_path / "backup folder"


@pytest.fixture
def archiver(queue_db: Path, backups: Path) -> Iterator[Path]:
    """`queue-admin-cli archive` in its own process, into the settings' archive folder."""
    folder = default_archive_dir(backups)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen([sys.executable, "-m", "queue_admin_gui.cli", "--db",
                                str(queue_db), "archive", "--dir", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while not any(g.restorable_from for g in archive_status(folder).generations):
        assert process.poll() is None, "the archiver process stopped"
        assert time.monotonic() < deadline, "the archive never became restorable"
        time.sleep(0.05)
    yield folder
    process.terminate()
    assert process.wait(60) == 0


@pytest.fixture
def session(queue_db: Path, backups: Path) -> Iterator[Session]:
    runner = JobRunner()
    config = MaintenanceConfig(backup_dir=backups)
    yield Session(runner, Messages(RecordingPresenter()), config, queue_db)
    assert runner.shutdown(TIMEOUT_MS)


def click_next(qtbot, wizard: RestoreWizard, expected_page: int) -> None:
    """Wait until Next is usable, click it, and wait for the page it leads to."""
    button = wizard.button(RestoreWizard.WizardButton.NextButton)
    qtbot.waitUntil(lambda: button.isVisible() and button.isEnabled(), timeout=TIMEOUT_MS)
    qtbot.mouseClick(button, LEFT)
    qtbot.waitUntil(lambda: wizard.currentId() == expected_page, timeout=TIMEOUT_MS)


def through_to_done(qtbot, wizard: RestoreWizard) -> None:
    """From the Check page on: Next, Restore, and the Done page with nothing running."""
    qtbot.waitUntil(lambda: wizard.check_page.isComplete(), timeout=TIMEOUT_MS)
    click_next(qtbot, wizard, PAGE_PREPARE)
    qtbot.waitUntil(lambda: wizard.state.preflight is not None, timeout=TIMEOUT_MS)
    click_next(qtbot, wizard, PAGE_RESTORE)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE and not wizard.busy,
                    timeout=TIMEOUT_MS)


def test_the_archive_is_the_safety_copy_and_undo_rebuilds_its_instant(
        qtbot, session: Session, queue_db: Path, backups: Path, archiver: Path) -> None:
    add_work(queue_db, "early", 30)
    backup = QueueBackup(queue_db, backups).create_backup("before")
    add_work(queue_db, "late", 25)
    before = table_rows(queue_db)

    wizard = RestoreWizard(session)
    qtbot.addWidget(wizard)
    wizard.resize(1024, 700)
    wizard.show()
    qtbot.waitUntil(lambda: not wizard.busy
                    and wizard.choose_page.tree.topLevelItemCount() > 0, timeout=TIMEOUT_MS)
    wizard.choose_path(backup)
    click_next(qtbot, wizard, PAGE_CHECK)
    qtbot.waitUntil(lambda: wizard.check_page.isComplete(), timeout=TIMEOUT_MS)
    click_next(qtbot, wizard, PAGE_PREPARE)
    qtbot.waitUntil(lambda: wizard.state.preflight is not None, timeout=TIMEOUT_MS)
    safety_text = wizard.prepare_page.safety_label.text()
    assert wizard.state.archive_safety == archiver
    assert "point-in-time archive" in safety_text and "is the safety copy" in safety_text
    click_next(qtbot, wizard, PAGE_RESTORE)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE and not wizard.busy,
                    timeout=TIMEOUT_MS)

    result = wizard.state.outcome.result
    restored, in_backup = table_rows(queue_db), table_rows(backup)
    assert restored["task_queue"] == in_backup["task_queue"]
    assert restored["task_logs"] == in_backup["task_logs"]
    assert restored["sqlite_sequence"] == before["sqlite_sequence"]  # no id is handed out twice
    assert result.safety_backup is None and result.archive_problem is None
    point = result.safety_point
    assert point is not None and point.confirmed is True
    done = wizard.done_page
    assert done.safety_label.text().startswith("Safety copy: the point-in-time archive")
    assert done.undo_button.isEnabled()
    pre_restore = backups / "pre-restore"
    assert not pre_restore.exists() or not any(pre_restore.glob("*.db"))

    # Undo: the wizard rebuilds the instant it named and goes on to the Check page with it.
    qtbot.mouseClick(done.undo_button, LEFT)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_CHECK, timeout=TIMEOUT_MS)
    rebuilt = wizard.state.backup_path
    assert rebuilt is not None and rebuilt.parent == backups
    assert table_rows(rebuilt) == before
    through_to_done(qtbot, wizard)
    assert table_rows(queue_db) == before
    assert wizard.state.outcome.result.check.ok
