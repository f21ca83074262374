"""The first window fits the screen it opens on: 1024x700, and a full-HD screen at 150 %."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import json, sys, tempfile, time
from pathlib import Path
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
app = QApplication([])
from queue_admin_gui.app.jobs import JobRunner
from queue_admin_gui.app.messages import Messages, RecordingPresenter
from queue_admin_gui.app.session import Session
from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.ui.main_window import MainWindow
root = Path(sys.argv[1])
session = Session(JobRunner(), Messages(RecordingPresenter()),
                  MaintenanceConfig(backup_dir=root / "backups"))
settings = QSettings(str(root / "settings.ini"), QSettings.Format.IniFormat)
if len(sys.argv) > 2:  # a geometry remembered from a bigger monitor
    big = MainWindow(session, settings, ActivityLog(root / "activity.jsonl"))
    big.setGeometry(100, 100, 2400, 1400)
    big.save_layout()
    big.sampler.stop()
window = MainWindow(session, settings, ActivityLog(root / "activity.jsonl"))
window.show()
end = time.monotonic() + 1.0
while time.monotonic() < end:
    app.processEvents()
area = window.screen().availableGeometry()
frame = window.frameGeometry()
badge = window.status.badge
corner = badge.mapTo(window, badge.rect().bottomRight())
print(json.dumps({"area": [area.x(), area.y(), area.width(), area.height()],
                  "frame": [frame.x(), frame.y(), frame.width(), frame.height()],
                  "badge": [corner.x(), corner.y()],
                  "client": [window.width(), window.height()]}))
window.sampler.stop()
session.runner.shutdown(10_000)
"""


def open_window(tmp_path: Path, width: int, height: int, scale: str | None,
                remembered: bool = False) -> dict:
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "screen", "x": 0, "y": 0,
                                               "width": width, "height": height,
                                               "logicalDpi": 96, "dpr": 1}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("QT_SCALE_FACTOR", None)
    if scale:
        env["QT_SCALE_FACTOR"] = scale
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path),
                          *(["remembered"] if remembered else [])],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def inside(inner: list[int], outer: list[int]) -> bool:
    x, y, w, h = inner
    ox, oy, ow, oh = outer
    return x >= ox and y >= oy and x + w <= ox + ow and y + h <= oy + oh


@pytest.mark.slow
@pytest.mark.parametrize(("width", "height", "scale"), [(1024, 700, None),
                                                         (1920, 1080, "1.5")])
def test_the_first_window_fits_the_screen_with_its_badge_in_sight(tmp_path, width, height,
                                                                   scale):
    shown = open_window(tmp_path, width, height, scale)
    assert inside(shown["frame"], shown["area"]), shown
    client_width, client_height = shown["client"]
    badge_x, badge_y = shown["badge"]
    assert 0 < badge_x <= client_width and 0 < badge_y <= client_height, shown


@pytest.mark.slow
def test_a_size_remembered_from_a_bigger_monitor_is_fitted_too(tmp_path):
    shown = open_window(tmp_path, 1024, 700, None, remembered=True)
    assert inside(shown["frame"], shown["area"]), shown
