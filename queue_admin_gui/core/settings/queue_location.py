"""Where the queue database is, and why there: the one answer the CLI and the window share.

The order is the same everywhere: a path given on the command line (``--db``), else the
``PRISMQ_QUEUE_DB_PATH`` environment variable the PrismQ workers use, else the path saved in
the settings file, else the platform default (``C:/Data/PrismQ/queue/queue.db`` on
Windows). The source travels with the path, so an error or the start page can say where a
path came from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..files.db_files import ENV_DB_PATH, default_db_path

SOURCE_OPTION = "--db"
SOURCE_ENVIRONMENT = ENV_DB_PATH
SOURCE_DEFAULT = "the platform default"


@dataclass(frozen=True)
class QueueLocation:
    """A queue database path and where it came from ("--db", "PRISMQ_QUEUE_DB_PATH", ...)."""

    path: Path
    source: str

    @property
    def from_environment(self) -> bool:
        """True when ``PRISMQ_QUEUE_DB_PATH`` chose the path."""
        return self.source == SOURCE_ENVIRONMENT


def queue_location(explicit: str | Path | None = None, configured: str | Path | None = None,
                   configured_source: str = "the settings file") -> QueueLocation:
    """The queue database to use: ``explicit``, else the environment, else ``configured``.

    ``configured`` is the settings file's ``db_path`` (``configured_source`` names that
    file); with none of them set, the platform default. The path is made absolute.
    """
    if explicit is not None:
        return QueueLocation(Path(explicit).absolute(), SOURCE_OPTION)
    from_environment = os.environ.get(ENV_DB_PATH)
    if from_environment:
        return QueueLocation(Path(from_environment).absolute(), SOURCE_ENVIRONMENT)
    if configured is not None:
        return QueueLocation(Path(configured).absolute(), configured_source)
    return QueueLocation(default_db_path().absolute(), SOURCE_DEFAULT)
