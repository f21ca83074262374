"""Checkpoint starvation seen early from the samples, and one piece of advice for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wal_scripts import READER, WRITER

from queue_admin_gui.core.measurements.health import HealthMeasurements, assess_health
from queue_admin_gui.core.measurements.holders import FileHolder, HolderLookup, find_holders
from queue_admin_gui.core.measurements.sampling import (
    AUTOCHECKPOINT_FRAMES,
    MEGABYTE,
    CheckpointOutcome,
    Sample,
    SampleHistory,
    read_sample,
)
from queue_admin_gui.core.measurements.starvation import (
    STUCK_SAMPLES,
    Starvation,
    diagnose_long_reader,
    diagnose_starvation,
    report_with_starvation,
    starvation_advice,
)
from queue_admin_gui.core.settings.config import MaintenanceConfig

FRAME_BYTES = 4096 + 24


def _sample(moment: float, wal: int, frames: int | None = None,
            backfilled: int | None = None) -> Sample:
    return Sample(time=moment, db_bytes=8192, wal_bytes=wal, shm_bytes=32768, page_count=2,
                  freelist_count=0, page_size=4096, wal_frames=frames,
                  backfilled_frames=backfilled)


def _outcome(moment: float, log: int, done: int, mode: str = "PASSIVE",
             busy: int = 0) -> CheckpointOutcome:
    return CheckpointOutcome.from_result(
        {"mode": mode, "busy": busy, "log": log, "checkpointed": done}, moment)


def _growing(count: int = 5) -> SampleHistory:
    history = SampleHistory(100)
    for n in range(count):
        history.append_sample(_sample(1000.0 + n, (n + 1) * MEGABYTE))
    return history


def test_one_checkpoint_leaving_frames_then_growth_is_enough():
    text = diagnose_long_reader(_growing(), [_outcome(1002.5, 700, 40)], now=1004)
    assert text is not None
    assert "long-running reader is keeping the WAL from being reset" in text
    assert "40 of 700 frames" in text and "5.0 MB" in text
    assert "close it or end its transaction" in text
    assert "no checkpoint can shrink it yet" in text


def test_a_truncate_that_could_not_reset_counts_too():
    found = diagnose_starvation(_growing(), [_outcome(1001.5, 700, 700, "TRUNCATE", busy=1)],
                                now=1004)
    assert found is not None and "could not reset the log" in found.evidence


def test_no_diagnosis_without_growth_or_after_a_complete_checkpoint():
    steady = SampleHistory(100)
    for n in range(5):
        steady.append_sample(_sample(1000.0 + n, MEGABYTE))
    assert diagnose_starvation(steady, [_outcome(1001, 300, 40), _outcome(1003, 700, 40)],
                               now=1004) is None
    assert diagnose_starvation(_growing(), [_outcome(1001, 300, 40), _outcome(1003, 700, 700)],
                               now=1004) is None
    assert diagnose_starvation(_growing(), [], now=1004) is None
    # the checkpoint left frames, but the WAL has not grown since
    flat_after = SampleHistory(100)
    for n, size in enumerate((1, 2, 3, 3, 3)):
        flat_after.append_sample(_sample(1000.0 + n, size * MEGABYTE))
    assert diagnose_starvation(flat_after, [_outcome(1002.5, 700, 40)], now=1004) is None


def test_copied_back_count_stuck_at_zero_is_starvation_within_a_few_samples():
    """A reader that began before the first frame lets checkpoints copy nothing at all."""
    history = SampleHistory(100)
    frames = (400, 1200, 2000, 2800)
    found = []
    for n, count in enumerate(frames):
        history.append_sample(_sample(1000.0 + n, count * FRAME_BYTES, count, 0))
        found.append(diagnose_starvation(history, [], now=1000.0 + n))
    assert found[:STUCK_SAMPLES - 1] == [None] * (STUCK_SAMPLES - 1)
    assert found[-1] is not None
    assert "copied nothing past frame 0 while 2800 newer frames wait" in found[-1].evidence
    assert found[-1].since == 1000.0


def test_a_healthy_workload_with_autocheckpoints_is_not_starvation():
    history = SampleHistory(100)
    pattern = [(900, 0), (1100, 1100), (300, 0), (1050, 1050), (700, 0), (1010, 1010),
               (400, 0), (1300, 1300)]
    for n, (frames, done) in enumerate(pattern):
        history.append_sample(_sample(1000.0 + n, (n + 1) * MEGABYTE, frames, done))
        assert diagnose_starvation(history, [], now=1000.0 + n) is None
    # a big transaction caught before its autocheckpoint ran: one sample is not proof
    history.append_sample(_sample(1009.0, 10 * MEGABYTE, 5000, 1300))
    assert diagnose_starvation(history, [], now=1009) is None
    assert AUTOCHECKPOINT_FRAMES == 1000


def test_the_health_tooltip_gives_the_same_advice_instead_of_a_truncate():
    config = MaintenanceConfig()
    big = HealthMeasurements(wal_size_bytes=int((config.wal_size_threshold_mb + 1) * MEGABYTE))
    report = assess_health(config, big)
    assert "run a TRUNCATE checkpoint on the WAL/Checkpoint tab" in report.summary()
    advice = starvation_advice(Starvation("checkpoints stay put", 9 * MEGABYTE, 1.0),
                               HolderLookup((FileHolder(31, "report.exe", "report.exe -x"),)))
    changed = report_with_starvation(report, advice)
    assert changed.summary().count("TRUNCATE checkpoint on the WAL/Checkpoint tab") == 0
    assert advice in changed.reasons and "PID 31 report.exe: report.exe -x" in advice
    assert changed.level == report.level and "WAL pinned" in changed.headline()
    # a small WAL that is pinned still gets a warning
    small = report_with_starvation(assess_health(config, HealthMeasurements(
        wal_size_bytes=MEGABYTE)), advice)
    assert small.level.label == "Warning" and small.reasons == [advice]
    assert report_with_starvation(report, None) is report





def _write(writer: subprocess.Popen, rows: int) -> None:
    writer.stdin.write(f"{rows}\n")
    writer.stdin.flush()
    assert writer.stdout.readline().strip() == "written"


def test_real_reader_process_starves_a_real_writer_and_is_named(queue_db: Path,
                                                               tmp_path: Path):
    """No checkpoint from the tool: the samples alone show it, and the reader is named."""
    (tmp_path / "writer.py").write_text(WRITER)
    (tmp_path / "report.py").write_text(READER)
    writer = subprocess.Popen([sys.executable, str(tmp_path / "writer.py"), str(queue_db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reader = subprocess.Popen([sys.executable, str(tmp_path / "report.py"), str(queue_db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        _write(writer, 50)
        assert reader.stdout.readline().strip() == "reading"
        history = SampleHistory(100)
        found = None
        taken = 0
        while found is None and taken < 6:
            _write(writer, 600)
            history.append_sample(read_sample(queue_db, 1000.0 + taken))
            taken += 1
            found = diagnose_starvation(history, [], now=1000.0 + taken)
        assert found is not None, "the samples never showed the starvation"
        assert taken <= 5
        lookup = find_holders(queue_db)
        advice = starvation_advice(found, lookup)
        assert f"PID {reader.pid}" in advice and "report.py" in advice
        assert f"PID {writer.pid}" in advice
    finally:
        for process in (reader, writer):
            process.stdin.close()
            process.wait(30)
            process.stdout.close()
    assert reader.returncode == 0 and writer.returncode == 0
