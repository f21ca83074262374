"""Maintenance outcomes in the system log: the Windows Application event log, else syslog.

Administrators already forward and alert on the Event Log, so every maintenance run (from
the window or from ``queue-admin-cli``, by Task Scheduler or by hand) is reported there
too, under the source "Queue Admin", with the activity log's own sentence: information when
it succeeded, a warning when it was refused, cancelled or fell short, an error when it
failed. :class:`SystemLogSink` is handed to :class:`~.activity.ActivityLog`, which calls it
after each entry is safely on disk; a system log that cannot be written never fails the
entry or the operation.

On Windows the event is written with ``ReportEventW`` from advapi32 through ctypes (no
pywin32). The source needs no registration to be written, but without a registered
message file the Event Viewer puts a sentence of its own ("The description for Event ID
... cannot be found") before the text; the user guide says how to register one. Elsewhere
the same line goes to syslog (facility LOG_USER, ident ``queue-admin``), or nowhere when
Python has no ``syslog`` module.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .activity import RESULT_CANCELLED, RESULT_FAILED, RESULT_SUCCEEDED, ActivityEntry

EVENT_SOURCE = "Queue Admin"
SYSLOG_IDENT = "queue-admin"
#: Longest text ``ReportEventW`` accepts in one insertion string, in UTF-16 code units.
MAX_EVENT_CHARACTERS = 31_839

#: Actions of the window that change or check the queue or its backups (by title start);
#: opening a file, previews and background reads are not maintenance outcomes.
WINDOW_MAINTENANCE_ACTIONS = (
    "Back up", "Verify backup", "Delete backup", "Prune backups", "Restore ", "Checkpoint",
    "VACUUM", "ANALYZE", "PRAGMA optimize", "Integrity check", "Quick check", "Requeue",
    "Retry dead tasks", "Validate the archive",
)
#: Every logged ``queue-admin-cli`` run is a maintenance run.
CLI_ACTION_PREFIX = "cli "


class EventLevel(enum.Enum):
    """How the system log files an outcome."""

    INFORMATION = "information"
    WARNING = "warning"
    ERROR = "error"


#: ``wType`` of ReportEventW: EVENTLOG_INFORMATION_TYPE, _WARNING_TYPE, _ERROR_TYPE.
EVENT_TYPES = {EventLevel.INFORMATION: 0x0004, EventLevel.WARNING: 0x0002,
               EventLevel.ERROR: 0x0001}
#: Event IDs by level, so a filter in the Event Viewer can pick failures alone.
EVENT_IDS = {EventLevel.INFORMATION: 1000, EventLevel.WARNING: 1001, EventLevel.ERROR: 1002}
#: syslog priorities LOG_INFO, LOG_WARNING, LOG_ERR (the same numbers on every platform).
SYSLOG_PRIORITIES = {EventLevel.INFORMATION: 6, EventLevel.WARNING: 4, EventLevel.ERROR: 3}
_LOG_USER = 1 << 3


@dataclass(frozen=True)
class SystemLogRecord:
    """One event: its level and the text the system log shows."""

    level: EventLevel
    text: str


class SystemLogWriter(Protocol):
    """Something that files a record in a system log (raises OSError when it cannot)."""

    def write(self, record: SystemLogRecord) -> None:
        """File ``record``."""


def is_maintenance_action(action: str) -> bool:
    """True for a ``queue-admin-cli`` run or a maintenance action of the window."""
    return action.startswith(CLI_ACTION_PREFIX) or action.startswith(WINDOW_MAINTENANCE_ACTIONS)


def level_for(entry: ActivityEntry) -> EventLevel:
    """Information for success; warning for refused, cancelled or short; error for failed.

    A refusal is a failed entry whose sentence says it was refused: nothing was done, and
    the sentence says what to do, so it is no error of the queue.
    """
    if entry.result == RESULT_SUCCEEDED:
        return EventLevel.INFORMATION
    if entry.result == RESULT_FAILED:
        refused = " refused" in entry.message or entry.message.startswith("Refused")
        return EventLevel.WARNING if refused else EventLevel.ERROR
    if entry.result == RESULT_CANCELLED:
        return EventLevel.WARNING
    # A check that "found 3 problems" found damage; "did not finish" ran, but not all of it.
    return EventLevel.ERROR if entry.result.startswith("found") else EventLevel.WARNING


def event_text(entry: ActivityEntry) -> str:
    """One line: the action, its result and the activity log's sentence, then the database."""
    text = f"{entry.action} {entry.result}"
    text += f": {entry.message}" if entry.message else "."
    if entry.database:
        text += f" (database: {entry.database})"
    return text


def record_for(entry: ActivityEntry) -> SystemLogRecord | None:
    """The event an activity entry makes, or None when it is no maintenance outcome."""
    if not is_maintenance_action(entry.action):
        return None
    return SystemLogRecord(level_for(entry), event_text(entry))


def event_string(text: str) -> str:
    """``text`` as one ReportEventW insertion string.

    A NUL would end the string early, so it becomes a space; the text is cut to
    :data:`MAX_EVENT_CHARACTERS` UTF-16 code units, the most one string may hold.
    """
    text = text.replace("\x00", " ")
    encoded = text.encode("utf-16-le", errors="surrogatepass")
    if len(encoded) // 2 <= MAX_EVENT_CHARACTERS:
        return text
    cut = encoded[:(MAX_EVENT_CHARACTERS - 1) * 2]
    return cut.decode("utf-16-le", errors="ignore") + "\u2026"


def report_event_arguments(handle: Any, record: SystemLogRecord) -> tuple[Any, ...]:
    """The nine arguments of ``ReportEventW`` for ``record`` (built the same on any OS).

    hEventLog, wType, wCategory 0, dwEventID, lpUserSid NULL, wNumStrings 1,
    dwDataSize 0, lpStrings (an array of one wide string), lpRawData NULL.
    """
    strings = (ctypes.c_wchar_p * 1)(event_string(record.text))
    return (handle, ctypes.c_ushort(EVENT_TYPES[record.level]), ctypes.c_ushort(0),
            ctypes.c_ulong(EVENT_IDS[record.level]), None, ctypes.c_ushort(1),
            ctypes.c_ulong(0), strings, None)


class WindowsEventLog:
    """Writes records to the Application event log under :data:`EVENT_SOURCE`."""

    def __init__(self, source: str = EVENT_SOURCE, api: Any = None) -> None:
        self.source = source
        self._api = api if api is not None else _advapi32()

    def write(self, record: SystemLogRecord) -> None:
        """Register the source, report the event, deregister; OSError when Windows refuses."""
        api = self._api
        handle = api.RegisterEventSourceW(None, self.source)
        if not handle:
            raise OSError(f"RegisterEventSourceW refused the source '{self.source}'")
        try:
            if not api.ReportEventW(*report_event_arguments(handle, record)):
                raise OSError("ReportEventW did not write the event")
        finally:
            api.DeregisterEventSource(handle)


def _advapi32() -> Any:  # pragma: no cover - Windows only
    from ctypes import wintypes

    api = ctypes.WinDLL("advapi32", use_last_error=True)  # type: ignore[attr-defined]
    api.RegisterEventSourceW.argtypes = [wintypes.LPCWSTR, wintypes.LPCWSTR]
    api.RegisterEventSourceW.restype = wintypes.HANDLE
    api.ReportEventW.argtypes = [wintypes.HANDLE, wintypes.WORD, wintypes.WORD,
                                 wintypes.DWORD, ctypes.c_void_p, wintypes.WORD,
                                 wintypes.DWORD, ctypes.POINTER(wintypes.LPCWSTR),
                                 ctypes.c_void_p]
    api.ReportEventW.restype = wintypes.BOOL
    api.DeregisterEventSource.argtypes = [wintypes.HANDLE]
    api.DeregisterEventSource.restype = wintypes.BOOL
    return api


class Syslog:
    """Writes records to syslog (facility LOG_USER, ident :data:`SYSLOG_IDENT`)."""

    def __init__(self, module: Any = None) -> None:
        if module is None:
            import syslog as module
        self._syslog = module
        self._opened = False

    def write(self, record: SystemLogRecord) -> None:
        """Send one line at the record's priority."""
        if not self._opened:
            self._syslog.openlog(SYSLOG_IDENT, 0, _LOG_USER)
            self._opened = True
        self._syslog.syslog(_LOG_USER | SYSLOG_PRIORITIES[record.level],
                            record.text.replace("\n", " "))


def default_writer() -> SystemLogWriter | None:
    """The Event Log on Windows, syslog where Python has it, else None (skipped)."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        with contextlib.suppress(OSError, AttributeError):
            return WindowsEventLog()
        return None
    try:
        return Syslog()
    except ImportError:
        return None


def setting_switch(settings: Callable[[], Any]) -> Callable[[], bool]:
    """The switch the sink asks at each entry: ``settings().event_log_enabled``.

    On (the default) when the settings cannot be read, so that a run refused for a broken
    settings file still reaches the Event Log.
    """
    def enabled() -> bool:
        try:
            return bool(settings().event_log_enabled)
        except Exception:  # noqa: BLE001 - a refused settings file is itself worth reporting
            return True
    return enabled


class SystemLogSink:
    """Called with each activity entry: files maintenance outcomes in the system log.

    ``enabled`` is asked at each entry (the window's setting may change while it runs);
    the writer is made on first use. A failure to write is kept in :attr:`last_error`
    and otherwise ignored: the activity log on disk is the record that counts.
    """

    def __init__(self, writer: SystemLogWriter | None = None,
                 enabled: Callable[[], bool] = lambda: True) -> None:
        self._writer = writer
        self._enabled = enabled
        self.last_error: Exception | None = None

    def __call__(self, entry: ActivityEntry) -> None:
        """File ``entry`` when it is a maintenance outcome and the setting allows it."""
        if not self._enabled():
            return
        record = record_for(entry)
        if record is None:
            return
        if self._writer is None:
            self._writer = default_writer()
            if self._writer is None:
                return
        try:
            self._writer.write(record)
        except (OSError, ValueError, ctypes.ArgumentError) as error:
            self.last_error = error


__all__ = ["EVENT_SOURCE", "EventLevel", "SystemLogRecord", "SystemLogSink", "Syslog",
           "WindowsEventLog", "default_writer", "event_text", "level_for", "record_for",
           "setting_switch"]
