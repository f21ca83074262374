"""``rescue`` fed junk from outside: bad usage is exit 2 with one sentence, never a crash."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prismq import add_prismq_tasks, make_prismq_queue, prismq_connect
from rescue_scenario import make_incident, task_rows

from queue_admin_gui.core.archive import Archiver


@pytest.mark.parametrize("junk", ["99999999999999999999999", "9223372036854775808"])
def test_an_id_too_large_for_a_task_id_is_bad_usage(cli, tmp_path: Path, junk: str) -> None:
    incident = make_incident(tmp_path)
    live = incident["live"]
    pre = task_rows(live)
    ids = tmp_path / "ids.txt"
    ids.write_text(f"12\n{junk}\n", encoding="utf-8")
    run = cli("--db", live, "rescue", "--backup", incident["backup"], "--ids", ids,
              "--yes", "--dir", tmp_path / "rescue backups")
    assert run.code == 2, run.out + run.err
    assert "Line 2 of the ids file" in run.err and "unexpectedly" not in run.err
    assert task_rows(live) == pre


def test_diff_and_rescue_accept_at_latest_and_earliest_as_restore_does(cli, tmp_path: Path
                                                                       ) -> None:
    live = make_prismq_queue(tmp_path / "queue.db")
    connection = prismq_connect(live)
    add_prismq_tasks(connection, 10, "alpha", key_prefix="a")
    folder = tmp_path / "archive"
    archiver = Archiver(live, folder)
    archiver.start()
    try:
        deadline = time.monotonic() + 60
        while archiver.status().generation is None or archiver.status().snapshot_pending:
            assert time.monotonic() < deadline, "no restorable generation"
            time.sleep(0.05)
        connection.execute("DELETE FROM task_queue WHERE id IN (1, 2, 3)")
        connection.commit()
        while archiver.status().transactions < 1:
            assert time.monotonic() < deadline, "the delete was not archived"
            time.sleep(0.05)
    finally:
        archiver.stop()
    connection.execute("UPDATE task_queue SET status = 'failed' WHERE id = 4")
    connection.commit()
    connection.close()
    latest = cli("--db", live, "diff", "--at", "latest", "--archive", folder, "--json")
    assert latest.code == 0, latest.err
    assert (latest.data["removed"], latest.data["changed"]) == (0, 1)
    earliest = cli("--db", live, "rescue", "--at", "earliest", "--archive", folder,
                   "--dry-run", "--json")
    assert earliest.code == 0, earliest.err
    assert sorted(earliest.data["put_back_removed"]) == [1, 2, 3]
    assert earliest.data["put_back_changed"] == [4]
