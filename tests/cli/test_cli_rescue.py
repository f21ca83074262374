"""``diff`` and ``rescue``: exact syntax, exit codes, JSON and the activity log."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prismq import prismq_connect
from rescue_scenario import damage_pages, make_incident, table_leaves, task_rows

from queue_admin_gui.core.activity import ActivityLog


@pytest.fixture
def incident(tmp_path: Path) -> dict:
    """See :func:`rescue_scenario.make_incident`."""
    return make_incident(tmp_path)


def test_diff_counts_by_kind_type_and_status_change_and_json_adds_ids(cli, incident) -> None:
    run = cli("--db", incident["live"], "diff", "--backup", incident["backup"], "--json")
    assert run.code == 0, run.err
    data = run.data
    assert data["ok"] is True
    assert (data["removed"], data["changed"], data["added"]) == (20, 80, 15)
    assert data["by_type"]["beta"]["removed"] == 20
    assert data["by_status_change"]["changed"]["queued -> failed"] == 49
    removed = [task_id for group in data["groups"] if group["kind"] == "removed"
               for task_id in group["ids"]]
    assert sorted(removed) == incident["beta"]
    human = cli("--db", incident["live"], "diff", "--backup", incident["backup"])
    assert human.code == 0
    assert "20 task(s) removed, 80 changed, 15 added" in human.out
    assert "changed queued -> failed: 49" in human.out


def test_rescue_dry_run_then_yes_then_undo(cli, incident, tmp_path: Path) -> None:
    live, backup = incident["live"], incident["backup"]
    pre = task_rows(live)
    folder = tmp_path / "rescue backups"
    dry = cli("--db", live, "rescue", "--backup", backup, "--type", "alpha", "--type", "beta",
              "--dry-run", "--dir", folder, "--json")
    assert dry.code == 0, dry.err
    assert dry.data["dry_run"] is True and dry.data["put_back"] == 69
    assert task_rows(live) == pre
    done = cli("--db", live, "rescue", "--backup", backup, "--type", "alpha", "--type",
               "beta", "--yes", "--dir", folder, "--json")
    assert done.code == 0, done.err
    assert done.data["put_back"] == 69
    assert done.data["skipped_by_reason"] == {"held_by_worker": 1}
    assert Path(done.data["safety_backup"]).parent == folder / "pre-rescue"
    undo = Path(done.data["undo_file"])
    assert undo.is_file()
    entries = ActivityLog().read()
    assert [entry.action for entry in entries][:2] == ["cli rescue", "cli rescue"]
    assert "would put back 69 task(s)" in entries[0].message
    assert "put back 69 task(s)" in entries[1].message and "would" not in entries[1].message
    assert "1 held by worker" in entries[1].message and str(undo) in entries[1].message
    back = cli("--db", live, "rescue", "--undo", undo, "--yes", "--dir", folder)
    assert back.code == 0, back.err
    assert task_rows(live) == pre


@pytest.mark.parametrize("argv", [
    ["rescue", "--backup", "B", "--yes", "--dry-run"],
    ["rescue", "--backup", "B"],
    ["rescue", "--backup", "B", "--deleted-only", "--changed-only", "--yes"],
    ["rescue", "--at", "2024-01-01T00:00:00Z", "--yes"],
    ["rescue", "--yes"],
    ["diff", "--backup", "B", "--damaged", "D"],
    ["diff", "--at", "yesterday", "--archive", "A"],
])
def test_bad_usage_exits_2(cli, incident, argv: list[str]) -> None:
    run = cli("--db", incident["live"], *argv)
    assert run.code == 2, run.out + run.err
    assert run.err.startswith("queue-admin-cli: error: ")


def test_a_bad_ids_file_is_bad_usage(cli, incident, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("12\nfoo\n", encoding="utf-8")
    run = cli("--db", incident["live"], "rescue", "--backup", incident["backup"], "--ids", ids,
              "--dry-run")
    assert run.code == 2
    assert "Line 2 of the ids file" in run.err


def test_a_backup_folder_that_is_a_file_is_bad_usage(cli, incident, tmp_path: Path) -> None:
    live = incident["live"]
    pre = task_rows(live)
    blocker = tmp_path / "not a folder"
    blocker.write_text("x", encoding="utf-8")
    run = cli("--db", live, "rescue", "--backup", incident["backup"], "--yes", "--dir",
              blocker, "--json")
    assert run.code == 2, run.out + run.err
    assert run.data["ok"] is False and "nothing was changed" in run.data["error"]
    assert task_rows(live) == pre


@pytest.mark.slow
@pytest.mark.usefixtures("short_lock_wait")
def test_a_rescue_that_cannot_get_the_write_lock_exits_1_with_nothing_changed(
        cli, incident, tmp_path: Path) -> None:
    live = incident["live"]
    pre = task_rows(live)
    holder = prismq_connect(live)
    holder.execute("BEGIN IMMEDIATE")
    try:
        run = cli("--db", live, "rescue", "--backup", incident["backup"], "--yes", "--dir",
                  tmp_path / "folder", "--json")
    finally:
        holder.rollback()
        holder.close()
    assert run.code == 1, run.out + run.err
    assert run.data["ok"] is False and run.data["kind"] == "locked"
    assert "nothing was changed" in run.data["error"]
    assert task_rows(live) == pre
    assert not list((tmp_path / "folder" / "rescue-undo").glob("*"))


def test_diff_and_rescue_from_a_damaged_file(cli, incident, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.db"
    shutil.copyfile(incident["backup"], damaged)
    leaves = table_leaves(damaged, "task_queue")
    page = sorted(leaves)[1]
    damage_pages(damaged, [page])
    lost = len(leaves[page])
    run = cli("--db", incident["live"], "diff", "--damaged", damaged, "--json")
    assert run.code == 0, run.err
    assert run.data["unreadable_ids"] == lost
    assert run.data["salvage"]["counted_from_index"]["task_queue"] is True
    missing = [task_id for task_id in incident["beta"] if task_id not in leaves[page]]
    removed = [task_id for group in run.data["groups"] if group["kind"] == "removed"
               for task_id in group["ids"]]
    assert sorted(removed) == missing
    assert run.data["added"] == 15  # the unreadable ids of live tasks are not "added"
    done = cli("--db", incident["live"], "rescue", "--damaged", damaged, "--deleted-only",
               "--yes", "--dir", tmp_path / "folder", "--json")
    assert done.code == 0, done.err
    assert sorted(done.data["put_back_removed"]) == missing
    rows = task_rows(incident["live"])
    assert all(rows[task_id] == incident["before"][task_id] for task_id in missing)


def test_an_undo_file_of_another_database_is_refused(cli, incident, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    done = cli("--db", incident["live"], "rescue", "--backup", incident["backup"], "--yes",
               "--dir", folder, "--json")
    other = tmp_path / "other.db"
    shutil.copyfile(incident["live"], other)
    run = cli("--db", other, "rescue", "--undo", done.data["undo_file"], "--yes", "--dir",
              folder, "--json")
    assert run.code == 2 and run.data["kind"] == "invalid"
    assert "belongs to the rescue of" in run.data["error"]
    not_undo = cli("--db", incident["live"], "rescue", "--undo", incident["backup"], "--yes",
                   "--dir", folder, "--json")
    assert not_undo.code == 2 and "is not an undo file" in not_undo.data["error"]
