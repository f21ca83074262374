"""Checkpoint summaries and sample-based health measurements, without Qt."""

from __future__ import annotations

from queue_admin_gui.core.measurements.health import HealthMeasurements
from queue_admin_gui.core.measurements.readings import CheckpointSummary, measurements_with_sample
from queue_admin_gui.core.measurements.sampling import Sample


def result(busy: int, log: int, done: int, mode: str = "PASSIVE") -> dict:
    return {"mode": mode, "busy": busy, "log_frames": log, "checkpointed_frames": done,
            "wal_bytes_after": 0}


def test_finished_only_when_every_frame_was_copied_and_nothing_was_busy():
    assert CheckpointSummary.of(result(0, 40, 40)).finished
    assert CheckpointSummary.of(result(0, 40, 40)).finished_text() == "yes"
    left = CheckpointSummary.of(result(0, 1200, 200))
    assert not left.finished and left.frames_left == 1000
    assert left.finished_text() == "no: 1,000 of 1,200 frames left"
    busy = CheckpointSummary.of(result(1, 40, 10, "TRUNCATE"))
    assert not busy.finished and busy.finished_text() == "no: busy, 30 of 40 frames left"
    assert "could not finish" in busy.sentence()
    not_wal = CheckpointSummary.of(result(0, -1, -1))
    assert not not_wal.finished and "not in WAL mode" in not_wal.finished_text()


def test_old_key_names_are_read_too():
    summary = CheckpointSummary.of({"mode": "FULL", "busy": 0, "log": 5, "checkpointed": 4})
    assert summary.frames_left == 1 and not summary.finished


def test_health_takes_sizes_from_the_sample_and_keeps_the_rest():
    measured = HealthMeasurements(wal_size_bytes=1, fragmentation_percent=0.0, stale_leases=3,
                                  has_backups=True)
    sample = Sample(time=1.0, db_bytes=4096 * 100, wal_bytes=8_000_000, shm_bytes=32768,
                    page_count=100, freelist_count=25, page_size=4096)
    combined = measurements_with_sample(measured, sample)
    assert combined.wal_size_bytes == 8_000_000
    assert combined.fragmentation_percent == 25.0
    assert combined.database_bytes == 4096 * 100 + 8_000_000
    assert combined.stale_leases == 3 and combined.has_backups is True
