"""``queue-admin-cli restore --keep-newer-tasks``: the tasks created after the backup stay."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from _cli_helpers import Run
from prismq import add_prismq_tasks, make_prismq_queue, prismq_connect

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.database import closing_connection

# Nothing here tells workers at work: the gate watches for commits a moment, not a second.
pytestmark = pytest.mark.usefixtures("short_commit_watch")

CliRunner = Callable[..., Run]


def ids(path: Path) -> list[int]:
    with closing_connection(sqlite3.connect(path)) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM task_queue ORDER BY id")]


def queue_with_newer_tasks(tmp_path: Path) -> tuple[Path, Path]:
    live = make_prismq_queue(tmp_path / "queue dir" / "queue.db", 12, "old")
    backup = QueueBackup(live, tmp_path / "backups").create_backup()
    with closing_connection(prismq_connect(live)) as connection:
        connection.execute("DELETE FROM task_queue WHERE id <= 4")
        connection.commit()
        add_prismq_tasks(connection, 5, task_type="new", key_prefix="new")
        connection.execute("INSERT INTO task_queue(type, payload, idempotency_key) "
                           "VALUES ('again', '{}', 'k-2')")
        connection.commit()
    return live, backup


def test_json_names_the_carried_tasks_and_the_conflict(cli: CliRunner, tmp_path: Path) -> None:
    live, backup = queue_with_newer_tasks(tmp_path)
    run = cli("--db", live, "--json", "restore", backup, "--yes", "--keep-newer-tasks")
    assert run.code == 0, run.err
    data = run.data
    assert data["carried_tasks"] == 5 and data["carried_above_id"] == 12
    assert data["carried_task_ids"] == [13, 14, 15, 16, 17]
    assert data["carry_conflicts"] == [{"id": 18, "type": "again", "idempotency_key": "k-2",
                                        "restored_task_id": 2}]
    assert data["carry_problem"] is None
    assert ids(live) == [*range(1, 18)]


def test_human_output_says_how_many_were_kept(cli: CliRunner, tmp_path: Path) -> None:
    live, backup = queue_with_newer_tasks(tmp_path)
    run = cli("--db", live, "restore", backup, "--yes", "--keep-newer-tasks")
    assert run.code == 0, run.err
    assert any(line.split()[:2] == ["Carried", "tasks"] and line.split()[-1] == "5"
               for line in run.out.splitlines()), run.out
    assert "task 18 (again) was not carried: its idempotency key 'k-2' belongs to restored " \
        "task 2" in run.out


def test_without_the_option_no_carry_field_and_the_newer_tasks_go(
        cli: CliRunner, tmp_path: Path) -> None:
    live, backup = queue_with_newer_tasks(tmp_path)
    run = cli("--db", live, "--json", "restore", backup, "--yes")
    assert run.code == 0, run.err
    assert "carried_tasks" not in run.data
    assert ids(live) == [*range(1, 13)]
