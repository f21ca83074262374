"""``--json`` prints exactly one JSON object on stdout, whatever happens to the command.

Scripts parse stdout with one ``json.loads``; a traceback, a second object or an empty stdout
breaks them just when something went wrong. Every command is run to success, to a refusal,
to a usage error, to an unexpected failure (a bug) and to Ctrl+C.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _cli_helpers import Run

from queue_admin_gui import cli
from queue_admin_gui.cli import archive as cli_archive
from queue_admin_gui.cli import commands as cli_commands
from queue_admin_gui.cli.commands import COMMANDS

CliRunner = Callable[..., Run]

#: The arguments each command needs besides --db; {backup} is a real backup file.
ARGS: dict[str, list[str]] = {
    "backup": ["--dir", "{folder}"], "verify": ["{backup}"],
    "list-backups": ["--dir", "{folder}"], "prune": ["--keep", "5", "--dir", "{folder}"],
    "restore": ["{backup}", "--yes"], "checkpoint": [], "vacuum": [], "analyze": [],
    "optimize": [], "integrity": [], "leases": [], "stats": [], "demo": ["--tasks", "20"],
    "archive": ["--dir", "{folder}/archive", "--seconds", "0.5"],
    "archive-status": ["--dir", "{folder}"], "archive-compact": ["--dir", "{folder}"],
    "diff": ["--backup", "{backup}"],
    "rescue": ["--backup", "{backup}", "--yes", "--dir", "{folder}"],
}

#: How each command is refused by the engine: arguments that make it say no.
REFUSALS: dict[str, list[str]] = {
    "verify": ["{missing}"], "list-backups": ["--dir", "{a_file}"],
    "prune": ["--keep", "1", "--dir", "{a_file}"], "restore": ["{backup}"],
    "demo": ["--path", "{a_file}"], "archive-status": ["--dir", "{a_file}"],
    "archive-compact": ["--dir", "{a_file}"],
}


def test_every_command_is_covered() -> None:
    assert set(ARGS) == set(COMMANDS)


def _one_object(run: Run) -> dict[str, Any]:
    """stdout is exactly one line holding one JSON object, and ok agrees with the exit code."""
    assert run.out.count("\n") == 1 and run.out.endswith("\n"), run.out
    data = json.loads(run.out)
    assert isinstance(data, dict)
    assert data["ok"] is (run.code == 0), (run.code, data)
    if not data["ok"]:
        assert isinstance(data["error"], str) and data["error"]
        assert isinstance(data["kind"], str)
    return data


@pytest.fixture
def places(tmp_path: Path, demo_db: Path, cli: CliRunner) -> dict[str, str]:
    folder = tmp_path / "json backups"
    made = cli("--db", demo_db, "--json", "backup", "--dir", folder)
    assert made.code == 0, made.err
    a_file = tmp_path / "just a file.txt"
    a_file.write_text("not a folder, not a queue", encoding="utf-8")
    return {"folder": str(folder), "backup": made.data["path"], "a_file": str(a_file),
            "missing": str(tmp_path / "missing.db"), "db": str(demo_db)}


def _argv(command: str, places: dict[str, str], extra: list[str],
          db: str | None = None) -> list[str]:
    filled = [item.format(**places) for item in extra]
    return ["--db", db or places["db"], "--json", command, *filled]


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(ARGS))
def test_success_is_one_object(cli: CliRunner, places: dict[str, str], command: str,
                               tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db") if command == "demo" else None
    run = cli(*_argv(command, places, ARGS[command], db))
    _one_object(run)
    assert run.code in (0, 1), run.err  # 1: the command ran and found a problem


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(ARGS))
def test_refusal_is_one_object(cli: CliRunner, places: dict[str, str], command: str) -> None:
    if command in REFUSALS:
        run = cli(*_argv(command, places, REFUSALS[command]))
    else:  # the database is missing
        run = cli(*_argv(command, places, ARGS[command], places["missing"]))
    data = _one_object(run)
    assert run.code == 2, data


@pytest.mark.parametrize("command", sorted(ARGS))
def test_usage_error_is_one_object(cli: CliRunner, places: dict[str, str],
                                   command: str) -> None:
    run = cli(*_argv(command, places, [*ARGS[command], "--no-such-option"]))
    data = _one_object(run)
    assert run.code == 2 and data["kind"] == "invalid"


def _break_everything(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Make the engine's first step fail for every command, inside the command."""
    def fail(*args: object, **kwargs: object) -> Any:
        raise error

    monkeypatch.setattr(cli.Context, "db_path", property(fail))
    monkeypatch.setattr(cli_commands, "check_backup_file", fail)
    monkeypatch.setattr(cli_commands, "create_demo_queue", fail)
    monkeypatch.setattr(cli_archive, "compact_archive", fail)


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(ARGS))
def test_unexpected_failure_is_one_object(cli: CliRunner, places: dict[str, str],
                                          command: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    argv = _argv(command, places, ARGS[command])
    _break_everything(monkeypatch, RuntimeError("a bug in the tool"))
    run = cli(*argv)
    data = _one_object(run)
    assert run.code == 1 and data["kind"] == "bug"
    assert "a bug in the tool" in data["error"]


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(ARGS))
def test_ctrl_c_is_one_object(cli: CliRunner, places: dict[str, str], command: str,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    argv = _argv(command, places, ARGS[command])
    _break_everything(monkeypatch, KeyboardInterrupt())
    try:
        run = cli(*argv)
    except KeyboardInterrupt:
        pytest.fail("Ctrl+C escaped the CLI without a report")
    data = _one_object(run)
    assert run.code == 1 and data["kind"] == "cancelled"


def test_a_value_json_cannot_hold_still_gives_one_object(
        cli: CliRunner, places: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    real = cli_commands.Maintenance.read_stats

    class OddStats:
        def __init__(self, stats: Any) -> None:
            self.stats = stats

        def as_dict(self) -> dict[str, Any]:
            result = self.stats.as_dict()
            result.update(fragmentation_percent=float("nan"), raw=b"\x00\x01")
            return result

    def odd_stats(self: Any, include_task_counts: bool = True) -> OddStats:
        return OddStats(real(self, include_task_counts))

    monkeypatch.setattr(cli_commands.Maintenance, "read_stats", odd_stats)
    run = cli(*_argv("stats", places, []))
    data = _one_object(run)
    assert data["fragmentation_percent"] is None
