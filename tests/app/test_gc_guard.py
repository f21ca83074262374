from __future__ import annotations

import gc

from queue_admin_gui.app.gc_guard import MainThreadGarbageCollector


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_collection_runs_from_the_gui_thread_only(qapp, qtbot) -> None:
    collector = MainThreadGarbageCollector(interval_ms=10)
    try:
        assert not gc.isenabled()
        for _ in range(collector.thresholds[0] + 50):
            _Cycle()
        assert gc.get_count()[0] > collector.thresholds[0]
        before = collector.collections
        qtbot.waitUntil(lambda: collector.collections > before, timeout=5_000)
        assert gc.get_count()[0] < collector.thresholds[0]
    finally:
        collector.stop()
        gc.disable()  # the session's own collector keeps automatic collection off


def test_stop_gives_collection_back_to_python(qapp) -> None:
    collector = MainThreadGarbageCollector()
    collector.stop()
    assert gc.isenabled()
    gc.disable()
