"""Maintenance outcomes in the system log: what is sent, at which level, and how."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from queue_admin_gui.cli import main
from queue_admin_gui.core import event_log
from queue_admin_gui.core.activity import (
    RESULT_CANCELLED,
    RESULT_DID_NOT_FINISH,
    RESULT_FAILED,
    ActivityEntry,
    ActivityLog,
)
from queue_admin_gui.core.event_log import (
    MAX_EVENT_CHARACTERS,
    EventLevel,
    Syslog,
    SystemLogRecord,
    SystemLogSink,
    WindowsEventLog,
    event_string,
    record_for,
    report_event_arguments,
)


class Recorder:
    """A system log that keeps what it was given."""

    def __init__(self) -> None:
        self.records: list[SystemLogRecord] = []

    def write(self, record: SystemLogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Stand in for the Event Log / syslog wherever the program picks its writer."""
    recording = Recorder()
    monkeypatch.setattr(event_log, "default_writer", lambda: recording)
    return recording


def test_a_success_is_information_with_the_activity_sentence(tmp_path, recorder):
    log = ActivityLog(tmp_path / "activity.jsonl", sink=SystemLogSink())
    log.append(ActivityEntry.now("Back up", message="", database=Path("C:/q/queue.db")))
    log.append(ActivityEntry.now("cli backup", message="Backup written and verified."))
    assert recorder.records == [
        SystemLogRecord(EventLevel.INFORMATION,
                        f"Back up succeeded. (database: {Path('C:/q/queue.db')})"),
        SystemLogRecord(EventLevel.INFORMATION,
                        "cli backup succeeded: Backup written and verified."),
    ]
    assert [entry.action for entry in log.read()] == ["Back up", "cli backup"]


@pytest.mark.parametrize(("result", "message", "level"), [
    (RESULT_FAILED, "Restore refused: it replaces the contents of 'q.db'; add --yes to "
                    "confirm.", EventLevel.WARNING),
    (RESULT_FAILED, "Backup failed: the disk is full; free space on D:.", EventLevel.ERROR),
    (RESULT_CANCELLED, "VACUUM was cancelled; nothing was changed.", EventLevel.WARNING),
    (RESULT_DID_NOT_FINISH, "3 WAL frames left.", EventLevel.WARNING),
    ("found 2 problems", "page 7 is never used", EventLevel.ERROR),
])
def test_the_level_follows_the_outcome(result, message, level):
    record = record_for(ActivityEntry.now("cli restore", result=result, message=message))
    assert record == SystemLogRecord(level, f"cli restore {result}: {message}")


@pytest.mark.parametrize("action", ["Open database", "Preview requeue", "List backups",
                                    "Read settings", "Prepare the restore"])
def test_what_is_not_maintenance_stays_out(action):
    assert record_for(ActivityEntry.now(action, result=RESULT_FAILED, message="x")) is None


@pytest.mark.parametrize("action", ["Back up", "Restore queue.db from b.db", "Checkpoint TRUNCATE",
                                    "VACUUM", "Requeue stale leases", "cli leases"])
def test_maintenance_actions_are_sent(action):
    assert record_for(ActivityEntry.now(action)) is not None


def test_switched_off_nothing_is_sent(tmp_path, recorder):
    switch = {"on": False}
    log = ActivityLog(tmp_path / "a.jsonl", sink=SystemLogSink(enabled=lambda: switch["on"]))
    log.append(ActivityEntry.now("cli vacuum"))
    switch["on"] = True
    log.append(ActivityEntry.now("cli analyze"))
    assert [record.text for record in recorder.records] == ["cli analyze succeeded."]


def test_a_failing_system_log_never_fails_the_entry(tmp_path):
    class Refusing:
        def write(self, record: SystemLogRecord) -> None:
            raise OSError("the event log service is stopped")

    sink = SystemLogSink(Refusing())
    log = ActivityLog(tmp_path / "a.jsonl", sink=sink)
    log.append(ActivityEntry.now("cli backup"))
    assert str(sink.last_error) == "the event log service is stopped"

    def broken(entry: ActivityEntry) -> None:
        raise RuntimeError("a bug in a sink")

    ActivityLog(tmp_path / "a.jsonl", sink=broken).append(ActivityEntry.now("cli vacuum"))
    assert [entry.action for entry in log.read()] == ["cli backup", "cli vacuum"]


def _last_entry() -> ActivityEntry:
    return ActivityLog().read(limit=1)[0]


def test_cli_runs_reach_the_system_log_with_the_logged_sentence(queue_db, tmp_path, recorder,
                                                                capsys):
    backups = tmp_path / "backups"
    assert main(["--db", str(queue_db), "backup", "--dir", str(backups)]) == 0
    assert recorder.records[-1] == SystemLogRecord(
        EventLevel.INFORMATION,
        f"cli backup succeeded: Backup written and verified. (database: {queue_db})")
    backup = next(backups.glob("queue_backup_*.db"))

    assert main(["--db", str(queue_db), "restore", str(backup)]) == 2  # no --yes
    refusal = _last_entry().message
    assert refusal.startswith("Restore refused: ")
    assert recorder.records[-1] == SystemLogRecord(
        EventLevel.WARNING, f"cli restore failed: {refusal} (database: {queue_db})")

    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    code = main(["--db", str(queue_db), "backup", "--dir", str(blocker / "backups")])
    failure = _last_entry()
    assert code == 2 and failure.result == RESULT_FAILED
    assert failure.message.startswith("Creating the backup folder ")
    assert recorder.records[-1] == SystemLogRecord(
        EventLevel.ERROR, f"cli backup failed: {failure.message} (database: {queue_db})")
    assert len(recorder.records) == 3
    capsys.readouterr()


def test_the_setting_turns_the_cli_off(queue_db, tmp_path, recorder, monkeypatch, capsys):
    monkeypatch.setenv("QUEUE_ADMIN_EVENT_LOG", "off")
    assert main(["--db", str(queue_db), "analyze"]) == 0
    assert recorder.records == []
    monkeypatch.setenv("QUEUE_ADMIN_EVENT_LOG", "on")
    assert main(["--db", str(queue_db), "analyze"]) == 0
    assert [record.level for record in recorder.records] == [EventLevel.INFORMATION]
    capsys.readouterr()


def test_check_and_stats_send_nothing(queue_db, recorder, capsys):
    main(["--db", str(queue_db), "stats"])
    main(["--db", str(queue_db), "check"])
    assert recorder.records == []
    capsys.readouterr()


# -- the writing layers, as far as they run off Windows ----------------------------------

@pytest.mark.parametrize(("level", "event_type", "event_id"), [
    (EventLevel.INFORMATION, 0x0004, 1000), (EventLevel.WARNING, 0x0002, 1001),
    (EventLevel.ERROR, 0x0001, 1002)])
def test_report_event_arguments(level, event_type, event_id):
    arguments = report_event_arguments(77, SystemLogRecord(level, "cli backup failed: ä €"))
    handle, kind, category, ident, sid, count, size, strings, raw = arguments
    assert handle == 77 and sid is None and raw is None
    assert (kind.value, category.value, ident.value, count.value, size.value) == (
        event_type, 0, event_id, 1, 0)
    assert isinstance(strings, ctypes.Array) and len(strings) == 1
    assert strings[0] == "cli backup failed: ä €"


def test_event_strings_lose_nul_and_fit_the_api_limit():
    assert event_string("a\x00b") == "a b"
    short = "x" * MAX_EVENT_CHARACTERS
    assert event_string(short) == short
    # one emoji is two UTF-16 code units: the limit counts those, not Python characters
    long = "\U0001F4BE" * MAX_EVENT_CHARACTERS
    cut = event_string(long)
    assert len(cut.encode("utf-16-le")) // 2 <= MAX_EVENT_CHARACTERS
    assert cut.endswith("\u2026") and cut.startswith("\U0001F4BE")


class FakeAdvapi:
    """advapi32's three functions, recording their calls."""

    def __init__(self, handle: int = 5, reported: int = 1) -> None:
        self.handle = handle
        self.reported = reported
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def RegisterEventSourceW(self, server: object, source: str) -> int:  # noqa: N802
        self.calls.append(("register", (server, source)))
        return self.handle

    def ReportEventW(self, *arguments: object) -> int:  # noqa: N802
        self.calls.append(("report", arguments))
        return self.reported

    def DeregisterEventSource(self, handle: int) -> int:  # noqa: N802
        self.calls.append(("deregister", (handle,)))
        return 1


def test_windows_event_log_registers_reports_and_deregisters():
    api = FakeAdvapi()
    WindowsEventLog(api=api).write(SystemLogRecord(EventLevel.ERROR, "cli vacuum failed: x"))
    assert [name for name, _ in api.calls] == ["register", "report", "deregister"]
    assert api.calls[0][1] == (None, "Queue Admin")
    assert api.calls[1][1][0] == 5 and api.calls[1][1][7][0] == "cli vacuum failed: x"
    assert api.calls[2][1] == (5,)


def test_windows_event_log_failures_are_os_errors_and_release_the_source():
    refused = FakeAdvapi(handle=0)
    with pytest.raises(OSError, match="RegisterEventSourceW"):
        WindowsEventLog(api=refused).write(SystemLogRecord(EventLevel.ERROR, "x"))
    assert [name for name, _ in refused.calls] == ["register"]
    unwritten = FakeAdvapi(reported=0)
    with pytest.raises(OSError, match="ReportEventW"):
        WindowsEventLog(api=unwritten).write(SystemLogRecord(EventLevel.ERROR, "x"))
    assert [name for name, _ in unwritten.calls][-1] == "deregister"


def test_syslog_gets_one_line_as_queue_admin_with_the_level_priority():
    calls: list[tuple[str, tuple[object, ...]]] = []

    class FakeSyslog:
        def openlog(self, *arguments: object) -> None:
            calls.append(("openlog", arguments))

        def syslog(self, *arguments: object) -> None:
            calls.append(("syslog", arguments))

    writer = Syslog(FakeSyslog())
    writer.write(SystemLogRecord(EventLevel.WARNING, "cli restore failed:\nrefused"))
    writer.write(SystemLogRecord(EventLevel.INFORMATION, "cli backup succeeded."))
    assert calls == [("openlog", ("queue-admin", 0, 8)),
                     ("syslog", (8 | 4, "cli restore failed: refused")),
                     ("syslog", (8 | 6, "cli backup succeeded."))]


def test_syslog_numbers_are_the_platform_ones():
    syslog = pytest.importorskip("syslog")
    assert syslog.LOG_USER == 8
    assert (syslog.LOG_INFO, syslog.LOG_WARNING, syslog.LOG_ERR) == tuple(
        event_log.SYSLOG_PRIORITIES[level] for level in EventLevel)
