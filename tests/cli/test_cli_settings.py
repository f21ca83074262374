"""queue-admin-cli and a settings file it cannot use: one sentence, exit 2."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

import pytest
from _cli_helpers import Run

CliRunner = Callable[..., Run]


@pytest.mark.parametrize(("content", "expected"), [
    ('backup_dir = "C:/Sicherung/ä"\n'.encode("cp1252"), "is not UTF-8: byte 0xE4 at line 1"),
    (b"stale_lease_timeout_seconds = 99999999999\n",
     "Setting stale_lease_timeout_seconds in '{path}' must be a whole number from 0 to "
     "10,000,000; got 99999999999."),
    (b"backup_retention_count = 99999999999\n", "backup_retention_count in '{path}'"),
    (b"sample_interval_seconds = 10000000000.0\n", "sample_interval_seconds in '{path}'"),
    (b"wal_size_threshold_mb = nan\n", "wal_size_threshold_mb in '{path}'"),
    (b"stale_lease_timeout_seconds = = 3\n", "is not valid TOML"),
    (None, "is a folder, not a file"),
    (b"x = " + b"[" * 50_000 + b"]" * 50_000 + b"\n", "nests arrays or tables too deeply"),
    (b"x = " + b"{a=" * 50_000 + b"}" * 50_000 + b"\n", "nests arrays or tables too deeply"),
], ids=["ansi", "huge-timeout", "huge-retention", "huge-interval", "nan", "toml", "folder",
        "deep-arrays", "deep-tables"])
def test_an_unusable_settings_file_is_one_sentence_and_exit_2(
        cli: CliRunner, demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        content: bytes | None, expected: str) -> None:
    settings = tmp_path / "config.toml"
    if content is None:
        settings.mkdir()
    else:
        settings.write_bytes(content)
    monkeypatch.setenv("QUEUE_ADMIN_CONFIG", str(settings))
    run = cli("--db", demo_db, "leases")
    assert run.code == 2
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("queue-admin-cli: error: ")
    assert expected.format(path=settings) in lines[0]
    assert str(settings) in lines[0]
    assert "unexpectedly" not in lines[0]
    json_run = cli("--db", demo_db, "--json", "checkpoint")
    assert json_run.code == 2
    assert json_run.data["kind"] == "invalid"


def test_a_deeply_nested_settings_file_stops_a_backup_as_a_settings_error(
        cli: CliRunner, demo_db: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = tmp_path / "config.toml"
    settings.write_bytes(b"backup_dir = " + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    monkeypatch.setenv("QUEUE_ADMIN_CONFIG", str(settings))
    run = cli("--db", demo_db, "--json", "backup")
    assert run.code == 2, run.out
    assert run.data["kind"] == "invalid"
    assert run.data["error"] == (
        f"The settings file '{settings}' nests arrays or tables too deeply to be read (no "
        "setting nests at all); fix or delete it.")


def test_notepad_unicode_settings_are_used(cli: CliRunner, demo_db: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    settings = tmp_path / "config.toml"
    settings.write_bytes(codecs.BOM_UTF16_LE
                         + "stale_lease_timeout_seconds = 7\n".encode("utf-16-le"))
    monkeypatch.setenv("QUEUE_ADMIN_CONFIG", str(settings))
    run = cli("--db", demo_db, "--json", "leases")
    assert run.code == 0, run.err
    assert run.data["timeout_seconds"] == 7


def test_number_options_take_the_settings_range(cli: CliRunner, demo_db: Path) -> None:
    run = cli("--db", demo_db, "leases", "--timeout", "99999999999")
    assert run.code == 2
    assert "from 0 to 10,000,000" in run.err
    assert cli("--db", demo_db, "prune", "--keep", "10001").code == 2
    assert cli("--db", demo_db, "leases", "--timeout", "10000000").code == 0
