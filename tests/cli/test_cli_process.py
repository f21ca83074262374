"""queue-admin-cli as a real process, the way Task Scheduler and scripts run it."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _cli_helpers import PROJECT_ROOT, Run, cli_command, cli_env

from queue_admin_gui import __version__
from queue_admin_gui.core.database import closing_connection, connect, open_read_only
from queue_admin_gui.core.errors import QueueAdminError

ProcessRunner = Callable[..., Run]
DEADLINE_SECONDS = 60.0


def test_version_through_python_dash_m(cli_process: ProcessRunner) -> None:
    run = cli_process("--version")
    assert run.code == 0
    assert run.out.strip() == f"queue-admin-cli {__version__}"


def test_entry_point_is_declared() -> None:
    text = (PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'queue-admin-cli = "queue_admin_gui.cli:main"' in text


@pytest.mark.slow
def test_backup_then_verify_as_a_scheduled_task_would(cli_process: ProcessRunner,
                                                      demo_db: Path, backup_dir: Path) -> None:
    run = cli_process("--db", demo_db, "--json", "backup", "--dir", backup_dir, "--keep", "3")
    assert run.code == 0, run.err
    made = json.loads(run.out)
    assert made["ok"] is True and Path(made["path"]).is_file()
    assert run.err == ""
    verified = cli_process("--json", "verify", made["path"])
    assert verified.code == 0
    assert json.loads(verified.out) == {**json.loads(verified.out), "ok": True, "problems": []}


def test_not_a_queue_is_exit_2(cli_process: ProcessRunner, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with closing_connection(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    run = cli_process("--db", other, "--json", "leases")
    assert run.code == 2
    assert json.loads(run.out)["kind"] == "not_a_queue"
    assert run.err.count("\n") == 1


def test_missing_database_is_exit_2(cli_process: ProcessRunner, tmp_path: Path) -> None:
    run = cli_process("--db", tmp_path / "missing.db", "stats")
    assert run.code == 2
    assert run.out == ""
    assert run.err.startswith("queue-admin-cli: error: ") and "missing.db" in run.err


@pytest.mark.slow
@pytest.mark.usefixtures("short_lock_wait")
def test_locked_database_is_exit_1_with_a_clear_sentence(cli_process: ProcessRunner,
                                                         demo_db: Path,
                                                         backup_dir: Path) -> None:
    with closing_connection(connect(demo_db)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE task_queue SET priority = 1 WHERE id = 1")
        backup = cli_process("--db", demo_db, "--json", "backup", "--dir", backup_dir)
        vacuum = cli_process("--db", demo_db, "--json", "vacuum")
        writer.execute("ROLLBACK")
    assert backup.code == 0, backup.err  # a backup reads a snapshot: writers do not block it
    assert vacuum.code == 1
    result = json.loads(vacuum.out)
    assert result["ok"] is False and result["kind"] == "locked"
    assert "locked by another program" in result["error"]
    assert vacuum.err.strip() == f"queue-admin-cli: error: {result['error']}"


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT, as Ctrl+C does")
def test_ctrl_c_stops_the_demo_workers_cleanly(demo_db: Path) -> None:
    process = subprocess.Popen(
        cli_command("--json", "demo", "--path", demo_db, "--force", "--tasks", "200",
                    "--workers", "2", "--seconds", "600"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not _demo_workers_registered(demo_db):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the demo workers never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    result = json.loads(out)
    assert result["interrupted"] is True
    assert result["stats"]["errors"] == 0


def _demo_workers_registered(path: Path) -> bool:
    """True once the simulated workers (ids demo-<hex>) have written their heartbeat."""
    try:
        with closing_connection(open_read_only(path)) as connection:
            return connection.execute(
                "SELECT count(*) FROM workers WHERE worker_id NOT LIKE 'demo-worker-%' "
                "AND worker_id NOT LIKE 'demo-lost-%'").fetchone()[0] >= 2
    except (sqlite3.Error, QueueAdminError):
        return False  # the file is being replaced right now
