from __future__ import annotations

import threading
from pathlib import Path

import pytest
from _tab_fixtures import execute, lock_held, open_tab, presenter_of, query, tab_session, wait_idle
from PySide6.QtCore import QItemSelectionModel, Qt

from queue_admin_gui.app.messages import Level
from queue_admin_gui.app.operations import TOPIC_DATABASE
from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.ui.leases_tab import LeasesTab
from queue_admin_gui.ui.table_model import STALE_BACKGROUND, selected_text

STALE_SQL = ("SELECT id FROM task_queue WHERE status IN ('leased','processing') "
             "AND datetime(lease_until_utc) < datetime('now', '-300 seconds') ORDER BY id")


@pytest.fixture
def demo_path(tmp_path: Path) -> Path:
    path = tmp_path / "demo queue" / "queue.db"
    create_demo_queue(path, tasks=400, seed=11)
    return path


@pytest.fixture
def session(qtbot, demo_path):
    with tab_session(demo_path) as session:
        yield session


@pytest.fixture
def tab(qtbot, session):
    return open_tab(qtbot, session, LeasesTab)


def statuses(path: Path) -> dict[int, tuple]:
    return {row[0]: row[1:] for row in query(
        path, "SELECT id, status, attempts, locked_by, lease_until_utc FROM task_queue")}


def test_in_flight_tasks_listed_with_stale_ones_marked(tab, demo_path):
    in_flight = {row[0] for row in query(
        demo_path, "SELECT id FROM task_queue WHERE status IN ('leased','processing')")}
    stale = {row[0] for row in query(demo_path, STALE_SQL)}
    assert stale and in_flight - stale
    model = tab.in_flight_model
    shown = {model.record(row).id for row in range(model.rowCount())}
    assert shown == in_flight
    stale_column = [c.title for c in model.columns].index("State")
    for row in range(model.rowCount()):
        index = model.index(row, stale_column)
        is_stale = model.record(row).id in stale
        assert model.data(index) == ("stale" if is_stale else "")
        background = model.data(index, Qt.ItemDataRole.BackgroundRole)
        assert (background is not None and background.color() == STALE_BACKGROUND) == is_stale
    assert f"{len(stale)} of them stale" in tab.summary_label.text()
    assert tab.workers_model.rowCount() == 4
    assert tab.dead_model.rowCount() == query(
        demo_path, "SELECT count(*) FROM task_queue WHERE status='failed'")[0][0]


def test_preview_lists_exactly_what_requeue_then_changes(qtbot, tab, session, demo_path):
    stale = [row[0] for row in query(demo_path, STALE_SQL)]
    execute(demo_path, "UPDATE task_queue SET attempts = max_attempts - 1 WHERE id = ?",
            (stale[0],))
    before = statuses(demo_path)
    qtbot.mouseClick(tab.preview_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    assert sorted(tab.preview_ids) == stale
    assert tab.preview_ids[stale[0]] == "dead letters"
    assert all(tab.preview_ids[i] == "requeue" for i in stale[1:])
    assert f"would touch {len(stale)} tasks" in tab.result_label.text()
    assert statuses(demo_path) == before, "a preview must not change the file"

    topics: list[str] = []
    session.changed.connect(topics.append)
    qtbot.mouseClick(tab.requeue_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    assert sorted(topics) == ["leases", "stats"]  # announced once each, by the operation
    presenter = presenter_of(session)
    assert f"Requeue {len(stale)} stale tasks" in presenter.questions[-1].text
    after = statuses(demo_path)
    changed = {task_id for task_id in before if before[task_id] != after[task_id]}
    assert changed == set(stale)
    assert after[stale[0]][0] == "failed"
    assert all(after[i][0] == "queued" and after[i][2] is None for i in stale[1:])
    assert (f"Requeued {len(stale) - 1} stale tasks and moved 1 to the dead letters."
            in presenter.texts(Level.INFO))
    assert not any(tab.in_flight_model.record(r).stale
                   for r in range(tab.in_flight_model.rowCount()))


def test_requeue_answered_no_changes_nothing(qtbot, tab, session, demo_path):
    presenter_of(session).answer = False
    before = statuses(demo_path)
    topics: list[str] = []
    session.changed.connect(topics.append)
    qtbot.mouseClick(tab.requeue_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    assert topics == []
    assert len(presenter_of(session).questions) == 1
    assert statuses(demo_path) == before
    assert presenter_of(session).texts(Level.INFO) == []


@pytest.mark.usefixtures("short_lock_wait")
def test_requeue_on_locked_database_tells_user_and_changes_nothing(qtbot, tab, session,
                                                                   demo_path):
    before = statuses(demo_path)
    with lock_held(demo_path, "write"):
        qtbot.mouseClick(tab.requeue_button, Qt.MouseButton.LeftButton)
        wait_idle(qtbot, session)
    errors = presenter_of(session).texts(Level.ERROR)
    assert len(errors) == 1 and "locked" in errors[0]
    assert statuses(demo_path) == before


def test_retry_selected_dead_tasks_moves_them_back_to_queued(qtbot, tab, session, demo_path):
    assert not tab.retry_button.isEnabled()
    selection = tab.dead_view.selectionModel()
    for row in (0, 1):
        selection.select(tab.dead_model.index(row, 0),
                         QItemSelectionModel.SelectionFlag.Select
                         | QItemSelectionModel.SelectionFlag.Rows)
    chosen = tab.selected_dead_ids()
    assert len(chosen) == 2 and tab.retry_button.isEnabled()
    assert "2 selected" in tab.dead_label.text()
    dead_before = tab.dead_model.rowCount()
    qtbot.mouseClick(tab.retry_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    rows = query(demo_path, "SELECT id, status, attempts FROM task_queue WHERE id IN (?, ?)",
                 tuple(chosen))
    assert sorted(rows) == [(chosen[0], "queued", 0), (chosen[1], "queued", 0)]
    assert tab.dead_model.rowCount() == dead_before - 2
    assert "2 dead tasks were sent back to the queue." in presenter_of(session).texts()


def test_longer_timeout_reloads_and_nothing_is_stale(qtbot, tab, session):
    tab.timeout_spin.setValue(7200)
    qtbot.waitUntil(lambda: "none stale" in tab.summary_label.text(), timeout=30_000)
    wait_idle(qtbot, session)
    assert tab.in_flight_model.rowCount() > 0


def test_write_actions_wait_for_another_write_job(qtbot, tab, session):
    release = threading.Event()
    job = session.run("Back up", lambda progress, cancelled: release.wait(30), writes=True)
    assert not tab.requeue_button.isEnabled()
    assert "Another maintenance job is running: Back up" in tab.requeue_button.toolTip()
    assert tab.preview_button.isEnabled()
    with qtbot.waitSignal(job.finished, timeout=30_000):
        release.set()
    assert tab.requeue_button.isEnabled()


def test_queue_actions_off_for_a_plain_sqlite_file(qtbot, tab, session, tmp_path):
    plain = tmp_path / "plain.db"
    execute(plain, "CREATE TABLE t (x)")
    session.set_database(plain, is_queue=False)
    wait_idle(qtbot, session)
    for button in (tab.preview_button, tab.requeue_button, tab.retry_button):
        assert not button.isEnabled()
    assert "not a PrismQ queue database" in tab.requeue_button.toolTip()


def test_a_restored_database_is_shown_without_a_manual_refresh(qtbot, tab, session, demo_path):
    assert tab.in_flight_model.rowCount() > 0
    execute(demo_path, "UPDATE task_queue SET status = 'queued', locked_by = NULL, "
                       "lease_until_utc = NULL WHERE status IN ('leased', 'processing')")
    session.notify(TOPIC_DATABASE)
    qtbot.waitUntil(lambda: tab.in_flight_model.rowCount() == 0, timeout=30_000)
    wait_idle(qtbot, session)
    assert "0 tasks in flight" in tab.summary_label.text()


def test_an_expired_lease_of_a_live_worker_is_listed_apart_and_not_requeued(
        qtbot, tab, session, demo_path):
    execute(demo_path, "UPDATE workers SET heartbeat_utc = datetime('now') "
                       "WHERE worker_id = 'demo-worker-01'")
    cursor_sql = ("INSERT INTO task_queue (type, payload, status, attempts, lease_until_utc, "
                  "reserved_at_utc, locked_by) VALUES ('render', '{}', 'leased', 1, "
                  "datetime('now', '-1 hour'), datetime('now', '-2 hours'), 'demo-worker-01')")
    execute(demo_path, cursor_sql)
    alive = query(demo_path, "SELECT max(id) FROM task_queue")[0][0]
    stale = [row[0] for row in query(demo_path, STALE_SQL) if row[0] != alive]
    tab.refresh()
    wait_idle(qtbot, session)
    model = tab.in_flight_model
    records = {model.record(row).id: row for row in range(model.rowCount())}
    state = [c.title for c in model.columns].index("State")
    assert model.data(model.index(records[alive], state)) == "expired, worker alive"
    assert model.data(model.index(records[alive], state),
                      Qt.ItemDataRole.BackgroundRole) is None
    assert not tab.renewal_label.isHidden()
    assert f"Lease expired, worker alive: 1 tasks (IDs {alive}) held by demo-worker-01" in (
        tab.renewal_label.text())
    assert f"{len(stale)} of them stale" in tab.summary_label.text()

    qtbot.mouseClick(tab.preview_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    assert sorted(tab.preview_ids) == sorted([*stale, alive])
    assert tab.preview_ids[alive] == "leave alone (worker alive)"
    assert "1 tasks with an expired lease are left alone" in tab.result_label.text()
    qtbot.mouseClick(tab.requeue_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    assert f"Requeue {len(stale)} stale tasks" in presenter_of(session).questions[-1].text
    assert statuses(demo_path)[alive][:3] == ("leased", 1, "demo-worker-01")
    assert all(statuses(demo_path)[task][0] in ("queued", "failed") for task in stale)


def test_the_workers_table_sorts_by_heartbeat_age_and_marks_the_silent_ones(tab):
    model, view = tab.workers_model, tab.workers_view
    ages = sorted(worker.heartbeat_age_seconds for worker in model.records)
    assert len(ages) == 4
    heartbeat = [c.title for c in model.columns].index("Last heartbeat")
    view.sortByColumn(heartbeat, Qt.SortOrder.DescendingOrder)
    shown = [model.record(row).heartbeat_age_seconds for row in range(model.rowCount())]
    assert shown == ages[::-1], "sorted by the age itself, not by its text"
    for row in range(model.rowCount()):
        background = model.data(model.index(row, 0), Qt.ItemDataRole.BackgroundRole)
        silent = model.record(row).heartbeat_age_seconds > tab.timeout_seconds
        assert (background is not None and background.color() == STALE_BACKGROUND) == silent
    view.selectRow(0)
    assert selected_text(view).splitlines() == [
        "\t".join(c.title for c in model.columns), "\t".join(model.row_texts(0))]
