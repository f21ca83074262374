"""Ctrl+C stops `queue-admin-cli verify` of a file crafted to stall checks, at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _cli_helpers import cli_command, cli_env
from crafted_files import stalling_file

#: Far below the ~20 s the crafted file keeps SQLite between two progress-handler calls.
STOP_ALLOWANCE_SECONDS = 8.0
#: Waiting for the CLI to start and open the file (a condition, polled; not a sleep).
START_DEADLINE_SECONDS = 60.0


def has_open(pid: int, path: Path) -> bool:
    """True when process ``pid`` holds ``path`` open (Linux /proc)."""
    folder = Path(f"/proc/{pid}/fd")
    try:
        links = [os.readlink(entry) for entry in folder.iterdir()]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return str(path) in links


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to wait")
def test_the_first_ctrl_c_stops_a_stalling_verify(tmp_path: Path) -> None:
    folder = tmp_path / "received"
    folder.mkdir()
    crafted = stalling_file(folder / "queue_backup_crafted_20200101_000000.db")
    process = subprocess.Popen(cli_command("--db", tmp_path / "live.db", "verify", crafted),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=cli_env())
    try:
        opened = False
        waited = 0.0
        while not opened and process.poll() is None and waited < START_DEADLINE_SECONDS:
            try:
                process.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                waited += 0.02
            opened = has_open(process.pid, crafted)
        assert opened, "the CLI never opened the file"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=STOP_ALLOWANCE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, (out, err)
    assert "cancelled" in err
    assert crafted.read_bytes()[:16] == b"SQLite format 3\x00"
    assert sorted(p.name for p in folder.iterdir()) == [crafted.name]  # no -wal, no -shm
