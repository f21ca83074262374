"""The files SQLite keeps beside a database: the one place their names are spelled.

``-wal`` (the write-ahead log), ``-shm`` (the WAL's shared-memory index) and ``-journal``
(the rollback journal of the other journal modes). Every module that needs one asks here;
``tests/core/test_side_files.py`` fails when another module of the package writes one of
the suffixes. Nothing here imports the rest of the project, so even ``core/errors.py`` may
use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

WAL_SUFFIX = "-wal"
SHM_SUFFIX = "-shm"
JOURNAL_SUFFIX = "-journal"
#: Every side file SQLite may keep beside a database, the two that can hold data first
#: (the order a damaged database's files are moved aside in).
SIDE_FILE_SUFFIXES = (WAL_SUFFIX, JOURNAL_SUFFIX, SHM_SUFFIX)
#: The longest suffix: room a name must leave for its side files.
LONGEST_SUFFIX = max(len(suffix) for suffix in SIDE_FILE_SUFFIXES)


def side_file(database: str | Path, suffix: str) -> Path:
    """The side file ``suffix`` (one of :data:`SIDE_FILE_SUFFIXES`) beside ``database``."""
    return Path(f"{database}{suffix}")


def side_files(database: str | Path,
               suffixes: Iterable[str] = SIDE_FILE_SUFFIXES) -> dict[str, Path]:
    """The side files beside ``database`` by suffix, in the order given (existing or not)."""
    return {suffix: side_file(database, suffix) for suffix in suffixes}
