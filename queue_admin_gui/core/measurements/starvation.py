"""Checkpoint starvation: a reader keeps the WAL from being reset, said once and the same way.

SQLite copies WAL frames back into the database only up to the oldest snapshot a reader
still uses, and starts the log over only when no reader uses it. A connection that holds a
read transaction open (a stuck worker, a report, a database browser) therefore makes the
``-wal`` file grow without bound, and no checkpoint mode can shrink it until that reader ends.

:func:`diagnose_starvation` sees it in the samples the monitor already takes, without
running a checkpoint itself. Two signals count, each only while the ``-wal`` file kept growing:

- the ``-shm`` header (its first 100 bytes: ``mxFrame``, the frames in the log, and
  ``nBackfill``, the frames already copied back; the lock bytes after them are never
  touched, so the read is safe on Windows and POSIX alike) shows the copied-back count not
  moving over several samples while more than an autocheckpoint's worth of frames wait
  behind it: the workers' own automatic checkpoints run after every commit past 1000 frames
  and copy nothing;
- a checkpoint run from this tool left frames behind, or could not reset the log, and the
  WAL grew after it.

:func:`starvation_advice` is the one piece of advice the banner, the health tooltip and the
WAL tab all show, with the programs that hold the database when they are known.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import format_bytes
from .health import HealthFinding, HealthLevel, HealthReport
from .holders import HolderLookup
from .sampling import AUTOCHECKPOINT_FRAMES, CheckpointOutcome, SampleHistory

#: Samples in a row with the copied-back count unchanged before the header counts as proof.
STUCK_SAMPLES = 3
#: How far back the diagnosis looks (seconds).
DIAGNOSIS_WINDOW_SECONDS = 300.0
#: The badge's few words for it.
STARVATION_SHORT = "WAL pinned"


@dataclass(frozen=True)
class Starvation:
    """Evidence that a reader pins the WAL: what was seen, and how big the WAL is now."""

    evidence: str
    wal_bytes: float
    #: When the evidence starts (epoch seconds): the first sample of the stuck stretch.
    since: float


def diagnose_starvation(history: SampleHistory, checkpoints: Sequence[CheckpointOutcome],
                        now: float, window_seconds: float = DIAGNOSIS_WINDOW_SECONDS
                        ) -> Starvation | None:
    """The evidence that a long reader keeps the WAL from being reset, or None.

    Looks at the samples of the last ``window_seconds`` (see the module text for the two
    signals). Gaps are skipped; a WAL that did not grow is never called starved.
    """
    rows = history.since(now - window_seconds,
                         ("time", "wal_bytes", "wal_frames", "backfilled_frames"))
    rows = rows[~np.isnan(rows[:, 1])]
    if len(rows) < 2:
        return None
    wal_now = float(rows[-1, 1])
    recent = [c for c in checkpoints if c.time >= now - window_seconds]
    if recent and recent[-1].left_frames_behind:
        last = recent[-1]
        after = rows[rows[:, 0] >= last.time]
        before = rows[rows[:, 0] <= last.time]
        grew = len(after) and len(before) and after[-1, 1] > before[-1, 1]
        if grew or (len(recent) >= 2 and recent[-2].left_frames_behind
                    and rows[-1, 1] > rows[0, 1]):
            copied = max(0, last.checkpointed_frames)
            evidence = (f"the last {last.mode} checkpoint copied only {copied} of "
                        f"{last.log_frames} frames" if copied < last.log_frames else
                        f"the last {last.mode} checkpoint could not reset the log")
            return Starvation(evidence, wal_now, float(last.time))
    frames = rows[~np.isnan(rows[:, 2]) & ~np.isnan(rows[:, 3])]
    if len(frames) < STUCK_SAMPLES:
        return None
    stuck_at = frames[-1, 3]
    moved = np.nonzero((frames[:, 3] != stuck_at) | (frames[:, 2] < stuck_at))[0]
    stuck = frames[moved[-1] + 1:] if len(moved) else frames
    if len(stuck) < STUCK_SAMPLES:
        return None
    behind = stuck[:, 2] - stuck_at
    growing = stuck[-1, 1] > stuck[0, 1] and stuck[-1, 2] > stuck[0, 2]
    if growing and behind[-1] > AUTOCHECKPOINT_FRAMES and behind[-2] > AUTOCHECKPOINT_FRAMES:
        evidence = (f"checkpoints have copied nothing past frame {int(stuck_at)} while "
                    f"{int(behind[-1])} newer frames wait")
        return Starvation(evidence, wal_now, float(stuck[0, 0]))
    return None


def starvation_advice(starvation: Starvation, holders: HolderLookup | None = None) -> str:
    """The one sentence the banner, the health tooltip and the WAL tab show."""
    if holders is None:
        who = ("a stuck worker, a report or a database browser window; looking up which "
               "programs have the database open")
    elif holders.unavailable or not holders.holders:
        who = "a stuck worker, a report or a database browser window. " + holders.sentence()
    else:
        who = holders.sentence()
    return (f"A long-running reader is keeping the WAL from being reset ({starvation.evidence}"
            f"; the WAL has grown to {format_bytes(starvation.wal_bytes)}), so no checkpoint "
            f"can shrink it yet. Find the program holding a read transaction open ({who}), "
            "close it or end its transaction, then run a TRUNCATE checkpoint.")


def diagnose_long_reader(history: SampleHistory, checkpoints: Sequence[CheckpointOutcome],
                         now: float, window_seconds: float = DIAGNOSIS_WINDOW_SECONDS
                         ) -> str | None:
    """:func:`starvation_advice` when :func:`diagnose_starvation` finds evidence, else None."""
    found = diagnose_starvation(history, checkpoints, now, window_seconds)
    return None if found is None else starvation_advice(found)


def report_with_starvation(report: HealthReport, advice: str | None) -> HealthReport:
    """``report`` whose WAL finding gives ``advice`` (at least a warning) instead of TRUNCATE.

    The health grading itself knows nothing of samples over time; the window adds what the
    samples showed, so the tooltip never advises a checkpoint that cannot work.
    """
    if not advice:
        return report
    findings = [finding for finding in report.findings if finding.kind != "wal"]
    old = next((finding for finding in report.findings if finding.kind == "wal"), None)
    level = max(HealthLevel.WARNING, old.level if old is not None else HealthLevel.OK)
    findings.append(dataclasses.replace(
        old or HealthFinding(level, advice), level=level, reason=advice,
        short=STARVATION_SHORT, kind="wal"))
    findings.sort(key=lambda finding: finding.level, reverse=True)
    return HealthReport(max(report.level, level), findings)
