"""Benchmark: starting the window on an activity log of a million lines.

Run: ``python tests/bench/bench_activity_log.py [--lines N] [--runs K]``.

It writes an ``activity.jsonl`` of ``--lines`` realistic entries (about 200 bytes each) into a
temporary user folder, then starts a fresh process per measurement, so each one pays its own
imports and its peak memory is its own:

* ``window``: ``create_window`` and ``show()`` with that log, until the dock lists its
  newest entries; then the event loop runs for one second with a 10 ms timer, and the largest
  gap between two ticks is the longest the window stood still;
* ``empty``: the same with no activity log, the yardstick for time and memory;
* ``whole-file``: reading the file as the dock did before it read backwards
  (``readlines()`` of the whole file, then the last 200 lines), for comparison.

Each line of output is one process: seconds to the filled dock, peak resident memory, and
the largest event-loop gap.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODES = ("empty", "window", "whole-file")


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MB (None where it cannot be read)."""
    try:
        import resource
    except ImportError:  # Windows
        try:
            import psutil
        except ImportError:
            return None
        return psutil.Process().memory_info().peak_wset / 2**20
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def write_log(path: Path, lines: int) -> None:
    """``lines`` entries like the window writes, in large chunks."""
    from queue_admin_gui.core.activity import ActivityEntry

    path.parent.mkdir(parents=True, exist_ok=True)
    text = ActivityEntry.now("Backup", parameters={"name": "nightly", "keep": 14},
                             message="Backup written and verified: queue_backup.db",
                             duration_seconds=12.5, database="C:/Data/queue.db").to_json()
    head, tail = text.split('"action": "Backup"')
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for start in range(0, lines, 50_000):
            handle.write("".join(f'{head}"action": "Backup {number}"{tail}\n'
                                 for number in range(start, min(lines, start + 50_000))))


def measure_window() -> dict[str, float | None]:
    """Start the real window on the log the environment points at (child process)."""
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from queue_admin_gui.app.messages import RecordingPresenter
    from queue_admin_gui.ui.launch import create_window, parse_arguments

    application = QApplication.instance() or QApplication([])
    started = time.perf_counter()
    window = create_window(parse_arguments([]), presenter=RecordingPresenter())
    window.show()
    application.processEvents()
    seconds = time.perf_counter() - started
    rows = window.activity_dock.model.rowCount()
    gaps: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    ticker = QTimer()
    ticker.setInterval(10)
    ticker.timeout.connect(lambda: gaps.append(clock.restart()))
    ticker.start()
    QTimer.singleShot(1000, application.quit)
    application.exec()
    ticker.stop()
    window.health_timer.stop()
    window.session.runner.shutdown(30_000)
    return {"seconds": seconds, "rows": rows, "peak_mb": peak_rss_mb(),
            "largest_gap_ms": float(max(gaps[1:] or [0]))}


def measure_whole_file(path: Path) -> dict[str, float | None]:
    """Read the whole file and keep its last 200 lines, as the dock used to."""
    started = time.perf_counter()
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.readlines()
    newest = [json.loads(line) for line in lines[-200:]]
    return {"seconds": time.perf_counter() - started, "rows": len(newest),
            "peak_mb": peak_rss_mb(), "largest_gap_ms": None}


def child_environment(home: Path) -> dict[str, str]:
    """Per-user folders under ``home`` so the window finds the generated log there."""
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                      env.get("PYTHONPATH")]))
    for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME",
                     "LOCALAPPDATA", "APPDATA"):
        env[variable] = str(home / variable.lower())
    env.pop("PRISMQ_QUEUE_DB_PATH", None)
    return env


def run_child(mode: str, home: Path) -> dict[str, float | None]:
    """One measurement in a fresh process; its JSON answer."""
    done = subprocess.run([sys.executable, __file__, "--child", mode], env=child_environment(home),
                          capture_output=True, text=True, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Generate the log, measure each mode ``--runs`` times, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        from queue_admin_gui.core.activity import default_activity_path

        result = (measure_whole_file(default_activity_path()) if args.child == "whole-file"
                  else measure_window())
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-activity-") as folder:
        home = Path(folder)
        empty_home, log_home = home / "empty", home / "log"
        os.environ.update({key: value for key, value in child_environment(log_home).items()
                           if key.startswith(("XDG_", "LOCALAPPDATA", "APPDATA"))})
        from queue_admin_gui.core.activity import default_activity_path

        path = default_activity_path()
        started = time.perf_counter()
        write_log(path, args.lines)
        print(f"wrote {args.lines:,} lines ({path.stat().st_size / 2**20:.0f} MB) in "
              f"{time.perf_counter() - started:.1f} s")
        print(f"{'mode':<11} {'start s':>8} {'peak MB':>8} {'gap ms':>7} rows")
        for mode in MODES:
            runs = [run_child(mode, empty_home if mode == "empty" else log_home)
                    for _ in range(args.runs)]

            def median(key: str, values: list[dict[str, float | None]] = runs) -> str:
                numbers = [float(run[key]) for run in values if run[key] is not None]
                return f"{statistics.median(numbers):.2f}" if numbers else "-"

            print(f"{mode:<11} {median('seconds'):>8} {median('peak_mb'):>8} "
                  f"{median('largest_gap_ms'):>7} {runs[0]['rows']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
