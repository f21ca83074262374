"""Soak benchmark: the real main window left sampling, memory and objects per 1,000 samples.

Run: ``python -m tests.bench.bench_soak [--samples N] [--interval-ms MS] [--warmup N]``.
It opens the real :class:`MainWindow` offscreen on a demo queue while :class:`DemoWorkers`
write to it, shows the WAL tab (so its plot redraws), sets the sample interval to a few
milliseconds and lets the event loop run until ``--samples`` samples were taken. Each sample
is stamped one simulated second after the one before, so 12,000 samples are 3.3 hours on
the plot's time axis and its 5-minute window is full after the warm-up. After the
warm-up it records, every 1,000 samples, the resident memory and the live objects: Python
QObject wrappers, QThreads, Jobs, and the C++ children of the window and the session. It
prints a table and the growth per 1,000 samples (a least-squares slope over the records).
The ring buffers are allocated when the database opens, so anything that grows is a leak.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; psutil elsewhere when installed)."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    import psutil  # noqa: PLC0415 - only where /proc is missing

    return int(psutil.Process().memory_info().rss)


def live_objects(window: object) -> dict[str, int]:
    """Counts of what must not grow with the number of samples."""
    from PySide6.QtCore import QObject, QThread

    from queue_admin_gui.app.jobs import live_job_count

    # findChildren makes a wrapper for every child: list them before counting the wrappers
    window_children = len(window.findChildren(QObject))  # type: ignore[attr-defined]
    session_children = len(window.session.findChildren(QObject))  # type: ignore[attr-defined]
    wrappers = [item for item in gc.get_objects() if isinstance(item, QObject)]
    return {
        "QObject wrappers": len(wrappers),
        "QThreads": sum(isinstance(item, QThread) for item in wrappers),
        "Jobs": live_job_count(),
        "window children": window_children,
        "session children": session_children,
    }


def wrapper_types() -> Counter[str]:
    """Live QObject wrappers by class name, to name whatever grows."""
    from PySide6.QtCore import QObject

    return Counter(type(item).__name__ for item in gc.get_objects() if isinstance(item, QObject))


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points (0 for fewer than two)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def run(samples: int, interval_ms: float, warmup: int, folder: Path) -> dict[str, object]:
    """Run the window until ``samples`` samples were taken; returns the records and slopes."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication, QEvent, QSettings
    from PySide6.QtWidgets import QApplication

    from queue_admin_gui.app.gc_guard import MainThreadGarbageCollector
    from queue_admin_gui.app.jobs import JobRunner
    from queue_admin_gui.app.messages import Messages, RecordingPresenter
    from queue_admin_gui.app.session import Session
    from queue_admin_gui.core.activity import ActivityLog
    from queue_admin_gui.core.demo.queue_file import create_demo_queue
    from queue_admin_gui.core.demo.workers import DemoWorkers
    from queue_admin_gui.core.settings.config import MaintenanceConfig
    from queue_admin_gui.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    collector = MainThreadGarbageCollector(parent=app)
    path = folder / "queue.db"
    create_demo_queue(path, tasks=2000, seed=11)
    config = MaintenanceConfig(backup_dir=folder / "backups",
                               sample_interval_seconds=interval_ms / 1000)
    session = Session(JobRunner(), Messages(RecordingPresenter(answer=True)), config)
    settings = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(session, settings, ActivityLog(folder / "activity.jsonl"))
    window.resize(1280, 860)
    window.show()
    window.open_database(path)
    workers = DemoWorkers(path, workers=3, seed=5, arrival_per_second=20,
                          work_seconds=(0.01, 0.05), die_probability=0.0)
    records: list[dict[str, float]] = []
    started = time.monotonic()
    try:
        _wait(app, lambda: session.db_path == path, 60)
        workers.start()
        window.show_tab("wal")
        sampler = window.sampler
        first = time.time()
        sampler.clock = lambda: first + sampler.samples_taken  # one simulated second each
        session.set_config(dataclasses.replace(session.config,
                                               sample_interval_seconds=interval_ms / 1000))
        next_record = warmup
        while sampler.samples_taken < samples:
            app.processEvents()
            if sampler.samples_taken >= next_record:
                for _ in range(3):
                    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
                gc.collect()
                if not records:
                    types_before = wrapper_types()
                records.append({"samples": float(sampler.samples_taken),
                                "seconds": time.monotonic() - started,
                                "rss_mb": rss_bytes() / 2**20, **live_objects(window)})
                next_record += 1000
            time.sleep(0.0005)  # a benchmark, not a test: leave the cores to the workers
        gaps = int(sum(1 for value in sampler.history.column("wal_bytes") if value != value))
        grown_types = dict(wrapper_types() - types_before)
    finally:
        workers.stop(30)
        window.sampler.stop()
        session.runner.shutdown()
        window.close()
        collector.stop()
    keys = [key for key in records[0] if key not in ("samples", "seconds")]
    slopes = {key: slope([(r["samples"] / 1000, r[key]) for r in records]) for key in keys}
    return {"records": records, "slopes": slopes, "gaps": gaps, "grown types": grown_types,
            "wall_seconds": time.monotonic() - started, "demo": workers.stats}


def _wait(app: object, condition: object, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > end:
            raise TimeoutError("the window did not open the demo queue")
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.005)


def machine() -> str:
    """One line naming the machine, as docs/benchmarks.md gives it."""
    import PySide6

    return (f"{os.cpu_count()} cores, {platform.system()}, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, PySide6 {PySide6.__version__}")


def main(argv: list[str] | None = None) -> int:
    """Command line: run the soak and print the table and the growth per 1,000 samples."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_soak")
    parser.add_argument("--samples", type=int, default=12_000)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--warmup", type=int, default=2_000)
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="queue-admin-soak-") as folder:
        result = run(arguments.samples, arguments.interval_ms, arguments.warmup, Path(folder))
    records = result["records"]
    print(machine())
    print(f"{arguments.samples} samples at {arguments.interval_ms} ms in "
          f"{result['wall_seconds']:.0f} s, {result['gaps']} gaps; demo workers: "
          f"{result['demo']}")
    header = list(records[0])
    print(" | ".join(header))
    for record in records:
        print(" | ".join(f"{record[key]:.1f}" if key in ("rss_mb", "seconds")
                         else f"{record[key]:.0f}" for key in header))
    print("growth per 1,000 samples after warm-up:")
    for key, value in result["slopes"].items():
        print(f"  {key}: {value:+.2f}")
    print(f"QObject wrappers that grew after warm-up, by class: {result['grown types']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
