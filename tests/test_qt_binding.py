"""Guards against a broken Qt binding being installed with the tool.

PySide6 6.12.0 drops one reference to ``True`` on every ``Signal.emit()`` made from Python
(and one to ``None`` on every Python ``QThread.run()`` override);
on Python 3.11 (where ``True`` is not immortal) the interpreter then aborts with
"bool_dealloc" after enough progress signals. pyproject.toml excludes that release; this
test fails if such a binding is installed anyway.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QThread, Signal


class _Emitter(QObject):
    progressed = Signal(object, object, str)


def test_signal_emit_keeps_reference_counts(qapp) -> None:
    emitter = _Emitter()
    received = []
    emitter.progressed.connect(lambda done, total, stage: received.append(done))
    before = sys.getrefcount(True)
    for step in range(200):
        emitter.progressed.emit(step, 200, "Copying pages")
    assert len(received) == 200
    assert abs(sys.getrefcount(True) - before) < 10


class _Idle(QThread):
    def run(self) -> None:
        return None


def test_thread_run_keeps_reference_counts(qapp) -> None:
    before = sys.getrefcount(None)
    for _ in range(50):
        thread = _Idle()
        thread.start()
        assert thread.wait(10_000)
    assert abs(sys.getrefcount(None) - before) < 10
