"""Instants from a clock that can be stepped: stamps stay ordered, no instant is lost, the step
is reported (an injected wall clock, stepped 60 s back and then forward)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from queue_admin_gui.cli import main as cli_main
from queue_admin_gui.core.archive import Archiver, archive_status, rebuild_to_time
from queue_admin_gui.core.archive.clock import CATCH_UP_RATE, StampClock
from queue_admin_gui.core.archive.store import TRANSACTION_KINDS, iter_records, list_generations
from queue_admin_gui.core.database import QueueDatabase


class SteppedClock:
    """A wall clock and a monotonic clock under the test's hand."""

    def __init__(self) -> None:
        self.wall_at = 1_700_000_000.0
        self.monotonic_at = 500.0

    def advance(self, seconds: float) -> None:
        self.wall_at += seconds
        self.monotonic_at += seconds

    def step(self, seconds: float) -> None:
        self.wall_at += seconds


def test_stamps_stay_ordered_across_steps_and_each_step_is_reported_once() -> None:
    hand = SteppedClock()
    clock = StampClock(lambda: hand.wall_at, lambda: hand.monotonic_at)
    stamps = [clock.now()]
    for _ in range(10):
        hand.advance(0.1)
        stamps.append(clock.now())
    assert stamps[-1] == pytest.approx(hand.wall_at)  # untouched, stamps are the wall clock
    hand.step(-60)
    for _ in range(50):
        hand.advance(0.1)
        stamps.append(clock.now())
    steps = clock.take_steps()
    assert len(steps) == 1 and steps[0].seconds == pytest.approx(-60)
    assert clock.take_steps() == []
    # Behind the last stamp, they advance at the catch-up rate: distinct and ordered.
    assert stamps[-1] - stamps[-2] == pytest.approx(0.1 * CATCH_UP_RATE)
    hand.advance(200)  # the wall clock has caught up: stamps are the wall clock again
    assert clock.now() == pytest.approx(hand.wall_at)
    hand.step(60)
    hand.advance(0.1)
    stamps.append(clock.now())
    assert stamps[-1] == pytest.approx(hand.wall_at)
    assert [step.seconds for step in clock.take_steps()] == [pytest.approx(60)]
    assert all(later > earlier for earlier, later in zip(stamps, stamps[1:], strict=False))


def test_stamps_go_on_after_the_archives_newest_instant() -> None:
    hand = SteppedClock()
    clock = StampClock(lambda: hand.wall_at, lambda: hand.monotonic_at)
    clock.keep_after(hand.wall_at + 60)  # the archive holds instants a minute ahead
    first = clock.now()
    assert first > hand.wall_at + 60
    assert [step.seconds for step in clock.take_steps()] == [pytest.approx(-60)]


def commit(db: Path, count: int, marker: str) -> None:
    connection = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        for number in range(count):
            connection.execute("INSERT INTO task_queue (type, payload) VALUES (?, ?)",
                               (marker, json.dumps({"n": number})))
    finally:
        connection.close()


def wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_60_second_step_back_and_forward_loses_no_instant(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "queue.db"
    with QueueDatabase(db) as database:
        database.initialize_schema()
    folder = tmp_path / "archive"
    offset = [0.0]
    archiver = Archiver(db, folder, poll_seconds=0.02, clock=lambda: time.time() + offset[0])
    archiver.start()
    try:
        wait_for(lambda: archiver.status().generation is not None
                 and not archiver.status().snapshot_pending)
        commit(db, 10, "before")
        wait_for(lambda: archiver.status().transactions >= 10)
        offset[0] = -60.0  # NTP steps the clock back a minute
        commit(db, 10, "behind")
        wait_for(lambda: archiver.status().transactions >= 20)
        offset[0] = 0.0  # and forward again
        commit(db, 10, "after")
        wait_for(lambda: archiver.status().transactions >= 30)
        wait_for(lambda: archiver.status().clock_steps >= 2)
    finally:
        archiver.stop()
    assert archiver.status().last_gap is None

    status = archive_status(folder)
    assert len(status.generations) == 1 and not status.gaps
    steps = status.generations[0].clock_steps
    assert [round(step["seconds"]) for step in steps] == [-60, 60]
    generation = list_generations(folder)[0]
    stamps = [stamp for segment in generation.segments
              for kind, stamp, _ in iter_records(segment) if kind in TRANSACTION_KINDS]
    assert len(stamps) == 30
    # Transactions found in one look share its stamp; stamps never go back, step or not.
    assert all(later >= earlier for earlier, later in zip(stamps, stamps[1:], strict=False))
    assert stamps[9] < stamps[10] and stamps[19] < stamps[20]
    assert status.latest is not None and status.latest >= stamps[-1]
    # Every archived transaction can be reached at the stamp it was archived with.
    for number in (0, 9, 10, 15, 19, 20, 29):
        rebuilt = rebuild_to_time(folder, stamps[number], tmp_path / f"at-{number}.db")
        assert rebuilt.check.ok
        assert rebuilt.transactions_applied == sum(stamp <= stamps[number] for stamp in stamps)
    latest = rebuild_to_time(folder, status.latest, tmp_path / "latest.db")
    connection = sqlite3.connect(latest.path)
    kinds = dict(connection.execute("SELECT type, count(*) FROM task_queue GROUP BY type"))
    connection.close()
    assert kinds == {"before": 10, "behind": 10, "after": 10}

    # archive-status says when the steps were seen.
    assert cli_main(["archive-status", "--dir", str(folder), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [round(step["seconds"]) for step in shown["clock_steps"]] == [-60, 60]
