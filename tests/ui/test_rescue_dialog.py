"""The Rescue window, reached from the Backups tab: diff tree, preview, rescue."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from rescue_scenario import make_incident, task_rows

from queue_admin_gui.app.messages import Level
from queue_admin_gui.ui.activity_log import entry_for_job
from queue_admin_gui.ui.backups_tab import BackupsTab

LEFT = Qt.MouseButton.LeftButton
TIMEOUT_MS = 60_000


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    """The incident's backup folder is the window's backup folder."""
    return tmp_path / "backups"


@pytest.fixture
def incident(tmp_path: Path) -> dict:
    return make_incident(tmp_path)


def open_from_tab(qtbot, session, incident):
    tab = BackupsTab(session)
    qtbot.addWidget(tab)
    tab.resize(1100, 700)
    tab.show()
    session.set_database(incident["live"], True)
    qtbot.waitUntil(lambda: not tab.loading, timeout=TIMEOUT_MS)
    assert tab.select_backup(incident["backup"])
    qtbot.waitUntil(tab.rescue_button.isEnabled, timeout=TIMEOUT_MS)
    qtbot.mouseClick(tab.rescue_button, LEFT)
    dialog = tab.rescue_dialog
    assert dialog is not None
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.diff is not None and not dialog.busy, timeout=TIMEOUT_MS)
    return tab, dialog


def tree_rows(dialog) -> dict[str, list[tuple[str, str]]]:
    rows = {}
    for top in range(dialog.tree.topLevelItemCount()):
        item = dialog.tree.topLevelItem(top)
        rows[item.text(0)] = [(item.child(n).text(0), item.child(n).text(1))
                              for n in range(item.childCount())]
    return rows


def test_the_tree_shows_the_damage_and_a_rescue_puts_back_only_the_ticked_groups(
        qtbot, session, presenter, incident) -> None:
    live, before = incident["live"], incident["before"]
    _tab, dialog = open_from_tab(qtbot, session, incident)
    rows = tree_rows(dialog)
    assert ("changed: queued -> failed", "49") in rows["alpha"]
    assert ("removed: queued -> -", "20") in rows["beta"]
    assert ("added: - -> queued", "15") in rows["gamma"]
    assert dialog.tree.topLevelItem(0).text(1) == "50 changed"
    assert not dialog.preview_button.isEnabled() and not dialog.rescue_button.isEnabled()

    assert dialog.check_group("alpha", "changed", "queued -> failed")
    assert dialog.check_group("alpha", "changed", "queued -> leased")  # held: will be skipped
    assert dialog.check_group("beta", "removed", "queued -> -")
    assert not dialog.check_group("gamma", "added", "- -> queued")
    assert "Ticked: 20 removed and 50 changed" in dialog.summary_label.text()
    pre = task_rows(live)

    qtbot.mouseClick(dialog.preview_button, LEFT)
    qtbot.waitUntil(lambda: dialog.last_report is not None and not dialog.busy,
                    timeout=TIMEOUT_MS)
    assert dialog.last_report.dry_run and dialog.last_report.put_back == 69
    assert "would put back 69 task(s)" in dialog.report_box.toPlainText()
    assert task_rows(live) == pre

    qtbot.mouseClick(dialog.rescue_button, LEFT)
    qtbot.waitUntil(lambda: not dialog.last_report.dry_run, timeout=TIMEOUT_MS)
    report = dialog.last_report
    assert report.put_back == 69
    assert [(skip.task_id, skip.reason) for skip in report.skipped] == \
        [(incident["leased"], "held_by_worker")]
    assert f"Skipped task {incident['leased']}" in dialog.report_box.toPlainText()
    assert any("put back 69 task(s)" in text for text in presenter.texts(Level.INFO))
    entry = entry_for_job(dialog.rescue_job, live)  # what the activity log records
    assert entry.result == "skipped 1 of 70"
    assert "put back 69 task(s)" in entry.message and str(report.undo_file) in entry.message
    after = task_rows(live)
    damaged = [task_id for task_id, row in before.items()
               if row[1] in ("alpha", "beta") and task_id != incident["leased"]]
    assert all(after[task_id] == before[task_id] for task_id in damaged)
    assert after[incident["leased"]] == pre[incident["leased"]]
    # the window compares again: the rescued groups are gone, the rest is still there
    qtbot.waitUntil(lambda: not dialog.busy and dialog.diff is not None
                    and dialog.diff.removed == 0, timeout=TIMEOUT_MS)
    rows = tree_rows(dialog)
    assert "beta" not in rows
    assert rows["alpha"] == [("changed: queued -> leased", "1")]
    assert report.undo_file is not None and report.undo_file.is_file()


def test_nothing_changes_when_the_rescue_is_not_confirmed(qtbot, session, presenter,
                                                          incident) -> None:
    presenter.answer = False
    _tab, dialog = open_from_tab(qtbot, session, incident)
    pre = task_rows(incident["live"])
    assert dialog.check_group("beta", "removed", "queued -> -")
    qtbot.mouseClick(dialog.rescue_button, LEFT)
    assert not dialog.busy and dialog.last_report is None
    assert task_rows(incident["live"]) == pre


def test_ticking_a_type_never_ticks_the_tasks_added_since(qtbot, session, incident) -> None:
    _tab, dialog = open_from_tab(qtbot, session, incident)
    gamma = next(dialog.tree.topLevelItem(n) for n in range(dialog.tree.topLevelItemCount())
                 if dialog.tree.topLevelItem(n).text(0) == "gamma")
    gamma.setCheckState(0, Qt.CheckState.Checked)
    groups = dialog.checked_groups()
    assert [(group.kind, group.status_change, group.count) for group in groups] == \
        [("changed", "queued -> completed", 30)]
    added = set(dialog.diff.ids_of("added"))
    assert len(added) == 15
    assert not added & set(dialog.selection().ids)
