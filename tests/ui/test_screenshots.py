from __future__ import annotations

import pytest
from PySide6.QtGui import QImage

from queue_admin_gui.ui.main_window import TAB_SPECS
from queue_admin_gui.ui.screenshots import SCREEN_SIZES, WINDOW_SIZE, render


@pytest.mark.slow
@pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")
def test_render_writes_one_picture_per_tab_at_the_default_size(qtbot, tmp_path):
    written = render(tmp_path / "images", workers_seconds=0.2)
    top = sorted(path.name for path in written if path.parent.name == "images")
    assert top == sorted(["start_page.png", "wal_starving.png", "deleted_wal.png",
                          "deleted_stats.png", "damaged_optimize.png", "damaged_leases.png"]
                         + [f"tab_{spec[0]}.png" for spec in TAB_SPECS])
    for path in written:
        image = QImage(str(path))
        if path.parent.name == "images":
            assert (image.width(), image.height()) == WINDOW_SIZE
        elif path.name.startswith("tab_"):
            # the window fits the smallest screen; in the starving and deleted scenes the
            # status bar's longer texts can still widen it a little
            assert f"_{image.width()}x{image.height()}.png" in path.name
    sized = {path.name for path in written if path.parent.name == "sizes"}
    for width, height in SCREEN_SIZES:
        for spec in TAB_SPECS:
            assert f"tab_{spec[0]}_{width}x{height}.png" in sized
        for scene in ("starving", "deleted"):
            assert f"{scene}_tab_wal_{width}x{height}.png" in sized
        assert f"damaged_tab_optimize_{width}x{height}.png" in sized
