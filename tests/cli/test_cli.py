"""queue-admin-cli in-process: usage, database choice, maintenance commands, leases, demo."""

from __future__ import annotations

import dataclasses
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _cli_helpers import Run

from queue_admin_gui import __version__
from queue_admin_gui.cli import CancelOnInterrupt
from queue_admin_gui.cli.commands import COMMANDS
from queue_admin_gui.cli.declared import DECLARED
from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.database import closing_connection, connect, task_counts
from queue_admin_gui.core.demo.queue_file import is_demo_queue

CliRunner = Callable[..., Run]


def _one_error_line(run: Run) -> str:
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("queue-admin-cli: error: ")
    return lines[0]


# -- usage ---------------------------------------------------------------------------------

def test_version_and_help(cli: CliRunner) -> None:
    run = cli("--version")
    assert run.code == 0
    assert __version__ in run.out
    run = cli("--help")
    assert run.code == 0
    for command in COMMANDS:
        assert command in run.out


def test_missing_command_is_bad_usage(cli: CliRunner) -> None:
    run = cli()
    assert run.code == 2
    assert "required" in _one_error_line(run)
    run = cli("--json")
    assert run.code == 2
    assert run.data["ok"] is False
    assert run.data["kind"] == "invalid"


def test_invalid_checkpoint_mode_is_bad_usage(cli: CliRunner, demo_db: Path) -> None:
    run = cli("--db", demo_db, "--json", "checkpoint", "--mode", "sideways")
    assert run.code == 2
    assert "sideways" in run.data["error"]
    assert "sideways" in _one_error_line(run)


def test_unknown_command_and_bad_numbers_are_bad_usage(cli: CliRunner, demo_db: Path) -> None:
    assert cli("--db", demo_db, "explode").code == 2
    assert cli("--db", demo_db, "prune", "--keep", "0").code == 2
    assert cli("--db", demo_db, "prune").code == 2
    assert cli("--db", demo_db, "leases", "--timeout", "soon").code == 2


def test_global_options_work_after_the_command(cli: CliRunner, demo_db: Path) -> None:
    run = cli("stats", "--db", demo_db, "--json")
    assert run.code == 0
    assert run.data["ok"] is True
    assert run.data["path"] == str(demo_db)


# -- which database ------------------------------------------------------------------------

def test_missing_database_is_exit_2_with_the_path_and_its_source(cli: CliRunner,
                                                                 tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "queue.db"
    for command in ("stats", "backup", "checkpoint", "vacuum", "integrity", "leases"):
        run = cli("--db", missing, "--json", command)
        assert run.code == 2, command
        assert run.data == {"ok": False, "error": run.data["error"], "kind": "not_found"}
        assert str(missing) in run.data["error"]
        assert "--db" in _one_error_line(run)
    assert not missing.exists()


def test_database_from_the_environment(cli: CliRunner, demo_db: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRISMQ_QUEUE_DB_PATH", str(demo_db))
    run = cli("--json", "stats")
    assert run.code == 0
    assert run.data["path"] == str(demo_db)


def test_database_from_the_settings_file(cli: CliRunner, demo_db: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(f"db_path = '{demo_db}'\n", encoding="utf-8")
    monkeypatch.setenv("QUEUE_ADMIN_CONFIG", str(settings))
    monkeypatch.delenv("PRISMQ_QUEUE_DB_PATH")
    run = cli("--json", "stats")
    assert run.code == 0
    assert run.data["path"] == str(demo_db)


def test_db_option_beats_the_environment(cli: CliRunner, demo_db: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRISMQ_QUEUE_DB_PATH", str(tmp_path / "other.db"))
    assert cli("--db", demo_db, "stats").code == 0


def test_broken_settings_file_is_bad_usage(cli: CliRunner, tmp_path: Path, demo_db: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text("checkpoint_mode = 'SIDEWAYS'\n", encoding="utf-8")
    monkeypatch.setenv("QUEUE_ADMIN_CONFIG", str(settings))
    assert cli("--db", demo_db, "stats").code == 0  # stats needs no settings
    run = cli("--db", demo_db, "--json", "leases")  # the lease timeout comes from them
    assert run.code == 2
    assert "checkpoint_mode" in run.data["error"]


# -- stats and maintenance -----------------------------------------------------------------

def test_stats(cli: CliRunner, demo_db: Path) -> None:
    run = cli("--db", demo_db, "--json", "stats")
    assert run.code == 0
    data = run.data
    for key in ("page_size", "page_count", "freelist_count", "fragmentation_percent",
                "db_size_bytes", "wal_size_bytes", "journal_mode", "sqlite_version"):
        assert key in data
    assert data["is_queue"] is True
    assert sum(data["task_counts"].values()) == 300
    human = cli("--db", demo_db, "stats")
    assert human.code == 0
    assert "Fragmentation" in human.out and "KB" in human.out and "queued" in human.out


@pytest.mark.parametrize("mode", ["passive", "full", "restart", "TRUNCATE"])
def test_checkpoint_modes(cli: CliRunner, demo_db: Path, mode: str) -> None:
    with closing_connection(connect(demo_db)) as connection:  # open: the WAL stays
        connection.execute("UPDATE task_queue SET priority = priority + 1")
        run = cli("--db", demo_db, "--json", "checkpoint", "--mode", mode)
    assert run.code == 0, run.err
    data = run.data
    assert data["mode"] == mode.upper()
    assert data["busy"] == 0
    assert data["log_frames"] >= data["checkpointed_frames"] > 0
    assert data["wal_bytes_before"] > 0
    if mode.upper() == "TRUNCATE":
        assert data["wal_bytes_after"] == 0


def test_checkpoint_mode_defaults_to_the_settings(cli: CliRunner, demo_db: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_ADMIN_CHECKPOINT_MODE", "truncate")
    run = cli("--db", demo_db, "checkpoint")
    assert run.code == 0
    assert "TRUNCATE" in run.out


@pytest.mark.usefixtures("short_lock_wait")
def test_checkpoint_kept_busy_by_a_reader_exits_1(cli: CliRunner, demo_db: Path) -> None:
    with closing_connection(connect(demo_db)) as writer, \
            closing_connection(connect(demo_db)) as reader:
        writer.execute("UPDATE task_queue SET priority = priority + 1")
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM task_queue").fetchone()
        writer.execute("UPDATE task_queue SET priority = priority + 1")
        passive = cli("--db", demo_db, "--json", "checkpoint", "--mode", "passive")
        run = cli("--db", demo_db, "--json", "checkpoint", "--mode", "restart")
        reader.execute("COMMIT")
    assert passive.code == 0  # PASSIVE never waits and never counts as failed
    assert passive.data["checkpointed_frames"] < passive.data["log_frames"]
    assert run.code == 1  # RESTART waited the busy timeout for the reader, then gave up
    assert run.data["ok"] is False
    assert run.data["busy"] == 1
    assert "retry" in _one_error_line(run)


def test_vacuum_analyze_optimize(cli: CliRunner, demo_db: Path) -> None:
    with closing_connection(connect(demo_db)) as connection:
        connection.execute("DELETE FROM task_queue WHERE id % 2 = 0")
    run = cli("--db", demo_db, "--json", "vacuum")
    assert run.code == 0
    assert run.data["size_before"] > run.data["size_after"]
    assert run.data["freed_bytes"] > 0 and run.data["seconds"] >= 0
    run = cli("--db", demo_db, "--json", "analyze", "--table", "task_queue")
    assert run.code == 0
    assert run.data["table"] == "task_queue"
    assert {"size_before", "size_after", "seconds"} <= run.data.keys()
    run = cli("--db", demo_db, "--json", "optimize", "--full")
    assert run.code == 0
    assert run.data["analyzed"] is True and run.data["vacuumed"] is True
    assert run.data["size_before"] > 0 and run.data["size_after"] > 0
    human = cli("--db", demo_db, "vacuum")
    assert human.code == 0
    assert "Size before" in human.out and "KB" in human.out


def test_analyze_unknown_table_is_bad_usage(cli: CliRunner, demo_db: Path) -> None:
    run = cli("--db", demo_db, "--json", "analyze", "--table", "nope")
    assert run.code == 2
    assert "task_queue" in run.data["error"]


def test_integrity_clean_and_damaged(cli: CliRunner, demo_db: Path, tmp_path: Path) -> None:
    run = cli("--db", demo_db, "--json", "integrity")
    assert run.code == 0
    assert run.data == {"ok": True, "path": str(demo_db), "quick": False, "problem_count": 0,
                        "problems": []}
    damaged = tmp_path / "damaged.db"
    with closing_connection(sqlite3.connect(damaged)) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        connection.execute("CREATE INDEX t_v ON t (v)")
        connection.executemany("INSERT INTO t (v) VALUES (?)",
                               [(f"value {n:06d}",) for n in range(3000)])
        connection.commit()
    data = bytearray(damaged.read_bytes())
    page = 4096
    index_root = 3  # the index was created second: its root is page 3
    data[(index_root - 1) * page + 8:(index_root - 1) * page + 400] = b"\xff" * 392
    damaged.write_bytes(bytes(data))
    run = cli("--db", damaged, "--json", "integrity")
    assert run.code == 1
    assert run.data["ok"] is False and run.data["problems"]
    assert "restore" in _one_error_line(run)


# -- leases --------------------------------------------------------------------------------

def _stale_count(path: Path) -> int:
    with closing_connection(connect(path)) as connection:
        return connection.execute(
            "SELECT count(*) FROM task_queue WHERE status = 'leased' "
            "AND lease_until_utc < datetime('now', '-300 seconds')").fetchone()[0]


def test_leases_find_preview_and_requeue(cli: CliRunner, demo_db: Path) -> None:
    stale = _stale_count(demo_db)
    assert stale >= 3
    run = cli("--db", demo_db, "--json", "leases")
    assert run.code == 0
    assert run.data["stale"] == stale == len(run.data["task_ids"])
    assert run.data["requeued"] == 0 and run.data["dead_lettered"] == 0
    run = cli("--db", demo_db, "--json", "leases", "--requeue", "--dry-run")
    assert run.code == 0
    assert run.data["requeued"] + run.data["dead_lettered"] == stale
    assert _stale_count(demo_db) == stale
    run = cli("--db", demo_db, "--json", "leases", "--requeue", "--timeout", "300")
    assert run.code == 0
    assert run.data["stale"] == stale and run.data["requeued"] == stale
    assert _stale_count(demo_db) == 0
    with closing_connection(connect(demo_db)) as connection:
        queued = {row[0] for row in connection.execute(
            "SELECT id FROM task_queue WHERE status = 'queued' AND attempts >= 1")}
    assert set(run.data["task_ids"]) <= queued
    human = cli("--db", demo_db, "leases")
    assert human.code == 0
    assert "0 stale lease(s) found." in human.out


def test_leases_on_a_non_queue_file_is_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with closing_connection(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    run = cli("--db", other, "--json", "leases")
    assert run.code == 2
    assert run.data["kind"] == "not_a_queue"
    assert "not a PrismQ queue" in _one_error_line(run)
    assert cli("--db", other, "integrity").code == 0  # plain SQLite maintenance still works


def test_requeue_lands_in_the_activity_log(cli: CliRunner, demo_db: Path) -> None:
    assert cli("--db", demo_db, "leases", "--requeue").code == 0
    assert cli("--db", demo_db, "stats").code == 0
    entries = ActivityLog().read()
    assert [entry.action for entry in entries] == ["cli leases"]
    assert entries[0].result == "succeeded"
    assert entries[0].database == str(demo_db)


# -- demo ----------------------------------------------------------------------------------

def test_demo_creates_and_refuses_a_real_queue(cli: CliRunner, tmp_path: Path,
                                               queue_db: Path) -> None:
    target = tmp_path / "my demo" / "queue.db"
    run = cli("--json", "demo", "--tasks", "120", "--path", target)
    assert run.code == 0
    assert run.data == {"ok": True, "path": str(target), "tasks": 120}
    assert is_demo_queue(target)
    run = cli("--json", "demo", "--tasks", "10", "--path", queue_db)
    assert run.code == 2
    assert "not a demo queue" in run.data["error"]
    assert not is_demo_queue(queue_db)
    run = cli("demo", "--tasks", "10", "--path", queue_db, "--force")
    assert run.code == 0
    assert is_demo_queue(queue_db)


def test_demo_default_path_is_in_the_user_data_folder(cli: CliRunner,
                                                      isolated_dirs: Path) -> None:
    run = cli("--json", "demo", "--tasks", "5")
    assert run.code == 0
    assert Path(run.data["path"]).is_relative_to(isolated_dirs)


@pytest.mark.slow
def test_demo_runs_workers_for_a_while(cli: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "demo.db"
    run = cli("--json", "demo", "--tasks", "200", "--workers", "2", "--seconds", "1",
              "--path", target)
    assert run.code == 0
    assert run.data["workers"] == 2
    assert run.data["stats"]["claimed"] >= 1
    assert run.data["stats"]["errors"] == 0
    with closing_connection(connect(target)) as connection:
        assert sum(task_counts(connection).values()) >= 200


# -- failures that are bugs, Ctrl+C --------------------------------------------------------

def test_a_bug_is_one_line_with_the_debug_hint(cli: CliRunner, demo_db: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(context: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(DECLARED, "stats", dataclasses.replace(DECLARED["stats"], run=broken))
    run = cli("--db", demo_db, "--json", "stats")
    assert run.code == 1
    assert run.data["kind"] == "bug"
    assert "--debug" in _one_error_line(run)
    run = cli("--db", demo_db, "--debug", "stats")
    assert run.code == 1
    assert "Traceback" in run.err and "ZeroDivisionError" in run.err


def test_first_ctrl_c_asks_to_cancel_and_the_second_stops() -> None:
    before = signal.getsignal(signal.SIGINT)
    cancel = CancelOnInterrupt()
    with cancel:
        assert not cancel()
        signal.raise_signal(signal.SIGINT)
        assert cancel()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_passive_checkpoint_meeting_another_checkpoint_is_not_a_failure(
        cli: CliRunner, demo_db: Path) -> None:
    """A worker's own checkpoint holding the lock must not fail a scheduled PASSIVE run."""
    writer = connect(demo_db)
    writer.execute("UPDATE task_queue SET priority = priority + 1")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE task_queue SET priority = priority + 1")
    waiting_checkpoint = connect(demo_db, busy_timeout_ms=60_000)
    done = threading.Event()

    def full_checkpoint() -> None:  # holds the checkpoint lock while it waits for the writer
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # busy at once when the probe below held the checkpoint lock: try again
            if waiting_checkpoint.execute("PRAGMA wal_checkpoint(FULL)").fetchone()[0] == 0:
                done.set()
                return

    thread = threading.Thread(target=full_checkpoint)
    thread.start()
    try:
        with closing_connection(connect(demo_db)) as probe:
            deadline = time.monotonic() + 30
            while probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0] != 1:
                assert time.monotonic() < deadline, "the FULL checkpoint never took its lock"
                done.wait(0.01)
        run = cli("--db", demo_db, "--json", "checkpoint", "--mode", "passive")
    finally:
        writer.execute("COMMIT")
        thread.join(60)
        writer.close()
        waiting_checkpoint.close()
    assert done.is_set()
    assert run.code == 0, run.err
    assert run.data["ok"] is True and run.data["mode"] == "PASSIVE"
