"""Which programs have the queue file, its ``-wal`` or its ``-shm`` open: PID, name, command.

When a reader pins the WAL or a restore waits for a lock, the administrator needs a name, not
"another program". :func:`find_holders` answers with every process (except this one) that has
one of the database's files open:

- on Windows through the Restart Manager (``rstrtmgr.dll``: RmStartSession,
  RmRegisterResources, RmGetList, RmEndSession), the API Windows itself uses to say which
  program has a file in use. The argument building and the parsing of its answer are plain
  functions over ctypes structures, so they are tested on any system;
- on Linux by reading ``/proc/<pid>/fd``: a descriptor holds the file when it points at the
  same device and inode, so a path spelled another way (a symlink, a bind mount) still counts;
- elsewhere through psutil's ``open_files``.

Program name and command line come from psutil on every system (on Windows it is the only
portable way to read another process's command line). Processes this user may not inspect
are counted, not guessed at. Looking up every process takes a moment: the window runs it on
a job's worker thread, never on the GUI thread.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ..errors import ErrorKind, QueueAdminError
from ..files.db_files import shm_path, wal_path

#: Restart Manager limits and codes (RestartManager.h / winerror.h).
CCH_RM_SESSION_KEY = 32
CCH_RM_MAX_APP_NAME = 255
CCH_RM_MAX_SVC_NAME = 63
ERROR_SUCCESS = 0
ERROR_MORE_DATA = 234
#: RmGetList is asked again at most this often when processes appear between two calls.
RM_GET_LIST_ATTEMPTS = 5
#: How much of a command line a sentence quotes.
COMMAND_LINE_CHARS = 300


class FILETIME(ctypes.Structure):
    """Windows FILETIME: 100-ns intervals since 1601, in two 32-bit halves."""

    _fields_ = (("dwLowDateTime", ctypes.c_uint32), ("dwHighDateTime", ctypes.c_uint32))


class RM_UNIQUE_PROCESS(ctypes.Structure):  # noqa: N801 - the Windows name
    """A process as the Restart Manager names it: PID plus start time (PIDs are reused)."""

    _fields_ = (("dwProcessId", ctypes.c_uint32), ("ProcessStartTime", FILETIME))


class RM_PROCESS_INFO(ctypes.Structure):  # noqa: N801 - the Windows name
    """One entry of RmGetList's answer."""

    _fields_ = (
        ("Process", RM_UNIQUE_PROCESS),
        ("strAppName", ctypes.c_wchar * (CCH_RM_MAX_APP_NAME + 1)),
        ("strServiceShortName", ctypes.c_wchar * (CCH_RM_MAX_SVC_NAME + 1)),
        ("ApplicationType", ctypes.c_int),
        ("AppStatus", ctypes.c_uint32),
        ("TSSessionId", ctypes.c_uint32),
        ("bRestartable", ctypes.c_int),
    )


@dataclass(frozen=True)
class FileHolder:
    """One process that has at least one of the database's files open."""

    pid: int
    program: str
    command_line: str = ""
    #: Which files it holds, by their names ("queue.db", "queue.db-wal", ...), when known.
    files: tuple[str, ...] = ()

    def describe(self) -> str:
        """"PID 4242 python.exe: python worker.py --queue ..." (command line shortened)."""
        command = self.command_line
        if len(command) > COMMAND_LINE_CHARS:
            command = command[:COMMAND_LINE_CHARS - 1] + "\u2026"
        text = f"PID {self.pid} {self.program or '(unknown program)'}"
        return f"{text}: {command}" if command and command != self.program else text


@dataclass(frozen=True)
class HolderLookup:
    """What a lookup found, and how much it could see."""

    holders: tuple[FileHolder, ...] = ()
    #: Processes whose open files this user may not read (they could hold the file too).
    hidden_processes: int = 0
    #: Why the lookup could not run at all, if it could not ("" when it ran).
    unavailable: str = ""
    method: str = ""
    files: tuple[str, ...] = field(default=())

    def sentence(self) -> str:
        """One line naming the holders, or saying that none (visible) holds the files."""
        if self.unavailable:
            return f"Could not tell which programs have the database open: {self.unavailable}."
        hidden = (f" ({self.hidden_processes} processes of other users could not be looked "
                  "into; run as administrator to see them)" if self.hidden_processes else "")
        if not self.holders:
            return f"No other program has the database open{hidden}."
        names = "; ".join(holder.describe() for holder in self.holders)
        return f"Programs with the database open: {names}{hidden}."


def database_files(db_path: str | Path) -> list[Path]:
    """The queue file and its ``-wal`` and ``-shm`` files (whether or not they exist)."""
    path = Path(db_path)
    return [path, wal_path(path), shm_path(path)]


def find_holders(db_path: str | Path, *, exclude_pid: int | None = None) -> HolderLookup:
    """Every process but ``exclude_pid`` (this one by default) that has a database file open.

    Never raises for a process that vanishes or refuses inspection; a system where the
    lookup cannot run at all gives a lookup whose :attr:`HolderLookup.unavailable` says why.
    """
    own = os.getpid() if exclude_pid is None else exclude_pid
    files = database_files(db_path)
    names = tuple(path.name for path in files)
    if sys.platform == "win32":
        lookup = windows_holders(files)
    elif Path("/proc/self/fd").is_dir():
        lookup = proc_holders(files)
    else:
        lookup = psutil_holders(files)
    kept = tuple(holder for holder in lookup.holders if holder.pid != own)
    return HolderLookup(kept, lookup.hidden_processes, lookup.unavailable, lookup.method, names)


# -- Linux: /proc/<pid>/fd --------------------------------------------------------------------

def _identities(files: Iterable[Path]) -> dict[tuple[int, int], str]:
    found: dict[tuple[int, int], str] = {}
    for path in files:
        try:
            status = os.stat(path)
        except OSError:
            continue
        found[(status.st_dev, status.st_ino)] = path.name
    return found


def proc_holders(files: Sequence[Path], proc_root: str | Path = "/proc") -> HolderLookup:
    """Holders found by matching each ``/proc/<pid>/fd`` link's device and inode."""
    wanted = _identities(files)
    if not wanted:
        return HolderLookup(method="/proc")
    root = Path(proc_root)
    holders: list[FileHolder] = []
    hidden = 0
    for entry in os.scandir(root):
        if not entry.name.isdigit():
            continue
        try:
            descriptors = os.listdir(root / entry.name / "fd")
        except PermissionError:
            hidden += 1
            continue
        except OSError:  # the process ended meanwhile
            continue
        held: set[str] = set()
        for descriptor in descriptors:
            try:
                status = os.stat(root / entry.name / "fd" / descriptor)
            except OSError:
                continue
            name = wanted.get((status.st_dev, status.st_ino))
            if name is not None:
                held.add(name)
        if held:
            pid = int(entry.name)
            program, command = describe_process(pid)
            holders.append(FileHolder(pid, program, command, _in_order(held, files)))
    return HolderLookup(tuple(sorted(holders, key=lambda h: h.pid)), hidden, "", "/proc")


def _in_order(names: set[str], files: Sequence[Path]) -> tuple[str, ...]:
    return tuple(path.name for path in files if path.name in names)


# -- other POSIX systems: psutil --------------------------------------------------------------

def psutil_holders(files: Sequence[Path]) -> HolderLookup:
    """Holders found through psutil's per-process list of open files."""
    wanted = {os.path.normcase(os.path.realpath(path)): path.name for path in files}
    holders: list[FileHolder] = []
    hidden = 0
    for process in psutil.process_iter():
        try:
            opened = process.open_files()
        except psutil.AccessDenied:
            hidden += 1
            continue
        except psutil.Error:
            continue
        held = {wanted[key] for item in opened
                if (key := os.path.normcase(os.path.realpath(item.path))) in wanted}
        if held:
            program, command = describe_process(process.pid)
            holders.append(FileHolder(process.pid, program, command, _in_order(held, files)))
    return HolderLookup(tuple(sorted(holders, key=lambda h: h.pid)), hidden, "", "psutil")


def describe_process(pid: int) -> tuple[str, str]:
    """Program name and command line of ``pid`` ("" for what may not be read)."""
    try:
        process = psutil.Process(pid)
    except psutil.Error:
        return "", ""
    try:
        program = process.name()
    except psutil.Error:
        program = ""
    try:
        command = join_command_line(process.cmdline())
    except psutil.Error:
        command = ""
    return program, command


def join_command_line(arguments: Sequence[str]) -> str:
    """A command line as one line; arguments with spaces are quoted so they read whole."""
    flat = [" ".join(argument.split()) if "\n" in argument else argument
            for argument in arguments]
    return " ".join(f'"{argument}"' if (" " in argument and not argument.startswith('"'))
                    else argument for argument in flat)


# -- Windows: the Restart Manager -------------------------------------------------------------

def rm_file_array(files: Sequence[Path]) -> Any:
    """The ``rgsFileNames`` argument of RmRegisterResources: absolute paths as wide strings."""
    names = [str(Path(path).absolute()) for path in files]
    return (ctypes.c_wchar_p * len(names))(*names)


def parse_process_infos(infos: Sequence[RM_PROCESS_INFO], count: int) -> list[tuple[int, str]]:
    """``(pid, application name)`` of the first ``count`` RM_PROCESS_INFO entries, by PID."""
    seen: dict[int, str] = {}
    for info in list(infos)[:count]:
        pid = int(info.Process.dwProcessId)
        name = str(info.strAppName) or str(info.strServiceShortName)
        seen.setdefault(pid, name)
    return sorted(seen.items())


def restart_manager_list(files: Sequence[Path], rm: Any) -> list[tuple[int, str]]:
    """Ask the Restart Manager ``rm`` (rstrtmgr.dll, or a stand-in) who uses ``files``.

    Raises OSError with the Windows error code when a call fails; the session is always
    ended. RmGetList is called first with no room, then with the room it asks for, again
    if more processes appeared meanwhile.
    """
    session = ctypes.c_uint32(0)
    key = ctypes.create_unicode_buffer(CCH_RM_SESSION_KEY + 1)
    code = rm.RmStartSession(ctypes.pointer(session), 0, key)
    if code != ERROR_SUCCESS:
        raise OSError(code, f"RmStartSession failed with error {code}")
    try:
        names = rm_file_array(files)
        code = rm.RmRegisterResources(session.value, len(files), names, 0, None, 0, None)
        if code != ERROR_SUCCESS:
            raise OSError(code, f"RmRegisterResources failed with error {code}")
        needed, room = ctypes.c_uint(0), 0
        infos: Any = None
        for _attempt in range(RM_GET_LIST_ATTEMPTS):
            given = ctypes.c_uint(room)
            reasons = ctypes.c_uint32(0)
            code = rm.RmGetList(session.value, ctypes.pointer(needed), ctypes.pointer(given),
                                infos, ctypes.pointer(reasons))
            if code == ERROR_SUCCESS:
                return parse_process_infos(infos, given.value) if infos is not None else []
            if code != ERROR_MORE_DATA:
                raise OSError(code, f"RmGetList failed with error {code}")
            room = needed.value + 2  # a little slack for processes opening it meanwhile
            infos = (RM_PROCESS_INFO * room)()
        raise OSError(ERROR_MORE_DATA, "RmGetList kept finding more processes")
    finally:
        rm.RmEndSession(session.value)


def load_restart_manager() -> Any:
    """rstrtmgr.dll with its four functions' argument types set (Windows only)."""
    rm = ctypes.WinDLL("rstrtmgr.dll")  # type: ignore[attr-defined]
    dword, uint = ctypes.c_uint32, ctypes.c_uint
    rm.RmStartSession.argtypes = (ctypes.POINTER(dword), dword, ctypes.c_wchar_p)
    rm.RmRegisterResources.argtypes = (dword, uint, ctypes.POINTER(ctypes.c_wchar_p), uint,
                                       ctypes.c_void_p, uint, ctypes.c_void_p)
    rm.RmGetList.argtypes = (dword, ctypes.POINTER(uint), ctypes.POINTER(uint),
                             ctypes.POINTER(RM_PROCESS_INFO), ctypes.POINTER(dword))
    rm.RmEndSession.argtypes = (dword,)
    for function in (rm.RmStartSession, rm.RmRegisterResources, rm.RmGetList, rm.RmEndSession):
        function.restype = dword
    return rm


def windows_holders(files: Sequence[Path],
                    loader: Callable[[], Any] = load_restart_manager) -> HolderLookup:
    """Holders as the Restart Manager reports them, with psutil's command lines."""
    existing = [path for path in files if path.exists()]
    if not existing:
        return HolderLookup(method="Restart Manager")
    try:
        found = restart_manager_list(existing, loader())
    except (OSError, AttributeError) as error:
        return HolderLookup(unavailable=f"the Restart Manager answered {error}",
                            method="Restart Manager")
    holders = []
    for pid, app_name in found:
        program, command = describe_process(pid)
        holders.append(FileHolder(pid, program or app_name, command))
    return HolderLookup(tuple(holders), 0, "", "Restart Manager")


def mentions_holders(text: str) -> bool:
    """True when ``text`` already carries a lookup's sentence (so it is not added twice)."""
    return any(opening in text for opening in (
        "Programs with the database open:", "No other program has the database open",
        "Could not tell which programs have the database open"))


def name_holders(error: QueueAdminError, db_path: str | Path) -> QueueAdminError:
    """A "database is locked" error with the programs holding ``db_path`` added to its sentence.

    Other errors are returned unchanged. The lookup runs where this is called: call it on a
    worker thread (a job), never on the GUI thread.
    """
    if error.kind is not ErrorKind.LOCKED or mentions_holders(error.message):
        return error
    error.message = f"{error.message.rstrip()} {find_holders(db_path).sentence()}"
    error.args = (error.message,)
    return error
