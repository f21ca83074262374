"""The restore wizard's two ways to keep newer work, driven through its real widgets.

"Keep the tasks created after this point" on the consequences page carries the tasks the
live queue got after the backup into the restored queue; "Put back the damaged tasks only"
opens the Rescue window on the very backup the wizard checked.
"""

# The wizard tests' fixtures (session, live, backup) are imported and used as parameters.
# ruff: noqa: F811

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard
from test_restore_wizard import (  # noqa: F401 - fixtures
    TIMEOUT_MS,
    add_tasks,
    backup,
    click_box,
    click_next,
    live,
    open_wizard,
    rows,
    run_sql,
    session,
)

from queue_admin_gui.app.session import Session
from queue_admin_gui.ui.restore_wizard import PAGE_CHECK, PAGE_DONE, PAGE_PREPARE, PAGE_RESTORE

# Nothing here tells workers at work: the gate watches for commits a moment, not a second.
pytestmark = pytest.mark.usefixtures("short_commit_watch")

LEFT = Qt.MouseButton.LeftButton


def logs(path: Path) -> list[tuple[int, int, str]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(
            "SELECT log_id, task_id, message FROM task_logs ORDER BY log_id").fetchall()
    finally:
        connection.close()


def full_rows(path: Path, where: str) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(f"SELECT * FROM task_queue WHERE {where} "  # noqa: S608
                                  "ORDER BY id").fetchall()
    finally:
        connection.close()


def test_ticking_keep_newer_tasks_carries_them_into_the_restored_queue(
        qtbot, session: Session, live: Path, backup: Path) -> None:
    backed_up = rows(backup)
    highest = max(task_id for task_id, _ in backed_up)
    run_sql(live, "UPDATE task_queue SET status = 'failed' WHERE id <= 10")  # the bad deploy
    add_tasks(live, 6)
    add_tasks(live, 1, "leased", "worker-9")  # in flight now, not in the backup
    run_sql(live, f"UPDATE task_queue SET status = 'completed' WHERE id = {highest + 2}")
    run_sql(live, "INSERT INTO task_logs(task_id, level, message) VALUES "
                  f"({highest + 1}, 'INFO', 'started'), ({highest + 2}, 'INFO', 'done')")
    newer = full_rows(live, f"id > {highest}")
    newer_statuses = [row for row in rows(live) if row[0] > highest]
    newer_logs = logs(live)
    wizard = open_wizard(qtbot, session)
    click_next(qtbot, wizard, PAGE_CHECK)
    page = wizard.check_page
    qtbot.waitUntil(page.isComplete, timeout=TIMEOUT_MS)
    assert "7 tasks created after this backup will be lost" in page.consequences_label.text()
    box = page.choices.keep_box
    assert box.isVisible() and not box.isChecked()
    assert box.text() == "&Keep the 7 tasks created after this point"

    click_box(qtbot, box)

    assert box.isChecked() and wizard.state.keep_newer_tasks
    text = page.consequences_label.text()
    assert f"7 tasks created after this backup (ids above {highest}) will be kept" in text
    assert "will be lost" not in text.split("\n")[0]
    click_next(qtbot, wizard, PAGE_PREPARE)
    click_next(qtbot, wizard, PAGE_RESTORE)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE and not wizard.busy,
                    timeout=TIMEOUT_MS)

    assert rows(live) == backed_up + newer_statuses
    assert [status for _, status in newer_statuses].count("completed") == 1
    assert full_rows(live, f"id > {highest}") == newer  # ids and whole rows
    assert logs(live) == newer_logs
    assert full_rows(live, f"id <= {highest}") == full_rows(backup, "1")
    carried = wizard.done_page.carried_label
    assert carried.isVisible()
    assert carried.text().startswith(f"7 tasks created after the backup (ids above {highest}) "
                                     "were kept with their ids and 2 log rows")
    # Only the backup's in-flight tasks are offered for requeueing, not the kept one.
    done = wizard.done_page
    assert [done.tasks.item(n).text() for n in range(done.tasks.count())] == [
        f"Task {task_id} (render, leased by worker-7)" for task_id in (26, 27, 28)]
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.FinishButton), LEFT)


def test_going_back_to_another_backup_clears_the_choice(
        qtbot, session: Session, live: Path, backup: Path) -> None:
    add_tasks(live, 3)
    wizard = open_wizard(qtbot, session)
    click_next(qtbot, wizard, PAGE_CHECK)
    qtbot.waitUntil(wizard.check_page.isComplete, timeout=TIMEOUT_MS)
    click_box(qtbot, wizard.check_page.choices.keep_box)
    assert wizard.state.keep_newer_tasks
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.BackButton), LEFT)
    click_next(qtbot, wizard, PAGE_CHECK)
    qtbot.waitUntil(wizard.check_page.isComplete, timeout=TIMEOUT_MS)
    assert not wizard.check_page.choices.keep_box.isChecked()
    assert not wizard.state.keep_newer_tasks


def test_no_newer_tasks_no_box(qtbot, session: Session, live: Path, backup: Path) -> None:
    run_sql(live, "UPDATE task_queue SET status = 'completed' WHERE id <= 3")
    wizard = open_wizard(qtbot, session)
    click_next(qtbot, wizard, PAGE_CHECK)
    qtbot.waitUntil(wizard.check_page.isComplete, timeout=TIMEOUT_MS)
    choices = wizard.check_page.choices
    assert choices.isVisible() and not choices.keep_box.isVisible()
    assert choices.rescue_button.isVisible() and choices.rescue_button.isEnabled()


def test_damaged_tasks_only_opens_the_rescue_on_the_wizards_backup(
        qtbot, session: Session, live: Path, backup: Path) -> None:
    backed_up = dict(rows(backup))
    run_sql(live, "UPDATE task_queue SET status = 'failed' WHERE id <= 4")  # the damage
    run_sql(live, "DELETE FROM task_queue WHERE id IN (5, 6)")
    add_tasks(live, 5)
    added = [task_id for task_id, _ in rows(live) if task_id not in backed_up]
    wizard = open_wizard(qtbot, session)
    click_next(qtbot, wizard, PAGE_CHECK)
    page = wizard.check_page
    qtbot.waitUntil(page.isComplete, timeout=TIMEOUT_MS)
    assert "2 tasks deleted after this backup will come back." in page.consequences_label.text()
    button = page.choices.rescue_button
    assert button.isVisible() and button.text() == "Put back the &damaged tasks only..."

    qtbot.mouseClick(button, LEFT)

    dialog = page.choices.rescue_dialog
    assert dialog is not None
    qtbot.addWidget(dialog)
    assert dialog.isVisible() and dialog.backup == backup
    assert dialog.windowTitle() == f"Rescue tasks from {backup.name}"
    qtbot.waitUntil(lambda: dialog.diff is not None and not dialog.busy, timeout=TIMEOUT_MS)
    assert (dialog.diff.removed, dialog.diff.changed, dialog.diff.added) == (2, 4, 5)
    for group in dialog.diff.groups:
        if group.kind != "added":
            assert dialog.check_group(group.type, group.kind, group.status_change)
    qtbot.waitUntil(dialog.rescue_button.isEnabled, timeout=TIMEOUT_MS)
    qtbot.mouseClick(dialog.rescue_button, LEFT)
    qtbot.waitUntil(lambda: dialog.rescue_job is not None and not dialog.busy,
                    timeout=TIMEOUT_MS)
    # The damaged tasks are the backup's again; the tasks created since stay.
    now = dict(rows(live))
    assert {task_id: now[task_id] for task_id in backed_up} == backed_up
    assert sorted(set(now) - set(backed_up)) == added
    dialog.close()
    assert wizard.currentId() == PAGE_CHECK  # the wizard is still there behind it
    # ... and compares again: the backup's tasks are back, only the newer ones differ.
    qtbot.waitUntil(lambda: page.isComplete() and "will come back" not in
                    page.consequences_label.text(), timeout=TIMEOUT_MS)
    assert page.consequences_label.text().startswith(
        "5 tasks created after this backup will be lost; 0 tasks completed")
    assert page.choices.keep_box.text() == "&Keep the 5 tasks created after this point"
