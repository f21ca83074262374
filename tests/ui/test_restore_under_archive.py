"""A point-in-time restore through the real wizard while `queue-admin-cli archive` runs as its
own process: the archive must still rebuild every instant exactly, before the restore, between,
and after it (or show the instant in a reported gap).

The window's own TRUNCATE checkpoints run beside the restore, in the restore's process: the
lock table then shows one process holding both the write lock (the restore's transaction)
and the checkpoint lock, which looks like a checkpoint holding the writers back. Taken for
that, the archiver let go of the log, the restore committed, the checkpoint reset the log
before the restore was copied, and the archive went on as if nothing had happened: the
pre-restore state, then "database disk image is malformed".
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QWizard

from queue_admin_gui.app.jobs import JobRunner
from queue_admin_gui.app.messages import Messages, RecordingPresenter
from queue_admin_gui.app.monitor import Sampler
from queue_admin_gui.app.session import Session
from queue_admin_gui.core import QueueMaintenance
from queue_admin_gui.core.archive import ArchiveError, archive_status, rebuild_to_time
from queue_admin_gui.core.archive.controller import default_archive_dir
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.ui.restore_wizard import (
    PAGE_CHECK,
    PAGE_DONE,
    PAGE_PREPARE,
    PAGE_RESTORE,
    RestoreWizard,
)

pytestmark = pytest.mark.slow
TIMEOUT_MS = 60_000
LEFT = Qt.MouseButton.LeftButton
REPO_ROOT = Path(__file__).resolve().parents[2]


def table_rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of the queue's tables: two files with equal rows hold one state."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {table: connection.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
                for table in ("task_queue", "task_logs")}
    finally:
        connection.close()


def commit_batch(path: Path, kind: str, count: int) -> None:
    """``count`` transactions of one task and its log row each, as a worker commits them."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        for number in range(count):
            connection.execute("BEGIN IMMEDIATE")
            cursor = connection.execute(
                "INSERT INTO task_queue (type, payload) VALUES (?, ?)",
                (kind, '{"pad": "' + "p" * 800 + f'", "n": {number}}}'))
            connection.execute("INSERT INTO task_logs (task_id, level, message) "
                               "VALUES (?, 'INFO', 'done')", (cursor.lastrowid,))
            connection.execute("COMMIT")
    finally:
        connection.close()


def cli(*args: object) -> list[str]:
    """The command line as a user runs it (this checkout's package)."""
    return [sys.executable, "-m", "queue_admin_gui.cli", *map(str, args)]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                      env.get("PYTHONPATH", "")]))
    return env


@pytest.fixture
def queue(queue_db: Path) -> Path:
    """A queue of about 25 MB: a restore then writes for a while, holding the write lock."""
    connection = sqlite3.connect(queue_db, isolation_level=None)
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO task_queue (type, payload) VALUES ('seed', ?)",
                           [('{"pad": "' + "s" * 1000 + f'", "n": {n}}}',)
                            for n in range(20_000)])
    connection.execute("COMMIT")
    connection.close()
    return queue_db


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    return tmp_path / "backup folder"


@pytest.fixture
def cli_archiver(queue: Path, backups: Path) -> Iterator[subprocess.Popen[str]]:
    """`queue-admin-cli archive` in its own process, into the folder the wizard reads."""
    folder = default_archive_dir(backups)
    process = subprocess.Popen(cli("--db", queue, "archive", "--dir", folder),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=child_env(), text=True)
    deadline = time.monotonic() + 60
    while not any(g.restorable_from for g in archive_status(folder).generations):
        assert process.poll() is None, "the archiver process stopped"
        assert time.monotonic() < deadline, "the archive never became restorable"
        time.sleep(0.05)
    yield process
    if process.poll() is None:
        process.terminate()  # SIGTERM: it stops cleanly
    process.wait(60)


@pytest.fixture
def session(queue: Path, backups: Path) -> Iterator[Session]:
    runner = JobRunner()
    config = MaintenanceConfig(backup_dir=backups, sample_interval_seconds=0.1)
    yield Session(runner, Messages(RecordingPresenter()), config, queue)
    assert runner.shutdown(TIMEOUT_MS)


def settled_instant(folder: Path) -> float:
    """Writers are quiet: an instant after the archiver saw every commit so far, and before
    anything else is committed. The archiver looks at the log every 0.15 s and stamps the
    commits it finds with that look; a heartbeat past the instant shows it is covered."""
    instant = time.time() + 1.0
    deadline = time.monotonic() + 60
    while (archive_status(folder).latest or 0) <= instant + 0.01:
        assert time.monotonic() < deadline, "the archive stopped following the queue"
        time.sleep(0.05)
    return instant


def wizard_for(qtbot, session: Session) -> RestoreWizard:
    """The restore wizard, open, with the archive read."""
    wizard = RestoreWizard(session)
    qtbot.addWidget(wizard)
    wizard.resize(1024, 700)
    wizard.show()
    picker = wizard.choose_page.point_picker
    qtbot.waitUntil(lambda: picker.status is not None and not wizard.busy, timeout=TIMEOUT_MS)
    return wizard


def restore_the_first_instant(qtbot, wizard: RestoreWizard, queue: Path, instant: float,
                              tmp_path: Path) -> None:
    """Rebuild ``instant`` in the wizard and restore it, with checkpoints all around.

    The window's TRUNCATE checkpoints run in this process meanwhile, with a reader of this
    process that keeps pinning the WAL for a moment; the command line's TRUNCATE checkpoints
    and another program's TRUNCATE, RESTART or FULL checkpoints every 5-50 ms run outside.
    """
    picker = wizard.choose_page.point_picker
    picker.set_instant(instant)
    qtbot.mouseClick(picker.rebuild_button, LEFT)
    qtbot.waitUntil(lambda: wizard.currentId() == PAGE_CHECK, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: wizard.check_page.isComplete(), timeout=TIMEOUT_MS)
    stop = threading.Event()

    def window_checkpoints() -> None:
        while not stop.is_set():
            QueueMaintenance(queue).checkpoint("TRUNCATE")
            stop.wait(0.01)

    def reader_pinning_the_wal() -> None:
        connection = sqlite3.connect(queue, isolation_level=None, timeout=10)
        while not stop.is_set():
            connection.execute("BEGIN")
            connection.execute("SELECT count(*) FROM task_queue").fetchone()
            stop.wait(0.2)
            connection.execute("COMMIT")
            stop.wait(0.03)
        connection.close()

    def cli_checkpoints() -> None:
        while not stop.is_set():
            subprocess.run(cli("--db", queue, "checkpoint", "--mode", "truncate"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=child_env(), timeout=60, check=False)

    threads = [threading.Thread(target=target, daemon=True)
               for target in (window_checkpoints, reader_pinning_the_wal, cli_checkpoints)]
    for thread in threads:
        thread.start()
    storm_stop = tmp_path / "storm-stop"
    storm = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests" / "integration" / "archive_workload.py"),
         "storm", str(queue), str(storm_stop), "7"], stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env=child_env())
    assert storm.stdout is not None and storm.stdout.readline().strip() == "ready"
    try:
        for page in (PAGE_PREPARE, PAGE_RESTORE):
            button = wizard.button(QWizard.WizardButton.NextButton)
            if page == PAGE_RESTORE:
                # the storm, the pinning reader and the checkpointing programs are programs
                # at work on the file: the admin confirms the restore may go beside them
                prepare = wizard.prepare_page
                qtbot.waitUntil(lambda: wizard.state.preflight is not None, timeout=TIMEOUT_MS)
                if prepare.workers_check.isVisible() and not prepare.workers_check.isChecked():
                    qtbot.mouseClick(prepare.workers_check, LEFT,
                                     pos=QPoint(8, prepare.workers_check.height() // 2))
            qtbot.waitUntil(lambda b=button: b.isVisible() and b.isEnabled(),
                            timeout=TIMEOUT_MS)
            qtbot.mouseClick(button, LEFT)
            qtbot.waitUntil(lambda p=page: wizard.currentId() == p, timeout=TIMEOUT_MS)
        qtbot.waitUntil(lambda: wizard.currentId() == PAGE_DONE and not wizard.busy,
                        timeout=TIMEOUT_MS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        storm_stop.touch()
        storm.communicate(timeout=60)


def test_a_point_in_time_restore_from_the_wizard_keeps_the_cli_archive_exact(
        qtbot, session: Session, queue: Path, backups: Path, tmp_path: Path,
        cli_archiver: subprocess.Popen[str]) -> None:
    folder = default_archive_dir(backups)
    states: list[tuple[str, float, dict[str, list[tuple]]]] = []
    commit_batch(queue, "first", 40)
    first_at = settled_instant(folder)
    states.append(("before the restore", first_at, table_rows(queue)))
    time.sleep(0.3)  # the two states below lie at instants apart on the clock, not a wait
    commit_batch(queue, "second", 40)
    states.append(("between", settled_instant(folder), table_rows(queue)))

    sampler = Sampler(session)  # the window's live monitor, sampling every 0.1 s
    sampler.start()
    try:
        restore_the_first_instant(qtbot, wizard_for(qtbot, session), queue, first_at, tmp_path)
    finally:
        sampler.stop()
    assert table_rows(queue) == states[0][2], "the wizard did not restore the chosen instant"
    states.append(("just after the restore", settled_instant(folder), table_rows(queue)))
    commit_batch(queue, "third", 40)
    QueueMaintenance(queue).checkpoint("TRUNCATE")
    commit_batch(queue, "fourth", 20)
    states.append(("after more writes", settled_instant(folder), table_rows(queue)))
    cli_archiver.terminate()
    assert cli_archiver.wait(60) == 0

    status = archive_status(folder)
    rebuilt_after_restore = 0
    for number, (label, instant, expected) in enumerate(states):
        target = tmp_path / f"at-{number}.db"
        try:
            rebuilt = rebuild_to_time(folder, instant, target, live_path=queue)
        except ArchiveError as error:
            assert "falls in a gap" in str(error), f"{label}: {error}"
            assert any(gap.after < instant < gap.before and gap.reason for gap in status.gaps)
            continue
        assert rebuilt.check.ok
        assert table_rows(target) == expected, f"the archive is wrong {label}"
        rebuilt_after_restore += number >= 2
    assert rebuilt_after_restore >= 1, "nothing after the restore could be rebuilt"
