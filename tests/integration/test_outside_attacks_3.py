"""Outside attacks on the proof through the log, the settled log and the archiver's reads.

The restore's page proof reads each page where SQLite would read it: the newest committed
frame of the live WAL, else the file. These tests hold it to one oracle, SQLite's own view of
the database (a backup of it into memory, read through a connection while the WAL index is
live), and never to the code under test: a frame damaged inside the restore's transaction
while an older commit of the same cycle already held the backup's pages, big-endian
checksums, a database that shrank, page 1 and the last page, another program's RESTART and
TRUNCATE checkpoints with a worker committing throughout, a restoring process killed right
after its commit. The archiver's reads of the log are compared with a slow word-by-word walk
over real logs damaged at random (truncated, bytes flipped, an earlier cycle's frames left
behind a reset): exactly the same transactions must be found.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prismq import PrismQWorker, add_prismq_tasks, make_prismq_queue, prismq_connect
from sqlite_view import sqlite_view
from test_prismq_restore import PROJECT_ROOT
from test_safety_copy_attacks import (
    checkpoint_storm,
    more_work,
    start_cli_archiver,
    wait_for,
    working,
)

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.archive import archive_status, walfile
from queue_admin_gui.core.archive.validation import validate_archive
from queue_admin_gui.core.archive.walfile import (
    newest_frames,
    parse_header,
    read_committed,
    read_wal_index,
    wal_checksum_reference,
)
from queue_admin_gui.core.restore.gate import ALL_WORKERS
from queue_admin_gui.core.restore.page_proof import prove_pages_equal

PAGE = 4096
STEP = 24 + PAGE
DEADLINE = 60.0


# -- helpers -----------------------------------------------------------------------------------

def same_pages(view: bytes, staged: Path) -> bool:
    """The oracle's verdict: every byte from 100 on equals the staged copy's."""
    return view[100:] == staged.read_bytes()[100:]


def closed_copy(path: Path, tasks: int, **changes: str) -> Path:
    """A PrismQ queue of ``tasks`` tasks, its log folded in and removed (a staged copy)."""
    make_prismq_queue(path, tasks=tasks)
    connection = sqlite3.connect(path, isolation_level=None)
    for sql in changes.values():
        connection.execute(sql)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path


def backup_into(source: Path, target: Path, *, autocheckpoint: bool = False) -> None:
    """Write ``source`` into ``target`` with SQLite's backup API (one transaction)."""
    reading = sqlite3.connect(source)
    writing = sqlite3.connect(target)
    if not autocheckpoint:
        writing.execute("PRAGMA wal_autocheckpoint = 0")
    reading.backup(writing)
    reading.close()
    writing.close()


def holding(path: Path) -> sqlite3.Connection:
    """A connection that keeps the WAL index alive (the restore's settler does), idle."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return connection


def reading_snapshot(path: Path) -> sqlite3.Connection:
    """A reader whose snapshot keeps the next commit's frames in the log."""
    connection = holding(path)
    connection.execute("BEGIN")
    connection.execute("SELECT count(*) FROM task_queue").fetchone()
    return connection


def frames_in(wal: Path) -> int:
    return (wal.stat().st_size - 32) // STEP


# -- 1. the proof through the log ----------------------------------------------------------------


def test_a_damaged_frame_in_the_restores_commit_behind_an_equal_older_commit_is_never_equal(
        tmp_path: Path) -> None:
    """The log holds an older commit whose pages are already the backup's, then the
    restore's commit with one frame damaged. SQLite reads the damaged frame (its WAL index
    points at it, checksums are proven only when the index is rebuilt), and a checkpoint
    copies it into the file; the proof must not map the log only up to the older commit and
    call the result equal."""
    staged = closed_copy(tmp_path / "staged.db", 400)
    target = closed_copy(tmp_path / "restored.db", 20)
    holder = holding(target)
    try:
        backup_into(staged, target)  # an older commit: already the backup's pages
        wal = Path(f"{target}-wal")
        older = frames_in(wal)
        backup_into(staged, target)  # the restore's commit: every page again
        total = frames_in(wal)
        assert total == 2 * older
        with open(wal, "r+b") as handle:  # one byte of a page in the middle of it
            at = 32 + (older + (total - older) // 2) * STEP + 24 + 2000
            handle.seek(at)
            byte = handle.read(1)[0]
            handle.seek(at)
            handle.write(bytes([byte ^ 0x55]))
        view = sqlite_view(target)
        assert not same_pages(view, staged)  # SQLite reads the damaged page
        unproven = prove_pages_equal(staged, target, wait_seconds=1)
        holder.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        holder.close()
    assert not same_pages(target.read_bytes(), staged)  # and the file keeps it for good
    assert unproven is not None


def test_the_wal_index_read_is_what_sqlite_reports(tmp_path: Path) -> None:
    """The index's last frame is the log's frame count SQLite's own checkpoint reports, and
    its salts are the log header's, commit after commit; no index file: nothing read."""
    queue = closed_copy(tmp_path / "queue.db", 100)
    assert read_wal_index(Path(f"{queue}-shm")) is None
    reader = reading_snapshot(queue)  # nothing is copied out of the log meanwhile
    try:
        connection = prismq_connect(queue)
        for round_number in range(5):
            with connection:
                connection.execute("UPDATE task_queue SET attempts = ? WHERE id % 9 = 0",
                                   (round_number + 1,))
            index = read_wal_index(Path(f"{queue}-shm"))
            _, frames, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            header = parse_header(Path(f"{queue}-wal").read_bytes()[:32])
            assert index is not None and header is not None
            assert (index.last_frame, index.salts) == (frames, header.salts)
        connection.close()
    finally:
        reader.close()


@pytest.mark.parametrize("damage", ["copies differ", "checksum", "not initialised"])
def test_an_index_header_that_cannot_be_trusted_gives_the_map_up(
        tmp_path: Path, damage: str) -> None:
    """The WAL index header torn between its two copies (a writer changing it), with a
    failing checksum, or not initialised: nothing is read from it (so the proof does not
    take its map of the log for what SQLite reads); put back, it is read again."""
    staged = closed_copy(tmp_path / "staged.db", 300)
    target = closed_copy(tmp_path / "restored.db", 30)
    holder = holding(target)
    try:
        backup_into(staged, target)
        shm = Path(f"{target}-shm")
        assert read_wal_index(shm) is not None
        original = shm.read_bytes()
        data = bytearray(original)
        if damage == "copies differ":
            data[48 + 16] ^= 0x01  # the second copy's last frame
        elif damage == "checksum":
            for copy in (0, 48):
                data[copy + 20] ^= 0x01  # the page count, in both copies alike
        else:
            for copy in (0, 48):
                data[copy + 12] = 0
        with open(shm, "r+b") as handle:
            handle.write(bytes(data[:96]))
        assert read_wal_index(shm) is None
        with open(shm, "r+b") as handle:  # put back before SQLite looks at it again
            handle.write(original[:96])
        assert read_wal_index(shm) is not None
    finally:
        holder.close()


def test_a_commit_whose_frames_fail_in_the_log_but_not_in_the_index_falls_back_safely(
        tmp_path: Path) -> None:
    """The same damage where the older commit is not the backup's: never equal, and the
    honest restore next to it still is."""
    staged = closed_copy(tmp_path / "staged.db", 300)
    target = closed_copy(tmp_path / "restored.db", 30)
    holder = holding(target)
    try:
        connection = prismq_connect(target)
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        with connection:
            connection.execute("UPDATE task_queue SET attempts = 3 WHERE id < 10")
        connection.close()
        backup_into(staged, target)
        assert prove_pages_equal(staged, target, wait_seconds=1) is None  # honest
        wal = Path(f"{target}-wal")
        with open(wal, "r+b") as handle:
            handle.seek(wal.stat().st_size - 3 * STEP + 24 + 100)
            handle.write(b"\xff\x00\xff")
        assert not same_pages(sqlite_view(target), staged)
        assert prove_pages_equal(staged, target, wait_seconds=0.5) is not None
    finally:
        holder.close()


def test_forged_frames_after_the_commit_are_never_read_as_committed(tmp_path: Path) -> None:
    """Frames appended after the restore's commit with a valid checksum chain: without a
    commit frame, or with a commit frame carrying another cycle's salts. SQLite does not
    read them; the proof must not either (the honest state stays proven equal), and a
    forged frame that does carry the cycle's salts and a commit, with other bytes than the
    backup's, is never called equal."""
    staged = closed_copy(tmp_path / "staged.db", 300)
    target = closed_copy(tmp_path / "restored.db", 30)
    reader = reading_snapshot(target)
    try:
        backup_into(staged, target)
        wal = Path(f"{target}-wal")
        header = parse_header(wal.read_bytes()[:32])
        assert header is not None
        data = wal.read_bytes()
        last = data[-STEP:]
        running = struct.unpack(">II", last[16:24])

        def forged(page_number: int, commit: int, salts: tuple[int, int],
                   start: tuple[int, int], page: bytes) -> tuple[bytes, tuple[int, int]]:
            head = struct.pack(">II", page_number, commit)
            sums = wal_checksum_reference(head + page, header.big_endian, start)
            return head + struct.pack(">II", *salts) + struct.pack(">II", *sums) + page, sums

        garbage = bytes(random.Random(5).randrange(256) for _ in range(PAGE))
        pages = frames_in(wal)
        # No commit frame: two frames of an unfinished transaction.
        one, sums = forged(3, 0, header.salts, running, garbage)
        two, _ = forged(4, 0, header.salts, sums, garbage)
        with open(wal, "ab") as handle:
            handle.write(one + two)
        assert same_pages(sqlite_view(target), staged)
        assert prove_pages_equal(staged, target, wait_seconds=0.5) is None
        # A commit frame of another cycle right after the real commit.
        with open(wal, "r+b") as handle:
            handle.truncate(32 + pages * STEP)
            handle.seek(0, 2)
            other = ((header.salt1 + 1) & 0xFFFFFFFF, header.salt2 ^ 0x1234)
            handle.write(forged(3, pages, other, running, garbage)[0])
        assert same_pages(sqlite_view(target), staged)
        assert prove_pages_equal(staged, target, wait_seconds=0.5) is None
        # The cycle's salts and a commit: not what SQLite reads now, but not the backup's.
        with open(wal, "r+b") as handle:
            handle.truncate(32 + pages * STEP)
            handle.seek(0, 2)
            handle.write(forged(3, pages, header.salts, running, garbage)[0])
        assert prove_pages_equal(staged, target, wait_seconds=0.5) is not None
    finally:
        reader.close()


def rechained(wal: bytes | bytearray, big_endian: bool) -> bytes:
    """``wal`` with its header's and every frame's checksum recomputed in that byte order
    (frames of the header's salts, up to the first that is not)."""
    out = bytearray(wal)
    out[0:4] = struct.pack(">I", 0x377F0683 if big_endian else 0x377F0682)
    sums = wal_checksum_reference(bytes(out[:24]), big_endian)
    out[24:32] = struct.pack(">II", *sums)
    salts = bytes(out[16:24])
    for offset in range(32, len(out) - STEP + 1, STEP):
        if bytes(out[offset + 8:offset + 16]) != salts:
            break
        sums = wal_checksum_reference(bytes(out[offset:offset + 8])
                                      + bytes(out[offset + 24:offset + STEP]), big_endian, sums)
        out[offset + 16:offset + 24] = struct.pack(">II", *sums)
    return bytes(out)


def to_big_endian(wal: bytes) -> bytes:
    """The same log with big-endian checksums (magic 0x377f0683), every sum recomputed."""
    return rechained(wal, True)


def test_a_big_endian_log_is_read_as_sqlite_reads_it(tmp_path: Path) -> None:
    """A restore's log rewritten with big-endian checksums: SQLite recovers it (it reads
    both byte orders); the map, the proof and the archiver's reads agree with it."""
    staged = closed_copy(tmp_path / "staged.db", 500)
    target = closed_copy(tmp_path / "restored.db", 40)
    reader = reading_snapshot(target)
    try:
        backup_into(staged, target)
        connection = prismq_connect(target)
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        with connection:  # a later commit rewriting some pages again
            connection.execute("UPDATE task_queue SET status = 'failed' WHERE id % 50 = 1")
        connection.close()
        shutil.copyfile(target, tmp_path / "big.db")
        wal = to_big_endian(Path(f"{target}-wal").read_bytes())
    finally:
        reader.close()
    big = tmp_path / "big.db"
    Path(f"{big}-wal").write_bytes(wal)
    header = parse_header(wal[:32])
    assert header is not None and header.big_endian
    found = newest_frames(Path(f"{big}-wal"))
    assert found is not None and found.last_commit == frames_in(Path(f"{big}-wal"))
    assert reference_walk(wal) == archiver_walk(Path(f"{big}-wal"), 64 * STEP)
    holder = holding(big)  # recovery: SQLite accepts the big-endian sums
    try:
        view = sqlite_view(big)
        assert view != staged.read_bytes()
        rows = holder.execute("SELECT count(*) FROM task_queue WHERE status = 'failed'")
        assert rows.fetchone()[0] == 10
        wanted = tmp_path / "wanted.db"
        wanted.write_bytes(view)
        assert prove_pages_equal(wanted, big, wait_seconds=0.5) is None
        assert prove_pages_equal(staged, big, wait_seconds=0.5) is not None
    finally:
        holder.close()


@pytest.mark.parametrize("where", ["page 1 header", "page 1", "last page", "a middle page"])
def test_one_page_different_at_the_edges_is_never_equal(tmp_path: Path, where: str) -> None:
    """Page 1 outside the header bytes SQLite rewrites, the last page, a middle page: the
    staged copy differs from the restored one there alone, and the proof says so."""
    source = closed_copy(tmp_path / "source.db", 400)
    target = closed_copy(tmp_path / "restored.db", 50)
    reader = reading_snapshot(target)
    try:
        backup_into(source, target)
        view = bytearray(sqlite_view(target))
        pages = len(view) // PAGE
        offset = {"page 1 header": 68, "page 1": PAGE - 10,
                  "last page": (pages - 1) * PAGE + PAGE - 7,
                  "a middle page": (pages // 2) * PAGE + 3000}[where]
        view[offset] ^= 0x01  # the application id, schema or cell bytes: nothing masks them
        staged = tmp_path / "staged.db"
        staged.write_bytes(bytes(view))
        assert frames_in(Path(f"{target}-wal")) >= pages  # read from the log
        assert where == "page 1 header" or not same_pages(sqlite_view(target), staged)
        unproven = prove_pages_equal(staged, target, wait_seconds=0.5)
    finally:
        reader.close()
    assert unproven is not None and "differs" in unproven


def test_a_database_that_shrank_is_proven_through_the_log(tmp_path: Path) -> None:
    """The backup is far smaller than the live database: the restore's commit frame says
    fewer pages than the file still holds. Equal when SQLite reads it equal, not when the
    backup's last page differs, nor when the staged copy is one page longer."""
    staged = closed_copy(tmp_path / "staged.db", 60)
    target = closed_copy(tmp_path / "restored.db", 3000)
    reader = reading_snapshot(target)
    try:
        backup_into(staged, target)
        assert target.stat().st_size > staged.stat().st_size  # the file is longer
        assert same_pages(sqlite_view(target), staged)
        assert prove_pages_equal(staged, target, wait_seconds=0.3) is None
        longer = tmp_path / "longer.db"
        longer.write_bytes(staged.read_bytes() + bytes(PAGE))
        assert prove_pages_equal(longer, target, wait_seconds=0.3) is not None
        shorter = tmp_path / "shorter.db"
        shorter.write_bytes(staged.read_bytes()[:-PAGE])
        assert prove_pages_equal(shorter, target, wait_seconds=0.3) is not None
    finally:
        reader.close()
    assert same_pages(sqlite_view(target), staged)


@pytest.mark.parametrize("under_it", ["restart and a differing commit", "truncate alone"])
def test_a_log_started_over_between_the_map_and_the_compare(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, under_it: str) -> None:
    """Every restored frame already in the file, so the proof's read transaction reads the
    file alone and does not stop a reset: right after the map, another program resets the
    log, and a worker commits a difference into the new cycle over the mapped frames (never
    equal), or the log is only emptied (equal, by the file)."""
    import queue_admin_gui.core.restore.page_proof as page_proof

    staged = closed_copy(tmp_path / "staged.db", 400)
    target = closed_copy(tmp_path / "restored.db", 40)
    holder = holding(target)
    try:
        backup_into(staged, target)
        _, frames, copied = holder.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames == copied > 0  # in the file, still in the log
        real = page_proof.newest_frames
        resets = []

        def mapped_then_reset(wal: Path, *args: object) -> object:
            found = real(wal, *args)
            outside = sqlite3.connect(target, isolation_level=None, timeout=2)
            if under_it == "truncate alone":
                resets.append(outside.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
            else:
                resets.append(outside.execute("PRAGMA wal_checkpoint(RESTART)").fetchone())
                outside.execute("UPDATE task_queue SET status = 'failed' WHERE id = 123")
            outside.close()
            return found

        monkeypatch.setattr(page_proof, "newest_frames", mapped_then_reset)
        unproven = prove_pages_equal(staged, target, wait_seconds=1)
        view = sqlite_view(target)
    finally:
        holder.close()
    assert resets and resets[0][0] == 0  # the reset ran under the proof
    if under_it == "truncate alone":
        assert same_pages(view, staged) and unproven is None
    else:
        assert not same_pages(view, staged) and unproven is not None


@pytest.mark.slow
def test_a_difference_under_a_worker_and_outside_restarts_is_never_equal(
        tmp_path: Path) -> None:
    """One task differs from the staged copy for good; a PrismQ worker process commits
    throughout (BEGIN IMMEDIATE, 5 s busy timeout) on other tasks, another program runs
    RESTART and TRUNCATE checkpoints every 2 ms, a reader holds old snapshots now and then:
    however the log starts over under it, the proof never says equal."""
    staged = closed_copy(tmp_path / "staged.db", 400)
    target = closed_copy(tmp_path / "restored.db", 40)
    backup_into(staged, target, autocheckpoint=True)
    connection = prismq_connect(target)
    add_prismq_tasks(connection, 3000, "work", key_prefix="w")
    connection.close()
    # The staged copy: the queue with the worker's tasks, one old task different.
    staged = tmp_path / "staged-work.db"
    staged.write_bytes(sqlite_view(target))
    connection = prismq_connect(target)
    with connection:
        connection.execute("UPDATE task_queue SET error_message = 'x' WHERE id = 7")
    connection.close()
    worker = PrismQWorker(target, "prismq-1", tmp_path / "worker.log", work_seconds=0.001)
    worker.wait_started()
    results = []
    try:
        wait_for(lambda: len(worker.executed()) >= 10, "the worker's first tasks")
        with checkpoint_storm(target, 0.002, modes=("RESTART", "TRUNCATE", "PASSIVE"),
                              ready=20, busy_timeout=0.02) as done:
            for round_number in range(24):
                reader = reading_snapshot(target) if round_number % 3 == 0 else None
                try:
                    results.append(prove_pages_equal(staged, target, wait_seconds=0.2))
                finally:
                    if reader is not None:
                        reader.close()
        assert done[0] >= 20
    finally:
        worker.stop()
    assert worker.errors() == []
    assert None not in results, results


# -- 2. the settled log: a restoring process killed right after its commit ----------------------

KILLED_RESTORE = textwrap.dedent("""
    import os, signal, sys, threading
    from pathlib import Path
    import queue_admin_gui.core.restore.execute as execute
    from queue_admin_gui.core import QueueBackup
    from queue_admin_gui.core.restore.gate import ALL_WORKERS

    live, folder, backup = (Path(argument) for argument in sys.argv[1:4])
    delay = float(sys.argv[4])
    real = execute.prove_pages_equal

    def killed(*args, **kwargs):
        print("committed", flush=True)
        if delay < 0:
            os.kill(os.getpid(), signal.SIGKILL)
        threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
        return real(*args, **kwargs)

    execute.prove_pages_equal = killed
    QueueBackup(live, folder).restore_backup(backup, accepted_workers=ALL_WORKERS)
    threading.Event().wait(30)  # the timer ends it
""")

IDLE_CONNECTION = textwrap.dedent("""
    import sqlite3, sys, time
    connection = sqlite3.connect(sys.argv[1])
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA busy_timeout = 5000")
    connection.execute("SELECT count(*) FROM task_queue").fetchone()
    print("open", flush=True)
    time.sleep(120)
""")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [-1.0, 0.0, 0.01, 0.05])
def test_a_restore_killed_after_its_commit_keeps_the_backup(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path, delay: float) -> None:
    """kill -9 right after the commit (before the proof), or while the proof and the
    settling PASSIVE checkpoint run; an idle PrismQ-style process holds the queue open
    meanwhile and is killed too, so no close checkpoints the log: the next open recovers
    the log from its frames alone, and the queue is the backup's and passes SQLite's
    integrity check."""
    live, folder, backup = changed_queue
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    idle_script, script = tmp_path / "idle.py", tmp_path / "killed.py"
    idle_script.write_text(IDLE_CONNECTION, encoding="utf-8")
    script.write_text(KILLED_RESTORE, encoding="utf-8")
    idle = subprocess.Popen([sys.executable, str(idle_script), str(live)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert idle.stdout is not None and idle.stdout.readline().strip() == "open"
        run = subprocess.run([sys.executable, str(script), str(live), str(folder), str(backup),
                              str(delay)], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             env=env, timeout=DEADLINE, check=False)
        assert run.returncode == -signal.SIGKILL, run.stderr
        assert run.stdout.strip() == "committed"
        expected = rows_of(backup)
        assert rows_of(live) == expected  # through the live index
    finally:
        idle.kill()
        idle.wait(timeout=DEADLINE)
        if idle.stdout is not None:
            idle.stdout.close()
    wal = Path(f"{live}-wal")
    if delay < 0:  # nothing was copied out of the log: recovery alone has the restore
        assert wal.exists() and wal.stat().st_size > 0
    assert rows_of(live) == expected
    check = sqlite3.connect(live)
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        check.close()


@pytest.mark.slow
def test_a_restore_under_a_cli_archiver_and_a_worker_leaves_an_archive_that_validates(
        changed_queue: tuple[Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``queue-admin-cli archive`` reads the log throughout (its reads now proven all at
    once), a PrismQ worker commits right after the restore's commit and throughout the
    proof and the settling checkpoints: the archive then validates against the live queue
    with no gap, and the restored queue passes SQLite's integrity check."""
    import queue_admin_gui.core.restore.execute as execute

    live, folder, backup = changed_queue
    archive = tmp_path / "archive"
    real = execute.prove_pages_equal
    seen: list[str | None] = []

    def proving(source: Path, target: Path, *args: object, **kwargs: object) -> str | None:
        seen.append(real(source, target, *args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(execute, "prove_pages_equal", proving)
    archiver = start_cli_archiver(live, archive)
    try:
        with working(live, tmp_path / "worker.log") as worker:
            result = QueueBackup(live, folder).restore_backup(
                backup, accepted_workers=ALL_WORKERS)
            more_work(worker, 20)
        assert worker.errors() == []
        assert len(seen) == 1 and result.check.ok
        assert (result.result_check == execute.PROVEN_EQUAL) == (seen[0] is None)
        validation = validate_archive(live, archive)
        assert validation.ok is True, validation.sentence
    finally:
        archiver.send_signal(signal.SIGTERM)
        archiver.wait(timeout=DEADLINE)
    status = archive_status(archive)
    assert status.gaps == [] and status.damage == []
    check = sqlite3.connect(live)
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        check.close()


def rows_of(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(
            "SELECT id, type, status, payload FROM task_queue ORDER BY id").fetchall()
    finally:
        connection.close()


# -- 3. the archiver's reads against a word-by-word walk -------------------------------------------

def reference_walk(wal: bytes, largest: int | None = None) -> tuple[list[tuple], int,
                                                                   tuple[int, int]]:
    """Every committed transaction of the log's cycle, frame by frame as SQLite recovers it:
    ``(first frame, frames)``, or ``("oversized", commit frame, checksum)`` for one of more
    than ``largest`` bytes; then the frame and running checksum where the walk ended."""
    header = parse_header(wal[:32])
    if header is None:
        return [], 0, (0, 0)
    running = wal_checksum_reference(wal[:24], header.big_endian)
    assert running == header.checksum
    salts = struct.pack(">II", *header.salts)
    found, pending = [], []
    number = end = 0
    ended = running
    while 32 + (number + 1) * STEP <= len(wal):
        frame = wal[32 + number * STEP:32 + (number + 1) * STEP]
        page_number, commit = struct.unpack(">II", frame[:8])
        if frame[8:16] != salts or page_number == 0:
            break
        running = wal_checksum_reference(frame[:8] + frame[24:], header.big_endian, running)
        if running != struct.unpack(">II", frame[16:24]):
            break
        number += 1
        pending.append((page_number, commit, frame[24:]))
        if commit:
            if largest is not None and len(pending) * STEP > largest:
                found.append(("oversized", number, running))
            else:
                found.append((number - len(pending) + 1, tuple(pending)))
            pending, end, ended = [], number, running
    return found, end, ended


def archiver_walk(wal: Path, max_bytes: int) -> tuple[list[tuple], int, tuple[int, int]]:
    """The same, as the archiver reads it: :func:`read_committed` again and again."""
    header = parse_header(wal.read_bytes()[:32])
    if header is None:
        return [], 0, (0, 0)
    found: list[tuple] = []
    after, checksum = 0, header.checksum
    while True:
        read = read_committed(wal, header, after, checksum, max_bytes)
        for transaction in read.transactions:
            found.append((transaction.first_frame, tuple(
                (frame.page_number, frame.commit_size, bytes(frame.page))
                for frame in transaction.frames)))
        if read.transactions:
            after, checksum = read.end_frame, read.checksum
        if read.oversized_end is not None:
            found.append(("oversized", *read.oversized_end))
            after, checksum = read.oversized_end
        elif not read.transactions:
            return found, after, checksum


def real_logs(tmp_path: Path, seed: int) -> list[bytes]:
    """Logs SQLite wrote: transactions of many sizes, then a reset with fewer frames (an
    earlier cycle's frames left behind the new cycle's)."""
    rng = random.Random(seed)
    path = make_prismq_queue(tmp_path / f"log-{seed}.db", tasks=50)
    connection = prismq_connect(path)
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    logs = []
    wal = Path(f"{path}-wal")
    for _cycle in range(2):
        for _ in range(rng.randrange(5, 25)):
            with connection:
                connection.executemany(
                    "INSERT INTO task_queue (type, payload, status) VALUES ('t', ?, 'queued')",
                    [(f'{{"pad": "{"p" * rng.randrange(10, 3000)}"}}',)
                     for _ in range(rng.randrange(1, 30))])
                connection.execute("UPDATE task_queue SET attempts = attempts + 1 "
                                   "WHERE id % ? = 0", (rng.randrange(2, 40),))
        logs.append(wal.read_bytes())
        connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        with connection:  # a short new cycle over the earlier one's frames
            connection.execute("UPDATE task_queue SET priority = ? WHERE id = 3",
                               (rng.randrange(1000),))
        logs.append(wal.read_bytes())
    connection.close()
    return logs


def damaged(log: bytes, rng: random.Random) -> bytes:
    """``log`` truncated, with bytes flipped, a frame's page number 0 (checksums recomputed),
    or with the stale frames' salts made current."""
    data = bytearray(log)
    frames = (len(data) - 32) // STEP
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(data[:rng.randrange(32, len(data) + 1)])
    if kind == 1:
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(32, len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 2 and frames > 2:  # a frame's salts or page number
        frame = 32 + rng.randrange(frames) * STEP
        data[frame + rng.choice([0, 3, 8, 12, 15, 16, 23])] ^= 0x80
        return bytes(data)
    if kind == 3 and frames > 2:  # page number 0 in a frame whose checksums all hold
        frame = 32 + rng.randrange(frames) * STEP
        data[frame:frame + 4] = bytes(4)
        return rechained(data, data[3] == 0x83)
    # Every frame's salts made the cycle's: stale frames now fail only on their checksums.
    for frame in range(frames):
        data[32 + frame * STEP + 8:32 + frame * STEP + 16] = data[16:24]
    return bytes(data)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_archivers_reads_find_exactly_the_reference_transactions(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real logs, damaged at random and some rewritten big-endian, read with several read
    sizes and, for one seed, with a small limit that makes most transactions oversized:
    read_committed finds the reference walk's transactions (or their oversized ends) and
    ends where it ends; the restore proof's map ends at its last commit with each page at
    its newest frame."""
    rng = random.Random(seed)
    largest = 6 * STEP if seed == 3 else None
    if largest is not None:
        monkeypatch.setattr(walfile, "MAX_TRANSACTION_BYTES", largest)
    wal = tmp_path / "copy.db-wal"
    checked = oversized = 0
    for log in real_logs(tmp_path, seed):
        for attempt in range(12):
            data = log if attempt == 0 else damaged(log, rng)
            if attempt % 3 == 2:
                data = to_big_endian(data)
            wal.write_bytes(data)
            expected = reference_walk(data, largest)
            for max_bytes in (STEP, 5 * STEP + 17, 64 * STEP, walfile.READ_BYTES):
                assert archiver_walk(wal, max_bytes) == expected, (seed, attempt, max_bytes)
            transactions, end, _ = reference_walk(data)
            mapped = newest_frames(wal)
            if not transactions:
                assert mapped is None
            else:
                assert mapped is not None and mapped.last_commit == end
                assert mapped.database_pages == transactions[-1][1][-1][1]
                newest = {}
                for first, frames in transactions:
                    for index, (page_number, _, _) in enumerate(frames):
                        newest[page_number] = first + index
                for page_number in range(1, max(newest) + 2):
                    assert mapped.frame_of(page_number) == newest.get(page_number, 0)
            checked += bool(transactions)
            oversized += sum(entry[0] == "oversized" for entry in expected[0])
    assert checked >= 20
    assert largest is None or oversized >= 10
