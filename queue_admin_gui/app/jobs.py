"""Run core callables on worker threads and report back to widgets by signals.

A :class:`Job` wraps one core callable ``func(progress, cancelled) -> result``. The callable
opens its own sqlite3 connection inside the worker thread and closes it there; the job only
carries callbacks across: ``progress(done, total, stage)`` becomes the :attr:`Job.progress`
signal and ``cancelled()`` reads a thread-safe flag that :meth:`Job.cancel` sets.

:class:`JobRunner` starts read jobs at once and runs write jobs (backup, restore, checkpoint,
vacuum, analyze, requeue) one at a time, in the order they were asked for. A running thread
is never dropped or terminated: the runner keeps it until it has finished, and
:meth:`JobRunner.shutdown` cancels and waits.

A finished job is released: once its outcome's handlers have run, its worker thread (already
ended and waited for) is dropped and the job's Qt object is deleted at the next turn of the
event loop, which also drops every slot connected to it. A window open for weeks runs
thousands of jobs; none of them stays behind. Python attributes (``state``, ``result``,
``error``, ``duration``) stay readable on a job someone still holds.
"""

from __future__ import annotations

import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from ..core.errors import OperationCancelled, QueueAdminError
from ..core.progress import CancelCheck, ProgressCallback

JobFunction = Callable[[ProgressCallback, CancelCheck], Any]


#: The dynamic property that marks a background job (see :func:`mark_background`).
_BACKGROUND_PROPERTY = "queueAdminBackground"


class JobState(Enum):
    """Where a job is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


_live_threads: weakref.WeakSet[QThread] = weakref.WeakSet()
_live_jobs: weakref.WeakSet[Job] = weakref.WeakSet()


def running_job_threads() -> list[QThread]:
    """Worker threads still running: the test suite fails a test that leaves one behind."""
    return [thread for thread in _live_threads if thread.isRunning()]


def track_thread(thread: QThread) -> QThread:
    """Count a long-lived worker thread (the sampler's) among :func:`running_job_threads`."""
    _live_threads.add(thread)
    return thread


def live_job_count() -> int:
    """Job objects still alive in Python: it must not grow with the number of jobs run."""
    return len(_live_jobs)


class _JobThread(QThread):
    """The worker thread: calls the job's function and hands the outcome back."""

    def __init__(self, job: Job) -> None:
        super().__init__()
        self._job: Job | None = job
        _live_threads.add(self)

    def run(self) -> None:
        """Run the core callable; every outcome is reported, nothing escapes the thread."""
        if self._job is not None:
            self._job._execute()

    def forget_job(self) -> None:
        """Drop the reference to the job once the thread has ended (no cycle is left)."""
        self._job = None


class Job(QObject):
    """One core callable, run once on a worker thread.

    The worker thread only emits private signals; the job (which lives in the GUI thread)
    relays them, so every public signal is emitted in the GUI thread and any callable
    connected to it, lambdas included, runs there. Exactly one of :attr:`succeeded`,
    :attr:`failed`, :attr:`cancelled` is emitted, then :attr:`finished`.
    """

    started = Signal()
    progress = Signal(object, object, str)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    finished = Signal()
    _worker_progress = Signal(object, object, str)
    _worker_ended = Signal()

    def __init__(self, title: str, func: JobFunction, *, writes: bool = False,
                 parameters: dict[str, Any] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.func = func
        self.writes = writes
        self.parameters = dict(parameters or {})
        self.state = JobState.PENDING
        self._outcome = JobState.PENDING
        self.result: Any = None
        self.error: BaseException | None = None
        self.error_details = ""
        #: Set by whoever handles the result when the job succeeded without doing all it was
        #: asked (a checkpoint that could not finish); the activity log records it.
        self.note = ""
        self.started_at: float | None = None
        self.duration: float | None = None
        self._cancel_event = threading.Event()
        self._thread: _JobThread | None = None
        self._worker_progress.connect(self._on_worker_progress)
        self._worker_ended.connect(self._on_worker_ended)
        _live_jobs.add(self)

    # -- called from the GUI thread -------------------------------------------------------
    def cancel(self) -> None:
        """Ask the job to stop; the core callable stops at its next check and rolls back."""
        self._cancel_event.set()

    @property
    def cancel_requested(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancel_event.is_set()

    @property
    def is_finished(self) -> bool:
        """True once the job has succeeded, failed or been cancelled."""
        return self.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)

    def start(self) -> None:
        """Start the worker thread (the runner calls this; widgets use JobRunner.run)."""
        if self.state is not JobState.PENDING:
            raise RuntimeError(f"job {self.title!r} was already started")
        self.state = JobState.RUNNING
        self.started_at = time.time()
        self._thread = _JobThread(self)
        self._thread.start()
        self.started.emit()

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until the worker thread has ended; True when it has (or never started)."""
        if self._thread is None:
            return True
        if timeout_ms < 0:
            return self._thread.wait()
        return self._thread.wait(timeout_ms)

    # -- called in the worker thread ------------------------------------------------------
    def _execute(self) -> None:
        begin = time.monotonic()
        try:
            self.result = self.func(self._worker_progress.emit, self._cancel_event.is_set)
        except OperationCancelled as error:
            self._finish(JobState.CANCELLED, begin, error=error)
        except Exception as error:  # QueueAdminError, or a bug: reported, never swallowed
            if not isinstance(error, QueueAdminError) or not error.is_environment:
                self.error_details = "".join(traceback.format_exception(error))
            self._finish(JobState.FAILED, begin, error=error)
        else:
            self._finish(JobState.SUCCEEDED, begin)
        self._worker_ended.emit()

    def _finish(self, state: JobState, begin: float,
                error: BaseException | None = None) -> None:
        self.duration = time.monotonic() - begin
        self.error = error
        self._outcome = state

    # -- relays, run in the GUI thread ----------------------------------------------------
    def _on_worker_progress(self, done: int, total: int, stage: str) -> None:
        self.progress.emit(done, total, stage)

    def _on_worker_ended(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.wait()  # the run() has returned; this only lets the thread wind down
            thread.forget_job()
        # The state changes here, in the GUI thread, right before the outcome's signals: a
        # widget that sees the job finished has also had its handlers run.
        self.state = self._outcome
        if self.state is JobState.SUCCEEDED:
            self.succeeded.emit(self.result)
        elif self.state is JobState.CANCELLED:
            self.cancelled.emit()
        else:
            self.failed.emit(self.error)
        self.finished.emit()
        self.release()

    def release(self) -> None:
        """Delete the Qt object at the next event-loop turn (never while its thread runs)."""
        if self._thread is None or not self._thread.isRunning():
            self.deleteLater()


def mark_background(job: Job) -> Job:
    """Keep ``job`` out of the activity log (a periodic read nobody asked for)."""
    job.setProperty(_BACKGROUND_PROPERTY, True)
    return job


def is_background(job: Job) -> bool:
    """True for jobs marked with :func:`mark_background`."""
    return bool(job.property(_BACKGROUND_PROPERTY))


class JobRunner(QObject):
    """Starts jobs: read jobs at once, write jobs one at a time in order.

    ``job_finished`` fires in the GUI thread after the job's own signals, so the activity log
    can record every job in one place.
    """

    job_started = Signal(object)
    job_finished = Signal(object)
    write_busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._write_queue: deque[Job] = deque()
        self._current_write: Job | None = None
        self._running: list[Job] = []

    def run(self, job: Job, *, on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None,
            on_cancelled: Callable[[], None] | None = None,
            progress: Callable[[int, int, str], None] | None = None) -> Job:
        """Queue ``job`` and connect the optional callbacks; returns the job."""
        if on_done is not None:
            job.succeeded.connect(on_done)
        if on_error is not None:
            job.failed.connect(on_error)
        if on_cancelled is not None:
            job.cancelled.connect(on_cancelled)
        if progress is not None:
            job.progress.connect(progress)
        job.finished.connect(lambda: self._on_job_finished(job))
        if job.writes:
            was_busy = self.write_busy
            self._write_queue.append(job)
            self._start_next_write()
            if not was_busy:
                self.write_busy_changed.emit(True)
        else:
            self._start(job)
        return job

    @property
    def write_busy(self) -> bool:
        """True while a write job runs or waits."""
        return self._current_write is not None or bool(self._write_queue)

    @property
    def current_write_job(self) -> Job | None:
        """The write job now running, if any."""
        return self._current_write

    @property
    def active_jobs(self) -> list[Job]:
        """Jobs running now (read and write)."""
        return list(self._running)

    @property
    def busy(self) -> bool:
        """True while any job runs or waits."""
        return bool(self._running) or self.write_busy

    def cancel_all(self) -> None:
        """Cancel every running job and drop the write jobs that have not started."""
        while self._write_queue:
            self._write_queue.popleft().release()
        for job in self._running:
            job.cancel()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel everything and wait for the threads; True when all have ended in time."""
        self.cancel_all()
        deadline = time.monotonic() + timeout_ms / 1000
        for job in list(self._running):
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            if not job.wait(remaining):
                return False
        return True

    def _start(self, job: Job) -> None:
        self._running.append(job)
        job.start()
        self.job_started.emit(job)

    def _start_next_write(self) -> None:
        if self._current_write is None and self._write_queue:
            self._current_write = self._write_queue.popleft()
            self._start(self._current_write)

    def _on_job_finished(self, job: Job) -> None:
        if job in self._running:
            self._running.remove(job)
        self.job_finished.emit(job)
        if job is self._current_write:
            self._current_write = None
            self._start_next_write()
            if not self.write_busy:
                self.write_busy_changed.emit(False)
