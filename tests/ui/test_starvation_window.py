"""A reader pinning the WAL, diagnosed in the real window within a few samples and named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wal_scripts import READER, WRITER

from queue_admin_gui.core.measurements.starvation import STUCK_SAMPLES


def write(writer: subprocess.Popen, rows: int) -> None:
    writer.stdin.write(f"{rows}\n")
    writer.stdin.flush()
    assert writer.stdout.readline().strip() == "written"


def sample_shown(qtbot, window) -> None:
    with qtbot.waitSignal(window.sampler.handled, timeout=30_000):
        window.sampler.tick()


def test_banner_tooltip_and_wal_tab_name_the_reader_within_a_few_samples(
        qtbot, window, demo_db: Path, open_db, tmp_path: Path):
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
        assert "long-running reader is keeping the WAL from being reset" in \
            plot.banner_label.text()
        qtbot.waitUntil(lambda: f"PID {reader.pid}" in plot.banner_label.text(),
                        timeout=30_000)
        advice = plot.banner_label.text().replace("\u200b", "")  # breaks after "/" only
        assert "nightly_report.py" in advice and f"PID {writer.pid}" in advice
        # one piece of advice everywhere: the health tooltip and the WAL tab say the same
        qtbot.waitUntil(lambda: advice in window.status.badge.toolTip(), timeout=10_000)
        assert "run a TRUNCATE checkpoint on the WAL/Checkpoint tab" not in \
            window.status.badge.toolTip()
        assert wal_tab.wal_sentence.text().replace("\u200b", "") == advice
        assert window.sampler.holders_job is not None
    finally:
        for process in (reader, writer):
            process.stdin.close()
            process.wait(30)
            process.stdout.close()
    assert reader.returncode == 0 and writer.returncode == 0
    # the reader is gone: a TRUNCATE works, and the diagnosis ends everywhere
    job = plot.run_truncate_checkpoint()
    qtbot.waitUntil(lambda: job.is_finished and not window.session.runner.write_busy,
                    timeout=60_000)
    sample_shown(qtbot, window)
    assert window.sampler.starvation is None
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
