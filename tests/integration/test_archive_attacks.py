"""An archive attacked from outside: a frame log that cannot be opened, metadata rolled back.

One real archive is made (a committer process, two generations, small frame logs); each test
damages a copy and checks what ``archive-status`` and the rebuild claim: the damage is a gap
with its reason and file, and every rebuild that still succeeds equals the pristine one.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from archive_workload import checkpoint_now, read_commit_log, spawn, table_rows
from queue_workload import fill_queue, kill_hard, wait_ready

from queue_admin_gui.core.archive import (
    ArchiveError,
    Archiver,
    archive_status,
    rebuild_to_time,
    store,
)
from queue_admin_gui.core.archive.rebuild import resolve_instant
from queue_admin_gui.core.archive.store import json_checksum, list_generations
from queue_admin_gui.core.archive.validation import validate_archive
from queue_admin_gui.core.errors import ErrorKind

pytestmark = pytest.mark.slow
DEADLINE = 60.0


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)



@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[float, dict]]:
    """The archive and the state each probed instant rebuilds to (checked on the commit log)."""
    root = tmp_path_factory.mktemp("attacked")
    db, folder, stop, log = (root / "queue.db", root / "archive", root / "stop",
                             root / "commits.log")
    fill_queue(db, 30, "seed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "SEGMENT_BYTES", 6_000)
        worker = spawn("committer", db, stop, log, 100)
        wait_ready(worker)
        try:
            for _ in range(2):
                archiver = Archiver(db, folder)
                archiver.start()
                try:
                    _wait(lambda running=archiver: running.status().generation is not None
                          and not running.status().snapshot_pending, "a restorable generation")
                    seen = len(read_commit_log(log))
                    _wait(lambda before=seen: len(read_commit_log(log)) >= before + 80,
                          "commits")
                finally:
                    archiver.stop()
        finally:
            stop.touch()
            worker.communicate(timeout=DEADLINE)
    commits = read_commit_log(log)
    expected = {}
    for number, summary in enumerate(archive_status(folder).generations):
        start, end = summary.restorable_from, summary.restorable_until
        assert start is not None and end is not None
        for share in (0.0, 0.5, 1.0):
            at = start + (end - start) * share
            rebuilt = root / f"expected-{number}-{share}.db"
            rebuild_to_time(folder, at, rebuilt)
            rows = table_rows(rebuilt)
            timed = [row[0] for row in rows["task_queue"] if row[1] == "timed"]
            assert timed == [commit[0] for commit in commits[:len(timed)]]
            assert not any(before > at and task in set(timed) for task, before, _ in commits)
            expected[at] = rows
    return folder, expected


def _every_rebuild_exact_or_refused(folder: Path, expected: dict[float, dict],
                                    tmp_path: Path) -> int:
    """Rebuild every probed instant; return how many were refused (as damage or a gap)."""
    status = archive_status(folder)
    spans = [(g.restorable_from, g.restorable_until) for g in status.generations
             if g.restorable_from is not None and g.restorable_until is not None]
    refused = 0
    for number, (at, rows) in enumerate(sorted(expected.items())):
        offered = any(start <= at <= end for start, end in spans)
        try:
            rebuild_to_time(folder, at, tmp_path / f"at-{number}.db")
        except ArchiveError as error:
            assert not offered, f"offered but refused: {error}"
            assert error.kind in (ErrorKind.CORRUPT, ErrorKind.INVALID)
            refused += 1
            continue
        assert offered
        assert table_rows(tmp_path / f"at-{number}.db") == rows
    return refused


def test_a_frame_log_that_cannot_be_opened_is_a_gap_not_a_crash(pristine, tmp_path: Path
                                                                ) -> None:
    """A directory where a frame log should be stands in for a file nobody may open (an
    antivirus lock, a permission changed on a share)."""
    source, expected = pristine
    folder = tmp_path / "archive"
    shutil.copytree(source, folder)
    target = list_generations(folder)[0].segments[3]
    target.unlink()
    target.mkdir()
    status = archive_status(folder)
    assert [str(item.file) for item in status.damage] == [str(target)]
    assert any(gap.kind == "damaged" and gap.file == str(target) for gap in status.gaps)
    assert _every_rebuild_exact_or_refused(folder, expected, tmp_path) >= 1


def test_generation_json_rolled_back_to_its_first_version_is_reported(pristine, tmp_path: Path
                                                                      ) -> None:
    """An older copy of generation.json (a restore of the metadata from a file backup, a
    sync tool): written before the snapshot was recorded, it names no snapshot."""
    source, expected = pristine
    folder = tmp_path / "archive"
    shutil.copytree(source, folder)
    newest = list_generations(folder)[-1]
    first = {key: value for key, value in newest.data.items()
             if key not in ("segments", "snapshot_sha256", "manifest_sha256", "checksum")}
    first.update(snapshot=None, snapshot_at=None, ended_at=None, end_reason=None)
    first["checksum"] = json_checksum(first)
    target = newest.folder / store.GENERATION_FILE
    target.write_text(json.dumps(first), encoding="utf-8")
    status = archive_status(folder)
    assert [str(item.file) for item in status.damage] == [str(target)], \
        "a generation's transactions vanished without a word"
    assert any(gap.kind == "damaged" and gap.file == str(target) for gap in status.gaps)
    assert _every_rebuild_exact_or_refused(folder, expected, tmp_path) >= 1


def _tamper_behind_sqlite(db: Path) -> None:
    """Change the header's application id in another process (a change no WAL frame shows)."""
    code = ("import sys\nwith open(sys.argv[1], 'r+b') as f:\n"
            "    f.seek(68)\n    f.write((4242).to_bytes(4, 'big'))")
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, timeout=DEADLINE)


@pytest.mark.parametrize("damage", ["deleted", "one byte flipped"])
def test_a_lost_validation_record_does_not_make_failed_instants_restorable(
        tmp_path: Path, damage: str) -> None:
    """A validation found the archive wrong after a change it never saw; validation.json is
    the only record of how far the generation can be trusted."""
    db, folder, stop, log = (tmp_path / "queue.db", tmp_path / "archive", tmp_path / "stop",
                             tmp_path / "commits.log")
    fill_queue(db, 30, "seed")
    worker = spawn("committer", db, stop, log, 100)
    wait_ready(worker)
    archiver = Archiver(db, folder)
    archiver.start()
    try:
        _wait(lambda: archiver.status().generation is not None
              and not archiver.status().snapshot_pending, "a restorable generation")
        _wait(lambda: len(read_commit_log(log)) >= 40, "commits")
        assert validate_archive(db, folder).ok is True
        stop.touch()
        worker.communicate(timeout=DEADLINE)
        assert checkpoint_now(db, "TRUNCATE")["busy"] == 0
        _tamper_behind_sqlite(db)
        assert validate_archive(db, folder).ok is False
        _wait(lambda: archiver.status().generations_started >= 2
              and not archiver.status().snapshot_pending, "a new generation")
    finally:
        stop.touch()
        if worker.poll() is None:
            worker.communicate(timeout=DEADLINE)
        archiver.stop()
    trusted = archive_status(folder).generations[0].restorable_until
    record = folder / store.VALIDATION_FILE
    if damage == "deleted":
        record.unlink()
    else:
        data = bytearray(record.read_bytes())
        data[len(data) // 2] ^= 0x21
        record.write_bytes(bytes(data))
    status = archive_status(folder)
    first = status.generations[0]
    assert first.restorable_until is None or trusted is None or \
        first.restorable_until <= trusted, "instants a validation found wrong are offered again"
    assert any(str(item.file) == str(record) for item in status.damage)
    if first.restorable_until is not None:
        rebuilt = rebuild_to_time(folder, first.restorable_until, tmp_path / "end.db")
        connection = sqlite3.connect(rebuilt.path)
        try:
            assert connection.execute("PRAGMA application_id").fetchone()[0] == 0
        finally:
            connection.close()


def test_restore_at_earliest_is_accepted_whatever_the_snapshot_instant(
        pristine, tmp_path: Path) -> None:
    """A snapshot instant whose fraction rounds down to the microsecond (about every other
    generation): ``earliest`` must name an instant the archive accepts."""
    source, expected = pristine
    folder = tmp_path / "archive"
    shutil.copytree(source, folder)
    first = list_generations(folder)[0]
    data = dict(first.data)
    data["snapshot_at"] = math.floor(float(data["snapshot_at"]) * 1e6) / 1e6 + 4e-7
    data["checksum"] = json_checksum(data)
    (first.folder / store.GENERATION_FILE).write_text(json.dumps(data), encoding="utf-8")
    assert not archive_status(folder).damage
    at = resolve_instant("earliest", folder)
    rebuilt = rebuild_to_time(folder, at, tmp_path / "earliest.db")
    assert rebuilt.transactions_applied == 0
    assert table_rows(tmp_path / "earliest.db") == expected[min(expected)]


def _archive_of_a_killed_archiver(tmp_path: Path) -> Path:
    """An archive whose archiver process was killed while a committer wrote: its newest frame
    log was never closed."""
    db, folder, stop, log = (tmp_path / "queue.db", tmp_path / "archive", tmp_path / "stop",
                             tmp_path / "commits.log")
    fill_queue(db, 20, "seed")
    worker = spawn("committer", db, stop, log, 100)
    wait_ready(worker)
    child = spawn("archiver", db, folder, 1000)
    wait_ready(child)
    try:
        _wait(lambda: archive_status(folder).latest is not None
              and archive_status(folder).generations[0].transactions >= 30, "archived commits")
        kill_hard(child)
    finally:
        stop.touch()
        worker.communicate(timeout=DEADLINE)
    assert not archive_status(folder).damage
    return folder


def test_losing_the_newest_frame_log_of_a_killed_archiver_is_a_gap(tmp_path: Path) -> None:
    """After a kill -9 the newest frame log was never closed, so no size or CRC of it is
    recorded; losing it must still be seen, not shrink the archive without a word."""
    folder = _archive_of_a_killed_archiver(tmp_path)
    newest = list_generations(folder)[-1].segments[-1]
    newest.unlink()
    status = archive_status(folder)
    assert [str(item.file) for item in status.damage] == [str(newest)], \
        "archived transactions vanished without a word"
    assert any(gap.kind == "damaged" and gap.file == str(newest) for gap in status.gaps)


def test_a_flipped_byte_in_the_last_record_of_a_killed_archiver_is_damage(tmp_path: Path
                                                                          ) -> None:
    """A kill leaves at most a record cut short at the end; a whole record that fails its
    checksum there is damage, not a torn tail to drop without a word."""
    folder = _archive_of_a_killed_archiver(tmp_path)
    newest = list_generations(folder)[-1].segments[-1]
    read = store.SegmentRead(newest)
    starts, start = [], 0
    for _ in store.iter_records(newest, outcome=read):
        starts.append(start)
        start = read.end_offset
    assert read.problem is None and starts
    data = bytearray(newest.read_bytes())
    data[starts[-1] + 6] ^= 0x10  # the last record's stamp, which its CRC covers
    newest.write_bytes(bytes(data))
    status = archive_status(folder)
    assert [str(item.file) for item in status.damage] == [str(newest)], \
        "a damaged record was dropped as if a crash had torn it"


def test_a_deleted_generation_between_two_others_is_damage_not_a_time_without_archiving(
        tmp_path: Path) -> None:
    db, folder, stop, log = (tmp_path / "queue.db", tmp_path / "archive", tmp_path / "stop",
                             tmp_path / "commits.log")
    fill_queue(db, 20, "seed")
    worker = spawn("committer", db, stop, log, 100)
    wait_ready(worker)
    try:
        for _ in range(3):  # stopped and started again: three generations
            archiver = Archiver(db, folder)
            archiver.start()
            try:
                _wait(lambda running=archiver: running.status().generation is not None
                      and not running.status().snapshot_pending, "a restorable generation")
                seen = len(read_commit_log(log))
                _wait(lambda before=seen: len(read_commit_log(log)) >= before + 30, "commits")
            finally:
                archiver.stop()
    finally:
        stop.touch()
        worker.communicate(timeout=DEADLINE)
    middle = list_generations(folder)[1].folder
    shutil.rmtree(middle)
    status = archive_status(folder)
    assert [str(item.file) for item in status.damage] == [str(middle)], \
        "a generation vanished and the gap says nothing was archived"
    assert [gap.kind for gap in status.gaps] == ["damaged"]
    assert status.gaps[0].file == str(middle)
