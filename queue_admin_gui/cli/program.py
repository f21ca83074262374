"""``queue-admin-cli``: the maintenance engine for scripts and Windows Task Scheduler.

The command line is a contract: commands, options, ``--json`` fields and exit codes are
documented in ``docs/cli.md`` and scripts rely on them. Exit 0 when done, 1 when the
operation failed or found a problem, 2 for bad usage or an unusable file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from .. import __version__
from ..core.activity import (
    RESULT_CANCELLED,
    RESULT_FAILED,
    RESULT_SUCCEEDED,
    ActivityEntry,
    ActivityLog,
)
from ..core.errors import ErrorKind, QueueAdminError
from ..core.event_log import SystemLogSink, setting_switch
from ..core.files.db_files import ENV_DB_PATH
from ..core.settings.config import MaintenanceConfig
from ..core.settings.folders import config_file_path
from ..core.settings.queue_location import QueueLocation, queue_location
from . import commands  # noqa: F401 - declares every command
from .check import command_name, main_check
from .declared import DECLARED
from .output import (
    EXIT_FAILED,
    EXIT_USAGE,
    PROG,
    ProgressLine,
    UsageError,
    emit,
    emit_error,
    exit_code_for,
)


class _Parser(argparse.ArgumentParser):
    """An argparse parser that reports mistakes to :func:`main` instead of exiting."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        """Raise instead of printing and exiting, so --json can report the mistake too."""
        raise UsageError(f"{message}; run '{self.prog} --help' for usage.")


def _add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--db, --json and --debug, accepted before or after the command name.

    The main parser holds the defaults; each command's copy leaves an option unset unless it
    is given there, so ``--json backup`` and ``backup --json`` mean the same.
    """
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--db", type=Path, metavar="PATH", default=default(None),
                        help=f"queue database (default: {ENV_DB_PATH}, the settings file, "
                             "then the platform default)")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="print one JSON object on stdout")
    parser.add_argument("--debug", action="store_true", default=default(False),
                        help="show the traceback of an unexpected error")


def build_parser() -> argparse.ArgumentParser:
    """The full command line: global options, then one sub-command."""
    parser = _Parser(prog=PROG, description=(
        "Back up, restore, checkpoint, vacuum and inspect a PrismQ SQLite task queue."),
        epilog="Exit codes: 0 done, 1 the operation failed or found a problem, "
               "2 bad usage or an unusable file.")
    _add_global_options(parser, defaults=True)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                       parser_class=_Parser)

    for declared in DECLARED.values():
        sub = subparsers.add_parser(declared.name, help=declared.help,
                                  description=declared.help)
        _add_global_options(sub, defaults=False)
        declared.options(sub)
    return parser


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command's name and its own parser, as :func:`build_parser` made them."""
    for action in parser._actions:  # noqa: SLF001 - argparse lists sub-commands nowhere else
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


class Context:
    """The parsed command line plus the settings, loaded only when a command needs them."""

    def __init__(self, args: argparse.Namespace, err: TextIO) -> None:
        self.args = args
        self.err = err
        self._config: MaintenanceConfig | None = None
        self.interrupt = CancelOnInterrupt()

    @property
    def config(self) -> MaintenanceConfig:
        """The settings file plus environment overrides (read on first use)."""
        if self._config is None:
            self._config = MaintenanceConfig.load()
        return self._config

    def _location(self) -> QueueLocation:
        if self.args.db is not None or os.environ.get(ENV_DB_PATH):
            return queue_location(self.args.db)  # the settings file is not even read
        return queue_location(None, self.config.db_path,
                              f"the settings file {config_file_path()}")

    @property
    def db_path(self) -> Path:
        """--db, else PRISMQ_QUEUE_DB_PATH, else the settings file, else the platform default."""
        return self._location().path

    @property
    def db_source(self) -> str:
        """Where :attr:`db_path` came from, for error messages."""
        return self._location().source

    def backup_dir(self) -> Path:
        """--dir, else the settings' backup folder."""
        chosen = getattr(self.args, "dir", None)
        return Path(chosen) if chosen is not None else Path(self.config.backup_dir)

    @contextlib.contextmanager
    def slow_operation(self) -> Iterator[ProgressLine]:
        """Progress and Ctrl+C-to-cancel for one slow engine call.

        Progress goes to stderr, on terminals only, never with --json; pass
        :attr:`interrupt` as the call's ``cancelled``.
        """
        progress = ProgressLine(enabled=not self.args.json, stream=self.err)
        try:
            with self.interrupt:
                yield progress
        finally:
            progress.clear()


class CancelOnInterrupt:
    """While active, the first Ctrl+C asks the running operation to stop cleanly.

    The engine checks :meth:`__call__` between steps (and inside VACUUM), then rolls back or
    removes its partial file; a second Ctrl+C stops at once.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        #: False for an operation whose last step must never be cut short (a restore):
        #: further presses then only repeat the request, and the engine stops or finishes.
        self.hard_stop = True
        self._previous: Any = None
        self._installed = False

    def __call__(self) -> bool:
        """True once the user pressed Ctrl+C."""
        return self.requested.is_set()

    def __enter__(self) -> CancelOnInterrupt:
        """Catch Ctrl+C (main thread only: Python delivers signals there)."""
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_interrupt)
            self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Put the previous Ctrl+C handler back."""
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        if self.requested.is_set() and self.hard_stop:
            raise KeyboardInterrupt
        self.requested.set()


def _wants_json(argv: Sequence[str]) -> bool:
    return "--json" in argv


def main(argv: list[str] | None = None, *, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run one command and return its exit code (the console entry point)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    if command_name(argv) == "check":  # monitoring-plugin exit codes for every outcome
        return main_check(argv, out, err, lambda words: build_parser().parse_args(words),
                          Context)
    as_json = _wants_json(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        emit_error(str(error), ErrorKind.INVALID.value, as_json, out, err)
        return EXIT_USAGE
    except SystemExit as done:  # --help and --version print, then exit 0
        return int(done.code or 0)
    except Exception as error:  # noqa: BLE001 - a bug in the parser: one line, not a traceback
        message = _bug_hint(f"reading the command line failed unexpectedly "
                            f"({type(error).__name__}: {error})", "--debug" in argv, err)
        emit_error(message, ErrorKind.BUG.value, as_json, out, err)
        return EXIT_FAILED
    context = Context(args, err)
    run = DECLARED[args.command].run
    assert run is not None  # a command with its own entry point returned above
    started = time.monotonic()
    try:
        result = run(context)
    except QueueAdminError as error:
        message = str(error)
        if error.kind is ErrorKind.BUG:
            message = _bug_hint(message, args.debug, err)
        outcome = RESULT_CANCELLED if error.kind is ErrorKind.CANCELLED else RESULT_FAILED
        _record_activity(context, outcome, message, started)
        emit_error(message, error.kind.value, args.json, out, err)
        return exit_code_for(error)
    except KeyboardInterrupt:
        message = (f"{args.command} was cancelled (Ctrl+C); the engine left the data as it "
                   "was or as a completed step.")
        _record_activity(context, RESULT_CANCELLED, message, started)
        emit_error(message, ErrorKind.CANCELLED.value, args.json, out, err)
        return EXIT_FAILED
    except Exception as error:  # a bug: one line, the traceback only on request
        message = _bug_hint(f"{args.command} failed unexpectedly "
                            f"({type(error).__name__}: {error})", args.debug, err)
        _record_activity(context, RESULT_FAILED, message, started)
        emit_error(message, ErrorKind.BUG.value, args.json, out, err)
        return EXIT_FAILED
    if result.problem is None:
        _record_activity(context, result.shortfall or RESULT_SUCCEEDED, result.headline,
                         started)
    else:
        _record_activity(context, result.shortfall or RESULT_FAILED, str(result.problem),
                         started)
    return emit(result, args.json, out, err)


def _is_logged(args: argparse.Namespace) -> bool:
    return DECLARED[args.command].is_logged(args)


def _record_activity(context: Context, outcome: str, message: str, started: float) -> None:
    """Add the run to the activity log the window shows; a log failure is only a warning.

    Whatever goes wrong here (even a bug or a second Ctrl+C) never replaces the command's
    own report: scripts get exactly one JSON object for every outcome.
    """
    try:
        _append_activity(context, outcome, message, started)
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - the report comes first
        context.err.write(f"{PROG}: warning: the activity log was not updated "
                          f"({type(error).__name__}: {error}).\n")


def _append_activity(context: Context, outcome: str, message: str, started: float) -> None:
    args = context.args
    if not _is_logged(args):
        return
    parameters = {key: value for key, value in vars(args).items()
                  if key not in ("command", "db", "json", "debug") and value not in (None, False)}
    try:
        database: Path | None = context.db_path
    except Exception:  # noqa: BLE001 - the entry is still worth writing without it
        database = None
    entry = ActivityEntry.now(f"cli {args.command}", parameters=parameters, result=outcome,
                              message=message, duration_seconds=time.monotonic() - started,
                              database=database)
    try:
        ActivityLog(sink=SystemLogSink(enabled=setting_switch(lambda: context.config))
                    ).append(entry)
    except QueueAdminError as error:
        context.err.write(f"{PROG}: warning: {error}\n")


def _bug_hint(message: str, debug: bool, err: TextIO) -> str:
    """Add the --debug hint to a bug's message, or print the traceback when debugging."""
    if debug:
        traceback.print_exc(file=err)
        return message
    return message.rstrip(".") + "; run with --debug for the traceback."
