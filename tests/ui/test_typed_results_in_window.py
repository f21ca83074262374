"""The tabs read maintenance and statistics results by field, from the typed forms."""

from __future__ import annotations

from pathlib import Path

import pytest
from _tab_fixtures import open_tab, tab_session, wait_idle
from PySide6.QtCore import Qt

from queue_admin_gui.core import QueueMaintenance
from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.core.errors import format_bytes
from queue_admin_gui.core.maintenance_results import AnalyzeResult, CheckpointResult
from queue_admin_gui.core.measurements.stats import DatabaseStats
from queue_admin_gui.ui.optimize_tab import OptimizeState, OptimizeTab
from queue_admin_gui.ui.stats_tab import StatsTab
from queue_admin_gui.ui.wal_tab import WalTab


@pytest.fixture
def demo_path(tmp_path: Path) -> Path:
    path = tmp_path / "demo queue" / "queue.db"
    create_demo_queue(path, tasks=300, seed=5)
    return path


@pytest.fixture
def session(qtbot, demo_path):
    with tab_session(demo_path) as session:
        yield session


def test_stats_tab_shows_the_typed_statistics(qtbot, session, demo_path):
    tab = open_tab(qtbot, session, StatsTab, load=False)
    qtbot.mouseClick(tab.refresh_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    stats = tab.stats
    assert isinstance(stats, DatabaseStats)
    as_dict = QueueMaintenance(demo_path).get_database_stats()
    for key in ("path", "page_size", "journal_mode", "auto_vacuum", "sqlite_version",
                "task_counts"):
        assert as_dict[key] == getattr(stats, key), key
    assert tab.path_label.text() == stats.path
    assert tab.pages_grid.value("auto_vacuum") == stats.auto_vacuum
    assert tab.pages_grid.value("journal_mode") == stats.journal_mode.upper()
    assert tab.tasks_label.text() == "300 tasks in total."


def test_optimize_tab_shows_typed_state_and_analyze_result(qtbot, session, monkeypatch):
    tab = open_tab(qtbot, session, OptimizeTab)
    assert isinstance(tab.state, OptimizeState)
    assert isinstance(tab.state.stats, DatabaseStats)
    assert tab.space_grid.value("db_size") == format_bytes(tab.state.stats.db_size_bytes)
    jobs = []
    run_operation = session.run_operation
    monkeypatch.setattr(session, "run_operation",
                        lambda *args, **kwargs: jobs.append(run_operation(*args, **kwargs))
                        or jobs[-1])
    tab.table_combo.setCurrentText("workers")
    qtbot.mouseClick(tab.analyze_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    assert [type(job.result) for job in jobs] == [AnalyzeResult]
    assert jobs[0].result.table == "workers"
    assert "ANALYZE of table workers finished" in tab.statistics_label.text()


def test_wal_tab_keeps_the_typed_checkpoint_result(qtbot, session):
    tab = open_tab(qtbot, session, WalTab)
    with qtbot.waitSignal(session.checkpoint_done, timeout=60_000) as blocker:
        qtbot.mouseClick(tab.checkpoint_buttons["PASSIVE"], Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)
    result = blocker.args[0]
    assert isinstance(result, CheckpointResult)
    assert tab.last_result is result
    assert tab.result_grid.value("mode") == result.mode == "PASSIVE"
    assert tab.result_grid.value("seconds") == f"{result.seconds:.2f} s"
