"""Attacks on the point-in-time archive standing in as a restore's or a rescue's safety copy.

Two claims are held to account here. First: the instant a report names as its
``safety_point`` rebuilds to exactly the queue as it was read under the same write lock,
just before the write, even while a PrismQ worker commits throughout, another program runs
TRUNCATE checkpoints every few milliseconds, or the wall clock is stepped. Second: a restore
or a rescue never commits without a proven safety copy: an archiver killed (SIGKILL) while
it is asked for its proof, a lock naming the queue with nothing archiving it, an archive
damaged between the proof and the commit, a proof-requests folder that is a file, an
archiver of another database answering in the same folder, an archiver started through a
symlink: each must end in a safety backup, or in an instant that really holds the queue.

The state "read under the same lock" is taken by wrapping the engine's call of
``prove_archived``: once the proof has come back, and while the writer still holds the write
lock (nothing can commit), a consistent copy of the live queue is read through a separate
connection. Rebuilding the named instant must give that very copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prismq import PrismQWorker, add_prismq_tasks, make_prismq_queue, prismq_connect
from rescue_scenario import copy_of, log_rows, make_incident, sequence, task_rows
from test_archive_under_load import wait_restorable
from test_prismq_restore import PROJECT_ROOT, run_cli

import queue_admin_gui.core.rescue.merge as rescue_merge
import queue_admin_gui.core.restore.keep as restore_keep
from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.archive import Archiver, archive_status, rebuild_to_time
from queue_admin_gui.core.archive.safety_point import (
    PROOF_FOLDER,
    SafetyPoint,
    confirm_safety_point,
    prove_archived,
)
from queue_admin_gui.core.archive.store import LOCK_FILE
from queue_admin_gui.core.rescue import RescueSelection, open_past_state, rescue_tasks
from queue_admin_gui.core.restore.gate import ALL_WORKERS
from queue_admin_gui.core.restore.keep import RestoreReport

SELECTION = RescueSelection(types=frozenset({"alpha", "beta"}))
DEADLINE = 60.0


# -- helpers ---------------------------------------------------------------------------------

def wait_for(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Until ``condition()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def same_queue(rebuilt: Path, expected: Path) -> None:
    """Every task, log row and id counter of ``rebuilt`` equals ``expected``'s."""
    assert task_rows(rebuilt) == task_rows(expected)
    assert log_rows(rebuilt) == log_rows(expected)
    assert sequence(rebuilt) == sequence(expected)


def assert_copy_holds(result: RestoreReport, before: Path, live: Path, tmp_path: Path) -> None:
    """The restore's safety copy holds ``before``: its safety backup, or, when the archive
    stood in, the instant it names, rebuilt."""
    point = result.safety_point
    if point is None:
        assert result.safety_backup is not None
        same_queue(result.safety_backup, before)
        return
    rebuilt = tmp_path / "rebuilt.db"
    assert rebuild_to_time(point.archive, point.at, rebuilt, live_path=live).check.ok
    same_queue(rebuilt, before)


def assert_snapshot_refused(result: RestoreReport, before: Path, live: Path,
                            backup: Path) -> None:
    """The restore refused the archive for its snapshot, took a safety backup holding
    ``before`` instead, and wrote ``backup`` in."""
    assert result.safety_point is None, result.safety_point
    assert "snapshot" in (result.archive_problem or ""), result.archive_problem
    assert result.safety_backup is not None
    same_queue(result.safety_backup, before)
    assert task_rows(live) == task_rows(backup) and result.check.ok


def capture_under_lock(monkeypatch: pytest.MonkeyPatch, module: object, live: Path,
                       target: Path) -> list[SafetyPoint | None]:
    """Wrap ``module.prove_archived``: once a proof comes back, copy the live queue to
    ``target`` while the caller still holds the write lock. Returns the proofs seen."""
    real = module.prove_archived  # type: ignore[attr-defined]
    seen: list[SafetyPoint | None] = []

    def proving(*args: object, **kwargs: object) -> SafetyPoint | None:
        point = real(*args, **kwargs)
        seen.append(point)
        if point is not None:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            copy_of(live, target)
        return point

    monkeypatch.setattr(module, "prove_archived", proving)
    return seen


def requests_in(archive: Path) -> list[Path]:
    """The proof requests waiting in the archive folder."""
    try:
        return list((archive / PROOF_FOLDER).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


class OnRequest:
    """A thread that runs ``action`` the moment a proof request appears in ``archive``
    (and, with ``after_answer``, only once that request was withdrawn again)."""

    def __init__(self, archive: Path, action: Callable[[], None], *,
                 after_answer: bool = False) -> None:
        self.archive, self.action, self.after_answer = archive, action, after_answer
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not requests_in(self.archive):
                if self._stop.wait(0.001):
                    return
            if self.after_answer:
                while requests_in(self.archive):
                    if self._stop.wait(0.0005):
                        return
            self.action()
            self.done.set()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error

    def stop(self) -> None:
        """End the watch (whether or not it fired)."""
        self._stop.set()
        self._thread.join(10)


def start_cli_archiver(live: Path, archive: Path, env_extra: dict[str, str] | None = None
                       ) -> subprocess.Popen:
    """``queue-admin-cli --db LIVE archive --dir ARCHIVE`` as its own process, restorable."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env_extra or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "queue_admin_gui.cli", "--db", str(live), "archive", "--dir",
         str(archive)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_for(lambda: (archive / LOCK_FILE).is_file() and any(
        generation.restorable_from is not None
        for generation in archive_status(archive).generations), "the archiver's snapshot")
    return process


def end_process(process: subprocess.Popen) -> None:
    """Stop a process this test started (continued first, should it be stopped)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        process.terminate()
    process.wait(30)


def damage_byte(path: Path, at: int, *, keep_mtime: bool = True) -> None:
    """Flip one bit of ``path`` in place, putting its modification time back."""
    info = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(at)
        byte = handle.read(1)
        handle.seek(at)
        handle.write(bytes([byte[0] ^ 0x04]))
    if keep_mtime:
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def more_work(worker: PrismQWorker, tasks: int) -> None:
    """Until ``worker`` has executed ``tasks`` more tasks than it has now."""
    target = len(worker.executed()) + tasks
    wait_for(lambda: len(worker.executed()) >= target, "the worker's progress")


@contextlib.contextmanager
def checkpoint_storm(live: Path, every: float = 0.003, *,
                     modes: tuple[str, ...] = ("TRUNCATE",), ready: int = 50,
                     busy_timeout: float = 0.05) -> Iterator[list[int]]:
    """Another program's checkpoints every few ms, in ``modes`` by turns (the count of those
    that ran); yields once ``ready`` have run."""
    stop = threading.Event()
    done = [0]

    def checkpointing() -> None:
        connection = sqlite3.connect(live, timeout=busy_timeout)
        try:
            while not stop.is_set():
                with contextlib.suppress(sqlite3.OperationalError):
                    mode = modes[done[0] % len(modes)]
                    connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
                    done[0] += 1
                stop.wait(every)
        finally:
            connection.close()

    thread = threading.Thread(target=checkpointing, daemon=True)
    thread.start()
    try:
        wait_for(lambda: done[0] >= ready, "the checkpoints")
        yield done
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture
def incident(tmp_path: Path) -> dict:
    """The rescue scenario's bad deploy (see :func:`rescue_scenario.make_incident`)."""
    return make_incident(tmp_path)


@contextlib.contextmanager
def archiving(live: Path, archive: Path, **options: object) -> Iterator[Archiver]:
    """An in-process archiver of ``live``, restorable, stopped at the end."""
    archiver = Archiver(live, archive, **options)  # type: ignore[arg-type]
    archiver.start()
    try:
        wait_restorable(archiver)
        yield archiver
    finally:
        archiver.stop()


@contextlib.contextmanager
def working(live: Path, log: Path, count: int = 4000) -> Iterator[PrismQWorker]:
    """A PrismQ worker completing ``count`` urgent ``work`` tasks (priority 1) throughout."""
    connection = prismq_connect(live)
    add_prismq_tasks(connection, count, "work", key_prefix="w")
    with connection:
        connection.execute("UPDATE task_queue SET priority = 1 WHERE type = 'work'")
    connection.close()
    worker = PrismQWorker(live, "prismq-1", log, work_seconds=0.001)
    worker.wait_started()
    try:
        wait_for(lambda: len(worker.executed()) >= 20, "the worker's first tasks")
        yield worker
    finally:
        worker.stop()


# -- the instant named is the queue read under the same lock ---------------------------------

@pytest.mark.slow
def test_restore_under_a_committing_worker_names_the_instant_read_under_its_lock(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    live, folder, backup = changed_queue
    under_lock = tmp_path / "under-lock.db"
    proofs = capture_under_lock(monkeypatch, restore_keep, live, under_lock)
    with archiving(live, folder / "archive") as archiver, \
            working(live, tmp_path / "worker.log") as worker:
        result = QueueBackup(live, folder).restore_backup(
            backup, accepted_workers=ALL_WORKERS, archive_safety=archiver.archive_dir)
        done = len(worker.executed())
        wait_for(lambda: len(worker.executed()) >= done + 10, "the worker after the restore")
    assert worker.errors() == []
    point = result.safety_point
    assert point is not None and point.confirmed is True, result.archive_problem
    assert result.safety_backup is None and len(proofs) == 1
    rebuilt = tmp_path / "rebuilt.db"
    assert rebuild_to_time(point.archive, point.at, rebuilt, live_path=live).check.ok
    same_queue(rebuilt, under_lock)
    # The worker's last commits before the lock are in it: the restore really changed them.
    assert any(row[5] == "completed" for task_id, row in task_rows(under_lock).items()
               if task_id > 420)


@pytest.mark.slow
def test_rescue_under_a_worker_and_truncate_checkpoints_names_the_instant_read_under_its_lock(
        incident: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another program runs TRUNCATE checkpoints every 3 ms while a worker commits: if the
    archive is named, its instant is the queue under the lock; if not, the safety backup is."""
    live, tmp = incident["live"], incident["tmp"]
    under_lock = tmp / "under-lock.db"
    capture_under_lock(monkeypatch, rescue_merge, live, under_lock)
    with archiving(live, tmp / "archive") as archiver, \
            working(live, tmp / "worker.log") as worker, \
            checkpoint_storm(live):
        with open_past_state(live, backup=incident["backup"]) as past:
            report = rescue_tasks(live, past, SELECTION, backup_dir=incident["backup_dir"],
                                  archive_dir=archiver.archive_dir)
        more_work(worker, 10)
    assert worker.errors() == []
    assert report.put_back == 49 + 20
    point = report.safety_point
    if point is None:
        assert report.archive_problem and report.safety_backup is not None
        return
    assert point.confirmed is True and report.safety_backup is None
    rebuilt = tmp / "rebuilt.db"
    assert rebuild_to_time(point.archive, point.at, rebuilt, live_path=live).check.ok
    same_queue(rebuilt, under_lock)


@pytest.mark.slow
def test_a_wall_clock_stepped_back_keeps_the_named_instant_exact(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The archiver's wall clock jumps 45 s back while a worker commits (NTP, a person):
    the restore's instant, taken after the step, still rebuilds the queue under the lock,
    and so does an instant proven before the step."""
    live, folder, backup = changed_queue
    offset = [0.0]
    under_lock = tmp_path / "under-lock.db"
    capture_under_lock(monkeypatch, restore_keep, live, under_lock)
    with archiving(live, folder / "archive", clock=lambda: time.time() + offset[0]) as archiver, \
            working(live, tmp_path / "worker.log") as worker:
        early = tmp_path / "early.db"
        holder = prismq_connect(live)
        holder.execute("BEGIN IMMEDIATE")  # the worker waits in its busy handler meanwhile
        try:
            early_point = prove_archived(live, archiver.archive_dir)
            copy_of(live, early)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert early_point is not None
        done = len(worker.executed())
        offset[0] = -45.0
        wait_for(lambda: archiver.status().clock_steps >= 1, "the step to be seen")
        wait_for(lambda: len(worker.executed()) >= done + 20, "commits after the step")
        result = QueueBackup(live, folder).restore_backup(
            backup, accepted_workers=ALL_WORKERS, archive_safety=archiver.archive_dir)
    point = result.safety_point
    assert point is not None and point.confirmed is True, result.archive_problem
    assert point.at > early_point.at
    rebuilt = tmp_path / "rebuilt.db"
    assert rebuild_to_time(point.archive, point.at, rebuilt, live_path=live).check.ok
    same_queue(rebuilt, under_lock)
    # The instant proven just before the step is exactly the queue then.
    past = tmp_path / "past.db"
    assert rebuild_to_time(point.archive, early_point.at, past, live_path=live).check.ok
    same_queue(past, early)
    assert task_rows(early) != task_rows(under_lock)


# -- never commit without a proven safety copy -----------------------------------------------

@pytest.mark.slow
def test_an_archiver_process_killed_during_the_proof_wait_means_a_safety_backup(
        incident: dict) -> None:
    """The CLI archiver is frozen, then SIGKILLed the moment the rescue's request appears:
    no answer can come, so the rescue rolls nothing in without its safety backup."""
    live, tmp = incident["live"], incident["tmp"]
    archive = tmp / "archive"
    process = start_cli_archiver(live, archive)
    try:
        os.kill(process.pid, signal.SIGSTOP)
        killer = OnRequest(archive, lambda: os.kill(process.pid, signal.SIGKILL))
        before = task_rows(live)
        with open_past_state(live, backup=incident["backup"]) as past:
            report = rescue_tasks(live, past, SELECTION, backup_dir=incident["backup_dir"],
                                  archive_dir=archive)
        killer.stop()
        assert killer.error is None and killer.done.is_set(), "no proof was ever asked for"
        assert process.wait(30) == -signal.SIGKILL
    finally:
        end_process(process)
    assert report.safety_point is None
    assert "did not prove" in (report.archive_problem or "")
    assert report.safety_backup is not None and task_rows(report.safety_backup) == before
    assert report.put_back == 49 + 20
    assert len(task_rows(live)) == len(before) + 20  # the 20 deleted put back, once
    assert requests_in(archive) == []


@pytest.mark.slow
def test_a_cli_restore_whose_archiver_is_killed_during_the_proof_wait_takes_a_safety_backup(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    live, folder, backup = changed_queue
    archive = folder / "archive"  # the settings' archive folder
    process = start_cli_archiver(live, archive)
    try:
        os.kill(process.pid, signal.SIGSTOP)
        before = copy_of(live, tmp_path / "before.db")
        killer = OnRequest(archive, lambda: os.kill(process.pid, signal.SIGKILL))
        code, report, err = run_cli(folder, "--db", live, "restore", backup, "--yes")
        killer.stop()
        assert killer.error is None and killer.done.is_set(), "no proof was ever asked for"
    finally:
        end_process(process)
    assert code == 0, err
    assert report["safety_point"] is None
    assert report["archive_problem"], report
    assert report["safety_backup"] is not None
    same_queue(Path(report["safety_backup"]), before)
    assert task_rows(live) == task_rows(backup)


@pytest.mark.slow
def test_an_archiver_killed_right_after_answering_still_holds_the_instant(
        incident: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL the moment the proof came back (the request withdrawn), before the commit: the
    heartbeat was synced, so the crashed archiver's open frame log still rebuilds it."""
    live, tmp = incident["live"], incident["tmp"]
    archive = tmp / "archive"
    under_lock = tmp / "under-lock.db"
    capture_under_lock(monkeypatch, rescue_merge, live, under_lock)
    process = start_cli_archiver(live, archive)
    try:
        killer = OnRequest(archive, lambda: os.kill(process.pid, signal.SIGKILL),
                           after_answer=True)
        with open_past_state(live, backup=incident["backup"]) as past:
            report = rescue_tasks(live, past, SELECTION, backup_dir=incident["backup_dir"],
                                  archive_dir=archive)
        wait_for(killer.done.is_set, "the kill")
        killer.stop()
        assert process.wait(30) == -signal.SIGKILL
    finally:
        end_process(process)
    point = report.safety_point
    assert point is not None and point.confirmed is True, report.archive_problem
    rebuilt = tmp / "rebuilt.db"
    assert rebuild_to_time(point.archive, point.at, rebuilt, live_path=live).check.ok
    same_queue(rebuilt, under_lock)
    assert task_rows(live) != task_rows(under_lock)


def test_a_stale_lock_over_an_old_archive_of_this_queue_is_no_safety_copy(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """An archive of this queue from an archiver that stopped, and a lock put back naming the
    queue and a live process: the old generation holds an old state, so nothing may answer
    and the restore takes a safety backup of the queue as it is now."""
    live, folder, backup = changed_queue
    archive = folder / "archive"
    with archiving(live, archive):
        lock = json.loads((archive / LOCK_FILE).read_text(encoding="utf-8"))
    connection = prismq_connect(live)
    add_prismq_tasks(connection, 30, "unarchived", key_prefix="u")
    connection.close()
    (archive / LOCK_FILE).write_text(json.dumps(lock), encoding="utf-8")  # pid: this process
    before = copy_of(live, tmp_path / "before.db")
    result = QueueBackup(live, folder).restore_backup(backup, archive_safety=archive)
    assert result.safety_point is None and result.archive_problem
    assert result.safety_backup is not None
    same_queue(result.safety_backup, before)
    assert task_rows(live) == task_rows(backup)


def test_a_proof_requests_path_that_is_a_file_means_a_safety_backup(
        incident: dict) -> None:
    live, tmp = incident["live"], incident["tmp"]
    with archiving(live, tmp / "archive") as archiver:
        (archiver.archive_dir / PROOF_FOLDER).write_text("not a folder", encoding="utf-8")
        before = task_rows(live)
        with open_past_state(live, backup=incident["backup"]) as past:
            report = rescue_tasks(live, past, SELECTION, backup_dir=incident["backup_dir"],
                                  archive_dir=archiver.archive_dir)
    assert report.safety_point is None and report.archive_problem
    assert report.safety_backup is not None and task_rows(report.safety_backup) == before
    assert report.put_back == 49 + 20


def test_a_snapshot_damaged_once_the_rescue_holds_the_lock_is_found_before_the_commit(
        incident: dict) -> None:
    """The snapshot was hashed ahead of the lock; one bit of it flips (its modification time
    put back) the moment the request appears: the digest must not be reused, the check
    fails, the write rolls back and a safety backup is taken."""
    live, tmp = incident["live"], incident["tmp"]
    with archiving(live, tmp / "archive") as archiver:
        snapshot = next(archiver.archive_dir.glob("gen-*/snapshot/*.db"))
        size = snapshot.stat().st_size
        damage = OnRequest(archiver.archive_dir, lambda: damage_byte(snapshot, size // 2))
        before = task_rows(live)
        with open_past_state(live, backup=incident["backup"]) as past:
            report = rescue_tasks(live, past, SELECTION, backup_dir=incident["backup_dir"],
                                  archive_dir=archiver.archive_dir)
        damage.stop()
    assert damage.error is None and damage.done.is_set()
    assert report.safety_point is None
    assert "snapshot" in (report.archive_problem or ""), report.archive_problem
    assert report.safety_backup is not None and task_rows(report.safety_backup) == before
    assert report.put_back == 49 + 20
    assert len(list((incident["backup_dir"] / "rescue-undo").iterdir())) == 1


def test_a_frame_log_damaged_once_the_restore_holds_the_lock_is_found_before_the_commit(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A record the archive holds from before the request (in the open frame log) is damaged
    the moment the request appears: the instant cannot be rebuilt, so the restore rolls its
    write back and takes a safety backup."""
    live, folder, backup = changed_queue
    archive = folder / "archive"
    with archiving(live, archive) as archiver:
        connection = prismq_connect(live)
        for _ in range(10):
            add_prismq_tasks(connection, 40, "logged", key_prefix="l")
        connection.close()
        wait_for(lambda: archiver.status().transactions >= 10, "the transactions archived")
        segment = max(archive.glob("gen-*/frames-*.qaf"), key=lambda path: path.stat().st_size)
        size = segment.stat().st_size
        before = copy_of(live, tmp_path / "before.db")
        damage = OnRequest(archive, lambda: damage_byte(segment, size // 2))
        result = QueueBackup(live, folder).restore_backup(backup, archive_safety=archive)
        damage.stop()
    assert damage.error is None and damage.done.is_set()
    assert result.safety_point is None
    assert result.archive_problem, result
    assert result.safety_backup is not None
    same_queue(result.safety_backup, before)
    assert task_rows(live) == task_rows(backup) and result.check.ok


def test_a_restore_hashes_the_snapshot_ahead_and_still_finds_it_damaged_under_the_lock(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The restore hashes the archive's snapshot beside its staging copy, before the lock;
    one bit of the snapshot flips (its modification time put back) the moment the proof is
    asked: the digest hashed ahead must not be reused, the check fails, the write rolls back
    and a safety backup is taken."""
    live, folder, backup = changed_queue
    archive = folder / "archive"
    real = restore_keep.confirm_safety_point
    given: list[object] = []

    def confirming(point: SafetyPoint, known: object = None) -> SafetyPoint:
        given.append(known)
        return real(point, known)  # type: ignore[arg-type]

    monkeypatch.setattr(restore_keep, "confirm_safety_point", confirming)
    with archiving(live, archive):
        snapshot = next(archive.glob("gen-*/snapshot/*.db"))
        size = snapshot.stat().st_size
        before = copy_of(live, tmp_path / "before.db")
        damage = OnRequest(archive, lambda: damage_byte(snapshot, size // 2))
        result = QueueBackup(live, folder).restore_backup(backup, archive_safety=archive)
        damage.stop()
    assert damage.error is None and damage.done.is_set()
    assert len(given) == 1 and given[0] is not None  # hashed ahead, handed to the check
    assert_snapshot_refused(result, before, live, backup)


def test_an_archiver_of_another_queue_answering_for_this_one_is_no_safety_copy(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    live, folder, backup = changed_queue
    other = make_prismq_queue(tmp_path / "other.db", tasks=7)
    archive = folder / "archive"
    with archiving(other, archive):
        lock_file = archive / LOCK_FILE
        lock = json.loads(lock_file.read_text(encoding="utf-8"))
        lock["database"] = str(live)  # the same live archiver, its lock naming this queue
        lock_file.write_text(json.dumps(lock), encoding="utf-8")
        before = copy_of(live, tmp_path / "before.db")
        result = QueueBackup(live, folder).restore_backup(backup, archive_safety=archive)
    assert task_rows(live) == task_rows(backup)
    assert_copy_holds(result, before, live, tmp_path)


@pytest.mark.slow
def test_a_cli_archiver_started_through_a_symlink_is_no_false_safety_copy(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    live, folder, backup = changed_queue
    link = tmp_path / "link.db"
    link.symlink_to(live)
    archive = folder / "archive"
    process = start_cli_archiver(link, archive)
    try:
        connection = prismq_connect(live)
        add_prismq_tasks(connection, 50, "since-snapshot", key_prefix="s")
        connection.close()
        before = copy_of(live, tmp_path / "before.db")
        code, report, err = run_cli(folder, "--db", live, "restore", backup, "--yes")
    finally:
        end_process(process)
    assert code == 0, err
    assert task_rows(live) == task_rows(backup)
    point = report["safety_point"]
    if point is None:
        assert report["safety_backup"] is not None
        same_queue(Path(report["safety_backup"]), before)
        return
    rebuilt = tmp_path / "rebuilt.db"
    code, _, err = run_cli(folder, "--db", live, "restore", "--at", point["at_text"],
                           "--archive", archive, "--output", rebuilt)
    assert code == 0, err
    same_queue(rebuilt, before)


# -- proofs asked over and over while generations rotate under a worker ----------------------

@pytest.mark.slow
def test_every_proven_instant_is_exact_while_generations_rotate_under_a_worker(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A new generation every half second (its snapshot taken while the old one goes on) and
    a worker committing throughout: each proof asked under the write lock, confirmed there,
    names an instant that rebuilds to the queue read under that lock."""
    live, folder, _ = changed_queue
    archive = folder / "archive"
    proven: list[tuple[SafetyPoint, Path]] = []
    with archiving(live, archive, rotate_seconds=0.5) as archiver, \
            working(live, tmp_path / "worker.log") as worker:
        for attempt in range(8):
            # Ask right as a rotation begins: the new snapshot is being taken while the
            # outgoing generation still receives every transaction (and the answer).
            started = archiver.status().generations_started
            wait_for(lambda since=started: archiver.status().generations_started > since,
                     "the next rotation")
            holder = prismq_connect(live)
            holder.execute("BEGIN IMMEDIATE")
            try:
                point = prove_archived(live, archive)
                if point is not None:
                    point = confirm_safety_point(point)
                    assert point.confirmed is True, point.problem
                    proven.append((point, copy_of(live, tmp_path / f"lock-{attempt}.db")))
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            more_work(worker, 3)
    assert worker.errors() == []
    assert len(proven) >= 6, len(proven)
    assert len({point.generation for point, _ in proven}) >= 4
    for number, (point, under_lock) in enumerate(proven):
        rebuilt = tmp_path / f"rebuilt-{number}.db"
        assert rebuild_to_time(archive, point.at, rebuilt, live_path=live).check.ok
        same_queue(rebuilt, under_lock)


def proven_copy(live: Path, archive: Path, target: Path, wait_seconds: float = 2.0
                ) -> SafetyPoint | None:
    """Hold the write lock, ask for a proof and copy the queue; (point or None)."""
    holder = prismq_connect(live)
    holder.execute("BEGIN IMMEDIATE")
    try:
        point = prove_archived(live, archive, wait_seconds=wait_seconds)
        copy_of(live, target)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    return point


@pytest.mark.slow
def test_a_restore_whose_first_step_spills_into_a_just_truncated_wal_is_never_a_wrong_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first step of more pages than the restore's cache holds, into a queue whose WAL
    another program has just TRUNCATEd: uncommitted frames (a new WAL header, new salts) are
    in the log when the proof is asked. The archive must not take them for commits: the
    restore names an exact instant or takes a safety backup, and afterwards the archive
    rebuilds both the queue before the restore and the queue it restored."""
    live, folder = tmp_path / "queue.db", tmp_path / "backups"
    make_prismq_queue(live)
    connection = prismq_connect(live)
    with connection:  # about 32 MB: more pages than the restore's 20 MB cache holds
        connection.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 15000)"
            " INSERT INTO task_queue (type, payload, idempotency_key) SELECT 'fat',"
            " json_object('format', 'mp4', 'pad', hex(randomblob(1000))), 'f-' || i FROM n")
    engine = QueueBackup(live, folder, pages_per_step=100_000)
    backup = engine.create_backup("before")
    with connection:
        connection.execute("UPDATE task_queue SET status = 'completed' WHERE id < 5000")
    wal_at_proof: list[int] = []
    real = restore_keep.prove_archived

    def proving(*args: object, **kwargs: object) -> SafetyPoint | None:
        wal_at_proof.append((tmp_path / "queue.db-wal").stat().st_size)
        return real(*args, **kwargs)

    with archiving(live, folder / "archive") as archiver:
        archive = archiver.archive_dir
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        connection.close()
        before = tmp_path / "before.db"
        early = proven_copy(live, archive, before)
        assert early is not None
        connection = prismq_connect(live)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        connection.close()
        assert (tmp_path / "queue.db-wal").stat().st_size == 0
        with monkeypatch.context() as patch:
            patch.setattr(restore_keep, "prove_archived", proving)
            result = engine.restore_backup(backup, archive_safety=archive)
        after = tmp_path / "after.db"
        late = proven_copy(live, archive, after, wait_seconds=60)
    assert wal_at_proof and wal_at_proof[0] > 0  # the first step had spilled frames
    assert task_rows(live) == task_rows(backup)
    assert result.safety_point is not None or result.archive_problem
    assert_copy_holds(result, before, live, tmp_path)
    assert late is not None
    for instant, expected in ((early.at, before), (late.at, after)):
        rebuilt = tmp_path / f"at-{instant}.db"
        assert rebuild_to_time(archive, instant, rebuilt, live_path=live).check.ok
        same_queue(rebuilt, expected)


def test_a_queue_file_replaced_between_the_archivers_look_and_the_request_is_no_safety_copy(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Another program puts a newer copy of the queue in its place right after the archiver
    looked whether the file was replaced, and the restore asks for its proof before the next
    look: the archive holds the old file, so it must not answer for the new one.

    The archiver reads its wall clock just after that look (deciding on a rotation); the
    clock given to it does the replacing there, then lets the archiver go on only once the
    restore's request is waiting."""
    live, folder, backup = changed_queue
    archive = folder / "archive"
    newer = copy_of(live, tmp_path / "newer.db")
    connection = prismq_connect(newer)
    add_prismq_tasks(connection, 70, "newer", key_prefix="n")
    connection.close()
    armed, replaced = threading.Event(), threading.Event()

    def clock() -> float:
        if armed.is_set() and threading.current_thread() is not threading.main_thread():
            armed.clear()
            os.replace(newer, live)
            replaced.set()
            deadline = time.monotonic() + 30
            while not requests_in(archive) and time.monotonic() < deadline:
                time.sleep(0.001)
        return time.time()

    with archiving(live, archive, clock=clock):
        armed.set()
        assert replaced.wait(30)
        before = copy_of(live, tmp_path / "before.db")
        assert len(task_rows(before)) == 420 + 70
        result = QueueBackup(live, folder).restore_backup(backup, archive_safety=archive)
    assert task_rows(live) == task_rows(backup)
    assert result.safety_point is not None or result.archive_problem
    assert_copy_holds(result, before, live, tmp_path)


def test_a_clock_stepped_back_the_moment_the_proof_is_asked_keeps_the_instant_exact(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The archiver's wall clock jumps an hour back while the restore waits for the proof:
    the instant named still rebuilds the queue as it was, and the restore's own commit,
    archived after it, is not in it."""
    live, folder, backup = changed_queue
    archive = folder / "archive"
    offset = [0.0]
    with archiving(live, archive, clock=lambda: time.time() + offset[0]) as archiver:
        before = copy_of(live, tmp_path / "before.db")
        step = OnRequest(archive, lambda: offset.__setitem__(0, -3600.0))
        result = QueueBackup(live, folder).restore_backup(backup, archive_safety=archive)
        step.stop()
        after = tmp_path / "after.db"
        late = proven_copy(live, archive, after)
        steps = archiver.status().clock_steps
    assert step.error is None and step.done.is_set()
    assert steps >= 1
    point = result.safety_point
    assert point is not None and point.confirmed is True, result.archive_problem
    rebuilt = tmp_path / "rebuilt.db"
    assert rebuild_to_time(archive, point.at, rebuilt, live_path=live).check.ok
    same_queue(rebuilt, before)
    assert late is not None and late.at > point.at
    restored = tmp_path / "restored.db"
    assert rebuild_to_time(archive, late.at, restored, live_path=live).check.ok
    same_queue(restored, after)
    assert task_rows(after) == task_rows(backup)


# -- the write rolled back after a failed check, then done again with a safety backup --------

def damage_snapshot(archive: Path) -> None:
    """Flip one bit in the middle of the generation's snapshot (its full check then fails)."""
    snapshot = next(archive.glob("gen-*/snapshot/*.db"))
    damage_byte(snapshot, snapshot.stat().st_size // 2, keep_mtime=False)


def test_after_a_failed_archive_check_the_retry_reports_every_task_it_kept(
        changed_queue: tuple[Path, Path, Path]) -> None:
    live, folder, backup = changed_queue
    archive = folder / "archive"
    newer = {task_id: row for task_id, row in task_rows(live).items() if task_id > 300}
    with archiving(live, archive):
        damage_snapshot(archive)
        result = QueueBackup(live, folder).restore_backup(backup, archive_safety=archive,
                                                          keep_newer_tasks=True)
    assert "snapshot" in (result.archive_problem or ""), result.archive_problem
    assert task_rows(live, list(newer)) == newer  # all 120 are kept ...
    assert result.carried is not None
    assert sorted(result.carried.task_ids) == sorted(newer)  # ... and must be reported


#: Another program (a PrismQ worker finishing a task): it waits for the restore's proof
#: request, then takes the write lock the moment the restore lets go of it and completes
#: task ``argv[3]``.
LOCK_GRABBER = r'''
import sqlite3, sys, time
from pathlib import Path
db, folder, task = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
print("ready", flush=True)
while not (folder.is_dir() and any(folder.iterdir())):
    time.sleep(0.0002)
connection = sqlite3.connect(db, timeout=0, isolation_level=None)
while True:
    try:
        connection.execute("BEGIN IMMEDIATE")
        break
    except sqlite3.OperationalError:
        pass
connection.execute("UPDATE task_queue SET status = 'completed' WHERE id = ?", (task,))
connection.execute("COMMIT")
connection.close()
print("done", flush=True)
'''


@pytest.mark.slow
def test_after_a_failed_archive_check_a_task_finished_before_the_retry_stays_finished(
        tmp_path: Path) -> None:
    """A worker completes a newer task in the moment between the rolled-back write and the
    retry: the retry's safety backup holds it completed (it is the queue just before the
    write), and the restored queue, keeping newer tasks, must hold it completed too. The
    worker's timing is a race: the scenario is played until the worker wins it."""
    for attempt in range(6):
        base = tmp_path / f"try-{attempt}"
        live, folder = base / "queue.db", base / "backups"
        make_prismq_queue(live, tasks=300)
        backup = QueueBackup(live, folder).create_backup("before")
        connection = prismq_connect(live)
        add_prismq_tasks(connection, 120, "after", key_prefix="after")
        connection.close()
        archive = folder / "archive"
        with archiving(live, archive):
            damage_snapshot(archive)
            grabber = subprocess.Popen(
                [sys.executable, "-c", LOCK_GRABBER, str(live), str(archive / PROOF_FOLDER),
                 "301"], stdout=subprocess.PIPE, text=True)
            try:
                assert grabber.stdout is not None
                assert grabber.stdout.readline().strip() == "ready"
                result = QueueBackup(live, folder).restore_backup(
                    backup, archive_safety=archive, keep_newer_tasks=True)
                assert grabber.stdout.readline().strip() == "done"
            finally:
                grabber.stdout.close()  # type: ignore[union-attr]
                end_process(grabber)
        assert result.archive_problem and result.safety_backup is not None
        if task_rows(result.safety_backup)[301][5] == "completed":
            break  # the worker committed before the retry took the lock
    else:
        pytest.fail("the worker never committed between the two attempts")
    # Nothing wrote after the restore: the live row is the row the restore kept.
    assert task_rows(live)[301] == task_rows(result.safety_backup)[301]


@pytest.mark.slow
def test_cli_rescue_whose_archiver_is_killed_after_answering_names_an_instant_cli_rebuilds(
        incident: dict) -> None:
    """`rescue --backup FILE --yes` as its own process beside `archive` as another, into the
    settings' archive folder (beside the backups); the archiver is SIGKILLed the moment it
    has answered. The instant the JSON names, typed back into `restore --at`, gives exactly
    the queue before the rescue, from the crashed archiver's files."""
    live, tmp, folder = incident["live"], incident["tmp"], incident["backup_dir"]
    archive = folder / "archive"
    process = start_cli_archiver(live, archive)
    try:
        before = copy_of(live, tmp / "before.db")
        killer = OnRequest(archive, lambda: os.kill(process.pid, signal.SIGKILL),
                           after_answer=True)
        code, report, err = run_cli(folder, "--db", live, "rescue", "--backup",
                                    incident["backup"], "--type", "alpha", "--type", "beta",
                                    "--yes", "--dir", folder)
        wait_for(killer.done.is_set, "the kill")
        killer.stop()
        assert process.wait(30) == -signal.SIGKILL
    finally:
        end_process(process)
    assert code == 0, err
    assert report["put_back"] == 49 + 20 and report["safety_backup"] is None
    point = report["safety_point"]
    assert point is not None and point["confirmed"] is True, report["archive_problem"]
    rebuilt = tmp / "rebuilt.db"
    code, _, err = run_cli(folder, "--db", live, "restore", "--at", point["at_text"],
                           "--archive", archive, "--output", rebuilt)
    assert code == 0, err
    same_queue(rebuilt, before)
    assert task_rows(live) != task_rows(before)


@pytest.mark.slow
def test_a_rescue_from_the_archive_with_the_archive_as_its_safety_copy_under_a_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One archive is both the past state (an instant before a bad deploy) and the safety
    copy, while a worker commits: the tasks go back as they were at that instant, and the
    safety instant is the queue read under the rescue's lock."""
    live, folder = tmp_path / "queue.db", tmp_path / "backups"
    make_prismq_queue(live, tasks=0)
    connection = prismq_connect(live)
    add_prismq_tasks(connection, 60, "alpha", key_prefix="a")
    connection.close()
    under_lock = tmp_path / "under-lock.db"
    capture_under_lock(monkeypatch, rescue_merge, live, under_lock)
    with archiving(live, folder / "archive") as archiver, \
            working(live, tmp_path / "worker.log") as worker:
        archive = archiver.archive_dir
        good = proven_copy(live, archive, tmp_path / "good.db")
        assert good is not None
        more_work(worker, 5)
        bad = prismq_connect(live)
        with bad:
            bad.execute("UPDATE task_queue SET status = 'failed', error_message = 'bad deploy'"
                        " WHERE type = 'alpha'")
        bad.close()
        more_work(worker, 5)
        with open_past_state(live, archive=archive,
                             at=datetime.fromtimestamp(good.at, tz=timezone.utc)) as past:
            report = rescue_tasks(live, past, RescueSelection(types=frozenset({"alpha"})),
                                  backup_dir=folder, archive_dir=archive)
        more_work(worker, 5)
    assert worker.errors() == []
    assert report.put_back == 60
    alpha = sorted(report.put_back_changed)
    assert task_rows(live, alpha) == task_rows(tmp_path / "good.db", alpha)
    point = report.safety_point
    assert point is not None and point.confirmed is True, report.archive_problem
    rebuilt = tmp_path / "rebuilt.db"
    assert rebuild_to_time(archive, point.at, rebuilt, live_path=live).check.ok
    same_queue(rebuilt, under_lock)
    assert {row[5] for row in task_rows(rebuilt, alpha).values()} == {"failed"}


@pytest.mark.slow
def test_undoing_a_restore_from_its_instant_is_itself_undoable_from_the_next(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Restore a backup (instant P1), undo it with `restore --at P1 --yes` (its own safety
    copy the same archive: instant P2), then rebuild P2: each instant is exactly the queue
    its write replaced, so a chain of undos never loses a state."""
    live, folder, backup = changed_queue
    archive = folder / "archive"
    process = start_cli_archiver(live, archive)
    try:
        before = copy_of(live, tmp_path / "before.db")
        code, first, err = run_cli(folder, "--db", live, "restore", backup, "--yes")
        assert code == 0, err
        restored = copy_of(live, tmp_path / "restored.db")
        p1 = first["safety_point"]
        assert p1 is not None and p1["confirmed"] is True, first["archive_problem"]
        code, undo, err = run_cli(folder, "--db", live, "restore", "--at", p1["at_text"],
                                  "--archive", archive, "--yes")
        assert code == 0, err
        p2 = undo["safety_point"]
        assert p2 is not None and p2["confirmed"] is True, undo["archive_problem"]
        assert undo["safety_backup"] is None
        again = tmp_path / "again.db"
        code, _, err = run_cli(folder, "--db", live, "restore", "--at", p2["at_text"],
                               "--archive", archive, "--output", again)
        assert code == 0, err
    finally:
        end_process(process)
    same_queue(live, before)
    same_queue(again, restored)
    assert task_rows(restored) == task_rows(backup) != task_rows(before)


@pytest.mark.slow
def test_restore_under_a_worker_and_truncate_checkpoints_names_the_instant_read_under_its_lock(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    live, folder, backup = changed_queue
    under_lock = tmp_path / "under-lock.db"
    capture_under_lock(monkeypatch, restore_keep, live, under_lock)
    with archiving(live, folder / "archive") as archiver, \
            working(live, tmp_path / "worker.log") as worker, \
            checkpoint_storm(live):
        result = QueueBackup(live, folder).restore_backup(
            backup, accepted_workers=ALL_WORKERS, archive_safety=archiver.archive_dir)
        more_work(worker, 10)
    assert worker.errors() == []
    point = result.safety_point
    if point is None:
        assert result.archive_problem and result.safety_backup is not None
        return
    assert point.confirmed is True and result.safety_backup is None
    rebuilt = tmp_path / "rebuilt.db"
    assert rebuild_to_time(point.archive, point.at, rebuilt, live_path=live).check.ok
    same_queue(rebuilt, under_lock)


def disagree_index_with_table(live: Path) -> None:
    """Give an index of task_queue a definition its entries do not follow, through the WAL
    (so the archive holds it): the file opens and passes quick_check, but SQLite's integrity
    check finds rows missing from the index (the damage keep.py names as its example)."""
    connection = sqlite3.connect(live, isolation_level=None)
    try:
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute("UPDATE sqlite_master SET sql = replace(sql, '(status,', '(type,')"
                           " WHERE name = 'ix_task_status_prio_time'")
        connection.execute("PRAGMA writable_schema = OFF")
    finally:
        connection.close()
    connection = sqlite3.connect(live)
    try:
        assert connection.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA integrity_check").fetchall() != [("ok",)]
    finally:
        connection.close()


def test_a_queue_damaged_through_its_wal_keeps_a_copy_that_can_be_had_back(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    live, folder, backup = changed_queue
    archive = folder / "archive"
    with archiving(live, archive):
        disagree_index_with_table(live)
        before = copy_of(live, tmp_path / "before.db")
        result = QueueBackup(live, folder).restore_backup(backup, archive_safety=archive)
    assert task_rows(live) == task_rows(backup)
    point = result.safety_point
    if point is None:
        kept = result.safety_backup or result.damaged_copy
        assert kept is not None
        assert task_rows(kept) == task_rows(before)
        return
    rebuilt = tmp_path / "rebuilt.db"
    rebuild_to_time(point.archive, point.at, rebuilt, live_path=live)
    assert task_rows(rebuilt) == task_rows(before)


def test_the_instant_before_a_restore_to_an_older_schema_can_still_be_rebuilt(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    live, folder, backup = changed_queue
    archive = folder / "archive"
    with archiving(live, archive):
        connection = prismq_connect(live)
        connection.execute("CREATE INDEX ix_task_key ON task_queue (idempotency_key)")
        connection.commit()
        connection.close()
        before = copy_of(live, tmp_path / "before.db")
        result = QueueBackup(live, folder).restore_backup(backup, archive_safety=archive)
    assert task_rows(live) == task_rows(backup)
    assert_copy_holds(result, before, live, tmp_path)


@pytest.mark.slow
def test_a_restore_killed_while_it_waits_for_the_proof_changes_nothing_and_the_next_one_works(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """`restore --yes` is SIGKILLed while it holds the write lock waiting for a frozen
    archiver's answer: nothing of it reaches the queue. Thawed, the archiver then serves the
    next restore as its safety copy, its leftover request notwithstanding."""
    live, folder, backup = changed_queue
    archive = folder / "archive"
    process = start_cli_archiver(live, archive)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "QUEUE_ADMIN_BACKUP_DIR": str(folder)}
    try:
        before = copy_of(live, tmp_path / "before.db")
        os.kill(process.pid, signal.SIGSTOP)
        restore = subprocess.Popen(
            [sys.executable, "-m", "queue_admin_gui.cli", "--json", "--db", str(live),
             "restore", str(backup), "--yes"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=env)
        killer = OnRequest(archive, restore.kill)
        try:
            assert restore.wait(120) == -signal.SIGKILL
        finally:
            killer.stop()
            end_process(restore)
        assert killer.done.is_set()
        assert len(requests_in(archive)) == 1  # the dead restore's request stays behind
        os.kill(process.pid, signal.SIGCONT)
        same_queue(live, before)
        result = QueueBackup(live, folder).restore_backup(backup, archive_safety=archive)
    finally:
        end_process(process)
    point = result.safety_point
    assert point is not None and point.confirmed is True, result.archive_problem
    rebuilt = tmp_path / "rebuilt.db"
    assert rebuild_to_time(point.archive, point.at, rebuilt, live_path=live).check.ok
    same_queue(rebuilt, before)
    assert task_rows(live) == task_rows(backup)


@pytest.mark.slow
def test_the_safety_instant_survives_compactions_made_around_it_under_a_worker(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`archive-compact` (its own process) carries the replay image on just before the
    restore, and again once the worker has committed past the safety instant: rebuilding
    that instant, now between two images, still gives the queue read under the lock."""
    live, folder, backup = changed_queue
    archive = folder / "archive"
    under_lock = tmp_path / "under-lock.db"
    capture_under_lock(monkeypatch, restore_keep, live, under_lock)
    with archiving(live, archive) as archiver, \
            working(live, tmp_path / "worker.log") as worker:
        code, compacted, err = run_cli(folder, "archive-compact", "--dir", archive)
        assert code == 0, err
        assert any(item["outcome"] == "started" for item in compacted["generations"])
        result = QueueBackup(live, folder).restore_backup(
            backup, accepted_workers=ALL_WORKERS, archive_safety=archiver.archive_dir)
        more_work(worker, 30)
        code, again, err = run_cli(folder, "archive-compact", "--dir", archive)
        assert code == 0, err
    assert any(item["outcome"] == "extended" for item in again["generations"]), again
    point = result.safety_point
    assert point is not None and point.confirmed is True, result.archive_problem
    rebuilt = tmp_path / "rebuilt.db"
    assert rebuild_to_time(archive, point.at, rebuilt, live_path=live).check.ok
    same_queue(rebuilt, under_lock)
