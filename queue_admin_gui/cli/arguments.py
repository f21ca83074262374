"""What every command checks in its arguments before it calls the engine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ErrorKind, QueueMaintenanceError
from ..core.files.file_access import file_problem

if TYPE_CHECKING:
    from .program import Context


def database_path(context: Context, action: str) -> Path:
    """The database path, refused with a sentence naming where it came from and what is wrong.

    A folder, a file this account may not read and a missing file each say so.
    """
    path = context.db_path
    problem = file_problem(path)
    if problem is not None:
        kind, what, advice = problem
        if kind is ErrorKind.NOT_FOUND:
            advice = "pass --db PATH or set PRISMQ_QUEUE_DB_PATH"
        raise QueueMaintenanceError(
            f"{action} failed: the database '{path}' (from {context.db_source}) {what}; "
            f"{advice}.", kind)
    return path
