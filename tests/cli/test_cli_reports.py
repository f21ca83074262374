"""queue-admin-cli says how far an operation got: a count of problems, a checkpoint left short."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from _cli_helpers import Run

from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.database import closing_connection, connect

CliRunner = Callable[..., Run]


def damage_an_index(path: Path) -> None:
    """Overwrite half of one index page: the table reads, the index disagrees with it."""
    with closing_connection(connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = connection.execute("SELECT rootpage FROM sqlite_master "
                                  "WHERE name = 'ix_task_type_status'").fetchone()[0]
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size + page_size // 2)
        handle.write(b"\x07" * (page_size // 2))


def test_quick_check_reports_how_many_problems_it_found(cli: CliRunner,
                                                        demo_db: Path) -> None:
    damage_an_index(demo_db)
    run = cli("--db", demo_db, "--json", "integrity", "--quick")
    assert run.code == 1
    count = run.data["problem_count"]
    assert count == len(run.data["problems"]) > 0
    noun = "problem" if count == 1 else "problems"
    human = cli("--db", demo_db, "integrity", "--quick")
    assert human.out.startswith(f"Quick check FAILED: found {count} {noun}:")
    assert f"found {count} {noun}" in human.err
    assert [entry.result for entry in ActivityLog().read()] == [f"found {count} {noun}"] * 2


def test_a_checkpoint_a_reader_kept_short_did_not_finish(cli: CliRunner,
                                                         demo_db: Path) -> None:
    with closing_connection(connect(demo_db)) as writer, \
            closing_connection(sqlite3.connect(demo_db, isolation_level=None)) as reader:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM task_queue").fetchone()
        writer.execute("UPDATE task_queue SET priority = priority + 1")
        run = cli("--db", demo_db, "--json", "checkpoint", "--mode", "passive")
        human = cli("--db", demo_db, "checkpoint", "--mode", "passive")
        reader.execute("COMMIT")
    assert run.code == 0  # PASSIVE never waits, so being kept short is not a failure...
    assert run.data["finished"] is False
    assert run.data["checkpointed_frames"] < run.data["log_frames"]
    assert human.out.startswith("Checkpoint (PASSIVE) did not finish: ")
    # ... but it is never recorded as a success.
    assert [entry.result for entry in ActivityLog().read()] == ["did not finish"] * 2
