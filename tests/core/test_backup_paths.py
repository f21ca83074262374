"""A backup path that is the live database or one of its side files is refused unopened.

SQLite treats ``<db>-wal``, ``-shm`` and ``-journal`` as part of ``<db>``; a "backup" under
one of those names (or the live file through a link) would be read as such and could be
rewritten or deleted. Verify and restore refuse such paths before anything opens them, and
verification never changes the file it is given or creates anything beside it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from queue_admin_gui.cli import main
from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.backup_paths import refuse_live_side_paths
from queue_admin_gui.core.backups.verify import check_backup_file
from queue_admin_gui.core.database import QueueDatabase, closing_connection
from queue_admin_gui.core.errors import ErrorKind, QueueBackupError
from queue_admin_gui.core.trust.untrusted import read_header

SUFFIXES = ["", "-wal", "-shm", "-journal"]


def fingerprint(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file in ``folder`` with its size, modification time and SHA-256."""
    return {entry.name: (entry.stat().st_size, entry.stat().st_mtime_ns,
                         hashlib.sha256(entry.read_bytes()).hexdigest())
            for entry in sorted(folder.iterdir()) if entry.is_file()}


@pytest.fixture
def live(queue_db: Path) -> Iterator[Path]:
    """The live queue, with a writer's connection open so its -wal and -shm exist."""
    with QueueDatabase(queue_db) as db:
        db.execute("PRAGMA wal_autocheckpoint=0")
        with db.transaction() as connection:
            connection.executemany("INSERT INTO task_queue(type, payload) VALUES ('t', ?)",
                                   [("{}",)] * 200)
        Path(f"{queue_db}-journal").write_bytes(b"")  # as a crashed rollback writer leaves
        assert Path(f"{queue_db}-wal").stat().st_size > 0
        yield queue_db


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_verify_refuses_the_live_file_and_its_side_files_unopened(live: Path,
                                                                  suffix: str) -> None:
    before = fingerprint(live.parent)
    named = Path(f"{live}{suffix}")
    report = check_backup_file(named, live_path=live)
    assert not report.ok and report.kind is ErrorKind.INVALID
    role = "the file itself" if not suffix else f"the {suffix} file"
    assert any(role in problem and "not opened" in problem for problem in report.problems)
    assert fingerprint(live.parent) == before


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_refuse_live_side_paths_names_what_the_path_is(live: Path, suffix: str) -> None:
    with pytest.raises(QueueBackupError, match=f"{suffix or 'file itself'} ") as caught:
        refuse_live_side_paths(Path(f"{live}{suffix}"), live, "Restoring")
    assert caught.value.kind is ErrorKind.INVALID
    assert caught.value.message.startswith("Restoring refused: ")


def test_links_to_live_files_are_refused(live: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    symlink = elsewhere / "queue_backup_link_20200101_000000.db"
    symlink.symlink_to(live)
    hard = elsewhere / "queue_backup_hard_20200101_000000.db"
    try:
        os.link(f"{live}-wal", hard)
    except OSError:
        pytest.skip("this file system has no hard links")
    before = fingerprint(live.parent)
    for path, role in ((symlink, "the file itself"), (hard, "the -wal file")):
        report = check_backup_file(path, live_path=live)
        assert not report.ok and report.kind is ErrorKind.INVALID, path
        assert any(role in problem for problem in report.problems)
    assert fingerprint(live.parent) == before


def test_a_live_database_that_is_a_side_file_of_the_backup_is_refused(tmp_path: Path) -> None:
    backup = tmp_path / "queue_backup_20200101_000000.db"
    with pytest.raises(QueueBackupError, match="-wal file SQLite would open beside"):
        refuse_live_side_paths(backup, Path(f"{backup}-wal"), "Verifying")


def test_a_real_backup_passes_the_guard(live: Path, tmp_path: Path) -> None:
    made = QueueBackup(live, tmp_path / "backups").create_backup()
    refuse_live_side_paths(made, live, "Restoring")
    assert check_backup_file(made, live_path=live).ok


def test_cli_verify_refuses_the_live_wal(live: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = fingerprint(live.parent)
    code = main(["--db", str(live), "verify", f"{live}-wal"])
    said = capsys.readouterr()
    assert code == 1
    assert "-wal file of the live database" in said.err + said.out
    assert fingerprint(live.parent) == before


def test_verify_creates_nothing_beside_a_backup_with_a_wal(live: Path, tmp_path: Path) -> None:
    folder = tmp_path / "old backups"
    folder.mkdir()
    old = folder / "queue_backup_20200101_000000.db"
    with closing_connection(sqlite3.connect(live)) as source, \
            closing_connection(sqlite3.connect(old)) as target:
        source.backup(target)  # an older tool's backup: the header still says WAL
    shutil.copyfile(f"{live}-wal", f"{old}-wal")  # and a -wal lies beside it
    assert read_header(old).is_wal
    before = fingerprint(folder)
    report = check_backup_file(old)
    assert not report.ok and report.kind is ErrorKind.INVALID
    assert any("-wal' lies beside the backup" in problem for problem in report.problems)
    assert fingerprint(folder) == before  # no -shm created, the -wal untouched


def test_the_wal_beside_a_live_database_named_through_a_link_is_refused(
        live: Path, tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    alias = links / "alias.db"
    try:
        alias.symlink_to(live)
    except OSError:
        pytest.skip("this file system has no symbolic links")
    before = fingerprint(live.parent)
    for suffix in ("-wal", "-shm", "-journal"):
        side = Path(f"{live}{suffix}")  # SQLite keeps them beside the file the link names
        report = check_backup_file(side, live_path=alias)
        assert not report.ok and report.kind is ErrorKind.INVALID, suffix
        assert any(f"the {suffix} file of the live database '{alias}'" in problem
                   and "not opened" in problem for problem in report.problems)
        with pytest.raises(QueueBackupError, match=f"the {suffix} file") as caught:
            refuse_live_side_paths(side, alias, "Restoring")
        assert caught.value.kind is ErrorKind.INVALID
    assert fingerprint(live.parent) == before
