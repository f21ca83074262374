"""Render the point-in-time pieces at 1024x700: the archive panel and the wizard's picker.

``python -m queue_admin_gui.ui.screenshots_archive [--out docs/images]`` builds a demo queue in a
temporary folder, opens the window offscreen, turns "Archive the WAL continuously" on while
simulated workers run, stops and restarts it once (so the archive shows a gap), and saves the
Backups tab and the restore wizard's first page. Nothing outside the temporary folder is
touched except the output folder.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .screenshots import OUTPUT_DIR, grab, run_for, settle, wait_until

SIZE = (1024, 700)


def render_archive(out_dir: Path, seconds: float = 4.0) -> list[Path]:
    """Render the Backups tab with the archive on, and the wizard's point-in-time choice."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from ..app.gc_guard import MainThreadGarbageCollector
    from ..app.jobs import JobRunner
    from ..app.messages import Messages, RecordingPresenter
    from ..app.session import Session
    from ..core.activity import ActivityLog
    from ..core.backups.backup_store import BackupStore
    from ..core.demo.queue_file import create_demo_queue
    from ..core.demo.workers import DemoWorkers
    from ..core.settings.config import MaintenanceConfig
    from .main_window import MainWindow
    from .restore_wizard import RestoreWizard

    application = QApplication.instance() or QApplication([sys.argv[0]])
    collector = MainThreadGarbageCollector(parent=application) if gc.isenabled() else None
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="queue-admin-archive-shots-") as folder:
        root = Path(folder)
        database = root / "PrismQ" / "queue" / "queue.db"
        create_demo_queue(database, tasks=2000, seed=42)
        session = Session(JobRunner(), Messages(RecordingPresenter()),
                          MaintenanceConfig(backup_dir=root / "backups"))
        settings = QSettings(str(root / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(session, settings, ActivityLog(root / "activity.jsonl"))
        window.resize(*SIZE)
        window.show()
        workers = DemoWorkers(database, workers=4, seed=42)
        workers.start()
        try:
            window.open_database(database)
            wait_until(lambda: session.db_path == database)
            window.show_tab("backups")
            settle(window)
            panel = window.backups_tab.archive_panel
            for _turn in range(2):
                panel.toggle.setChecked(True)
                wait_until(lambda: panel.archiving and not panel.switching)
                status = panel.controller.status  # type: ignore[union-attr]
                wait_until(lambda s=status: s().generation is not None  # type: ignore[misc]
                            and not s().snapshot_pending)
                run_for(seconds / 4)
                if _turn == 1:  # a backup, so the timeline shows one
                    BackupStore(database, session.backup_dir).backup()
                run_for(seconds / 4)
                if _turn == 0:
                    panel.toggle.setChecked(False)
                    wait_until(lambda: not panel.archiving and not panel.switching)
                    run_for(1.5)
            panel.refresh()
            settle(window, 1.2)
            written.append(grab(window, out_dir / "archive_panel_1024x700.png"))
            wizard = RestoreWizard(session, None, window)
            wizard.resize(*SIZE)
            wizard.show()
            picker = wizard.choose_page.point_picker
            wait_until(lambda: picker.status is not None and not wizard.busy)
            if picker.status is not None and picker.status.gaps:
                gap = picker.status.gaps[0]
                picker.set_instant(gap.after - 0.5)
            settle(window, 0.5)
            written.append(grab(wizard, out_dir / "restore_point_in_time_1024x700.png"))
            wizard.close()
        finally:
            workers.stop()
            job = window.backups_tab.archive_panel.stop_archiving()
            if job is not None:
                wait_until(lambda: job.is_finished)
            session.runner.shutdown()
            window.close()
            if collector is not None:
                collector.stop()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: render the two images to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m queue_admin_gui.ui.screenshots_archive",
                                     description="Render the archive panel and the wizard's "
                                                 "point-in-time page to PNG files.")
    parser.add_argument("--out", type=Path, default=OUTPUT_DIR,
                        help=f"folder for the PNG files (default {OUTPUT_DIR})")
    arguments = parser.parse_args(argv)
    for path in render_archive(arguments.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
