"""The CLI names the real cause of a failure, and a prune that stops part way says what it
deleted, in text and in --json."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from _cli_helpers import Run
from undeletable import undeletable

CliRunner = Callable[..., Run]


def _backups(cli: CliRunner, db: Path, folder: Path, count: int) -> list[Path]:
    made = []
    for _ in range(count):
        run = cli("--db", db, "--json", "backup", "--dir", folder)
        assert run.code == 0, run.err
        made.append(Path(run.data["path"]))
    return made


def test_prune_stopping_part_way_reports_what_it_deleted_as_json(
        cli: CliRunner, demo_db: Path, backup_dir: Path) -> None:
    made = _backups(cli, demo_db, backup_dir, 4)
    with undeletable(made[1]):
        run = cli("--json", "prune", "--keep", "1", "--dir", backup_dir)
    assert run.code == 1
    data = run.data
    assert data["ok"] is False and data["kind"] == "permission"
    assert data["deleted"] == [str(made[2])]
    assert data["not_deleted"] == [str(made[1]), str(made[0])]
    assert f"Deleted before stopping: 1 backup(s) ({made[2].name})" in data["error"]
    assert not made[2].exists() and made[1].exists() and made[0].exists()


def test_prune_stopping_part_way_reports_what_it_deleted_as_text(
        cli: CliRunner, demo_db: Path, backup_dir: Path) -> None:
    made = _backups(cli, demo_db, backup_dir, 3)
    with undeletable(made[0]):
        run = cli("prune", "--keep", "1", "--dir", backup_dir)
    assert run.code == 1
    assert run.out.startswith("Pruning stopped part way after deleting 1 backup(s).")
    assert made[1].name in run.out and made[0].name in run.out
    assert f"stopped part way at '{made[0].name}'" in run.err


def test_backup_keep_that_stops_part_way_still_reports_the_new_backup(
        cli: CliRunner, demo_db: Path, backup_dir: Path) -> None:
    made = _backups(cli, demo_db, backup_dir, 3)
    with undeletable(made[0]):
        run = cli("--db", demo_db, "--json", "backup", "--dir", backup_dir, "--keep", "1")
    assert run.code == 1
    new = Path(run.data["path"])
    assert new.is_file() and run.data["sha256"]
    assert run.data["pruned"] == [str(made[2]), str(made[1])]
    assert run.data["kind"] == "permission"


def test_a_backup_folder_that_is_a_file_is_named_so(cli: CliRunner, demo_db: Path,
                                                    tmp_path: Path) -> None:
    a_file = tmp_path / "backups.txt"
    a_file.write_text("x", encoding="utf-8")
    run = cli("--db", demo_db, "--json", "backup", "--dir", a_file)
    assert run.code == 2 and run.data["kind"] == "not_a_folder"
    assert "is a file, not a folder" in run.data["error"]
    inside = cli("--db", demo_db, "--json", "backup", "--dir", a_file / "sub")
    assert inside.code == 2 and inside.data["kind"] == "not_a_folder"


def test_a_label_too_long_in_bytes_is_bad_usage(cli: CliRunner, demo_db: Path,
                                                backup_dir: Path) -> None:
    run = cli("--db", demo_db, "--json", "backup", "--dir", backup_dir,
              "--name", "\N{GRINNING FACE}" * 60)
    assert run.code == 2 and run.data["kind"] == "name_too_long"
    assert "240 bytes" in run.data["error"]


def test_a_wal_queue_on_read_only_media_without_shm_is_not_called_missing(
        cli: CliRunner, demo_db: Path) -> None:
    connection = sqlite3.connect(demo_db)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    assert not Path(f"{demo_db}-shm").exists()
    with undeletable(demo_db.parent):
        run = cli("--db", demo_db, "--json", "stats")
    assert run.code == 1 and run.data["kind"] == "read_only"
    assert "-shm file is missing" in run.data["error"]
    assert "not exist" not in run.data["error"]
