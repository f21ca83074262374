from __future__ import annotations

from datetime import datetime, timedelta, timezone

from queue_admin_gui.core.measurements.health import HealthFinding, HealthLevel, HealthReport
from queue_admin_gui.core.measurements.readings import reading_time
from queue_admin_gui.core.measurements.sampling import Sample
from queue_admin_gui.ui.status_bar import DatabaseStatusBar, describe_backup_age

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
SAMPLE = Sample(time=NOW.timestamp(), db_bytes=3 * 1024 * 1024, wal_bytes=60 * 1024 * 1024,
                shm_bytes=32768, page_count=768, freelist_count=0, page_size=4096)


def test_backup_age_in_words():
    assert describe_backup_age(None, False, NOW) == "none yet"
    assert describe_backup_age(None, None, NOW) == "\u2013"
    assert describe_backup_age(NOW - timedelta(seconds=20), True, NOW) == "just now"
    assert describe_backup_age(NOW - timedelta(minutes=12), True, NOW) == "12 min ago"
    assert describe_backup_age(NOW - timedelta(hours=5), True, NOW) == "5 h ago"
    assert describe_backup_age(NOW - timedelta(days=4), True, NOW) == "4 days ago"


def test_status_bar_shows_sizes_and_the_badge_with_reasons(qtbot, tmp_path):
    bar = DatabaseStatusBar()
    qtbot.addWidget(bar)
    assert bar.path_label.text() == "No database open"
    assert bar.badge.level is None
    bar.show_database(tmp_path / "queue.db")
    assert bar.path_label.text() == str(tmp_path / "queue.db")
    report = HealthReport(HealthLevel.WARNING, [
        HealthFinding(HealthLevel.WARNING, "The WAL file is 60.0 MB (limit 50 MB); run a "
                      "TRUNCATE checkpoint on the WAL/Checkpoint tab.", "WAL 60.0 MB")])
    bar.show_sample(SAMPLE)
    bar.show_health(report, None, False)
    assert bar.size_label.text() == "DB: 3.0 MB"
    assert bar.wal_label.text() == f"WAL: 60.0 MB ({reading_time(SAMPLE.time)})"
    assert bar.backup_label.text() == "Last backup: none yet"
    assert bar.badge.text_label.text() == "Health: Warning: WAL 60.0 MB"
    assert "TRUNCATE checkpoint" in bar.badge.toolTip()
    assert bar.badge.level is HealthLevel.WARNING

    bar.show_unreadable("Reading statistics failed: the database is locked.")
    assert bar.badge.text_label.text() == "Health: cannot read"
    assert "locked" in bar.badge.toolTip()
    bar.show_database(None)
    assert bar.size_label.text() == "DB: \u2013"


def test_long_path_and_headline_never_widen_a_1024_pixel_window(qtbot, tmp_path):
    from PySide6.QtWidgets import QMainWindow

    window = QMainWindow()
    qtbot.addWidget(window)
    bar = DatabaseStatusBar()
    window.setStatusBar(bar)
    long_path = tmp_path.joinpath(*["a rather long folder name"] * 8, "queue.db")
    bar.show_database(long_path)
    headline = "database damaged: " + "the index ix_task_type_status disagrees " * 4
    report = HealthReport(HealthLevel.CRITICAL, [
        HealthFinding(HealthLevel.CRITICAL, headline, headline)])
    bar.show_sample(SAMPLE)
    bar.show_health(report, None, False)
    window.resize(1024, 700)
    window.show()
    qtbot.waitExposed(window)
    assert bar.path_label.sizeHint().width() + bar.badge.sizeHint().width() > 1024
    assert window.minimumSizeHint().width() < 1024
    assert window.width() == 1024
    assert bar.path_label.text() == str(long_path)  # the whole text is still there
    assert headline in bar.badge.toolTip()
