"""queue-admin-cli leases: only abandoned tasks are stale; live workers' leases are listed apart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from _cli_helpers import Run

from queue_admin_gui.core.database import closing_connection, connect

CliRunner = Callable[..., Run]


def add_live_worker_with_an_expired_lease(path: Path) -> int:
    """A worker that heartbeat a second ago, holding a task whose lease ran out an hour ago."""
    with closing_connection(connect(path)) as connection:
        connection.execute("INSERT INTO workers (worker_id, capabilities, heartbeat_utc) "
                           "VALUES ('renewal-bug', '{}', datetime('now', '-1 second'))")
        cursor = connection.execute(
            "INSERT INTO task_queue (type, payload, status, attempts, lease_until_utc, "
            "reserved_at_utc, locked_by) VALUES ('render', '{}', 'leased', 1, "
            "datetime('now', '-1 hour'), datetime('now', '-2 hours'), 'renewal-bug')")
        return int(cursor.lastrowid or 0)


def status_of(path: Path, task_id: int) -> tuple[str, int, str | None]:
    with closing_connection(connect(path)) as connection:
        row = connection.execute("SELECT status, attempts, locked_by FROM task_queue "
                                 "WHERE id = ?", (task_id,)).fetchone()
        return str(row[0]), int(row[1]), row[2]


def test_an_expired_lease_of_a_live_worker_is_listed_apart_and_never_requeued(
        cli: CliRunner, demo_db: Path) -> None:
    alive = add_live_worker_with_an_expired_lease(demo_db)

    listed = cli("--db", demo_db, "--json", "leases")
    assert listed.code == 0
    assert alive not in listed.data["task_ids"] and listed.data["stale"] >= 3
    assert listed.data["expired_worker_alive_ids"] == [alive]
    assert listed.data["expired_worker_alive"] == 1

    human = cli("--db", demo_db, "leases")
    assert "1 more lease(s) expired while the worker still heartbeats" in human.out
    assert any(line.split()[:3] == ["Expired,", "worker", "alive"] and str(alive) in line
               for line in human.out.splitlines())

    preview = cli("--db", demo_db, "--json", "leases", "--requeue", "--dry-run")
    assert alive not in preview.data["task_ids"]
    assert preview.data["expired_worker_alive_ids"] == [alive]
    done = cli("--db", demo_db, "--json", "leases", "--requeue")
    assert done.code == 0 and done.data["stale"] == listed.data["stale"]
    assert alive not in done.data["task_ids"]
    assert done.data["expired_worker_alive_ids"] == [alive]
    assert status_of(demo_db, alive) == ("leased", 1, "renewal-bug")
