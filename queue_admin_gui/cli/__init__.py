"""``queue-admin-cli``: the maintenance engine for scripts and Windows Task Scheduler.

A package of its own that calls the engine (``core/``) only, never Qt: the parser, the
context and ``main`` (``program.py``), the commands (``commands.py``), output and exit codes
(``output.py``), the monitoring-plugin ``check`` (``check.py``) and the point-in-time archive
commands (``archive.py``). ``queue_admin_gui.cli:main`` is the console entry point.
"""

from .program import CancelOnInterrupt, Context, UsageError, build_parser, main

__all__ = ["CancelOnInterrupt", "Context", "UsageError", "build_parser", "main"]
