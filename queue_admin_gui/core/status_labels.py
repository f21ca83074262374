"""The words for task statuses, chosen once and used on every screen.

The queue stores six spellings for four states (see `core/schema.py`): ``leased`` and the older
``processing`` are both *in flight*; ``failed`` and the older ``dead_letter`` are both *dead*:
the task ran out of attempts and no worker will take it again. Screens say "dead (out of
attempts)" for both, never "failed" (which the window also uses for jobs that did not
succeed) or "dead letter", and name the stored spelling only where it is the point.
"""

from __future__ import annotations

from .schema import (
    STATUS_COMPLETED,
    STATUS_DEAD_LETTER,
    STATUS_FAILED,
    STATUS_LEASED,
    STATUS_PROCESSING,
    STATUS_QUEUED,
)

QUEUED_LABEL = "queued"
IN_FLIGHT_LABEL = "in flight"
COMPLETED_LABEL = "completed"
DEAD_LABEL = "dead (out of attempts)"

#: What each stored status is called on screen.
STATUS_LABELS = {
    STATUS_QUEUED: QUEUED_LABEL,
    STATUS_LEASED: f"{IN_FLIGHT_LABEL} (leased)",
    STATUS_PROCESSING: f"{IN_FLIGHT_LABEL} (processing)",
    STATUS_COMPLETED: COMPLETED_LABEL,
    STATUS_FAILED: DEAD_LABEL,
    STATUS_DEAD_LETTER: f"{DEAD_LABEL}, stored as dead_letter",
}


def task_status_label(status: str) -> str:
    """The on-screen words for a stored status (an unknown status is shown as stored)."""
    return STATUS_LABELS.get(status, status)
