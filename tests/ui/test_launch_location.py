"""The window finds the queue as the CLI does and the start page says where it normally lives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from queue_admin_gui.app.messages import RecordingPresenter
from queue_admin_gui.core.settings.queue_location import QueueLocation
from queue_admin_gui.ui.launch import create_window, parse_arguments


@pytest.fixture
def make_window(qtbot, settings):
    made = []

    def make(*argv: str):
        window = create_window(parse_arguments(argv), settings=settings,
                               presenter=RecordingPresenter())
        qtbot.addWidget(window)
        made.append(window)
        return window

    yield make
    for window in made:
        window.health_timer.stop()
        window.sampler.stop()
        assert window.session.runner.shutdown(30_000)


def test_the_environment_variable_opens_the_same_file_as_the_cli(
        qtbot, make_window, demo_db: Path, settings, tmp_path: Path, monkeypatch):
    other = tmp_path / "older copy.db"
    other.write_bytes(demo_db.read_bytes())
    settings.setValue("last_database", str(other))
    monkeypatch.setenv("PRISMQ_QUEUE_DB_PATH", str(demo_db))
    window = make_window()
    qtbot.waitUntil(lambda: window.session.db_path == demo_db, timeout=30_000)
    cli = subprocess.run([sys.executable, "-m", "queue_admin_gui.cli", "--json", "stats"],
                         capture_output=True, text=True, check=False)
    assert json.loads(cli.stdout)["path"] == str(window.session.db_path)
    assert "from PRISMQ_QUEUE_DB_PATH" in window.start_page.usual_label.text()


def test_start_page_says_where_the_queue_normally_lives(qtbot, make_window, tmp_path: Path,
                                                       monkeypatch):
    missing = tmp_path / "data dir" / "queue.db"
    monkeypatch.setenv("PRISMQ_QUEUE_DB_PATH", str(missing))
    window = make_window()
    assert window.stack.currentWidget() is window.start_page
    text = window.start_page.usual_label.text()
    assert str(missing) in text and "from PRISMQ_QUEUE_DB_PATH" in text
    assert "No file is there now." in text
    assert not window.start_page.usual_button.isEnabled()


def test_open_it_opens_the_usual_queue(qtbot, make_window, demo_db: Path, monkeypatch):
    monkeypatch.delenv("PRISMQ_QUEUE_DB_PATH")
    window = make_window()
    window.show()
    page = window.start_page
    assert "from the platform default" in page.usual_label.text() or \
        "from the settings file" in page.usual_label.text()
    page.show_usual_location(QueueLocation(demo_db, "the settings file"))
    assert page.usual_button.isEnabled()
    qtbot.mouseClick(page.usual_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.db_path == demo_db, timeout=30_000)
