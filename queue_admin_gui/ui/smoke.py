"""``queue-admin --smoke-test``: start, open a queue, load every tab, report and quit.

A built program has to prove that it starts without a person watching it (the bundle's test
and the Windows workflow run it with ``QT_QPA_PLATFORM=offscreen``). The smoke run opens the
queue given with ``--db``, else the demo queue with its simulated workers, brings each tab to
the front in turn and waits until it has read the database, then writes one line per tab
title and ``smoke test passed``, closes the window the normal way (cancel, wait for the
worker threads, stop the workers) and exits 0. Any error the window would have shown in a
box, or a tab still loading after :data:`TIMEOUT_SECONDS`, is written out instead and the
exit code is 1. Questions are answered No, so nothing destructive can run. The report goes
to stdout, or to a file named after ``--smoke-test`` (a windowed program on Windows has no
stdout). Window settings go to a temporary folder, so a smoke run changes nothing the user
would see at the next start.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from PySide6.QtCore import QObject, QSettings, QTemporaryDir, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from ..app.messages import Confirmation, Level, Message, Presenter
from .main_window import MainWindow

#: How long the whole run may take before it counts as hung.
TIMEOUT_SECONDS = 120.0
POLL_MS = 100
PASSED = "smoke test passed"


class SmokePresenter(Presenter):
    """Writes every message instead of showing a box; errors make the run fail."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failures: list[str] = []
        #: Set when the run ends: closing may then cancel a job that still runs.
        self.closing = False

    def show(self, message: Message, parent: QWidget | None) -> None:
        """Record the message; an error or a bug fails the smoke run."""
        line = f"{message.level.value}: {message.text}"
        self.lines.append(line)
        if message.level in (Level.ERROR, Level.BUG):
            self.failures.append(line + (f"\n{message.details}" if message.details else ""))

    def ask(self, question: Confirmation, parent: QWidget | None) -> bool:
        """Answer No, except to closing at the end: a smoke run never confirms an action."""
        answer = self.closing
        self.lines.append(f"asked: {question.title} (answered {'yes' if answer else 'no'})")
        return answer


class SmokeTest(QObject):
    """Drives one smoke run of the window; :attr:`exit_code` is set when it ends."""

    def __init__(self, report_to: str, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        super().__init__()
        self.report_to = report_to
        self.presenter = SmokePresenter()
        self._settings_dir = QTemporaryDir()
        self.settings = QSettings(str(Path(self._settings_dir.path()) / "queue-admin.ini"),
                                  QSettings.Format.IniFormat)
        self.deadline = time.monotonic() + timeout_seconds
        self.window: MainWindow | None = None
        self.exit_code: int | None = None
        self.loaded_titles: list[str] = []
        self._next_tab = 0
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._on_tick)

    def start(self, window: MainWindow) -> None:
        """Watch ``window`` until every tab has loaded or the time is up."""
        self.window = window
        self._timer.start()

    def _on_tick(self) -> None:
        window = self.window
        if window is None or self.exit_code is not None:
            return
        if self.presenter.failures:
            self._finish(1, "the window reported: " + "; ".join(self.presenter.failures))
        elif time.monotonic() > self.deadline:
            self._finish(1, f"timed out after loading {self.loaded_titles or 'no tab'}")
        elif window.session.db_path is not None and window.stack.currentWidget() is window.tabs:
            self._visit_tabs(window)

    def _visit_tabs(self, window: MainWindow) -> None:
        """Bring the next tab to the front; move on once it has finished reading."""
        tabs = window.tabs
        if tabs.currentIndex() != self._next_tab:
            tabs.setCurrentIndex(self._next_tab)
            return
        if getattr(tabs.currentWidget(), "loading", False):
            return
        self.loaded_titles.append(tabs.tabText(self._next_tab))
        self._next_tab += 1
        if self._next_tab == tabs.count():
            self._finish(0, "")

    def _finish(self, code: int, problem: str) -> None:
        self._timer.stop()
        self.exit_code = code
        lines = [f"tab: {title}" for title in self.loaded_titles]
        lines += [f"message: {line}" for line in self.presenter.lines]
        lines.append(PASSED if code == 0 else f"smoke test failed: {problem}")
        self._write("\n".join(lines) + "\n")
        self.presenter.closing = True
        if self.window is not None:
            self.window.close()
        QApplication.exit(code)

    def _write(self, text: str) -> None:
        if self.report_to != "-":
            Path(self.report_to).write_text(text, encoding="utf-8")
            return
        stream: TextIO | None = sys.stdout
        if stream is not None:
            stream.write(text)
            stream.flush()
