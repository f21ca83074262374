"""Every command's --help works, and ``check`` answers a monitor (exit 3) whatever breaks."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _cli_helpers import cli_env

from queue_admin_gui.cli.program import build_parser, command_parsers

COMMANDS = sorted(command_parsers(build_parser()))


def test_the_parser_lists_its_commands():
    assert {"backup", "verify", "restore", "check", "archive", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_prints_its_help_and_exits_0(cli, name):
    run = cli(name, "--help")
    assert run.code == 0, run.err
    assert run.out.startswith(f"usage: queue-admin-cli {name}")
    assert "Traceback" not in run.err


def test_the_main_help_exits_0(cli):
    run = cli("--help")
    assert run.code == 0
    for name in COMMANDS:
        assert name in run.out


def test_check_help_shows_the_percent_options(cli):
    run = cli("check", "--help")
    assert run.code == 0
    assert "free pages for WARNING, in % (default: settings; 0 to 100)" in " ".join(
        run.out.split())


def test_a_parser_that_breaks_is_unknown_for_check(cli, monkeypatch):
    from queue_admin_gui.cli import program

    def broken() -> None:
        raise ValueError("unsupported format character")

    monkeypatch.setattr(program, "build_parser", broken)
    run = cli("check", "--help")
    assert run.code == 3
    assert run.out.startswith("QUEUE UNKNOWN - reading the command line failed unexpectedly "
                              "(ValueError: unsupported format character)")


def _with_missing_module(module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a process where ``module`` cannot be imported (a broken install)."""
    script = (f"import sys; sys.modules[{module!r}] = None\n"
              "from queue_admin_gui.cli import main\n"
              f"sys.exit(main({list(argv)!r}))\n")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=cli_env(), timeout=120, check=False)


@pytest.mark.parametrize("module", ["queue_admin_gui.cli.program",
                                    "queue_admin_gui.core.measurements.check"])
def test_check_in_a_broken_install_is_unknown(module):
    run = _with_missing_module(module, "--db", "queue.db", "check")
    assert run.returncode == 3, run.stderr
    assert run.stdout.startswith(
        f"QUEUE UNKNOWN - queue-admin-cli cannot start (ModuleNotFoundError: import of {module} ")
    assert "Traceback" not in run.stderr


def test_other_commands_in_a_broken_install_still_fail_loudly():
    run = _with_missing_module("queue_admin_gui.cli.program", "stats")
    assert run.returncode == 1
    assert "ModuleNotFoundError" in run.stderr


def test_a_parser_that_breaks_is_one_line_for_other_commands(cli, monkeypatch):
    from queue_admin_gui.cli import program

    def broken() -> None:
        raise ValueError("unsupported format character")

    monkeypatch.setattr(program, "build_parser", broken)
    run = cli("--json", "backup", "--help")
    assert run.code == 1
    assert run.data["kind"] == "bug"
    assert run.data["error"].startswith("reading the command line failed unexpectedly "
                                        "(ValueError: unsupported format character)")
    assert "Traceback" not in run.err
