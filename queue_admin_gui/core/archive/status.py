"""What an archive folder holds: generations, the gaps between them, restorable instants, size.

By default every file is checked against its checksums first (:func:`check_generation`), so a
damaged, cut or missing file shows as a gap with its reason, its file and the instants it
costs, and the restorable span never includes an instant that could not be rebuilt exactly.
The last validation (:mod:`.validation`) is read from ``validation.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import QueueAdminError
from .store import (
    LOCK_FILE,
    ArchiveDamage,
    Generation,
    list_generations,
    lock_is_stale,
    missing_generations,
    read_lock,
    read_validation,
)


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
    #: What is wrong with its files (empty when nothing was found).
    damage: list[str] = field(default_factory=list)
    #: Wall-clock steps the archiver saw while writing it: {"at": stamp, "seconds": moved}.
    clock_steps: list[dict[str, float]] = field(default_factory=list)


@dataclass
class ArchiveGap:
    """A stretch that cannot be rebuilt, and why (with the damaged file, when damage is why)."""

    after: float
    before: float
    reason: str
    #: "not archived" (nothing was archived then), "damaged" (a file is damaged or missing)
    #: or "validation" (a validation found the rebuilt state wrong).
    kind: str = "not archived"
    file: str | None = None


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
    #: True when every file was checked against its checksums (not only looked at).
    checked: bool = False
    #: Every damage found, also when another generation covers the instants it held.
    damage: list[ArchiveDamage] = field(default_factory=list)
    #: The last validation's record (see :mod:`.validation`), or None when none ran.
    validation: dict[str, Any] | None = None


def archive_status(archive: str | Path, *, check: bool = True) -> ArchiveStatus:
    """Read the archive folder and describe it; an empty or missing folder has no generations.

    ``check``: read every file and check it against its checksums; without it only what can
    be seen without reading the files is found (a missing or resized file, generation.json).
    """
    folder = Path(archive)
    status = ArchiveStatus(folder, checked=check)
    generations = list_generations(folder, check=check)
    for generation in generations:
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
            damage=[f"{damage.reason}: {damage.file}" for damage in generation.damage],
            clock_steps=list(generation.data.get("clock_steps") or [])))
        status.size_bytes += generation.size_bytes
        status.damage.extend(generation.damage)
    spans = [(g.restorable[0], g.restorable[1], g) for g in generations if g.restorable]
    merged = _merge([(start, end) for start, end, _ in spans])
    if merged:
        status.earliest = merged[0][0]
        status.latest = merged[-1][1]
    losses = [_loss(generation, damage) for generation in generations
              for damage in generation.damage]
    for damage in missing_generations(folder, generations):
        status.damage.append(damage)
        start = damage.lost_after if damage.lost_after is not None else status.earliest or 0.0
        losses.append((start, max(start, damage.lost_until or start), damage))
    for (_, previous_end), (next_start, _) in zip(merged, merged[1:], strict=False):
        inside = [loss for loss in losses if loss[0] < next_start and loss[1] > previous_end]
        if inside:
            start, end, damage = inside[0]
            status.gaps.append(_damage_gap(previous_end, next_start, damage))
            continue
        starting = next(g for start, _, g in spans if start == next_start)
        status.gaps.append(ArchiveGap(previous_end, next_start,
                                      str(starting.data.get("reason") or "")))
    for start, end, damage in losses:  # damage beyond the restorable span, or with none
        for piece_start, piece_end in _uncovered(start, end, merged):
            if status.latest is not None and piece_start < status.latest and \
                    status.earliest is not None and piece_end > status.earliest:
                continue  # inside the span: already a gap between two intact stretches
            status.gaps.append(_damage_gap(piece_start, piece_end, damage))
    status.gaps.sort(key=lambda gap: gap.after)
    status.validation = read_validation(folder)
    lock = read_lock(folder)
    if lock is not None:
        try:
            modified = (folder / LOCK_FILE).stat().st_mtime
        except OSError:
            modified = 0.0
        if not lock_is_stale(lock, modified, time.time()):
            status.archiver = lock
    return status


def _damage_gap(after: float, before: float, damage: ArchiveDamage) -> ArchiveGap:
    return ArchiveGap(after, before, damage.reason, damage.kind, str(damage.file))


def _loss(generation: Generation, damage: ArchiveDamage) -> tuple[float, float, ArchiveDamage]:
    """The instants a damage took: from the last intact one to the newest it held."""
    start = damage.lost_after
    if start is None:
        start = generation.snapshot_at or float(generation.data.get("started_at") or 0)
    end = damage.lost_until
    if end is None:
        ended = generation.data.get("ended_at")
        end = float(ended) if isinstance(ended, int | float) else time.time()
    return start, max(start, end), damage


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping or touching spans joined, oldest first."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _uncovered(start: float, end: float, merged: list[tuple[float, float]]
               ) -> list[tuple[float, float]]:
    """The parts of (start, end] no restorable span covers."""
    pieces = []
    cursor = start
    for span_start, span_end in merged:
        if span_end <= cursor or span_start >= end:
            continue
        if span_start > cursor:
            pieces.append((cursor, span_start))
        cursor = max(cursor, span_end)
    if cursor < end:
        pieces.append((cursor, end))
    return pieces


def archive_findings(archive: str | Path) -> list[str]:
    """What the monitoring check reports as CRITICAL about an archive: damage, failed validation.

    Every file is checked against its checksums; a folder that does not exist (no archive)
    or cannot be read gives nothing here (the window and ``archive-status`` say why).
    """
    folder = Path(archive)
    if not folder.is_dir():
        return []
    try:
        status = archive_status(folder)
    except QueueAdminError:
        return []
    findings = [f"the point-in-time archive is damaged: {damage.reason} in '{damage.file}'"
                for damage in status.damage if damage.kind == "damaged"]
    last = (status.validation or {}).get("last")
    if isinstance(last, dict) and last.get("ok") is False:
        findings.append(f"the point-in-time archive's last validation failed: "
                        f"{str(last.get('sentence', '')).rstrip('.')}")
    elif status.validation is not None and "damaged" in status.validation:
        findings.append(f"the point-in-time archive is damaged: {status.validation['damaged']}")
    return findings
