"""Writers first under a checkpoint storm: what the archiver costs the workers.

Run from the project root::

    python -m tests.bench.bench_archive_storm [--seconds 20] [--rounds 1] [--rate 100]

A PrismQ queue (``tests/prismq.py``) of 50,000 tasks; a PrismQ worker process (claim,
processing, complete: three transactions a task, no work time) and a timed writer process
(one task and its log row per transaction, ``--rate`` a second, timing each from
before ``BEGIN IMMEDIATE`` to after ``COMMIT``, so waiting for the lock counts); two other
programs run a TRUNCATE, RESTART or FULL checkpoint every 5-50 ms. The same run is made
without an archiver (the baseline) and with ``Archiver`` running in its own process (as
``queue-admin-cli archive`` does). Reported per run: tasks the PrismQ worker completed per
second, the timed writer's transactions per second and their p50 / p99 / longest wait,
worker errors, checkpoints run; with the archiver also its generations and gaps (with their
reasons).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from queue_admin_gui.core.archive import archive_status

from .bench_report import machine_info

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT))
from archive_workload import read_commit_log, spawn  # noqa: E402
from queue_workload import read_line, wait_ready  # noqa: E402

from tests.prismq import PrismQWorker, make_prismq_queue  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def storm_run(folder: Path, seconds: float, archive: bool, rate: float) -> dict[str, object]:
    """One run under the storm, with or without the archiver; returns its figures."""
    db = make_prismq_queue(folder / "queue.db", tasks=50_000)
    stop, log = folder / "stop", folder / "writer.log"
    archiver = None
    if archive:
        archiver = spawn("archiver", db, folder / "archive", 1000)
        wait_ready(archiver)
        deadline = time.monotonic() + 60
        while not any(g.restorable_from for g in archive_status(folder / "archive").generations):
            if time.monotonic() > deadline:
                raise RuntimeError("the archiver never became restorable")
            time.sleep(0.05)
    worker = PrismQWorker(db, "prismq-bench", folder / "worker.log", work_seconds=0.0)
    worker.wait_started()
    writer = spawn("timed_writer", db, stop, log, rate)
    wait_ready(writer)
    storms = [spawn("storm", db, stop, seed) for seed in (11, 12)]
    for storm in storms:
        wait_ready(storm)
    started_with = len(worker.executed())
    started = time.monotonic()
    time.sleep(seconds)
    done_tasks = len(worker.executed()) - started_with
    elapsed = time.monotonic() - started
    stop.touch()
    checkpoints = [json.loads(read_line(storm)) for storm in storms]
    for storm in storms:
        storm.communicate(timeout=60)
    writer.communicate(timeout=60)
    worker.stop()
    waits = [(after - before) * 1000 for _, before, after in read_commit_log(log)]
    figures: dict[str, object] = {
        "prismq_tasks_per_second": done_tasks / elapsed,
        "writer_transactions_per_second": len(waits) / elapsed,
        "writer_wait_p50_ms": statistics.median(waits) if waits else 0.0,
        "writer_wait_p99_ms": percentile(waits, 0.99),
        "writer_wait_max_ms": max(waits, default=0.0),
        "worker_errors": len(worker.errors()) + (writer.returncode != 0),
        "checkpoints": sum(int(result["checkpoints"]) for result in checkpoints),
    }
    if archiver is not None:
        assert archiver.stdin is not None
        archiver.stdin.write("\n")
        archiver.stdin.flush()
        read_line(archiver)
        archiver.communicate(timeout=60)
        status = archive_status(folder / "archive")
        figures["generations"] = len(status.generations)
        figures["gaps"] = len(status.gaps)
        figures["gap_reasons"] = sorted({gap.reason.split("(")[0].strip()
                                         for gap in status.gaps})
    return figures


def main() -> None:
    """Run the baseline and the archived run (``--rounds`` times) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rate", type=float, default=100.0,
                        help="the timed writer's transactions per second (0: full speed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        for name, value in machine_info(root).items():
            print(f"{name}: {value}")
        for round_number in range(args.rounds):
            for archive in (False, True):
                folder = root / f"{round_number}-{'with' if archive else 'without'}"
                folder.mkdir()
                figures = storm_run(folder, args.seconds, archive, args.rate)
                shown = ", ".join(f"{key} {value:.1f}" if isinstance(value, float)
                                  else f"{key} {value}" for key, value in figures.items())
                print(("with the archiver: " if archive else "without the archiver: ")
                      + shown, flush=True)


if __name__ == "__main__":
    main()
