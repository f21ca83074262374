"""A restore pays for each guarantee once: sealed full checks, the page proof, the safety check.

A backup this tool checked in full carries a sealed record (an HMAC under a per-user key) of
that check; a restore of the same bytes trusts it and says so. A manifest or a record anyone
could write never stands in for the check. The result is proven page for page equal to the
checked backup, and the safety copy is checked once the write is over.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest
from test_restore import NEW, make_queue, state
from test_verify import index_out_of_step

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.manifest import manifest_path_for
from queue_admin_gui.core.errors import ErrorKind, QueueBackupError
from queue_admin_gui.core.files.durable import file_sha256
from queue_admin_gui.core.restore import page_proof
from queue_admin_gui.core.restore.execute import CHECKED_NOW, PROVEN_EQUAL
from queue_admin_gui.core.restore.keep import SAFETY_CHECKED_AFTER
from queue_admin_gui.core.restore.page_proof import STAGE_PROOF, prove_pages_equal
from queue_admin_gui.core.trust import check_seal
from queue_admin_gui.core.trust.check_seal import record_full_check, trusted_check

# Nothing here tells workers at work: the gate watches for commits a moment, not a second.
pytestmark = pytest.mark.usefixtures("short_commit_watch")


@pytest.fixture(autouse=True)
def seal_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own per-user state folder (and so its own key)."""
    folder = tmp_path / "state" / "full-checks"
    monkeypatch.setattr(check_seal, "seal_folder", lambda: folder)
    return folder


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return make_queue(tmp_path / "live dir" / "queue.db", 1200, "old")


@pytest.fixture
def engine(live: Path, tmp_path: Path) -> QueueBackup:
    return QueueBackup(live, tmp_path / "backups", pages_per_step=8, busy_timeout_ms=300)


@pytest.fixture
def new_backup(engine: QueueBackup, tmp_path: Path) -> Path:
    source = make_queue(tmp_path / "source.db", 800, "new")
    return QueueBackup(source, engine.backup_dir).create_backup("new")


def _write_record(folder: Path, backup: Path, mac: str) -> None:
    """A seal record for ``backup``'s bytes as anyone could write it, with the MAC given."""
    digest = file_sha256(backup)
    (folder / f"{digest}.json").write_text(json.dumps({
        "sha256": digest, "size": backup.stat().st_size,
        "scope": check_seal.FULL_INTEGRITY_SCOPE, "checked_at": "2026-12-01T00:00:00+00:00",
        "mac": mac}), encoding="utf-8")


def test_a_backup_the_tool_checked_is_restored_on_its_sealed_check(
        engine: QueueBackup, live: Path, new_backup: Path, seal_folder: Path) -> None:
    stages: list[str] = []
    result = engine.restore_backup(new_backup, progress=lambda d, t, s: stages.append(s))
    assert result.source_check.startswith("checked fully on ")
    assert result.source_check.endswith("by this tool; bytes unchanged")
    assert result.result_check == PROVEN_EQUAL
    assert result.check is not None and result.check.ok
    assert state(live) == NEW
    key = seal_folder / "seal.key"
    assert key.stat().st_size == 32
    if sys.platform != "win32":
        assert key.stat().st_mode & 0o777 == 0o600
        assert seal_folder.stat().st_mode & 0o777 == 0o700


def test_without_a_seal_the_restore_checks_fully_and_seals_it_for_next_time(
        engine: QueueBackup, new_backup: Path, seal_folder: Path) -> None:
    for record in seal_folder.glob("*.json"):
        record.unlink()
    first = engine.restore_backup(new_backup)
    assert first.source_check == CHECKED_NOW
    second = engine.restore_backup(new_backup)
    assert second.source_check.startswith("checked fully on ")


def test_a_forged_seal_with_a_matching_checksum_gets_the_full_check(
        engine: QueueBackup, live: Path, new_backup: Path, seal_folder: Path) -> None:
    """A hostile backup with a matching manifest and a seal record made without the key."""
    bad = index_out_of_step(new_backup)
    assert trusted_check(file_sha256(bad), bad.stat().st_size) is None
    _write_record(seal_folder, bad, "0" * 64)
    assert trusted_check(file_sha256(bad), bad.stat().st_size) is None
    with pytest.raises(QueueBackupError) as caught:
        engine.restore_backup(bad)
    assert caught.value.kind is ErrorKind.CORRUPT
    assert "integrity check" in caught.value.message
    assert state(live)[1] == ["old"]


def test_a_seal_made_with_another_users_key_is_not_trusted(
        new_backup: Path, seal_folder: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other user" / "full-checks"
    monkeypatch.setattr(check_seal, "seal_folder", lambda: other)
    assert record_full_check(file_sha256(new_backup), new_backup.stat().st_size)
    forged = next(other.glob("*.json"))
    monkeypatch.setattr(check_seal, "seal_folder", lambda: seal_folder)
    (seal_folder / forged.name).write_bytes(forged.read_bytes())
    assert trusted_check(file_sha256(new_backup), new_backup.stat().st_size) is None


def test_a_file_changed_after_its_check_gets_the_full_check(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    """The seal is for the bytes checked: the same file changed later (manifest and all)."""
    digest, size = file_sha256(new_backup), new_backup.stat().st_size
    assert trusted_check(digest, size) is not None
    bad = index_out_of_step(new_backup)
    os.replace(bad, new_backup)
    os.replace(manifest_path_for(bad), manifest_path_for(new_backup))
    assert trusted_check(file_sha256(new_backup), new_backup.stat().st_size) is None
    with pytest.raises(QueueBackupError) as caught:
        engine.restore_backup(new_backup)
    assert caught.value.kind is ErrorKind.CORRUPT
    assert state(live)[1] == ["old"]


def test_a_seal_names_its_size_and_scope(new_backup: Path) -> None:
    digest, size = file_sha256(new_backup), new_backup.stat().st_size
    assert trusted_check(digest, size) is not None
    assert trusted_check(digest, size + 4096) is None
    assert trusted_check(digest, size, scope="quick_check") is None


def test_a_record_with_its_fields_changed_fails_its_mac(
        new_backup: Path, seal_folder: Path) -> None:
    record_path = seal_folder / f"{file_sha256(new_backup)}.json"
    record = json.loads(record_path.read_text(encoding="utf-8"))
    record["checked_at"] = "2030-01-01T00:00:00+00:00"
    record_path.write_text(json.dumps(record), encoding="utf-8")
    assert trusted_check(file_sha256(new_backup), new_backup.stat().st_size) is None


def _index_out_of_step_live(live: Path) -> None:
    """Put the live file's index out of step with its table: only a full check sees it."""
    with sqlite3.connect(live) as connection:
        connection.execute("PRAGMA writable_schema=ON")
        connection.execute(
            "UPDATE sqlite_master SET sql = replace(sql, 'task_queue(type, status)', "
            "'task_queue(status, type)') WHERE name = 'ix_task_type_status'")
    connection.close()


def test_a_safety_copy_that_fails_its_later_check_is_reported_never_kept_as_good(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    _index_out_of_step_live(live)
    result = engine.restore_backup(new_backup)
    assert state(live) == NEW
    assert result.safety_backup is None and result.safety_checked == ""
    assert result.damaged_copy is not None
    assert result.damaged_copy.name.startswith("queue_damaged_")
    assert not manifest_path_for(result.damaged_copy).exists()
    assert trusted_check(file_sha256(result.damaged_copy),
                         result.damaged_copy.stat().st_size) is None
    assert [info.path for info in engine.list_backups()] == [new_backup]


def test_a_good_safety_copy_is_checked_after_the_write(
        engine: QueueBackup, new_backup: Path) -> None:
    result = engine.restore_backup(new_backup)
    assert result.safety_backup is not None and result.safety_checked == SAFETY_CHECKED_AFTER
    assert trusted_check(file_sha256(result.safety_backup),
                         result.safety_backup.stat().st_size) is not None


def test_the_page_proof_finds_one_changed_byte(new_backup: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    data = bytearray(new_backup.read_bytes())
    copy.write_bytes(bytes(data))
    assert prove_pages_equal(new_backup, copy) is None
    data[24:28] = b"\x00\x00\x00\x63"  # the change counter: SQLite's own, left out
    data[40:44] = b"\x00\x00\x00\x09"  # the schema cookie: the backup API moves it
    copy.write_bytes(bytes(data))
    assert prove_pages_equal(new_backup, copy) is None
    data[4096 * 2 + 700] ^= 0x01
    copy.write_bytes(bytes(data))
    assert prove_pages_equal(new_backup, copy) == "page 3 differs"
    data[4096 * 2 + 700] ^= 0x01
    data[60] ^= 0x01  # the user version: part of the database, never left out
    copy.write_bytes(bytes(data))
    assert prove_pages_equal(new_backup, copy) == "page 1 differs"
    copy.write_bytes(bytes(data[:-4096]))
    assert prove_pages_equal(new_backup, copy) is not None


def test_without_the_proof_the_result_gets_the_integrity_check(
        engine: QueueBackup, live: Path, new_backup: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """When the log cannot be read page by page (here: made to say so) and a reader keeps
    the restored pages out of the file, only the full check can vouch."""
    monkeypatch.setattr(page_proof, "BACKFILL_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(page_proof, "newest_frames", lambda wal: None)
    reader = sqlite3.connect(live)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM task_queue").fetchone()
        result = engine.restore_backup(new_backup, accepted_workers={"*"})
    finally:
        reader.close()
    assert result.result_check.startswith("SQLite's integrity check (the restored pages "
                                          "were not all in the file after 0.3 s")
    assert result.check is not None and result.check.ok
    assert state(live) == NEW


def test_the_proof_reads_the_pages_a_reader_keeps_in_the_log(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    """A reader older than the restore (an archiver looking at it) keeps the restored pages
    in the WAL for as long as it reads; the proof reads them from there, without waiting."""
    reader = sqlite3.connect(live)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM task_queue").fetchone()
    seen_in_wal: list[int] = []

    def progress(done: int, total: int, stage: str) -> None:
        if stage == STAGE_PROOF:
            seen_in_wal.append(Path(f"{live}-wal").stat().st_size)

    try:
        result = engine.restore_backup(new_backup, accepted_workers={"*"}, progress=progress)
        assert reader.in_transaction  # never let go during the restore
    finally:
        reader.close()
    assert seen_in_wal and min(seen_in_wal) > 0  # the restored pages were in the WAL
    assert result.result_check == PROVEN_EQUAL
    assert result.check is not None and result.check.ok
    assert state(live) == NEW


def test_the_restored_pages_reach_the_file_and_the_log_is_emptied_after_the_commit(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    """The log is copied into the file beside the proof, not under the lock, and emptied at
    the end when nobody reads it: the file alone then holds the restored queue."""
    connection = sqlite3.connect(live)  # another program's idle connection: no reader
    connection.execute("SELECT count(*) FROM task_queue").fetchone()
    try:
        result = engine.restore_backup(new_backup, accepted_workers={"*"})
        assert Path(f"{live}-wal").stat().st_size == 0
    finally:
        connection.close()
    assert result.result_check == PROVEN_EQUAL
    assert state(live) == NEW  # from the file alone: the log is empty


def test_a_reader_that_stays_keeps_the_log_and_loses_nothing(
        engine: QueueBackup, live: Path, new_backup: Path) -> None:
    """A reader older than the restore stays to the end: the log cannot be emptied then,
    and the restored queue is still what every new connection sees."""
    reader = sqlite3.connect(live)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM task_queue").fetchone()
    try:
        result = engine.restore_backup(new_backup, accepted_workers={"*"})
        assert Path(f"{live}-wal").stat().st_size > 0
        assert state(live) == NEW
    finally:
        reader.close()
    assert result.result_check == PROVEN_EQUAL
    assert state(live) == NEW
