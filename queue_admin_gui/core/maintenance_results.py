"""What the maintenance operations return: one frozen result type per operation.

The window reads these fields by name; scripts and the CLI's ``--json`` output read the
dicts the older methods return, which are each result's ``as_dict()`` (same keys, same
values), so both stay in step by construction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .measurements.stats import DatabaseStats

#: What the activity log records for an operation that ran but did not do all it was asked.
DID_NOT_FINISH = "did not finish"


@dataclass(frozen=True)
class CheckpointResult:
    """What a checkpoint did, and whether it finished.

    ``busy``, ``log`` and ``checkpointed`` are SQLite's own answer to the checkpoint
    statement; ``log_frames`` and ``checkpointed_frames`` count the WAL frames before a
    TRUNCATE emptied it (the same values for the other modes).
    """

    mode: str
    busy: int
    log: int
    checkpointed: int
    log_frames: int
    checkpointed_frames: int
    wal_bytes_before: int
    wal_bytes_after: int
    seconds: float

    @property
    def finished(self) -> bool:
        """True only when nothing kept the checkpoint from copying every WAL frame."""
        return self.busy == 0 and self.log == self.checkpointed

    @property
    def shortfall(self) -> str | None:
        """``"did not finish"`` when the checkpoint ran but left frames behind, else None."""
        return None if self.finished else DID_NOT_FINISH

    def as_dict(self) -> dict[str, Any]:
        """The dict :meth:`~.compat.QueueMaintenance.checkpoint` has always returned."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class IntegrityResult:
    """What SQLite's integrity or quick check found; ``problems`` is empty when clean.

    ``limit`` is how many problems the check stops at: ``problem_count`` equal to it means
    "at least that many".
    """

    quick: bool
    problems: list[str]
    limit: int

    @property
    def ok(self) -> bool:
        """True when the check found nothing wrong."""
        return not self.problems

    @property
    def problem_count(self) -> int:
        """How many problems the check reported (it stops at ``limit``)."""
        return len(self.problems)

    def count_text(self) -> str:
        """"1 problem", "3 problems", "at least 100 problems"."""
        count = self.problem_count
        noun = "problem" if count == 1 else "problems"
        return f"at least {count} {noun}" if count >= self.limit else f"{count} {noun}"

    @property
    def shortfall(self) -> str | None:
        """``"found N problems"`` when the check found any, else None (for the activity log)."""
        return None if self.ok else f"found {self.count_text()}"

    @property
    def lines(self) -> list[str]:
        """``["ok"]`` when clean, else the problems: what :meth:`integrity_check` returns."""
        return list(self.problems) if self.problems else ["ok"]



@dataclass(frozen=True)
class VacuumResult:
    """What VACUUM gave back: logical sizes (pages x page size) before and after."""

    size_before: int
    size_after: int
    file_size_after: int
    seconds: float

    @property
    def freed_bytes(self) -> int:
        """Bytes the rebuild gave back (never negative)."""
        return max(0, self.size_before - self.size_after)

    def as_dict(self) -> dict[str, Any]:
        """The dict :meth:`~.compat.QueueMaintenance.vacuum` has always returned."""
        return {
            "size_before": self.size_before,
            "size_after": self.size_after,
            "freed_bytes": self.freed_bytes,
            "file_size_after": self.file_size_after,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class AnalyzeResult:
    """Which table ANALYZE refreshed (None: the whole file), and how long it took."""

    table: str | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The dict :meth:`~.compat.QueueMaintenance.analyze` has always returned."""
        return {"table": self.table, "seconds": self.seconds}


@dataclass(frozen=True)
class PragmaOptimizeResult:
    """How long ``PRAGMA optimize`` took (it reports nothing else)."""

    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The dict :meth:`~.compat.QueueMaintenance.pragma_optimize` has always returned."""
        return {"seconds": self.seconds}


@dataclass(frozen=True)
class OptimizeResult:
    """ANALYZE, and VACUUM when asked: the statistics before and after, and the VACUUM's own."""

    vacuum: VacuumResult | None
    stats_before: DatabaseStats
    stats_after: DatabaseStats
    seconds: float

    @property
    def analyzed(self) -> bool:
        """Always True: an optimize that returns has run ANALYZE."""
        return True

    @property
    def vacuumed(self) -> bool:
        """True when the file was rebuilt too (``full``)."""
        return self.vacuum is not None

    def as_dict(self) -> dict[str, Any]:
        """The dict :meth:`~.compat.QueueMaintenance.optimize` has always returned."""
        return {
            "analyzed": self.analyzed,
            "vacuumed": self.vacuumed,
            "vacuum": self.vacuum.as_dict() if self.vacuum is not None else None,
            "stats_before": self.stats_before.as_dict(),
            "stats_after": self.stats_after.as_dict(),
            "seconds": self.seconds,
        }
