"""``queue-admin-cli``: the maintenance engine for scripts and Windows Task Scheduler.

A package of its own that calls the engine (``core/``) only, never Qt: the parser, the
context and ``main`` (``program.py``), the commands (``commands.py``), output and exit codes
(``output.py``), the monitoring-plugin ``check`` (``check.py``) and the point-in-time archive
commands (``archive.py``). ``queue_admin_gui.cli:main`` is the console entry point.

The program's modules load on first use, inside :func:`main`: an install that lacks one of
them (or any module they import) still gives ``check`` its monitoring-plugin answer,
UNKNOWN with exit 3, instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

#: The monitoring-plugin exit code for UNKNOWN (``check`` only).
_CHECK_UNKNOWN = 3
_PROGRAM_NAMES = ("CancelOnInterrupt", "Context", "UsageError", "build_parser")


def main(argv: list[str] | None = None, *, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run one command and return its exit code (the console entry point)."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        from .program import main as run_program
    except Exception as error:  # noqa: BLE001 - a broken install must still answer a monitor
        if not _is_check(words):
            raise
        stream = out if out is not None else sys.stdout
        stream.write(f"QUEUE UNKNOWN - queue-admin-cli cannot start ({type(error).__name__}: "
                     f"{error}); reinstall the tool\n")
        return _CHECK_UNKNOWN
    return run_program(words, out=out, err=err)


def _is_check(words: list[str]) -> bool:
    """True when the command word (after the global options and --db's value) is ``check``."""
    skip_next = False
    for word in words:
        if skip_next:
            skip_next = False
        elif word == "--db":
            skip_next = True
        elif not word.startswith("-"):
            return word == "check"
    return False


def __getattr__(name: str) -> Any:
    """The program's parser, context and errors, loaded on first use."""
    if name in _PROGRAM_NAMES:
        from . import program

        return getattr(program, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CancelOnInterrupt", "Context", "UsageError", "build_parser", "main"]
