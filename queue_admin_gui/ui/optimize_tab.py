"""The Optimization tab: planner statistics, VACUUM with its cost stated, integrity checks.

ANALYZE and ``PRAGMA optimize`` keep queries fast; VACUUM gives back the space of deleted
rows but blocks every writer while it runs and needs free disk, so it asks first and says
how much; the integrity checks list SQLite's own findings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..app.jobs import Job
from ..app.operations import TOPIC_DATABASE, TOPIC_STATS, analyze, pragma_optimize, vacuum
from ..app.session import Session
from ..core.errors import format_bytes
from ..core.files.disk import vacuum_space_by_volume
from ..core.maintenance import Maintenance
from ..core.maintenance_results import AnalyzeResult, PragmaOptimizeResult, VacuumResult
from ..core.measurements.damage_report import DamageReport, read_damage_report
from ..core.measurements.stats import DatabaseStats
from ..core.progress import CancelCheck, ProgressCallback
from .maintenance_tab import MaintenanceTab
from .palette import readable_text
from .widgets import (
    BAD_COLOUR,
    GOOD_COLOUR,
    WARN_COLOUR,
    KeyValueGrid,
    explanation,
    format_count,
    group_box,
    set_status,
    status_label,
)

ALL_TABLES = "All tables"
NO_PROBLEMS = "No problems found"
#: What the progress strip says while SQLite rebuilds the file: one long step with no count.
VACUUM_STAGE = "Rebuilding the database file (VACUUM)..."
#: How often the elapsed time beside the VACUUM stage is brought up to date.
ELAPSED_TICK_MS = 1000


def vacuum_stage_text(stage: str) -> str:
    """The stage as the strip shows it; the engine's VACUUM step gets its own sentence."""
    if "VACUUM" in stage:
        return VACUUM_STAGE
    return stage.rstrip(".") + "..." if stage else ""


def format_elapsed(seconds: float) -> str:
    """``"8 s"`` or ``"2 min 05 s"``: how long an operation has been running."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60:02d} s"


@dataclass(frozen=True)
class OptimizeState:
    """What the tab shows before anything runs: page usage, tables, VACUUM's disk needs.

    ``vacuum_space`` is the free space VACUUM needs per volume, ``(volume, bytes)``.
    """

    stats: DatabaseStats
    tables: list[str]
    vacuum_needed: int
    vacuum_space: list[tuple[str, int]]


def read_optimize_state(maintenance: Maintenance) -> OptimizeState:
    """Page usage, the file's tables and the space VACUUM needs (runs in a job)."""
    needed = maintenance.vacuum_space_needed()
    return OptimizeState(
        stats=maintenance.read_stats(include_task_counts=False),
        tables=maintenance.table_names(),
        vacuum_needed=needed,
        vacuum_space=vacuum_space_by_volume(maintenance.db_path, needed),
    )


def describe_vacuum_space(space: list[tuple[str, int]]) -> str:
    """``"279.0 MB on D:"`` or ``"139.5 MB on D: and 139.5 MB on C:"``: the figures checked."""
    return " and ".join(f"{format_bytes(size)} on {volume}" for volume, size in space)


class OptimizeTab(MaintenanceTab):
    """ANALYZE (all or one table), PRAGMA optimize, VACUUM, integrity and quick check."""

    topics = (TOPIC_STATS, TOPIC_DATABASE)
    #: The admin asked for the restore wizard on the newest backup (the window opens it).
    restore_requested = Signal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        session.damage_found.connect(self._on_damage_found)
        self.state: OptimizeState | None = None
        self._check_job: Job | None = None
        self.table_combo = QComboBox()
        self.table_combo.addItem(ALL_TABLES)
        self.table_combo.setMinimumContentsLength(16)
        self.table_combo.setToolTip("Analyze every table, or only the one chosen here.")
        self.analyze_button = QPushButton("Run ANALYZE")
        self.optimize_button = QPushButton("Run PRAGMA optimize")
        self.vacuum_button = QPushButton("VACUUM...")
        self.integrity_button = QPushButton("Full integrity check")
        self.quick_check_button = QPushButton("Quick check")
        self.refresh_button = QPushButton("Refresh")
        self.statistics_label = status_label()
        self.vacuum_label = status_label()
        self.space_grid = KeyValueGrid(columns=2)
        self.space_grid.add_row("db_size", "Database file")
        self.space_grid.add_row("page_count", "Pages in use")
        self.space_grid.add_row("freelist", "Free pages",
                                "Pages left empty by deleted rows; VACUUM gives them back.")
        self.space_grid.add_row("fragmentation", "Fragmentation",
                                "Free pages as a share of the file.")
        self.space_grid.add_row("vacuum_needed", "VACUUM needs free disk",
                                "About twice the database: a temporary copy and the new file.")
        self.findings = QListWidget()
        self.findings.setWordWrap(True)
        self.findings.setMinimumHeight(90)
        self.findings.setMaximumHeight(240)
        self.integrity_label = QLabel("Not checked yet from this window.")
        self.integrity_label.setWordWrap(True)
        #: The next step once damage is listed: the restore wizard on the newest backup.
        self.restore_button = QPushButton("Restore from the newest backup...")
        self.restore_button.setToolTip(
            "Open the restore wizard on the newest backup: it checks the backup, says what "
            "restoring loses, and keeps a copy of the damaged file.")
        self.restore_button.hide()
        self.restore_button.clicked.connect(self.restore_requested)
        self._vacuum_stage = ""
        self._vacuum_started: float | None = None
        self._elapsed_timer = QTimer(self)
        self._elapsed_timer.setInterval(ELAPSED_TICK_MS)
        self._elapsed_timer.timeout.connect(self._show_vacuum_elapsed)
        self._build_layout()
        self.add_action(self.refresh_button, "Read the page usage again.")
        self.add_action(self.analyze_button,
                        "Recompute the statistics the query planner uses to pick indexes.",
                        writes=True, blocked_by_damage=True)
        self.add_action(self.optimize_button,
                        "Let SQLite refresh only the statistics it finds out of date (fast).",
                        writes=True, blocked_by_damage=True)
        self.add_action(self.vacuum_button,
                        "Rebuild the file without its free pages; blocks writers while it runs.",
                        writes=True, blocked_by_damage=True)
        self.add_action(self.integrity_button,
                        "Check every page, row and index (slow on a large file; read-only).")
        self.add_action(self.quick_check_button,
                        "Check the pages and rows without comparing indexes (faster; "
                        "read-only).")
        self.refresh_button.clicked.connect(self.refresh)
        self.analyze_button.clicked.connect(self._on_analyze_clicked)
        self.optimize_button.clicked.connect(self._on_optimize_clicked)
        self.vacuum_button.clicked.connect(self._on_vacuum_clicked)
        self.integrity_button.clicked.connect(lambda: self.run_integrity_check(quick=False))
        self.quick_check_button.clicked.connect(lambda: self.run_integrity_check(quick=True))

    def _build_layout(self) -> None:
        planner = group_box("Query planner statistics")
        planner_grid = QGridLayout(planner)
        planner_grid.addWidget(explanation(
            "The planner uses these statistics to choose indexes. Refresh them after large "
            "changes in the number or kind of tasks; both are short and safe while workers "
            "run."), 0, 0, 1, 3)
        planner_grid.addWidget(QLabel("Table:"), 1, 0)
        planner_grid.addWidget(self.table_combo, 1, 1)
        planner_grid.addWidget(self.analyze_button, 1, 2)
        planner_grid.addWidget(explanation(
            "PRAGMA optimize refreshes only what SQLite finds out of date:"), 2, 0, 1, 2)
        planner_grid.addWidget(self.optimize_button, 2, 2)
        planner_grid.addWidget(self.statistics_label, 3, 0, 1, 3)
        planner_grid.setColumnStretch(1, 1)

        space = group_box("Free space and VACUUM")
        space_layout = QVBoxLayout(space)
        space_layout.addWidget(explanation(
            "Deleted tasks leave free pages inside the file. VACUUM rebuilds the file without "
            "them; it blocks every writer (workers wait) for its whole duration."))
        row = QHBoxLayout()
        row.addWidget(self.space_grid, 1)
        buttons = QVBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.vacuum_button)
        buttons.addStretch(1)
        row.addLayout(buttons)
        space_layout.addLayout(row)
        space_layout.addWidget(self.vacuum_label)

        integrity = group_box("Integrity")
        integrity_layout = QVBoxLayout(integrity)
        integrity_layout.addWidget(explanation(
            "SQLite checks its own file. The quick check skips index comparisons; the full "
            "check reads everything. Both only read."))
        check_row = QHBoxLayout()
        check_row.addWidget(self.integrity_label, 1)
        check_row.addWidget(self.quick_check_button)
        check_row.addWidget(self.integrity_button)
        integrity_layout.addLayout(check_row)
        integrity_layout.addWidget(self.findings)
        next_step = QHBoxLayout()
        next_step.addStretch(1)
        next_step.addWidget(self.restore_button)
        integrity_layout.addLayout(next_step)

        top = QHBoxLayout()
        top.addWidget(planner, 1)
        top.addWidget(space, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(integrity)
        layout.addWidget(self.progress_panel)
        layout.addStretch(1)

    def refresh(self) -> None:
        """Read page usage, fragmentation and the table list (a read-only job)."""
        path = self.session.db_path
        if path is None:
            return
        self.run_load("Read page usage",
                      lambda progress, cancelled: read_optimize_state(Maintenance(path)),
                      self._on_state)

    def clear(self) -> None:
        """Forget the page usage, the table list and every result shown for the last file."""
        self.state = None
        self.space_grid.clear_values()
        self.statistics_label.clear()
        self.vacuum_label.clear()
        self.findings.clear()
        self.restore_button.hide()
        self.integrity_label.setText("Not checked yet from this window.")
        self.integrity_label.setStyleSheet("")
        self.table_combo.clear()
        self.table_combo.addItem(ALL_TABLES)

    def show_load_failed(self, error: BaseException) -> None:
        """The page usage could not be read: it stays unknown, the reason shows beneath it."""
        self.state = None
        self.space_grid.clear_values()
        set_status(self.vacuum_label, f"The page usage could not be read: {error}", BAD_COLOUR)

    def _on_state(self, state: OptimizeState) -> None:
        self.state = state
        stats = state.stats
        config = self.session.config
        self.space_grid.set_value("db_size", format_bytes(stats.db_size_bytes))
        self.space_grid.set_value("page_count", format_count(stats.page_count))
        self.space_grid.set_value(
            "freelist", f"{format_count(stats.freelist_count)} "
                        f"({format_bytes(stats.freelist_bytes)})")
        percent = stats.fragmentation_percent
        colour = None
        if percent >= config.fragmentation_critical_percent:
            colour = BAD_COLOUR
        elif percent >= config.fragmentation_warning_percent:
            colour = WARN_COLOUR
        self.space_grid.set_value("fragmentation", f"{percent:.1f} %", colour)
        self.space_grid.set_value("vacuum_needed", describe_vacuum_space(state.vacuum_space))
        chosen = self.table_combo.currentText()
        self.table_combo.clear()
        self.table_combo.addItems([ALL_TABLES, *state.tables])
        index = self.table_combo.findText(chosen)
        self.table_combo.setCurrentIndex(max(index, 0))

    # -- planner statistics ---------------------------------------------------------------
    def _on_analyze_clicked(self) -> None:
        path = self.session.db_path
        if path is None:
            return
        table = self.table_combo.currentText()
        chosen = None if table == ALL_TABLES else table

        self.run_operation(analyze(path, chosen), on_success=self._on_analyzed)

    def _on_analyzed(self, result: AnalyzeResult) -> None:
        what = f"table {result.table}" if result.table else "all tables"
        text = f"ANALYZE of {what} finished in {result.seconds:.2f} s."
        set_status(self.statistics_label, text, GOOD_COLOUR)
        self.session.messages.info(text)

    def _on_optimize_clicked(self) -> None:
        path = self.session.db_path
        if path is None:
            return
        self.run_operation(pragma_optimize(path), on_success=self._on_optimized)

    def _on_optimized(self, result: PragmaOptimizeResult) -> None:
        text = f"PRAGMA optimize finished in {result.seconds:.2f} s."
        set_status(self.statistics_label, text, GOOD_COLOUR)
        self.session.messages.info(text)

    # -- VACUUM -----------------------------------------------------------------------------
    def _on_vacuum_clicked(self) -> None:
        path = self.session.db_path
        if path is None:
            return
        if self.state is not None:
            needed = describe_vacuum_space(self.state.vacuum_space)
            size = f" ({format_bytes(self.state.stats.db_size_bytes)})"
        else:
            needed, size = "about twice the size of the database", ""
        text = (f"VACUUM rebuilds {path.name}{size}. Every writer, workers included, waits "
                f"for its whole duration, and it needs free disk space: {needed}. "
                "Run it now?")
        if not self.session.messages.confirm("VACUUM the database", text,
                                             confirm_label="Run VACUUM", destructive=True):
            return

        def rebuild(progress: ProgressCallback, cancelled: CancelCheck) -> VacuumResult:
            # SQLite rebuilds the file in one call that reports nothing until it ends, so a
            # count ("1 / 3") would sit still for minutes: every stage shows a busy bar.
            def busy(done: int, total: int, stage: str) -> None:
                progress(0, 0, vacuum_stage_text(stage))

            return Maintenance(path).run_vacuum(busy, cancelled)

        job = self.run_operation(vacuum(path, rebuild), on_success=self._on_vacuumed,
                                 on_error=self._on_vacuum_failed)
        self._vacuum_stage, self._vacuum_started = "", None
        job.progress.connect(self._on_vacuum_progress)
        job.finished.connect(self._elapsed_timer.stop)
        if job.started_at is None:  # waiting behind another write job
            job.started.connect(self._on_vacuum_started)
        else:
            self._on_vacuum_started()

    def _on_vacuum_started(self) -> None:
        self._vacuum_started = time.monotonic()
        self._elapsed_timer.start()

    def _on_vacuum_progress(self, _done: int, _total: int, stage: str) -> None:
        self._vacuum_stage = stage
        self._show_vacuum_elapsed()

    def _show_vacuum_elapsed(self) -> None:
        """Put the time since VACUUM started beside its stage, so a long rebuild looks alive."""
        panel = self.progress_panel
        if self._vacuum_started is None or not panel.cancel_button.isEnabled():
            return  # not started yet, or cancelling: the strip says so itself
        elapsed = format_elapsed(time.monotonic() - self._vacuum_started)
        panel.stage_label.setText(f"{self._vacuum_stage or 'Starting...'} {elapsed} elapsed")

    def _on_vacuumed(self, result: VacuumResult) -> None:
        text = (f"VACUUM freed {format_bytes(result.freed_bytes)} in "
                f"{result.seconds:.1f} s; the file is now "
                f"{format_bytes(result.file_size_after)}.")
        set_status(self.vacuum_label, text, GOOD_COLOUR)
        self.session.messages.info(text)

    def _on_vacuum_failed(self, error: BaseException) -> None:
        set_status(self.vacuum_label, str(error), BAD_COLOUR)

    # -- integrity --------------------------------------------------------------------------
    def run_integrity_check(self, quick: bool) -> Job | None:
        """Start a full or quick integrity check (read-only, cancellable)."""
        path = self.session.db_path
        if path is None or (self._check_job is not None and not self._check_job.is_finished):
            return None
        name = "Quick check" if quick else "Integrity check"

        def check(progress: ProgressCallback, cancelled: CancelCheck) -> DamageReport:
            progress(0, 0, f"{name}: reading every page")
            return read_damage_report(path, quick=quick, cancelled=cancelled)

        self.findings.clear()
        self.restore_button.hide()
        self.integrity_label.setText(f"{name} running...")
        self.integrity_label.setStyleSheet("")
        generation = self.session.generation
        self._check_job = self.run_job(
            name, check, parameters={"quick": quick},
            on_done=lambda report: self._show_findings(generation, name, report),
            on_error=lambda _error: self.integrity_label.setText(f"{name} failed."))
        self._check_job.cancelled.connect(
            lambda: self.integrity_label.setText(f"{name} was cancelled."))
        return self._check_job

    def _on_damage_found(self, _damage: str) -> None:
        """The open file was found damaged: list what is damaged without being asked."""
        if self._check_job is None or self._check_job.is_finished:
            self.run_integrity_check(quick=False)

    def _show_findings(self, generation: int, name: str, report: DamageReport) -> None:
        if not self.session.is_current(generation):
            return
        self.findings.clear()
        if report.ok:
            item = QListWidgetItem(f"\u2714 {NO_PROBLEMS}")
            item.setForeground(QBrush(QColor(readable_text(GOOD_COLOUR))))
            font = item.font()
            font.setBold(True)
            item.setFont(font)
            self.findings.addItem(item)
            set_status(self.integrity_label, f"{name}: {NO_PROBLEMS.lower()}.", GOOD_COLOUR)
            self.session.messages.info(f"{name} of the database: {NO_PROBLEMS.lower()}.")
            return
        for damaged in report.objects:
            item = QListWidgetItem(damaged.sentence())
            item.setForeground(QBrush(QColor(readable_text(BAD_COLOUR))))
            item.setToolTip("\n".join(line for line in report.lines
                                      if _names_object(line, damaged.pages, damaged.name))[:4000])
            self.findings.addItem(item)
        if report.stopped:
            self.findings.addItem(QListWidgetItem(
                f"SQLite stopped the check early ({report.stopped}); more may be damaged."))
        set_status(self.integrity_label, f"{name}: {report.summary()} Restore the file from "
                   "the newest backup.", BAD_COLOUR, bold=True)
        self.restore_button.show()
        self.session.mark_damaged(f"{name.lower()}: {report.summary()}")


def _names_object(line: str, pages: tuple[int, ...], name: str) -> bool:
    """True when SQLite's ``line`` is about one of ``pages`` or names ``name``."""
    return name in line or any(f"page {page} " in f"{line} " or f"page {page}:" in line
                               for page in pages)
