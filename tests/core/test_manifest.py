"""Backup names, manifests and BackupInfo, on real files."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from queue_admin_gui.core.backups.manifest import (
    MAX_MANIFEST_BYTES,
    BackupInfo,
    BackupManifest,
    ManifestUnreadable,
    backup_file_name,
    is_backup_file_name,
    manifest_beside,
    manifest_path_for,
    parse_backup_name,
)
from queue_admin_gui.core.errors import ErrorKind, QueueBackupError
from queue_admin_gui.core.files.bounded_json import nesting_depth
from queue_admin_gui.core.files.durable import file_sha256, write_json_atomically
from queue_admin_gui.core.files.file_names import sanitize_backup_name


def make_manifest(**changes: object) -> BackupManifest:
    fields: dict[str, object] = {
        "format_version": 1, "name": "queue_backup_x_20261129_120000.db", "sha256": "ab" * 32,
        "size_bytes": 8192, "page_count": 2, "page_size": 4096,
        "task_counts": {"queued": 3, "completed": 1}, "source_path": r"C:\Data\queue.db",
        "created_at": "2026-11-29T12:00:00.250000+00:00", "sqlite_version": "3.40.1",
        "tool_version": "0.1.0",
    }
    fields.update(changes)
    return BackupManifest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [
    "../evil", "a/b", "a\\b", "CON", "nul", "com1", "LPT9.txt", "what?", "x*y", 'q"', "a:b",
    "tab\there", "bell\x07", "trailing.", "<tag>", "pipe|d",
])
def test_unusable_names_are_refused_with_a_sentence(name: str) -> None:
    with pytest.raises(QueueBackupError) as caught:
        sanitize_backup_name(name)
    assert caught.value.kind is ErrorKind.INVALID
    assert "cannot be used because" in str(caught.value)
    assert str(caught.value).endswith(".")


def test_a_name_too_long_says_so() -> None:
    with pytest.raises(QueueBackupError) as caught:
        sanitize_backup_name("x" * 65)
    assert caught.value.kind is ErrorKind.NAME_TOO_LONG
    assert "longer than 64 characters" in str(caught.value)


@pytest.mark.parametrize(("name", "expected"), [
    (None, None), ("", None), ("   ", None), ("nightly", "nightly"),
    ("  before upgrade ", "before upgrade"), ("pré-migration_2", "pré-migration_2"),
    ("console", "console"), ("a.b", "a.b"),
])
def test_usable_names_are_kept(name: str | None, expected: str | None) -> None:
    assert sanitize_backup_name(name) == expected


def test_file_names_round_trip() -> None:
    when = datetime(2026, 11, 29, 12, 0, 0)
    assert backup_file_name(None, when) == "queue_backup_20261129_120000.db"
    assert backup_file_name("nightly", when, 3) == "queue_backup_nightly_20261129_120000_3.db"
    label, stamp, sequence = parse_backup_name("queue_backup_nightly_20261129_120000_3.db")
    assert (label, sequence) == ("nightly", 3)
    assert stamp == when.astimezone().astimezone(timezone.utc)
    assert parse_backup_name("queue_backup_20261129_120000_2.db")[0::2] == (None, 2)
    assert parse_backup_name("queue_backup_a_b_20261129_120000.db")[0] == "a_b"
    assert parse_backup_name("queue_backup_x_20261399_990000.db") is None
    assert parse_backup_name("notes.db") is None
    assert is_backup_file_name("queue_backup_20261129_120000.db")
    assert not is_backup_file_name("queue_backup_20261129_120000.db.partial")


def test_manifest_path_sits_beside_the_backup(tmp_path: Path) -> None:
    backup = tmp_path / "queue_backup_x_20261129_120000.db"
    expected = tmp_path / "queue_backup_x_20261129_120000.manifest.json"
    assert manifest_path_for(backup) == expected
    assert BackupManifest.manifest_path_for(backup) == expected


def test_manifest_round_trips_through_its_file(tmp_path: Path) -> None:
    manifest = make_manifest()
    backup = tmp_path / manifest.name
    written = manifest.write(backup)
    assert written == manifest_path_for(backup)
    assert json.loads(written.read_text(encoding="utf-8"))["sha256"] == "ab" * 32
    assert BackupManifest.read(written) == manifest
    assert BackupManifest.from_dict(manifest.to_dict()) == manifest
    assert manifest.created_datetime == datetime(2026, 11, 29, 12, 0, 0, 250000, timezone.utc)
    assert not list(tmp_path.glob("*.tmp"))


def test_manifest_without_counts_and_with_bad_time() -> None:
    assert BackupManifest.from_dict(make_manifest(task_counts=None).to_dict()).task_counts is None
    manifest = make_manifest(created_at="yesterday")
    assert manifest.created_datetime is None
    with pytest.raises(ManifestUnreadable) as caught:
        BackupManifest.from_dict(manifest.to_dict())
    assert "yesterday" in caught.value.reason


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"name": "x"}',
                                     '{"format_version": "one"}'])
def test_unreadable_manifests_raise_a_corrupt_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "queue_backup_20261129_120000.manifest.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(QueueBackupError) as caught:
        BackupManifest.read(path)
    assert caught.value.kind is ErrorKind.CORRUPT


def test_missing_manifest_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(QueueBackupError) as caught:
        BackupManifest.read(tmp_path / "none.manifest.json")
    assert caught.value.kind is ErrorKind.NOT_FOUND


def test_json_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    target.write_text("old", encoding="utf-8")
    write_json_atomically(target, {"a": 1})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_sha256_reports_progress_and_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "blob"
    data = os.urandom(3 * 1024 * 1024 + 5)
    path.write_bytes(data)
    seen: list[tuple[int, int]] = []
    digest = file_sha256(path, lambda done, total, stage: seen.append((done, total)))
    assert digest == hashlib.sha256(data).hexdigest()
    assert seen[-1] == (len(data), len(data)) and len(seen) == 4


def test_info_prefers_the_manifest_time(tmp_path: Path) -> None:
    manifest = make_manifest()
    backup = tmp_path / manifest.name
    backup.write_bytes(b"\0" * 3 * 1024 * 1024)
    manifest.write(backup)
    info = BackupInfo.from_path(backup)
    assert info.has_manifest and info.manifest == manifest
    assert info.created_at == manifest.created_datetime
    assert info.size_bytes == 3 * 1024 * 1024 and info.size_mb == pytest.approx(3.0)
    assert info.task_counts == {"queued": 3, "completed": 1}


def test_info_of_an_old_backup_uses_its_name_then_its_mtime(tmp_path: Path) -> None:
    named = tmp_path / "queue_backup_20250102_030405.db"
    named.write_bytes(b"x")
    info = BackupInfo.from_path(named)
    assert not info.has_manifest and info.task_counts is None
    assert info.created_at == datetime(2025, 1, 2, 3, 4, 5).astimezone().astimezone(timezone.utc)

    odd = tmp_path / "queue_backup_handmade.db"
    odd.write_bytes(b"x")
    os.utime(odd, (1_700_000_000, 1_700_000_000))
    assert BackupInfo.from_path(odd).created_at == datetime.fromtimestamp(1_700_000_000,
                                                                          timezone.utc)


def test_info_with_a_broken_manifest_is_listed_without_one(tmp_path: Path) -> None:
    backup = tmp_path / "queue_backup_20250102_030405.db"
    backup.write_bytes(b"x")
    manifest_path_for(backup).write_text("{broken", encoding="utf-8")
    assert BackupInfo.from_path(backup).has_manifest is False


def test_info_of_a_missing_file_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(QueueBackupError) as caught:
        BackupInfo.from_path(tmp_path / "queue_backup_20250102_030405.db")
    assert caught.value.kind is ErrorKind.NOT_FOUND


# -- hostile manifests: each one affects only its own backup ------------------------------

def _valid_fields(**changes: object) -> dict[str, object]:
    fields = make_manifest().to_dict()
    fields.update(changes)
    return fields


#: Manifest contents that cannot be used, and a phrase the reason must contain.
HOSTILE_MANIFESTS: dict[str, tuple[bytes, str]] = {
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, "levels deep"),
    "year 1": (json.dumps(_valid_fields(created_at="0001-01-01T00:00:00+00:00")).encode(),
               "created_at '0001-01-01T00:00:00+00:00' is not a usable time"),
    "year 9999 west": (json.dumps(_valid_fields(created_at="9999-12-31T23:59:59-12:00"))
                       .encode(), "created_at '9999-12-31T23:59:59-12:00'"),
    "invalid utf-8": (b'{"name": "\xff\xfe"}', "not valid UTF-8"),
    "page_count text": (json.dumps(_valid_fields(page_count="x")).encode(),
                        "page_count is \"x\", not a whole number"),
    "size_bytes float": (json.dumps(_valid_fields(size_bytes=1.5)).encode(),
                         "not a whole number"),
    "list at top": (b"[1, 2, 3]", "JSON array"),
    "NaN": (b'{"size_bytes": NaN}', "NaN"),
    "counts not an object": (json.dumps(_valid_fields(task_counts=[1])).encode(),
                             "task_counts"),
    "missing field": (b'{"name": "x"}', "missing"),
}


@pytest.fixture
def west_of_utc(monkeypatch: pytest.MonkeyPatch):
    """Local time 5 hours behind UTC, where year 1 cannot be converted to local time."""
    import time

    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("case", sorted(HOSTILE_MANIFESTS))
def test_a_hostile_manifest_is_refused_with_its_reason(tmp_path: Path, case: str,
                                                       west_of_utc: None) -> None:
    content, reason = HOSTILE_MANIFESTS[case]
    path = tmp_path / "queue_backup_20261129_120000.manifest.json"
    path.write_bytes(content)
    with pytest.raises(ManifestUnreadable) as caught:
        BackupManifest.read(path)
    assert caught.value.kind is ErrorKind.CORRUPT
    assert reason in caught.value.reason
    assert reason in str(caught.value) and str(caught.value).endswith(".")


@pytest.mark.parametrize("case", sorted(HOSTILE_MANIFESTS))
def test_info_says_why_its_manifest_is_unreadable(tmp_path: Path, case: str,
                                                  west_of_utc: None) -> None:
    content, reason = HOSTILE_MANIFESTS[case]
    backup = tmp_path / "queue_backup_20250102_030405.db"
    backup.write_bytes(b"x")
    manifest_path_for(backup).write_bytes(content)
    info = BackupInfo.from_path(backup)
    assert not info.has_manifest and info.manifest_unreadable
    assert info.manifest_problem is not None and reason in info.manifest_problem
    # the time comes from the file name, and it converts to local time and compares
    assert info.created_at == datetime(2025, 1, 2, 3, 4, 5).astimezone().astimezone(timezone.utc)
    assert info.created_at.astimezone().year == 2025


def test_a_huge_manifest_is_refused_without_being_read(tmp_path: Path) -> None:
    import tracemalloc

    backup = tmp_path / "queue_backup_20250102_030405.db"
    backup.write_bytes(b"x")
    huge = manifest_path_for(backup)
    with open(huge, "wb") as handle:  # 300 MB, sparse: cheap to make, costly to read
        handle.truncate(300 * 1024 * 1024)
    tracemalloc.start()
    try:
        info = BackupInfo.from_path(backup)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.manifest_problem is not None
    assert "314,572,800 bytes" in info.manifest_problem and "1,048,576" in info.manifest_problem
    assert peak < 4 * 1024 * 1024


def test_a_manifest_at_the_size_limit_is_read(tmp_path: Path) -> None:
    fields = _valid_fields()
    text = json.dumps(fields)
    fields["tool_version"] = "v" * (MAX_MANIFEST_BYTES - len(text) - 2)
    path = tmp_path / "queue_backup_x_20261129_120000.manifest.json"
    path.write_text(json.dumps(fields), encoding="utf-8")
    assert path.stat().st_size <= MAX_MANIFEST_BYTES
    assert BackupManifest.read(path).page_count == 2


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX only")
def test_a_pipe_in_place_of_a_manifest_does_not_block(tmp_path: Path) -> None:
    backup = tmp_path / "queue_backup_20250102_030405.db"
    backup.write_bytes(b"x")
    os.mkfifo(manifest_path_for(backup))
    info = BackupInfo.from_path(backup)  # opening a pipe for reading would wait for a writer
    assert info.manifest_problem == "it is not a regular file"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert nesting_depth('{"a": "[[[[{{{{\\"]]]]", "b": [[1]]}') == 3
    assert nesting_depth("{}") == 1 and nesting_depth("7") == 0


@pytest.mark.parametrize("name", ["queue_backup_00010101_000000.db",
                                  "queue_backup_99991231_235959.db"])
def test_a_backup_named_with_an_impossible_year_falls_back_to_its_mtime(
        tmp_path: Path, name: str, west_of_utc: None) -> None:
    odd = tmp_path / name
    odd.write_bytes(b"x")
    os.utime(odd, (1_700_000_000, 1_700_000_000))
    assert parse_backup_name(name) is None
    assert BackupInfo.from_path(odd).created_at == datetime.fromtimestamp(1_700_000_000,
                                                                          timezone.utc)


def test_manifest_beside_tells_none_from_an_unreadable_one(tmp_path: Path) -> None:
    backup = tmp_path / "queue_backup_20250102_030405.db"
    backup.write_bytes(b"x")
    beside = manifest_path_for(backup)
    assert manifest_beside(backup) == (None, None)  # a backup made before manifests

    beside.mkdir()
    manifest, problem = manifest_beside(backup)
    assert manifest is None and problem is not None
    assert problem.reason == "it is not a regular file"
    beside.rmdir()

    if os.name != "nt":
        beside.symlink_to(tmp_path / "nowhere")
        manifest, problem = manifest_beside(backup)
        assert manifest is None and problem is not None
        assert problem.reason.startswith("it cannot be read")
        beside.unlink()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX only")
def test_a_pipe_beside_a_backup_is_an_unreadable_manifest_not_none(tmp_path: Path) -> None:
    backup = tmp_path / "queue_backup_20250102_030405.db"
    backup.write_bytes(b"x")
    os.mkfifo(manifest_path_for(backup))
    manifest, problem = manifest_beside(backup)
    assert manifest is None and problem is not None
    assert problem.reason == "it is not a regular file"
    assert "cannot be used: it is not a regular file" in problem.message
