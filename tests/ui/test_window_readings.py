"""One truth on screen: every display shows the latest reading and says when it was read."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from pathlib import Path

import pytest
from _tab_fixtures import lock_held
from PySide6.QtCore import Qt

from queue_admin_gui.core.database import connect
from queue_admin_gui.core.errors import format_bytes
from queue_admin_gui.core.measurements.readings import reading_time
from queue_admin_gui.ui.status_bar import STALE_COLOUR

LEFT = Qt.MouseButton.LeftButton


def grow_wal(connection: sqlite3.Connection, rows: int) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany("INSERT INTO task_queue (type, payload) VALUES ('render', ?)",
                           [('{"note": "' + 'x' * 2000 + '"}',) for _ in range(rows)])
    connection.execute("COMMIT")


def sample_shown(qtbot, window) -> None:
    """Wait for one fresh sample to reach every display."""
    with qtbot.waitSignal(window.sampler.handled, timeout=30_000):
        window.sampler.tick()


def test_a_growing_wal_shows_one_size_everywhere(qtbot, window, demo_db: Path, open_db):
    session = window.session
    session.set_config(dataclasses.replace(session.config, wal_size_warning_mb=0.1,
                                           wal_size_threshold_mb=50))
    open_db(demo_db)
    window.sampler.stop()  # ticks by hand: no sample lands between the reads below
    window.show_tab("wal")
    qtbot.waitUntil(lambda: window.health_read is not None, timeout=30_000)
    wal_tab = window.tab_widgets["wal"]
    stats_tab = window.tab_widgets["stats"]
    writer = connect(demo_db)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        for _ in range(3):
            grow_wal(writer, 300)
            sample_shown(qtbot, window)
            sample = window.sampler.last_sample
            size = format_bytes(sample.wal_bytes)
            qtbot.waitUntil(lambda: not wal_tab.loading and not stats_tab.loading,
                            timeout=30_000)
            assert wal_tab.wal_grid.value("wal_size") == size
            assert wal_tab.wal_grid.value("read_at") == reading_time(sample.time)
            assert window.status.wal_label.text() == f"WAL: {size} ({reading_time(sample.time)})"
            assert f"The WAL is {size} (read {reading_time(sample.time)})" in \
                window.wal_plot.banner_label.text()
            assert f"WAL {size}," in window.wal_plot.summary_label.text()
            assert stats_tab.files_grid.value("wal_size") == size
            assert f"The WAL file is {size} " in window.status.badge.toolTip()
    finally:
        writer.close()


def test_a_deleted_database_greys_the_stats_tab_with_its_last_time(qtbot, window, demo_db,
                                                                   open_db):
    open_db(demo_db)
    window.sampler.stop()
    window.show_tab("stats")
    stats_tab = window.tab_widgets["stats"]
    sample_shown(qtbot, window)
    good = window.sampler.last_sample
    qtbot.waitUntil(lambda: not stats_tab.loading, timeout=30_000)
    shown = stats_tab.files_grid.value("db_size")
    assert shown == format_bytes(good.db_bytes) and not stats_tab.stale
    for suffix in ("", "-wal", "-shm"):
        Path(f"{demo_db}{suffix}").unlink(missing_ok=True)
    window.sampler.clock = lambda: good.time + 5
    sample_shown(qtbot, window)
    assert stats_tab.stale
    assert stats_tab.files_grid.value("db_size") == shown  # the old figure, but greyed
    assert STALE_COLOUR in stats_tab.files_grid._values["db_size"].styleSheet()
    assert "not current" in stats_tab.updated_label.text().lower()
    assert reading_time(good.time) in stats_tab.updated_label.text()
    assert "not found" in stats_tab.error_label.text()
    assert window.status.sizes_stale
    assert f"at {reading_time(good.time)}, not current" in window.status.wal_label.text()
    badge = window.status.badge
    assert badge.text_label.text() == f"Health: not current (read at {reading_time(good.time)})"
    assert "not found" in badge.toolTip()
    wal_tab = window.tab_widgets["wal"]
    assert wal_tab.wal_grid.value("read_at") == f"{reading_time(good.time)} (not current)"
    assert "not current" in window.wal_plot.summary_label.text()


@pytest.mark.usefixtures("short_lock_wait")
def test_the_panel_shows_a_truncate_from_the_banner_after_a_failed_run(qtbot, window, demo_db,
                                                                        open_db):
    session = window.session
    session.set_config(dataclasses.replace(session.config, wal_size_warning_mb=0.05))
    open_db(demo_db)
    window.show_tab("wal")
    wal_tab = window.tab_widgets["wal"]
    writer = connect(demo_db)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        grow_wal(writer, 300)
        with lock_held(demo_db, "read"):
            grow_wal(writer, 100)
            with qtbot.waitSignal(session.checkpoint_done, timeout=60_000):
                qtbot.mouseClick(wal_tab.checkpoint_buttons["TRUNCATE"], LEFT)
        assert wal_tab.result_grid.value("busy").startswith("no: busy")
        first_run = wal_tab.result_grid.value("ran_at")
        qtbot.waitUntil(lambda: window.wal_plot.banner_shown
                        and window.wal_plot.truncate_button.isEnabled(), timeout=30_000)
        with qtbot.waitSignal(session.checkpoint_done, timeout=60_000) as blocker:
            qtbot.mouseClick(window.wal_plot.truncate_button, LEFT)
    finally:
        writer.close()
    assert blocker.args[0].busy == 0
    assert wal_tab.result_grid.value("mode") == "TRUNCATE"
    assert wal_tab.result_grid.value("busy") == "yes"
    assert "the -wal file is now empty" in wal_tab.result_label.text()
    assert re.fullmatch(r"\d\d:\d\d:\d\d", wal_tab.result_grid.value("ran_at"))
    assert wal_tab.result_grid.value("ran_at") >= first_run


def test_a_checkpoint_that_raised_replaces_the_last_result(qtbot, window, demo_db, open_db):
    session = window.session
    open_db(demo_db)
    wal_tab = window.tab_widgets["wal"]
    with qtbot.waitSignal(session.checkpoint_done, timeout=60_000):
        qtbot.mouseClick(wal_tab.checkpoint_buttons["PASSIVE"], LEFT)
    assert wal_tab.result_grid.value("mode") == "PASSIVE"
    window.sampler.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{demo_db}{suffix}").unlink(missing_ok=True)
    with qtbot.waitSignal(session.checkpoint_failed, timeout=60_000):
        window.wal_plot.run_truncate_checkpoint()
    assert wal_tab.result_grid.value("mode") == "TRUNCATE"
    assert wal_tab.result_grid.value("busy") == "no: it failed"
    assert "failed" in wal_tab.result_label.text()
