"""check's damage scan on a file too big for one budget: slices across runs, then a full pass.

The budgets are tiny so that a small file stands for a huge one; each run must move the
scan on (the first step of a run always completes), the place is kept in the tool's state
folder, and the report says when the last full pass ended.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from test_cli_check import damage_leaf_pages

from queue_admin_gui.core.measurements.damage_scan import load_state, save_state, state_file

MAX_RUNS = 400


def _fill(db: Path, tasks: int = 30_000) -> None:
    connection = sqlite3.connect(db)
    with connection:
        connection.executemany(
            "INSERT INTO task_queue (type, payload, idempotency_key) VALUES ('t', ?, ?)",
            [('{"pad": "' + "p" * 200 + '"}', str(n) if n % 2 else None)
             for n in range(tasks)])
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def _slice(cli, db: Path, backups: Path, budget: str = "0.001") -> dict:
    run = cli("--db", db, "--json", "check", "--dir", backups, "--quick-check-seconds", budget)
    return run.data


def _sliced(db: Path) -> None:
    """What a first run on a huge file leaves: the scan goes in slices from now on."""
    state = load_state(db)
    state.sliced = True
    assert save_state(db, state) is None


def test_a_file_too_big_for_one_budget_is_covered_over_several_runs(cli, queue_db, tmp_path):
    _fill(queue_db)
    backups = tmp_path / "backups"
    modified = queue_db.stat().st_mtime_ns

    first = _slice(cli, queue_db, backups)["quick_check"]
    assert first["mode"] == "whole" and first["finished"] is False
    assert "from the next run the damage scan reads it in slices" in first["note"]
    assert state_file(queue_db).is_file()

    positions = []
    for _ in range(MAX_RUNS):
        verdict = _slice(cli, queue_db, backups)
        scan = verdict["quick_check"]
        assert scan["mode"] == "slices" and scan["damage"] is None
        assert verdict["state"] == "CRITICAL"  # no backup at all: the scan is no finding
        if scan["finished"]:
            break
        assert scan["next_position"] not in positions, "a run that read nothing"
        positions.append(scan["next_position"])
        assert scan["last_full_pass_ended_at"] is None
    else:
        pytest.fail(f"no full pass after {MAX_RUNS} runs")
    assert len(positions) > 2  # it did take several runs
    assert any(position.startswith("task_queue after row") for position in positions)
    assert any(position.startswith("ix_") for position in positions)
    ended = scan["last_full_pass_ended_at"]
    assert ended is not None

    after = _slice(cli, queue_db, backups)["quick_check"]
    assert after["last_full_pass_ended_at"] == ended and not after["finished"]
    text = cli("--db", queue_db, "check", "--dir", backups, "--quick-check-seconds",
               "0.001").out
    assert f"the last full pass ended {ended}" in text
    assert queue_db.stat().st_mtime_ns == modified  # the scan only reads


def test_a_slice_finds_damage_and_stays_on_it(cli, queue_db, tmp_path):
    damage_leaf_pages(queue_db, "task_logs")
    _sliced(queue_db)
    backups = tmp_path / "backups"
    for _ in range(2):
        verdict = _slice(cli, queue_db, backups, budget="30")
        assert verdict["exit_code"] == 2
        assert verdict["status_line"].startswith("QUEUE CRITICAL - database damaged: ")
        scan = verdict["quick_check"]
        assert scan["mode"] == "slices" and "(in task_logs)" in scan["damage"]
        assert scan["finished"] is False and scan["last_full_pass_ended_at"] is None


def test_a_pass_that_fits_one_run_goes_back_to_the_whole_quick_check(cli, queue_db, tmp_path):
    _sliced(queue_db)
    backups = tmp_path / "backups"
    scan = _slice(cli, queue_db, backups, budget="30")["quick_check"]
    assert scan["mode"] == "slices" and scan["finished"] is True
    assert scan["last_full_pass_ended_at"] is not None
    assert load_state(queue_db).sliced is False
    again = _slice(cli, queue_db, backups, budget="30")["quick_check"]
    assert again["mode"] == "whole" and again["finished"] is True


@pytest.mark.skipif(os.name == "nt", reason="a read-only folder needs POSIX modes")
def test_a_state_that_cannot_be_kept_is_said_and_changes_nothing_else(cli, queue_db, tmp_path,
                                                                     monkeypatch):
    blocked = tmp_path / "state is a file"
    blocked.write_bytes(b"")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocked))
    _fill(queue_db)
    verdict = _slice(cli, queue_db, tmp_path / "backups")
    assert verdict["quick_check"]["note"].startswith(
        "where the damage scan stopped could not be kept in ")
    assert verdict["state"] == "CRITICAL" and verdict["exit_code"] == 2


@pytest.mark.parametrize("content", [
    b"not json", b"[]", b'{"version": 1, "database": 7}',
    b'{"version": 1, "database": "elsewhere.db", "sliced": true}',
    b'{"version": 2, "sliced": true}',
])
def test_a_state_file_it_cannot_use_starts_afresh(queue_db, content):
    target = state_file(queue_db)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    state = load_state(queue_db)
    assert state.sliced is False and state.tree is None
    assert state.database == str(queue_db.absolute())


def test_a_state_with_wrong_types_starts_afresh(queue_db):
    target = state_file(queue_db)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"version": 1, "database": str(queue_db.absolute()),
                                  "sliced": True, "after_rowid": "12"}), encoding="utf-8")
    assert load_state(queue_db).sliced is False
    target.write_text(json.dumps({"version": 1, "database": str(queue_db.absolute()),
                                  "sliced": True, "after_rowid": 12, "tree": "task_logs"}),
                      encoding="utf-8")
    kept = load_state(queue_db)
    assert kept.sliced is True and kept.tree == "task_logs" and kept.after_rowid == 12
