"""Every queue-admin-cli command in the runbook runs, in document order, against a demo queue.

The runbook's example paths are replaced by paths under tmp_path; a named backup file is
replaced by the newest real backup with that label. A command that exits with anything but
0 fails the test, so the runbook cannot drift from the program.
"""

from __future__ import annotations

import io
import re
import shlex
import sqlite3
from pathlib import Path

import pytest

from queue_admin_gui.cli import main
from queue_admin_gui.cli.check import command_name
from queue_admin_gui.core.demo.queue_file import create_demo_queue

DOCS = Path(__file__).resolve().parents[2] / "docs"
RUNBOOK = DOCS / "QUEUE_MAINTENANCE_RUNBOOK.md"

DB_EXAMPLE = r"C:\Data\PrismQ\queue\queue.db"
BACKUP_DIR_EXAMPLE = r"D:\Backups\PrismQ"
EXE_EXAMPLE = r"C:\PrismQ\QueueAdmin\Scripts\queue-admin-cli.exe"
BACKUP_FILE = re.compile(
    r"D:\\Backups\\PrismQ\\(?:(pre-restore)\\)?queue_backup_([A-Za-z_-]+?)_\d{8}_\d{6}\.db")
#: The damaged copy a restore keeps, as the runbook names it.
DAMAGED_COPY = re.compile(r"D:\\Backups\\PrismQ\\pre-restore\\(queue_damaged_\d{8}_\d{6}\.db)")
COMMAND = re.compile(r"queue-admin-cli(?:\.exe)?(?P<args>(?: [^\s\"`|]+)+)")


def runbook_commands(text: str) -> list[str]:
    """Every queue-admin-cli invocation in code blocks and inline code, in document order."""
    text = text.replace(EXE_EXAMPLE, "queue-admin-cli")
    pieces = re.findall(r"```[a-z]*\n(.*?)```|`([^`\n]+)`", text, flags=re.S)
    commands = []
    for block, inline in pieces:
        for match in COMMAND.finditer(block or inline):
            commands.append(match.group(0))
    return commands


def test_runbook_names_the_documented_operations() -> None:
    commands = " ".join(runbook_commands(RUNBOOK.read_text(encoding="utf-8")))
    for operation in ("backup", "verify", "list-backups", "restore", "checkpoint --mode truncate",
                      "vacuum", "analyze", "integrity", "leases --requeue", "stats",
                      "check"):
        assert f" {operation}" in commands, operation


def _newest_backup(backup_dir: Path, label: str, folder: str | None = None) -> str:
    matches = sorted((backup_dir / (folder or "")).glob(f"queue_backup_{label}_*.db"),
                     key=lambda path: path.stat().st_mtime_ns)
    assert matches, f"the runbook uses a '{label}' backup before any was made"
    return str(matches[-1])


def _substitute(command: str, db_path: Path, backup_dir: Path) -> list[str]:
    command = BACKUP_FILE.sub(
        lambda match: _newest_backup(backup_dir, match.group(2), match.group(1)).replace(
            "\\", "/"), command)
    command = DAMAGED_COPY.sub(
        lambda match: (backup_dir / "pre-restore" / match.group(1)).as_posix(), command)
    command = command.replace(DB_EXAMPLE, db_path.as_posix())
    command = command.replace(BACKUP_DIR_EXAMPLE, backup_dir.as_posix())
    arguments = shlex.split(command)
    assert arguments[0] == "queue-admin-cli"
    return arguments[1:]


@pytest.mark.slow
def test_every_runbook_command_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_path = tmp_path / "queue.db"
    backup_dir = tmp_path / "backups"
    create_demo_queue(db_path, tasks=300, seed=3)
    # The runbook's first step of a restore is to stop the workers: the demo's last
    # heartbeats are an hour old, as after stopping them.
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        connection.execute("UPDATE workers SET heartbeat_utc = datetime('now', '-1 hour')")
    finally:
        connection.close()
    monkeypatch.setenv("QUEUE_ADMIN_BACKUP_DIR", str(backup_dir))
    # The copy a restore over a damaged file keeps, for the salvage commands: here a copy
    # of the queue as it is before the runbook's commands change it.
    for name in DAMAGED_COPY.findall(RUNBOOK.read_text(encoding="utf-8")):
        kept = backup_dir / "pre-restore" / name
        kept.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(db_path) as source, sqlite3.connect(kept) as copy:
            source.backup(copy)
        source.close()
        copy.close()

    commands = runbook_commands(RUNBOOK.read_text(encoding="utf-8"))
    assert len(commands) >= 25
    for command in commands:
        out, err = io.StringIO(), io.StringIO()
        arguments = _substitute(command, db_path, backup_dir)
        code = main(arguments, out=out, err=err)
        # check answers as a monitoring plugin: WARNING (1) and CRITICAL (2) are verdicts on
        # the demo queue, not failures of the command; UNKNOWN (3) means it could not judge.
        accepted = (0, 1, 2) if command_name(arguments) == "check" else (0,)
        assert code in accepted, f"{command!r} exited {code}: {err.getvalue()}{out.getvalue()}"
        if command_name(arguments) == "check":
            assert out.getvalue().startswith(("QUEUE OK - ", "QUEUE WARNING - ",
                                              "QUEUE CRITICAL - ", '{"ok": '))
    assert any(backup_dir.glob("pre-restore/queue_backup_pre_restore_*.db"))
