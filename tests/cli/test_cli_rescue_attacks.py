"""``rescue`` fed junk from outside: bad usage is exit 2 with one sentence, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from rescue_scenario import make_incident, task_rows


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
