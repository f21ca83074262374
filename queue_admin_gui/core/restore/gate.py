"""Are workers working the queue right now? Every signal the tool has, for the restore's gate.

A restore under running workers makes them run tasks twice: they go on with tasks the
restore puts back. PrismQ's own worker loop writes no heartbeat row, so a heartbeat alone
cannot tell. The gate reads four signals, and names what it saw:

- **programs holding the file**: any process but this one (and the tool's own archiver) with
  the queue file, its ``-wal`` or its ``-shm`` open (:mod:`..measurements.holders`);
- **commits by other connections**: ``PRAGMA data_version`` sampled over a short window
  (a TRUNCATE or RESTART checkpoint by another program counts too);
- **heartbeats**: a ``workers`` row updated in the last :data:`QUIET_SECONDS`;
- **leases**: tasks leased or processing, with a lease that has not run out.

The gate blocks while another program holds the file, while commits arrive, or while a
heartbeat is that fresh. A lease blocks when its worker still shows a sign of life (a
heartbeat in the last :data:`ACTIVE_WORKER_SECONDS`), or when nothing can tell: the holder
lookup could not run, or could not look into some processes (another user's, without
administrator rights). A lease whose worker shows none (no program has the file open,
nothing commits, no recent heartbeat: a crashed worker) is reported but does not block: its
worker cannot run the task again, and after the restore such a task is requeued by the
ordinary stale-lease rule once the lease has run out. As soon as no signal remains, the
restore may go: nothing waits out the heartbeat minute.
"""

from __future__ import annotations

import math
import os
import re
import socket
import sqlite3
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..archive.store import read_lock
from ..database import closing_connection, open_read_only
from ..errors import ErrorKind, QueueAdminError, translate_error
from ..leases.manager import LeaseManager, WorkerInfo
from ..measurements.holders import FileHolder, find_holders
from ..progress import CancelCheck, raise_if_cancelled

#: A heartbeat or a commit this recent (seconds) means a worker is at work now.
QUIET_SECONDS = 5.0
#: Seconds since the last heartbeat within which a worker that holds a lease counts as alive.
ACTIVE_WORKER_SECONDS = 60
#: How long commits by other connections are watched for before the gate decides.
COMMIT_SAMPLE_SECONDS = 1.0
#: Caps that watch, in seconds, when set: the tests that restore a queue no worker uses watch
#: for a moment instead of a second (as ``QUEUE_ADMIN_LOCK_WAIT_MS`` caps lock waits).
ENV_COMMIT_SAMPLE_CAP = "QUEUE_ADMIN_COMMIT_SAMPLE_SECONDS"
#: The accepted-workers entry that accepts every signal (``--allow-live-workers``).
ALL_WORKERS = frozenset({"*"})
#: Holders named in a sentence before "and N more".
SHOWN_HOLDERS = 4
_SAMPLE_STEP_SECONDS = 0.1
#: The tool's own archiver, recognised by its command line.
_ARCHIVER_COMMAND = re.compile(r"(queue[-_]admin[-_]cli|queue_admin_gui\.cli)\b.*\barchive\b")

_LEASES_SQL = (
    "SELECT locked_by, count(*), max(lease_until_utc) FROM task_queue "
    "WHERE status IN ('leased', 'processing') AND locked_by IS NOT NULL "
    "AND (julianday(lease_until_utc) IS NULL OR julianday(lease_until_utc) > julianday('now')) "
    "GROUP BY locked_by ORDER BY locked_by"
)


@dataclass(frozen=True)
class LeaseHolding:
    """Unexpired leases one worker holds: how many, and until when (UTC text as stored)."""

    worker_id: str
    tasks: int
    until_utc: str

    def describe(self) -> str:
        """"3 leases held by worker-7 until 03:12:05" (local time)."""
        noun = "lease" if self.tasks == 1 else "leases"
        return f"{self.tasks} {noun} held by {self.worker_id} until {local_clock(self.until_utc)}"


class CommitWatch:
    """Counts commits by other connections to a database, from its creation until asked.

    Open it early (before a restore stages and checks its backup) so the sampling window
    costs nothing; :meth:`commits` waits for the rest of the minimum window if needed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.started = time.monotonic()
        self.connection: sqlite3.Connection | None = None
        self.first: int | None = None
        try:
            self.connection = open_read_only(self.path)
            self.first = self._version()
        except (QueueAdminError, sqlite3.Error):
            self.close()

    def _version(self) -> int:
        assert self.connection is not None
        return int(self.connection.execute("PRAGMA data_version").fetchone()[0])

    def commits(self, minimum_seconds: float = COMMIT_SAMPLE_SECONDS,
                cancelled: CancelCheck | None = None) -> tuple[bool, float]:
        """(whether another connection committed lately, seconds watched).

        Watches at least ``minimum_seconds`` in all. A change seen after more than
        :data:`QUIET_SECONDS` of watching may be older than that, so the watch starts afresh
        from it: only a commit within the last few seconds counts.
        """
        if self.connection is None or self.first is None:
            return False, 0.0
        minimum_seconds = commit_sample_seconds(minimum_seconds)
        while True:
            try:
                version = self._version()
            except sqlite3.Error:
                return False, time.monotonic() - self.started
            if version != self.first:
                if time.monotonic() - self.started <= QUIET_SECONDS:
                    return True, time.monotonic() - self.started
                # The change may be older than a few seconds: watch afresh for a window.
                self.first, self.started = version, time.monotonic()
                continue
            watched = time.monotonic() - self.started
            if watched >= minimum_seconds:
                return False, watched
            raise_if_cancelled(cancelled, "Watching the database for commits")
            time.sleep(min(_SAMPLE_STEP_SECONDS, minimum_seconds - watched))

    def close(self) -> None:
        """Close the watching connection."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def __enter__(self) -> CommitWatch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass
class WorkerSignals:
    """What the gate saw of workers working the queue, and whether it blocks a restore."""

    path: Path
    holders: tuple[FileHolder, ...] = ()
    #: Why the holder lookup could not run ("" when it ran).
    holders_unavailable: str = ""
    #: Processes whose open files could not be looked into (another user's, say).
    hidden_processes: int = 0
    #: Holders left out: this tool's own archiver.
    archivers: tuple[FileHolder, ...] = ()
    leases: list[LeaseHolding] = field(default_factory=list)
    #: Workers whose heartbeat is at most ACTIVE_WORKER_SECONDS old (or not a readable time).
    heartbeats: list[WorkerInfo] = field(default_factory=list)
    committed: bool = False
    watched_seconds: float = 0.0

    @property
    def lookup_ran(self) -> bool:
        """True when the holder lookup could run (then a crashed worker can be told)."""
        return not self.holders_unavailable

    def fresh_heartbeats(self) -> list[WorkerInfo]:
        """Heartbeats in the last QUIET_SECONDS, or ones that are not a readable time."""
        return [worker for worker in self.heartbeats
                if not math.isfinite(worker.heartbeat_age_seconds)
                or worker.heartbeat_age_seconds <= QUIET_SECONDS]

    def live_leases(self) -> list[LeaseHolding]:
        """Leases whose worker shows a sign of life (or when nothing can tell)."""
        if self.holders or self.committed or not self.lookup_ran or self.hidden_processes:
            return list(self.leases)
        alive = {worker.worker_id for worker in self.heartbeats}
        return [lease for lease in self.leases if lease.worker_id in alive]

    def orphaned_leases(self) -> list[LeaseHolding]:
        """Leases whose worker shows no sign of life: a crashed worker's."""
        live = self.live_leases()
        return [lease for lease in self.leases if lease not in live]

    def blocking_heartbeats(self) -> list[WorkerInfo]:
        """Heartbeats that block: fresh ones, or any in the minute when nothing else can tell."""
        return list(self.heartbeats) if not self.lookup_ran else self.fresh_heartbeats()

    @property
    def blocking(self) -> bool:
        """True while any signal says a worker is working the queue."""
        return bool(self.holders or self.committed or self.blocking_heartbeats()
                    or self.live_leases())

    def identities(self) -> frozenset[str]:
        """What blocks, as names a caller can accept: worker ids and ``pid:N`` per program."""
        names = {f"pid:{holder.pid}" for holder in self.holders}
        names |= {worker.worker_id for worker in self.blocking_heartbeats()}
        names |= {lease.worker_id for lease in self.live_leases()}
        if self.committed and not names:
            names.add("commits")
        return frozenset(names)

    def accepted_by(self, accepted: Collection[str]) -> bool:
        """True when nothing blocks, or the caller accepted everything that does."""
        accepted = set(accepted)
        if accepted >= ALL_WORKERS or not self.blocking:
            return True
        # Accepted workers commit: once any is accepted, commits are theirs.
        return self.identities() - {"commits"} <= accepted and (
            "commits" not in self.identities() or bool(accepted))

    def reasons(self) -> list[str]:
        """What blocks, one clause per signal, naming programs, workers and leases."""
        clauses = []
        if self.holders:
            count = len(self.holders)
            shown = ", ".join(describe_holder(holder) for holder in self.holders[:SHOWN_HOLDERS])
            more = f" and {count - SHOWN_HOLDERS} more" if count > SHOWN_HOLDERS else ""
            clauses.append(f"{count} program{' has' if count == 1 else 's have'} the file "
                           f"open: {shown}{more}")
        if self.committed:
            clauses.append(f"another connection committed to it in the last "
                           f"{max(1, round(self.watched_seconds))} s")
        heartbeats = self.blocking_heartbeats()
        if heartbeats:
            clauses.append("heartbeat" + ("s" if len(heartbeats) > 1 else "") + " from "
                           + ", ".join(describe_heartbeat(worker) for worker in heartbeats))
        leases = self.live_leases()
        if leases:
            clauses.append("; ".join(lease.describe() for lease in leases))
        return clauses

    def notes(self) -> list[str]:
        """What was seen that does not block: a crashed worker's leases, older heartbeats."""
        notes = []
        orphaned = self.orphaned_leases()
        if orphaned:
            notes.append("; ".join(lease.describe() for lease in orphaned)
                         + ", but no program has the file open and nothing commits: "
                         + ("its worker has" if len(orphaned) == 1 else "their workers have")
                         + " stopped (crashed?); once a lease runs out its task can be "
                           "requeued")
        quiet = [worker for worker in self.heartbeats
                 if worker not in self.blocking_heartbeats()]
        if quiet:
            notes.append("older heartbeats from " + ", ".join(
                describe_heartbeat(worker) for worker in quiet)
                + ("" if self.holders or self.committed
                   else ", but no program has the file open now"))
        if self.archivers:
            notes.append("the tool's own archiver has the file open ("
                         + ", ".join(describe_holder(h) for h in self.archivers)
                         + "); it works no tasks")
        if self.hidden_processes and self.leases and not self.holders_unavailable:
            notes.append(f"{self.hidden_processes} processes of other users could not be "
                         "looked into (run as administrator to see them), so every unexpired "
                         "lease counts")
        if self.holders_unavailable:
            notes.append(f"which programs have the file open could not be told "
                         f"({self.holders_unavailable}), so heartbeats of the last "
                         f"{ACTIVE_WORKER_SECONDS} s and every unexpired lease count")
        return notes

    def sentence(self) -> str:
        """One line: what blocks, or that no worker is at work (with what was noted)."""
        notes = self.notes()
        tail = f" (Also seen: {'; '.join(notes)}.)" if notes else ""
        if not self.blocking:
            return f"No worker is at work on the queue.{tail}"
        return f"Workers are at work on the queue: {'; '.join(self.reasons())}.{tail}"


def describe_holder(holder: FileHolder) -> str:
    """"python worker.py (PID 4242)": the program, its first arguments shortened, the PID."""
    command = holder.command_line.strip()
    if command.startswith('"'):
        closing = command.find('"', 1)
        executable, rest = (command[1:closing], command[closing + 1:]) if closing > 0 else (
            command[1:], "")
    else:
        executable, _, rest = command.partition(" ")
    program = holder.program or _base_name(executable) or "an unknown program"
    program = program.removesuffix(".exe").removesuffix(".EXE")
    words = [_base_name(word.strip('"')) for word in rest.split()]
    short = " ".join([program, *words[:3]]) + (" \u2026" if len(words) > 3 else "")
    return f"{short} (PID {holder.pid})"


def _base_name(word: str) -> str:
    """The last part of a path written with either slash; other words unchanged."""
    return re.split(r"[\\/]", word)[-1] if word else word


def describe_heartbeat(worker: WorkerInfo) -> str:
    """"worker-3 (2 s ago)", or that its heartbeat is not a readable time."""
    if not math.isfinite(worker.heartbeat_age_seconds):
        return f"{worker.worker_id} (heartbeat not a readable time)"
    return f"{worker.worker_id} ({max(0, int(worker.heartbeat_age_seconds))} s ago)"


def local_clock(utc_text: str | None) -> str:
    """A stored UTC time as the admin's local HH:MM:SS (the text itself if it is no time)."""
    if not utc_text:
        return "an unreadable time"
    try:
        moment = datetime.fromisoformat(str(utc_text).replace("Z", "+00:00"))
    except ValueError:
        return str(utc_text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%H:%M:%S")


def archiver_pids(archive_dirs: Collection[Path], db_path: Path) -> set[int]:
    """Process ids of the tool's archivers of ``db_path`` on this machine, from their locks."""
    found: set[int] = set()
    for folder in archive_dirs:
        data = read_lock(Path(folder))
        if not data or data.get("host") != socket.gethostname():
            continue
        pid, database = data.get("pid"), data.get("database")
        if isinstance(pid, int) and isinstance(database, str) and _same_path(database, db_path):
            found.add(pid)
    return found


def _same_path(text: str, path: Path) -> bool:
    try:
        return os.path.samefile(text, path)
    except OSError:
        return os.path.normcase(os.path.abspath(text)) == os.path.normcase(path.absolute())


def commit_sample_seconds(requested: float = COMMIT_SAMPLE_SECONDS) -> float:
    """How long commits are watched: ``requested``, or the cap if that is lower."""
    try:
        cap = float(os.environ.get(ENV_COMMIT_SAMPLE_CAP, ""))
    except ValueError:
        return requested
    return min(requested, cap) if cap >= 0 else requested


def read_worker_signals(live_path: str | Path, *, watch: CommitWatch | None = None,
                        sample_seconds: float = COMMIT_SAMPLE_SECONDS,
                        archive_dirs: Collection[Path] = (),
                        cancelled: CancelCheck | None = None) -> WorkerSignals:
    """Read every signal of workers at work on ``live_path``; see the module docstring.

    ``watch`` (a :class:`CommitWatch` opened earlier) shortens the wait for commits; without
    it one is opened here and watched for ``sample_seconds``. A file too damaged to list its
    leases or workers has none that count (a damaged database is moved aside whole); any
    other failure to read them (a lock, an I/O error) is raised, so a restore never goes
    ahead because a signal could not be read.
    """
    path = Path(live_path)
    signals = WorkerSignals(path)
    if not path.exists():
        return signals
    own_watch = watch is None
    watch = watch or CommitWatch(path)
    try:
        lookup = find_holders(path)
        signals.holders_unavailable = lookup.unavailable
        signals.hidden_processes = lookup.hidden_processes
        archivers = archiver_pids(archive_dirs, path)
        signals.archivers = tuple(h for h in lookup.holders if h.pid in archivers
                                  or _ARCHIVER_COMMAND.search(h.command_line or ""))
        signals.holders = tuple(h for h in lookup.holders if h not in signals.archivers)
        signals.leases = _unexpired_leases(path)
        signals.heartbeats = _recent_heartbeats(path)
        signals.committed, signals.watched_seconds = watch.commits(sample_seconds, cancelled)
    finally:
        if own_watch:
            watch.close()
    return signals


def _unexpired_leases(path: Path) -> list[LeaseHolding]:
    try:
        with closing_connection(open_read_only(path)) as connection:
            rows = connection.execute(_LEASES_SQL).fetchall()
    except sqlite3.Error as error:
        if str(error).startswith(("no such table", "no such column")):
            return []  # not a queue: nothing holds a lease in it
        translated = translate_error(error, f"Reading the leases of '{path}'")
        if translated.kind in _UNREADABLE_FILE:
            return []
        raise translated from error
    except QueueAdminError as error:
        if error.kind in _UNREADABLE_FILE:
            return []
        raise
    return [LeaseHolding(str(row[0]), int(row[1]), str(row[2]) if row[2] is not None else "")
            for row in rows]


def _recent_heartbeats(path: Path) -> list[WorkerInfo]:
    try:
        workers = LeaseManager(path).list_workers()
    except QueueAdminError as error:
        if error.kind in _UNREADABLE_FILE:
            return []
        raise
    return [worker for worker in workers
            if not math.isfinite(worker.heartbeat_age_seconds)
            or worker.heartbeat_age_seconds <= ACTIVE_WORKER_SECONDS]


#: A file that cannot be read as a queue has no workers a restore must wait for.
_UNREADABLE_FILE = (ErrorKind.CORRUPT, ErrorKind.NOT_A_DATABASE, ErrorKind.NOT_A_QUEUE)
