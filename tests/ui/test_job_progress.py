from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt

from queue_admin_gui.app.jobs import Job, JobRunner
from queue_admin_gui.core.errors import OperationCancelled
from queue_admin_gui.ui.job_progress import JobProgressPanel


@pytest.fixture
def runner(qtbot):
    runner = JobRunner()
    yield runner
    assert runner.shutdown(10_000)


def test_quick_job_never_shows_the_panel(qtbot, runner):
    panel = JobProgressPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.hide()
    job = Job("Quick", lambda progress, cancelled: 1)
    panel.track(job)
    with qtbot.waitSignal(job.finished, timeout=10_000):
        runner.run(job)
    assert not panel.isVisible()
    assert not panel.is_tracking


def test_slow_job_shows_progress_and_cancel_stops_it(qtbot, runner):
    host = JobProgressPanel()
    qtbot.addWidget(host)
    release = threading.Event()

    def work(progress, cancelled):
        progress(3, 10, "Copying pages")
        while not cancelled():
            release.wait(0.01)
        raise OperationCancelled("Work was cancelled; nothing was changed.")

    job = Job("Slow", work, writes=True)
    host.track(job)
    runner.run(job)
    qtbot.waitUntil(lambda: not host.isHidden(), timeout=10_000)
    qtbot.waitUntil(lambda: host.stage_label.text() == "Copying pages", timeout=10_000)
    assert host.bar.format() == "3 / 10"
    assert host.title_label.text() == "Slow"
    with qtbot.waitSignal(job.cancelled, timeout=10_000):
        qtbot.mouseClick(host.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: host.isHidden(), timeout=10_000)
    assert job.cancel_requested
