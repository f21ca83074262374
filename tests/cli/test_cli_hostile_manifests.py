"""One malformed manifest in the backup folder affects only its own backup, through the CLI.

Each hostile manifest is put beside one backup of three; ``list-backups``, ``prune`` and
``backup --keep`` must keep working for the others, list that backup as unreadable with the
reason, and never delete it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _cli_helpers import Run

from queue_admin_gui.core.backups.manifest import manifest_path_for

CliRunner = Callable[..., Run]


def _fields(path: Path, **changes: object) -> bytes:
    data = json.loads(manifest_path_for(path).read_text(encoding="utf-8"))
    data.update(changes)
    return json.dumps(data).encode()


#: name -> (how to make the content from the backup's own manifest, phrase of the reason)
HOSTILE: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "deeply nested": (lambda path: b"[" * 200_000 + b"]" * 200_000, "levels deep"),
    "year 1": (lambda path: _fields(path, created_at="0001-01-01T00:00:00+00:00"),
               "created_at '0001-01-01T00:00:00+00:00' is not a usable time"),
    "invalid utf-8": (lambda path: b'{"name": "\xff"}', "not valid UTF-8"),
    "page_count text": (lambda path: _fields(path, page_count="x"), "page_count"),
    "list at top": (lambda path: b"[]", "JSON array"),
}


@pytest.fixture(autouse=True)
def west_of_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time behind UTC, where year 1 cannot be shown as local time."""
    if not hasattr(time, "tzset"):
        yield
        return
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _three_backups(cli: CliRunner, db: Path, folder: Path, case: str) -> tuple[Path, ...]:
    made = []
    for label in ("old", "bad", "new"):
        run = cli("--db", db, "--json", "backup", "--dir", folder, "--name", label)
        assert run.code == 0, run.err
        made.append(Path(run.data["path"]))
    make, _ = HOSTILE[case]
    manifest_path_for(made[1]).write_bytes(make(made[1]))
    return tuple(made)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_list_backups_shows_the_unreadable_one_and_all_others(
        cli: CliRunner, demo_db: Path, backup_dir: Path, case: str) -> None:
    old, bad, new = _three_backups(cli, demo_db, backup_dir, case)
    run = cli("--json", "list-backups", "--dir", backup_dir)
    assert run.code == 0, run.err
    rows = {Path(row["path"]): row for row in run.data["backups"]}
    assert set(rows) == {old, bad, new}
    assert HOSTILE[case][1] in rows[bad]["manifest_problem"]
    assert rows[bad]["has_manifest"] is False and rows[bad]["verified"] is False
    assert rows[old]["manifest_problem"] is None and rows[new]["has_manifest"] is True

    human = cli("list-backups", "--dir", backup_dir)
    assert human.code == 0, human.err
    line = next(text for text in human.out.splitlines() if bad.name in text)
    assert "manifest unreadable: " in line and HOSTILE[case][1] in line


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_prune_skips_the_unreadable_one_and_prunes_the_others(
        cli: CliRunner, demo_db: Path, backup_dir: Path, case: str) -> None:
    old, bad, new = _three_backups(cli, demo_db, backup_dir, case)
    run = cli("--json", "prune", "--keep", "1", "--dir", backup_dir)
    assert run.code == 0, run.err
    assert run.data["deleted"] == [str(old)]
    assert [row["path"] for row in run.data["skipped"]] == [str(bad)]
    assert HOSTILE[case][1] in run.data["skipped"][0]["manifest_problem"]
    assert bad.is_file() and new.is_file() and not old.exists()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_backup_keep_prunes_around_the_unreadable_one(
        cli: CliRunner, demo_db: Path, backup_dir: Path, case: str) -> None:
    old, bad, new = _three_backups(cli, demo_db, backup_dir, case)
    run = cli("--db", demo_db, "backup", "--dir", backup_dir, "--keep", "1")
    assert run.code == 0, run.err
    assert run.out.startswith("Backup written and verified.")
    assert f"not pruned: {bad.name} (manifest unreadable: " in run.out
    assert bad.is_file() and not old.exists() and not new.exists()


@pytest.mark.slow
def test_a_manifest_of_hundreds_of_megabytes_is_not_read(
        cli_process: Callable[..., Run], demo_db: Path, backup_dir: Path) -> None:
    """As a real process: a 400 MB manifest is refused by its size, in well under a second."""
    from _cli_helpers import cli_command  # noqa: F401 - the process runner uses it

    first = cli_process("--db", demo_db, "--json", "backup", "--dir", backup_dir)
    assert first.code == 0, first.err
    path = Path(first.data["path"])
    with open(manifest_path_for(path), "r+b") as handle:
        handle.truncate(400 * 1024 * 1024)  # sparse: costs nothing until someone reads it
    run = cli_process("--json", "list-backups", "--dir", backup_dir)
    assert run.code == 0, run.err
    row = run.data["backups"][0]
    assert "419,430,400 bytes" in row["manifest_problem"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX only")
def test_a_backup_whose_manifest_is_a_pipe_is_not_restored_as_an_older_backup(
        cli: CliRunner, queue_db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    run = cli("--db", queue_db, "--json", "backup", "--dir", folder, "--name", "piped")
    assert run.code == 0, run.err
    backup = Path(run.data["path"])
    manifest_path_for(backup).unlink()
    os.mkfifo(manifest_path_for(backup))
    restored = cli("--db", queue_db, "--json", "restore", str(backup), "--yes",
                   "--allow-live-workers")
    assert restored.code == 1, restored.out
    assert "not a regular file" in restored.err + restored.out
