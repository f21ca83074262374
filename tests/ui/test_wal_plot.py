"""The live WAL plot: curves fed from the sampler, thresholds, markers, banner, export."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from wal_scripts import READER

from queue_admin_gui.app.messages import Level
from queue_admin_gui.app.monitor import Sampler
from queue_admin_gui.core.database import connect
from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.core.demo.workers import DemoWorkers
from queue_admin_gui.core.files.db_files import file_size, wal_path
from queue_admin_gui.core.measurements.sampling import MEGABYTE
from queue_admin_gui.ui.wal_plot import WalPlotWidget


@pytest.fixture
def sampler(session, queue_db: Path, clock):
    session.set_database(queue_db, True)
    sampler = Sampler(session, clock=clock, capacity=500)
    yield sampler
    sampler.stop()


@pytest.fixture
def plot(qtbot, session, sampler):
    widget = WalPlotWidget(session, sampler)
    qtbot.addWidget(widget)
    widget.resize(900, 420)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def sample_now(qtbot, sampler: Sampler) -> None:
    assert sampler.tick() is not None
    qtbot.waitUntil(lambda: not sampler.busy, timeout=30_000)


@pytest.fixture
def writer(queue_db: Path):
    """A writer that stays connected, as the queue's workers do (so the WAL is kept)."""
    connection = connect(queue_db)
    yield connection
    connection.close()


def write_rows(connection, rows: int, size: int = 200) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany("INSERT INTO task_queue (type, payload) VALUES ('ocr', ?)",
                           [('{"pad": "' + "p" * size + '"}',) for _ in range(rows)])
    connection.execute("COMMIT")


def test_the_curve_receives_every_sample_in_megabytes(qtbot, plot, sampler, clock, writer):
    for _step in range(3):
        write_rows(writer, 50)
        sample_now(qtbot, sampler)
        clock.now += 1
    plot.redraw()
    times, megabytes = plot.curve.xData, plot.curve.yData
    assert times.tolist() == [clock.start, clock.start + 1, clock.start + 2]
    expected = sampler.history.column("wal_bytes") / MEGABYTE
    assert np.allclose(megabytes, expected) and megabytes[-1] > megabytes[0] > 0
    left, right = plot.plot.getPlotItem().viewRange()[0]
    # two seconds of data: the axis shows the last 30 s, not the whole 5-minute window
    assert right == pytest.approx(clock.now, abs=1e-3)
    assert left == pytest.approx(clock.now - 30, abs=1e-3)
    assert "warning at 50 MB, critical at 100 MB" in plot.summary_label.text()


def test_window_selector_chooses_how_much_time_is_shown(qtbot, plot, sampler, clock):
    sample_now(qtbot, sampler)
    clock.now += 1200
    sample_now(qtbot, sampler)
    plot.redraw()
    assert plot.curve.xData.tolist() == [clock.start + 1200]
    plot.window_combo.setCurrentIndex(plot.window_combo.findText("Last hour"))
    assert plot.window_seconds == 3600
    assert plot.curve.xData.tolist() == [clock.start, clock.start + 1200]
    left, right = plot.plot.getPlotItem().viewRange()[0]
    assert right - left == pytest.approx(1200)  # fitted to the samples until the hour is full
    plot.set_window_seconds(86400)
    assert plot.window_combo.currentText() == "Last 24 hours"


def test_threshold_lines_follow_the_config(qtbot, plot, session):
    assert plot.warning_line.value() == 50 and plot.critical_line.value() == 100
    changed = dataclasses.replace(session.config, wal_size_warning_mb=7,
                                  wal_size_threshold_mb=9)
    session.set_config(changed)
    assert plot.warning_line.value() == 7 and plot.critical_line.value() == 9
    assert "warning at 7 MB, critical at 9 MB" in plot.summary_label.text()


def test_checkpoints_and_backups_are_marked_at_their_time(qtbot, plot, session, clock):
    session.checkpoint_done.emit({"mode": "RESTART", "busy": 0, "log": 4, "checkpointed": 4})
    clock.now += 5
    session.backup_done.emit({"path": "x"})
    labels = [(moment, label) for moment, label, _line in plot.markers]
    assert labels == [(clock.start, "RESTART"), (clock.start + 5, "backup")]
    lines = [line for _moment, _label, line in plot.markers]
    assert all(line.scene() is plot.plot.scene() for line in lines)
    assert lines[0].label.toPlainText() == "RESTART"


def test_pause_freezes_the_plot_and_resume_catches_up(qtbot, plot, sampler, clock):
    sample_now(qtbot, sampler)
    plot.redraw()
    plot.pause_button.click()
    assert plot.paused and plot.pause_button.text() == "Resume"
    clock.now += 1
    sample_now(qtbot, sampler)
    plot.redraw_timer.timeout.emit()
    assert len(plot.curve.xData) == 1
    plot.pause_button.click()
    assert not plot.paused
    assert len(plot.curve.xData) == 2


def test_redraw_timer_runs_only_while_shown(qtbot, plot, sampler):
    assert plot.redraw_timer.isActive()
    sample_now(qtbot, sampler)
    plot.redraw_timer.timeout.emit()
    drawn = plot.redraws
    plot.redraw_timer.timeout.emit()
    assert plot.redraws == drawn  # nothing new: no setData
    plot.hide()
    assert not plot.redraw_timer.isActive()
    plot.show()
    assert plot.redraw_timer.isActive()


def test_export_csv_writes_the_samples(qtbot, plot, sampler, clock, tmp_path, presenter):
    for _ in range(3):
        sample_now(qtbot, sampler)
        clock.now += 1
    target = tmp_path / "export folder" / "wal samples.csv"
    target.parent.mkdir()
    job = plot.export_csv_to(target)
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    with open(target, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    assert [float(row["epoch_seconds"]) for row in rows] == [
        clock.start, clock.start + 1, clock.start + 2]
    assert rows[0]["tasks_queued"] == "0" and rows[0]["page_count"] != ""
    assert presenter.messages == [] or "Exported 3 samples" in presenter.texts()[-1]


def test_truncate_button_waits_for_another_write_job(qtbot, plot, session):
    release = threading.Event()
    job = session.run("Hold the writer slot", lambda progress, cancelled: release.wait(30),
                      writes=True)
    assert not plot.truncate_button.isEnabled()
    assert "Another maintenance job is running" in plot.truncate_button.toolTip()
    release.set()
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    qtbot.waitUntil(plot.truncate_button.isEnabled, timeout=30_000)


@pytest.mark.slow
def test_banner_offers_truncate_when_demo_workers_grow_the_wal(qtbot, session, tmp_path,
                                                               presenter):
    path = tmp_path / "demo queue" / "queue.db"
    create_demo_queue(path, tasks=300, seed=3)
    session.set_config(dataclasses.replace(session.config, wal_size_warning_mb=0.05,
                                           wal_size_threshold_mb=1.0,
                                           sample_interval_seconds=0.2))
    session.set_database(path, True)
    sampler = Sampler(session, capacity=1000)
    plot = WalPlotWidget(session, sampler)
    qtbot.addWidget(plot)
    plot.show()
    workers = DemoWorkers(path, workers=3, seed=5, arrival_per_second=20,
                          work_seconds=(0.01, 0.05), die_probability=0.0)
    # another client stays connected, so the WAL outlives the workers (no close checkpoint)
    bystander = connect(path)
    workers.start()
    sampler.start()
    try:
        qtbot.waitUntil(lambda: plot.banner_shown, timeout=60_000)
    finally:
        assert workers.stop(30)
    assert "above the warning level of 0.05 MB" in plot.banner_label.text()
    assert "TRUNCATE checkpoint" in plot.banner_label.text()
    assert file_size(wal_path(path)) > 0.05 * MEGABYTE
    qtbot.mouseClick(plot.truncate_button, Qt.MouseButton.LeftButton)
    job = plot.checkpoint_job
    assert job is not None
    qtbot.waitUntil(lambda: job.is_finished and not session.runner.write_busy, timeout=60_000)
    assert job.result.mode == "TRUNCATE" and job.result.busy == 0
    assert file_size(wal_path(path)) == 0
    assert any(label == "TRUNCATE" for _moment, label, _line in plot.markers)
    assert any("TRUNCATE checkpoint done" in text for text in presenter.texts(Level.INFO))
    qtbot.waitUntil(lambda: not plot.banner_shown, timeout=30_000)
    sampler.stop()
    bystander.close()




def test_long_reader_is_named_in_plain_words(qtbot, plot, session, sampler, clock, queue_db,
                                             writer):
    write_rows(writer, 20)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(queue_db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "reading"
        for _ in range(4):
            write_rows(writer, 700, size=3500)  # about 700 WAL frames each time
            sample_now(qtbot, sampler)
            clock.now += 1
        assert plot.banner_shown
        text = plot.banner_text
        assert "long-running reader is keeping the WAL from being reset" in text
        assert "Close it or end its transaction" in text
        assert plot.banner_label.text().count("<br>") == 1  # two lines, the rest in Details
    finally:
        reader.stdin.close()
        reader.wait(30)
        reader.stdout.close()
    assert reader.returncode == 0
    job = plot.run_truncate_checkpoint()
    qtbot.waitUntil(lambda: job.is_finished and not session.runner.write_busy, timeout=60_000)
    assert file_size(wal_path(queue_db)) == 0
    sample_now(qtbot, sampler)
    assert not plot.banner_shown


def test_where_holders_are_only_ranked_the_truncate_retries_once_the_first_is_gone(
        qtbot, plot, session, sampler):
    from queue_admin_gui.core.measurements.wal_pin import (
        METHOD_RANKING,
        WalPinHolder,
        WalPinLookup,
    )

    report, worker = WalPinHolder(4242, "report.exe"), WalPinHolder(5151, "worker.exe")
    sampler.pin = WalPinLookup(METHOD_RANKING, (report, worker))
    plot.retry_when_free, plot.blocking_pid = True, report.pid
    plot._update_banner()
    assert "a ranking" in plot.banner_text and "PID 4242 report.exe" in plot.banner_text
    sampler.pin_found.emit(WalPinLookup(METHOD_RANKING, (report, worker)))
    assert plot.checkpoint_job is None  # the report still has the file open: keep waiting
    with qtbot.waitSignal(session.checkpoint_done, timeout=30_000):
        sampler.pin_found.emit(WalPinLookup(METHOD_RANKING, (worker,)))
    assert not plot.retry_when_free
    qtbot.waitUntil(lambda: plot.checkpoint_job.is_finished, timeout=30_000)
