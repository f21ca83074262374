"""The WAL/Checkpoint tab: how big the write-ahead log is, and checkpoints to shrink it.

Writers append to the ``-wal`` file; a checkpoint copies those pages into the database so
the log can start over. A reader that stays open keeps the log from being reset: the tab
says so in plain words after a checkpoint that could not finish or left frames behind.
The live WAL plot of the monitor goes into :attr:`WalTab.plot_area`.

In the window the sizes come from the sampler's latest reading (the same one the status bar
and the banner show), stamped with the time it was read and greyed when it could not be read
again. The "Last checkpoint" panel shows every checkpoint run, whichever button started it.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..app.jobs import Job
from ..app.monitor import Sampler
from ..app.operations import TOPIC_DATABASE, TOPIC_STATS
from ..app.session import Session
from ..core.errors import format_bytes
from ..core.maintenance import Maintenance
from ..core.maintenance_results import CheckpointResult
from ..core.measurements.readings import CheckpointSummary, reading_time
from ..core.measurements.sampling import Sample
from ..core.measurements.stats import DatabaseStats
from .live_plot import details_above_plot
from .maintenance_tab import MaintenanceTab
from .status_bar import STALE_COLOUR
from .wal_plot import breakable
from .widgets import (
    BAD_COLOUR,
    GOOD_COLOUR,
    WARN_COLOUR,
    KeyValueGrid,
    explanation,
    format_count,
    group_box,
    plot_frame,
    set_status,
    status_label,
)

MEGABYTE = 1024 * 1024
#: How the starvation advice opens (so the tab can tell it from its other sentences).
STARVATION_OPENING = "A long-running reader"

#: One plain line per checkpoint mode, shown beside its button.
MODE_EXPLANATIONS = {
    "PASSIVE": "Copies what it can right now without waiting for anyone. Never blocks "
               "readers or writers; may leave part of the log behind.",
    "FULL": "Waits for writers to pause, then copies the whole log into the database. "
            "Readers keep working.",
    "RESTART": "Like FULL, then also waits for readers, so the next write starts the log "
               "from the beginning.",
    "TRUNCATE": "Like RESTART, then shrinks the -wal file to 0 bytes. Use it to get disk "
                "space back.",
}


def checkpoint_sentence(result: CheckpointResult) -> tuple[str, str]:
    """A plain sentence about a checkpoint result, and the colour to show it in."""
    summary = CheckpointSummary.of(result)
    sentence = summary.sentence(result.wal_bytes_after)
    if summary.finished:
        return sentence, GOOD_COLOUR
    return sentence, BAD_COLOUR if summary.busy else WARN_COLOUR


class WalTab(MaintenanceTab):
    """WAL size and settings, one button per checkpoint mode, the last result, the plot."""

    topics = (TOPIC_STATS, TOPIC_DATABASE)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.last_result: CheckpointResult | None = None
        self.last_failure: str | None = None
        self.sampler: Sampler | None = None
        self.wal_grid = KeyValueGrid()
        self.wal_grid.add_row("wal_size", "WAL file (-wal)")
        self.wal_grid.add_row("read_at", "Read at",
                              "When the sizes above were read; they are read every second.")
        self.wal_grid.add_row("journal_mode", "Journal mode")
        self.wal_grid.add_row("db_size", "Database file")
        self.wal_grid.add_row(
            "wal_autocheckpoint", "Auto-checkpoint after",
            "SQLite checkpoints by itself once the WAL holds this many pages (0: never).")
        self.wal_grid.add_row(
            "journal_size_limit", "WAL size limit",
            "After a checkpoint SQLite trims the -wal file down to this size (-1: no limit).")
        self.refresh_button = QPushButton("Refresh")
        self.checkpoint_buttons: dict[str, QPushButton] = {}
        for mode in Maintenance.CHECKPOINT_MODES:
            button = QPushButton(f"{mode} checkpoint")
            button.clicked.connect(lambda _checked=False, m=mode: self.run_checkpoint(m))
            self.checkpoint_buttons[mode] = button
        self.result_grid = KeyValueGrid()
        self.result_grid.add_row("ran_at", "Ran at")
        self.result_grid.add_row("mode", "Mode")
        self.result_grid.add_row("busy", "Finished")
        self.result_grid.add_row("log_frames", "Frames in WAL")
        self.result_grid.add_row("checkpointed_frames", "Frames checkpointed")
        self.result_grid.add_row("wal_bytes", "WAL size before \u2192 after")
        self.result_grid.add_row("seconds", "Took")
        self.result_label = status_label()
        self.result_label.setText("No checkpoint run from this window yet.")
        self.wal_sentence = status_label()
        plot, self.plot_area = plot_frame()
        self._build_layout(plot)
        self.add_action(self.refresh_button, "Read the WAL size and settings again.")
        for mode, button in self.checkpoint_buttons.items():
            self.add_action(button, f"Run PRAGMA wal_checkpoint({mode}). "
                            + MODE_EXPLANATIONS[mode], writes=True)
        self.refresh_button.clicked.connect(self.refresh)
        session.config_changed.connect(lambda _config: self.refresh())
        session.checkpoint_done.connect(self.show_checkpoint)
        session.checkpoint_failed.connect(self.show_checkpoint_failure)

    def attach_sampler(self, sampler: Sampler) -> None:
        """Take the WAL and database sizes from ``sampler``'s readings from now on."""
        self.sampler = sampler
        sampler.sampled.connect(self._on_sample)
        sampler.gap.connect(self._on_sample_gap)
        sampler.cleared.connect(lambda: self.wal_grid.set_value("read_at", "\u2013"))
        sampler.starvation_changed.connect(lambda _found: self._show_advice())
        sampler.holders_found.connect(lambda _lookup: self._show_advice())
        if sampler.last_sample is not None:
            self._on_sample(sampler.last_sample)

    def _build_layout(self, plot: QWidget) -> None:
        wal_box = group_box("Write-ahead log")
        wal_layout = QVBoxLayout(wal_box)
        wal_layout.addWidget(explanation(
            "Every write goes to the -wal file first. A checkpoint copies it into the "
            "database so the log can start over; a log that keeps growing means checkpoints "
            "cannot finish."))
        row = QHBoxLayout()
        row.addWidget(self.wal_grid, 1)
        row.addWidget(self.refresh_button, 0, Qt.AlignmentFlag.AlignTop)
        wal_layout.addLayout(row)
        wal_layout.addWidget(self.wal_sentence)

        checkpoint_box = group_box("Checkpoint now")
        grid = QGridLayout(checkpoint_box)
        for row_index, (mode, button) in enumerate(self.checkpoint_buttons.items()):
            button.setMinimumWidth(button.sizeHint().width() + 16)
            grid.addWidget(button, row_index, 0)
            grid.addWidget(explanation(MODE_EXPLANATIONS[mode]), row_index, 1)
        grid.setColumnStretch(1, 1)

        result_box = group_box("Last checkpoint")
        result_layout = QVBoxLayout(result_box)
        result_layout.addWidget(self.result_grid)
        result_layout.addWidget(self.result_label)

        details = QWidget()
        top = QHBoxLayout()
        top.addWidget(wal_box, 1)
        top.addWidget(result_box, 1)
        column = QVBoxLayout(details)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        column.addWidget(checkpoint_box)
        column.addWidget(self.progress_panel)
        self.splitter = details_above_plot(details, plot)
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)

    def refresh(self) -> None:
        """Read the WAL size and the journal settings (a read-only job)."""
        path = self.session.db_path
        if path is None:
            return
        self.run_load(
            "Read WAL size",
            lambda progress, cancelled: Maintenance(path).read_stats(
                include_task_counts=False),
            self._on_stats)

    def clear(self) -> None:
        """Forget the sizes, settings and the last checkpoint shown for the previous file."""
        self.last_result = None
        self.last_failure = None
        self.wal_grid.clear_values()
        self.result_grid.clear_values()
        self.result_label.setText("No checkpoint run from this window yet.")
        self.result_label.setStyleSheet("")
        self.wal_sentence.clear()

    def show_load_failed(self, error: BaseException) -> None:
        """The settings could not be read: they stay unknown, the reason shows."""
        for key in ("journal_mode", "wal_autocheckpoint", "journal_size_limit"):
            self.wal_grid.set_value(key, "\u2013")
        set_status(self.wal_sentence, breakable(f"Could not read the WAL settings: {error}"),
                   WARN_COLOUR)

    def _wal_colour(self, wal_bytes: int) -> str | None:
        config = self.session.config
        wal_mb = wal_bytes / MEGABYTE
        if wal_mb >= config.wal_size_threshold_mb:
            return BAD_COLOUR
        if wal_mb >= config.wal_size_warning_mb:
            return WARN_COLOUR
        return None

    def _show_sizes(self, wal_bytes: int, db_bytes: int, moment: float) -> None:
        self.wal_grid.set_value("wal_size", format_bytes(wal_bytes), self._wal_colour(wal_bytes))
        self.wal_grid.set_value("db_size", format_bytes(db_bytes))
        self.wal_grid.set_value("read_at", reading_time(moment))

    def _on_sample(self, sample: Sample) -> None:
        self._show_sizes(sample.wal_bytes, sample.db_bytes, sample.time)
        self._show_advice()

    def _starvation_advice(self) -> str | None:
        return self.sampler.advice() if self.sampler is not None else None

    def _show_advice(self) -> None:
        """While a reader pins the WAL, the tab gives the same advice as the banner."""
        advice = self._starvation_advice()
        if advice is not None:
            set_status(self.wal_sentence, breakable(advice), BAD_COLOUR)
        elif self.wal_sentence.text().startswith(STARVATION_OPENING):
            self.wal_sentence.clear()

    def _on_sample_gap(self, reason: str) -> None:
        """The latest reading failed: grey the sizes, keep their time, say why."""
        last = self.sampler.last_sample if self.sampler is not None else None
        for key in ("wal_size", "db_size"):
            self.wal_grid.set_value(key, self.wal_grid.value(key), STALE_COLOUR)
        when = reading_time(last.time) if last is not None else "never"
        self.wal_grid.set_value("read_at", f"{when} (not current)", STALE_COLOUR)
        set_status(self.wal_sentence, breakable(f"Could not read the WAL again: {reason}"),
                   WARN_COLOUR)

    def _on_stats(self, stats: DatabaseStats) -> None:
        sample = self.sampler.last_sample if self.sampler is not None else None
        if sample is None or (self.sampler is not None and self.sampler.stale):
            # no reading from the sampler yet: this read is the latest one
            self._show_sizes(stats.wal_size_bytes, stats.db_size_bytes, time.time())
            wal_bytes = stats.wal_size_bytes
        else:
            wal_bytes = sample.wal_bytes
        colour = self._wal_colour(wal_bytes)
        advice = self._starvation_advice()
        self.wal_grid.set_value("journal_mode", stats.journal_mode.upper())
        pages = stats.wal_autocheckpoint
        self.wal_grid.set_value(
            "wal_autocheckpoint",
            f"{format_count(pages)} pages ({format_bytes(pages * stats.page_size)})"
            if pages > 0 else "never (0)")
        limit = stats.journal_size_limit
        self.wal_grid.set_value("journal_size_limit",
                                format_bytes(limit) if limit >= 0 else "no limit (-1)")
        if not stats.wal_mode:
            set_status(self.wal_sentence, "This database does not use a WAL (journal mode "
                       f"{stats.journal_mode.upper()}); checkpoints do nothing here.",
                       WARN_COLOUR)
        elif advice is not None:
            set_status(self.wal_sentence, breakable(advice), BAD_COLOUR)
        elif colour is not None:
            set_status(self.wal_sentence,
                       f"The WAL is large ({format_bytes(wal_bytes)}); run a "
                       "TRUNCATE checkpoint to get the space back.", colour)
        else:
            self.wal_sentence.clear()

    def run_checkpoint(self, mode: str) -> Job | None:
        """Start a checkpoint in ``mode`` as a write job (through the session, like every one)."""
        job = self.session.run_checkpoint(mode, origin="WAL tab",
                                          on_done=self._on_checkpoint_done)
        if job is not None:
            self.progress_panel.track(job)
        return job

    def _on_checkpoint_done(self, result: CheckpointResult) -> None:
        sentence, colour = checkpoint_sentence(result)
        if colour == GOOD_COLOUR:
            self.session.messages.info(f"Checkpoint {result.mode}: {sentence}")
        else:
            self.session.messages.warning(sentence)

    def show_checkpoint_failure(self, mode: str, error: BaseException) -> None:
        """A checkpoint run raised an error: the panel says so (the old result is cleared)."""
        self.last_result = None
        self.last_failure = str(error)
        grid = self.result_grid
        grid.clear_values()
        grid.set_value("ran_at", reading_time(time.time()))
        grid.set_value("mode", mode)
        grid.set_value("busy", "no: it failed", BAD_COLOUR)
        set_status(self.result_label, f"The {mode} checkpoint failed: {error}", BAD_COLOUR)

    def show_checkpoint(self, result: CheckpointResult) -> None:
        """Show a finished checkpoint run in the "Last checkpoint" panel."""
        self.last_result = result
        self.last_failure = None
        summary = CheckpointSummary.of(result)
        grid = self.result_grid
        grid.set_value("ran_at", reading_time(time.time()))
        grid.set_value("mode", summary.mode)
        grid.set_value("busy", summary.finished_text(),
                       None if summary.finished else
                       BAD_COLOUR if summary.busy else WARN_COLOUR)
        grid.set_value("log_frames", format_count(max(result.log_frames, 0)))
        grid.set_value("checkpointed_frames",
                       format_count(max(result.checkpointed_frames, 0)))
        grid.set_value("wal_bytes", f"{format_bytes(result.wal_bytes_before)} \u2192 "
                                    f"{format_bytes(result.wal_bytes_after)}")
        grid.set_value("seconds", f"{result.seconds:.2f} s")
        sentence, colour = checkpoint_sentence(result)
        set_status(self.result_label, sentence, colour)
