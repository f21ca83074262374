"""The progress strip a tab shows while one of its jobs runs.

A quick job never flashes a bar: the panel appears only when the job is still running after
:data:`SHOW_DELAY_MS`. It shows the stage text, ``done / total`` on a bar (busy when the total
is unknown) and a Cancel button that asks the job to stop.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ..app.jobs import Job

#: Jobs finishing faster than this never show the panel.
SHOW_DELAY_MS = 300

_BAR_SCALE = 1000


class JobProgressPanel(QWidget):
    """Progress bar, stage text and Cancel for the job a tab started.

    ``track(job)`` may be called for several jobs in turn; the panel follows the latest one
    and hides when it ends.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self._connected = False
        self.title_label = QLabel(self)
        self.title_label.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        self.stage_label = QLabel(self)
        self.stage_label.setTextFormat(Qt.TextFormat.PlainText)
        self.bar = QProgressBar(self)
        self.bar.setMinimumWidth(220)
        self.bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop this operation; what it started is rolled back.")
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.addWidget(self.title_label)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.stage_label, 1)
        layout.addWidget(self.cancel_button)
        self._show_timer = QTimer(self)
        self._show_timer.setSingleShot(True)
        self._show_timer.setInterval(SHOW_DELAY_MS)
        self._show_timer.timeout.connect(self._on_show_delay_elapsed)
        self.hide()

    def track(self, job: Job) -> None:
        """Follow ``job``: appear after the delay if it is still running, hide when it ends."""
        if self.job is not None:
            self._disconnect(self.job)
        self.job = job
        self.title_label.setText(job.title)
        self.stage_label.setText("Waiting for the previous operation..." if job.writes
                                 and not job.started_at else "Starting...")
        self.bar.setRange(0, 0)
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        job.progress.connect(self._on_progress)
        job.started.connect(self._on_started)
        job.finished.connect(self._on_finished)
        self._connected = True
        if job.is_finished:
            self._on_finished()
            return
        self._show_timer.start()

    @property
    def is_tracking(self) -> bool:
        """True while the tracked job has not finished."""
        return self.job is not None and not self.job.is_finished

    def _disconnect(self, job: Job) -> None:
        if not self._connected:
            return
        self._connected = False
        for signal, slot in ((job.progress, self._on_progress),
                             (job.started, self._on_started),
                             (job.finished, self._on_finished)):
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):
                pass

    def _on_show_delay_elapsed(self) -> None:
        if self.is_tracking:
            self.show()

    def _on_started(self) -> None:
        self.stage_label.setText("Starting...")

    def _on_progress(self, done: int, total: int, stage: str) -> None:
        if total and total > 0:
            self.bar.setRange(0, _BAR_SCALE)
            self.bar.setValue(int(_BAR_SCALE * min(max(done, 0), total) / total))
            self.bar.setFormat(f"{done:,} / {total:,}")
        else:
            self.bar.setRange(0, 0)
        if stage:
            self.stage_label.setText(stage)

    def _on_cancel_clicked(self) -> None:
        if self.job is not None and not self.job.is_finished:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.cancel_button.setText("Cancelling...")
            self.stage_label.setText("Cancelling: stopping at the next safe point...")

    def _on_finished(self) -> None:
        self._show_timer.stop()
        if self.job is not None:
            self._disconnect(self.job)
        self.hide()
