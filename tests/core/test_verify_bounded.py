"""Checking an untrusted file stays bounded: cancel and Ctrl+C stop it at once, and a check
that runs far longer than the file's size explains is stopped with a sentence saying so.

The file (see ``crafted_files``) is a few dozen KB whose unbounded check runs for about a
minute on the reference machine, and whose progress handler fires only every ~20 s.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from crafted_files import stalling_file

from queue_admin_gui.core.backups.verify import STAGE_INTEGRITY, check_backup_file
from queue_admin_gui.core.errors import ErrorKind, OperationCancelled
from queue_admin_gui.core.trust import untrusted

#: Seconds a stop may take to be honoured: "within a second", with room for a busy machine
#: and still far below the ~20 s the progress handler alone would need on this file.
STOP_ALLOWANCE_SECONDS = 5.0


@pytest.fixture
def stalling(tmp_path: Path) -> Path:
    return stalling_file(tmp_path / "queue_backup_crafted_20200101_000000.db")


def no_check_thread_left() -> bool:
    return not [thread for thread in threading.enumerate()
                if thread.name == "queue-admin-check"]


class StopAfter:
    """A ``cancelled`` callback that turns true (or raises) a moment after the check began."""

    def __init__(self, seconds: float, raising: type[BaseException] | None = None) -> None:
        self.seconds = seconds
        self.raising = raising
        self.began: float | None = None
        self.asked: float | None = None

    def progress(self, done: int, total: int, stage: str) -> None:
        if stage == STAGE_INTEGRITY and self.began is None:
            self.began = time.monotonic()

    def __call__(self) -> bool:
        if self.began is None or time.monotonic() - self.began < self.seconds:
            return False
        if self.asked is None:
            self.asked = time.monotonic()
        if self.raising is not None:
            raise self.raising
        return True


@pytest.mark.slow
def test_a_check_far_longer_than_the_size_explains_is_stopped(
        stalling: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(untrusted, "CHECK_FLOOR_SECONDS", 1.0)
    assert untrusted.check_budget_seconds(stalling.stat().st_size) < 2.0
    report = check_backup_file(stalling)
    assert not report.ok and report.kind is ErrorKind.INVALID
    assert any("far longer than a file of" in problem and "crafted to stall" in problem
               for problem in report.problems), report.problems
    assert no_check_thread_left()


def test_the_budget_grows_with_the_size_and_has_a_floor() -> None:
    assert untrusted.check_budget_seconds(0) == untrusted.CHECK_FLOOR_SECONDS
    big = untrusted.check_budget_seconds(1_500_000_000)
    assert big >= untrusted.CHECK_FLOOR_SECONDS + 1500  # at least 1 s per MB
    assert untrusted.check_budget_seconds(10_000_000) < big


def test_cancel_stops_the_check_within_a_moment(stalling: Path) -> None:
    stop = StopAfter(0.3)
    with pytest.raises(OperationCancelled):
        check_backup_file(stalling, progress=stop.progress, cancelled=stop)
    assert stop.asked is not None
    assert time.monotonic() - stop.asked < STOP_ALLOWANCE_SECONDS
    assert no_check_thread_left()


def test_ctrl_c_in_the_main_thread_stops_the_check_within_a_moment(stalling: Path) -> None:
    stop = StopAfter(0.3, raising=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        check_backup_file(stalling, progress=stop.progress, cancelled=stop)
    assert stop.asked is not None
    assert time.monotonic() - stop.asked < STOP_ALLOWANCE_SECONDS
    assert no_check_thread_left()
