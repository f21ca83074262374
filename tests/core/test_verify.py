"""Verification rejects every kind of bad backup with a sentence, and accepts good ones."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.manifest import BackupManifest, manifest_path_for
from queue_admin_gui.core.backups.verify import check_backup_file
from queue_admin_gui.core.database import QueueDatabase
from queue_admin_gui.core.errors import ErrorKind, OperationCancelled, QueueBackupError
from queue_admin_gui.core.files.durable import file_sha256
from queue_admin_gui.core.trust.untrusted import open_backup_file, read_header

BAD_KINDS = ["empty", "random", "truncated", "damaged page", "damaged page, no manifest",
             "other schema", "bytes changed", "manifest unreadable"]


@pytest.fixture
def engine(queue_db: Path, tmp_path: Path) -> QueueBackup:
    with QueueDatabase(queue_db) as db, db.transaction() as connection:
        connection.executemany(
            "INSERT INTO task_queue(type, payload) VALUES ('t', ?)",
            [(json.dumps({"format": "mp4", "pad": "y" * 300}),)] * 1500)
    return QueueBackup(queue_db, tmp_path / "backups")


@pytest.fixture
def good(engine: QueueBackup) -> Path:
    return engine.create_backup("good")


def _copy_with_manifest(good: Path, label: str) -> Path:
    bad = good.with_name(f"queue_backup_{label}_20200101_000000.db")
    shutil.copyfile(good, bad)
    shutil.copyfile(manifest_path_for(good), manifest_path_for(bad))
    return bad


def make_bad(kind: str, good: Path) -> tuple[Path, str]:
    """A bad backup of ``kind`` beside ``good``, and a phrase its problem must contain."""
    label = kind.replace(" ", "-").replace(",", "")
    plain = good.with_name(f"queue_backup_{label}_20200101_000000.db")
    if kind == "empty":
        plain.write_bytes(b"")
        return plain, "empty"
    if kind == "random":
        plain.write_bytes(random.Random(7).randbytes(64 * 1024))
        return plain, "not an SQLite database"
    if kind == "truncated":
        data = good.read_bytes()
        plain.write_bytes(data[: len(data) // 2])
        return plain, "truncated"
    if kind == "other schema":
        with sqlite3.connect(plain) as connection:
            connection.execute("CREATE TABLE invoices(id INTEGER PRIMARY KEY, total REAL)")
        connection.close()
        return plain, "not a PrismQ queue"
    if kind.startswith("damaged page"):
        bad = _copy_with_manifest(good, label)
        if "no manifest" in kind:
            manifest_path_for(bad).unlink()
        page_size = read_header(bad).page_size
        data = bytearray(bad.read_bytes())
        middle = (len(data) // page_size // 2) * page_size
        data[middle: middle + page_size] = random.Random(3).randbytes(page_size)
        bad.write_bytes(bytes(data))
        return bad, "integrity check" if "no manifest" in kind else "SHA-256"
    if kind == "bytes changed":
        bad = _copy_with_manifest(good, label)
        data = bytearray(bad.read_bytes())
        at = data.find(b"yyyyyyyy")
        data[at] = ord("z")  # still a valid SQLite file: only the checksum can tell
        bad.write_bytes(bytes(data))
        return bad, "no longer match its manifest"
    if kind == "manifest unreadable":
        bad = _copy_with_manifest(good, label)
        manifest_path_for(bad).write_text("{ half a manifest", encoding="utf-8")
        return bad, "manifest"
    raise AssertionError(kind)


def test_a_good_backup_passes(engine: QueueBackup, good: Path) -> None:
    report = engine.check_backup(good)
    assert report.ok and report.problems == [] and report.notes == []
    assert report.kind is None and report.path == good
    assert report.manifest is not None and report.manifest.name == good.name
    assert engine.verify_backup(good) is True


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_every_bad_backup_is_rejected_with_a_sentence(engine: QueueBackup, good: Path,
                                                      kind: str) -> None:
    bad, phrase = make_bad(kind, good)
    report = engine.check_backup(bad)
    assert not report.ok
    assert any(phrase in problem for problem in report.problems), report.problems
    assert all(problem.endswith(".") for problem in report.problems)
    assert report.kind in {ErrorKind.CORRUPT, ErrorKind.NOT_A_DATABASE, ErrorKind.NOT_A_QUEUE}
    with pytest.raises(QueueBackupError, match="failed verification") as caught:
        engine.verify_backup(bad)
    assert caught.value.kind is report.kind


def test_damage_with_a_manifest_lists_both_problems(good: Path) -> None:
    bad, _ = make_bad("damaged page", good)
    problems = check_backup_file(bad).problems
    assert len(problems) >= 2
    assert any("SHA-256" in problem for problem in problems)


def test_an_old_backup_without_manifest_passes_with_a_note(engine: QueueBackup,
                                                           queue_db: Path) -> None:
    old = engine.backup_dir / "queue_backup_20200101_000000.db"
    with sqlite3.connect(queue_db) as source, sqlite3.connect(old) as target:
        source.backup(target)  # the way older tools did it: the header still says WAL
    source.close()
    target.close()
    assert read_header(old).is_wal
    report = engine.check_backup(old)
    assert report.ok and report.manifest is None
    assert any("no manifest" in note for note in report.notes)
    assert sorted(p.name for p in engine.backup_dir.iterdir()) == [old.name]


def test_an_old_wal_backup_is_read_without_creating_side_files(engine: QueueBackup,
                                                               queue_db: Path) -> None:
    old = engine.backup_dir / "queue_backup_20200101_000000.db"
    with sqlite3.connect(queue_db) as source, sqlite3.connect(old) as target:
        source.backup(target)
    source.close()
    target.close()
    with sqlite3.connect(queue_db) as source:
        expected = source.execute("SELECT count(*) FROM task_queue").fetchone()[0]
    source.close()
    with open_backup_file(old) as connection:
        assert connection.execute("SELECT count(*) FROM task_queue").fetchone()[0] == expected
        assert sorted(p.name for p in engine.backup_dir.iterdir()) == [old.name]
    assert check_backup_file(old).ok


def test_a_missing_backup_is_one_problem(tmp_path: Path) -> None:
    report = check_backup_file(tmp_path / "gone.db")
    assert not report.ok and report.kind is ErrorKind.NOT_FOUND
    assert "not found" in report.problems[0]


def test_verification_can_be_cancelled(good: Path) -> None:
    with pytest.raises(OperationCancelled):
        check_backup_file(good, cancelled=lambda: True)


def test_verification_reports_progress(good: Path) -> None:
    stages: list[str] = []
    check_backup_file(good, progress=lambda done, total, stage: stages.append(stage))
    assert "Computing the checksum" in stages and "Checking integrity" in stages


def index_out_of_step(good: Path) -> Path:
    """A copy of ``good`` whose index no longer agrees with its table, with a fresh manifest.

    Its pages are all sound, so only the full integrity_check (which compares every index
    with its table) finds the damage; the manifest matches the changed bytes.
    """
    bad = _copy_with_manifest(good, "index-out-of-step")
    with sqlite3.connect(bad) as connection:
        connection.execute("PRAGMA writable_schema=ON")
        connection.execute(
            "UPDATE sqlite_master SET sql = replace(sql, 'task_queue(type, status)', "
            "'task_queue(status, type)') WHERE name = 'ix_task_type_status'")
    connection.close()
    manifest = BackupManifest.read(manifest_path_for(bad))
    replace(manifest, name=bad.name, sha256=file_sha256(bad),
            size_bytes=bad.stat().st_size).write(bad)
    return bad


def test_a_matching_checksum_never_replaces_the_full_check(good: Path) -> None:
    """A hostile file can come with a manifest that matches it: the full check always runs."""
    bad = index_out_of_step(good)
    full = check_backup_file(bad)
    assert not full.ok and any("integrity check" in problem for problem in full.problems)
    trusted = check_backup_file(bad, trust_checksum=True)
    assert not trusted.ok and trusted.kind is ErrorKind.CORRUPT
    assert any("missing from index" in problem for problem in trusted.problems)
    assert check_backup_file(good, trust_checksum=True).ok


def test_without_a_manifest_a_restore_still_gets_the_full_check(good: Path) -> None:
    bad = index_out_of_step(good)
    manifest_path_for(bad).unlink()
    report = check_backup_file(bad, trust_checksum=True)
    assert not report.ok and any("integrity check" in problem for problem in report.problems)


def test_a_checksum_mismatch_is_found_with_the_quick_check_too(good: Path) -> None:
    bad, _ = make_bad("damaged page", good)
    report = check_backup_file(bad, trust_checksum=True)
    assert not report.ok and any("SHA-256" in problem for problem in report.problems)


def test_cancel_while_the_check_runs_beside_the_hash_stops_both(good: Path) -> None:
    seen: list[str] = []
    with pytest.raises(OperationCancelled):
        check_backup_file(good, progress=lambda done, total, stage: seen.append(stage),
                          cancelled=lambda: "Computing the checksum" in seen)
    assert not [thread for thread in threading.enumerate() if thread.name == "queue-admin-check"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX only")
def test_a_pipe_in_place_of_the_manifest_is_a_problem_not_an_older_backup(good: Path) -> None:
    odd = good.with_name("queue_backup_pipe_20250102_030405.db")
    shutil.copyfile(good, odd)
    os.mkfifo(manifest_path_for(odd))
    report = check_backup_file(odd)
    assert not report.ok
    assert any("not a regular file" in problem for problem in report.problems)
    assert not any("older tool" in note for note in report.notes)
