"""The latest reading behind the figures on screen, and the health that follows from it.

One sample a second is the window's single source for sizes and page counts: the status bar,
the WAL and Stats tabs, the banner and the health badge all show the same reading, and each
says when it was read. The slower health read (stale leases, backups, free space) supplies
only what a sample does not measure; :func:`measurements_with_sample` puts the two together.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .health import HealthMeasurements
from .sampling import Sample


def fragmentation_percent(sample: Sample) -> float:
    """Share of the database's pages that are free, in percent (0 for an empty file)."""
    if sample.page_count <= 0:
        return 0.0
    return sample.freelist_count / sample.page_count * 100.0


def measurements_with_sample(measured: HealthMeasurements,
                             sample: Sample) -> HealthMeasurements:
    """``measured`` with the WAL size, free pages and database size of ``sample``.

    Every other field (leases, backups, free space, anything the health read adds) is kept.
    """
    return dataclasses.replace(
        measured,
        wal_size_bytes=sample.wal_bytes,
        fragmentation_percent=fragmentation_percent(sample),
        database_bytes=sample.db_bytes + sample.wal_bytes,
    )


def reading_time(moment: float) -> str:
    """The local wall-clock time of a reading as the window shows it ("14:03:07")."""
    return datetime.fromtimestamp(moment).strftime("%H:%M:%S")


def _field(result: Any, *names: str, default: Any = None) -> Any:
    """A checkpoint result's field, whether the result is a dict or a typed object."""
    for name in names:
        if isinstance(result, dict):
            if name in result:
                return result[name]
        elif hasattr(result, name):
            return getattr(result, name)
    return default


@dataclass(frozen=True)
class CheckpointSummary:
    """What one checkpoint run achieved, in the terms the "Last checkpoint" panel uses."""

    mode: str
    busy: bool
    log_frames: int
    checkpointed_frames: int

    @classmethod
    def of(cls, result: Any) -> CheckpointSummary:
        """Read a checkpoint result (the dict ``QueueMaintenance.checkpoint`` returns)."""
        return cls(
            mode=str(_field(result, "mode", default="?")),
            busy=bool(int(_field(result, "busy", default=0))),
            log_frames=int(_field(result, "log_frames", "log", default=-1)),
            checkpointed_frames=int(_field(result, "checkpointed_frames", "checkpointed",
                                           default=-1)),
        )

    @property
    def wal_in_use(self) -> bool:
        """False when the database is not in WAL mode (SQLite reports -1 frames)."""
        return self.log_frames >= 0

    @property
    def frames_left(self) -> int:
        """Frames still in the WAL that were not copied into the database."""
        return max(0, self.log_frames - max(0, self.checkpointed_frames))

    @property
    def finished(self) -> bool:
        """True only when every frame was copied and nothing kept the checkpoint busy."""
        return self.wal_in_use and not self.busy and self.frames_left == 0

    def finished_text(self) -> str:
        """The panel's "Finished" value: "yes", or what was left and why."""
        if not self.wal_in_use:
            return "no: the database is not in WAL mode"
        if self.finished:
            return "yes"
        left = f"{self.frames_left:,} of {self.log_frames:,} frames left"
        if self.busy:
            return f"no: busy, {left}" if self.frames_left else "no: busy, WAL not reset"
        return f"no: {left}"

    def sentence(self, wal_bytes_after: int | None = None) -> str:
        """One plain sentence about the run: what was copied, what was left and what to do."""
        log, done = self.log_frames, max(0, self.checkpointed_frames)
        if not self.wal_in_use:
            return "The database is not in WAL mode, so there was nothing to checkpoint."
        if self.busy:
            return (f"The {self.mode} checkpoint could not finish: another connection (a "
                    "long-running reader or a writer) is holding the WAL; "
                    f"{done:,} of {log:,} frames were copied. Close the program holding a "
                    "read transaction open (the WAL tab names the programs with the database "
                    "open), then run a TRUNCATE checkpoint.")
        if self.frames_left:
            return (f"{self.frames_left:,} of {log:,} frames were left in the WAL because a "
                    "reader is still using them; no checkpoint can reset it until that reader "
                    "ends. Close the program holding a read transaction open (the WAL tab "
                    "names the programs with the database open), then run a TRUNCATE "
                    "checkpoint.")
        tail = ("; the -wal file is now empty." if self.mode == "TRUNCATE"
                and wal_bytes_after == 0 else ".")
        return f"All {log:,} frames were copied into the database{tail}"
