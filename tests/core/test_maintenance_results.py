"""The typed maintenance results and the dicts scripts and ``--json`` read are the same data.

Each dict-returning method is its typed twin's ``as_dict()``; these tests pin that, and pin
the dicts' keys, so neither form can drift from the other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from queue_admin_gui.core import QueueMaintenance
from queue_admin_gui.core.maintenance_results import (
    AnalyzeResult,
    CheckpointResult,
    OptimizeResult,
    PragmaOptimizeResult,
    VacuumResult,
)
from queue_admin_gui.core.measurements.stats import (
    STATS_KEYS,
    DatabaseStats,
    database_stats,
    read_database_stats,
)

#: dict method, typed method, the typed result's class, the dict's keys (as scripts see them)
PAIRS = [
    ("checkpoint", "run_checkpoint", CheckpointResult,
     {"mode", "busy", "log", "checkpointed", "log_frames", "checkpointed_frames",
      "wal_bytes_before", "wal_bytes_after", "seconds"}),
    ("vacuum", "run_vacuum", VacuumResult,
     {"size_before", "size_after", "freed_bytes", "file_size_after", "seconds"}),
    ("analyze", "run_analyze", AnalyzeResult, {"table", "seconds"}),
    ("pragma_optimize", "run_pragma_optimize", PragmaOptimizeResult, {"seconds"}),
    ("optimize", "run_optimize", OptimizeResult,
     {"analyzed", "vacuumed", "vacuum", "stats_before", "stats_after", "seconds"}),
    ("get_database_stats", "read_stats", DatabaseStats, set(STATS_KEYS)),
]


@pytest.mark.parametrize(("dict_method", "typed_method", "result_class", "keys"), PAIRS,
                         ids=[pair[0] for pair in PAIRS])
def test_the_dict_form_is_the_typed_form_as_dict(queue_db: Path, monkeypatch, dict_method,
                                                 typed_method, result_class, keys) -> None:
    maintenance = QueueMaintenance(queue_db)
    typed = getattr(maintenance, typed_method)()
    assert isinstance(typed, result_class)
    assert set(typed.as_dict()) == keys
    # the dict method must return exactly what its typed twin returned, not a second reading
    monkeypatch.setattr(QueueMaintenance, typed_method, lambda self, *args, **kwargs: typed)
    assert getattr(maintenance, dict_method)() == typed.as_dict()


def test_real_dicts_keep_their_keys_and_types(queue_db: Path) -> None:
    maintenance = QueueMaintenance(queue_db)
    for dict_method, _typed, _cls, keys in PAIRS:
        assert set(getattr(maintenance, dict_method)()) == keys, dict_method
    full = maintenance.optimize(full=True)
    assert full["vacuumed"] is True and set(full["vacuum"]) == PAIRS[1][3]
    assert isinstance(full["stats_before"], dict) and isinstance(full["stats_after"], dict)
    assert maintenance.optimize()["vacuum"] is None
    assert maintenance.analyze("TASK_QUEUE")["table"] == "task_queue"


def test_stats_dict_and_typed_read_the_same_values(queue_db: Path) -> None:
    typed = read_database_stats(queue_db)
    as_dict = database_stats(queue_db)
    assert as_dict == typed.as_dict()
    assert list(as_dict) == list(STATS_KEYS)
    assert typed.is_queue and typed.task_counts is not None and typed.task_counts["queued"] == 0
    assert typed.freelist_bytes == typed.freelist_count * typed.page_size


def test_vacuum_never_reports_negative_savings() -> None:
    grown = VacuumResult(size_before=4096, size_after=8192, file_size_after=8192, seconds=0.1)
    assert grown.freed_bytes == 0 and grown.as_dict()["freed_bytes"] == 0
