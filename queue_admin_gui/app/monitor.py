"""The sampler: a read-only sample every second or so, kept in bounded ring buffers.

:class:`Sampler` runs :func:`~queue_admin_gui.core.measurements.sampling.read_sample` on one
long-lived worker: a :class:`SampleWorker` moved to one QThread for the sampler's whole life.
A timer in the GUI thread asks the worker for a sample through a queued signal; the worker opens the
file read-only, reads and closes it inside its thread and answers with another signal. No
object is made per sample beyond the sample itself, so a window left open for weeks keeps a
flat memory line (a thread and a Job per sample cost 12 KB each and never went away). The
monitor never holds a read transaction that would itself pin the WAL, and it runs beside
backups and checkpoints, never on the GUI thread. A locked, missing or replaced file becomes a
gap in the history and a status sentence, and sampling carries on. Both plot widgets, the
status bar and the tabs share one sampler; the window creates it, calls :meth:`Sampler.start`
and, before it goes away, :meth:`Sampler.stop`, which ends the worker thread cleanly.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, QTimer, Signal

from ..core.errors import QueueAdminError
from ..core.maintenance_results import CheckpointResult
from ..core.measurements.health import damage_of
from ..core.measurements.holders import HolderLookup, find_holders
from ..core.measurements.sampling import (
    CheckpointOutcome,
    Sample,
    SampleHistory,
    TaskCountHistory,
    history_capacity,
    read_sample,
    replaced_file_error,
)
from ..core.measurements.starvation import Starvation, diagnose_starvation, starvation_advice
from ..core.measurements.wal_pin import WalPinLookup, find_wal_pin
from .jobs import Job, track_thread
from .session import Session

#: Task counts scan an index, so they are taken only this often.
TASK_COUNT_INTERVAL_SECONDS = 10.0
#: Checkpoint outcomes kept for the diagnosis (only the recent ones matter).
CHECKPOINTS_KEPT = 50
#: While a reader pins the WAL, the programs holding the database are looked up this often.
HOLDERS_INTERVAL_MS = 30_000
#: How long :meth:`Sampler.stop` waits for the sample in flight (a read waits 250 ms at most).
STOP_WAIT_MS = 30_000


@dataclass(frozen=True)
class SampleRequest:
    """One sample asked of the worker: which file, stamped when, with task counts or not."""

    path: Path
    moment: float
    with_task_counts: bool


class SampleWorker(QObject):
    """Lives in the sampler's thread and takes one sample per request.

    Each request opens its own read-only sqlite3 connection in this thread and closes it
    before answering, so nothing stays open between samples (a deleted or replaced file is
    seen at once, and Windows can rename the file between two samples).
    """

    taken = Signal(object, object)
    failed = Signal(object, object, str)

    def take(self, request: SampleRequest) -> None:
        """Read one sample; the answer is :attr:`taken` or :attr:`failed`, never an exception."""
        try:
            sample = read_sample(request.path, request.moment,
                                 with_task_counts=request.with_task_counts)
        except Exception as error:  # a known error becomes a gap; a bug is also reported
            details = "" if isinstance(error, QueueAdminError) and error.is_environment \
                else "".join(traceback.format_exception(error))
            self.failed.emit(request, error, details)
        else:
            self.taken.emit(request, sample)


class Sampler(QObject):
    """Samples the session's database on a timer into :attr:`history` and :attr:`tasks`.

    ``clock`` returns wall-clock epoch seconds; tests pass a fake one and call :meth:`tick`.
    Signals: ``sampled(Sample)`` after each good sample, ``gap(str)`` with the reason when a
    sample could not be taken, ``handled()`` after either, ``status_changed(str)`` when the
    sentence to show changes ("" when sampling works), ``checkpoint_recorded(CheckpointOutcome)``,
    and ``cleared`` when another database was opened and the history started afresh.
    """

    sampled = Signal(object)
    gap = Signal(str)
    handled = Signal()
    status_changed = Signal(str)
    checkpoint_recorded = Signal(object)
    cleared = Signal()
    #: A :class:`Starvation` when a reader starts pinning the WAL, None when it lets go.
    starvation_changed = Signal(object)
    #: The programs holding the database were looked up (a HolderLookup).
    holders_found = Signal(object)
    #: The reader pinning the WAL was looked up (a WalPinLookup).
    pin_found = Signal(object)
    _requested = Signal(object)

    def __init__(self, session: Session, *, clock: Callable[[], float] = time.time,
                 capacity: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.clock = clock
        interval = float(session.config.sample_interval_seconds)
        rows = capacity or history_capacity(interval)
        self.history = SampleHistory(rows)
        self.tasks = TaskCountHistory(max(1, rows // 10))
        session.histories = (self.history, self.tasks)
        self.checkpoints: deque[CheckpointOutcome] = deque(maxlen=CHECKPOINTS_KEPT)
        self.status = ""
        self.skipped_ticks = 0
        self.last_sample: Sample | None = None
        #: When the latest attempt failed (epoch seconds); None again once a sample succeeds.
        self.last_failure_at: float | None = None
        self.samples_taken = 0
        #: The latest diagnosis: evidence that a reader pins the WAL, or None.
        self.starvation: Starvation | None = None
        #: Who had the database open at the last lookup made while the WAL was pinned.
        self.holders: HolderLookup | None = None
        #: Called with each lookup job as it starts (the window keeps them out of its log).
        self.job_hook: Callable[[Job], object] | None = None
        self.holders_job: Job | None = None
        #: Who holds a read mark of the WAL, from the last lookup (None until one ran).
        self.pin: WalPinLookup | None = None
        self.pin_job: Job | None = None
        #: True while a view waits for the reader to let go (pins are looked up every sample).
        self.follow_pin = False
        self._holders_timer = QTimer(self)
        self._holders_timer.setInterval(HOLDERS_INTERVAL_MS)
        self._holders_timer.timeout.connect(self.look_up_holders)
        self._identity: tuple[int, int] | None = None
        self._last_task_counts_at: float | None = None
        self._reported_bug = False
        self._in_flight = False
        self._thread = track_thread(QThread())
        self._thread.setObjectName("sampler")
        self._worker = SampleWorker()
        self._worker.moveToThread(self._thread)
        queued = Qt.ConnectionType.QueuedConnection
        self._requested.connect(self._worker.take, queued)
        self._worker.taken.connect(self._on_taken, queued)
        self._worker.failed.connect(self._on_failed, queued)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.tick)
        self._apply_interval(interval)
        session.config_changed.connect(self._on_config_changed)
        session.database_changed.connect(self._on_database_changed)
        session.checkpoint_done.connect(self._on_checkpoint_done)
        application = QCoreApplication.instance()
        if application is not None:
            application.aboutToQuit.connect(self.stop)

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        """Sample now and then every ``sample_interval_seconds``."""
        self._timer.start()
        self.tick()

    def stop(self) -> None:
        """Stop the timer and end the worker thread after the sample in flight (waits for it).

        The window calls this before it goes away: a running QThread is never dropped. A
        later :meth:`tick` or :meth:`start` starts the thread again.
        """
        self._timer.stop()
        self._holders_timer.stop()
        if self._thread.isRunning():
            self._thread.quit()
            self._thread.wait(STOP_WAIT_MS)

    @property
    def thread_running(self) -> bool:
        """True while the worker thread runs (between the first tick and :meth:`stop`)."""
        return self._thread.isRunning()

    @property
    def is_running(self) -> bool:
        """True while the timer is active."""
        return self._timer.isActive()

    @property
    def interval_ms(self) -> int:
        """The timer interval now in use."""
        return self._timer.interval()

    @property
    def stale(self) -> bool:
        """True when the latest attempt failed: :attr:`last_sample` is no longer current."""
        return self.last_failure_at is not None

    @property
    def busy(self) -> bool:
        """True while a sample is in flight."""
        return self._in_flight

    def diagnosis(self, window_seconds: float = 300.0) -> str | None:
        """The long-reader sentence when the recent history shows one, else None."""
        found = diagnose_starvation(self.history, list(self.checkpoints), self.clock(),
                                    window_seconds)
        return None if found is None else starvation_advice(found)

    def advice(self) -> str | None:
        """The one piece of advice every view shows while a reader pins the WAL, else None.

        Programs that have ended since the last lookup are left out: a dead PID is never
        named as holding the database.
        """
        if self.starvation is None:
            return None
        holders = self.holders
        if holders is not None:
            holders = dataclasses.replace(holders, holders=tuple(
                holder for holder in holders.holders if psutil.pid_exists(holder.pid)))
        return starvation_advice(self.starvation, holders)

    def look_up_pin(self) -> Job | None:
        """Find the reader holding the WAL (by its lock where the system tells) in a read job."""
        path = self.session.db_path
        if path is None or (self.pin_job is not None and not self.pin_job.is_finished):
            return None
        rows = self.history.ordered(("time", "wal_frames"))
        job = self.session.run(
            "Find the reader pinning the WAL",
            lambda progress, cancelled: find_wal_pin(path, history=rows),
            parameters={"database": str(path)}, report_errors=False,
            on_done=lambda lookup: self._on_pin_found(path, lookup))
        self.pin_job = job
        if self.job_hook is not None:
            self.job_hook(job)
        return job

    def _on_pin_found(self, path: Path, lookup: WalPinLookup) -> None:
        if path != self.session.db_path:
            return
        self.pin = lookup.alive()
        self.pin_found.emit(self.pin)

    def look_up_holders(self) -> Job | None:
        """Find the programs holding the database in a read job (not on the GUI thread)."""
        path = self.session.db_path
        if path is None or (self.holders_job is not None and not self.holders_job.is_finished):
            return None
        job = self.session.run(
            "Find programs holding the database",
            lambda progress, cancelled: find_holders(path),
            parameters={"database": str(path)}, report_errors=False,
            on_done=lambda lookup: self._on_holders_found(path, lookup))
        self.holders_job = job
        if self.job_hook is not None:
            self.job_hook(job)
        return job

    def _on_holders_found(self, path: Path, lookup: HolderLookup) -> None:
        if path != self.session.db_path or self.starvation is None:
            return
        self.holders = lookup
        self.holders_found.emit(lookup)

    def _diagnose(self) -> None:
        """Diagnose after every reading; tell listeners when starvation starts or ends."""
        found = diagnose_starvation(self.history, list(self.checkpoints), self.clock())
        was = self.starvation
        self.starvation = found
        if found is not None and was is None:
            self.holders = None
            self.look_up_holders()
            self._holders_timer.start()
        elif found is None and was is not None:
            self._holders_timer.stop()
            self.holders = None
        if (found is None) != (was is None) or (
                found is not None and was is not None and found.evidence != was.evidence):
            self.starvation_changed.emit(found)

    # -- the tick --------------------------------------------------------------------------
    def tick(self) -> SampleRequest | None:
        """Ask the worker for one sample now, unless one is in flight or no database is open."""
        db_path = self.session.db_path
        if db_path is None:
            return None
        if self.busy:
            self.skipped_ticks += 1
            return None
        if not self._thread.isRunning():
            self._thread.start()
        moment = self.clock()
        with_counts = self.session.is_queue is not False and (
            self._last_task_counts_at is None
            or moment - self._last_task_counts_at >= TASK_COUNT_INTERVAL_SECONDS)
        request = SampleRequest(Path(db_path), moment, with_counts)
        self._in_flight = True
        self._requested.emit(request)
        return request

    def _on_taken(self, request: SampleRequest, sample: Sample) -> None:
        self._in_flight = False
        self.samples_taken += 1
        self._on_sample(request.path, sample)
        self.handled.emit()

    def _on_failed(self, request: SampleRequest, error: BaseException, details: str) -> None:
        self._in_flight = False
        self._on_sample_failed(request.path, request.moment, error, details)
        self.handled.emit()

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
        self.last_failure_at = None
        self._set_status("")
        self._diagnose()
        if self.starvation is not None or self.follow_pin:
            self.look_up_pin()
        self.sampled.emit(sample)

    def _on_sample_failed(self, path: Path, moment: float, error: BaseException,
                          details: str) -> None:
        if path != self.session.db_path:
            return
        if isinstance(error, QueueAdminError) and error.is_environment:
            reason = str(error)
            damage = damage_of(error)
            if damage is not None:
                self.session.mark_damaged(damage)
        else:
            reason = (f"Sampling '{path}' failed unexpectedly ({type(error).__name__}); "
                      "the plot shows a gap and sampling carries on.")
            if not self._reported_bug:
                self._reported_bug = True
                self.session.messages.report_error(error, details)
        self._record_gap(moment, reason)

    def _record_gap(self, moment: float, reason: str) -> None:
        self.last_failure_at = moment
        if self.starvation is not None:  # nothing is known of a file that cannot be read
            self.starvation = None
            self._holders_timer.stop()
            self.holders = None
            self.starvation_changed.emit(None)
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
        self._timer.setInterval(max(1, int(round(seconds * 1000))))

    def _on_config_changed(self, config: Any) -> None:
        self._apply_interval(float(config.sample_interval_seconds))

    def _on_database_changed(self, db_path: Path | None) -> None:
        self.history.clear()
        self.tasks.clear()
        self.checkpoints.clear()
        self.last_sample = None
        self.last_failure_at = None
        self._identity = None
        self._last_task_counts_at = None
        self._set_status("")
        self._holders_timer.stop()
        self.holders = None
        self.pin = None
        self.follow_pin = False
        if self.starvation is not None:
            self.starvation = None
            self.starvation_changed.emit(None)
        self.cleared.emit()
        if db_path is not None and self.is_running:
            self.tick()

    def _on_checkpoint_done(self, result: Any) -> None:
        if not isinstance(result, (CheckpointResult, dict)):
            return
        outcome = CheckpointOutcome.from_result(result, self.clock())
        self.checkpoints.append(outcome)
        self._diagnose()
        self.checkpoint_recorded.emit(outcome)
        if self.is_running:
            self.tick()
