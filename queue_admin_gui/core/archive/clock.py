"""The instants the archive stamps on what it saw: always in order, whatever the wall clock does.

A workstation's clock is stepped now and then (NTP correcting a drift, a person setting it):
read as it is, a step backwards would stamp later commits before earlier ones, and a rebuild
to "the newest instant" would stop at the step. :class:`StampClock` keeps every stamp after
the one before it. It compares how far the wall clock moved with how far the monotonic clock
did; a difference of :data:`STEP_SECONDS` or more is a step, recorded for the archive's status.
Forward, the stamps follow the wall clock (no commit falls in the skipped stretch). Backward,
they go on from the last stamp at half the real rate until the wall clock has caught up (for
a 60 s step, two minutes), so stamps stay distinct, ordered, and never more than the step
away from the wall clock; after that they are the wall clock again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: A wall clock that moved this much more or less than the monotonic clock was stepped.
STEP_SECONDS = 1.0
#: After a backward step, stamps advance at this fraction of real time until the wall
#: clock catches up.
CATCH_UP_RATE = 0.5
#: The least two stamps differ by.
MIN_STAMP_STEP = 1e-6


@dataclass(frozen=True)
class ClockStep:
    """The wall clock moved by ``seconds`` (negative: backwards) around the stamp ``at``."""

    at: float
    seconds: float

    def to_dict(self) -> dict[str, float]:
        """JSON form."""
        return {"at": self.at, "seconds": round(self.seconds, 6)}


class StampClock:
    """Ordered stamps from a wall clock that may be stepped (thread-safe)."""

    def __init__(self, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.wall = wall
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._last: tuple[float, float, float] | None = None  # wall, monotonic, stamp
        self._floor = 0.0
        self._steps: list[ClockStep] = []

    def keep_after(self, stamp: float) -> None:
        """Never stamp at or before ``stamp`` (the newest instant already in the archive)."""
        with self._lock:
            self._floor = max(self._floor, stamp)

    def now(self) -> float:
        """A stamp after every earlier one: the wall clock, unless it went backwards."""
        wall, moment = self.wall(), self.monotonic()
        with self._lock:
            if self._last is None:
                stamp = max(wall, self._floor + MIN_STAMP_STEP)
                if self._floor and wall < self._floor - STEP_SECONDS:
                    self._steps.append(ClockStep(self._floor, wall - self._floor))
            else:
                last_wall, last_moment, last_stamp = self._last
                elapsed = max(0.0, moment - last_moment)
                drift = (wall - last_wall) - elapsed
                if abs(drift) >= STEP_SECONDS:
                    self._steps.append(ClockStep(last_stamp, drift))
                stamp = max(wall, last_stamp + max(elapsed * CATCH_UP_RATE, MIN_STAMP_STEP))
            self._last = (wall, moment, stamp)
            return stamp

    def take_steps(self) -> list[ClockStep]:
        """The steps seen since the last call (each is reported once)."""
        with self._lock:
            steps, self._steps = self._steps, []
        return steps
