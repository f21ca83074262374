"""The sampler: a read-only statistics job every few seconds, kept in bounded ring buffers.

:class:`Sampler` runs :func:`~queue_admin_gui.core.sampling.read_sample` as a *read* job on
the session's :class:`~queue_admin_gui.jobs.JobRunner`, so it runs beside backups and
checkpoints and never on the GUI thread. Each sample opens the file, reads and closes it: the
monitor never holds a read transaction that would itself pin the WAL. A locked, missing or
replaced file becomes a gap in the history and a status sentence, and sampling carries on.
Both plot widgets share one sampler; the window creates it and calls :meth:`Sampler.start`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from .core.errors import QueueAdminError
from .core.progress import CancelCheck, ProgressCallback
from .core.sampling import (
    CheckpointOutcome,
    Sample,
    SampleHistory,
    TaskCountHistory,
    diagnose_long_reader,
    history_capacity,
    read_sample,
    replaced_file_error,
)
from .jobs import Job
from .session import Session
from .ui.activity_log import mark_background

#: Task counts scan an index, so they are taken only this often.
TASK_COUNT_INTERVAL_SECONDS = 10.0
#: Checkpoint outcomes kept for the diagnosis (only the recent ones matter).
CHECKPOINTS_KEPT = 50


class Sampler(QObject):
    """Samples the session's database on a timer into :attr:`history` and :attr:`tasks`.

    ``clock`` returns wall-clock epoch seconds; tests pass a fake one and call :meth:`tick`.
    Signals: ``sampled(Sample)`` after each good sample, ``gap(str)`` with the reason when a
    sample could not be taken, ``status_changed(str)`` when the sentence to show changes
    ("" when sampling works), ``checkpoint_recorded(CheckpointOutcome)``, and ``cleared``
    when another database was opened and the history started afresh.
    """

    sampled = Signal(object)
    gap = Signal(str)
    status_changed = Signal(str)
    checkpoint_recorded = Signal(object)
    cleared = Signal()

    def __init__(self, session: Session, *, clock: Callable[[], float] = time.time,
                 capacity: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.clock = clock
        interval = float(session.config.sample_interval_seconds)
        rows = capacity or history_capacity(interval)
        self.history = SampleHistory(rows)
        self.tasks = TaskCountHistory(max(1, rows // 10))
        self.checkpoints: deque[CheckpointOutcome] = deque(maxlen=CHECKPOINTS_KEPT)
        self.status = ""
        self.skipped_ticks = 0
        self.last_sample: Sample | None = None
        self.job: Job | None = None
        self._identity: tuple[int, int] | None = None
        self._last_task_counts_at: float | None = None
        self._reported_bug = False
        self._in_flight = False
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.tick)
        self._apply_interval(interval)
        session.config_changed.connect(self._on_config_changed)
        session.database_changed.connect(self._on_database_changed)
        session.checkpoint_done.connect(self._on_checkpoint_done)

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        """Sample now and then every ``sample_interval_seconds``."""
        self._timer.start()
        self.tick()

    def stop(self) -> None:
        """Stop the timer; a sample job already running finishes on its own."""
        self._timer.stop()

    @property
    def is_running(self) -> bool:
        """True while the timer is active."""
        return self._timer.isActive()

    @property
    def interval_ms(self) -> int:
        """The timer interval now in use."""
        return self._timer.interval()

    @property
    def busy(self) -> bool:
        """True while a sample job is in flight."""
        return self._in_flight

    def diagnosis(self, window_seconds: float = 300.0) -> str | None:
        """The long-reader sentence when the recent history shows one, else None."""
        return diagnose_long_reader(self.history, list(self.checkpoints), self.clock(),
                                    window_seconds)

    # -- the tick --------------------------------------------------------------------------
    def tick(self) -> Job | None:
        """Start one sample job now, unless one still runs or no database is open."""
        db_path = self.session.db_path
        if db_path is None:
            return None
        if self.busy:
            self.skipped_ticks += 1
            return None
        moment = self.clock()
        with_counts = self.session.is_queue is not False and (
            self._last_task_counts_at is None
            or moment - self._last_task_counts_at >= TASK_COUNT_INTERVAL_SECONDS)
        path = Path(db_path)

        def take(progress: ProgressCallback, cancelled: CancelCheck) -> Sample:
            return read_sample(path, moment, with_task_counts=with_counts)

        self.job = self.session.run(
            "Sample database statistics", take,
            on_done=lambda sample: self._on_sample(path, sample),
            on_error=lambda error: self._on_sample_failed(path, moment, error),
            report_errors=False,
        )
        self._in_flight = True
        self.job.finished.connect(self._on_job_finished)
        mark_background(self.job)
        return self.job

    def _on_job_finished(self) -> None:
        self._in_flight = False

    def _on_sample(self, path: Path, sample: Sample) -> None:
        if path != self.session.db_path:
            return
        if self._identity is not None and sample.identity != self._identity:
            self._identity = sample.identity
            self._record_gap(sample.time, str(replaced_file_error(path)))
            return
        self._identity = sample.identity
        self.history.append_sample(sample)
        if sample.task_counts is not None:
            self.tasks.append_counts(sample.time, sample.task_counts)
            self._last_task_counts_at = sample.time
        self.last_sample = sample
        self._set_status("")
        self.sampled.emit(sample)

    def _on_sample_failed(self, path: Path, moment: float, error: BaseException) -> None:
        if path != self.session.db_path:
            return
        if isinstance(error, QueueAdminError) and error.is_environment:
            reason = str(error)
        else:
            reason = (f"Sampling '{path}' failed unexpectedly ({type(error).__name__}); "
                      "the plot shows a gap and sampling carries on.")
            if not self._reported_bug:
                self._reported_bug = True
                self.session.messages.report_error(error, self.job.error_details
                                                   if self.job is not None else "")
        self._record_gap(moment, reason)

    def _record_gap(self, moment: float, reason: str) -> None:
        self.history.append_gap(moment)
        stamp = datetime.fromtimestamp(moment).strftime("%H:%M:%S")
        self._set_status(f"No sample at {stamp} (the plot shows a gap): {reason}")
        self.gap.emit(reason)

    def _set_status(self, text: str) -> None:
        if text != self.status:
            self.status = text
            self.status_changed.emit(text)

    # -- session events --------------------------------------------------------------------
    def _apply_interval(self, seconds: float) -> None:
        self._timer.setInterval(max(50, int(round(seconds * 1000))))

    def _on_config_changed(self, config: Any) -> None:
        self._apply_interval(float(config.sample_interval_seconds))

    def _on_database_changed(self, db_path: Path | None) -> None:
        self.history.clear()
        self.tasks.clear()
        self.checkpoints.clear()
        self.last_sample = None
        self._identity = None
        self._last_task_counts_at = None
        self._set_status("")
        self.cleared.emit()
        if db_path is not None and self.is_running:
            self.tick()

    def _on_checkpoint_done(self, result: Any) -> None:
        if not isinstance(result, dict):
            return
        outcome = CheckpointOutcome.from_result(result, self.clock())
        self.checkpoints.append(outcome)
        self.checkpoint_recorded.emit(outcome)
        if self.is_running:
            self.tick()
