"""The Stats tab's live plots: pages and free pages, tasks by status, over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from queue_admin_gui.app.monitor import TASK_COUNT_INTERVAL_SECONDS, Sampler
from queue_admin_gui.core.database import connect
from queue_admin_gui.core.status_labels import DEAD_LABEL
from queue_admin_gui.ui.stats_plots import StatsPlotsWidget


@pytest.fixture
def sampler(session, demo_db: Path, clock):
    session.set_database(demo_db, True)
    sampler = Sampler(session, clock=clock, capacity=500)
    yield sampler
    sampler.stop()


@pytest.fixture
def plots(qtbot, session, sampler):
    widget = StatsPlotsWidget(session, sampler)
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def sample_now(qtbot, sampler: Sampler) -> None:
    assert sampler.tick() is not None
    qtbot.waitUntil(lambda: not sampler.busy, timeout=30_000)


def points(curve) -> int:
    """How many points a curve was given (an empty curve holds None)."""
    return 0 if curve.xData is None else len(curve.xData)


def test_pages_and_task_counts_reach_their_curves(qtbot, plots, sampler, clock, demo_db):
    sample_now(qtbot, sampler)
    connection = connect(demo_db)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("UPDATE task_queue SET status = 'completed' WHERE status = 'queued'")
        connection.execute("DELETE FROM task_logs")
        connection.execute("COMMIT")
        clock.now += TASK_COUNT_INTERVAL_SECONDS
        sample_now(qtbot, sampler)
    finally:
        connection.close()
    plots.redraw()
    assert plots.page_curve.xData.tolist() == [
        clock.start, clock.start + TASK_COUNT_INTERVAL_SECONDS]
    assert np.array_equal(plots.page_curve.yData, sampler.history.column("page_count"))
    assert np.array_equal(plots.freelist_curve.yData, sampler.history.column("freelist_count"))
    queued = plots.task_curves["queued"].yData
    completed = plots.task_curves["completed"].yData
    assert queued[0] > 0 and queued[1] == 0
    assert completed[1] == completed[0] + queued[0]
    in_flight = plots.task_curves["in flight"].yData
    counts = sampler.last_sample.task_counts
    assert in_flight[-1] == counts["leased"] + counts["processing"]
    assert plots.task_curves[DEAD_LABEL].yData[-1] == counts["failed"] + counts["dead_letter"]


def test_both_plots_show_the_chosen_window(qtbot, plots, sampler, clock):
    sample_now(qtbot, sampler)
    plots.set_window_seconds(3600)
    for plot in (plots.pages_plot, plots.tasks_plot):
        left, right = plot.getPlotItem().viewRange()[0]
        assert right == pytest.approx(clock.now, abs=1e-3)
        assert right - left == pytest.approx(30)  # one sample: the shortest span, not an hour


def test_redraws_pause_while_hidden(qtbot, plots, sampler):
    assert plots.redraw_timer.isActive()
    plots.hide()
    assert not plots.redraw_timer.isActive()
    sample_now(qtbot, sampler)
    assert points(plots.page_curve) == 0
    plots.show()
    assert points(plots.page_curve) == 1
