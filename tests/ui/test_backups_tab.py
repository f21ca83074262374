from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer

from queue_admin_gui.app.messages import Level
from queue_admin_gui.core.backups.manifest import manifest_path_for
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.core.settings.folders import config_file_path
from queue_admin_gui.ui.backup_rows import describe_task_counts
from queue_admin_gui.ui.backups_tab import BackupsTab

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def tab(qtbot, session, demo_db):
    tab = BackupsTab(session)
    qtbot.addWidget(tab)
    tab.resize(1100, 700)
    tab.show()
    session.set_database(demo_db, True)
    qtbot.waitUntil(lambda: not tab.loading, timeout=30_000)
    return tab


def backup_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("queue_backup_*.db")) if folder.exists() else []


def click_backup(qtbot, tab, name: str = ""):
    tab.name_edit.setText(name)
    with qtbot.waitSignal(tab.session.backup_done, timeout=60_000) as blocker:
        qtbot.mouseClick(tab.backup_button, LEFT)
    qtbot.waitUntil(lambda: any(i.path == blocker.args[0].path for i in tab.model.records),
                    timeout=30_000)
    return blocker.args[0]


def select(qtbot, tab, path: Path) -> None:
    assert tab.select_backup(path)
    qtbot.waitUntil(lambda: tab.verify_button.isEnabled(), timeout=10_000)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_back_up_now_writes_file_manifest_and_lists_it(qtbot, tab, session, presenter,
                                                       backup_dir):
    assert tab.folder_label.text() == str(backup_dir)
    assert not tab.verify_button.isEnabled()
    assert tab.verify_button.toolTip() == "Select a backup in the table first."
    result = click_backup(qtbot, tab, "before-upgrade")

    assert result.path.parent == backup_dir
    assert result.path.name.startswith("queue_backup_before-upgrade_")
    manifest = json.loads(manifest_path_for(result.path).read_text(encoding="utf-8"))
    assert manifest["sha256"] == digest(result.path)
    assert sum(manifest["task_counts"].values()) == 400
    row = [i.path for i in tab.model.records].index(result.path)
    cells = [tab.model.index(row, c).data() for c in range(tab.model.columnCount())]
    assert cells[0] == "before-upgrade"
    assert cells[3].startswith("400 tasks")
    assert cells[4].startswith("\u2714 OK")
    assert "Backup saved" in tab.result_label.text()
    assert any("Backup saved" in text for text in presenter.texts(Level.INFO))
    assert tab.name_edit.text() == ""


def test_a_name_windows_cannot_hold_is_refused_and_nothing_is_written(qtbot, tab, presenter,
                                                                      backup_dir):
    tab.name_edit.setText("CON")
    qtbot.mouseClick(tab.backup_button, LEFT)
    qtbot.waitUntil(lambda: bool(presenter.texts(Level.ERROR)), timeout=30_000)
    assert "reserves for devices" in presenter.texts(Level.ERROR)[0]
    assert backup_files(backup_dir) == []
    assert not list(backup_dir.glob("*.partial"))


def test_verify_good_and_corrupt_backup(qtbot, tab, presenter):
    good = click_backup(qtbot, tab, "good").path
    bad = click_backup(qtbot, tab, "bad").path
    with open(bad, "r+b") as handle:
        handle.seek(5 * 4096)
        handle.write(b"\xff" * 4096)
    bad_digest, good_digest = digest(bad), digest(good)
    tab.verifications.clear()

    select(qtbot, tab, good)
    with qtbot.waitSignal(tab.session.runner.job_finished, timeout=60_000):
        qtbot.mouseClick(tab.verify_button, LEFT)
    assert "is intact" in tab.result_label.text()
    assert tab.verifications[good].ok

    select(qtbot, tab, bad)
    with qtbot.waitSignal(tab.session.runner.job_finished, timeout=60_000):
        qtbot.mouseClick(tab.verify_button, LEFT)
    errors = presenter.texts(Level.ERROR)
    assert len(errors) == 1 and "failed verification" in errors[0]
    assert errors[0].count("use another backup") == 1
    row = [i.path for i in tab.model.records].index(bad)
    assert tab.model.index(row, 4).data().startswith("\u2716 Damaged")
    assert digest(bad) == bad_digest and digest(good) == good_digest
    assert bad.exists() and manifest_path_for(bad).exists()


def test_delete_asks_and_respects_the_answer(qtbot, tab, presenter, backup_dir):
    path = click_backup(qtbot, tab, "doomed").path
    select(qtbot, tab, path)
    presenter.answer = False
    qtbot.mouseClick(tab.delete_button, LEFT)
    assert presenter.questions[-1].destructive
    assert path.name in presenter.questions[-1].text
    assert path.exists() and manifest_path_for(path).exists()
    assert tab.session.runner.active_jobs == []

    presenter.answer = True
    with qtbot.waitSignal(tab.session.runner.job_finished, timeout=30_000):
        qtbot.mouseClick(tab.delete_button, LEFT)
    assert not path.exists() and not manifest_path_for(path).exists()
    qtbot.waitUntil(lambda: tab.model.records == [], timeout=30_000)
    assert len(presenter.questions) == 2


def test_backing_up_and_deleting_each_announce_the_backup_list_once(qtbot, tab, session):
    topics: list[str] = []
    session.changed.connect(topics.append)
    path = click_backup(qtbot, tab, "announced").path
    assert topics == ["backups"]

    select(qtbot, tab, path)
    with qtbot.waitSignal(session.runner.job_finished, timeout=30_000):
        qtbot.mouseClick(tab.delete_button, LEFT)
    assert topics == ["backups", "backups"]


def test_keep_newest_prunes_the_older_backups(qtbot, tab, presenter, backup_dir):
    made = [click_backup(qtbot, tab, f"b{n}").path for n in range(3)]
    tab.keep_spin.setValue(1)
    with qtbot.waitSignal(tab.session.runner.job_finished, timeout=30_000):
        qtbot.mouseClick(tab.prune_button, LEFT)
    assert "Delete 2 backups" in presenter.questions[-1].text
    assert backup_files(backup_dir) == [made[-1]]
    qtbot.waitUntil(lambda: [i.path for i in tab.model.records] == [made[-1]], timeout=30_000)

    qtbot.mouseClick(tab.prune_button, LEFT)
    assert "Nothing to prune" in presenter.texts(Level.INFO)[-1]
    assert backup_files(backup_dir) == [made[-1]]


def test_change_folder_saves_the_setting_and_backs_up_there(qtbot, tab, session, tmp_path):
    new_folder = tmp_path / "other backups"
    tab.choose_folder = lambda parent, start: str(new_folder)
    qtbot.mouseClick(tab.change_folder_button, LEFT)
    assert tab.folder_label.text() == str(new_folder)
    assert session.backup_dir == new_folder
    assert MaintenanceConfig.load(config_file_path()).backup_dir == new_folder
    result = click_backup(qtbot, tab)
    assert result.path.parent == new_folder

    opened = []
    tab.show_folder = opened.append
    qtbot.mouseClick(tab.open_folder_button, LEFT)
    assert opened == [new_folder]


def test_backup_goes_on_while_a_worker_holds_a_write_transaction(qtbot, tab, demo_db):
    writer = sqlite3.connect(demo_db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO task_queue (type, payload) VALUES ('late', '{}')")
    try:
        result = click_backup(qtbot, tab, "under-load")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    copy = sqlite3.connect(result.path)
    try:
        assert copy.execute("SELECT count(*) FROM task_queue WHERE type='late'").fetchone() == (0,)
    finally:
        copy.close()


@pytest.fixture
def rollback_db(demo_db):
    """The demo queue switched to rollback-journal mode, where a writer can lock readers out."""
    connection = sqlite3.connect(demo_db)
    connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    return demo_db


@pytest.mark.usefixtures("short_lock_wait")
def test_locked_database_the_user_is_told_and_nothing_changes(qtbot, session, rollback_db,
                                                             presenter, backup_dir):
    tab = BackupsTab(session)
    qtbot.addWidget(tab)
    session.set_database(rollback_db, True)
    qtbot.waitUntil(lambda: not tab.loading, timeout=30_000)
    before = digest(rollback_db)
    locker = sqlite3.connect(rollback_db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with qtbot.waitSignal(session.runner.job_finished, timeout=60_000):
            qtbot.mouseClick(tab.backup_button, LEFT)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    errors = presenter.texts(Level.ERROR)
    assert len(errors) == 1 and "locked" in errors[0]
    assert backup_files(backup_dir) == []
    assert not list(backup_dir.glob("*.partial"))
    assert digest(rollback_db) == before


def test_gui_keeps_running_during_a_long_backup_and_writes_wait(qtbot, session, rollback_db,
                                                               backup_dir):
    tab = BackupsTab(session)
    qtbot.addWidget(tab)
    tab.show()
    session.set_database(rollback_db, True)
    qtbot.waitUntil(lambda: not tab.loading, timeout=30_000)
    ticks = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    locker = sqlite3.connect(rollback_db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    released = threading.Event()
    try:
        qtbot.mouseClick(tab.backup_button, LEFT)
        job = session.runner.current_write_job
        assert job is not None and job.title == "Back up"
        qtbot.waitUntil(lambda: tab.progress_panel.isVisible(), timeout=10_000)
        assert not tab.backup_button.isEnabled()
        assert "Another maintenance job is running: Back up" in tab.backup_button.toolTip()
        start = len(ticks)
        qtbot.waitUntil(lambda: len(ticks) >= start + 10, timeout=10_000)
        assert not job.is_finished
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        released.set()
    with qtbot.waitSignal(session.backup_done, timeout=60_000):
        pass
    timer.stop()
    qtbot.waitUntil(lambda: tab.backup_button.isEnabled(), timeout=10_000)
    qtbot.waitUntil(lambda: not tab.progress_panel.isVisible(), timeout=10_000)
    assert len(backup_files(backup_dir)) == 1


def test_describe_task_counts_orders_statuses():
    assert describe_task_counts(None) == "not recorded"
    text = describe_task_counts({"failed": 2, "queued": 1000, "completed": 0, "odd": 1})
    assert text == "1,003 tasks: 1,000 queued, 2 failed, 1 odd"


def test_the_new_backup_is_selected_after_it_is_listed(qtbot, tab):
    first = click_backup(qtbot, tab, "one").path
    assert tab.selected_backup().path == first
    second = click_backup(qtbot, tab, "two").path
    qtbot.waitUntil(lambda: tab.selected_backup() is not None
                    and tab.selected_backup().path == second, timeout=30_000)


def test_restore_opens_the_wizard_on_the_selected_backup(qtbot, tab):
    path = click_backup(qtbot, tab, "restore-me").path
    select(qtbot, tab, path)
    qtbot.mouseClick(tab.restore_button, LEFT)
    wizard = tab.restore_wizard
    assert wizard is not None and wizard.isVisible()
    assert wizard.state.backup_path == path
    qtbot.waitUntil(lambda: not wizard.busy, timeout=30_000)
    wizard.reject()


def test_verified_column_tells_checked_when_made_from_checked_now(tmp_path):
    from datetime import datetime, timezone

    from queue_admin_gui.core.backups.manifest import BackupInfo
    from queue_admin_gui.ui.backup_rows import Verification, verification_text

    made = datetime(2026, 11, 29, 2, 0, tzinfo=timezone.utc)
    path = tmp_path / "queue_backup_nightly_20261129_020000.db"
    older = BackupInfo(path, 4096, made)
    assert verification_text(older, None) == "No manifest (older backup)"
    with_manifest = dataclasses.replace(older, manifest=object())
    assert verification_text(with_manifest, None).startswith("\u2714 Checked when made")
    checked = Verification(ok=False, at=made, problem="checksum mismatch")
    assert verification_text(with_manifest, checked) == "\u2716 Damaged: checksum mismatch"


def test_a_backup_with_an_unreadable_manifest_is_listed_as_such_and_never_pruned(
        qtbot, tab, presenter, backup_dir):
    made = [click_backup(qtbot, tab, f"m{n}").path for n in range(3)]
    manifest_path_for(made[1]).write_bytes(b"[" * 100_000 + b"]" * 100_000)
    tab.refresh()
    qtbot.waitUntil(lambda: not tab.loading, timeout=30_000)
    by_path = {info.path: row for row, info in enumerate(tab.model.records)}
    assert set(by_path) == set(made)
    verified = next(column for column in range(tab.model.columnCount())
                    if tab.model.headerData(column, Qt.Orientation.Horizontal) == "Verified")
    cell = tab.model.data(tab.model.index(by_path[made[1]], verified))
    assert cell.startswith("\u2716 Manifest unreadable: it nests 100000 levels deep")
    good = tab.model.data(tab.model.index(by_path[made[2]], verified))
    assert good.startswith("\u2714")

    tab.keep_spin.setValue(1)
    with qtbot.waitSignal(tab.session.runner.job_finished, timeout=30_000):
        qtbot.mouseClick(tab.prune_button, LEFT)
    assert "Delete 1 backups" in presenter.questions[-1].text
    assert backup_files(backup_dir) == sorted([made[1], made[2]])


def test_a_file_rebuilt_to_an_instant_is_listed_as_such():
    from datetime import datetime

    from queue_admin_gui.core.backups.manifest import backup_file_name
    from queue_admin_gui.ui.backup_rows import REBUILT_NAME, backup_label

    when = datetime(2026, 1, 2, 3, 4, 5)  # noqa: DTZ001 - backup names use local time
    assert backup_label(Path(backup_file_name("at", when))) == REBUILT_NAME
    assert backup_label(Path(backup_file_name("nightly", when))) == "nightly"
