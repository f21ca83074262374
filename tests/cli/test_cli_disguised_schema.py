"""queue-admin-cli verify and restore on a PrismQ backup whose SQL is disguised.

The backup's ``task_queue`` is PrismQ's, except that a no-break space (U+00A0) stands before
``datetime`` in the default of ``run_after_utc``. Read as text with Python's idea of
whitespace, it is PrismQ's table; SQLite counts only ASCII spaces as spaces, so to it the
default calls a function named "\\u00a0datetime", which no SQLite has: once restored, every
task PrismQ's producer enqueues fails. Neither ``verify`` nor ``restore --yes`` may accept it,
and a refused restore leaves the scratch queue as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from _cli_helpers import Run
from prismq import add_prismq_tasks, make_prismq_queue, prismq_connect

from queue_admin_gui.core.database import closing_connection

CliRunner = Callable[..., Run]
TASKS = 8
ORIGINAL_DEFAULT = "DEFAULT (datetime('now')),\n  lease"
DISGUISED_DEFAULT = "DEFAULT (\u00a0datetime('now')),\n  lease"


def _count(path: Path) -> int:
    with closing_connection(sqlite3.connect(path)) as connection:
        return int(connection.execute("SELECT count(*) FROM task_queue").fetchone()[0])


@pytest.fixture
def disguised(cli: CliRunner, tmp_path: Path) -> Path:
    """A tool-made backup of a PrismQ queue, its default disguised, without a manifest."""
    source = make_prismq_queue(tmp_path / "source" / "queue.db", tasks=TASKS)
    made = cli("--db", source, "--json", "backup", "--dir", tmp_path / "backups")
    assert made.code == 0, made.err
    backup = Path(made.data["path"])
    with closing_connection(sqlite3.connect(backup, isolation_level=None)) as connection:
        sql = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'task_queue'"
                                 ).fetchone()[0]
        assert sql.count(ORIGINAL_DEFAULT) == 1
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'task_queue'",
                           (sql.replace(ORIGINAL_DEFAULT, DISGUISED_DEFAULT),))
    for manifest in backup.parent.glob("*.json"):
        manifest.unlink()  # an older backup, as far as verify can tell
    return backup


def test_prismq_cannot_enqueue_into_the_disguised_backup(disguised: Path,
                                                          tmp_path: Path) -> None:
    trial = tmp_path / "trial.db"
    trial.write_bytes(disguised.read_bytes())
    with closing_connection(prismq_connect(trial)) as producer, pytest.raises(
            sqlite3.OperationalError, match="unknown function"):
        add_prismq_tasks(producer, 1, key_prefix="new")


def test_verify_refuses_the_disguised_backup(cli: CliRunner, disguised: Path,
                                             tmp_path: Path) -> None:
    scratch = make_prismq_queue(tmp_path / "scratch" / "queue.db", tasks=2)
    for argv in (("verify", disguised), ("--db", scratch, "verify", disguised)):
        run = cli("--json", *argv)
        assert run.code == 1, run.out
        assert run.data["ok"] is False and run.data["kind"] == "not_a_queue"
        assert any("'task_queue'" in problem for problem in run.data["problems"])


def test_restore_refuses_the_disguised_backup_and_keeps_the_queue(
        cli: CliRunner, disguised: Path, tmp_path: Path) -> None:
    scratch = make_prismq_queue(tmp_path / "scratch" / "queue.db", tasks=2)
    run = cli("--db", scratch, "--json", "restore", disguised, "--yes")
    assert run.code != 0, run.out
    assert run.data["ok"] is False and run.data["kind"] == "not_a_queue", run.out
    assert _count(scratch) == 2
    with closing_connection(prismq_connect(scratch)) as producer:
        add_prismq_tasks(producer, 1, key_prefix="after")
    assert _count(scratch) == 3
