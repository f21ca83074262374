"""What an archive folder holds: generations, the gaps between them, restorable instants, size."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store import LOCK_FILE, list_generations, lock_is_stale, read_lock


@dataclass
class GenerationSummary:
    """One generation as the status shows it (instants are seconds since the epoch)."""

    id: str
    started_at: float
    reason: str
    restorable_from: float | None
    restorable_until: float | None
    transactions: int
    size_bytes: int
    ended_at: float | None
    end_reason: str | None
    database: str | None = None
    #: Wall-clock steps the archiver saw while writing it: {"at": stamp, "seconds": moved}.
    clock_steps: list[dict[str, float]] = field(default_factory=list)


@dataclass
class ArchiveGap:
    """A stretch that cannot be rebuilt, between two generations, and why."""

    after: float
    before: float
    reason: str


@dataclass
class ArchiveStatus:
    """The archive as a whole."""

    folder: Path
    generations: list[GenerationSummary] = field(default_factory=list)
    gaps: list[ArchiveGap] = field(default_factory=list)
    earliest: float | None = None
    latest: float | None = None
    size_bytes: int = 0
    #: The archiver writing here now (pid, host, database), when its lock is fresh.
    archiver: dict[str, Any] | None = None


def archive_status(archive: str | Path) -> ArchiveStatus:
    """Read the archive folder and describe it; an empty or missing folder has no generations."""
    folder = Path(archive)
    status = ArchiveStatus(folder)
    restorable = []
    for generation in list_generations(folder):
        span = generation.restorable
        status.generations.append(GenerationSummary(
            id=generation.id, started_at=float(generation.data.get("started_at") or 0),
            reason=str(generation.data.get("reason") or ""),
            restorable_from=span[0] if span else None,
            restorable_until=span[1] if span else None,
            transactions=generation.transactions, size_bytes=generation.size_bytes,
            ended_at=generation.data.get("ended_at"),
            end_reason=generation.data.get("end_reason"),
            database=generation.data.get("database"),
            clock_steps=list(generation.data.get("clock_steps") or [])))
        status.size_bytes += generation.size_bytes
        if span is not None:
            restorable.append((span, str(generation.data.get("reason") or "")))
    for (previous, _), (current, reason) in zip(restorable, restorable[1:], strict=False):
        if current[0] > previous[1]:
            status.gaps.append(ArchiveGap(previous[1], current[0], reason))
    if restorable:
        status.earliest = min(span[0] for span, _ in restorable)
        status.latest = max(span[1] for span, _ in restorable)
    lock = read_lock(folder)
    if lock is not None:
        try:
            modified = (folder / LOCK_FILE).stat().st_mtime
        except OSError:
            modified = 0.0
        if not lock_is_stale(lock, modified, time.time()):
            status.archiver = lock
    return status
