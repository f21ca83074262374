"""Selective rescue attacked from outside: a reused id and an undo whose key was taken since.

Each test builds a real PrismQ queue and a real backup in tmp_path and checks what the rescue
claims: a task created after the past state is never touched, and an undo puts back every
row it can and reports the rest.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from prismq import add_prismq_tasks, make_prismq_queue, prismq_connect
from rescue_scenario import task_rows

from queue_admin_gui.core.backups.backup_store import BackupStore
from queue_admin_gui.core.rescue import (
    RescueSelection,
    open_past_state,
    rescue_tasks,
    undo_rescue,
)

TYPE, KEY = 1, 15


def _queue_with_backup(tmp_path: Path) -> tuple[Path, Path, Path]:
    live = make_prismq_queue(tmp_path / "queue.db")
    connection = prismq_connect(live)
    add_prismq_tasks(connection, 10, "alpha", key_prefix="a")
    connection.close()
    backup_dir = tmp_path / "backups"
    return live, BackupStore(live, backup_dir).backup("past").path, backup_dir


def test_a_task_created_after_the_past_state_on_a_reused_id_is_never_overwritten(
        tmp_path: Path) -> None:
    """The id counter went back (a restore of an older backup did it): the next task
    created takes an id the past state gave to another task, in the same second."""
    live, backup, backup_dir = _queue_with_backup(tmp_path)
    connection = prismq_connect(live)
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("DELETE FROM task_queue WHERE id = 10")
    connection.execute("UPDATE sqlite_sequence SET seq = 9 WHERE name = 'task_queue'")
    connection.commit()
    add_prismq_tasks(connection, 1, "invoice", key_prefix="new")
    connection.close()
    newer = task_rows(live, [10])[10]
    assert newer[TYPE] == "invoice"
    with open_past_state(live, backup=backup) as past:
        report = rescue_tasks(live, past, RescueSelection(), backup_dir=backup_dir,
                              safety_backup=False)
    assert task_rows(live, [10])[10] == newer, "the rescue overwrote a task created after it"
    assert [(skip.task_id, skip.reason) for skip in report.skipped] == [(10, "id_reused")]
    assert report.put_back == 0


def test_undo_skips_a_task_whose_pre_rescue_idempotency_key_another_task_took(
        tmp_path: Path) -> None:
    live, backup, backup_dir = _queue_with_backup(tmp_path)
    connection = prismq_connect(live)
    connection.execute("UPDATE task_queue SET idempotency_key = 'script-3', status = 'failed'"
                       " WHERE id = 3")
    connection.execute("UPDATE task_queue SET status = 'failed' WHERE id = 4")
    connection.commit()
    with open_past_state(live, backup=backup) as past:
        report = rescue_tasks(live, past, RescueSelection(), backup_dir=backup_dir,
                              safety_backup=False)
    assert sorted(report.put_back_changed) == [3, 4]
    add_prismq_tasks(connection, 1, "alpha", key_prefix="later")
    connection.execute("UPDATE task_queue SET idempotency_key = 'script-3'"
                       " WHERE id = (SELECT max(id) FROM task_queue)")
    connection.commit()
    connection.close()
    assert report.undo_file is not None
    undone = undo_rescue(live, report.undo_file, backup_dir=backup_dir, safety_backup=False)
    assert list(undone.rows_put_back) == [4]
    assert [(skip.task_id, skip.reason) for skip in undone.skipped] == \
        [(3, "idempotency_conflict")]
    rows = task_rows(live, [3, 4])
    assert rows[4][5] == "failed" and rows[3][KEY] == "a-3"


def test_a_second_undo_says_the_tasks_already_are_as_before(tmp_path: Path) -> None:
    live, backup, backup_dir = _queue_with_backup(tmp_path)
    connection = prismq_connect(live)
    connection.execute("UPDATE task_queue SET status = 'failed' WHERE id = 4")
    connection.execute("DELETE FROM task_queue WHERE id = 5")
    connection.commit()
    connection.close()
    with open_past_state(live, backup=backup) as past:
        report = rescue_tasks(live, past, RescueSelection(), backup_dir=backup_dir,
                              safety_backup=False)
    assert report.undo_file is not None
    first = undo_rescue(live, report.undo_file, backup_dir=backup_dir, safety_backup=False)
    assert (list(first.rows_put_back), list(first.removed_again)) == ([4], [5])
    again = undo_rescue(live, report.undo_file, backup_dir=backup_dir, safety_backup=False)
    assert again.rows_put_back == () and again.removed_again == ()
    assert [(skip.task_id, skip.reason) for skip in again.skipped] == \
        [(4, "already_as_before"), (5, "already_as_before")]


def test_the_time_window_compares_with_the_fraction_of_a_second_given(tmp_path: Path) -> None:
    """A task changed at 10:00:05 (the queue's times are to the second) is before
    10:00:05.5: outside ``changed_after`` that instant, inside ``changed_before`` it."""
    live, backup, backup_dir = _queue_with_backup(tmp_path)
    connection = prismq_connect(live)
    connection.execute("UPDATE task_queue SET status = 'failed',"
                       " updated_at_utc = '2026-01-01 10:00:05' WHERE id = 3")
    connection.commit()
    connection.close()
    bound = datetime(2026, 1, 1, 10, 0, 5, 500_000, tzinfo=timezone.utc)
    with open_past_state(live, backup=backup) as past:
        after = rescue_tasks(live, past, RescueSelection(changed_after=bound),
                             backup_dir=backup_dir, dry_run=True)
        before = rescue_tasks(live, past, RescueSelection(changed_before=bound),
                              backup_dir=backup_dir, dry_run=True)
    assert after.put_back_changed == ()
    assert before.put_back_changed == (3,)
