"""Benchmark: the Leases tab on 100,000 stale leases and the Backups tab on 3,000 backups.

Run: ``python tests/bench/bench_lists.py [--leases N] [--backups N] [--refreshes K]``.

It builds a queue whose 100,000 in-flight tasks all have a lease that ran out an hour ago
(98,000 of silent workers, 2,000 of a worker that still heartbeats, 10,500 dead tasks) and a
folder of 3,000 backups with manifests, then runs the real tabs offscreen, side by side in a
tab widget as the window holds them. A 5 ms timer records the gaps between its ticks; for
each step the largest gap is the longest the window stood still. Two baselines come first
(the loop idle, and a job that only sleeps): on a busy machine they show how much of a gap
is the machine's, not the tabs'. Then:

* leases: the list arriving, a Refresh, a Preview, sorting by a column, the tab coming back
  to the front (it reads again), and resident memory after 1 and after ``--refreshes``
  refreshes (then after two seconds of idling);
* backups: the list arriving, a Refresh, sorting, the tab coming back to the front.

Each line of output is one step: its largest gap in ms and how long it took to finish.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "tests" / "ui"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TICK_MS = 5


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux; 0 where it cannot be read)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class GapRecorder:
    """A 5 ms timer that remembers the longest time between two of its ticks."""

    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.largest = 0

    def start(self) -> None:
        self.clock.start()
        self.largest = 0
        self.timer.start()

    def reset(self) -> None:
        self.clock.restart()
        self.largest = 0

    def _tick(self) -> None:
        self.largest = max(self.largest, self.clock.restart())


def run_until(condition: Callable[[], bool], timeout_s: float = 300.0) -> None:
    """Run the event loop until ``condition`` holds (checked every 10 ms)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    check = QTimer()
    check.setInterval(10)
    deadline = time.monotonic() + timeout_s

    def look() -> None:
        if condition() or time.monotonic() > deadline:
            loop.quit()

    check.timeout.connect(look)
    check.start()
    loop.exec()
    check.stop()
    if not condition():
        raise TimeoutError("the step did not finish in time")


def settle(ms: int = 300) -> None:
    """Let the loop run ``ms`` more (queued signals, repaint after a model reset)."""
    start = time.monotonic()
    run_until(lambda: time.monotonic() - start >= ms / 1000)


def step(name: str, action: Callable[[], None], done: Callable[[], bool],
         gaps: GapRecorder, results: list[tuple[str, float, float]]) -> None:
    """Do ``action``, wait until ``done``, and record the largest gap meanwhile."""
    settle(100)
    gaps.reset()
    started = time.perf_counter()
    action()
    run_until(done)
    seconds = time.perf_counter() - started
    settle()
    results.append((name, float(gaps.largest), seconds))
    print(f"{name:<38} {gaps.largest:>6} ms gap  {seconds:6.2f} s  RSS {rss_mb():5.0f} MB",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    """Build the queue and the folder, run the tabs, print the largest gap of each step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=100_000)
    parser.add_argument("--backups", type=int, default=3_000)
    parser.add_argument("--refreshes", type=int, default=10)
    args = parser.parse_args(argv)

    from _big_lists import make_backup_folder, make_lease_queue
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QTabWidget, QWidget

    from queue_admin_gui.app.jobs import Job, JobRunner
    from queue_admin_gui.app.messages import Messages, RecordingPresenter
    from queue_admin_gui.app.session import Session
    from queue_admin_gui.core.settings.config import MaintenanceConfig
    from queue_admin_gui.ui.backups_tab import BackupsTab
    from queue_admin_gui.ui.leases_tab import LeasesTab

    print(f"{platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    application = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory(prefix="bench-lists-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        db_path = make_lease_queue(root / "queue.db", stale=args.leases - args.leases // 50,
                                   alive=args.leases // 50, dead=10_500)
        make_backup_folder(root / "backups", args.backups)
        print(f"built {args.leases:,} leases and {args.backups:,} backups in "
              f"{time.perf_counter() - started:.1f} s")
        runner = JobRunner()
        session = Session(runner, Messages(RecordingPresenter(answer=False)),
                          MaintenanceConfig(backup_dir=root / "backups"), None)
        session.is_queue = True
        tabs = QTabWidget()
        leases, backups, other = LeasesTab(session), BackupsTab(session), QWidget()
        for widget, title in ((leases, "Leases"), (backups, "Backups"), (other, "Other")):
            tabs.addTab(widget, title)
        tabs.resize(1280, 860)
        tabs.setCurrentWidget(other)
        tabs.show()
        gaps = GapRecorder()
        gaps.start()
        results: list[tuple[str, float, float]] = []

        finished = [0]  # a count: keeping the jobs would keep every list they read
        runner.job_finished.connect(lambda _job: finished.__setitem__(0, finished[0] + 1))

        def idle() -> bool:
            return not runner.busy

        def read_again() -> Callable[[], bool]:
            """Done once a job started after now has finished and nothing runs."""
            count = finished[0]
            return lambda: finished[0] > count and not runner.busy

        def front(widget: QWidget) -> Callable[[], None]:
            return lambda: tabs.setCurrentWidget(widget)

        def click(button: object) -> Callable[[], None]:
            return lambda: QTest.mouseClick(button, Qt.MouseButton.LeftButton)

        def sort_by(view: object, column: int) -> Callable[[], None]:
            return lambda: view.sortByColumn(column, Qt.SortOrder.DescendingOrder)

        def sleeping_job() -> None:
            runner.run(Job("Sleep", lambda progress, cancelled: time.sleep(1.0)))

        started_idle = time.monotonic()
        step("baseline: idle 1 s", lambda: None,
             lambda: time.monotonic() - started_idle > 1.5, gaps, results)
        step("baseline: a job sleeping 1 s", sleeping_job, idle, gaps, results)
        session.set_database(db_path, True)
        step("leases: list arrives", front(leases), idle, gaps, results)
        step("leases: Refresh", click(leases.refresh_button), idle, gaps, results)
        gc.collect()
        after_one = rss_mb()
        step("leases: Preview", click(leases.preview_button), idle, gaps, results)
        step("leases: sort by Worker seen", sort_by(leases.in_flight_view, 7), idle, gaps,
             results)
        step("leases: switch away", front(other), idle, gaps, results)
        step("leases: back to the front", front(leases), read_again(), gaps, results)
        for number in range(2, args.refreshes + 1):
            step(f"leases: Refresh {number}", click(leases.refresh_button), idle, gaps,
                 results)
        gc.collect()
        after_ten = rss_mb()
        settle(2000)
        after_idle = rss_mb()
        step("backups: list arrives", front(backups), idle, gaps, results)
        step("backups: Refresh", click(backups.refresh_button), idle, gaps, results)
        step("backups: sort by Size", sort_by(backups.table, 2), idle, gaps, results)
        step("backups: switch away", front(other), idle, gaps, results)
        step("backups: back to the front", front(backups), read_again(), gaps, results)
        gaps.timer.stop()
        print(f"RSS after 1 refresh {after_one:.0f} MB, after {args.refreshes} refreshes "
              f"{after_ten:.0f} MB, after 2 s idle {after_idle:.0f} MB")
        worst = max(results, key=lambda item: item[1])
        print(f"largest gap of all steps: {worst[1]:.0f} ms ({worst[0]})")
        runner.shutdown(60_000)
        tabs.close()
        del application
    return 0


if __name__ == "__main__":
    sys.exit(main())
