"""Shared GUI fixtures: a session that records messages, a demo queue, a window."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from queue_admin_gui.app.jobs import JobRunner
from queue_admin_gui.app.messages import Messages, RecordingPresenter
from queue_admin_gui.app.session import Session
from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.core.settings.config import MaintenanceConfig

#: The offscreen platform plugin warns about a feature it lacks whenever a top-level window
#: is shown; that says nothing about our code, every other Qt warning still fails a test.
OFFSCREEN_NOISE = r"This plugin does not support propagateSizeHints\(\)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ui/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


@pytest.fixture
def presenter() -> RecordingPresenter:
    """Records what the user was told and answers every question with Yes."""
    return RecordingPresenter(answer=True)


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups here"


@pytest.fixture
def session(qtbot, presenter: RecordingPresenter, backup_dir: Path):
    """A session with recorded messages and a config whose folders are in tmp_path."""
    runner = JobRunner()
    session = Session(runner, Messages(presenter), MaintenanceConfig(backup_dir=backup_dir))
    yield session
    assert runner.shutdown(30_000)


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """Window settings in an ini file under tmp_path (never the user's real settings)."""
    return QSettings(str(tmp_path / "settings" / "queue-admin.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def activity_log(tmp_path: Path) -> ActivityLog:
    return ActivityLog(tmp_path / "logs" / "activity.jsonl")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo queue made once per test run; tests copy it rather than rebuild it."""
    path = tmp_path_factory.mktemp("demo-template") / "queue.db"
    create_demo_queue(path, tasks=400, seed=7)
    return path


@pytest.fixture
def demo_db(tmp_path: Path, demo_template: Path) -> Path:
    """A private copy of the demo queue (with mixed task states) in tmp_path."""
    import shutil

    target = tmp_path / "demo queue" / "queue.db"
    target.parent.mkdir(parents=True)
    shutil.copyfile(demo_template, target)
    return target


@pytest.fixture
def window(qtbot, session: Session, settings: QSettings, activity_log: ActivityLog):
    """The main window with no database open yet."""
    from queue_admin_gui.ui.main_window import MainWindow

    window = MainWindow(session, settings, activity_log)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.health_timer.stop()
    window.sampler.stop()
    session.runner.shutdown(30_000)
    window.stop_demo_workers()


@pytest.fixture
def open_db(qtbot, window):
    """Open a file in the window and wait for the opening job to end; returns the job."""

    def open_path(path: Path):
        job = window.open_database(path)
        assert job is not None
        finished = []
        job.finished.connect(lambda: finished.append(True))
        qtbot.waitUntil(lambda: bool(finished), timeout=30_000)
        return job

    return open_path
