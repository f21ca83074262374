"""Adding a command is one declaration beside its handler: parser, dispatch and activity log
all follow it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from queue_admin_gui.cli.declared import DECLARED, command
from queue_admin_gui.cli.output import CommandResult
from queue_admin_gui.cli.program import build_parser, command_parsers
from queue_admin_gui.core.activity import ActivityLog


@pytest.fixture
def declared_commands(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The declarations, restored after the test whatever it declared."""
    monkeypatch.setattr("queue_admin_gui.cli.declared.DECLARED", dict(DECLARED))
    from queue_admin_gui.cli import declared, program

    monkeypatch.setattr(program, "DECLARED", declared.DECLARED)
    return declared.DECLARED


def test_a_command_declared_once_is_parsed_run_and_logged(declared_commands, cli, demo_db: Path):
    def echo_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--word", required=True, help="the word to say back")

    @command("echo-word", "Say a word back.", options=echo_options, logged=True)
    def echo_word(context) -> CommandResult:
        return CommandResult(f"The word was {context.args.word}.", {"word": context.args.word},
                             ["word"])

    assert "echo-word" in declared_commands
    parser = command_parsers(build_parser())["echo-word"]
    assert "the word to say back" in parser.format_help()
    run = cli("--db", demo_db, "--json", "echo-word", "--word", "hello")
    assert run.code == 0, run.err
    assert run.data["word"] == "hello"
    entries = [entry for entry in ActivityLog().read() if entry.action == "cli echo-word"]
    assert len(entries) == 1 and entries[0].parameters == {"word": "hello"}
    usage = cli("--db", demo_db, "echo-word")
    assert usage.code == 2


def test_a_command_declared_twice_is_refused(declared_commands) -> None:
    with pytest.raises(ValueError, match="declared twice"):
        command("backup", "Again.")(lambda context: None)


def test_leases_is_logged_only_when_it_requeues() -> None:
    leases = DECLARED["leases"]
    parser = command_parsers(build_parser())["leases"]
    assert not leases.is_logged(parser.parse_args([]))
    assert not leases.is_logged(parser.parse_args(["--requeue", "--dry-run"]))
    assert leases.is_logged(parser.parse_args(["--requeue"]))
    assert not DECLARED["stats"].is_logged(parser.parse_args([]))
