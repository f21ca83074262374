"""A reader pinning the WAL, diagnosed in the real window within a few samples and named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from wal_scripts import READER, WRITER

from queue_admin_gui.app.messages import Level
from queue_admin_gui.core.measurements.starvation import STUCK_SAMPLES


def write(writer: subprocess.Popen, rows: int) -> None:
    writer.stdin.write(f"{rows}\n")
    writer.stdin.flush()
    assert writer.stdout.readline().strip() == "written"


def sample_shown(qtbot, window) -> None:
    with qtbot.waitSignal(window.sampler.handled, timeout=30_000):
        window.sampler.tick()


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="Windows ranks the holders (tested in core)")
def test_the_reader_pinning_the_wal_is_named_and_the_truncate_retries_once_it_is_gone(
        qtbot, window, demo_db: Path, open_db, tmp_path: Path, presenter):
    open_db(demo_db)
    window.sampler.stop()  # ticks by hand, one per write
    window.show_tab("wal")
    qtbot.waitUntil(lambda: window.health_read is not None, timeout=30_000)
    (tmp_path / "nightly_report.py").write_text(READER)
    (tmp_path / "worker.py").write_text(WRITER)
    writer = subprocess.Popen([sys.executable, str(tmp_path / "worker.py"), str(demo_db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reader = subprocess.Popen([sys.executable, str(tmp_path / "nightly_report.py"),
                               str(demo_db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    plot = window.wal_plot
    wal_tab = window.tab_widgets["wal"]
    try:
        assert reader.stdout.readline().strip() == "reading"
        samples = 0
        while window.sampler.starvation is None and samples < STUCK_SAMPLES + 3:
            write(writer, 600)
            sample_shown(qtbot, window)
            samples += 1
        assert window.sampler.starvation is not None
        assert samples <= STUCK_SAMPLES + 2
        assert plot.banner_shown
        # the lock names the one reader: not the writer, not every program with the file open
        qtbot.waitUntil(lambda: f"PID {reader.pid} python nightly_report.py" in
                        plot.banner_text, timeout=30_000)
        assert f"PID {writer.pid}" not in plot.banner_text
        assert window.sampler.pin is not None and window.sampler.pin.exact
        assert plot.banner_label.text().count("<br>") == 1  # two lines
        # the whole story is one click away, behind "Details"
        assert plot.details_label.isHidden()
        plot.banner_label.linkActivated.emit("details")
        assert not plot.details_label.isHidden()
        qtbot.waitUntil(lambda: f"PID {writer.pid}" in plot.details_label.text(),
                        timeout=30_000)
        advice = window.sampler.advice()
        qtbot.waitUntil(lambda: advice in window.status.badge.toolTip(), timeout=10_000)
        assert wal_tab.wal_sentence.text().replace("\u200b", "") == advice

        # TRUNCATE from the banner cannot finish while the reader reads: it says who and waits
        with qtbot.waitSignal(window.session.checkpoint_done, timeout=60_000):
            qtbot.mouseClick(plot.truncate_button, Qt.MouseButton.LeftButton)
        assert plot.retry_when_free
        warning = presenter.texts(Level.WARNING)[-1]
        assert f"PID {reader.pid} python nightly_report.py still reads" in warning
        assert "runs again by itself once the reader lets go" in warning
        assert "runs again by itself" in plot.banner_text
    finally:
        for process in (reader, writer):
            process.stdin.close()
            process.wait(30)
            process.stdout.close()
    assert reader.returncode == 0 and writer.returncode == 0
    # the reader is gone: the next sample finds the lock free and the TRUNCATE runs again
    with qtbot.waitSignal(window.session.checkpoint_done, timeout=60_000) as done:
        sample_shown(qtbot, window)
    assert done.args[0].busy == 0
    qtbot.waitUntil(lambda: not window.session.runner.write_busy, timeout=60_000)
    assert not plot.retry_when_free
    assert "run again by itself once the reader let go" in window.status.currentMessage()
    sample_shown(qtbot, window)
    assert window.sampler.starvation is None
    assert str(reader.pid) not in plot.banner_text
    assert not wal_tab.wal_sentence.text().startswith("A long-running reader")
    assert "long-running reader" not in window.status.badge.toolTip()


def test_a_file_that_cannot_be_read_is_not_called_starved(qtbot, window, demo_db: Path,
                                                          open_db):
    from queue_admin_gui.core.measurements.starvation import Starvation

    open_db(demo_db)
    window.sampler.stop()
    sampler = window.sampler
    sampler.starvation = Starvation("checkpoints stay put", 1.0, 0.0)
    window.wal_plot._update_banner()
    assert window.wal_plot.banner_shown
    for suffix in ("", "-wal", "-shm"):
        Path(f"{demo_db}{suffix}").unlink(missing_ok=True)
    with qtbot.waitSignal(sampler.starvation_changed, timeout=30_000) as changed:
        sample_shown(qtbot, window)
    assert changed.args == [None] and sampler.starvation is None
    assert not window.wal_plot.banner_shown
