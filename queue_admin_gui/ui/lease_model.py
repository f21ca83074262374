"""What the Leases tab reads in one job, its list models, and its preview, held compactly."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.leases.lease_table import (
    DEAD_LETTER,
    LEAVE_ALONE,
    REQUEUE,
    DeadTaskTable,
    LeaseTable,
    RequeuePlan,
    read_lease_lists,
)
from ..core.leases.manager import LeaseManager, WorkerInfo
from ..core.progress import CancelCheck
from .table_model import ListModel

#: Dead tasks listed at most (the newest first); the list says when there are more.
DEAD_TASK_LIMIT = 10_000

#: What the "Requeue would" column says for each action of a requeue plan.
ACTION_TEXT = {REQUEUE: "requeue", DEAD_LETTER: "dead letters",
               LEAVE_ALONE: "leave alone (worker alive)"}


@dataclass
class LeaseSnapshot:
    """Everything the tab shows, read in one job."""

    in_flight: LeaseTable
    workers: list[WorkerInfo]
    dead: DeadTaskTable
    timeout_seconds: int

    @property
    def read_at(self) -> float:
        """When the lists were read (seconds since 1970)."""
        return self.in_flight.read_at


def read_lease_snapshot(db_path: Path, timeout_seconds: int,
                        cancelled: CancelCheck = lambda: False) -> LeaseSnapshot:
    """In-flight tasks, workers and dead tasks of a queue file (runs in a job)."""
    lists = read_lease_lists(db_path, timeout_seconds, DEAD_TASK_LIMIT, cancelled)
    return LeaseSnapshot(lists.in_flight, LeaseManager(db_path).list_workers(), lists.dead,
                         timeout_seconds)


class TaskListModel(ListModel):
    """A :class:`ListModel` over a lease or dead-task table, which can give a row's task."""

    def record(self, row: int) -> object:
        """The task shown at view row ``row`` (a LeasedTask or a DeadTask)."""
        return self.data_object.task(self.data_row(row))

    def records(self) -> list[object]:
        """Every task of the list, in the view's order (for small lists and tests)."""
        return [self.data_object.task(self.data_row(row)) for row in range(self.total_rows())]


class PreviewActions(Mapping[int, str]):
    """What the last preview said a requeue would do, by task id: two arrays, no dict.

    Reads like a dict of id to the "Requeue would" text; a lookup is a binary search.
    """

    def __init__(self, plan: RequeuePlan | None = None) -> None:
        self.ids = plan.ids if plan is not None else np.zeros(0, dtype=np.int64)
        self.actions = plan.actions if plan is not None else np.zeros(0, dtype=np.int8)

    def action_of(self, task_id: int) -> int:
        """The plan's action code for a task, 0 when the preview did not name it."""
        place = int(np.searchsorted(self.ids, task_id))
        if place < self.ids.size and int(self.ids[place]) == task_id:
            return int(self.actions[place])
        return 0

    def text_of(self, task_id: int) -> str:
        """The "Requeue would" cell of a task ("" when the preview did not name it)."""
        return ACTION_TEXT.get(self.action_of(task_id), "")

    def keys_for(self, task_ids: np.ndarray) -> np.ndarray:
        """Sort keys of the "Requeue would" column for many tasks at once (0: not named)."""
        if not self.ids.size or not task_ids.size:
            return np.zeros(task_ids.size, dtype=np.int8)
        places = np.minimum(np.searchsorted(self.ids, task_ids), self.ids.size - 1)
        return np.where(self.ids[places] == task_ids, self.actions[places], 0)

    def __getitem__(self, task_id: int) -> str:
        text = self.text_of(int(task_id))
        if not text:
            raise KeyError(task_id)
        return text

    def __iter__(self) -> Iterator[int]:
        return (int(task_id) for task_id in self.ids)

    def __len__(self) -> int:
        return int(self.ids.size)
