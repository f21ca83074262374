"""queue-admin --smoke-test, run from source as a real process: it loads every tab and quits.

The built bundle runs the same option (tests/packaging/test_bundle.py); here it is checked
without building, including that a failure exits 1 with the reason instead of hanging.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.ui.main_window import TAB_SPECS


def _smoke(*args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "queue_admin_gui.ui.launch", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env, check=False)


@pytest.mark.slow
def test_smoke_test_opens_the_demo_loads_every_tab_and_exits_0() -> None:
    run = _smoke("--smoke-test")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert [line.removeprefix("tab: ") for line in lines if line.startswith("tab: ")] == [
        spec[2] for spec in TAB_SPECS]
    assert lines[-1] == "smoke test passed"


@pytest.mark.slow
def test_smoke_test_writes_its_report_to_a_file(tmp_path: Path) -> None:
    db = tmp_path / "queue dir" / "queue.db"
    create_demo_queue(db, tasks=100, seed=1)
    report = tmp_path / "report.txt"
    run = _smoke("--db", db, "--smoke-test", report)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert report.read_text(encoding="utf-8").endswith("smoke test passed\n")


@pytest.mark.slow
def test_smoke_test_fails_with_the_reason_when_the_queue_cannot_be_opened(
        tmp_path: Path) -> None:
    run = _smoke("--db", tmp_path / "missing.db", "--smoke-test")
    assert run.returncode == 1
    last = run.stdout.splitlines()[-1]
    assert last.startswith("smoke test failed: the window reported: error:")
    assert "not found" in last
