"""What an admin met walking the incidents on the real window, each pinned by a test.

Every test here drives the window (or the one widget involved) as the admin did and asserts
what the screen says against what is true of the file.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from PySide6.QtCore import QDateTime, Qt
from PySide6.QtWidgets import QWizard
from rescue_scenario import damage_pages, table_leaves, task_rows
from test_one_database_at_a_time import damage_task_pages

from queue_admin_gui.app.jobs import JobRunner
from queue_admin_gui.app.messages import Messages, RecordingPresenter
from queue_admin_gui.app.session import Session
from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.archive.controller import ArchiveController, default_archive_dir
from queue_admin_gui.core.database import QueueDatabase
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.ui.restore_point_picker import InstantEdit
from queue_admin_gui.ui.restore_wizard import (
    PAGE_DONE,
    PAGE_PREPARE,
    PAGE_RESTORE,
    RestoreWizard,
)

# Nothing here tells workers at work: the gate watches for commits a moment, not a second.
pytestmark = pytest.mark.usefixtures("short_commit_watch")

JOB_MS = 60_000
NEXT = QWizard.WizardButton.NextButton
FINISH = QWizard.WizardButton.FinishButton


def idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.session.runner.active_jobs, timeout=JOB_MS)


def click_next(qtbot, wizard: RestoreWizard) -> None:
    button = wizard.button(NEXT)
    qtbot.waitUntil(lambda: button.isVisible() and button.isEnabled(), timeout=JOB_MS)
    page = wizard.currentId()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: wizard.currentId() != page, timeout=JOB_MS)


def open_damaged_with_a_backup(qtbot, window, open_db, demo_db: Path) -> Path:
    """Back the demo queue up, damage two of its task pages, open it: red "Damaged"."""
    QueueBackup(demo_db, window.session.backup_dir).create_backup()
    damage_task_pages(demo_db)
    open_db(demo_db)
    optimize = window.tab_widgets["optimize"]
    window.show_tab("optimize")
    qtbot.waitUntil(lambda: optimize.findings.count() > 0, timeout=JOB_MS)
    assert window.status.badge.text_label.text() == "Health: Damaged"
    return demo_db


def test_a_damaged_file_restored_from_the_window_is_no_longer_called_damaged(
        qtbot, window, open_db, demo_db: Path) -> None:
    """Incident 4: after the restore the file passes the integrity check; so must the screen."""
    live = open_damaged_with_a_backup(qtbot, window, open_db, demo_db)
    optimize = window.tab_widgets["optimize"]
    qtbot.mouseClick(optimize.restore_button, Qt.MouseButton.LeftButton)
    wizard = window.restore_wizard
    assert isinstance(wizard, RestoreWizard)
    qtbot.waitUntil(lambda: not wizard.busy, timeout=JOB_MS)
    while wizard.currentId() < PAGE_RESTORE:
        click_next(qtbot, wizard)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE, timeout=JOB_MS)
    qtbot.waitUntil(lambda: not wizard.busy, timeout=JOB_MS)
    assert wizard.state.outcome is not None and wizard.state.outcome.check.ok
    connection = sqlite3.connect(live)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()
    qtbot.mouseClick(wizard.button(FINISH), Qt.MouseButton.LeftButton)
    idle(qtbot, window)

    qtbot.waitUntil(lambda: window.status.badge.text_label.text() != "Health: Damaged",
                    timeout=20_000)
    assert window.session.damage is None
    assert "damaged" not in window.status.badge.toolTip()
    assert optimize.findings.count() == 0
    assert optimize.restore_button.isHidden()
    assert "Damage found" not in optimize.integrity_label.text()


def test_the_prepare_page_says_the_damage_in_one_sentence_not_sqlites_whole_report(
        qtbot, window, open_db, demo_db: Path) -> None:
    """Incident 4: the prepare page pasted all of SQLite's findings (20 lines) into a sentence."""
    open_damaged_with_a_backup(qtbot, window, open_db, demo_db)
    wizard = window.open_restore_newest()
    assert isinstance(wizard, RestoreWizard)
    qtbot.waitUntil(lambda: not wizard.busy, timeout=JOB_MS)
    while wizard.currentId() != PAGE_PREPARE:
        click_next(qtbot, wizard)
    qtbot.waitUntil(lambda: wizard.state.preflight is not None, timeout=JOB_MS)
    text = wizard.prepare_page.live_label.text()
    assert text.startswith("The live database is damaged")
    assert "\n" not in text, text
    assert "*** in database main ***" not in text
    assert text.count("On tree page") <= 1, text
    assert "the backup will be written into it in one transaction" in text
    wizard.reject()


def test_a_whole_timestamp_typed_over_the_instant_is_taken_as_typed(qtbot) -> None:
    """Incident 1: select the instant, type "2026-12-07 05:00:24": it came out 05:00:00.24."""
    edit = InstantEdit()
    edit.setDisplayFormat("yyyy-MM-dd HH:mm:ss.zzz")
    qtbot.addWidget(edit)
    edit.setDateTime(QDateTime.fromString("2026-12-07 05:00:26.703", "yyyy-MM-dd HH:mm:ss.zzz"))
    edit.show()
    edit.setFocus()
    qtbot.mouseClick(edit.lineEdit(), Qt.MouseButton.LeftButton)
    qtbot.keyClick(edit, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(edit, "2026-12-07 05:00:24")
    qtbot.keyClick(edit, Qt.Key.Key_Tab)
    assert edit.dateTime().toPython() == datetime(2026, 12, 7, 5, 0, 24)


def test_a_queue_never_backed_up_does_not_show_another_files_backup_as_its_own(
        qtbot, window, open_db, demo_db: Path, tmp_path: Path) -> None:
    """Incident 6: queue B, never backed up, showed "Last backup: 1 min ago" and Health OK."""
    QueueBackup(demo_db, window.session.backup_dir).create_backup()
    queue_b = tmp_path / "queue b" / "queue.db"
    with QueueDatabase(queue_b) as db:
        db.initialize_schema()
    open_db(queue_b)
    qtbot.waitUntil(lambda: window.status.badge.level is not None, timeout=JOB_MS)
    idle(qtbot, window)
    assert window.status.backup_label.text() == "Last backup: none yet"


def test_an_archive_made_from_another_database_says_whose_it_is(
        qtbot, queue_db: Path, tmp_path: Path) -> None:
    """Incident 4: the damaged copy's wizard offered the live queue's archive as its own."""
    backups = tmp_path / "backups"
    archiver = ArchiveController(queue_db, default_archive_dir(backups))
    archiver.start()
    try:
        qtbot.waitUntil(lambda: archiver.status().generation is not None
                        and not archiver.status().snapshot_pending, timeout=JOB_MS)
        connection = sqlite3.connect(queue_db)
        connection.execute("INSERT INTO task_queue (type, payload) VALUES ('x', '{}')")
        connection.commit()
        connection.close()
        qtbot.waitUntil(lambda: archiver.status().transactions >= 1, timeout=JOB_MS)
    finally:
        archiver.stop()
    other = tmp_path / "copy" / "queue.db"
    other.parent.mkdir()
    source, target = sqlite3.connect(queue_db), sqlite3.connect(other)
    source.backup(target)
    source.close()
    target.close()
    runner = JobRunner()
    session = Session(runner, Messages(RecordingPresenter()),
                      MaintenanceConfig(backup_dir=backups), other)
    wizard = RestoreWizard(session)
    qtbot.addWidget(wizard)
    wizard.show()
    picker = wizard.choose_page.point_picker
    qtbot.waitUntil(lambda: picker.status is not None and not wizard.busy, timeout=JOB_MS)
    summary = picker.summary_label.text()
    wizard.reject()
    assert runner.shutdown(JOB_MS)
    assert str(queue_db) in summary, summary


def test_the_archive_panel_does_not_call_another_databases_archiver_this_ones(
        qtbot, window, open_db, demo_db: Path, tmp_path: Path) -> None:
    """Incident 6: queue B, never archived, read "archived by another process" (queue A's)."""
    queue_b = tmp_path / "queue b" / "queue.db"
    with QueueDatabase(queue_b) as db:
        db.initialize_schema()
    panel = window.backups_tab.archive_panel
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[2]), environment.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "queue_admin_gui.cli", "--db", str(demo_db), "archive",
         "--dir", str(panel.archive_dir), "--heartbeat", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("Archiving ")
        open_db(queue_b)
        window.show_tab("backups")
        panel.refresh()
        qtbot.waitUntil(lambda: panel.elsewhere is not None, timeout=JOB_MS)
        state = panel.grid.value("state")
    finally:
        process.terminate()
        process.communicate(timeout=60)
    assert str(demo_db) in state, state
    assert not state.startswith("archived by another process"), state


@pytest.mark.parametrize("ending", [Qt.Key.Key_Return, Qt.Key.Key_Escape])
def test_a_typed_entry_that_names_no_instant_leaves_the_instant_as_it_was(qtbot,
                                                                          ending) -> None:
    edit = InstantEdit()
    edit.setDisplayFormat("yyyy-MM-dd HH:mm:ss.zzz")
    qtbot.addWidget(edit)
    before = QDateTime.fromString("2026-12-07 05:00:26.703", "yyyy-MM-dd HH:mm:ss.zzz")
    edit.setDateTime(before)
    edit.show()
    edit.setFocus()
    edit.lineEdit().selectAll()
    qtbot.keyClicks(edit, "20x6-1")
    assert edit.lineEdit().text() == "20x6-1"  # shown as typed, not forced into sections
    qtbot.keyClick(edit, ending)
    assert edit.dateTime() == before
    assert edit.lineEdit().text() == "2026-12-07 05:00:26.703"


def test_after_restoring_a_damaged_file_the_newer_work_comes_back_from_its_copy(
        qtbot, window, open_db, demo_db: Path) -> None:
    """Incident 4, carried on: the restore put the nightly backup in; the Done page offers
    the work done since, from the damaged copy it kept. Every task whose row the copy still
    gives gets its newest state; the tasks in the damaged pages keep the backup's."""
    QueueBackup(demo_db, window.session.backup_dir).create_backup()
    with sqlite3.connect(demo_db) as connection:
        connection.executemany("INSERT INTO task_queue (type, payload) VALUES ('late', ?)",
                               [(f'{{"n": {n}}}',) for n in range(60)])
        connection.execute("UPDATE task_queue SET status = 'completed' WHERE id % 7 = 0"
                           " AND status = 'queued'")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    newest = task_rows(demo_db)
    leaves = table_leaves(demo_db, "task_queue")
    damaged_pages = sorted(leaves)[1:3]
    lost = {rowid for page in damaged_pages for rowid in leaves[page]}
    damage_pages(demo_db, damaged_pages)
    open_db(demo_db)
    optimize = window.tab_widgets["optimize"]
    window.show_tab("optimize")
    qtbot.waitUntil(lambda: optimize.restore_button.isVisible(), timeout=JOB_MS)
    in_backup = task_rows(sorted(window.session.backup_dir.glob("*.db"))[-1])

    qtbot.mouseClick(optimize.restore_button, Qt.MouseButton.LeftButton)
    wizard = window.restore_wizard
    qtbot.waitUntil(lambda: not wizard.busy, timeout=JOB_MS)
    while wizard.currentId() < PAGE_RESTORE:
        click_next(qtbot, wizard)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE and not wizard.busy,
                    timeout=JOB_MS)
    done = wizard.done_page
    assert done.salvage_button.isVisible()
    qtbot.mouseClick(done.salvage_button, Qt.MouseButton.LeftButton)
    dialog = done.rescue_dialog
    assert dialog is not None and dialog.damaged
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.diff is not None and not dialog.busy, timeout=JOB_MS)
    assert f"{len(lost)} row(s) of it could not be read" in dialog.summary_label.text()
    for group in dialog.diff.groups:
        if group.kind != "added":
            assert dialog.check_group(group.type, group.kind, group.status_change)
    qtbot.mouseClick(dialog.rescue_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.last_report is not None and not dialog.last_report.dry_run,
                    timeout=JOB_MS)
    expected = {task_id: row for task_id, row in newest.items() if task_id not in lost}
    expected.update({task_id: in_backup[task_id] for task_id in lost if task_id in in_backup})
    assert task_rows(demo_db) == expected
    assert dialog.last_report.unreadable_in_past == len(lost)
    dialog.close()
    wizard.reject()
