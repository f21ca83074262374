"""Shared fixtures: every test's databases, config and logs live under tmp_path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from queue_admin_gui.core.database import QueueDatabase

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
#: Processes the tests start (``python -m queue_admin_gui.cli`` from a temporary folder) run
#: the code under test, not whichever copy of the package is installed.
SOURCE_ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(SOURCE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point platform data, config and log folders and the queue path at tmp_path."""
    home = tmp_path / "home"
    for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(variable, str(home / variable.lower()))
    monkeypatch.setenv("PRISMQ_QUEUE_DB_PATH", str(tmp_path / "default" / "queue.db"))
    for variable in list(os.environ):
        if variable.startswith("QUEUE_ADMIN_"):
            monkeypatch.delenv(variable)
    return home


#: What a lock-refusal test waits for another program's lock, instead of the 5 s the tool
#: waits in use: long enough for a real busy wait, short enough for a fast run.
SHORT_LOCK_WAIT_MS = 300


@pytest.fixture
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> int:
    """Cap every connection's busy timeout, here and in CLI processes started from here."""
    from queue_admin_gui.core.database import ENV_LOCK_WAIT_CAP_MS

    monkeypatch.setenv(ENV_LOCK_WAIT_CAP_MS, str(SHORT_LOCK_WAIT_MS))
    return SHORT_LOCK_WAIT_MS


SHORT_COMMIT_WATCH_SECONDS = 0.1


@pytest.fixture
def short_commit_watch(monkeypatch: pytest.MonkeyPatch) -> float:
    """Cap the restore gate's watch for commits, here and in CLI processes started from here.

    For tests that restore a queue no worker writes to: the gate still watches, for a moment
    instead of a second. A test about telling workers at work keeps the full watch.
    """
    from queue_admin_gui.core.restore.gate import ENV_COMMIT_SAMPLE_CAP

    monkeypatch.setenv(ENV_COMMIT_SAMPLE_CAP, str(SHORT_COMMIT_WATCH_SECONDS))
    return SHORT_COMMIT_WATCH_SECONDS


@pytest.fixture(autouse=True)
def no_system_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep test runs out of this machine's Event Log or syslog (tests inject a recorder)."""
    from queue_admin_gui.core import event_log

    monkeypatch.setattr(event_log, "default_writer", lambda: None)


@pytest.fixture(scope="session", autouse=True)
def garbage_collected_in_gui_thread():
    """Collect garbage only in the main thread, as the application does (see gc_guard)."""
    from PySide6.QtWidgets import QApplication

    from queue_admin_gui.app.gc_guard import MainThreadGarbageCollector

    application = QApplication.instance() or QApplication([])
    collector = MainThreadGarbageCollector(parent=application)
    yield collector
    collector.stop()


@pytest.fixture(autouse=True)
def no_leftover_job_threads(request: pytest.FixtureRequest, garbage_collected_in_gui_thread):
    """Fail a test that leaves a job's worker thread running (it would outlive its widgets)."""
    yield
    garbage_collected_in_gui_thread.check()
    jobs = sys.modules.get("queue_admin_gui.app.jobs")
    if jobs is None:
        return
    leftover = jobs.running_job_threads()
    for thread in leftover:
        thread.wait(30_000)
    assert not leftover, f"{len(leftover)} job thread(s) still running after the test"


@pytest.fixture
def queue_db(tmp_path: Path) -> Path:
    """A fresh, empty queue database file with the real schema; returns its path."""
    path = tmp_path / "queue dir" / "queue.db"
    with QueueDatabase(path) as db:
        db.initialize_schema()
    return path


#: Where every fake clock starts: a fixed wall-clock moment (2023-11-14 22:13:20 UTC).
CLOCK_START = 1_700_000_000.0


class FakeClock:
    """Wall-clock time that moves only when a test says so (for the sampler and plots)."""

    def __init__(self, start: float = CLOCK_START) -> None:
        self.start = start
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fake wall clock starting at :data:`CLOCK_START`."""
    return FakeClock()

