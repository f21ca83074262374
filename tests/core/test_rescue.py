"""Selective rescue: diff, rescue and undo against a past state, on PrismQ's own queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prismq import add_prismq_tasks, prismq_connect
from rescue_scenario import ids_of, log_rows, make_incident, sequence, task_rows

from queue_admin_gui.core.errors import ErrorKind
from queue_admin_gui.core.rescue import (
    RescueError,
    RescueSelection,
    diff_queue,
    open_past_state,
    rescue_tasks,
    undo_rescue,
)


@pytest.fixture
def incident(tmp_path: Path) -> dict:
    """See :func:`rescue_scenario.make_incident`."""
    return make_incident(tmp_path)


def test_diff_groups_the_damage_by_type_and_status_change(incident: dict) -> None:
    with open_past_state(incident["live"], backup=incident["backup"]) as past:
        diff = diff_queue(incident["live"], past)
    assert (diff.removed, diff.changed, diff.added) == (20, 50 + 30, 15)
    assert diff.by_type["alpha"] == {"removed": 0, "changed": 50, "added": 0}
    assert diff.by_type["beta"] == {"removed": 20, "changed": 0, "added": 0}
    assert diff.by_type["gamma"] == {"removed": 0, "changed": 30, "added": 15}
    assert diff.by_status_change["changed"] == {"queued -> failed": 49,
                                                "queued -> completed": 30,
                                                "queued -> leased": 1}
    assert diff.ids_of("removed") == incident["beta"]
    assert diff.held_now == 1
    assert diff.changed_columns["status"] == 80
    assert diff.changed_columns["error_message"] == 49
    assert sum(sum(kinds.values()) for kinds in diff.by_minute.values()) == 50 + 30 + 15
    data = diff.as_dict(with_ids=True)
    alpha_failed = [group for group in data["groups"]
                    if group["type"] == "alpha" and group["status_now"] == "failed"]
    assert len(alpha_failed) == 1 and len(alpha_failed[0]["ids"]) == 49
    json.dumps(data)


def test_rescue_puts_back_only_the_selected_damage_and_undo_reverses_it(incident: dict
                                                                        ) -> None:
    live, before = incident["live"], incident["before"]
    new_ids = ids_of(live, "SELECT id FROM task_queue WHERE idempotency_key LIKE 'new-%'")
    gamma_now = task_rows(live, ids_of(live, "SELECT id FROM task_queue WHERE type='gamma'"))
    logs_before = log_rows(live)
    pre_rescue = task_rows(live)
    selection = RescueSelection(types=frozenset({"alpha", "beta"}))
    with open_past_state(live, backup=incident["backup"]) as past:
        dry = rescue_tasks(live, past, selection, backup_dir=incident["backup_dir"],
                           dry_run=True)
        assert task_rows(live) == pre_rescue  # a dry run changes nothing
        report = rescue_tasks(live, past, selection, backup_dir=incident["backup_dir"])
    assert dry.put_back == report.put_back == 49 + 20
    assert dry.undo_file is None and dry.safety_backup is None
    assert list(report.put_back_removed) == incident["beta"]
    assert [skip.task_id for skip in report.skipped] == [incident["leased"]]
    assert report.skipped[0].reason == "held_by_worker"
    assert report.outside_selection == 30 and report.added_since == 15
    assert report.logs_put_back == 20
    after = task_rows(live)
    damaged = [task_id for task_id, row in before.items()
               if row[1] in ("alpha", "beta") and task_id != incident["leased"]]
    assert {task_id: after[task_id] for task_id in damaged} == \
        {task_id: before[task_id] for task_id in damaged}
    assert after[incident["leased"]] == pre_rescue[incident["leased"]]  # held: untouched
    assert task_rows(live, list(gamma_now)) == gamma_now  # completions kept
    assert set(new_ids) <= set(after)  # new tasks kept
    assert set(log_rows(live)) == set(logs_before) | set(log_rows(incident["backup"]))
    assert sequence(live)["task_queue"] >= max(after)
    assert report.safety_backup is not None and report.safety_backup.is_file()
    assert report.safety_backup.parent == incident["backup_dir"] / "pre-rescue"
    assert task_rows(report.safety_backup) == pre_rescue
    assert report.undo_file is not None and report.undo_file.is_file()
    assert "69 task(s)" in report.headline and "1 held by worker" in report.headline

    undone = undo_rescue(live, report.undo_file, backup_dir=incident["backup_dir"])
    assert len(undone.rows_put_back) == 49 and len(undone.removed_again) == 20
    assert undone.skipped == ()
    assert task_rows(live) == pre_rescue
    assert log_rows(live) == logs_before


def test_undo_leaves_a_task_that_changed_after_the_rescue(incident: dict) -> None:
    live = incident["live"]
    with open_past_state(live, backup=incident["backup"]) as past:
        report = rescue_tasks(live, past, RescueSelection(types=frozenset({"alpha"})),
                              backup_dir=incident["backup_dir"], safety_backup=False)
    moved = report.put_back_changed[0]
    connection = prismq_connect(live)
    connection.execute("UPDATE task_queue SET status = 'completed' WHERE id = ?", (moved,))
    connection.commit()
    connection.close()
    undone = undo_rescue(live, report.undo_file, backup_dir=incident["backup_dir"],
                         safety_backup=False)
    assert [(skip.task_id, skip.reason) for skip in undone.skipped] == \
        [(moved, "changed_since_rescue")]
    assert task_rows(live, [moved])[moved][5] == "completed"
    assert len(undone.rows_put_back) == len(report.put_back_changed) - 1


def test_idempotency_key_taken_by_another_live_task_is_a_reported_conflict(incident: dict
                                                                          ) -> None:
    live = incident["live"]
    lost = incident["beta"][0]
    key = task_rows(incident["backup"], [lost])[lost][15]
    connection = prismq_connect(live)
    add_prismq_tasks(connection, 1, "beta", key_prefix="retry")
    connection.execute("UPDATE task_queue SET idempotency_key = ? WHERE id ="
                       " (SELECT max(id) FROM task_queue)", (key,))
    connection.commit()
    connection.close()
    with open_past_state(live, backup=incident["backup"]) as past:
        report = rescue_tasks(live, past, RescueSelection(types=frozenset({"beta"}),
                                                          removed=True, changed=False),
                              backup_dir=incident["backup_dir"], safety_backup=False)
    assert [(skip.task_id, skip.reason) for skip in report.skipped] == \
        [(lost, "idempotency_conflict")]
    assert lost not in task_rows(live)
    assert len(report.put_back_removed) == 19


def test_selection_by_status_window_and_ids(incident: dict) -> None:
    live = incident["live"]
    added = ids_of(live, "SELECT id FROM task_queue WHERE idempotency_key LIKE 'new-%'")
    alpha = ids_of(live, "SELECT id FROM task_queue WHERE type = 'alpha' AND status = 'failed'")
    asked = frozenset({alpha[0], alpha[1], added[0], incident["beta"][0], 999_999})
    with open_past_state(live, backup=incident["backup"]) as past:
        listed = rescue_tasks(live, past, RescueSelection(ids=asked, changed=True,
                                                          removed=False),
                              backup_dir=incident["backup_dir"], dry_run=True)
        by_status = rescue_tasks(live, past, RescueSelection(
            status_now=frozenset({"completed"}), removed=False),
            backup_dir=incident["backup_dir"], dry_run=True)
        from datetime import datetime, timedelta, timezone
        later = rescue_tasks(live, past, RescueSelection(
            changed_after=datetime.now(timezone.utc) + timedelta(hours=1)),
            backup_dir=incident["backup_dir"], dry_run=True)
    assert sorted(listed.put_back_changed) == sorted(alpha[:2])
    reasons = {skip.task_id: skip.reason for skip in listed.skipped}
    assert reasons == {added[0]: "added_after_past", incident["beta"][0]: "outside_selection",
                       999_999: "not_found"}
    assert len(by_status.put_back_changed) == 30
    assert later.put_back_changed == () and len(later.put_back_removed) == 20


def test_a_backup_that_fails_verification_is_refused(incident: dict) -> None:
    bad = incident["tmp"] / "bad.db"
    bad.write_bytes(incident["backup"].read_bytes()[:8192])
    with pytest.raises(RescueError) as refused, open_past_state(incident["live"], backup=bad):
        pass
    assert refused.value.kind is not ErrorKind.BUG
    assert "cannot be used as the past state" in str(refused.value)


def test_the_newest_five_rescue_safety_backups_are_kept(incident: dict) -> None:
    from queue_admin_gui.core.rescue.merge import take_safety_backup

    made = [take_safety_backup(incident["live"], incident["backup_dir"], "Rescue", None, None)
            for _ in range(7)]
    kept = sorted((incident["backup_dir"] / "pre-rescue").glob("queue_backup_pre_rescue_*.db"))
    assert kept == sorted(made[-5:])
