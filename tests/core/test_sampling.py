"""Sampling without Qt: ring buffers, one read-only sample, CSV export and the diagnosis."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from queue_admin_gui.core import QueueMaintenance
from queue_admin_gui.core.database import connect
from queue_admin_gui.core.errors import ErrorKind, QueueDatabaseError
from queue_admin_gui.core.files.db_files import file_size, wal_path
from queue_admin_gui.core.measurements.sampling import (
    MEGABYTE,
    SAMPLE_COLUMNS,
    RingBuffer,
    Sample,
    SampleHistory,
    TaskCountHistory,
    export_csv,
    history_capacity,
    read_sample,
    read_wal_index,
    wal_level,
)

FRAME_BYTES = 4096 + 24


def fill(connection, rows: int, size: int = 3000) -> None:
    """Insert ``rows`` tasks with big payloads (about one page each), one commit."""
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(
        "INSERT INTO task_queue (type, payload) VALUES ('render', ?)",
        [('{"blob": "' + "x" * size + '"}',) for _ in range(rows)],
    )
    connection.execute("COMMIT")


# -- ring buffers -----------------------------------------------------------------------------
def test_ring_buffer_keeps_order_before_it_is_full():
    ring = RingBuffer(5, ("time", "value"))
    for n in range(3):
        ring.append((n, n * 10))
    assert len(ring) == 3
    assert ring.column("time").tolist() == [0, 1, 2]
    assert ring.column("value", start=1).tolist() == [10, 20]
    assert ring.row(-1).tolist() == [2, 20]


def test_ring_buffer_wraps_and_keeps_the_newest_rows_in_time_order():
    ring = RingBuffer(4, ("time", "value"))
    for n in range(11):
        ring.append((n, -n))
    assert len(ring) == 4
    assert ring.appended == 11
    assert ring.column("time").tolist() == [7, 8, 9, 10]
    assert ring.column("value").tolist() == [-7, -8, -9, -10]
    assert ring.row(0).tolist() == [7, -7]
    assert ring.column("time", start=2).tolist() == [9, 10]
    with pytest.raises(IndexError):
        ring.row(4)


def test_since_finds_the_window_across_the_wrap_point():
    ring = RingBuffer(7, ("time",))
    for n in range(20):
        ring.append((100 + n,))
    # rows 113..119 are kept; the physical array wrapped in the middle of them
    assert ring.since(116).ravel().tolist() == [116, 117, 118, 119]
    assert ring.since(115.5).ravel().tolist() == [116, 117, 118, 119]
    assert ring.since(0).ravel().tolist() == list(range(113, 120))
    assert ring.since(500).shape == (0, 1)


def test_memory_is_allocated_once_and_a_day_fits_in_a_few_megabytes():
    history = SampleHistory(history_capacity(1.0))
    tasks = TaskCountHistory()
    before = history.nbytes
    for n in range(3 * history.capacity // 2):
        history.append((n, 1, 2, 3, 4, 5, 6, 7))
    assert history.nbytes == before
    assert len(history) == history.capacity == 86_400
    assert history.nbytes + tasks.nbytes < 8 * MEGABYTE
    assert history.column("time")[0] == history.capacity // 2


def test_gaps_are_nan_rows_and_clear_forgets_everything():
    history = SampleHistory(10)
    history.append_gap(5.0)
    row = history.row(0)
    assert row[0] == 5.0 and np.isnan(row[1:]).all()
    history.clear()
    assert len(history) == 0
    assert history.ordered().shape == (0, len(SAMPLE_COLUMNS))


# -- one sample -------------------------------------------------------------------------------
def test_read_sample_reports_sizes_pages_and_task_counts(queue_db: Path):
    writer = connect(queue_db)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        fill(writer, 40)
        sample = read_sample(queue_db, 1234.5, with_task_counts=True)
    finally:
        writer.close()
    assert sample.time == 1234.5
    assert sample.page_size == 4096
    assert sample.page_count > 40
    assert sample.freelist_count == 0
    assert sample.wal_bytes > 0 and sample.task_counts is not None
    assert sample.task_counts["queued"] == 40
    assert sample.wal_frames is not None
    # the -shm header agrees with the WAL file itself: header + one frame per page written
    assert sample.wal_bytes == 32 + sample.wal_frames * FRAME_BYTES
    assert sample.backfilled_frames == 0
    assert read_sample(queue_db, 0).task_counts is None  # only when asked


def test_read_sample_leaves_no_connection_that_pins_the_wal(queue_db: Path):
    writer = connect(queue_db)
    try:
        fill(writer, 20)
        read_sample(queue_db, 0.0, with_task_counts=True)
        result = QueueMaintenance(queue_db).checkpoint("TRUNCATE")
    finally:
        writer.close()
    assert result["busy"] == 0
    assert file_size(wal_path(queue_db)) == 0


def test_read_wal_index_refuses_a_torn_or_foreign_header(tmp_path: Path):
    assert read_wal_index(tmp_path / "missing-shm") is None
    garbage = tmp_path / "garbage-shm"
    garbage.write_bytes(b"\x01" * 48 + b"\x02" * 80)
    assert read_wal_index(garbage) is None


def test_missing_file_raises_not_found(tmp_path: Path):
    with pytest.raises(QueueDatabaseError) as caught:
        read_sample(tmp_path / "gone.db", 0.0)
    assert caught.value.kind is ErrorKind.NOT_FOUND


def test_plain_sqlite_file_is_sampled_without_task_counts(tmp_path: Path):
    path = tmp_path / "plain.db"
    connection = connect(path, create=True)
    connection.execute("CREATE TABLE t (x)")
    connection.close()
    sample = read_sample(path, 1.0, with_task_counts=True)
    assert sample.task_counts is None
    assert sample.page_count >= 2


# -- levels and export ------------------------------------------------------------------------
def test_wal_level_against_the_config_limits():
    assert wal_level(10 * MEGABYTE, 50, 100) == "ok"
    assert wal_level(50 * MEGABYTE, 50, 100) == "warning"
    assert wal_level(150 * MEGABYTE, 50, 100) == "critical"


def _sample(moment: float, wal: int, frames: int | None = None, backfilled: int | None = None,
            counts: dict[str, int] | None = None) -> Sample:
    return Sample(time=moment, db_bytes=8192, wal_bytes=wal, shm_bytes=32768, page_count=2,
                  freelist_count=0, page_size=4096, wal_frames=frames,
                  backfilled_frames=backfilled, task_counts=counts)


def test_export_csv_writes_samples_gaps_and_task_counts(tmp_path: Path):
    history, tasks = SampleHistory(10), TaskCountHistory(10)
    history.append_sample(_sample(1_700_000_000.0, 4096, 3, 0))
    tasks.append_counts(1_700_000_000.0, {"queued": 7, "completed": 2})
    history.append_gap(1_700_000_001.0)
    history.append_sample(_sample(1_700_000_002.0, 8192))
    target = tmp_path / "out dir with space.csv"
    assert export_csv(target, history, tasks) == 3
    with open(target, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch_seconds"] for row in rows] == [
        "1700000000.000", "1700000001.000", "1700000002.000"]
    assert rows[0]["time_utc"] == "2023-11-14T22:13:20+00:00"
    assert rows[0]["wal_bytes"] == "4096" and rows[0]["wal_frames"] == "3"
    assert rows[0]["tasks_queued"] == "7" and rows[0]["tasks_completed"] == "2"
    assert rows[1]["wal_bytes"] == "" and rows[1]["page_count"] == ""
    assert rows[2]["wal_frames"] == "" and rows[2]["tasks_queued"] == ""
    assert not (tmp_path / "out dir with space.csv.partial").exists()


def test_failed_export_leaves_no_file(tmp_path: Path):
    history = SampleHistory(4)
    history.append_sample(_sample(1.0, 0))
    with pytest.raises(QueueDatabaseError):
        export_csv(tmp_path / "no such folder" / "x.csv", history)
    assert not (tmp_path / "no such folder").exists()


def test_core_sampling_does_not_import_qt():
    code = ("import sys, queue_admin_gui.core.measurements.sampling; "
            "sys.exit(any(name.startswith('PySide6') for name in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
