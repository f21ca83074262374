"""queue-admin-cli backup, verify, list-backups, prune and restore, in-process."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from _cli_helpers import Run

from queue_admin_gui.cli.output import ProgressLine
from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.database import closing_connection, connect

CliRunner = Callable[..., Run]


def _backup(cli: CliRunner, db: Path, folder: Path, *extra: str) -> dict[str, object]:
    run = cli("--db", db, "--json", "backup", "--dir", folder, *extra)
    assert run.code == 0, run.err
    return run.data


def _task_total(path: Path) -> int:
    with closing_connection(connect(path)) as connection:
        return int(connection.execute("SELECT count(*) FROM task_queue").fetchone()[0])


def test_backup_json_fields_and_file(cli: CliRunner, demo_db: Path, backup_dir: Path) -> None:
    data = _backup(cli, demo_db, backup_dir, "--name", "nightly")
    assert data["ok"] is True
    for key in ("path", "size_bytes", "page_count", "seconds", "sha256", "task_counts"):
        assert key in data, key
    path = Path(str(data["path"]))
    assert path.parent == backup_dir
    assert "nightly" in path.name
    assert path.stat().st_size == data["size_bytes"]
    assert sum(data["task_counts"].values()) == 300  # type: ignore[attr-defined]
    assert len(str(data["sha256"])) == 64
    assert ActivityLog().read()[-1].action == "cli backup"


def test_backup_human_output(cli: CliRunner, demo_db: Path, backup_dir: Path) -> None:
    run = cli("--db", demo_db, "backup", "--dir", backup_dir)
    assert run.code == 0
    assert run.out.startswith("Backup written and verified.")
    assert "KB" in run.out and "SHA-256" in run.out
    assert run.err == ""  # no progress when stderr is not a terminal


def test_backup_keep_prunes_after_success(cli: CliRunner, demo_db: Path,
                                          backup_dir: Path) -> None:
    made = [_backup(cli, demo_db, backup_dir, "--keep", "2") for _ in range(3)]
    assert made[-1]["pruned"] == [made[0]["path"]]
    run = cli("--json", "list-backups", "--dir", backup_dir)
    assert run.code == 0
    assert [item["path"] for item in run.data["backups"]] == [made[2]["path"], made[1]["path"]]


def test_backup_name_with_path_separators_is_bad_usage(cli: CliRunner, demo_db: Path,
                                                       backup_dir: Path, tmp_path: Path) -> None:
    run = cli("--db", demo_db, "--json", "backup", "--dir", backup_dir, "--name", "../escape")
    assert run.code == 2
    assert run.data["kind"] == "invalid"
    assert not list(backup_dir.glob("*.db")) and not list(tmp_path.glob("*escape*"))


def test_list_backups_newest_first_with_fields(cli: CliRunner, demo_db: Path,
                                               backup_dir: Path) -> None:
    first = _backup(cli, demo_db, backup_dir)
    second = _backup(cli, demo_db, backup_dir)
    run = cli("--json", "list-backups", "--dir", backup_dir)
    backups = run.data["backups"]
    assert [item["path"] for item in backups] == [second["path"], first["path"]]
    for item in backups:
        assert set(item) >= {"path", "created_at", "size_bytes", "verified"}
        assert item["verified"] is True
    human = cli("list-backups", "--dir", backup_dir)
    assert human.out.splitlines()[0].startswith("2 backup(s) in")
    assert Path(str(second["path"])).name in human.out.splitlines()[1]


def test_list_backups_of_an_empty_folder(cli: CliRunner, backup_dir: Path) -> None:
    run = cli("--json", "list-backups", "--dir", backup_dir)
    assert run.code == 0
    assert run.data["backups"] == []


def test_prune(cli: CliRunner, demo_db: Path, backup_dir: Path) -> None:
    made = [_backup(cli, demo_db, backup_dir)["path"] for _ in range(3)]
    run = cli("--json", "prune", "--keep", "1", "--dir", backup_dir)
    assert run.code == 0
    assert sorted(run.data["deleted"]) == sorted(made[:2])
    assert [path for path in made if Path(str(path)).exists()] == [made[2]]


def test_verify_a_good_backup(cli: CliRunner, demo_db: Path, backup_dir: Path) -> None:
    path = _backup(cli, demo_db, backup_dir)["path"]
    run = cli("--json", "verify", path)
    assert run.code == 0
    assert run.data["ok"] is True and run.data["problems"] == []
    human = cli("verify", path)
    assert human.code == 0
    assert "intact" in human.out


def test_verify_a_corrupt_backup_exits_1(cli: CliRunner, demo_db: Path,
                                         backup_dir: Path) -> None:
    path = Path(str(_backup(cli, demo_db, backup_dir)["path"]))
    content = bytearray(path.read_bytes())
    content[4096 * 3 + 100:4096 * 3 + 600] = os.urandom(500)
    path.write_bytes(bytes(content))
    run = cli("--json", "verify", path)
    assert run.code == 1
    assert run.data["ok"] is False
    assert run.data["problems"]
    assert run.data["error"].startswith(f"The backup '{path}' failed verification")
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("queue-admin-cli: error: ")
    human = cli("verify", path)
    assert human.code == 1
    assert "NOT usable" in human.out


def test_verify_random_bytes_and_a_missing_file(cli: CliRunner, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    run = cli("--json", "verify", junk)
    assert run.code == 1
    assert "not an SQLite database" in run.data["problems"][0]
    run = cli("--json", "verify", tmp_path / "missing.db")
    assert run.code == 2
    assert run.data["kind"] == "not_found"


def test_restore_without_yes_is_refused(cli: CliRunner, demo_db: Path,
                                        backup_dir: Path) -> None:
    path = _backup(cli, demo_db, backup_dir)["path"]
    with closing_connection(connect(demo_db)) as connection:
        connection.execute("DELETE FROM task_queue WHERE id > 10")
    run = cli("--db", demo_db, "--json", "restore", path)
    assert run.code == 2
    assert "--yes" in run.data["error"]
    assert "--yes" in run.err
    assert _task_total(demo_db) == 10


def _silence_workers(db: Path) -> None:
    """Make the demo's workers look stopped: last heartbeat an hour ago."""
    with closing_connection(connect(db)) as connection:
        connection.execute("UPDATE workers SET heartbeat_utc = datetime('now', '-1 hour')")


@pytest.mark.slow
def test_restore_is_refused_while_workers_heartbeat(cli: CliRunner, demo_db: Path,
                                                    backup_dir: Path) -> None:
    path = _backup(cli, demo_db, backup_dir)["path"]
    with closing_connection(connect(demo_db)) as connection:
        connection.execute("DELETE FROM task_queue WHERE id > 10")
        connection.execute("UPDATE workers SET heartbeat_utc = datetime('now')")
        names = [row[0] for row in connection.execute("SELECT worker_id FROM workers")]
    run = cli("--db", demo_db, "--json", "restore", path, "--yes")
    assert run.code == 1
    assert run.data["kind"] == "workers_active"
    assert names and all(name in run.data["error"] for name in names[:5])
    assert "twice" in run.data["error"]
    assert _task_total(demo_db) == 10
    assert not (backup_dir / "pre-restore").exists() or not any(
        (backup_dir / "pre-restore").iterdir())
    run = cli("--db", demo_db, "--json", "restore", path, "--yes", "--allow-live-workers")
    assert run.code == 0, run.err
    assert _task_total(demo_db) == 300


@pytest.mark.slow
def test_restore_with_yes_brings_the_backup_back(cli: CliRunner, demo_db: Path,
                                                 backup_dir: Path) -> None:
    path = _backup(cli, demo_db, backup_dir)["path"]
    with closing_connection(connect(demo_db)) as connection:
        connection.execute("DELETE FROM task_queue WHERE id > 10")
    _silence_workers(demo_db)
    run = cli("--db", demo_db, "--json", "restore", path, "--yes")
    assert run.code == 0, run.err
    assert run.data["check_problems"] == []
    assert run.data["counters_kept"]["task_queue"] >= 300
    assert run.data["restored_from"] == path
    assert run.data["seconds"] >= 0
    safety = Path(run.data["safety_backup"])
    assert safety.is_file()
    assert _task_total(demo_db) == 300
    assert _task_total(safety) == 10  # the state just before the restore was kept


@pytest.mark.slow
def test_restore_without_safety_backup(cli: CliRunner, demo_db: Path,
                                       backup_dir: Path) -> None:
    path = _backup(cli, demo_db, backup_dir)["path"]
    _silence_workers(demo_db)
    run = cli("--db", demo_db, "--json", "restore", path, "--yes", "--no-safety-backup")
    assert run.code == 0, run.err
    assert run.data["safety_backup"] is None
    _silence_workers(demo_db)  # the backup brought back the heartbeats it held
    human = cli("--db", demo_db, "restore", path, "--yes")
    assert human.code == 0
    assert human.out.startswith("Database restored and checked.")


def test_restore_of_a_corrupt_backup_changes_nothing(cli: CliRunner, demo_db: Path,
                                                     backup_dir: Path) -> None:
    path = Path(str(_backup(cli, demo_db, backup_dir)["path"]))
    path.write_bytes(path.read_bytes()[:5000])
    with closing_connection(connect(demo_db)) as connection:
        connection.execute("DELETE FROM task_queue WHERE id > 20")
    run = cli("--db", demo_db, "--json", "restore", path, "--yes")
    assert run.code in (1, 2)
    assert run.data["ok"] is False
    assert "verification" in run.data["error"]
    assert _task_total(demo_db) == 20


def test_progress_is_shown_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet = io.StringIO()
    ProgressLine(enabled=True, stream=quiet)(1, 2, "Copying")
    assert quiet.getvalue() == ""
    terminal = Terminal()
    line = ProgressLine(enabled=True, stream=terminal)
    line(1, 4, "Copying")
    line(1, 4, "Copying")
    line(4, 4, "Copying")
    line.clear()
    assert terminal.getvalue().count("Copying") == 2
    assert "Copying: 25%" in terminal.getvalue() and "Copying: 100%" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r")
    disabled = Terminal()
    ProgressLine(enabled=False, stream=disabled)(1, 2, "Copying")  # --json
    assert disabled.getvalue() == ""


def test_restore_onto_a_machine_without_the_database(cli: CliRunner, demo_db: Path,
                                                     backup_dir: Path, tmp_path: Path) -> None:
    path = _backup(cli, demo_db, backup_dir)["path"]
    fresh = tmp_path / "new machine" / "queue.db"
    run = cli("--db", fresh, "--json", "restore", path, "--yes")
    assert run.code == 0, run.err
    assert run.data["target"] == str(fresh)
    assert run.data["safety_backup"] is None  # nothing to keep
    assert _task_total(fresh) == 300


def test_a_second_ctrl_c_never_cuts_a_restore_short(cli: CliRunner, demo_db: Path,
                                                    backup_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl+C pressed twice while the restore writes: it stops cleanly, never half-reported."""
    import signal

    from queue_admin_gui import cli as cli_module

    path = _backup(cli, demo_db, backup_dir)["path"]
    _silence_workers(demo_db)
    with closing_connection(connect(demo_db)) as connection:
        connection.execute("DELETE FROM task_queue WHERE id > 10")
    presses: list[str] = []
    real_enter = cli_module.CancelOnInterrupt.__enter__

    def enter(self):  # type: ignore[no-untyped-def]
        entered = real_enter(self)
        handler = signal.getsignal(signal.SIGINT)
        handler(signal.SIGINT, None)
        handler(signal.SIGINT, None)  # the second press would raise KeyboardInterrupt
        presses.append("twice")
        return entered

    monkeypatch.setattr(cli_module.CancelOnInterrupt, "__enter__", enter)
    run = cli("--db", demo_db, "--json", "restore", path, "--yes")
    assert presses == ["twice"]
    assert run.code == 1
    assert run.data["kind"] == "cancelled"
    assert "nothing was changed" in run.data["error"]
    assert _task_total(demo_db) == 10


_BRIEF_HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
connection.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))  # another program's long transaction
connection.execute("COMMIT")
"""


@pytest.mark.slow
def test_restore_waits_for_another_programs_lock_like_the_wizard(
        cli: CliRunner, demo_db: Path, backup_dir: Path) -> None:
    """The CLI restores through the wizard's path: it waits out a lock, then checks."""
    import subprocess
    import sys

    path = _backup(cli, demo_db, backup_dir)["path"]
    _silence_workers(demo_db)
    with closing_connection(connect(demo_db)) as connection:
        connection.execute("DELETE FROM task_queue WHERE id > 10")
    holder = subprocess.Popen([sys.executable, "-c", _BRIEF_HOLDER, str(demo_db), "30"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        refused = cli("--db", demo_db, "--json", "restore", path, "--yes")
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    # A program with the file open is a sign of workers at work: refused, naming it.
    assert refused.code == 1 and refused.data["kind"] == "workers_active"
    assert f"(PID {holder.pid})" in refused.data["error"]
    assert _task_total(demo_db) == 10
    holder = subprocess.Popen([sys.executable, "-c", _BRIEF_HOLDER, str(demo_db), "1.5"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        run = cli("--db", demo_db, "--json", "restore", path, "--yes", "--wait", "60")
    finally:
        holder.communicate(timeout=60)
    assert run.code == 0, run.err
    assert run.data["check_problems"] == []
    assert _task_total(demo_db) == 300
