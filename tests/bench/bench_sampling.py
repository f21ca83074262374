"""Benchmark: the cost of one sample on a big queue file, and memory after a day of samples.

Run: ``python tests/bench/bench_sampling.py [--rows N] [--path FILE] [--samples K]``.
The default row count makes a queue file of about 1.4 GB (built once, reused when the file
already exists). ``--rows 20000`` gives a quick run. The memory part pushes a simulated 24 h
of 1 Hz samples into the ring buffers, plots them once offscreen, and reports the process's
resident memory before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_ROWS = 1_400_000  # about 1.4 GiB with the payloads below (1.7 M rows made 1.78 GiB)
BATCH = 20_000


def build_queue(path: Path, rows: int) -> float:
    """Create a queue file holding ``rows`` tasks (mixed statuses); seconds it took."""
    from queue_admin_gui.core.database import QueueDatabase

    started = time.perf_counter()
    rng = random.Random(1)
    statuses = ("queued", "leased", "completed", "completed", "completed", "failed")
    with QueueDatabase(path) as db:
        db.initialize_schema()
        done = 0
        while done < rows:
            count = min(BATCH, rows - done)
            with db.transaction() as connection:
                connection.executemany(
                    "INSERT INTO task_queue (type, payload, compatibility, status) "
                    "VALUES (?, ?, ?, ?)",
                    [("render", json.dumps({"format": "mp4", "blob": "x" * rng.randint(500, 1000)}),
                      '{"region": "eu-west"}', rng.choice(statuses)) for _ in range(count)],
                )
            done += count
    return time.perf_counter() - started


def rss_bytes() -> int | None:
    """Resident memory of this process (Linux /proc, else the peak from resource)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    try:
        import resource  # noqa: PLC0415 - not on Windows
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def time_samples(path: Path, samples: int, with_task_counts: bool) -> dict[str, float]:
    """Median and 95th percentile milliseconds of ``read_sample`` on ``path``."""
    from queue_admin_gui.core.measurements.sampling import read_sample

    read_sample(path, time.time(), with_task_counts=with_task_counts)  # warm the page cache
    durations = []
    for _ in range(samples):
        started = time.perf_counter()
        read_sample(path, time.time(), with_task_counts=with_task_counts)
        durations.append((time.perf_counter() - started) * 1000)
    durations.sort()
    return {"median_ms": statistics.median(durations),
            "p95_ms": durations[int(0.95 * (len(durations) - 1))]}


def memory_after_a_day(path: Path) -> dict[str, float]:
    """Push 24 h of 1 Hz samples into a Sampler's buffers, plot them once, measure RSS."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from queue_admin_gui.app.jobs import JobRunner
    from queue_admin_gui.app.messages import Messages, RecordingPresenter
    from queue_admin_gui.app.monitor import Sampler
    from queue_admin_gui.app.session import Session
    from queue_admin_gui.core.measurements.sampling import Sample
    from queue_admin_gui.core.settings.config import MaintenanceConfig
    from queue_admin_gui.ui.stats_plots import StatsPlotsWidget
    from queue_admin_gui.ui.wal_plot import WalPlotWidget

    app = QApplication.instance() or QApplication([])
    config = MaintenanceConfig(backup_dir=Path(tempfile.gettempdir()) / "bench-backups")
    session = Session(JobRunner(), Messages(RecordingPresenter()), config, path)
    now = time.time()
    sampler = Sampler(session, clock=lambda: now)
    wal_plot, stats_plots = WalPlotWidget(session, sampler), StatsPlotsWidget(session, sampler)
    for widget in (wal_plot, stats_plots):
        widget.resize(1100, 500)
        widget.set_window_seconds(86400)
    app.processEvents()
    before = rss_bytes() or 0
    counts = {"queued": 100, "leased": 5, "completed": 1000, "failed": 3}
    rounds = 2  # the second day overwrites the first: memory must not grow
    for second in range(rounds * 86400):
        moment = now - rounds * 86400 + second
        sampler.history.append_sample(Sample(moment, 1 << 30, second % 5000 * 4120, 32768,
                                             262144 + second, 100, 4096, second % 5000, 0))
        if second % 10 == 0:
            sampler.tasks.append_counts(moment, counts)
    started = time.perf_counter()
    for widget in (wal_plot, stats_plots):
        widget.show()
        widget.redraw()
        widget.grab()
    draw_seconds = time.perf_counter() - started
    after = rss_bytes() or 0
    for second in range(86400):  # a third day, redrawn every 10 minutes of it
        sampler.history.append_sample(Sample(now + second, 1 << 30, 4120, 32768, 1, 1, 4096))
        if second % 600 == 0:
            wal_plot.redraw()
            stats_plots.redraw()
    later = rss_bytes() or 0
    buffers = sampler.history.nbytes + sampler.tasks.nbytes
    session.runner.shutdown()
    return {"buffers_mb": buffers / 2**20, "rss_before_mb": before / 2**20,
            "rss_after_mb": after / 2**20, "rss_growth_mb": (after - before) / 2**20,
            "first_full_day_redraw_s": draw_seconds, "rss_after_third_day_mb": later / 2**20}


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the file, time the samples, measure memory, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--path", type=Path, default=None)
    parser.add_argument("--samples", type=int, default=200)
    options = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    path = options.path or Path(tempfile.gettempdir()) / f"bench-sampling-{options.rows}.db"
    from queue_admin_gui.core.files.db_files import file_size

    if not path.exists():
        print(f"building {path} with {options.rows} rows ...", flush=True)
        print(f"  built in {build_queue(path, options.rows):.1f} s")
    print(f"file: {path} ({file_size(path) / 2**30:.2f} GiB, {options.rows} rows)")
    plain = time_samples(path, options.samples, with_task_counts=False)
    counted = time_samples(path, max(5, options.samples // 20), with_task_counts=True)
    print(f"one sample, no task counts: median {plain['median_ms']:.2f} ms, "
          f"p95 {plain['p95_ms']:.2f} ms (target <= 5 ms)")
    print(f"one sample with task counts: median {counted['median_ms']:.1f} ms, "
          f"p95 {counted['p95_ms']:.1f} ms (taken every 10 s)")
    memory = memory_after_a_day(path)
    print(f"ring buffers for a day at 1 Hz: {memory['buffers_mb']:.1f} MB; RSS "
          f"{memory['rss_before_mb']:.0f} MB before, {memory['rss_after_mb']:.0f} MB after "
          f"2 simulated days and one full-day redraw (+{memory['rss_growth_mb']:.1f} MB); "
          f"redraw took {memory['first_full_day_redraw_s']:.2f} s; after a third day redrawn "
          f"every 10 min: {memory['rss_after_third_day_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
