"""archive, archive-status and restore --at, run as real processes the way a script runs them."""

from __future__ import annotations

import json
import selectors
import signal
import sqlite3
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from _cli_helpers import cli_command, cli_env

from queue_admin_gui.core.archive import Archiver, parse_instant
from queue_admin_gui.core.database import QueueDatabase
from queue_admin_gui.core.settings.config import MaintenanceConfig
from queue_admin_gui.core.settings.folders import config_file_path

DEADLINE_SECONDS = 60.0


def _insert(db: Path, kind: str, count: int) -> None:
    connection = sqlite3.connect(db, isolation_level=None, timeout=5)
    for number in range(count):
        connection.execute("INSERT INTO task_queue(type, payload) VALUES (?, ?)",
                           (kind, json.dumps({"n": number})))
    connection.close()


def _types(db: Path) -> dict[str, int]:
    connection = sqlite3.connect(db)
    try:
        return dict(connection.execute(
            "SELECT type, count(*) FROM task_queue GROUP BY type").fetchall())
    finally:
        connection.close()


def _line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        assert selector.select(DEADLINE_SECONDS), "the archiver printed nothing"
        return process.stdout.readline()
    finally:
        selector.close()


def _wait_until_restorable(process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while "is restorable from" not in _line(process):
        assert time.monotonic() < deadline and process.poll() is None


def _run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*argv), capture_output=True, text=True, env=cli_env(),
                          timeout=DEADLINE_SECONDS, check=False)


@pytest.mark.slow
def test_archive_status_and_restore_at_round_trip(tmp_path: Path) -> None:
    db, archive = tmp_path / "queue dir" / "queue.db", tmp_path / "archive here"
    db.parent.mkdir()
    with QueueDatabase(db) as queue:
        queue.initialize_schema()
    process = subprocess.Popen(cli_command("--db", db, "archive", "--dir", archive,
                                           "--heartbeat", "0.5"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=cli_env())
    try:
        _wait_until_restorable(process)
        _insert(db, "before", 5)
        while "heartbeat" not in _line(process):  # a heartbeat proves it copied them
            pass
        while "heartbeat" not in _line(process):
            pass
        instant = datetime.now(timezone.utc)
        while "heartbeat" not in _line(process):
            pass
        _insert(db, "after", 7)
        second = _run("--db", db, "archive", "--dir", archive)
        assert second.returncode == 1 and "another archiver" in second.stderr
        while "heartbeat" not in _line(process):
            pass
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "The archiver stopped after writing everything it had seen." in out

    status = _run("--db", db, "archive-status", "--dir", archive, "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["ok"] and len(report["generations"]) == 1 and report["gaps"] == []
    assert report["generations"][0]["transactions"] >= 12
    assert report["earliest_restorable"] and report["latest_restorable"]

    output = tmp_path / "rebuilt.db"
    at = instant.astimezone().replace(tzinfo=None).isoformat()  # local time, no offset
    rebuilt = _run("--db", db, "restore", "--at", at, "--archive", archive, "--output", output,
                   "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["verified"] is True
    assert _types(output) == {"before": 5}
    assert _types(db) == {"before": 5, "after": 7}  # the live database is untouched

    too_early = _run("--db", db, "restore", "--at", "2001-01-01T00:00:00Z", "--archive",
                     archive, "--output", tmp_path / "early.db", "--json")
    assert too_early.returncode == 2
    assert "before the archive starts" in json.loads(too_early.stdout)["error"]
    assert not (tmp_path / "early.db").exists()

    restored = _run("--db", db, "restore", "--at", instant.isoformat(), "--archive", archive,
                    "--yes", "--json", "--no-safety-backup")
    assert restored.returncode == 0, restored.stderr
    assert _types(db) == {"before": 5}


@pytest.mark.slow
def test_archive_keeps_the_settings_days_unless_told_and_refuses_a_bad_count(
        cli, tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "queue.db"
    with QueueDatabase(db) as database:
        database.initialize_schema()
    folder = tmp_path / "archive"
    monkeypatch.setenv("QUEUE_ADMIN_ARCHIVE_KEEP_DAYS", "3")
    ran = cli("--db", db, "archive", "--dir", folder, "--seconds", "0.5", "--json")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["keep_days"] == 3.0
    ran = cli("--db", db, "archive", "--dir", folder, "--seconds", "0.5", "--keep-days", "30",
              "--json")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["keep_days"] == 30.0
    refused = cli("--db", db, "archive", "--dir", folder, "--keep-days", "0")
    assert refused.code == 2
    assert "--keep-days: must be a number of days from 0.1 to 36,500, not 0" in refused.err


def _archive_with_commits(tmp_path: Path) -> tuple[Path, Path]:
    """A queue and an archive of it holding about 30 transactions seen at several instants."""
    db, folder = tmp_path / "queue.db", tmp_path / "archive"
    with QueueDatabase(db) as queue:
        queue.initialize_schema()
    archiver = Archiver(db, folder)
    archiver.start()
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while archiver.status().generation is None or archiver.status().snapshot_pending:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for batch in range(6):
            _insert(db, f"batch-{batch}", 5)
            time.sleep(0.2)
    finally:
        archiver.stop()
    return db, folder


@pytest.mark.slow
def test_archive_status_reports_damage_and_restore_refuses_the_damaged_instants(
        cli, tmp_path: Path) -> None:
    db, folder = _archive_with_commits(tmp_path)
    healthy = cli("--db", db, "archive-status", "--dir", folder, "--json")
    assert healthy.code == 0, healthy.err
    assert healthy.data["checked"] is True and healthy.data["damage"] == []
    assert healthy.data["last_validation"] is None
    latest = healthy.data["latest_restorable"]

    segment = next(folder.glob("gen-*/frames-000001.qaf"))
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x20
    segment.write_bytes(bytes(data))

    damaged = cli("--db", db, "archive-status", "--dir", folder, "--json")
    assert damaged.code == 1
    report = damaged.data
    assert report["ok"] is False and report["kind"] == "corrupt"
    assert [row["file"] for row in report["damage"]] == [str(segment)]
    assert report["damage"][0]["reason"] and report["damage"][0]["kind"] == "damaged"
    gap = next(gap for gap in report["gaps"] if gap["kind"] == "damaged")
    assert gap["file"] == str(segment) and gap["from"] == report["latest_restorable"]
    assert parse_instant(report["latest_restorable"]) < parse_instant(latest)
    text = cli("--db", db, "archive-status", "--dir", folder)
    assert text.code == 1 and f"damaged: {segment}" in text.out

    refused = cli("--db", db, "restore", "--at", latest, "--archive", folder, "--output",
                  tmp_path / "refused.db", "--json")
    assert refused.code == 1
    assert refused.data["kind"] == "corrupt"
    assert "damaged" in refused.data["error"] and str(segment) in refused.data["error"]
    assert f"nearest restorable instant is {report['latest_restorable']}" in \
        refused.data["error"]
    assert not (tmp_path / "refused.db").exists()
    intact = cli("--db", db, "restore", "--at", "latest", "--archive", folder, "--output",
                 tmp_path / "intact.db", "--json")
    assert intact.code == 0, intact.err
    assert 0 < intact.data["transactions_applied"] < 30  # the last intact instant

    MaintenanceConfig(backup_dir=tmp_path / "backups", archive_dir=folder).save(
        config_file_path())
    checked = cli("--db", db, "check", "--json")
    assert checked.code == 2 and checked.data["state"] == "CRITICAL"
    assert "point-in-time archive is damaged" in checked.data["summary"]
    assert str(segment) in checked.data["measurements"]["archive_problems"][0]
    assert any(line.startswith("CRITICAL: the point-in-time archive is damaged")
               for line in cli("--db", db, "check").out.splitlines())


@pytest.mark.slow
def test_restore_at_latest_earliest_and_the_printed_instant_reach_every_transaction(
        cli, tmp_path: Path) -> None:
    db, folder = _archive_with_commits(tmp_path)
    report = cli("--db", db, "archive-status", "--dir", folder, "--json").data
    archived = report["generations"][0]["transactions"]
    assert archived == 30
    latest = cli("--db", db, "restore", "--at", "latest", "--archive", folder, "--output",
                 tmp_path / "latest.db", "--json")
    assert latest.code == 0, latest.err
    assert latest.data["transactions_applied"] == archived
    assert _types(tmp_path / "latest.db") == _types(db)
    printed = cli("--db", db, "restore", "--at", report["latest_restorable"], "--archive",
                  folder, "--output", tmp_path / "printed.db", "--json")
    assert printed.code == 0 and printed.data["transactions_applied"] == archived
    earliest = cli("--db", db, "restore", "--at", "earliest", "--archive", folder, "--output",
                   tmp_path / "earliest.db", "--json")
    assert earliest.code == 0 and earliest.data["transactions_applied"] == 0
    for value in ("0001-01-01T00:00:00", "9999-12-31T23:59:59.999999+14:00"):
        refused = cli("--db", db, "restore", "--at", value, "--archive", folder, "--output",
                      tmp_path / "never.db", "--json")
        assert refused.code == 2, refused.out
        assert refused.data["kind"] == "invalid", refused.data
    assert not (tmp_path / "never.db").exists()


@pytest.mark.slow
def test_archive_status_validate_compares_with_a_running_archiver_process(
        cli, tmp_path: Path) -> None:
    db, archive = tmp_path / "queue.db", tmp_path / "archive"
    with QueueDatabase(db) as queue:
        queue.initialize_schema()
    process = subprocess.Popen(cli_command("--db", db, "archive", "--dir", archive,
                                           "--heartbeat", "0.5"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=cli_env())
    try:
        _wait_until_restorable(process)
        _insert(db, "validated", 8)
        validated = cli("--db", db, "archive-status", "--dir", archive, "--validate", "--json")
        assert validated.code == 0, validated.out
        last = validated.data["last_validation"]
        assert last["result"] == "passed" and last["ok"] is True
        assert "identical to the live file" in last["sentence"] and last["pages"] > 0
        again = cli("--db", db, "archive-status", "--dir", archive)
        assert again.code == 0 and "last validation at" in again.out and "passed" in again.out
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=DEADLINE_SECONDS)
    without = cli("--db", db, "archive-status", "--dir", archive, "--validate", "--json")
    assert without.code == 1
    assert without.data["last_validation"]["result"] == "not compared"


@pytest.mark.slow
def test_archive_compact_carries_the_image_on_and_restore_at_uses_it_exactly(
        cli, tmp_path: Path) -> None:
    db, folder = _archive_with_commits(tmp_path)
    first = cli("--db", db, "archive-compact", "--dir", folder, "--json")
    assert first.code == 0, first.err
    [row] = first.data["generations"]
    assert row["outcome"] == "started" and row["transactions"] == 30
    # One level file (its stretch ends where the run stopped), counted in the disk cost.
    assert row["levels_written"] == row["level_files"] == 1 and row["level_bytes"] > 0
    again = cli("--db", db, "archive-compact", "--dir", folder)
    assert again.code == 0 and "up to date" in again.out
    rebuilt = cli("--db", db, "restore", "--at", "latest", "--archive", folder, "--output",
                  tmp_path / "latest.db", "--json")
    assert rebuilt.code == 0, rebuilt.err
    assert rebuilt.data["transactions_applied"] == 30
    assert rebuilt.data["from_image"] == 30 and rebuilt.data["level_problem"] is None
    assert _types(tmp_path / "latest.db") == _types(db)

    segment = next(folder.glob("gen-*/frames-000001.qaf"))
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x20
    segment.write_bytes(bytes(data))
    damaged = cli("--db", db, "archive-compact", "--dir", folder, "--json")
    assert damaged.code == 1 and damaged.data["kind"] == "corrupt"
    assert "archive-status" in damaged.data["error"]
    missing = cli("--db", db, "archive-compact", "--dir", tmp_path / "nowhere", "--json")
    assert missing.code == 2 and missing.data["kind"] == "not_found"
