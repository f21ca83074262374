"""Plots that read at a glance: fitted time axis, labels apart, legends off the curves, room."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from queue_admin_gui.app.monitor import Sampler
from queue_admin_gui.core.status_labels import DEAD_LABEL, IN_FLIGHT_LABEL
from queue_admin_gui.ui.live_plot import MIN_SPAN_SECONDS, fitted_time_range
from queue_admin_gui.ui.stats_plots import StatsPlotsWidget
from queue_admin_gui.ui.wal_plot import WalPlotWidget


@pytest.fixture
def sampler(session, queue_db: Path, clock):
    session.set_database(queue_db, True)
    sampler = Sampler(session, clock=clock, capacity=500)
    yield sampler
    sampler.stop()


def sample_now(qtbot, sampler: Sampler) -> None:
    assert sampler.tick() is not None
    qtbot.waitUntil(lambda: not sampler.busy, timeout=30_000)


@pytest.fixture
def wal_plot(qtbot, session, sampler):
    widget = WalPlotWidget(session, sampler)
    qtbot.addWidget(widget)
    widget.resize(900, 420)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_fitted_range_follows_the_data_until_the_window_is_full():
    assert fitted_time_range(None, 700, 1000) == (700, 1000)
    assert fitted_time_range(990, 700, 1000) == (1000 - MIN_SPAN_SECONDS, 1000)
    assert fitted_time_range(900, 700, 1000) == (900, 1000)
    assert fitted_time_range(100, 700, 1000) == (700, 1000)


def test_live_data_fills_the_plot_instead_of_its_right_edge(qtbot, wal_plot, sampler, clock):
    sample_now(qtbot, sampler)
    clock.now += 120
    sample_now(qtbot, sampler)
    wal_plot.redraw()
    left, right = wal_plot.plot.getPlotItem().viewRange()[0]
    assert left == pytest.approx(clock.start, abs=1e-3)
    assert right == pytest.approx(clock.now, abs=1e-3)
    clock.now += 400  # now the 5-minute window is full
    sample_now(qtbot, sampler)
    wal_plot.redraw()
    left, right = wal_plot.plot.getPlotItem().viewRange()[0]
    assert left == pytest.approx(clock.now - 300, abs=1e-3)


def test_marker_labels_close_together_do_not_overlap(qtbot, wal_plot, sampler, clock):
    sample_now(qtbot, sampler)
    clock.now += 60
    sample_now(qtbot, sampler)
    wal_plot.redraw()
    lines = [wal_plot.add_marker(clock.now - 30 + step, label, backup=label == "backup")
             for step, label in enumerate(("TRUNCATE", "backup", "PASSIVE (frames left)"))]
    wal_plot.redraw()
    shown = [line.label for line in lines if line.label.isVisible()]
    assert len(shown) >= 2
    boxes = [label.sceneBoundingRect() for label in shown]
    for index, box in enumerate(boxes):
        for other in boxes[index + 1:]:
            assert not box.intersects(other)
    assert all(line.toolTip() for line in lines)  # a hidden label's text is in the tooltip


def test_in_flight_and_dead_lines_differ_and_legends_sit_above_the_data(qtbot, session,
                                                                       sampler):
    plots = StatsPlotsWidget(session, sampler)
    qtbot.addWidget(plots)
    plots.resize(900, 500)
    plots.show()
    qtbot.waitExposed(plots)
    in_flight = plots.task_curves[IN_FLIGHT_LABEL].opts["pen"]
    dead = plots.task_curves[DEAD_LABEL].opts["pen"]
    assert (in_flight.style(), in_flight.widthF()) != (dead.style(), dead.widthF())
    assert in_flight.style() != dead.style()
    for plot, legend in ((plots.tasks_plot, plots.tasks_legend),
                         (plots.pages_plot, plots.pages_legend)):
        data_area = plot.getPlotItem().getViewBox().sceneBoundingRect()
        assert legend.isVisible() and legend.sceneBoundingRect().height() > 0
        assert not legend.sceneBoundingRect().intersects(data_area)


@pytest.mark.parametrize(("size", "wal_min", "stats_min"),
                         [((1024, 700), 150, 140), ((1920, 1080), 300, 200)])
def test_plots_stay_readable_at_common_window_sizes(qtbot, window, demo_db, open_db, size,
                                                    wal_min, stats_min):
    open_db(demo_db)
    window.resize(*size)
    for key in ("wal", "stats"):
        window.show_tab(key)
        qtbot.wait(50)  # one pass of the event loop for the layout
    window.show_tab("wal")
    qtbot.waitUntil(lambda: window.wal_plot.plot.height() >= wal_min, timeout=5_000)
    axis = window.wal_plot.plot.getPlotItem().getAxis("left")
    assert axis.label.boundingRect().width() <= axis.height()  # the axis title is not cut
    window.show_tab("stats")
    qtbot.waitUntil(lambda: min(window.stats_plots.pages_plot.height(),
                                window.stats_plots.tasks_plot.height()) >= stats_min,
                    timeout=5_000)


def test_wide_marker_labels_a_second_apart_never_overlap(qtbot, wal_plot, sampler, clock):
    sample_now(qtbot, sampler)
    clock.now += 60
    sample_now(qtbot, sampler)
    wal_plot.redraw()
    labels = ["TRUNCATE (frames left)", "RESTART (frames left)", "backup", "FULL (frames left)",
              "PASSIVE (frames left)", "TRUNCATE"]
    lines = [wal_plot.add_marker(clock.now - 20 + 2 * step, label, backup=label == "backup")
             for step, label in enumerate(labels)]
    wal_plot.redraw()
    QApplication.processEvents()  # the labels follow their lines in the scene's next pass
    boxes = [line.label.sceneBoundingRect() for line in lines if line.label.isVisible()]
    assert len(boxes) >= 3
    for index, box in enumerate(boxes):
        for other in boxes[index + 1:]:
            assert not box.intersects(other)


def test_with_the_banner_up_the_wal_plot_keeps_its_height_at_1024x700(qtbot, window, demo_db,
                                                                       open_db):
    from queue_admin_gui.ui.live_plot import PLOT_MIN_HEIGHT

    open_db(demo_db)
    window.resize(1024, 700)
    window.show_tab("wal")
    plot = window.wal_plot
    plot._show_banner("The WAL (812.4 MB) is pinned by PID 48213 python nightly_report.py, "
                      "reading for 14 min (since 02:14:12): no checkpoint can reset it.",
                      "Close that program or end its transaction; the TRUNCATE checkpoint "
                      "then runs again by itself.", "critical", details="evidence " * 80)
    qtbot.waitUntil(lambda: plot.plot.height() >= PLOT_MIN_HEIGHT, timeout=5_000)
    line = plot.banner_label.fontMetrics().lineSpacing()
    assert plot.banner_label.height() <= 3 * line + 8  # two lines (three where it wraps)
    assert plot.banner_label.isVisible() and plot.truncate_button.isVisible()
    assert plot.details_label.isHidden()  # the long story waits behind "Details"
