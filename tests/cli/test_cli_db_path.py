"""queue-admin-cli --db: a folder, an unreadable file and a missing one each say what they are."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from _cli_helpers import Run

CliRunner = Callable[..., Run]


def _error_line(run: Run) -> str:
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    return lines[0]


@pytest.mark.parametrize("command", ["stats", "backup", "vacuum", "integrity", "leases"])
def test_db_pointing_at_a_folder_says_it_is_a_folder(cli: CliRunner, tmp_path: Path,
                                                     command: str) -> None:
    folder = tmp_path / "queue.db"
    folder.mkdir()
    run = cli("--db", folder, "--json", command)
    assert run.code == 2
    assert run.data["kind"] == "invalid"
    line = _error_line(run)
    assert f"the database '{folder}' (from --db) is a folder, not a file" in line
    assert "not found" not in line


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0,
                    reason="needs a file the test user cannot read (root reads everything)")
def test_db_without_read_permission_says_permission_denied(cli: CliRunner,
                                                           demo_db: Path) -> None:
    demo_db.chmod(0)
    try:
        run = cli("--db", demo_db, "stats")
    finally:
        demo_db.chmod(0o600)
    line = _error_line(run)
    assert "permission denied" in line
    assert "not found" not in line and "does not exist" not in line
