"""What deserves a notification: the conditions that are active now, and what changed.

The health is graded every second; notifying at every grading would repeat the same news
until it is ignored. :class:`AlertTracker` keeps the set of active conditions (one per kind
of health finding, one per maintenance action whose last run failed) and turns each update
into at most one "worse" alert (a condition that is new or more severe) and one "recovered"
alert (conditions that are gone). Plain Python: the tray shows what it decides.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..activity import ActivityEntry, ActivityLog
from ..event_log import EventLevel, is_maintenance_action, level_for
from .health import HealthLevel, HealthReport

#: Sources of conditions; each update replaces the conditions of its own source only.
SOURCE_HEALTH = "health"
SOURCE_ACTIVITY = "activity"
#: Failures older than this are history, not news, when the activity log is first read.
FAILURE_HORIZON = timedelta(hours=24)
#: Newest activity entries looked at for failures.
ACTIVITY_ENTRIES_READ = 500


@dataclass(frozen=True)
class Condition:
    """Something wrong right now: a stable key, how bad, and the sentence saying what."""

    key: str
    level: HealthLevel
    text: str
    #: A few words for a list of several ("WAL 120 MB", "cli backup failed").
    short: str = ""


@dataclass(frozen=True)
class Alert:
    """One notification to show."""

    worse: bool
    level: HealthLevel
    title: str
    message: str
    conditions: tuple[Condition, ...]


def health_conditions(report: HealthReport) -> list[Condition]:
    """One condition per finding of the report, keyed by the finding's kind."""
    return [Condition(f"{SOURCE_HEALTH}:{finding.kind or finding.short}", finding.level,
                      finding.reason, finding.short or finding.reason)
            for finding in report.findings]


def activity_conditions(entries: Iterable[ActivityEntry], now: datetime | None = None,
                        database: str | Path | None = None) -> list[Condition]:
    """A condition for each maintenance action whose newest run (of the last day) failed.

    A later successful run of the same action clears it: a backup that failed at 02:00
    and succeeded at 03:00 is no longer news. With ``database``, runs recorded against
    another file are left out (a failure on a file the window has left is not this one's).
    """
    now = now or datetime.now(timezone.utc)
    wanted = _same_file_key(database) if database is not None else None
    newest: dict[str, ActivityEntry] = {}
    for entry in entries:
        when = _entry_time(entry)
        if when is None or now - when > FAILURE_HORIZON:
            continue
        if wanted is not None and entry.database and _same_file_key(entry.database) != wanted:
            continue
        if is_maintenance_action(entry.action):
            newest[entry.action] = entry  # entries come oldest first
    conditions = []
    for action, entry in newest.items():
        level = level_for(entry)
        if level is EventLevel.INFORMATION:
            continue
        severity = HealthLevel.CRITICAL if level is EventLevel.ERROR else HealthLevel.WARNING
        sentence = _failure_sentence(action, entry.result, entry.message)
        conditions.append(Condition(f"{SOURCE_ACTIVITY}:{action}", severity, sentence,
                                    f"{action} {entry.result}"))
    return conditions


def _failure_sentence(action: str, result: str, message: str) -> str:
    """What went wrong, said once.

    The tool's own message is already a sentence naming what happened ("The TRUNCATE
    checkpoint could not finish: ..."); putting "Checkpoint TRUNCATE did not finish:" before
    it would say it twice. A bare result, or a message in lower case, gets the action's name.
    """
    message = message.strip()
    if message and message[0].isupper():
        origin = " (a scheduled queue-admin-cli run)" if action.startswith("cli ") else ""
        return f"{message.rstrip('.')}{origin}."
    if message:
        return f"{action} {result}: {message}"
    return f"{action} {result}."


def read_activity_conditions(log: ActivityLog, database: str | Path | None = None
                             ) -> list[Condition]:
    """The failure conditions in the newest entries of ``log`` (run off the GUI thread).

    ``database``: only the runs recorded against that file (and those naming no file).
    """
    return activity_conditions(log.read(limit=ACTIVITY_ENTRIES_READ), database=database)


def _same_file_key(path: str | Path) -> str:
    """A comparable form of a path (case-folded where the file system ignores case)."""
    return os.path.normcase(os.path.abspath(str(path)))


def _entry_time(entry: ActivityEntry) -> datetime | None:
    try:
        when = datetime.fromisoformat(entry.time)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


class AlertTracker:
    """The active conditions, and the alerts an update of them calls for."""

    def __init__(self) -> None:
        self.active: dict[str, Condition] = {}

    def update(self, source: str, conditions: Iterable[Condition]) -> list[Alert]:
        """Replace ``source``'s conditions; alert on new or worse ones and on cleared ones."""
        current = {condition.key: condition for condition in conditions}
        previous = {key: condition for key, condition in self.active.items()
                    if key.startswith(f"{source}:")}
        worse = [condition for key, condition in current.items()
                 if key not in previous or condition.level > previous[key].level]
        cleared = [condition for key, condition in previous.items() if key not in current]
        for key in previous:
            del self.active[key]
        self.active.update(current)
        alerts = []
        if worse:
            alerts.append(self._worse_alert(worse))
        if cleared:
            alerts.append(self._recovered_alert(cleared))
        return alerts

    def reset(self) -> None:
        """Forget every condition without alerting (another database was opened)."""
        self.active.clear()

    @property
    def level(self) -> HealthLevel:
        """The most severe active condition's level (OK when none)."""
        return max((condition.level for condition in self.active.values()),
                   default=HealthLevel.OK)

    @staticmethod
    def _worse_alert(conditions: list[Condition]) -> Alert:
        conditions.sort(key=lambda condition: condition.level, reverse=True)
        level = conditions[0].level
        message = conditions[0].text
        if len(conditions) > 1:
            message += " Also: " + "; ".join(c.short for c in conditions[1:]) + "."
        return Alert(True, level, f"Queue Admin: {level.label}", message, tuple(conditions))

    def _recovered_alert(self, conditions: list[Condition]) -> Alert:
        gone = "; ".join(condition.short for condition in conditions)
        level = self.level
        still = (" No other problem found." if level is HealthLevel.OK
                 else f" Still {level.label.lower()}: "
                 + "; ".join(c.short for c in self.active.values()) + ".")
        return Alert(False, level, "Queue Admin: recovered",
                     f"No longer found: {gone}.{still}", tuple(conditions))


__all__ = ["Alert", "AlertTracker", "Condition", "activity_conditions", "health_conditions",
           "read_activity_conditions"]
