"""The Leases and Backups tabs on big lists: 100,000 stale leases, 10,500 dead tasks, 3,000 backups.

The lists must arrive, refresh, sort and copy through models that hand the view rows as it
scrolls, sentences and tooltips must summarise instead of listing every id, a requeue must
still touch exactly the abandoned tasks, and refreshing must not pile up memory. How long the
window stands still is measured in tests/bench/bench_lists.py, not asserted here.
"""

from __future__ import annotations

import gc
import re
import shutil
import tracemalloc
from pathlib import Path

import pytest
from _big_lists import LIVE_WORKER, make_backup_folder, make_lease_queue
from _tab_fixtures import open_tab, presenter_of, query, tab_session, wait_idle
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication

from queue_admin_gui.ui.backups_tab import BackupsTab
from queue_admin_gui.ui.lease_model import DEAD_TASK_LIMIT
from queue_admin_gui.ui.leases_tab import LeasesTab
from queue_admin_gui.ui.table_model import FETCH_BATCH

LEASES, ALIVE, DEAD = 100_000, 2_000, 10_500
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture(scope="module")
def big_queue_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 100,000-lease queue, built once for this module; tests work on copies."""
    return make_lease_queue(tmp_path_factory.mktemp("big-queue") / "queue.db",
                            stale=LEASES - ALIVE, alive=ALIVE, dead=DEAD)


@pytest.fixture
def big_queue(tmp_path: Path, big_queue_template: Path) -> Path:
    target = tmp_path / "big queue" / "queue.db"
    target.parent.mkdir()
    shutil.copyfile(big_queue_template, target)
    return target


@pytest.fixture
def session(qtbot, big_queue):
    with tab_session(big_queue) as session:
        yield session


@pytest.fixture
def tab(qtbot, session):
    tab = open_tab(qtbot, session, LeasesTab, size=(1200, 800))
    tab.show()
    return tab


def column(model, title: str) -> int:
    return [c.title for c in model.columns].index(title)


def shown_ids(model, rows: int) -> list[int]:
    return [int(model.data(model.index(row, column(model, "ID")))) for row in range(rows)]


def click_header(qtbot, view, section: int) -> None:
    header = view.horizontalHeader()
    x = header.sectionViewportPosition(section) + header.sectionSize(section) // 2
    qtbot.mouseClick(header.viewport(), LEFT, pos=QPoint(x, header.height() // 2))


def focus(qtbot, view) -> None:
    """Give the view the keyboard, as a click into it would."""
    view.window().activateWindow()
    view.setFocus()
    qtbot.waitUntil(view.hasFocus, timeout=10_000)


@pytest.mark.slow
def test_100000_leases_are_listed_a_batch_at_a_time_with_a_summary(qtbot, tab):
    model = tab.in_flight_model
    assert model.total_rows() == LEASES
    assert model.rowCount() <= 2 * FETCH_BATCH, "rows reach the view as it scrolls"
    assert "100,000 tasks in flight, 98,000 of them stale" in tab.summary_label.text()
    renewal = tab.renewal_label.text()
    assert "Lease expired, worker alive: 2,000 tasks (IDs 98001, 98002" in renewal
    assert "and 1,970 more" in renewal and f"held by {LIVE_WORKER}." in renewal
    assert re.fullmatch(r"Read \d\d:\d\d:\d\d", tab.read_label.text())
    assert model.data(model.index(0, column(model, "State"))) == "stale"

    before = model.rowCount()
    tab.in_flight_view.scrollToBottom()
    qtbot.waitUntil(lambda: model.rowCount() > before, timeout=10_000)
    assert model.rowCount() < LEASES


def test_the_dead_task_list_says_when_it_is_cut(tab):
    assert tab.dead_model.total_rows() == DEAD_TASK_LIMIT
    assert (f"The newest {DEAD_TASK_LIMIT:,} of {DEAD:,} dead tasks are shown"
            in tab.dead_label.text())


@pytest.mark.slow
def test_refresh_shows_what_changed(qtbot, tab, session, big_queue):
    import sqlite3

    connection = sqlite3.connect(big_queue, isolation_level=None)
    try:
        connection.execute("UPDATE task_queue SET status = 'completed', locked_by = NULL "
                           "WHERE id <= 1000")
    finally:
        connection.close()
    qtbot.mouseClick(tab.refresh_button, LEFT)
    wait_idle(qtbot, session)
    assert tab.in_flight_model.total_rows() == LEASES - 1000
    assert "99,000 tasks in flight, 97,000 of them stale" in tab.summary_label.text()


@pytest.mark.slow
def test_preview_summarises_and_requeue_touches_exactly_the_abandoned_tasks(
        qtbot, tab, session, big_queue):
    qtbot.mouseClick(tab.preview_button, LEFT)
    wait_idle(qtbot, session)
    text, tooltip = tab.result_label.text(), tab.result_label.toolTip()
    assert "a requeue would touch 98,000 tasks" in text
    assert "73,500 back to the queue, 24,500 to the dead letters" in text
    assert "2,000 tasks with an expired lease are left alone" in text
    assert len(text) < 600 and len(tooltip) < 300
    assert "98,000 tasks: IDs 1-98,000" in tooltip
    assert tab.preview_ids[1] == "requeue" and tab.preview_ids[4] == "dead letters"
    assert tab.preview_ids[LEASES] == "leave alone (worker alive)"
    model = tab.in_flight_model
    first = model.record(0)
    assert model.data(model.index(0, column(model, "Requeue would"))) == (
        "dead letters" if first.attempts + 1 >= first.max_attempts else "requeue")

    qtbot.mouseClick(tab.requeue_button, LEFT)
    wait_idle(qtbot, session)
    question = presenter_of(session).questions[-1].text
    assert question.startswith("Requeue 98,000 stale tasks") and len(question) < 600
    counts = dict(query(big_queue, "SELECT status, count(*) FROM task_queue "
                                   "WHERE id <= ? GROUP BY status", (LEASES,)))
    assert counts == {"queued": 73_500, "failed": 24_500, "leased": ALIVE}
    alive = query(big_queue, "SELECT count(*) FROM task_queue WHERE locked_by = ? "
                             "AND status = 'leased'", (LIVE_WORKER,))
    assert alive == [(ALIVE,)]
    assert "2,000 tasks in flight, none stale" in tab.summary_label.text()


def test_sorting_by_a_column_title_and_copying_the_selection(qtbot, tab):
    model, view = tab.in_flight_model, tab.in_flight_view
    click_header(qtbot, view, column(model, "ID"))
    first = shown_ids(model, 5)
    click_header(qtbot, view, column(model, "ID"))
    second = shown_ids(model, 5)
    assert {tuple(first), tuple(second)} == {(1, 2, 3, 4, 5), tuple(range(LEASES, LEASES - 5, -1))}
    assert model.total_rows() == LEASES

    focus(qtbot, view)
    view.selectRow(0)
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    lines = QGuiApplication.clipboard().text().splitlines()
    assert lines[0].split("\t")[:3] == ["ID", "Type", "Status"]
    assert lines[1].split("\t")[0] == str(second[0]) and len(lines) == 2

    copy = next(action for action in view.actions() if action.text() == "Copy")
    QGuiApplication.clipboard().clear()
    copy.trigger()
    assert QGuiApplication.clipboard().text().splitlines()[1].startswith(str(second[0]))


@pytest.mark.slow
def test_memory_after_ten_refreshes_stays_near_memory_after_one(qtbot, tab, session):
    tracemalloc.start()
    try:
        qtbot.mouseClick(tab.refresh_button, LEFT)
        wait_idle(qtbot, session)
        gc.collect()
        after_one, _ = tracemalloc.get_traced_memory()
        for _ in range(9):
            qtbot.mouseClick(tab.refresh_button, LEFT)
            wait_idle(qtbot, session)
        gc.collect()
        after_ten, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tab.in_flight_model.total_rows() == LEASES
    # One list of 100,000 tasks is a few MB of arrays; ten refreshes must not keep ten.
    assert after_ten - after_one < 4 * 2**20, (after_one, after_ten)


@pytest.fixture(scope="module")
def backup_folder_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("many-backups") / "backups"
    make_backup_folder(folder, 3_000)
    return folder


@pytest.mark.slow
def test_3000_backups_are_listed_sorted_and_copied(qtbot, tmp_path, backup_folder_template,
                                                   big_queue):
    from queue_admin_gui.core.settings.config import MaintenanceConfig

    folder = tmp_path / "backups"
    shutil.copytree(backup_folder_template, folder)
    with tab_session(big_queue) as session:
        session.set_config(MaintenanceConfig(backup_dir=folder))
        tab = open_tab(qtbot, session, BackupsTab, size=(1200, 800))
        tab.show()
        qtbot.waitExposed(tab)
        wait_idle(qtbot, session)
        model, view = tab.model, tab.table
        assert model.total_rows() == 3_000
        assert model.rowCount() <= 2 * FETCH_BATCH
        assert model.record(0).path.name.startswith("queue_backup_n2999_")
        oldest = folder / sorted(p.name for p in folder.glob("queue_backup_n0_*.db"))[0]
        assert tab.select_backup(oldest), "a backup beyond the first batch can be selected"
        assert tab.selected_backup().path == oldest

        click_header(qtbot, view, 0)
        names = {model.record(0).path.name[:18], model.record(1).path.name[:18]}
        assert len(names) == 2 and model.total_rows() == 3_000
        focus(qtbot, view)
        view.selectRow(0)
        qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
        lines = QGuiApplication.clipboard().text().splitlines()
        assert lines[0].startswith("Name\tCreated\tSize\tTasks")
        assert lines[1].split("\t")[5] == model.record(0).path.name
        wait_idle(qtbot, session)
