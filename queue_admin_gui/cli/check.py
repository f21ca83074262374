"""``queue-admin-cli check``: the queue's health for monitoring systems.

Unlike the other commands, ``check`` speaks the monitoring-plugins convention for every
outcome, a bad command line and a bug included: exit 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN, and always one status line first (``--json``: one object with the same). It
never writes to the database; with ``--log`` (the scheduled health check) a verdict other
than OK is also one entry of the activity log, and so reaches the Event Log with the window
closed.
"""

from __future__ import annotations

import argparse
import dataclasses
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TextIO

from ..core.activity import ActivityEntry, ActivityLog
from ..core.errors import ConfigError, ErrorKind, QueueAdminError
from ..core.event_log import SystemLogSink, setting_switch
from ..core.measurements.check import (
    QUICK_CHECK_SECONDS,
    STATE_CRITICAL,
    STATE_OK,
    STATE_UNKNOWN,
    STATE_WARNING,
    CheckResult,
    run_check,
    unknown,
)
from ..core.settings.catalog import SETTING_RANGES
from ..core.settings.config import MaintenanceConfig, checked_value
from .declared import command
from .output import UsageError, json_line

CHECK_HELP = ("Grade the queue's health for a monitoring system (exit 0 OK, 1 WARNING, "
              "2 CRITICAL, 3 UNKNOWN); never writes.")

#: (option, setting it overrides, help) of each threshold option.
THRESHOLD_OPTIONS = (
    ("--wal-warning-mb", "wal_size_warning_mb", "WAL size for WARNING, in MB"),
    ("--wal-critical-mb", "wal_size_threshold_mb", "WAL size for CRITICAL, in MB"),
    ("--stale-warning", "stale_leases_warning", "abandoned tasks for WARNING"),
    ("--stale-critical", "stale_leases_critical", "abandoned tasks for CRITICAL"),
    ("--backup-warning-hours", "backup_age_warning_hours", "backup age for WARNING, in hours"),
    ("--backup-critical-hours", "backup_age_critical_hours",
     "backup age for CRITICAL, in hours"),
    ("--free-pages-warning", "fragmentation_warning_percent", "free pages for WARNING, in %"),
    ("--free-pages-critical", "fragmentation_critical_percent",
     "free pages for CRITICAL, in %"),
    ("--lease-timeout", "stale_lease_timeout_seconds",
     "seconds a lease must be overdue (and its worker silent) to count as abandoned"),
)


def _setting_value(option: str, name: str) -> Callable[[str], object]:
    """An argument type accepting exactly what the setting ``name`` accepts."""
    def parse(text: str) -> object:
        try:
            return checked_value(name, text, option)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error).rstrip(".")) from error
    return parse


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be 0 to 3600 seconds, not {text}")
    return value


def _literal(text: str) -> str:
    """``text`` as argparse help shows it: a ``%`` there starts a placeholder, so double it."""
    return text.replace("%", "%%")


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The threshold options (defaults from the settings), the backup folder and the budget."""
    parser.add_argument("--dir", type=Path,
                        help="backup folder whose newest backup is graded (default: settings)")
    for option, name, text in THRESHOLD_OPTIONS:
        low, high = SETTING_RANGES[name]
        parser.add_argument(option, dest=name, type=_setting_value(option, name),
                            metavar="N", help=_literal(
                                f"{text} (default: settings; {low:g} to {high:g})"))
    parser.add_argument("--quick-check-seconds", type=_budget, default=QUICK_CHECK_SECONDS,
                        metavar="S", help="time budget of SQLite's quick check for damage "
                                          f"(default {QUICK_CHECK_SECONDS:g}; 0 skips it)")
    parser.add_argument("--log", action="store_true",
                        help="also record a verdict other than OK in the activity log, which "
                             "the Event Log receives (for the scheduled health check)")


def command_name(argv: Sequence[str]) -> str | None:
    """The command word of ``argv``, skipping the global options (and --db's value)."""
    skip_next = False
    for word in argv:
        if skip_next:
            skip_next = False
        elif word == "--db":
            skip_next = True
        elif not word.startswith("-"):
            return word
    return None


class CheckContext(Protocol):
    """What ``check`` needs of the command line's context."""

    @property
    def config(self) -> MaintenanceConfig:
        """The settings in force for this run."""

    @property
    def db_path(self) -> Path:
        """The database the command line names."""


@command("check", CHECK_HELP, options=add_check_arguments, own_entry=True)
def main_check(argv: list[str], out: TextIO, err: TextIO,
               parse: Callable[[list[str]], argparse.Namespace],
               open_context: Callable[[argparse.Namespace, TextIO], CheckContext]) -> int:
    """Run ``check`` and print its verdict; every failure becomes UNKNOWN (exit 3).

    ``parse`` reads the command line (raising :class:`UsageError`) and ``open_context``
    gives the settings and the database it names: those of every other command.
    """
    as_json = "--json" in argv
    debug = "--debug" in argv
    try:
        args = parse(argv)
    except UsageError as error:
        return _emit(unknown(f"bad usage: {error}", ErrorKind.INVALID.value), as_json, out)
    except SystemExit as done:  # --help and --version print, then exit 0
        return STATE_UNKNOWN if done.code not in (None, 0) else 0
    except Exception as error:  # noqa: BLE001 - even a broken parser owes the monitor a verdict
        return _emit(_bug(error, "reading the command line", debug, err), as_json, out)
    try:
        context = open_context(args, err)
        config = thresholds(context.config, args)
        result = run_check(context.db_path, config,
                           quick_check_seconds=args.quick_check_seconds)
    except QueueAdminError as error:
        result = unknown(str(error), error.kind.value)
    except KeyboardInterrupt:
        result = unknown("the check was cancelled (Ctrl+C) before it finished",
                         ErrorKind.CANCELLED.value)
    except Exception as error:  # noqa: BLE001 - a bug still owes the monitor a status line
        result = _bug(error, "the check", debug, err)
    if getattr(args, "log", False) and result.state != STATE_OK:
        _log_verdict(result, args, err)
    try:
        return _emit(result, as_json, out)
    except Exception:  # noqa: BLE001 - a status line that cannot be written is still UNKNOWN
        return STATE_UNKNOWN


#: The activity log's result word for each verdict; the Event Log's level follows from it
#: (an error for CRITICAL, a warning for WARNING and UNKNOWN).
LOGGED_RESULTS = {STATE_WARNING: "warning", STATE_CRITICAL: "found critical problems",
                  STATE_UNKNOWN: "unknown"}


def _log_verdict(result: CheckResult, args: argparse.Namespace, err: TextIO) -> None:
    """Record a WARNING, CRITICAL or UNKNOWN verdict; a log that cannot be written is a note."""
    try:
        database = getattr(args, "db", None)
        entry = ActivityEntry.now("cli check", result=LOGGED_RESULTS.get(result.state, "unknown"),
                                  message=result.status_line(), database=database)
        ActivityLog(sink=SystemLogSink(enabled=setting_switch(MaintenanceConfig.load))
                    ).append(entry)
    except Exception as error:  # noqa: BLE001 - the monitor's verdict comes first
        err.write(f"queue-admin-cli check: warning: the activity log was not updated ({error})\n")


def _bug(error: Exception, doing: str, debug: bool, err: TextIO) -> CheckResult:
    """UNKNOWN for an unexpected error, with the traceback on request."""
    if debug:
        traceback.print_exc(file=err)
    return unknown(f"{doing} failed unexpectedly ({type(error).__name__}: {error})"
                   + ("" if debug else "; run with --debug for the traceback"),
                   ErrorKind.BUG.value)


def thresholds(config: MaintenanceConfig, args: argparse.Namespace) -> MaintenanceConfig:
    """The settings with the command line's thresholds and backup folder put over them.

    Raises :class:`ConfigError` when a warning level ends up above its critical level.
    """
    overrides: dict[str, object] = {
        name: getattr(args, name) for _option, name, _text in THRESHOLD_OPTIONS
        if getattr(args, name, None) is not None}
    if getattr(args, "dir", None) is not None:
        overrides["backup_dir"] = Path(args.dir)
    chosen = dataclasses.replace(config, **overrides)
    chosen.validate()
    return chosen


def _emit(result: CheckResult, as_json: bool, out: TextIO) -> int:
    out.write(json_line(result.as_dict()) if as_json else result.text())
    return result.state if result.state in (0, 1, 2) else STATE_UNKNOWN


__all__ = ["CHECK_HELP", "add_check_arguments", "command_name", "main_check", "thresholds"]
