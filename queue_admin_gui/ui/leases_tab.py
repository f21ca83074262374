"""The Leases tab: tasks held by workers, stale leases and their recovery, dead letters.

A worker that dies holding a task leaves it in flight until its lease is requeued. The tab
lists every in-flight task with its owner and how long its lease is overdue, marks the stale
ones (lease overdue and worker silent or unknown), lists apart the tasks whose lease ran out
while their worker still heartbeats (a lease-renewal problem, never requeued from here),
previews exactly which tasks a requeue would touch, and requeues them after asking. Workers
are listed with their heartbeat age; dead tasks can be retried.

A queue whose workers died may hold a hundred thousand in-flight tasks: the lists are read in
a job into a few arrays (:mod:`..core.lease_table`), shown through models that hand the view
rows as it scrolls, and sentences about them name counts and id ranges, never every id.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..app.operations import (
    TOPIC_DATABASE,
    TOPIC_LEASES,
    requeue_stale_leases,
    retry_dead_tasks,
)
from ..app.session import Session
from ..core.leases.lease_table import (
    DEAD_LETTER,
    LEAVE_ALONE,
    REQUEUE,
    DeadTaskTable,
    LeaseTable,
    RequeuePlan,
    plan_requeue,
)
from ..core.leases.manager import RequeueResult, WorkerInfo
from ..core.measurements.readings import reading_time
from ..core.progress import CancelCheck, ProgressCallback
from .lease_model import (
    DEAD_TASK_LIMIT,
    LeaseSnapshot,
    PreviewActions,
    TaskListModel,
    read_lease_snapshot,
)
from .lease_rows import (
    dead_columns,
    ids_sentence,
    ids_summary,
    in_flight_columns,
    is_stale,
    renewal_sentence,
)
from .maintenance_tab import MaintenanceTab
from .table_model import (
    RecordListModel,
    keep_place_when_hidden,
    make_list_view,
    record_column,
)
from .widgets import (
    BAD_COLOUR,
    GOOD_COLOUR,
    WARN_COLOUR,
    explanation,
    format_age,
    group_box,
    set_status,
    status_label,
)

#: The timeout spin box waits this long after the last change before reloading.
TIMEOUT_SETTLE_MS = 400


class LeasesTab(MaintenanceTab):
    """In-flight tasks with stale leases marked, requeue with preview, workers, dead tasks."""

    topics = (TOPIC_LEASES, TOPIC_DATABASE)
    show_refresh_delay_ms = 100

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        #: What the last preview said a requeue would do, by task id.
        self.preview_ids = PreviewActions()
        #: Why the lists could not be read (requeue and retry wait for a good read), or "".
        self.unreadable = ""
        self.timeout_spin = QSpinBox()
        self.timeout_spin.setRange(0, 7 * 86400)
        self.timeout_spin.setSingleStep(60)
        self.timeout_spin.setSuffix(" s")
        self.timeout_spin.setValue(int(session.config.stale_lease_timeout_seconds))
        self.timeout_spin.setToolTip(
            "A task is stale once its lease has been expired for longer than this AND its "
            "worker has not sent a heartbeat for longer than this (or is unknown).")
        self.refresh_button = QPushButton("Refresh")
        self.preview_button = QPushButton("Preview")
        self.requeue_button = QPushButton("Requeue stale...")
        self.retry_button = QPushButton("Retry selected...")
        self.in_flight_model = TaskListModel(
            in_flight_columns(lambda task_id: self.preview_ids.text_of(task_id),
                              lambda task_ids: self.preview_ids.keys_for(task_ids)),
            highlight=is_stale, parent=self)
        self.workers_model: RecordListModel[WorkerInfo] = RecordListModel([
            record_column("Worker", lambda w: w.worker_id),
            record_column("Last heartbeat",
                          lambda w: f"{format_age(w.heartbeat_age_seconds)} ago",
                          numeric=True, sort_key=lambda w: w.heartbeat_age_seconds),
            record_column("Tasks held", lambda w: str(w.leased_tasks), numeric=True,
                          sort_key=lambda w: w.leased_tasks),
            record_column("Capabilities", lambda w: w.capabilities),
        ], highlight=self._worker_silent, parent=self)
        self.dead_model = TaskListModel(dead_columns(), parent=self)
        self.in_flight_view = make_list_view(self.in_flight_model)
        self.workers_view = make_list_view(self.workers_model, multi_select=False,
                                            fit_every_row=True)
        self.dead_view = make_list_view(self.dead_model)
        self.read_label = QLabel()
        self.read_label.setToolTip("When the lists below were read from the database.")
        self.summary_label = status_label()
        self.renewal_label = status_label()
        self.renewal_label.hide()
        self.result_label = status_label()
        self.dead_label = QLabel()
        self._settle_timer = QTimer(self)
        self._settle_timer.setSingleShot(True)
        self._settle_timer.setInterval(TIMEOUT_SETTLE_MS)
        self._build_layout()
        self.add_action(self.refresh_button, "Reload tasks, workers and dead letters.",
                        queue_only=True)
        self.add_action(self.preview_button,
                        "List exactly which tasks a requeue would touch, without changing "
                        "anything.", queue_only=True)
        self.add_action(self.requeue_button,
                        "Put every stale task back in the queue (or in the dead letters when "
                        "it has no attempts left).", writes=True, queue_only=True,
                        blocked_by_damage=True)
        self.add_action(self.retry_button,
                        "Send the selected dead tasks back to the queue with attempts reset.",
                        writes=True, queue_only=True, blocked_by_damage=True)
        self.refresh_button.clicked.connect(self.refresh)
        self.preview_button.clicked.connect(self._on_preview_clicked)
        self.requeue_button.clicked.connect(self._on_requeue_clicked)
        self.retry_button.clicked.connect(self._on_retry_clicked)
        self.timeout_spin.valueChanged.connect(self._on_timeout_changed)
        self._settle_timer.timeout.connect(self.refresh)
        self.dead_view.selectionModel().selectionChanged.connect(self._update_retry_label)
        session.config_changed.connect(self._on_config_changed)
        self._update_retry_label()

    def _build_layout(self) -> None:
        in_flight = group_box("In-flight tasks")
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Stale when the lease expired and the worker was silent "
                                  "for more than"))
        controls.addWidget(self.timeout_spin)
        controls.addWidget(QLabel("ago"))
        controls.addStretch(1)
        controls.addWidget(self.read_label)
        for button in (self.refresh_button, self.preview_button, self.requeue_button):
            controls.addWidget(button)
        box = QVBoxLayout(in_flight)
        box.addWidget(explanation(
            "Tasks a worker has claimed. When a worker dies its lease runs out and its "
            "heartbeats stop; the task then waits forever: stale tasks are shown in red. "
            "Preview first, then requeue them. A task whose worker still heartbeats is never "
            "requeued here, even with an expired lease."))
        box.addLayout(controls)
        box.addWidget(self.summary_label)
        box.addWidget(self.renewal_label)
        box.addWidget(self.in_flight_view, 1)
        box.addWidget(self.result_label)

        workers = group_box("Workers")
        workers_box = QVBoxLayout(workers)
        workers_box.addWidget(explanation(
            "Registered workers. A worker silent for longer than the timeout is shown in red."))
        workers_box.addWidget(self.workers_view)

        dead = group_box("Dead tasks")
        dead_box = QVBoxLayout(dead)
        dead_box.addWidget(explanation(
            "Tasks that used up all their attempts. Select some and retry them once the "
            "cause is fixed."))
        dead_box.addWidget(self.dead_view, 1)
        dead_row = QHBoxLayout()
        dead_row.addWidget(self.dead_label, 1)
        dead_row.addWidget(self.retry_button)
        dead_box.addLayout(dead_row)

        bottom = QSplitter()
        bottom.addWidget(workers)
        bottom.addWidget(dead)
        bottom.setStretchFactor(0, 2)
        bottom.setStretchFactor(1, 3)
        bottom.setChildrenCollapsible(False)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(in_flight)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(keep_place_when_hidden(self.progress_panel))

    @property
    def timeout_seconds(self) -> int:
        """The stale-lease timeout chosen in the spin box."""
        return int(self.timeout_spin.value())

    def refresh(self) -> None:
        """Reload in-flight tasks, workers and dead tasks."""
        path = self.session.db_path
        if path is None:
            return
        if self.session.is_queue is False:
            self._show_not_a_queue()
            return
        timeout = self.timeout_seconds
        self.run_load("Load leases",
                      lambda progress, cancelled: read_lease_snapshot(path, timeout, cancelled),
                      self._on_loaded)

    def _on_loaded(self, snapshot: LeaseSnapshot) -> None:
        self.unreadable = ""
        if snapshot.timeout_seconds != self.timeout_seconds:
            self.preview_ids = PreviewActions()
        table = snapshot.in_flight
        self.in_flight_model.set_data(table, len(table))
        self.workers_model.set_records(snapshot.workers)
        self.dead_model.set_data(snapshot.dead, len(snapshot.dead))
        self.read_label.setText(f"Read {reading_time(snapshot.read_at)}")
        stale = int(np.count_nonzero(table.stale))
        in_flight = len(table)
        if stale:
            set_status(self.summary_label,
                       f"{in_flight:,} tasks in flight, {stale:,} of them stale: their "
                       "worker has gone silent (or is unknown) and they will not run until "
                       "requeued.", BAD_COLOUR, bold=True)
        else:
            set_status(self.summary_label,
                       f"{in_flight:,} tasks in flight, none stale.", GOOD_COLOUR)
        self._show_renewal_problems(table)
        self._update_retry_label()

    def _show_renewal_problems(self, table: LeaseTable | None) -> None:
        """List apart the expired leases of live workers: look at the worker, do not requeue."""
        sentence = renewal_sentence(table) if table is not None else None
        self.renewal_label.setVisible(sentence is not None)
        if sentence is None:
            self.renewal_label.clear()
            return
        set_status(self.renewal_label, sentence[0], WARN_COLOUR)
        self.renewal_label.setToolTip(sentence[1])

    def clear(self) -> None:
        """Empty the lists, the preview and the sentences (another file is being opened)."""
        self.unreadable = ""
        self.preview_ids = PreviewActions()
        self.in_flight_model.set_data(None, 0)
        self.workers_model.set_records([])
        self.dead_model.set_data(None, 0)
        self.result_label.clear()
        self.read_label.clear()
        self._show_renewal_problems(None)
        set_status(self.summary_label, "Reading the tasks..." if self.session.db_path else "")
        self._update_retry_label()

    def show_load_failed(self, error: BaseException) -> None:
        """The lists could not be read: empty, with the reason in place of the summary."""
        self.clear()
        self.unreadable = str(error)
        set_status(self.summary_label, f"The tasks could not be read: {error}", BAD_COLOUR,
                   bold=True)
        self.update_actions()

    def _show_not_a_queue(self) -> None:
        self.clear()
        set_status(self.summary_label,
                   "This file is not a PrismQ queue database, so it has no tasks, leases or "
                   "workers; open the queue file to manage leases.")

    def _worker_silent(self, worker: WorkerInfo) -> bool:
        return worker.heartbeat_age_seconds > self.timeout_seconds

    def _on_timeout_changed(self, _value: int) -> None:
        self.preview_ids = PreviewActions()
        self.result_label.clear()
        if self.session.db_path is not None:
            self._settle_timer.start()

    def _on_config_changed(self, config: object) -> None:
        timeout = getattr(config, "stale_lease_timeout_seconds", None)
        if timeout is not None:
            self.timeout_spin.setValue(int(timeout))

    # -- preview and requeue --------------------------------------------------------------
    def _dry_run_job(self, on_done: Callable[[RequeuePlan], None]) -> None:
        path = self.session.db_path
        if path is None:
            return
        timeout = self.timeout_seconds

        def dry_run(progress: ProgressCallback, cancelled: CancelCheck) -> RequeuePlan:
            return plan_requeue(path, timeout)

        self.run_job("Preview requeue", dry_run, parameters={"timeout_seconds": timeout},
                     on_done=on_done)

    def _on_preview_clicked(self) -> None:
        self._dry_run_job(self._show_preview)

    def _show_preview(self, plan: RequeuePlan) -> None:
        self.preview_ids = PreviewActions(plan)
        self.in_flight_model.refresh_cells()
        touched = plan.touched_ids
        requeued, dead, spared = (plan.count(REQUEUE), plan.count(DEAD_LETTER),
                                  plan.count(LEAVE_ALONE))
        left_alone = (f" {spared:,} tasks with an expired lease are left alone: their worker "
                      "still heartbeats." if spared else "")
        self.result_label.setToolTip(
            f"Preview: {ids_summary(touched)}; {requeued:,} back to the queue, {dead:,} to "
            f"the dead letters; {spared:,} of live workers left alone.")
        if not touched.size:
            set_status(self.result_label, "Preview: no stale leases; a requeue would change "
                       "nothing." + left_alone, GOOD_COLOUR)
            return
        set_status(self.result_label,
                   f"Preview: a requeue would touch {touched.size:,} tasks (IDs "
                   f"{ids_sentence(touched)}): {requeued:,} back to the queue, {dead:,} to "
                   "the dead letters (no attempts left)." + left_alone)

    def _on_requeue_clicked(self) -> None:
        self._dry_run_job(self._confirm_requeue)

    def _confirm_requeue(self, plan: RequeuePlan) -> None:
        self._show_preview(plan)
        touched = plan.touched_ids
        if not touched.size:
            self.session.messages.info("No stale leases to requeue; nothing was changed.")
            return
        timeout = self.timeout_seconds
        text = (f"Requeue {touched.size:,} stale tasks (IDs {ids_sentence(touched)})?"
                f" {plan.count(REQUEUE):,} go back to the queue and "
                f"{plan.count(DEAD_LETTER):,} to the dead letters. A task whose worker "
                "finishes it meanwhile is left alone.")
        if not self.session.messages.confirm("Requeue stale tasks", text,
                                             confirm_label="Requeue", destructive=True):
            return
        path = self.session.db_path
        if path is None:
            return

        self.run_operation(requeue_stale_leases(path, timeout), on_success=self._on_requeued)

    def _on_requeued(self, result: RequeueResult) -> None:
        self.preview_ids = PreviewActions()
        if result.stale:
            text = (f"Requeued {result.requeued:,} stale tasks and moved "
                    f"{result.dead_lettered:,} to the dead letters.")
        else:
            text = "No stale leases were left to requeue; nothing was changed."
        set_status(self.result_label, text, GOOD_COLOUR)
        self.session.messages.info(text)

    # -- dead tasks -----------------------------------------------------------------------
    def selected_dead_ids(self) -> list[int]:
        """IDs of the dead tasks selected in the table."""
        rows = {index.row() for index in self.dead_view.selectionModel().selectedRows()}
        table = self.dead_model.data_object
        return sorted(table.rows[self.dead_model.data_row(row)][0] for row in rows)

    def _update_retry_label(self) -> None:
        table = self.dead_model.data_object
        shown = len(table) if isinstance(table, DeadTaskTable) else 0
        selected = len(self.selected_dead_ids())
        if isinstance(table, DeadTaskTable) and table.truncated:
            self.dead_label.setText(
                f"The newest {shown:,} of {table.total:,} dead tasks are shown (the list stops "
                f"at {DEAD_TASK_LIMIT:,}), {selected:,} selected.")
        else:
            self.dead_label.setText(f"{shown:,} dead tasks shown, {selected:,} selected.")
        self.update_actions()

    def _on_retry_clicked(self) -> None:
        ids = self.selected_dead_ids()
        path = self.session.db_path
        if not ids or path is None:
            return
        text = (f"Retry {len(ids):,} dead tasks (IDs {ids_sentence(ids)})? They go back to "
                "the queue with their attempts reset to 0; the last error is kept in the "
                "task log.")
        if not self.session.messages.confirm("Retry dead tasks", text,
                                             confirm_label="Retry", destructive=False):
            return

        self.run_operation(retry_dead_tasks(path, ids), on_success=self._on_retried)

    def _on_retried(self, count: int) -> None:
        self.session.messages.info(f"{count:,} dead tasks were sent back to the queue.")

    def update_actions(self) -> None:
        """Enable the actions that can run now.

        Retry also needs a selection; requeue and retry wait for lists that could be read.
        """
        super().update_actions()
        if getattr(self, "unreadable", ""):
            for button in (self.requeue_button, self.retry_button):
                if button.isEnabled():
                    button.setEnabled(False)
                    button.setToolTip("The tasks could not be read; nothing can be requeued "
                                      "or retried until they can.")
        if self.retry_button.isEnabled() and not self.selected_dead_ids():
            self.retry_button.setEnabled(False)
            self.retry_button.setToolTip("Select one or more dead tasks first.")
