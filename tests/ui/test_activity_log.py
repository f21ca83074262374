from __future__ import annotations

import os

import pytest
from PySide6.QtCore import Qt

from queue_admin_gui.app.jobs import mark_background
from queue_admin_gui.app.messages import Level
from queue_admin_gui.core.activity import ActivityEntry, ActivityLog
from queue_admin_gui.core.errors import OperationCancelled
from queue_admin_gui.ui.activity_log import ActivityLogDock


def run_and_wait(qtbot, session, title, func, **kwargs):
    job = session.run(title, func, report_errors=False, **kwargs)
    with qtbot.waitSignal(session.runner.job_finished, timeout=30_000):
        pass
    return job


def test_every_finished_job_is_listed_and_written(qtbot, session, activity_log, tmp_path):
    dock = ActivityLogDock(session.runner, session.messages, activity_log)
    qtbot.addWidget(dock)
    dock.database = tmp_path / "queue.db"
    run_and_wait(qtbot, session, "Checkpoint TRUNCATE", lambda p, c: {"busy": 0},
                 writes=True, parameters={"mode": "TRUNCATE"})

    def fails(progress, cancelled):
        raise OperationCancelled("Vacuum was cancelled; nothing was changed.")

    run_and_wait(qtbot, session, "Vacuum", fails, writes=True)
    background = session.run("Read health", lambda p, c: None)
    mark_background(background)
    with qtbot.waitSignal(session.runner.job_finished, timeout=30_000):
        pass

    assert dock.model.rowCount() == 2
    assert dock.cell_text(0, 1) == "Checkpoint TRUNCATE"
    assert dock.cell_text(0, 2) == "mode=TRUNCATE"
    assert dock.cell_text(0, 3) == "succeeded"
    assert dock.cell_text(0, 4).endswith(" s")
    assert dock.cell_text(1, 3).startswith("cancelled: Vacuum was cancelled")
    saved = activity_log.read()
    assert [e.action for e in saved] == ["Checkpoint TRUNCATE", "Vacuum"]
    assert saved[0].database == str(tmp_path / "queue.db")
    assert saved[1].result == "cancelled"


def test_history_is_shown_on_start(qtbot, session, activity_log):
    activity_log.append(ActivityEntry.now("Back up", parameters={"name": "nightly"}))
    dock = ActivityLogDock(session.runner, session.messages, activity_log)
    qtbot.addWidget(dock)
    assert dock.model.rowCount() == 1
    assert dock.cell_text(0, 2) == "name=nightly"


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0,
                    reason="needs a folder the test user cannot write")
def test_unwritable_log_folder_warns_once_and_keeps_listing(qtbot, session, presenter,
                                                           tmp_path):
    folder = tmp_path / "locked logs"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        dock = ActivityLogDock(session.runner, session.messages,
                               ActivityLog(folder / "sub" / "activity.jsonl"))
        qtbot.addWidget(dock)
        for title in ("One", "Two"):
            run_and_wait(qtbot, session, title, lambda p, c: None)
        assert dock.model.rowCount() == 2
        assert len(presenter.texts(Level.WARNING)) == 1
    finally:
        folder.chmod(0o700)


def test_a_file_in_the_way_of_the_log_folder_warns_once(qtbot, session, presenter, tmp_path):
    blocker = tmp_path / "not a folder"
    blocker.write_text("x")
    dock = ActivityLogDock(session.runner, session.messages,
                           ActivityLog(blocker / "activity.jsonl"))
    qtbot.addWidget(dock)
    for title in ("One", "Two"):
        run_and_wait(qtbot, session, title, lambda p, c: None)
    assert dock.model.rowCount() == 2
    warnings = presenter.texts(Level.WARNING)
    assert len(warnings) == 1 and "activity log" in warnings[0]


def test_result_and_duration_stay_in_view_with_long_actions(qtbot, session, activity_log):
    dock = ActivityLogDock(session.runner, session.messages, activity_log)
    qtbot.addWidget(dock)
    dock.resize(1200, 200)
    dock.show()
    qtbot.waitExposed(dock)
    dock.add_entry(ActivityEntry.now(
        "Restore queue.db from queue_backup_pre_restore_20261129_190515_with_a_long_name.db",
        parameters={"backup": "C:/Backups/queue/" + "x" * 60}, result="failed",
        message="The backup name '../x:y*' cannot be used because it contains a character "
                "that file names cannot hold; choose a short name of letters and digits.",
        duration_seconds=1.5))
    header = dock.table.horizontalHeader()
    viewport = dock.table.viewport().width()
    for column in (3, 4):
        assert header.sectionPosition(column) + header.sectionSize(column) <= viewport
        assert header.sectionSize(column) >= 40
    tooltip = dock.model.index(0, 3).data(Qt.ItemDataRole.ToolTipRole)
    assert tooltip.endswith("letters and digits.")


def write_big_log(path, lines: int) -> None:
    """``lines`` realistic entries (about 200 bytes each), written in large chunks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    template = ActivityEntry.now("Backup", parameters={"name": "nightly", "keep": 14},
                                 message="Backup written and verified: queue_backup.db",
                                 duration_seconds=12.5, database="C:/Data/queue.db")
    text = template.to_json()
    head, tail = text.split('"action": "Backup"')
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for start in range(0, lines, 50_000):
            handle.write("".join(f'{head}"action": "Backup {number}"{tail}\n'
                                 for number in range(start, min(lines, start + 50_000))))


@pytest.mark.slow
def test_a_million_line_log_starts_the_window_with_its_newest_entries(qtbot, settings):
    from queue_admin_gui.app.messages import RecordingPresenter
    from queue_admin_gui.ui.launch import create_window, parse_arguments

    log = ActivityLog()
    write_big_log(log.path, 1_000_000)
    window = create_window(parse_arguments([]), settings=settings,
                           presenter=RecordingPresenter())
    qtbot.addWidget(window)
    window.show()
    try:
        dock = window.activity_dock
        actions = [entry.action for entry in dock.entries]
        assert actions == [f"Backup {n}" for n in range(999_800, 1_000_000)]
        assert dock.cell_text(dock.model.rowCount() - 1, 1) == "Backup 999999"
    finally:
        window.health_timer.stop()
        assert window.session.runner.shutdown(30_000)


def test_the_dock_holds_a_bounded_number_of_rows(qtbot, session, activity_log, monkeypatch):
    from queue_admin_gui.ui import activity_log as dock_module

    monkeypatch.setattr(dock_module, "MAX_ROWS", 30)
    dock = ActivityLogDock(session.runner, session.messages, activity_log)
    qtbot.addWidget(dock)
    for number in range(dock_module.MAX_ROWS + 5):
        dock.add_entry(ActivityEntry.now(f"action {number}"), persist=False)
    assert dock.model.rowCount() == dock_module.MAX_ROWS
    assert dock.entries[0].action == "action 5"
    assert dock.cell_text(0, 1) == "action 5"
    assert dock.cell_text(dock.model.rowCount() - 1, 1) == f"action {len(dock.entries) + 4}"


def test_an_operation_that_fell_short_is_not_logged_as_succeeded(qtbot, session, activity_log,
                                                                 tmp_path):
    """A check that found problems says how many; a checkpoint left short 'did not finish'."""
    import sqlite3

    from queue_admin_gui.core import QueueMaintenance

    damaged = tmp_path / "damaged.db"
    connection = sqlite3.connect(damaged)
    connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    connection.executemany("INSERT INTO notes (body) VALUES (?)",
                           [(f"note {n}" * 20,) for n in range(2000)])
    connection.execute("CREATE INDEX ix_notes_body ON notes(body)")
    connection.commit()
    root = connection.execute("SELECT rootpage FROM sqlite_master "
                              "WHERE name = 'ix_notes_body'").fetchone()[0]
    connection.close()
    with open(damaged, "r+b") as handle:
        handle.seek((root - 1) * 4096 + 2048)
        handle.write(b"\x07" * 2048)
    dock = ActivityLogDock(session.runner, session.messages, activity_log)
    qtbot.addWidget(dock)

    check = run_and_wait(qtbot, session, "Quick check", lambda p, c: QueueMaintenance(
        damaged).check_integrity(quick=True), parameters={"quick": True})
    count = check.result.problem_count
    assert count > 0

    def checkpoint_left_short(progress, cancelled):
        return {"busy": 1}

    noted = session.run("Checkpoint FULL", checkpoint_left_short, report_errors=False)
    noted.succeeded.connect(lambda _result: setattr(
        noted, "note", "The FULL checkpoint could not finish: a reader holds the WAL."))
    with qtbot.waitSignal(session.runner.job_finished, timeout=30_000):
        pass

    problems = "problem" if count == 1 else "problems"
    assert dock.cell_text(0, 3) == f"found {count} {problems}"
    assert dock.cell_text(1, 3) == ("did not finish: The FULL checkpoint could not "
                                    "finish: a reader holds the WAL.")
    assert [entry.result for entry in activity_log.read()] == [
        f"found {count} {problems}", "did not finish"]
    assert all(dock.model.index(row, 3).data(Qt.ItemDataRole.ForegroundRole).color().name()
               == "#b02a37" for row in (0, 1))
