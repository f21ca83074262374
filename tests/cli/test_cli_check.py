"""``queue-admin-cli check``: every state of the monitoring-plugin verdict, on real files."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from _cli_helpers import Run

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.measurements import health

#: 'label'=value[UOM];[warn];[crit];[min];[max] with plugin ranges ("10", "10:", "@1:5").
PERFDATUM = re.compile(
    r"^(?:'[^'=]+'|[^'= ]+)=(?:U|-?\d+(?:\.\d+)?)(?:B|s|%)?"
    r"(?:;(?:@?-?\d*(?:\.\d+)?:?-?\d*(?:\.\d+)?)?){0,2}(?:;-?\d*(?:\.\d+)?){0,2}$")
MB = 1024 * 1024


def _status(run: Run) -> str:
    return run.out.splitlines()[0]


def _perf(run: Run) -> dict[str, str]:
    """label -> the rest of its datum, from the status line."""
    _text, _bar, data = _status(run).partition(" | ")
    return dict(datum.split("=", 1) for datum in data.split())


def _fake_backup(folder: Path, hours_old: float) -> Path:
    """A file named like a backup made ``hours_old`` hours ago (the age comes from the name)."""
    folder.mkdir(parents=True, exist_ok=True)
    when = datetime.now(timezone.utc) - timedelta(hours=hours_old)
    path = folder / f"queue_backup_{when:%Y%m%d_%H%M%S}.db"
    path.write_bytes(b"")
    return path


def _add_abandoned_tasks(db: Path, count: int) -> None:
    connection = sqlite3.connect(db)
    with connection:
        connection.executemany(
            "INSERT INTO task_queue (type, payload, status, lease_until_utc, locked_by) "
            "VALUES ('render', '{}', 'leased', datetime('now', '-2 hours'), 'gone')",
            [() for _ in range(count)])
    connection.close()


@pytest.fixture
def recent_backup(queue_db: Path, tmp_path: Path) -> Path:
    """A real, verified backup of the queue made just now; returns the backup folder."""
    folder = tmp_path / "backups"
    QueueBackup(queue_db, folder).create_backup("nightly")
    return folder


@pytest.fixture
def held_wal(queue_db: Path) -> Iterator[Callable[[int], sqlite3.Connection]]:
    """Grow the queue's WAL to about N bytes and keep it (a worker connection stays open)."""
    connections: list[sqlite3.Connection] = []

    def grow(size: int) -> sqlite3.Connection:
        connection = sqlite3.connect(queue_db, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA wal_autocheckpoint=0")
        wal = queue_db.with_name(queue_db.name + "-wal")
        while not wal.exists() or wal.stat().st_size < size:
            connection.executemany(
                "INSERT INTO task_logs (task_id, level, message) VALUES (0, 'info', ?)",
                [("x" * 3000,)] * 100)
        connections.append(connection)
        return connection

    yield grow
    for connection in connections:
        connection.close()


def test_healthy_queue_with_a_recent_backup_is_ok(cli, queue_db, recent_backup):
    run = cli("--db", queue_db, "check", "--dir", recent_backup)
    assert run.code == 0, run.out
    assert _status(run).startswith("QUEUE OK - every measurement is within its thresholds (")
    assert "last backup 0 h old" in _status(run)
    perf = _perf(run)
    assert perf["stale_leases"] == "0;10;50;0"
    assert perf["wal_bytes"].endswith("B;52428800;104857600;0")
    assert perf["free_pages_percent"].startswith("0%;10;20;0;100")
    assert perf["tasks_queued"] == "0;;;0"
    assert re.fullmatch(r"\d+s;86400;259200;0", perf["backup_age_s"])
    assert "Quick check passed" in run.out


def test_every_perfdatum_follows_the_plugin_syntax(cli, queue_db, recent_backup):
    _add_abandoned_tasks(queue_db, 3)
    run = cli("--db", queue_db, "check", "--dir", recent_backup)
    data = _status(run).partition(" | ")[2].split()
    assert len(data) >= 10
    for datum in data:
        assert PERFDATUM.match(datum), datum
    assert _perf(run)["tasks_leased"] == "3;;;0"


@pytest.mark.parametrize(("size_mb", "state", "code"), [(1.5, "WARNING", 1),
                                                        (3.2, "CRITICAL", 2)])
def test_wal_size_is_graded(cli, queue_db, recent_backup, held_wal, size_mb, state, code):
    held_wal(int(size_mb * MB))
    run = cli("--db", queue_db, "check", "--dir", recent_backup, "--wal-warning-mb", "1",
              "--wal-critical-mb", "3")
    assert run.code == code, run.out
    assert re.match(rf"QUEUE {state} - WAL \d\.\d MB \|", _status(run))
    assert _perf(run)["wal_bytes"].endswith(f"B;{MB};{3 * MB};0")
    assert f"{state}: The WAL file is" in run.out


@pytest.mark.parametrize(("abandoned", "state", "code"), [(2, "WARNING", 1),
                                                          (5, "CRITICAL", 2)])
def test_abandoned_leases_are_graded(cli, queue_db, recent_backup, abandoned, state, code):
    _add_abandoned_tasks(queue_db, abandoned)
    run = cli("--db", queue_db, "check", "--dir", recent_backup, "--stale-warning", "2",
              "--stale-critical", "5", "--lease-timeout", "60")
    assert run.code == code, run.out
    assert _status(run).startswith(f"QUEUE {state} - {abandoned} stale leases |")
    assert _perf(run)["stale_leases"] == f"{abandoned};2;5;0"


def test_leases_under_the_timeout_are_not_abandoned(cli, queue_db, recent_backup):
    _add_abandoned_tasks(queue_db, 5)  # overdue by two hours
    run = cli("--db", queue_db, "check", "--dir", recent_backup, "--stale-warning", "2",
              "--lease-timeout", "86400")
    assert run.code == 0, run.out


@pytest.mark.parametrize(("hours", "state", "code"), [(30, "WARNING", 1), (80, "CRITICAL", 2)])
def test_backup_age_is_graded(cli, queue_db, tmp_path, hours, state, code):
    folder = tmp_path / "old backups"
    _fake_backup(folder, hours)
    run = cli("--db", queue_db, "check", "--dir", folder)
    assert run.code == code, run.out
    assert _status(run).startswith(f"QUEUE {state} - last backup {hours} h old |")
    seconds = int(_perf(run)["backup_age_s"].split("s;")[0])
    assert abs(seconds - hours * 3600) < 120


def test_backup_age_thresholds_can_be_overridden(cli, queue_db, tmp_path):
    folder = tmp_path / "old backups"
    _fake_backup(folder, 5)
    run = cli("--db", queue_db, "check", "--dir", folder, "--backup-warning-hours", "2",
              "--backup-critical-hours", "4")
    assert run.code == 2, run.out
    assert _perf(run)["backup_age_s"].endswith(f"s;{2 * 3600};{4 * 3600};0")


def test_no_backup_at_all_is_critical(cli, queue_db, tmp_path):
    run = cli("--db", queue_db, "check", "--dir", tmp_path / "empty")
    assert run.code == 2
    assert _status(run).startswith("QUEUE CRITICAL - no backup |")
    assert _perf(run)["backup_age_s"].startswith("U;")


def _free_pages(db: Path) -> float:
    """Fill the log table, then delete it: about nine in ten pages become free."""
    connection = sqlite3.connect(db, isolation_level=None)
    connection.executemany("INSERT INTO task_logs (task_id, level, message) VALUES (0, 'i', ?)",
                           [("y" * 3000,)] * 300)
    connection.execute("DELETE FROM task_logs")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    free, pages = (connection.execute(f"PRAGMA {name}").fetchone()[0]
                   for name in ("freelist_count", "page_count"))
    connection.close()
    return free / pages * 100


@pytest.mark.parametrize(("warning", "critical", "state", "code"),
                         [("50", "99", "WARNING", 1), ("40", "50", "CRITICAL", 2)])
def test_free_pages_are_graded(cli, queue_db, recent_backup, warning, critical, state, code):
    percent = _free_pages(queue_db)
    assert 60 < percent < 99
    run = cli("--db", queue_db, "check", "--dir", recent_backup, "--free-pages-warning",
              warning, "--free-pages-critical", critical)
    assert run.code == code, run.out
    assert _status(run).startswith(f"QUEUE {state} - {percent:.0f} % free pages |")
    assert _perf(run)["free_pages_percent"].endswith(f"%;{warning};{critical};0;100")


@pytest.mark.parametrize(("free_copies", "state", "code"), [(1.5, "WARNING", 1),
                                                            (0.5, "CRITICAL", 2)])
def test_free_disk_space_is_graded(cli, queue_db, recent_backup, monkeypatch, free_copies,
                                   state, code):
    """The badge grades the database drive's free space; here the drive reports little."""
    size = queue_db.stat().st_size
    monkeypatch.setattr(health, "free_bytes", lambda folder: int(size * free_copies))
    run = cli("--db", queue_db, "check", "--dir", recent_backup)
    assert run.code == code, run.out
    assert f"{state}: Only " in run.out
    assert _perf(run)["db_drive_free_bytes"] == (
        f"{int(size * free_copies)}B;{2 * size}:;{size}:;0")


def damage_leaf_pages(db: Path, table: str, rows: int = 200) -> None:
    """Fill ``table`` over many pages, then overwrite a few of its leaf pages with junk."""
    connection = sqlite3.connect(db)
    with connection:
        if table == "task_queue":
            connection.executemany(
                "INSERT INTO task_queue (type, payload, status, lease_until_utc, locked_by) "
                "VALUES ('render', ?, 'leased', datetime('now', '-1 hour'), 'gone')",
                [('{"pad": "' + "p" * 900 + '"}',) for _ in range(rows)])
        else:
            connection.executemany(
                "INSERT INTO task_logs (task_id, level, message) VALUES (0, 'info', ?)",
                [("z" * 900,) for _ in range(rows)])
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = [row[0] for row in connection.execute(
        "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (table,))]
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    assert len(pages) > 8
    with open(db, "r+b") as file:
        for page in pages[2:8]:
            file.seek((page - 1) * page_size)
            file.write(b"\xff" * page_size)


def test_damage_the_health_read_meets_is_critical(cli, queue_db, recent_backup):
    damage_leaf_pages(queue_db, "task_queue")
    run = cli("--db", queue_db, "check", "--dir", recent_backup, "--quick-check-seconds", "0")
    assert run.code == 2, run.out
    assert _status(run).startswith("QUEUE CRITICAL - database damaged: ")
    assert "malformed" in _status(run)


def test_damage_only_the_quick_check_finds_is_critical(cli, queue_db, recent_backup):
    """Log pages: no health read touches them, the bounded quick check does."""
    damage_leaf_pages(queue_db, "task_logs")
    run = cli("--db", queue_db, "check", "--dir", recent_backup, "--quick-check-seconds", "0")
    assert run.code == 0, "without the quick check this damage goes unseen"
    run = cli("--db", queue_db, "check", "--dir", recent_backup)
    assert run.code == 2, run.out
    assert _status(run).startswith("QUEUE CRITICAL - database damaged: ")
    assert "Quick check found damage" in run.out


def test_a_quick_check_out_of_time_says_so_and_is_no_finding(cli, queue_db, recent_backup,
                                                             held_wal):
    held_wal(12 * MB).close()  # a database big enough that its check outlasts the budget
    argv = ("--db", queue_db, "check", "--dir", recent_backup, "--quick-check-seconds", "0.001")
    run = cli(*argv)
    assert run.code == 0, run.out
    assert "Quick check stopped at its 0.001 s budget with no damage in the pages it read" \
        in run.out
    data = cli(*argv, "--json").data
    assert data["quick_check"]["finished"] is False and data["quick_check"]["damage"] is None
    assert data["state"] == "OK"


def test_json_is_the_same_verdict_as_one_object(cli, queue_db, tmp_path):
    _fake_backup(tmp_path / "b", 30)
    _add_abandoned_tasks(queue_db, 60)
    text = cli("--db", queue_db, "check", "--dir", tmp_path / "b")
    run = cli("--db", queue_db, "check", "--dir", tmp_path / "b", "--json")
    data = run.data
    assert run.code == text.code == 2
    assert data["state"] == "CRITICAL" and data["exit_code"] == 2 and data["ok"] is False
    # Other programs write to the drive meanwhile, and the backup's age in whole seconds may
    # tick between the two runs.
    moving = re.compile(r" (?:db_drive_free_bytes|\w*age_s)=\S+")
    assert moving.sub("", data["status_line"]) == moving.sub("", _status(text))
    assert [f["kind"] for f in data["findings"]] == ["stale_leases", "backup"]
    assert [f["level"] for f in data["findings"]] == ["CRITICAL", "WARNING"]
    assert data["measurements"]["stale_leases"] == 60
    labels = {datum["label"]: datum for datum in data["perfdata"]}
    assert labels["stale_leases"]["value"] == 60 and labels["stale_leases"]["crit"] == "50"


def test_missing_database_is_unknown(cli, tmp_path):
    run = cli("--db", tmp_path / "nowhere.db", "check")
    assert run.code == 3
    assert run.out.splitlines() == [
        f"QUEUE UNKNOWN - the database '{tmp_path / 'nowhere.db'}' was not found; check the "
        "path"]


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0,
                    reason="needs a file this account cannot read (root reads everything)")
def test_unreadable_database_is_unknown(cli, queue_db):
    queue_db.chmod(0)
    try:
        run = cli("--db", queue_db, "check")
    finally:
        queue_db.chmod(0o644)
    assert run.code == 3
    assert _status(run).startswith("QUEUE UNKNOWN - ")
    assert "permission denied" in _status(run)


@pytest.mark.parametrize("content", [b"", b"this is a text file, not a database\n"])
def test_a_file_that_is_not_sqlite_is_unknown(cli, tmp_path, content):
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    run = cli("--db", path, "check", "--json")
    assert run.code == 3
    assert run.data["state"] == "UNKNOWN" and run.data["kind"] == "not_a_database"


def test_a_folder_or_another_sqlite_file_is_unknown(cli, tmp_path):
    assert cli("--db", tmp_path, "check").code == 3
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.close()
    run = cli("--db", other, "check")
    assert run.code == 3
    assert "not a PrismQ queue" in _status(run)


@pytest.mark.parametrize("argv", [
    ["check", "--bogus"],
    ["check", "--stale-warning", "many"],
    ["check", "--wal-warning-mb", "500", "--wal-critical-mb", "100"],
    ["check", "--quick-check-seconds", "-1"],
])
def test_usage_errors_are_unknown_with_one_status_line(cli, queue_db, argv):
    run = cli("--db", queue_db, *argv)
    assert run.code == 3, run.out
    assert len(run.out.splitlines()) == 1
    assert _status(run).startswith("QUEUE UNKNOWN - ")
    assert cli("--db", queue_db, *argv, "--json").data["exit_code"] == 3


def test_a_broken_settings_file_is_unknown(cli, queue_db, tmp_path, monkeypatch):
    settings = tmp_path / "settings.toml"
    settings.write_text("wal_size_warning_mb = 'lots'\n", encoding="utf-8")
    monkeypatch.setenv("QUEUE_ADMIN_CONFIG", str(settings))
    run = cli("--db", queue_db, "check")
    assert run.code == 3
    assert "wal_size_warning_mb" in _status(run)


def test_thresholds_come_from_the_settings(cli, queue_db, recent_backup, tmp_path, monkeypatch):
    settings = tmp_path / "settings.toml"
    settings.write_text("stale_leases_warning = 1\nstale_leases_critical = 2\n"
                        "stale_lease_timeout_seconds = 60\n", encoding="utf-8")
    monkeypatch.setenv("QUEUE_ADMIN_CONFIG", str(settings))
    _add_abandoned_tasks(queue_db, 1)
    run = cli("--db", queue_db, "check", "--dir", recent_backup)
    assert run.code == 1
    assert _perf(run)["stale_leases"] == "1;1;2;0"


def test_an_unexpected_failure_is_unknown(cli, queue_db, monkeypatch):
    from queue_admin_gui.cli import check as cli_check

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_check, "run_check", broken)
    run = cli("--db", queue_db, "check")
    assert run.code == 3
    assert run.out.splitlines() == [
        "QUEUE UNKNOWN - the check failed unexpectedly (RuntimeError: boom); run with --debug "
        "for the traceback"]


def _fingerprint(db: Path) -> dict[str, tuple[bytes, int] | None]:
    """Bytes (the -shm's without its reader marks) and modification time of each file."""
    result: dict[str, tuple[bytes, int] | None] = {}
    for suffix in ("", "-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        if not path.exists():
            result[suffix] = None
            continue
        data = path.read_bytes()
        if suffix == "-shm":
            # Bytes 100-119 are the five reader marks: SQLite has every reader, a read-only
            # one too, note there which WAL frame it reads up to. Nothing else may change.
            data = data[:100] + data[120:]
        result[suffix] = (hashlib.sha256(data).digest(), path.stat().st_mtime_ns)
    return result


def test_check_never_writes_to_the_database(cli, queue_db, recent_backup, held_wal):
    worker = held_wal(2 * MB)  # a live WAL with a worker's connection open
    _add_abandoned_tasks(queue_db, 3)
    worker.execute("INSERT INTO task_logs (task_id, level, message) VALUES (0, 'i', 'last')")
    before = _fingerprint(queue_db)
    assert before["-wal"] is not None and before["-shm"] is not None
    run = cli("--db", queue_db, "check", "--dir", recent_backup, "--json")
    assert run.data["measurements"]["stale_leases"] == 3
    assert _fingerprint(queue_db) == before


def test_check_is_not_an_activity_log_entry(cli, queue_db, recent_backup):
    from queue_admin_gui.core.activity import ActivityLog

    cli("--db", queue_db, "check", "--dir", recent_backup)
    assert [entry.action for entry in ActivityLog().read()] == []


def test_exit_code_reaches_the_monitor_as_a_process(cli_process, queue_db, tmp_path):
    _fake_backup(tmp_path / "b", 30)
    run = cli_process("--db", queue_db, "check", "--dir", tmp_path / "b")
    assert run.code == 1, run.err
    assert run.out.startswith("QUEUE WARNING - last backup 30 h old | ")


def _unreadable_folder_is_unknown(cli, queue_db: Path, folder: Path, reason: str) -> None:
    run = cli("--db", queue_db, "check", "--dir", folder)
    assert run.code == 3, run.out
    status = _status(run)
    assert status.startswith(f"QUEUE UNKNOWN - cannot read the backup folder '{folder}': "
                             f"{reason}")
    assert "no backup" not in status and "back up now" not in run.out
    verdict = cli("--db", queue_db, "check", "--dir", folder, "--json").data
    assert verdict["exit_code"] == 3
    assert verdict["measurements"]["backup_dir_problem"].startswith(reason)
    assert verdict["measurements"]["has_backups"] is None
    assert verdict["error"] == verdict["summary"] and verdict["kind"]


def test_a_file_where_the_backup_folder_should_be_is_unknown(cli, queue_db, tmp_path):
    folder = tmp_path / "backups"
    folder.write_bytes(b"not a folder")
    _unreadable_folder_is_unknown(cli, queue_db, folder, "it is a file, not a folder")


@pytest.mark.skipif(os.name == "nt", reason="a symbolic link loop needs POSIX links")
def test_a_backup_folder_that_cannot_be_opened_is_unknown(cli, queue_db, recent_backup,
                                                          tmp_path):
    loop = tmp_path / "looping backups"
    loop.symlink_to(loop)  # even root cannot list it: too many levels of symbolic links
    _unreadable_folder_is_unknown(cli, queue_db, loop, "it cannot be read (")


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0,
                    reason="needs a folder this account cannot read (root reads everything)")
def test_a_backup_folder_this_account_may_not_read_is_unknown(cli, queue_db, recent_backup):
    recent_backup.chmod(0)
    try:
        _unreadable_folder_is_unknown(cli, queue_db, recent_backup,
                                      "this account may not read it (permission denied)")
    finally:
        recent_backup.chmod(0o755)


def test_an_unreadable_backup_folder_does_not_hide_a_critical_finding(cli, queue_db,
                                                                      tmp_path):
    folder = tmp_path / "backups"
    folder.write_bytes(b"not a folder")
    _add_abandoned_tasks(queue_db, 3)
    run = cli("--db", queue_db, "check", "--dir", folder, "--stale-warning", "1",
              "--stale-critical", "2")
    assert run.code == 2, run.out
    assert "cannot read the backup folder" in _status(run)
    assert "UNKNOWN: Cannot read the backup folder" in run.out


def test_a_logged_check_records_a_problem_for_the_event_log(cli, queue_db, tmp_path):
    """The scheduled health check (--log) leaves a CRITICAL verdict in the activity log."""
    from queue_admin_gui.core.activity import ActivityLog
    from queue_admin_gui.core.event_log import EventLevel, level_for

    quiet = cli("--db", queue_db, "check", "--dir", tmp_path / "none")
    assert quiet.code == 2
    assert ActivityLog().read(10) == []  # without --log, check writes nothing
    logged = cli("--db", queue_db, "check", "--dir", tmp_path / "none", "--log")
    assert logged.code == 2
    entries = ActivityLog().read(10)
    assert [entry.action for entry in entries] == ["cli check"]
    assert entries[0].message == _status(logged)
    assert level_for(entries[0]) is EventLevel.ERROR


def test_a_logged_check_that_is_ok_adds_nothing(cli, queue_db, recent_backup):
    from queue_admin_gui.core.activity import ActivityLog

    run = cli("--db", queue_db, "check", "--dir", recent_backup, "--log")
    assert run.code == 0, run.out
    assert ActivityLog().read(10) == []
