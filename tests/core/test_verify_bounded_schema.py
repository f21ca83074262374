"""Reading a hostile file's schema stays bounded: no definition costs more than its size.

SQLite parses a view of megabytes in a moment, but reading it token by token in Python costs
seconds per megabyte, more than the file's size explains to the check's budget, and no
cancel reaches a loop in Python; compiling a view over views can cost a fraction of a
second however small the file. The files here are real PrismQ backups with one such shape:
``v_recent_failures`` turned into a view of about 8 MB (a long ``IN`` list), an extra table
whose CHECK is megabytes long, or a chain of views over views that SQLite expands tens of
thousands of times. Verify must still refuse them by name, and a cancel must stop it within
a moment.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prismq import make_prismq_queue

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.verify import check_backup_file
from queue_admin_gui.core.database import closing_connection
from queue_admin_gui.core.errors import ErrorKind, OperationCancelled
from queue_admin_gui.core.trust import backup_sequence, untrusted
from queue_admin_gui.core.trust.schema_meaning import SchemaMeaning

#: Items of the view's IN list: about 8 MB of SQL.
HUGE_ITEMS = 4_000_000
#: Seconds a stop may take: "within a second", with room for a busy machine, and far below
#: what reading the view token by token takes.
STOP_ALLOWANCE_SECONDS = 5.0


@pytest.fixture
def huge_view(tmp_path: Path) -> Path:
    live = make_prismq_queue(tmp_path / "prismq queue" / "queue.db", tasks=3)
    backup = QueueBackup(live, tmp_path / "backups").create_backup("huge")
    sql = ("CREATE VIEW v_recent_failures AS SELECT id FROM task_queue WHERE id IN ("
           + ",".join(["1"] * HUGE_ITEMS) + ")")
    with closing_connection(sqlite3.connect(backup, isolation_level=None)) as connection:
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'v_recent_failures'",
                           (sql,))
    for manifest in backup.parent.glob("*.json"):
        manifest.unlink()
    return backup


class CancelWhileReading:
    """A ``cancelled`` callback that turns true once the check reads the view ``view``.

    By then SQLite has parsed the schema and run its integrity check; what is left is this
    tool's own reading of the definitions.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch,
                 view: str = "v_recent_failures") -> None:
        self.reading = threading.Event()
        self.asked: float | None = None
        original = untrusted.read_meaning

        def read_meaning(connection: sqlite3.Connection, kind: str, name: str, table: str,
                         sql: str | None) -> SchemaMeaning:
            if name == view:
                self.reading.set()
            return original(connection, kind, name, table, sql)

        monkeypatch.setattr(untrusted, "read_meaning", read_meaning)

    def __call__(self) -> bool:
        if not self.reading.is_set():
            return False
        if self.asked is None:
            self.asked = time.monotonic()
        return True


@pytest.mark.slow
def test_a_huge_view_is_refused_by_name(huge_view: Path) -> None:
    report = check_backup_file(huge_view)
    assert not report.ok and report.kind is ErrorKind.NOT_A_QUEUE, report.problems
    assert any("view 'v_recent_failures'" in problem and "characters long" in problem
               for problem in report.problems), report.problems


@pytest.mark.slow
def test_cancel_stops_the_check_of_a_huge_view_within_a_moment(
        huge_view: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cancel = CancelWhileReading(monkeypatch)
    with pytest.raises(OperationCancelled):
        check_backup_file(huge_view, cancelled=cancel)
    assert cancel.asked is not None
    assert time.monotonic() - cancel.asked < STOP_ALLOWANCE_SECONDS
    assert not [thread for thread in threading.enumerate()
                if thread.name == "queue-admin-check"]


class CancelWhileCounting:
    """A ``cancelled`` callback that turns true once the id counters' reading meets the huge
    table's definition (or, failing that, once it is over)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counting = threading.Event()
        self.asked: float | None = None
        for name in ("uses_autoincrement", "is_virtual_table"):
            monkeypatch.setattr(backup_sequence, name,
                                self._noticing(getattr(backup_sequence, name)))
        original = untrusted.read_counters

        def read_counters(connection: sqlite3.Connection) -> backup_sequence.Counters:
            found = original(connection)
            self.counting.set()
            return found

        monkeypatch.setattr(untrusted, "read_counters", read_counters)

    def _noticing(self, original: Callable[[str | None], bool]) -> Callable[[str | None], bool]:
        def noticing(sql: str | None) -> bool:
            if sql is not None and len(sql) > 1_000_000:
                self.counting.set()
            return original(sql)

        return noticing

    def __call__(self) -> bool:
        if not self.counting.is_set():
            return False
        if self.asked is None:
            self.asked = time.monotonic()
        return True


@pytest.mark.slow
def test_cancel_stops_the_check_of_a_huge_table_within_a_moment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = make_prismq_queue(tmp_path / "prismq queue" / "queue.db", tasks=3)
    backup = QueueBackup(live, tmp_path / "backups").create_backup("huge_table")
    with closing_connection(sqlite3.connect(backup, isolation_level=None)) as connection:
        connection.execute("CREATE TABLE junk(x CHECK (x IN ("
                           + ",".join(["1"] * (HUGE_ITEMS // 2)) + ")))")
    for manifest in backup.parent.glob("*.json"):
        manifest.unlink()
    cancel = CancelWhileCounting(monkeypatch)
    with pytest.raises(OperationCancelled):
        check_backup_file(backup, cancelled=cancel)
    assert cancel.asked is not None
    assert time.monotonic() - cancel.asked < STOP_ALLOWANCE_SECONDS


#: Views in a chain, each over the one before it many times: compiling the last one makes
#: SQLite expand tens of thousands of references before it gives up.
EXPANDING_VIEWS = [
    "CREATE VIEW w0 AS SELECT id FROM task_queue",
    *(f"CREATE VIEW w{level} AS SELECT x0.id FROM "
      + ", ".join(f"w{level - 1} x{n}" for n in range(60)) for level in (1, 2, 3)),
    *(f"CREATE VIEW z{n} AS SELECT * FROM w3" for n in range(150)),
]


@pytest.mark.slow
def test_cancel_stops_the_check_of_many_expanding_views_within_a_moment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = make_prismq_queue(tmp_path / "prismq queue" / "queue.db", tasks=3)
    backup = QueueBackup(live, tmp_path / "backups").create_backup("expanding")
    with closing_connection(sqlite3.connect(backup, isolation_level=None)) as connection:
        for statement in EXPANDING_VIEWS:
            connection.execute(statement)
    for manifest in backup.parent.glob("*.json"):
        manifest.unlink()
    cancel = CancelWhileReading(monkeypatch, "z0")
    with pytest.raises(OperationCancelled):
        check_backup_file(backup, cancelled=cancel)
    assert cancel.asked is not None
    assert time.monotonic() - cancel.asked < STOP_ALLOWANCE_SECONDS
