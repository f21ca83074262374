"""The real window left sampling: no object or thread may pile up per sample."""

from __future__ import annotations

import dataclasses
import gc

import pytest
from PySide6.QtCore import QAbstractAnimation, QCoreApplication, QEvent, QObject, QThread

from queue_admin_gui.app.jobs import live_job_count, running_job_threads


def settle() -> None:
    """Run deferred deletions and a full collection, as the window's event loop would."""
    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        QCoreApplication.processEvents()
    gc.collect()


def _lasting(objects: list) -> list:
    return [item for item in objects if not isinstance(item, QAbstractAnimation)]


def live_objects(window) -> dict[str, int]:
    """QObjects (Python wrappers and the window's and session's C++ children) and threads.

    The style's animations (a busy progress bar's, a scroll bar's fade) come and go with
    what is on screen at that instant, so they are left out of the counts.
    """
    # findChildren makes a wrapper for every child: list them before counting the wrappers
    session_children = len(_lasting(window.session.findChildren(QObject)))
    window_children = len(_lasting(window.findChildren(QObject)))
    wrappers = _lasting([item for item in gc.get_objects() if isinstance(item, QObject)])
    return {
        "wrappers": len(wrappers),
        "threads": sum(isinstance(item, QThread) for item in wrappers),
        "running threads": len(running_job_threads()),
        "jobs": live_job_count(),
        "session children": session_children,
        "window children": window_children,
    }


@pytest.mark.slow
def test_hundreds_of_samples_leave_no_objects_behind(qtbot, window, demo_db, open_db):
    session = window.session
    session.set_config(dataclasses.replace(session.config, sample_interval_seconds=0.005))
    open_db(demo_db)
    sampler = window.sampler
    window.show_tab("wal")
    qtbot.waitUntil(lambda: sampler.samples_taken >= 50 and window.health is not None,
                    timeout=60_000)
    window.health_timer.stop()
    qtbot.waitUntil(lambda: not session.runner.busy, timeout=60_000)
    settle()
    before = live_objects(window)

    start = sampler.samples_taken
    qtbot.waitUntil(lambda: sampler.samples_taken >= start + 400, timeout=120_000)
    qtbot.waitUntil(lambda: not session.runner.busy, timeout=60_000)
    settle()
    after = live_objects(window)
    assert running_job_threads() == [sampler._thread], "one worker thread samples"
    growth = {key: after[key] - before[key] for key in before}

    # a job or two of a tab's refresh may be in its last event-loop turn; 400 samples may not
    # leave 400 of anything
    assert all(value <= 3 for value in growth.values()), str(sorted(growth.items()))
