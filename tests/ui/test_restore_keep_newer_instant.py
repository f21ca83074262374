"""The wizard's two ways to keep newer work, from an instant of a real archive."""

# The point-in-time tests' fixtures (session, backups, archiver) are used as parameters.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path

import pytest
from test_restore_point_picker import (  # noqa: F401 - fixtures
    LEFT,
    archived,
    archiver,
    backups,
    click_next,
    commit,
    later_than,
    open_wizard,
    rows,
    session,
    wait_for,
)

from queue_admin_gui.app.session import Session
from queue_admin_gui.core.archive.controller import ArchiveController
from queue_admin_gui.ui.restore_wizard import PAGE_CHECK, PAGE_DONE, PAGE_PREPARE, PAGE_RESTORE

# Nothing here tells workers at work: the gate watches for commits a moment, not a second.
# Slow: the instants are real time, a few tenths of a second apart, on a running archiver.
pytestmark = [pytest.mark.usefixtures("short_commit_watch"), pytest.mark.slow]


def checked_at_an_instant(qtbot, session: Session, queue_db: Path,
                          archiver: ArchiveController):
    """Two commits, an instant, a third commit; the wizard on the check page for the instant."""
    wait_for(qtbot, lambda: archiver.status().generation is not None
             and not archiver.status().snapshot_pending)
    commit(queue_db, "first", 3)
    archived(qtbot, archiver, 1)
    commit(queue_db, "second", 2)
    second_seen = archived(qtbot, archiver, 2)
    expected = rows(queue_db)
    instant = later_than(qtbot, second_seen, 0.3)
    later_than(qtbot, instant, 0.3)
    commit(queue_db, "third", 4)
    third_seen = archived(qtbot, archiver, 3)
    later_than(qtbot, third_seen, 1.2)
    wizard = open_wizard(qtbot, session)
    picker = wizard.choose_page.point_picker
    picker.set_instant(instant)
    qtbot.mouseClick(picker.rebuild_button, LEFT)
    wait_for(qtbot, lambda: wizard.currentId() == PAGE_CHECK)
    wait_for(qtbot, lambda: wizard.check_page.isComplete())
    return wizard, expected, picker.instant_edit.text()


def test_damaged_tasks_only_opens_the_rescue_on_the_chosen_instant(
        qtbot, session: Session, queue_db: Path, archiver: ArchiveController) -> None:
    wizard, expected, instant_text = checked_at_an_instant(qtbot, session, queue_db, archiver)
    rebuilt = wizard.state.backup_path
    choices = wizard.check_page.choices
    qtbot.mouseClick(choices.rescue_button, LEFT)
    dialog = choices.rescue_dialog
    assert dialog is not None
    qtbot.addWidget(dialog)
    assert dialog.backup == rebuilt
    assert dialog.windowTitle() == f"Rescue tasks from the queue at {instant_text}"
    wait_for(qtbot, lambda: dialog.diff is not None and not dialog.busy)
    # Since the instant: 4 tasks added and one queued task completed.
    assert (dialog.diff.removed, dialog.diff.changed, dialog.diff.added) == (0, 1, 4)
    dialog.close()


def test_keep_newer_tasks_from_an_instant(
        qtbot, session: Session, queue_db: Path, archiver: ArchiveController) -> None:
    wizard, expected, _ = checked_at_an_instant(qtbot, session, queue_db, archiver)
    page = wizard.check_page
    assert page.consequences_label.text().startswith("4 tasks created after this backup will "
                                                     "be lost")
    newer = [row for row in rows(queue_db) if row[1] == "third"]
    page.choices.keep_box.click()
    assert wizard.state.keep_newer_tasks
    archiver.stop()  # the restore then holds the live database alone
    click_next(qtbot, wizard, PAGE_PREPARE)
    click_next(qtbot, wizard, PAGE_RESTORE)
    wait_for(qtbot, lambda: wizard.currentId() == PAGE_DONE and not wizard.busy)
    assert rows(queue_db) == expected + newer
