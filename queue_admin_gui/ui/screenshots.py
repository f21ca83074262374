"""Render the window against a demo queue to PNG files, for the README and the user guide.

``python -m queue_admin_gui.ui.screenshots [--out docs/images]`` builds a demo queue in a
temporary folder, lets the simulated workers run for a moment (so the WAL, the leases and the
counts are alive), takes two backups, opens the window offscreen at its default size and
saves the start page and every tab; then every tab at 1024x700 and 1920x1080 (in
``sizes/``), a damaged copy of the queue opened (the Optimization tab listing what is
damaged), the WAL tab while a report process pins the WAL, and the WAL and Stats tabs after
the database file was deleted under the window. ``--dark`` renders with a dark desktop
palette, ``--scale 1.5`` at 150 % (into ``scaled-150/``). Nothing outside the
temporary folder is touched except the output folder.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..core.files.db_files import shm_path, wal_path

OUTPUT_DIR = Path("docs") / "images"
WINDOW_SIZE = (1200, 800)
#: The smallest and the largest screens the layout is checked at.
SCREEN_SIZES = ((1024, 700), (1920, 1080))


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Process Qt events until ``condition()`` holds; raise TimeoutError past ``timeout``."""
    from PySide6.QtCore import QCoreApplication, QEventLoop

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not finish loading in time")
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def settle(window: object, seconds: float = 0.6) -> None:
    """Let queued jobs finish and the widgets repaint."""
    wait_until(lambda: not window.session.runner.busy)  # type: ignore[attr-defined]
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end)


def render(out_dir: Path, workers_seconds: float = 4.0, dark: bool = False) -> list[Path]:
    """Render the start page and every tab to ``out_dir``; returns the files written.

    ``dark``: with a dark desktop palette from the start, as Windows' dark mode starts it.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from ..app.gc_guard import MainThreadGarbageCollector
    from ..app.jobs import JobRunner
    from ..app.messages import Messages, RecordingPresenter
    from ..app.session import Session
    from ..core.activity import ActivityLog
    from ..core.demo.queue_file import create_demo_queue
    from ..core.demo.workers import DemoWorkers
    from ..core.settings.config import MaintenanceConfig
    from .icons import app_icon
    from .main_window import TAB_SPECS, MainWindow

    application = QApplication.instance() or QApplication([sys.argv[0]])
    application.setWindowIcon(app_icon())
    if dark:
        from .palette import dark_desktop_palette

        application.setPalette(dark_desktop_palette())
    # Unless something already runs collection in this thread (the application, the tests).
    collector = MainThreadGarbageCollector(parent=application) if gc.isenabled() else None
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="queue-admin-shots-") as folder:
        root = Path(folder)
        database = root / "PrismQ" / "queue" / "queue.db"
        create_demo_queue(database, tasks=2000, seed=42)
        config = MaintenanceConfig(backup_dir=root / "backups")
        session = Session(JobRunner(), Messages(RecordingPresenter()), config)
        settings = QSettings(str(root / "settings.ini"), QSettings.Format.IniFormat)
        settings.setValue("recent_files", [str(database)])
        window = MainWindow(session, settings, ActivityLog(root / "activity.jsonl"))
        window.show()
        settle(window)
        # the window fits itself to the (offscreen) screen once shown: the pictures keep
        # their own size, larger than that screen
        window.resize(*WINDOW_SIZE)
        settle(window, 0.1)
        written.append(grab(window, out_dir / "start_page.png"))

        workers = DemoWorkers(database, workers=4, seed=42)
        workers.start()
        try:
            wait_until(lambda: workers.stats.completed > 20 or not workers.is_running)
            window.open_database(database)
            wait_until(lambda: session.db_path == database)
            tab = window.backups_tab
            for name in ("nightly", "before-upgrade"):
                settle(window, 0.1)
                tab.name_edit.setText(name)
                tab.back_up_now()
                settle(window, 0.1)
            run_for(workers_seconds / 2)
            window.tab_widgets["wal"].run_checkpoint("PASSIVE")
            settle(window, 0.1)
            run_for(workers_seconds / 2)
            for key, *_rest in TAB_SPECS:
                window.show_tab(key)
                tab = window.tab_widgets[key]
                refresh = getattr(tab, "refresh", None)
                if callable(refresh):
                    refresh()
                if key == "optimize":
                    tab.run_integrity_check(quick=True)
                window.refresh_health()
                settle(window)
                written.append(grab(window, out_dir / f"tab_{key}.png"))
            written += _every_size(window, out_dir, "")
            workers.stop()
            written += _damaged(window, database, out_dir)
            written += _starving(window, database, out_dir)
            written += _deleted(window, database, out_dir)
        finally:
            workers.stop()
            session.runner.shutdown()
            window.close()
            if collector is not None:
                collector.stop()
    return written


def _every_size(window: object, out_dir: Path, scene: str,
                keys: Sequence[str] | None = None) -> list[Path]:
    """Every tab (or ``keys``) at the smallest and the largest usual screen size."""
    from .main_window import TAB_SPECS

    written = []
    (out_dir / "sizes").mkdir(parents=True, exist_ok=True)
    for width, height in SCREEN_SIZES:
        window.resize(width, height)  # type: ignore[attr-defined]
        for key in keys or [spec[0] for spec in TAB_SPECS]:
            window.show_tab(key)  # type: ignore[attr-defined]
            settle(window, 0.3)
            name = f"{scene}{'_' if scene else ''}tab_{key}_{width}x{height}.png"
            written.append(grab(window, out_dir / "sizes" / name))
    window.resize(*WINDOW_SIZE)  # type: ignore[attr-defined]
    return written


def _damaged(window: object, database: Path, out_dir: Path) -> list[Path]:
    """A damaged copy of the queue opened: one message, the red badge, the findings listed."""
    import shutil
    import sqlite3

    damaged = database.parent.parent / "damaged" / "queue.db"
    damaged.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(database)
    try:
        target = sqlite3.connect(damaged)
        source.backup(target)
        target.close()
        page_size = source.execute("PRAGMA page_size").fetchone()[0]
        roots = [row[0] for row in source.execute(
            "SELECT rootpage FROM sqlite_master WHERE name IN "
            "('task_queue', 'ix_task_status_prio_time')")]
    finally:
        source.close()
    with open(damaged, "r+b") as handle:  # overwrite the task table's and an index's root
        for page in roots:
            handle.seek((page - 1) * page_size + 16)
            handle.write(b"\xa5" * (page_size - 32))
    session = window.session  # type: ignore[attr-defined]
    window.open_database(damaged)  # type: ignore[attr-defined]
    wait_until(lambda: session.db_path == damaged and session.damage is not None)
    optimize = window.tab_widgets["optimize"]  # type: ignore[attr-defined]
    wait_until(lambda: optimize.findings.count() > 0)
    written = []
    for key in ("optimize", "leases"):
        window.show_tab(key)  # type: ignore[attr-defined]
        settle(window)
        written.append(grab(window, out_dir / f"damaged_{key}.png"))
    written += _every_size(window, out_dir, "damaged", ("optimize",))
    window.open_database(database)  # type: ignore[attr-defined]
    wait_until(lambda: session.db_path == database)
    settle(window)
    shutil.rmtree(damaged.parent, ignore_errors=True)
    return written


def _starving(window: object, database: Path, out_dir: Path) -> list[Path]:
    """A report holding a read transaction while a writer goes on: the WAL cannot reset."""
    import sqlite3
    import subprocess

    script = database.parent / "nightly_report.py"
    script.write_text(_READER, encoding="utf-8")
    reader = subprocess.Popen([sys.executable, str(script), str(database)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
        sampler = window.sampler  # type: ignore[attr-defined]
        for _round in range(30):
            writer.execute("BEGIN IMMEDIATE")
            writer.executemany("INSERT INTO task_queue (type, payload) VALUES ('render', ?)",
                               [('{"blob": "' + "x" * 3500 + '"}',)] * 400)
            writer.execute("COMMIT")
            run_for(1.1)
            if sampler.starvation is not None and sampler.holders is not None:
                break
        window.show_tab("wal")  # type: ignore[attr-defined]
        settle(window)
        written = [grab(window, out_dir / "wal_starving.png")]
        written += _every_size(window, out_dir, "starving", ("wal", "stats"))
        return written
    finally:
        writer.close()
        assert reader.stdin is not None
        reader.stdin.close()
        reader.wait(30)
        if reader.stdout is not None:
            reader.stdout.close()


def _deleted(window: object, database: Path, out_dir: Path) -> list[Path]:
    """The database file deleted under the window: figures greyed with the time they were read."""
    for path in (database, wal_path(database), shm_path(database)):
        path.unlink(missing_ok=True)
    run_for(2.5)
    written = []
    for key in ("wal", "stats"):
        window.show_tab(key)  # type: ignore[attr-defined]
        settle(window)
        written.append(grab(window, out_dir / f"deleted_{key}.png"))
    return written + _every_size(window, out_dir, "deleted", ("wal", "stats"))


_READER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN")
connection.execute("SELECT count(*) FROM task_queue").fetchone()
print("reading", flush=True)
sys.stdin.read()
connection.execute("COMMIT")
"""


def run_for(seconds: float) -> None:
    """Keep the event loop (and so the sampler) running for ``seconds``."""
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end, timeout=seconds + 60)


def grab(window: object, path: Path) -> Path:
    """Save a picture of ``window`` as PNG at ``path`` and return the path."""
    pixmap = window.grab()  # type: ignore[attr-defined]
    if not pixmap.save(str(path), "PNG"):
        raise OSError(f"could not write {path}")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: render the screenshots to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m queue_admin_gui.ui.screenshots",
                                     description="Render the window's tabs to PNG files.")
    parser.add_argument("--out", type=Path, default=OUTPUT_DIR,
                        help=f"folder for the PNG files (default {OUTPUT_DIR})")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="how long the demo workers run first, so the plots have a "
                        "history (default 60)")
    parser.add_argument("--dark", action="store_true",
                        help="render with a dark desktop palette (Windows' dark mode)")
    parser.add_argument("--scale", type=float, default=None,
                        help="also render every tab at this display scale (1.5 for 150 %%) "
                        "into <out>/scaled-<percent>")
    arguments = parser.parse_args(argv)
    if arguments.scale:
        return _render_scaled(arguments.out, arguments.scale, arguments.seconds)
    for path in render(arguments.out, arguments.seconds, arguments.dark):
        print(path)
    return 0


def _render_scaled(out_dir: Path, scale: float, seconds: float) -> int:
    """Render in a process of its own with ``QT_SCALE_FACTOR`` set (it is read at start)."""
    import subprocess

    folder = out_dir / f"scaled-{round(scale * 100)}"
    env = {**os.environ, "QT_SCALE_FACTOR": f"{scale:g}"}
    return subprocess.call([sys.executable, "-m", "queue_admin_gui.ui.screenshots",
                            "--out", str(folder), "--seconds", f"{seconds:g}"], env=env)


if __name__ == "__main__":
    sys.exit(main())
