"""Which conditions deserve a notification, and when one stays quiet."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from queue_admin_gui.core.activity import RESULT_FAILED, ActivityEntry
from queue_admin_gui.core.measurements.alerts import (
    SOURCE_ACTIVITY,
    SOURCE_HEALTH,
    AlertTracker,
    activity_conditions,
    health_conditions,
)
from queue_admin_gui.core.measurements.health import (
    FINDING_KINDS,
    HealthLevel,
    HealthMeasurements,
    assess_health,
)
from queue_admin_gui.core.settings.config import MaintenanceConfig

MB = 1024 * 1024
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _report(**measured: object):
    return assess_health(MaintenanceConfig(), HealthMeasurements(**measured), now=NOW)


def _health(tracker: AlertTracker, **measured: object):
    return tracker.update(SOURCE_HEALTH, health_conditions(_report(**measured)))


def test_every_finding_has_a_kind():
    report = _report(damage="malformed", wal_size_bytes=200 * MB, fragmentation_percent=50.0,
                     stale_leases=60, expired_live_leases=2, has_backups=False,
                     database_bytes=10 * MB, database_free_bytes=MB, backup_free_bytes=MB,
                     database_drive="C:", backup_drive="D:")
    assert sorted(finding.kind for finding in report.findings) == sorted(FINDING_KINDS)


def test_a_new_condition_alerts_once_and_stays_quiet_while_it_lasts():
    tracker = AlertTracker()
    [alert] = _health(tracker, wal_size_bytes=60 * MB)
    assert alert.worse and alert.level is HealthLevel.WARNING
    assert alert.title == "Queue Admin: Warning"
    assert alert.message.startswith("The WAL file is 60.0 MB (limit 50 MB)")
    assert _health(tracker, wal_size_bytes=60 * MB) == []
    assert _health(tracker, wal_size_bytes=70 * MB) == []  # same condition, other figure


def test_getting_worse_alerts_and_getting_better_but_not_well_stays_quiet():
    tracker = AlertTracker()
    _health(tracker, wal_size_bytes=60 * MB)
    [alert] = _health(tracker, wal_size_bytes=120 * MB)
    assert alert.worse and alert.level is HealthLevel.CRITICAL
    assert _health(tracker, wal_size_bytes=60 * MB) == []


def test_recovery_alerts_once():
    tracker = AlertTracker()
    _health(tracker, wal_size_bytes=120 * MB, stale_leases=12)
    [alert] = _health(tracker, wal_size_bytes=1 * MB, stale_leases=12)
    assert not alert.worse
    assert alert.title == "Queue Admin: recovered"
    assert alert.message == ("No longer found: WAL 120.0 MB. Still warning: 12 stale "
                             "leases.")
    [alert] = _health(tracker, wal_size_bytes=1 * MB, stale_leases=0)
    assert alert.message == "No longer found: 12 stale leases. No other problem found."
    assert alert.level is HealthLevel.OK
    assert _health(tracker, wal_size_bytes=1 * MB, stale_leases=0) == []


def test_several_new_conditions_make_one_alert_worst_first():
    tracker = AlertTracker()
    [alert] = _health(tracker, damage="database disk image is malformed",
                      stale_leases=12)
    assert alert.level is HealthLevel.CRITICAL
    assert alert.message.startswith("The database is damaged (database disk image is")
    assert alert.message.endswith(" Also: 12 stale leases.")


def _entry(action: str, result: str = "succeeded", message: str = "",
           hours_ago: float = 1) -> ActivityEntry:
    when = (NOW - timedelta(hours=hours_ago)).isoformat(timespec="seconds")
    return replace(ActivityEntry.now(action, result=result, message=message), time=when)


def test_a_failed_backup_is_a_condition_until_a_later_one_succeeds():
    failed = _entry("cli backup", RESULT_FAILED, "Backup failed: the disk is full.", 3)
    [condition] = activity_conditions([failed], now=NOW)
    assert condition.level is HealthLevel.CRITICAL
    assert condition.text == ("Backup failed: the disk is full (a scheduled queue-admin-cli "
                              "run).")
    assert activity_conditions([failed, _entry("cli backup", hours_ago=2)], now=NOW) == []
    assert activity_conditions([failed, _entry("cli vacuum", hours_ago=2)], now=NOW) == [
        condition]


def test_refusals_warn_and_old_or_non_maintenance_entries_are_no_news():
    refused = _entry("Restore queue.db from b.db", RESULT_FAILED,
                     "Restore refused: workers are running.")
    [condition] = activity_conditions([refused], now=NOW)
    assert condition.level is HealthLevel.WARNING
    assert activity_conditions([_entry("cli backup", RESULT_FAILED, "x", 30)], now=NOW) == []
    assert activity_conditions([_entry("Open database", RESULT_FAILED, "x")], now=NOW) == []


def test_sources_are_tracked_apart():
    tracker = AlertTracker()
    _health(tracker, stale_leases=12)
    failure = activity_conditions([_entry("cli backup", RESULT_FAILED, "disk full")], now=NOW)
    [alert] = tracker.update(SOURCE_ACTIVITY, failure)
    assert alert.worse and alert.message == "cli backup failed: disk full"
    assert tracker.update(SOURCE_ACTIVITY, failure) == []
    assert _health(tracker, stale_leases=12) == []  # the activity update cleared nothing
    [alert] = tracker.update(SOURCE_ACTIVITY, [])
    assert alert.message == "No longer found: cli backup failed. Still warning: 12 stale leases."


def test_reset_forgets_without_alerting():
    tracker = AlertTracker()
    _health(tracker, wal_size_bytes=120 * MB)
    tracker.reset()
    assert tracker.active == {}
    assert _health(tracker, wal_size_bytes=1 * MB) == []


def test_failures_on_another_file_are_not_the_open_files_news(tmp_path):
    from queue_admin_gui.core.measurements.alerts import activity_conditions

    damaged, healthy = tmp_path / "damaged" / "queue.db", tmp_path / "b" / "queue.db"
    failed = ActivityEntry.now("Integrity check", result=RESULT_FAILED, database=damaged,
                               message="the file is damaged")
    assert [c.key for c in activity_conditions([failed])] == ["activity:Integrity check"]
    assert activity_conditions([failed], database=healthy) == []
    assert len(activity_conditions([failed], database=damaged)) == 1


def test_a_checkpoint_that_fell_short_is_said_once():
    short = _entry("Checkpoint TRUNCATE", "did not finish",
                   "The TRUNCATE checkpoint could not finish: a reader holds the WAL.", 1)
    [condition] = activity_conditions([short], now=NOW)
    assert condition.text == "The TRUNCATE checkpoint could not finish: a reader holds the WAL."
    assert condition.text.lower().count("finish") == 1
