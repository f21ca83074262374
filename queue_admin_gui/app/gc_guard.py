"""Python's cyclic garbage collector, run only in the GUI thread.

Automatic collection starts in whichever thread happens to allocate when a threshold is
crossed, often a job's worker thread. If that collection frees a widget, its destructor
runs in the worker while the GUI thread may be destroying widgets too, and PySide
deadlocks: the worker waits for the GIL inside a Qt destructor, the GUI thread waits for a
Qt mutex the worker holds (seen with PySide6 6.11). The window freezes for good.
:class:`MainThreadGarbageCollector` turns automatic collection off and runs the same
generational collections from a timer in the GUI thread instead.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

#: How often the GUI thread looks at the allocation counts.
CHECK_INTERVAL_MS = 500


class MainThreadGarbageCollector(QObject):
    """Collects garbage from the GUI thread on a timer; automatic collection stays off."""

    def __init__(self, interval_ms: int = CHECK_INTERVAL_MS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.collections = 0
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    def check(self) -> int | None:
        """Collect the oldest generation whose count passed its threshold, as gc would."""
        counts = gc.get_count()
        if counts[0] <= self.thresholds[0]:
            return None
        generation = 0
        if counts[1] > self.thresholds[1]:
            generation = 1
            if counts[2] > self.thresholds[2]:
                generation = 2
        gc.collect(generation)
        self.collections += 1
        return generation

    def stop(self) -> None:
        """Stop the timer and give collection back to Python."""
        self._timer.stop()
        gc.enable()
