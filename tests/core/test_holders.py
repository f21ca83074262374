"""Finding the programs that hold the queue file: real processes here, the Windows API faked."""

from __future__ import annotations

import ctypes
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from queue_admin_gui.core.measurements import holders
from queue_admin_gui.core.measurements.holders import (
    ERROR_MORE_DATA,
    RM_PROCESS_INFO,
    FileHolder,
    HolderLookup,
    database_files,
    find_holders,
    parse_process_infos,
    restart_manager_list,
    rm_file_array,
    windows_holders,
)

HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
connection.execute("SELECT count(*) FROM t").fetchone()
print("open", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def wal_db(tmp_path: Path) -> Path:
    path = tmp_path / "queue folder" / "queue.db"
    path.parent.mkdir()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t(x)")
    connection.commit()
    connection.close()
    return path


def start_holder(path: Path, *extra: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), *extra],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "open"
    return process


def stop(process: subprocess.Popen) -> None:
    process.stdin.close()
    process.wait(30)
    process.stdout.close()


@pytest.mark.skipif(sys.platform == "win32", reason="the Windows path is the Restart Manager")
def test_a_real_process_holding_the_files_is_named_with_pid_and_command_line(wal_db: Path):
    process = start_holder(wal_db, "--marker-for-the-test")
    try:
        lookup = find_holders(wal_db)
    finally:
        stop(process)
    assert lookup.unavailable == ""
    found = {holder.pid: holder for holder in lookup.holders}
    assert process.pid in found
    holder = found[process.pid]
    assert "python" in holder.program.lower()
    assert "--marker-for-the-test" in holder.command_line
    assert str(wal_db) in holder.command_line
    assert holder.files[0] == "queue.db" and "queue.db-shm" in holder.files
    sentence = lookup.sentence()
    assert f"PID {process.pid}" in sentence
    # once it has gone, nobody holds the file (this process is left out by default)
    assert find_holders(wal_db).holders == ()
    assert "No other program has the database open" in find_holders(wal_db).sentence()


@pytest.mark.skipif(sys.platform == "win32", reason="reads /proc")
def test_this_process_is_left_out_unless_asked(wal_db: Path):
    connection = sqlite3.connect(wal_db)
    connection.execute("SELECT count(*) FROM t").fetchone()
    try:
        import os
        assert all(h.pid != os.getpid() for h in find_holders(wal_db).holders)
        assert any(h.pid == os.getpid() for h in find_holders(wal_db, exclude_pid=-1).holders)
    finally:
        connection.close()


def test_a_missing_database_has_no_holders(tmp_path: Path):
    lookup = find_holders(tmp_path / "gone.db")
    assert lookup.holders == () and lookup.unavailable == ""


def test_describe_shortens_long_command_lines_and_skips_a_bare_name():
    long = FileHolder(7, "python.exe", "python.exe " + "x" * 400)
    assert long.describe().startswith("PID 7 python.exe: python.exe xxx")
    assert len(long.describe()) < 340 and long.describe().endswith("\u2026")
    assert FileHolder(8, "sqlite3.exe", "sqlite3.exe").describe() == "PID 8 sqlite3.exe"
    hidden = HolderLookup(hidden_processes=3)
    assert "3 processes of other users" in hidden.sentence()
    assert "answered" in HolderLookup(unavailable="answered 5").sentence()


# -- the Restart Manager, with a stand-in for rstrtmgr.dll -------------------------------------

class FakeRestartManager:
    """Answers like rstrtmgr.dll: first 'more data', then the processes."""

    def __init__(self, processes: list[tuple[int, str]], fail_register: int = 0) -> None:
        self.processes = processes
        self.fail_register = fail_register
        self.registered: list[str] = []
        self.calls: list[str] = []
        self.ended: list[int] = []

    def RmStartSession(self, session, flags, key):  # noqa: N802 - the Windows name
        self.calls.append("start")
        assert flags == 0 and len(key) >= 33
        session.contents.value = 41
        return 0

    def RmRegisterResources(self, session, count, names, apps, app_list, services,  # noqa: N802
                            service_list):
        self.calls.append("register")
        assert session == 41 and apps == 0 and services == 0
        self.registered = [names[index] for index in range(count)]
        return self.fail_register

    def RmGetList(self, session, needed, given, infos, reasons):  # noqa: N802
        self.calls.append("list")
        needed.contents.value = len(self.processes)
        if infos is None or given.contents.value < len(self.processes):
            given.contents.value = 0
            return ERROR_MORE_DATA
        for index, (pid, name) in enumerate(self.processes):
            infos[index].Process.dwProcessId = pid
            infos[index].strAppName = name
        given.contents.value = len(self.processes)
        return 0

    def RmEndSession(self, session):  # noqa: N802
        self.ended.append(session)
        return 0


def test_restart_manager_is_asked_twice_and_its_answer_parsed(tmp_path: Path):
    files = database_files(tmp_path / "q dir" / "queue.db")
    fake = FakeRestartManager([(4242, "PrismQ Worker"), (17, "DB Browser for SQLite")])
    found = restart_manager_list(files, fake)
    assert found == [(17, "DB Browser for SQLite"), (4242, "PrismQ Worker")]
    assert fake.calls == ["start", "register", "list", "list"]
    assert fake.registered == [str(path.absolute()) for path in files]
    assert fake.ended == [41]


def test_restart_manager_failure_ends_the_session_and_is_reported(tmp_path: Path):
    (tmp_path / "queue.db").write_bytes(b"x")
    fake = FakeRestartManager([], fail_register=5)
    with pytest.raises(OSError, match="RmRegisterResources failed with error 5"):
        restart_manager_list(database_files(tmp_path / "queue.db"), fake)
    assert fake.ended == [41]
    lookup = windows_holders(database_files(tmp_path / "queue.db"), loader=lambda: fake)
    assert lookup.holders == () and "error 5" in lookup.unavailable
    assert lookup.method == "Restart Manager"


def test_windows_holders_names_each_process(tmp_path: Path, monkeypatch):
    (tmp_path / "queue.db").write_bytes(b"x")
    fake = FakeRestartManager([(99999, "PrismQ Worker")])
    monkeypatch.setattr(holders, "describe_process", lambda pid: ("", ""))
    lookup = windows_holders(database_files(tmp_path / "queue.db"), loader=lambda: fake)
    assert lookup.holders == (FileHolder(99999, "PrismQ Worker", ""),)
    assert fake.registered == [str((tmp_path / "queue.db").absolute())]  # only existing files


def test_argument_building_and_parsing_use_the_windows_structures():
    array = rm_file_array([Path("C:/Data/queue.db"), Path("relative.db")])
    assert len(array) == 2 and Path(array[1]).is_absolute()
    infos = (RM_PROCESS_INFO * 3)()
    infos[0].Process.dwProcessId = 5
    infos[0].strAppName = "a.exe"
    infos[1].Process.dwProcessId = 5  # the same process for a second file
    infos[1].strAppName = "a.exe"
    infos[2].Process.dwProcessId = 6
    infos[2].strServiceShortName = "svc"
    assert parse_process_infos(infos, 3) == [(5, "a.exe"), (6, "svc")]
    assert parse_process_infos(infos, 1) == [(5, "a.exe")]
    wide = ctypes.sizeof(ctypes.c_wchar)
    assert ctypes.sizeof(RM_PROCESS_INFO) >= 12 + (256 + 64) * wide + 16
