from __future__ import annotations

import threading

import pytest

from queue_admin_gui.app.jobs import Job, JobRunner, JobState
from queue_admin_gui.core.errors import ErrorKind, OperationCancelled, QueueBackupError


@pytest.fixture
def runner(qtbot):
    runner = JobRunner()
    yield runner
    assert runner.shutdown(10_000)


def test_job_result_and_progress_arrive_in_gui_thread(qtbot, runner):
    gui_thread = threading.get_ident()
    seen = []

    def work(progress, cancelled):
        progress(1, 3, "step")
        progress(3, 3, "done")
        return threading.get_ident()

    job = Job("Work", work)
    job.progress.connect(lambda done, total, stage: seen.append((done, total, stage,
                                                                 threading.get_ident())))
    results = []
    with qtbot.waitSignal(job.finished, timeout=10_000):
        runner.run(job, on_done=lambda value: results.append((value, threading.get_ident())))
    worker_ident, callback_ident = results[0]
    assert worker_ident != gui_thread
    assert callback_ident == gui_thread
    assert [entry[:3] for entry in seen] == [(1, 3, "step"), (3, 3, "done")]
    assert all(entry[3] == gui_thread for entry in seen)
    assert job.state is JobState.SUCCEEDED


def test_write_jobs_run_one_at_a_time_in_order(qtbot, runner):
    order = []
    lock = threading.Lock()
    running = []

    def make(index):
        def work(progress, cancelled):
            with lock:
                running.append(index)
                assert len(running) == 1, "two write jobs ran at once"
            order.append(index)
            with lock:
                running.remove(index)
        return work

    busy_changes = []
    runner.write_busy_changed.connect(busy_changes.append)
    jobs = [Job(f"write {i}", make(i), writes=True) for i in range(4)]
    with qtbot.waitSignal(jobs[-1].finished, timeout=10_000):
        for job in jobs:
            runner.run(job)
        assert runner.write_busy
    assert order == [0, 1, 2, 3]
    assert all(job.state is JobState.SUCCEEDED for job in jobs)
    qtbot.waitUntil(lambda: not runner.write_busy)
    assert busy_changes == [True, False]


def test_cancel_reaches_the_core_callable(qtbot, runner):
    started = threading.Event()

    def work(progress, cancelled):
        started.set()
        while not cancelled():
            threading.Event().wait(0.01)
        raise OperationCancelled("Work was cancelled; nothing was changed.")

    job = Job("Work", work, writes=True)
    runner.run(job)
    assert started.wait(10)
    with qtbot.waitSignal(job.cancelled, timeout=10_000):
        job.cancel()
    assert job.state is JobState.CANCELLED


def test_known_error_and_bug_are_told_apart(qtbot, runner):
    def known(progress, cancelled):
        raise QueueBackupError("Backup failed: the disk is full.", ErrorKind.DISK_FULL)

    def bug(progress, cancelled):
        raise ValueError("boom")

    known_job, bug_job = Job("known", known), Job("bug", bug)
    with qtbot.waitSignals([known_job.failed, bug_job.failed], timeout=10_000):
        runner.run(known_job)
        runner.run(bug_job)
    assert known_job.error.kind is ErrorKind.DISK_FULL
    assert known_job.error_details == ""
    assert isinstance(bug_job.error, ValueError)
    assert "ValueError: boom" in bug_job.error_details


def test_a_job_reads_finished_only_once_its_handlers_have_run(qtbot, runner):
    worker_done = threading.Event()

    def work(progress, cancelled):
        worker_done.set()
        return 42

    job = Job("Work", work)
    seen_when_finished = []
    job.succeeded.connect(lambda value: seen_when_finished.append(job.is_finished))
    with qtbot.waitSignal(job.finished, timeout=10_000):
        runner.run(job)
        assert worker_done.wait(10)
        job.wait(10_000)  # the worker thread has ended; its outcome is not relayed yet
        assert not job.is_finished
    assert seen_when_finished == [True]
    assert job.state is JobState.SUCCEEDED and job.result == 42


def _settle(qtbot) -> None:
    """Let deferred deletions run, then collect, as the window's event loop would."""
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        QCoreApplication.processEvents()
    gc.collect()


def test_finished_jobs_are_released(qtbot, runner):
    """A job that has finished leaves no Job, no QThread and no child QObject behind."""
    import gc

    from PySide6.QtCore import QObject, QThread

    from queue_admin_gui.app.jobs import live_job_count

    owner = QObject()
    _settle(qtbot)
    jobs_before = live_job_count()
    threads_before = sum(isinstance(item, QThread) for item in gc.get_objects())
    for index in range(60):
        job = Job(f"read {index}", lambda progress, cancelled, i=index: i, parent=owner,
                  writes=index % 3 == 0)
        # a slot that holds the job itself, as the window's handlers do
        job.failed.connect(lambda error, held=job: held.title)
        with qtbot.waitSignal(job.finished, timeout=10_000):
            runner.run(job, on_done=lambda value: None)
        assert job.state is JobState.SUCCEEDED and job.result == index
    del job
    _settle(qtbot)
    assert owner.findChildren(Job) == []
    assert live_job_count() == jobs_before
    assert sum(isinstance(item, QThread) for item in gc.get_objects()) == threads_before


def test_a_released_job_still_tells_its_outcome(qtbot, runner):
    job = Job("Work", lambda progress, cancelled: 7)
    with qtbot.waitSignal(job.finished, timeout=10_000):
        runner.run(job)
    _settle(qtbot)
    assert job.is_finished and job.result == 7 and job.wait(0)
    with pytest.raises(RuntimeError):
        job.start()
