"""The restore wizard driven through its real buttons, on real queue files and real locks."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _tab_fixtures import lock_held, worker_heartbeating
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QWizard

from queue_admin_gui.app.jobs import JobRunner
from queue_admin_gui.app.messages import Level, Messages, RecordingPresenter
from queue_admin_gui.app.session import Session
from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.files.db_files import shm_path, wal_path
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.ui.restore_wizard import (
    PAGE_CHECK,
    PAGE_DONE,
    PAGE_PREPARE,
    PAGE_RESTORE,
    RestoreWizard,
)

TIMEOUT_MS = 60_000



NEXT = QWizard.WizardButton.NextButton

def rows(path: Path) -> list[tuple[int, str]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT id, status FROM task_queue ORDER BY id").fetchall()
    finally:
        connection.close()


def run_sql(path: Path, sql: str) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(sql)
    finally:
        connection.close()


def add_tasks(path: Path, count: int, status: str = "queued", worker: str | None = None) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.executemany(
            "INSERT INTO task_queue (type, payload, status, locked_by) "
            "VALUES ('render', '{}', ?, ?)",
            [(status, worker)] * count)
    finally:
        connection.close()


def corrupt(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(4096)
        handle.write(b"\xa5" * (size - 4096))


@pytest.fixture
def live(queue_db: Path) -> Path:
    """A queue with 20 queued, 5 completed and 3 leased tasks (ids 26-28)."""
    add_tasks(queue_db, 20)
    add_tasks(queue_db, 5, "completed")
    add_tasks(queue_db, 3, "leased", "worker-7")
    return queue_db


@pytest.fixture
def session(live: Path, tmp_path: Path) -> Iterator[Session]:
    runner = JobRunner()
    config = MaintenanceConfig(backup_dir=tmp_path / "backup folder")
    session = Session(runner, Messages(RecordingPresenter()), config, live)
    topics: list[str] = []
    session.changed.connect(topics.append)
    session.topics = topics  # type: ignore[attr-defined]
    yield session
    assert runner.shutdown(TIMEOUT_MS)


@pytest.fixture
def backup(session: Session, live: Path) -> Path:
    return QueueBackup(live, session.backup_dir).create_backup()


@pytest.fixture
def holder(live: Path) -> Iterator[subprocess.Popen[str]]:
    """Another program holding a write transaction (BEGIN IMMEDIATE) on the live database."""
    with lock_held(live, "write") as process:
        yield process


def presenter(session: Session) -> RecordingPresenter:
    recorder = session.messages.presenter
    assert isinstance(recorder, RecordingPresenter)
    return recorder


def open_wizard(qtbot, session: Session) -> RestoreWizard:
    wizard = RestoreWizard(session)
    qtbot.addWidget(wizard)
    wizard.show()
    qtbot.waitUntil(lambda: not wizard.busy and wizard.choose_page.tree.topLevelItemCount() > 0,
                    timeout=TIMEOUT_MS)
    return wizard


def click_next(qtbot, wizard: RestoreWizard, expected_page: int) -> None:
    """Wait until Next is usable, click it, and wait for the page it leads to."""
    button = wizard.button(NEXT)
    qtbot.waitUntil(lambda: button.isVisible() and button.isEnabled(), timeout=TIMEOUT_MS)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: wizard.currentId() == expected_page, timeout=TIMEOUT_MS)


def click_box(qtbot, box) -> None:
    """Click a check box on its indicator, where a user clicks."""
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))


def accept_programs_holding_the_file(qtbot, wizard: RestoreWizard) -> None:
    """On the prepare page, confirm that the program seen holding the file may stay."""
    page = wizard.prepare_page
    qtbot.waitUntil(lambda: wizard.state.preflight is not None and page.workers_check.isVisible(),
                    timeout=TIMEOUT_MS)
    click_box(qtbot, page.workers_check)
    assert page.workers_check.isChecked()


def restore_through(qtbot, wizard: RestoreWizard) -> None:
    """From the first page to the Done page, clicking Next on every page."""
    click_next(qtbot, wizard, PAGE_CHECK)
    click_next(qtbot, wizard, PAGE_PREPARE)
    click_next(qtbot, wizard, PAGE_RESTORE)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not wizard.busy, timeout=TIMEOUT_MS)


@pytest.mark.slow
def test_happy_path_puts_the_backup_back_and_keeps_a_safety_backup(
        qtbot, session: Session, live: Path, backup: Path) -> None:
    backed_up = rows(backup)
    add_tasks(live, 4)
    run_sql(live, "UPDATE task_queue SET status = 'completed' WHERE id IN (1, 2, 3)")
    before = rows(live)
    wizard = open_wizard(qtbot, session)
    assert wizard.state.backup_path == backup

    restore_through(qtbot, wizard)

    assert rows(live) == backed_up
    highest = max(task_id for task_id, _ in before)
    assert wizard.done_page.counters_label.text().startswith(f"New tasks get ids above {highest},")
    safety = wizard.state.outcome.result.safety_backup
    assert safety is not None and safety.exists()
    assert rows(safety) == before
    assert "passed SQLite's integrity check" in wizard.done_page.integrity_label.text()
    assert str(safety) in wizard.done_page.safety_label.text()
    assert {"database", "backups"} <= set(session.topics)
    assert any(text.startswith("Restored ") for text in presenter(session).texts(Level.INFO))
    finish = wizard.button(QWizard.WizardButton.FinishButton)
    assert not wizard.button(QWizard.WizardButton.BackButton).isEnabled()
    qtbot.mouseClick(finish, Qt.MouseButton.LeftButton)
    assert wizard.result() == QWizard.DialogCode.Accepted


def test_consequences_match_the_real_counts(qtbot, session: Session, live: Path,
                                            backup: Path) -> None:
    add_tasks(live, 412)
    run_sql(live, "UPDATE task_queue SET status = 'completed' WHERE id <= 20 OR id = 26")
    before = rows(live)
    wizard = open_wizard(qtbot, session)
    click_next(qtbot, wizard, PAGE_CHECK)
    qtbot.waitUntil(lambda: wizard.check_page.isComplete(), timeout=TIMEOUT_MS)

    text = wizard.check_page.consequences_label.text()
    assert ("412 tasks created after this backup will be lost; "
            "21 tasks completed after it will run again.") in text
    assert "3 tasks were in flight when the backup was taken" in text
    table = wizard.check_page.table_model
    cells = {texts[0]: texts[1:] for texts in map(table.row_texts, range(table.rowCount()))}
    assert cells["All tasks"] == ["28", f"{28 + 412:,}"]
    assert cells["completed"][1] == "26"
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.CancelButton), Qt.MouseButton.LeftButton)
    assert wizard.result() == QWizard.DialogCode.Rejected
    assert rows(live) == before


def test_a_corrupt_backup_stops_on_the_check_page(qtbot, session: Session, live: Path,
                                                  backup: Path) -> None:
    corrupt(backup)
    wizard = open_wizard(qtbot, session)
    click_next(qtbot, wizard, PAGE_CHECK)
    qtbot.waitUntil(lambda: wizard.state.report is not None and not wizard.busy,
                    timeout=TIMEOUT_MS)

    assert not wizard.button(NEXT).isEnabled()
    verdict = wizard.check_page.verdict_label.text()
    assert verdict.startswith("This backup cannot be restored: ")
    assert "no longer match its manifest" in verdict
    assert wizard.check_page.table_model.rowCount() == 0


@pytest.mark.slow
def test_a_damaged_live_database_is_restored_in_place_with_a_copy_kept(
        qtbot, session: Session, live: Path, backup: Path) -> None:
    corrupt(live)
    damaged = live.read_bytes()
    wizard = open_wizard(qtbot, session)
    click_next(qtbot, wizard, PAGE_CHECK)
    qtbot.waitUntil(lambda: wizard.check_page.isComplete(), timeout=TIMEOUT_MS)
    assert "written into it in one transaction" in wizard.check_page.consequences_label.text()
    click_next(qtbot, wizard, PAGE_PREPARE)
    qtbot.waitUntil(lambda: wizard.state.preflight is not None, timeout=TIMEOUT_MS)
    assert "damaged" in wizard.prepare_page.live_label.text()
    assert "unchecked page copy" in wizard.prepare_page.safety_label.text()
    click_next(qtbot, wizard, PAGE_RESTORE)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE, timeout=TIMEOUT_MS)

    assert rows(live) == rows(backup)
    result = wizard.state.outcome.result
    assert result.moved_aside == [] and result.damaged_copy is not None
    assert result.damaged_copy.read_bytes()[4096:] == damaged[4096:]
    assert str(result.damaged_copy) in wizard.done_page.moved_label.text()


def test_a_live_file_that_cannot_be_opened_is_moved_aside_and_restored(
        qtbot, session: Session, live: Path, backup: Path) -> None:
    for side in (wal_path(live), shm_path(live)):
        side.unlink(missing_ok=True)
    live.write_bytes(b"\xa5" * 20000)
    wizard = open_wizard(qtbot, session)
    click_next(qtbot, wizard, PAGE_CHECK)
    qtbot.waitUntil(lambda: wizard.check_page.isComplete(), timeout=TIMEOUT_MS)
    assert "moved aside" in wizard.check_page.consequences_label.text()
    click_next(qtbot, wizard, PAGE_PREPARE)
    qtbot.waitUntil(lambda: wizard.state.preflight is not None, timeout=TIMEOUT_MS)
    assert "cannot be opened" in wizard.prepare_page.live_label.text()
    assert not wizard.prepare_page.safety_check.isEnabled()
    click_next(qtbot, wizard, PAGE_RESTORE)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE, timeout=TIMEOUT_MS)
    assert rows(live) == rows(backup)
    moved = wizard.state.outcome.result.moved_aside
    assert moved and moved[0].read_bytes() == b"\xa5" * 20000
    assert "moved aside, not deleted" in wizard.done_page.moved_label.text()


def test_a_missing_live_database_is_restored_to_its_path(
        qtbot, session: Session, live: Path, backup: Path) -> None:
    for path in (live, wal_path(live), shm_path(live)):
        path.unlink(missing_ok=True)
    wizard = open_wizard(qtbot, session)
    click_next(qtbot, wizard, PAGE_CHECK)
    qtbot.waitUntil(lambda: wizard.check_page.isComplete(), timeout=TIMEOUT_MS)
    assert "does not exist" in wizard.check_page.consequences_label.text()
    click_next(qtbot, wizard, PAGE_PREPARE)
    qtbot.waitUntil(lambda: wizard.state.preflight is not None, timeout=TIMEOUT_MS)
    assert "does not exist" in wizard.prepare_page.live_label.text()
    click_next(qtbot, wizard, PAGE_RESTORE)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE, timeout=TIMEOUT_MS)

    assert rows(live) == rows(backup)
    assert wizard.state.outcome.result.safety_backup is None
    assert not wizard.done_page.undo_button.isEnabled()


@pytest.mark.slow
def test_a_long_reader_in_wal_mode_does_not_block_the_restore(
        qtbot, session: Session, live: Path, backup: Path) -> None:
    add_tasks(live, 30)
    before = rows(live)
    wizard = open_wizard(qtbot, session)
    with lock_held(live, "read") as reader:
        click_next(qtbot, wizard, PAGE_CHECK)
        click_next(qtbot, wizard, PAGE_PREPARE)
        qtbot.waitUntil(lambda: f"(PID {reader.pid})"
                        in wizard.prepare_page.workers_label.text(), timeout=TIMEOUT_MS)
        accept_programs_holding_the_file(qtbot, wizard)
        click_next(qtbot, wizard, PAGE_RESTORE)
        qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE and not wizard.busy,
                        timeout=TIMEOUT_MS)
        assert rows(live) == rows(backup)
        assert reader.poll() is None  # the reader is still in its transaction
    assert rows(wizard.state.outcome.result.safety_backup) == before
    assert not any("locked" in text for text in presenter(session).texts())


@pytest.mark.slow
def test_a_blocking_writer_gets_a_countdown_then_a_clear_sentence(
        qtbot, session: Session, live: Path, backup: Path, holder) -> None:
    before = rows(live)
    wizard = open_wizard(qtbot, session)
    wizard.state.lock_wait_seconds = 1.5
    click_next(qtbot, wizard, PAGE_CHECK)
    click_next(qtbot, wizard, PAGE_PREPARE)
    qtbot.waitUntil(lambda: wizard.state.preflight is not None, timeout=TIMEOUT_MS)
    assert "another program holds a write lock" in wizard.prepare_page.lock_label.text()
    holders = wizard.prepare_page.holders_label
    qtbot.waitUntil(lambda: f"PID {holder.pid}" in holders.text(), timeout=TIMEOUT_MS)
    assert holders.text().startswith("Programs with the database open:")
    accept_programs_holding_the_file(qtbot, wizard)
    countdown: list[str] = []
    wizard.restore_page.countdown_label.setText = countdown.append  # type: ignore[method-assign]
    click_next(qtbot, wizard, PAGE_RESTORE)
    qtbot.waitUntil(lambda: not wizard.busy, timeout=TIMEOUT_MS)

    assert countdown and "waiting" in countdown[0] and countdown[-1].endswith("0 s for it to "
                                                                              "let go...")
    sentence = wizard.restore_page.result_label.text()
    assert sentence.startswith("Restore not started: another program kept a write lock")
    assert "nothing was changed" in sentence and f"PID {holder.pid}" in sentence
    assert any("Restore not started" in text for text in presenter(session).texts(Level.ERROR))
    assert wizard.currentId() == PAGE_RESTORE
    assert wizard.button(QWizard.WizardButton.BackButton).isVisible()
    assert rows(live) == before
    assert [info.path for info in QueueBackup(live, session.backup_dir).list_backups()] == [backup]


@pytest.mark.slow
def test_cancel_during_the_countdown_changes_nothing(
        qtbot, session: Session, live: Path, backup: Path, holder) -> None:
    before = rows(live)
    wizard = open_wizard(qtbot, session)
    wizard.state.lock_wait_seconds = 120
    click_next(qtbot, wizard, PAGE_CHECK)
    click_next(qtbot, wizard, PAGE_PREPARE)
    accept_programs_holding_the_file(qtbot, wizard)
    click_next(qtbot, wizard, PAGE_RESTORE)
    cancel = wizard.button(QWizard.WizardButton.CancelButton)
    qtbot.waitUntil(lambda: wizard.restore_page.countdown_label.isVisible(), timeout=TIMEOUT_MS)
    assert not wizard.button(QWizard.WizardButton.BackButton).isVisible()
    qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not wizard.busy, timeout=TIMEOUT_MS)

    assert wizard.isVisible()
    assert wizard.restore_page.result_label.text() == ("Restore cancelled; the live database "
                                                       "was not changed.")
    assert rows(live) == before


@pytest.mark.slow
def test_in_flight_tasks_are_requeued_in_one_click(qtbot, session: Session, live: Path,
                                                   backup: Path) -> None:
    wizard = open_wizard(qtbot, session)
    restore_through(qtbot, wizard)
    page = wizard.done_page
    assert page.tasks.count() == 3
    assert page.tasks.item(0).text() == "Task 26 (render, leased by worker-7)"

    qtbot.mouseClick(page.requeue_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not wizard.busy, timeout=TIMEOUT_MS)

    assert dict(rows(live))[26] == dict(rows(live))[28] == "queued"
    assert page.in_flight_label.text() == "Requeued 3 tasks."
    assert "leases" in session.topics


@pytest.mark.slow
def test_undo_restores_the_state_before_the_restore(qtbot, session: Session, live: Path,
                                                    backup: Path) -> None:
    add_tasks(live, 7)
    before = rows(live)
    wizard = open_wizard(qtbot, session)
    restore_through(qtbot, wizard)
    assert rows(live) == rows(backup)
    safety = wizard.state.outcome.result.safety_backup

    qtbot.mouseClick(wizard.done_page.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_CHECK, timeout=TIMEOUT_MS)
    assert wizard.state.backup_path == safety
    qtbot.waitUntil(lambda: wizard.check_page.isComplete(), timeout=TIMEOUT_MS)
    assert "7 tasks completed" not in wizard.check_page.consequences_label.text()
    click_next(qtbot, wizard, PAGE_PREPARE)
    qtbot.waitUntil(lambda: wizard.state.preflight is not None, timeout=TIMEOUT_MS)
    assert wizard.prepare_page.safety_check.isChecked()
    click_next(qtbot, wizard, PAGE_RESTORE)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE and not wizard.busy,
                    timeout=TIMEOUT_MS)

    assert rows(live) == before
    second_safety = wizard.state.outcome.result.safety_backup
    assert second_safety is not None and second_safety != safety
    assert rows(second_safety) == rows(backup)


@pytest.mark.slow
def test_turning_off_the_safety_backup_asks_and_a_refusal_keeps_it(
        qtbot, session: Session, live: Path, backup: Path) -> None:
    wizard = open_wizard(qtbot, session)
    click_next(qtbot, wizard, PAGE_CHECK)
    click_next(qtbot, wizard, PAGE_PREPARE)
    recorder = presenter(session)
    recorder.answer = False
    wizard.prepare_page.safety_check.setChecked(False)
    assert recorder.questions[-1].destructive
    assert wizard.prepare_page.safety_check.isChecked()
    assert wizard.state.safety_backup
    recorder.answer = True
    wizard.prepare_page.safety_check.setChecked(False)
    assert not wizard.state.safety_backup
    qtbot.waitUntil(lambda: not wizard.busy, timeout=TIMEOUT_MS)


@pytest.mark.slow
def test_every_step_works_from_the_keyboard(qtbot, session: Session, live: Path,
                                            backup: Path) -> None:
    wizard = open_wizard(qtbot, session)
    wizard.activateWindow()
    qtbot.waitUntil(lambda: wizard.choose_page.isComplete(), timeout=TIMEOUT_MS)
    qtbot.keyClick(wizard.focusWidget() or wizard, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_CHECK, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: wizard.check_page.isComplete(), timeout=TIMEOUT_MS)
    qtbot.keyClick(wizard.focusWidget() or wizard, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_PREPARE, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: wizard.prepare_page.isComplete(), timeout=TIMEOUT_MS)

    # Enter does not start the restore: that takes the Restore button's own key (Alt+R).
    qtbot.keyClick(wizard.focusWidget() or wizard, Qt.Key.Key_Return)
    assert wizard.currentId() == PAGE_PREPARE
    assert wizard.button(NEXT).text() == "&Restore"
    qtbot.keyClick(wizard.focusWidget() or wizard, Qt.Key.Key_R, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE and not wizard.busy,
                    timeout=TIMEOUT_MS)
    assert rows(live) == rows(backup)

    qtbot.keyClick(wizard.focusWidget() or wizard, Qt.Key.Key_R, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: not wizard.busy and wizard.done_page.requeue_button.isHidden(),
                    timeout=TIMEOUT_MS)
    assert dict(rows(live))[27] == "queued"
    qtbot.keyClick(wizard.focusWidget() or wizard, Qt.Key.Key_Return)
    assert wizard.result() == QWizard.DialogCode.Accepted


@pytest.mark.slow
def test_running_workers_need_a_separate_confirmation_naming_them(
        qtbot, session: Session, live: Path, backup: Path, tmp_path: Path) -> None:
    add_tasks(live, 6)
    before = rows(live)
    with worker_heartbeating(live, "worker-7", tmp_path / "stop"):
        wizard = open_wizard(qtbot, session)
        click_next(qtbot, wizard, PAGE_CHECK)
        click_next(qtbot, wizard, PAGE_PREPARE)
        page = wizard.prepare_page
        qtbot.waitUntil(lambda: not wizard.busy, timeout=TIMEOUT_MS)
        assert "worker-7" in page.workers_label.text()
        assert page.workers_check.isVisible() and not page.workers_check.isChecked()
        assert not wizard.button(NEXT).isEnabled()
        assert rows(live) == before

        recorder = presenter(session)
        recorder.answer = False
        click_box(qtbot, page.workers_check)
        assert "worker-7" in recorder.questions[-1].text
        assert not page.workers_check.isChecked()
        assert not wizard.button(NEXT).isEnabled()

        recorder.answer = True
        click_box(qtbot, page.workers_check)
        assert page.workers_check.isChecked()
        click_next(qtbot, wizard, PAGE_RESTORE)
        qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE, timeout=TIMEOUT_MS)
        qtbot.waitUntil(lambda: not wizard.busy, timeout=TIMEOUT_MS)
        assert rows(live) == rows(backup)
        # worker-7 is alive: its three in-flight tasks are not offered for requeueing and
        # nothing claims its worker is gone.
        done = wizard.done_page
        assert done.tasks.count() == 0 and not done.requeue_button.isVisible()
        assert "gone" not in done.in_flight_label.text()
        assert "worker-7" in done.in_flight_label.text()


@pytest.mark.slow
def test_a_worker_starting_after_the_prepare_page_refuses_the_restore(
        qtbot, session: Session, live: Path, backup: Path, tmp_path: Path) -> None:
    add_tasks(live, 6)
    before = rows(live)
    wizard = open_wizard(qtbot, session)
    click_next(qtbot, wizard, PAGE_CHECK)
    click_next(qtbot, wizard, PAGE_PREPARE)
    qtbot.waitUntil(lambda: not wizard.busy, timeout=TIMEOUT_MS)
    assert not wizard.prepare_page.workers_check.isVisible()
    with worker_heartbeating(live, "worker-late", tmp_path / "stop"):
        click_next(qtbot, wizard, PAGE_RESTORE)
        qtbot.waitUntil(lambda: not wizard.busy, timeout=TIMEOUT_MS)
    assert wizard.currentId() == PAGE_RESTORE
    text = wizard.restore_page.result_label.text()
    assert "worker-late" in text and "refused" in text
    assert rows(live)[: len(before)] == before


def record_operations(session: Session, monkeypatch) -> list:
    """The operations the wizard runs through the session, in order."""
    operations: list = []
    run_operation = session.run_operation

    def recording(operation, **kwargs):
        operations.append(operation)
        return run_operation(operation, **kwargs)

    monkeypatch.setattr(session, "run_operation", recording)
    return operations


@pytest.mark.slow
def test_a_restore_and_a_requeue_announce_their_topics_through_operations(
        qtbot, session: Session, live: Path, backup: Path, monkeypatch) -> None:
    from queue_admin_gui.ui.backups_tab import BackupsTab

    backups_tab = BackupsTab(session)
    qtbot.addWidget(backups_tab)
    backups_tab.refresh()
    qtbot.waitUntil(lambda: backups_tab.select_backup(backup), timeout=TIMEOUT_MS)
    refreshed: list[bool] = []
    monkeypatch.setattr(backups_tab, "refresh", lambda: refreshed.append(True))
    operations = record_operations(session, monkeypatch)
    wizard = open_wizard(qtbot, session)
    session.topics.clear()

    restore_through(qtbot, wizard)

    assert [operation.title for operation in operations] == [
        f"Restore {live.name} from {backup.name}"]
    assert operations[0].writes
    assert operations[0].changes == {"backups", "database"}
    assert session.topics == ["backups", "database"]
    assert refreshed  # the Backups tab read its folder again, told by the session

    session.topics.clear()
    qtbot.mouseClick(wizard.done_page.requeue_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not wizard.busy, timeout=TIMEOUT_MS)
    assert operations[1].changes == {"leases", "database"}
    assert session.topics == ["database", "leases"]


@pytest.mark.slow
def test_a_restore_that_fails_announces_only_the_backups(
        qtbot, session: Session, live: Path, backup: Path, holder, monkeypatch) -> None:
    operations = record_operations(session, monkeypatch)
    wizard = open_wizard(qtbot, session)
    wizard.state.lock_wait_seconds = 0.5
    click_next(qtbot, wizard, PAGE_CHECK)
    click_next(qtbot, wizard, PAGE_PREPARE)
    accept_programs_holding_the_file(qtbot, wizard)
    session.topics.clear()
    click_next(qtbot, wizard, PAGE_RESTORE)
    qtbot.waitUntil(lambda: not wizard.busy, timeout=TIMEOUT_MS)

    assert wizard.state.outcome is None
    assert [operation.changes_when_stopped for operation in operations] == [{"backups"}]
    assert session.topics == ["backups"]
