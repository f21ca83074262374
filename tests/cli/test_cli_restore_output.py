"""restore --at TIME --output F when an earlier run left F's manifest but not F."""

from __future__ import annotations

import json
import selectors
import signal
import sqlite3
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from _cli_helpers import cli_command, cli_env

from queue_admin_gui.core.backups.manifest import manifest_path_for, remove_stale_manifest
from queue_admin_gui.core.database import QueueDatabase

DEADLINE_SECONDS = 60.0


def _line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        assert selector.select(DEADLINE_SECONDS), "the archiver printed nothing"
        return process.stdout.readline()
    finally:
        selector.close()


def _archived_queue(tmp_path: Path) -> tuple[Path, Path, str]:
    """A queue with 3 tasks, archived; returns (db, archive, an instant after the inserts)."""
    db, archive = tmp_path / "queue.db", tmp_path / "archive"
    with QueueDatabase(db) as queue:
        queue.initialize_schema()
    with subprocess.Popen(cli_command("--db", db, "archive", "--dir", archive, "--heartbeat",
                                      "0.5"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=cli_env()) as process:
        try:
            deadline = time.monotonic() + DEADLINE_SECONDS
            while "is restorable from" not in _line(process):
                assert time.monotonic() < deadline and process.poll() is None
            connection = sqlite3.connect(db, isolation_level=None)
            connection.executemany("INSERT INTO task_queue(type, payload) VALUES ('t', '{}')",
                                   [()] * 3)
            connection.close()
            for _ in range(2):  # a heartbeat after the inserts proves they were copied
                while "heartbeat" not in _line(process):
                    pass
            instant = datetime.now(timezone.utc).isoformat()
            while "heartbeat" not in _line(process):
                pass
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=DEADLINE_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return db, archive, instant


@pytest.mark.slow
def test_a_leftover_manifest_alone_does_not_block_the_output(tmp_path: Path) -> None:
    db, archive, instant = _archived_queue(tmp_path)
    output = tmp_path / "rebuilt.db"
    stale = manifest_path_for(output)
    stale.write_text('{"left": "by an interrupted run"}', encoding="utf-8")

    run = subprocess.run(cli_command("--db", db, "--json", "restore", "--at", instant,
                                     "--archive", archive, "--output", output),
                         capture_output=True, text=True, env=cli_env(),
                         timeout=DEADLINE_SECONDS, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["verified"] is True
    assert report["stale_manifest_removed"] == str(stale)
    assert json.loads(stale.read_text(encoding="utf-8"))["name"] == output.name  # the new one

    again = subprocess.run(cli_command("--db", db, "--json", "restore", "--at", instant,
                                       "--archive", archive, "--output", output),
                           capture_output=True, text=True, env=cli_env(),
                           timeout=DEADLINE_SECONDS, check=False)
    assert again.returncode == 1
    assert json.loads(again.stdout)["kind"] == "already_exists"  # a real output stays safe


def test_a_manifest_beside_an_existing_or_growing_file_is_kept(tmp_path: Path) -> None:
    output = tmp_path / "rebuilt.db"
    manifest = manifest_path_for(output)
    manifest.write_text("{}", encoding="utf-8")
    output.write_bytes(b"the file itself")
    assert remove_stale_manifest(output) is None and manifest.exists()
    output.unlink()
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(b"being written")
    assert remove_stale_manifest(output) is None and manifest.exists()
    partial.unlink()
    assert remove_stale_manifest(output) == manifest and not manifest.exists()
    assert remove_stale_manifest(output) is None
