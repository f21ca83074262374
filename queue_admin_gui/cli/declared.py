"""Each command declared once, beside its handler: name, help, options, handler, logging.

A command module decorates its handler with :func:`command`; the parser, the dispatch and
the activity log (and through it the Event Log, which takes every logged command's runs as
maintenance) all read :data:`DECLARED`. Adding a command is adding one decorated function.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .output import CommandResult
    from .program import Context

Handler = Callable[["Context"], "CommandResult"]
Options = Callable[[argparse.ArgumentParser], None]
DeclaredFunction = TypeVar("DeclaredFunction", bound=Callable[..., Any])


def no_options(parser: argparse.ArgumentParser) -> None:
    """A command that takes only the global options."""


@dataclass(frozen=True)
class Command:
    """One command of ``queue-admin-cli``.

    ``options`` adds the command's own arguments to its parser. ``logged`` puts its runs in
    the activity log and so in the Event Log; ``logged_when`` narrows that to some runs
    (``leases`` only when it requeues). A command with ``own_entry`` is run before parsing
    by its own entry point (``check``, whose exit codes follow the monitoring plugins).
    """

    name: str
    help: str
    run: Handler | None
    options: Options = no_options
    logged: bool = False
    logged_when: Callable[[argparse.Namespace], bool] | None = None
    own_entry: bool = False

    def is_logged(self, args: argparse.Namespace) -> bool:
        """Whether this run lands in the activity log (and the Event Log)."""
        if not self.logged:
            return False
        return self.logged_when(args) if self.logged_when is not None else True


#: Every command, in the order the modules declared them.
DECLARED: dict[str, Command] = {}


def command(name: str, help_text: str, *, options: Options = no_options, logged: bool = False,
            logged_when: Callable[[argparse.Namespace], bool] | None = None,
            own_entry: bool = False) -> Callable[[DeclaredFunction], DeclaredFunction]:
    """Declare the decorated handler as the command ``name`` (see :class:`Command`)."""
    def declare(run: DeclaredFunction) -> DeclaredFunction:
        if name in DECLARED:
            raise ValueError(f"the command {name!r} is declared twice")
        DECLARED[name] = Command(name, help_text, None if own_entry else run, options,
                                 logged, logged_when, own_entry)
        return run
    return declare
