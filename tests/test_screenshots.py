from __future__ import annotations

import pytest
from PySide6.QtGui import QImage

from queue_admin_gui.screenshots import WINDOW_SIZE, render
from queue_admin_gui.ui.main_window import TAB_SPECS


@pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")
def test_render_writes_one_picture_per_tab_at_the_default_size(qtbot, tmp_path):
    written = render(tmp_path / "images", workers_seconds=0.2)
    names = sorted(path.name for path in written)
    assert names == sorted(["start_page.png"] + [f"tab_{spec[0]}.png" for spec in TAB_SPECS])
    for path in written:
        image = QImage(str(path))
        assert (image.width(), image.height()) == WINDOW_SIZE
