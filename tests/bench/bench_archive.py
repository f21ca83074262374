"""What continuous WAL archiving costs under a worker load, and how long a rebuild takes.

Run from the project root::

    python -m tests.bench.bench_archive [--seconds 20] [--rate 100] [--tasks 200000]
        [--demo-seconds 60]

Two runs of the same worker process (one task and its log row per transaction, ``--rate``
commits per second, the writers' settings with autocheckpoints at 1000 pages): without the
archiver, then with it. Reported: the workers' commit latency in both (time spent in COMMIT),
the archiver's CPU (this process's CPU time while the archiver thread is its only work), its
lag (sampled every 50 ms: how long ago the archiver's last look at the log started, i.e. the
oldest a commit can be and still be missing from the archive), the WAL resets it followed,
and the archive's size next to the database's. Then a queue of ``--tasks`` tasks is archived
and rebuilt to its newest instant, timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from queue_admin_gui.core.archive import Archiver, archive_status, rebuild_to_time
from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.core.demo.workers import DemoWorkers
from queue_admin_gui.core.files.db_files import file_size

from .bench_report import machine_info
from .bench_writers import generate_queue

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from archive_workload import read_commit_log, spawn  # noqa: E402
from queue_workload import fill_queue, wait_ready  # noqa: E402


def latencies(log: Path) -> list[float]:
    """Milliseconds each COMMIT took, from the committer's log."""
    return [(after - before) * 1000 for _, before, after in read_commit_log(log)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def load_run(folder: Path, seconds: float, rate: float, archive: bool) -> dict[str, float]:
    """One worker run, with or without the archiver; returns the figures."""
    db = folder / "queue.db"
    fill_queue(db, 1000, "seed")
    stop, log = folder / "stop", folder / "commits.log"
    worker = spawn("committer", db, stop, log, rate)
    wait_ready(worker)
    archiver = Archiver(db, folder / "archive") if archive else None
    lags: list[float] = []
    cpu_start = time.process_time()
    started = time.monotonic()
    if archiver is not None:
        archiver.start()
    while time.monotonic() - started < seconds:
        time.sleep(0.05)
        if archiver is not None:
            lag = archiver.status().lag_seconds
            if lag is not None:
                lags.append(lag * 1000)
    stop.touch()
    worker.communicate(timeout=60)
    wall = time.monotonic() - started
    figures: dict[str, float] = {}
    if archiver is not None:
        archiver.stop()
        status = archiver.status()
        figures["archiver_cpu_percent"] = (time.process_time() - cpu_start) / wall * 100
        figures["lag_p50_ms"] = statistics.median(lags)
        figures["lag_p99_ms"] = percentile(lags, 0.99)
        figures["lag_max_ms"] = max(lags)
        figures["resets_followed"] = status.resets_followed
        figures["generations"] = status.generations_started
        figures["archive_mb"] = archive_status(folder / "archive").size_bytes / 1e6
        figures["transactions"] = status.transactions
        figures["frame_bytes_per_transaction"] = frame_bytes(folder / "archive") / max(
            1, status.transactions)
    values = latencies(log)
    figures["commits"] = len(values)
    figures["commit_p50_ms"] = statistics.median(values)
    figures["commit_p99_ms"] = percentile(values, 0.99)
    figures["database_mb"] = (file_size(db) + file_size(Path(f"{db}-wal"))) / 1e6
    return figures


def frame_bytes(archive: Path) -> int:
    """Bytes of the archive's frame logs (everything but the snapshots)."""
    return sum(segment.stat().st_size for segment in archive.glob("*/frames-*.qaf"))


def demo_run(folder: Path, seconds: float, tasks: int) -> dict[str, float]:
    """The demo's queue workload (claims, renewals, completions, arrivals) under the archiver."""
    db = create_demo_queue(folder / "demo.db", tasks=tasks, seed=11).path
    workers = DemoWorkers(db, workers=4, arrival_per_second=10, seed=11)
    archiver = Archiver(db, folder / "demo-archive")
    workers.start()
    archiver.start()
    time.sleep(seconds)
    workers.stop()
    archiver.stop()
    status = archiver.status()
    frames = frame_bytes(folder / "demo-archive")
    per_day = frames / seconds * 86400
    return {"database_mb": (file_size(db) + file_size(Path(f"{db}-wal"))) / 1e6,
            "transactions": status.transactions,
            "transactions_per_second": status.transactions / seconds,
            "frame_bytes_per_transaction": frames / max(1, status.transactions),
            "frames_mb_per_day": per_day / 1e6}


def rebuild_run(folder: Path, tasks: int) -> dict[str, float]:
    """Archive a large queue briefly under load, then rebuild it to its newest instant."""
    db = folder / "big.db"
    made = time.monotonic()
    generate_queue(db, tasks)
    print(f"  generated {file_size(db) / 1e6:.0f} MB in {time.monotonic() - made:.0f} s",
          flush=True)
    stop, log = folder / "stop-big", folder / "big.log"
    worker = spawn("committer", db, stop, log, 100)
    wait_ready(worker)
    archiver = Archiver(db, folder / "big-archive")
    archiver.start()
    while archiver.status().snapshot_pending or archiver.status().generation is None:
        time.sleep(0.2)
    time.sleep(10)
    stop.touch()
    worker.communicate(timeout=60)
    archiver.stop()
    status = archive_status(folder / "big-archive")
    latest = status.latest
    assert latest is not None
    started = time.monotonic()
    result = rebuild_to_time(folder / "big-archive", latest, folder / "rebuilt.db")
    return {"database_mb": file_size(db) / 1e6, "rebuild_seconds": time.monotonic() - started,
            "transactions_applied": result.transactions_applied,
            "rebuilt_mb": result.size_bytes / 1e6}


def main() -> None:
    """Run both load runs and the rebuild, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--demo-seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        for name, value in machine_info(root).items():
            print(f"{name}: {value}")
        for archive in (False, True):
            folder = root / ("with" if archive else "without")
            folder.mkdir()
            figures = load_run(folder, args.seconds, args.rate, archive)
            print(("with the archiver: " if archive else "without the archiver: ")
                  + ", ".join(f"{key} {value:.2f}" for key, value in figures.items()),
                  flush=True)
        if args.demo_seconds:
            figures = demo_run(root, args.demo_seconds, 20_000)
            print("demo workload: " + ", ".join(f"{key} {value:.2f}"
                                                for key, value in figures.items()), flush=True)
        if args.tasks:
            figures = rebuild_run(root, args.tasks)
            print("rebuild: " + ", ".join(f"{key} {value:.2f}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
