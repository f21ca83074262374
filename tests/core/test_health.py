from __future__ import annotations

from datetime import datetime, timedelta, timezone

from queue_admin_gui.core.measurements.health import (
    HealthLevel,
    HealthMeasurements,
    assess_health,
    backup_age_hours,
)
from queue_admin_gui.core.settings.config import MaintenanceConfig

MB = 1024 * 1024
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def test_everything_within_thresholds_is_ok():
    report = assess_health(MaintenanceConfig(), HealthMeasurements(
        wal_size_bytes=10 * MB, fragmentation_percent=2.0, stale_leases=0,
        last_backup_at=NOW - timedelta(hours=1), has_backups=True), now=NOW)
    assert report.level is HealthLevel.OK
    assert report.findings == []
    assert report.summary().startswith("OK")


def test_default_thresholds_grade_each_measurement():
    config = MaintenanceConfig()
    cases = [
        (HealthMeasurements(wal_size_bytes=60 * MB), HealthLevel.WARNING, "WAL"),
        (HealthMeasurements(wal_size_bytes=120 * MB), HealthLevel.CRITICAL, "WAL"),
        (HealthMeasurements(fragmentation_percent=12.0), HealthLevel.WARNING, "VACUUM"),
        (HealthMeasurements(fragmentation_percent=25.0), HealthLevel.CRITICAL, "VACUUM"),
        (HealthMeasurements(stale_leases=10), HealthLevel.WARNING, "requeue"),
        (HealthMeasurements(stale_leases=50), HealthLevel.CRITICAL, "requeue"),
        (HealthMeasurements(last_backup_at=NOW - timedelta(hours=30)), HealthLevel.WARNING,
         "30 h old (limit 24 h)"),
        (HealthMeasurements(last_backup_at=NOW - timedelta(hours=80)), HealthLevel.CRITICAL,
         "80 h old (limit 72 h)"),
        (HealthMeasurements(has_backups=False), HealthLevel.CRITICAL, "no backup"),
    ]
    for measured, level, word in cases:
        report = assess_health(config, measured, now=NOW)
        assert report.level is level, measured
        assert len(report.reasons) == 1
        assert word in report.reasons[0]


def test_worst_finding_wins_and_comes_first():
    report = assess_health(MaintenanceConfig(), HealthMeasurements(
        wal_size_bytes=60 * MB, stale_leases=70), now=NOW)
    assert report.level is HealthLevel.CRITICAL
    assert [f.level for f in report.findings] == [HealthLevel.CRITICAL, HealthLevel.WARNING]
    assert "70 tasks" in report.reasons[0]
    assert "Critical" in report.summary()


def test_thresholds_follow_the_config():
    config = MaintenanceConfig(wal_size_warning_mb=1, wal_size_threshold_mb=2)
    report = assess_health(config, HealthMeasurements(wal_size_bytes=3 * MB), now=NOW)
    assert report.level is HealthLevel.CRITICAL
    assert "limit 2 MB" in report.reasons[0]


def test_unmeasured_values_are_not_judged():
    assert assess_health(MaintenanceConfig(), HealthMeasurements()).level is HealthLevel.OK


def test_backup_age_hours_handles_naive_times_and_none():
    assert backup_age_hours(None) is None
    naive = (NOW - timedelta(hours=2)).replace(tzinfo=None)
    assert backup_age_hours(naive, now=NOW) == 2.0


def test_measure_health_reads_a_real_queue(queue_db, tmp_path):
    import sqlite3

    from queue_admin_gui.core.measurements.health import latest_backup_time, measure_health

    backups = tmp_path / "backups"
    config = MaintenanceConfig(backup_dir=backups, stale_leases_warning=1,
                               stale_leases_critical=5, stale_lease_timeout_seconds=0)
    connection = sqlite3.connect(queue_db)
    with connection:
        connection.execute(
            "INSERT INTO task_queue (type, payload, status, lease_until_utc, locked_by) "
            "VALUES ('render', '{}', 'leased', datetime('now', '-1 hour'), 'gone')")
    connection.close()
    snapshot = measure_health(queue_db, config)
    assert snapshot.measured.stale_leases == 1
    assert snapshot.measured.has_backups is False
    assert snapshot.stats is not None and snapshot.stats.is_queue is True
    assert snapshot.report.level is HealthLevel.CRITICAL
    assert any("no backup" in reason for reason in snapshot.report.reasons)
    assert any("abandoned" in reason for reason in snapshot.report.reasons)

    backups.mkdir()
    (backups / "queue_backup_20261129_101500.db").write_bytes(b"x")
    (backups / "queue_backup_nightly_20261128_101500.db").write_bytes(b"x")
    (backups / "notes.txt").write_text("not a backup")
    newest, any_backups = latest_backup_time(backups)
    assert any_backups
    assert newest is not None and newest.astimezone().strftime("%Y%m%d_%H%M%S") == (
        "20261129_101500")


def test_headline_names_the_worst_finding_in_a_few_words():
    report = assess_health(MaintenanceConfig(), HealthMeasurements(
        wal_size_bytes=60 * MB, stale_leases=70), now=NOW)
    assert report.headline() == "Critical: 70 stale leases (+1 more)"
    assert assess_health(MaintenanceConfig(), HealthMeasurements()).headline() == "OK"


def test_free_disk_space_is_graded_against_the_database_size():
    config = MaintenanceConfig()

    def grade(free_db, free_backup=None, backup_drive="E:"):
        return assess_health(config, HealthMeasurements(
            database_bytes=100 * MB, database_free_bytes=free_db, database_drive="D:",
            backup_free_bytes=free_backup, backup_drive=backup_drive), now=NOW)

    assert grade(500 * MB, 500 * MB).level is HealthLevel.OK
    warning = grade(150 * MB)
    assert warning.level is HealthLevel.WARNING
    assert "D:" in warning.reasons[0] and "VACUUM" in warning.reasons[0]
    assert grade(50 * MB).level is HealthLevel.CRITICAL
    backup_short = grade(500 * MB, 40 * MB)
    assert backup_short.level is HealthLevel.CRITICAL
    assert "E:" in backup_short.reasons[0] and "next backup" in backup_short.reasons[0]
    assert grade(500 * MB, 40 * MB, backup_drive="D:").level is HealthLevel.OK


def test_measure_health_reads_free_space_of_real_folders(queue_db, tmp_path):
    from queue_admin_gui.core.measurements.health import measure_health

    snapshot = measure_health(queue_db, MaintenanceConfig(backup_dir=tmp_path / "not yet"))
    assert snapshot.measured.database_bytes == queue_db.stat().st_size + (
        snapshot.stats.wal_size_bytes)
    assert snapshot.measured.database_free_bytes > 0
    assert snapshot.measured.backup_free_bytes > 0


def test_the_stale_lease_count_leaves_out_tasks_of_live_workers(queue_db, tmp_path):
    """The badge counts abandoned tasks only; overdue leases of live workers are a warning."""
    import sqlite3

    from queue_admin_gui.core.measurements.health import measure_health

    connection = sqlite3.connect(queue_db)
    with connection:
        connection.execute("INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
                           "VALUES ('alive', '{}', datetime('now', '-1 second'))")
        connection.executemany(
            "INSERT INTO task_queue (type, payload, status, lease_until_utc, locked_by) "
            "VALUES ('render', '{}', 'leased', datetime('now', '-1 hour'), ?)",
            [("alive",), ("alive",), ("gone",)])
    connection.close()
    config = MaintenanceConfig(backup_dir=tmp_path, stale_leases_warning=2,
                               stale_leases_critical=3, stale_lease_timeout_seconds=300)
    snapshot = measure_health(queue_db, config)
    assert snapshot.measured.stale_leases == 1
    assert snapshot.measured.expired_live_leases == 2
    assert not any("abandoned" in reason for reason in snapshot.report.reasons)
    (renewal,) = [f for f in snapshot.report.findings if "still heartbeat" in f.reason]
    assert renewal.level is HealthLevel.WARNING
    assert renewal.short == "2 expired leases, workers alive"


def damage_task_pages(path):
    """A queue whose task rows sit on garbage pages; its header and schema still read fine."""
    import sqlite3

    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            "INSERT INTO task_queue (type, payload, status, lease_until_utc, locked_by) "
            "VALUES ('render', ?, 'leased', datetime('now', '-1 hour'), 'gone')",
            [('{"pad": "' + "x" * 600 + '"}',) for _ in range(60)])
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = [row[0] for row in connection.execute(
        "SELECT pageno FROM dbstat WHERE name = 'task_queue' AND pagetype = 'leaf'")]
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    assert len(pages) > 5
    with open(path, "r+b") as file:
        for page in pages:
            file.seek((page - 1) * page_size)
            file.write(b"\xff" * page_size)


def test_a_damaged_database_is_the_worst_finding_not_stale_leases(queue_db, tmp_path):
    from queue_admin_gui.core.measurements.health import measure_health

    damage_task_pages(queue_db)
    config = MaintenanceConfig(backup_dir=tmp_path, stale_leases_warning=1,
                               stale_leases_critical=5, stale_lease_timeout_seconds=0)
    snapshot = measure_health(queue_db, config)
    assert snapshot.measured.damage is not None
    assert "malformed" in snapshot.measured.damage
    assert snapshot.measured.stale_leases is None  # not judged from a damaged file
    assert snapshot.report.level is HealthLevel.CRITICAL
    assert snapshot.report.findings[0].short.startswith("database damaged: ")
    assert snapshot.report.headline().startswith("Critical: database damaged: ")
    assert not any("stale" in finding.short for finding in snapshot.report.findings)


def test_damage_comes_before_every_other_critical_finding():
    report = assess_health(MaintenanceConfig(), HealthMeasurements(
        damage="database disk image is malformed", has_backups=False, stale_leases=70,
        wal_size_bytes=500 * MB), now=NOW)
    assert report.findings[0].short == "database damaged: database disk image is malformed"
    assert "restore it from a backup" in report.reasons[0]


def test_a_backup_limit_under_an_hour_is_said_in_its_own_unit_and_agrees_with_the_grade():
    config = MaintenanceConfig(backup_age_warning_hours=0.05, backup_age_critical_hours=0.1)
    report = assess_health(config, HealthMeasurements(
        last_backup_at=NOW - timedelta(minutes=7), has_backups=True), now=NOW)
    assert report.level is HealthLevel.CRITICAL
    [reason] = report.reasons
    assert reason == "The last backup is 0.12 h (7 min) old (limit 0.1 h); back up now."
    assert "0 hours" not in reason and "Ctrl" not in reason


def test_no_finding_names_a_keyboard_shortcut():
    report = assess_health(MaintenanceConfig(), HealthMeasurements(
        has_backups=False, wal_size_bytes=200 * MB, stale_leases=70,
        fragmentation_percent=40.0), now=NOW)
    assert report.findings
    assert not any("Ctrl" in reason for reason in report.reasons)


def test_a_file_rebuilt_to_an_instant_is_not_the_last_backup(tmp_path):
    from datetime import datetime

    from queue_admin_gui.core.backups.manifest import backup_file_name
    from queue_admin_gui.core.measurements.health import latest_backup_time

    older = datetime(2026, 1, 1, 3, 0, 0)  # noqa: DTZ001 - backup names use local time
    (tmp_path / backup_file_name(None, older)).write_bytes(b"x")
    (tmp_path / backup_file_name("at", datetime(2026, 1, 2, 3, 0, 0))).write_bytes(b"x")  # noqa: DTZ001
    newest, has_backups = latest_backup_time(tmp_path)
    assert has_backups
    assert newest == older.astimezone().astimezone(newest.tzinfo)


def test_a_shared_backup_folder_counts_only_this_databases_backups(tmp_path) -> None:
    """Queue B, never backed up, does not take queue A's backup in the same folder as its own."""
    from queue_admin_gui.core import QueueBackup
    from queue_admin_gui.core.backups.manifest import manifest_path_for
    from queue_admin_gui.core.database import QueueDatabase
    from queue_admin_gui.core.measurements.health import latest_backup_time

    queues = {}
    for name in ("a", "b"):
        queues[name] = tmp_path / name / "queue.db"
        with QueueDatabase(queues[name]) as db:
            db.initialize_schema()
    folder = tmp_path / "shared"
    of_a = QueueBackup(queues["a"], folder).create_backup("a")
    assert latest_backup_time(folder, queues["b"]) == (None, False)
    assert latest_backup_time(folder, queues["a"])[0] is not None
    assert latest_backup_time(folder)[1]  # without a database, any backup counts
    of_b = QueueBackup(queues["b"], folder).create_backup("b")
    assert latest_backup_time(folder, queues["b"])[0] is not None
    newest_a, _ = latest_backup_time(folder, queues["a"])
    manifest_path_for(of_a).unlink()  # an older tool's backup: whose it is, nobody knows
    assert latest_backup_time(folder, queues["a"])[0] == newest_a
    assert of_b.exists()
