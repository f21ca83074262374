"""The health badge's grade, kept current: a slower health read, graded with every sample.

The sampler reads the WAL and page counts every second; what a sample does not measure
(stale leases, the newest backup, free space) is read every 30 s, after every change a tab
announces and after a backup. Each sample is graded together with the last such read, so
the badge follows the WAL at once without reading the lease table every second.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from ..app.jobs import Job, mark_background
from ..app.monitor import Sampler
from ..app.session import Session
from ..core.measurements.health import (
    HealthMeasurements,
    HealthSnapshot,
    assess_health,
    measure_health,
)
from ..core.measurements.readings import measurements_with_sample
from ..core.measurements.sampling import Sample
from ..core.measurements.starvation import report_with_starvation
from .status_bar import DatabaseStatusBar

#: How often the health facts a sample does not measure (stale leases, backups, free space)
#: are read; WAL size and free pages follow every sample.
HEALTH_INTERVAL_MS = 30_000


class HealthWatch(QObject):
    """Reads health in background jobs, grades it with the samples, shows it in the status bar."""

    #: The HealthReport the badge shows, each time it is graded.
    changed = Signal(object)

    def __init__(self, session: Session, sampler: Sampler, status: DatabaseStatusBar,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.sampler = sampler
        self.status = status
        #: The last grade shown, with the measurements behind it.
        self.health: HealthSnapshot | None = None
        #: The last slower health read, which the samples are graded together with.
        self.read: HealthSnapshot | None = None
        self._job: Job | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(HEALTH_INTERVAL_MS)
        self.timer.timeout.connect(self.refresh)
        session.config_changed.connect(self._on_config_changed)
        session.backup_done.connect(lambda _result: self.refresh())
        session.changed.connect(lambda _topic: self.refresh())
        sampler.sampled.connect(self._on_sampled)
        sampler.gap.connect(self._on_sample_gap)
        sampler.starvation_changed.connect(lambda _found: self.show())
        sampler.holders_found.connect(lambda _lookup: self.show())
        session.damage_found.connect(self._on_damage_found)

    def follow_database(self, path: Path | None) -> None:
        """Forget the old grade and read the new database's health now and every 30 s."""
        if path is None:
            self.timer.stop()
            return
        self.health = None
        self.read = None
        self.refresh()
        self.timer.start()

    def refresh(self) -> None:
        """Measure health in a background read job, unless the previous one still runs."""
        path = self.session.db_path
        if path is None or (self._job is not None and not self._job.is_finished):
            return
        config = self.session.config
        self._job = mark_background(self.session.run(
            "Read health", lambda progress, cancelled: measure_health(path, config, progress,
                                                                      cancelled),
            on_done=self._on_measured, on_error=self._on_failed, report_errors=False))

    def show(self) -> None:
        """Grade the last health read together with the latest sample, and show it."""
        read = self.read
        if read is None:
            return
        measured = read.measured
        sample = self.sampler.last_sample
        if sample is not None and not self.sampler.stale:
            measured = measurements_with_sample(measured, sample)
        if self.session.damage and not measured.damage:
            # found by another read (a tab, the integrity check): still damaged
            measured = dataclasses.replace(measured, damage=self.session.damage)
        report = report_with_starvation(assess_health(self.session.config, measured),
                                        self.sampler.advice())
        self.health = HealthSnapshot(read.stats, measured, report, read.database_path)
        self.status.show_health(self.health.report, measured.last_backup_at,
                                measured.has_backups)
        self.changed.emit(self.health.report)

    def _on_measured(self, snapshot: HealthSnapshot) -> None:
        if Path(snapshot.database_path) != self.session.db_path:
            return
        self.read = snapshot
        self.show()
        if snapshot.measured.damage:
            self.session.mark_damaged(snapshot.measured.damage)

    def _on_damage_found(self, damage: str) -> None:
        """The file was found damaged: the badge turns red at once, the tray hears of it."""
        self.status.badge.show_damaged(damage)
        if self.read is not None:
            self.show()
            return
        self.changed.emit(assess_health(self.session.config,
                                        HealthMeasurements(damage=damage)))

    def _on_failed(self, error: BaseException) -> None:
        self.status.show_unreadable(str(error))

    def _on_config_changed(self, _config: object) -> None:
        self.show()
        self.refresh()

    def _on_sampled(self, sample: Sample) -> None:
        self.status.show_sample(sample)
        self.show()

    def _on_sample_gap(self, reason: str) -> None:
        self.status.show_sample_stale(self.sampler.last_sample, reason)
