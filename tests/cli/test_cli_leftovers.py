"""What a killed backup, restore or prune leaves in the backup folder is cleaned or reported.

A partial file is a leftover only when no live process holds its claim and it has not been
written for the grace period; the tests age files with ``os.utime`` to stand for that time.
Real processes hold the claims: one is killed with SIGKILL (its partial must go), one stays
alive in the middle of a backup (its partial must stay, and its backup must still finish).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _cli_helpers import cli_env

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.activity import ActivityLog
from queue_admin_gui.core.backups.backup_folder import CLAIM_GRACE_SECONDS, find_leftovers
from queue_admin_gui.core.backups.manifest import manifest_path_for
from queue_admin_gui.core.backups.verify import check_backup_file

#: A backup stopped between its copy and its seal, as a restore holds its safety backup
#: while it writes: it prints the partial file's path, then waits for a line on stdin.
HELD_BACKUP = """
import sys
from pathlib import Path
from queue_admin_gui.core.backups.backup_store import BackupStore
store = BackupStore(Path(sys.argv[1]), Path(sys.argv[2]))
pending = store.begin_backup(Path(sys.argv[1]), "held")
print(pending.partial, flush=True)
sys.stdin.readline()
print(store.finish_backup(pending).path, flush=True)
"""


def _age(*paths: Path, seconds: float = CLAIM_GRACE_SECONDS + 60) -> None:
    then = time.time() - seconds
    for path in paths:
        os.utime(path, (then, then), follow_symlinks=False)


@pytest.fixture
def held_backup(demo_db: Path, backup_dir: Path):
    """Start a backup in another process and stop it half way; yields (process, partial)."""
    with subprocess.Popen([sys.executable, "-c", HELD_BACKUP, str(demo_db), str(backup_dir)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                          env=cli_env()) as process:
        try:
            partial = Path(process.stdout.readline().strip())
            assert partial.name.endswith(".db.partial") and partial.is_file()
            yield process, partial
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(60)


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX; Windows frees the handle alike")
def test_the_partial_of_a_killed_backup_goes_at_the_next_backup(cli, demo_db, backup_dir,
                                                                 held_backup):
    process, partial = held_backup
    process.send_signal(signal.SIGKILL)
    process.wait(60)
    journal = Path(f"{partial}-journal")
    journal.write_bytes(b"what SQLite's copy left")
    assert find_leftovers(backup_dir).partials == []  # written just now: within the grace
    _age(partial, journal)
    assert find_leftovers(backup_dir).partials == [partial, journal]

    run = cli("--db", demo_db, "--json", "backup", "--dir", backup_dir)
    assert run.code == 0, run.err
    assert run.data["leftovers_removed"] == [str(partial), str(journal)]
    assert not partial.exists() and not journal.exists()
    assert Path(run.data["path"]).is_file()
    entry = ActivityLog().read()[-1]
    assert entry.action == "cli backup" and entry.result == "succeeded"
    assert f"Removed 2 leftover file(s) of interrupted runs ({partial.name}" in entry.message


def test_the_partial_of_a_backup_still_running_is_never_removed(cli, demo_db, backup_dir,
                                                                 held_backup):
    process, partial = held_backup
    _age(partial, seconds=24 * 3600)  # however old it looks, its process is alive
    if os.name != "nt":
        assert find_leftovers(backup_dir).partials == []
    for argv in (["backup"], ["prune", "--keep", "1"]):
        run = cli("--db", demo_db, "--json", *argv, "--dir", backup_dir)
        assert run.code == 0, run.err
        assert run.data["leftovers_removed"] == []
        assert partial.is_file()

    finished, _ = process.communicate("go\n", timeout=120)
    assert process.returncode == 0
    backup = Path(finished.strip())
    assert backup.is_file() and not partial.exists()
    assert check_backup_file(backup).ok


def test_an_orphan_manifest_is_reported_then_removed_by_prune(cli, demo_db, backup_dir):
    engine = QueueBackup(demo_db, backup_dir)
    kept = engine.create_backup("kept")
    gone = engine.create_backup("gone")
    orphan = manifest_path_for(gone)
    gone.unlink()  # a prune killed between the backup and its manifest
    _age(orphan)

    listed = cli("--db", demo_db, "--json", "list-backups", "--dir", backup_dir)
    assert listed.data["orphan_manifests"] == [str(orphan)]
    assert [row["path"] for row in listed.data["backups"]] == [str(kept)]
    text = cli("--db", demo_db, "list-backups", "--dir", backup_dir).out
    assert f"leftover: {orphan.name} (a manifest whose backup is gone" in text

    checked = cli("--db", demo_db, "--json", "check", "--dir", backup_dir)
    assert checked.data["measurements"]["orphan_manifests"] == [str(orphan)]
    plain = cli("--db", demo_db, "check", "--dir", backup_dir).out
    assert "1 manifest(s) whose backup is gone" in plain
    assert orphan.exists()  # check never writes

    pruned = cli("--db", demo_db, "--json", "prune", "--keep", "5", "--dir", backup_dir)
    assert pruned.code == 0, pruned.err
    assert pruned.data["leftovers_removed"] == [str(orphan)]
    assert not orphan.exists()
    assert kept.exists() and manifest_path_for(kept).exists()


def test_leftovers_of_a_killed_restore_go_from_the_safety_folder(cli, demo_db, backup_dir,
                                                                 monkeypatch):
    monkeypatch.setenv("QUEUE_ADMIN_BACKUP_DIR", str(backup_dir))  # restore has no --dir
    backup = QueueBackup(demo_db, backup_dir).create_backup()
    safety = backup_dir / "pre-restore"
    safety.mkdir()
    partial = safety / "queue_backup_pre_restore_20260101_000000.db.partial"
    partial.write_bytes(b"half a safety backup")
    _age(partial)
    run = cli("--db", demo_db, "--json", "restore", backup, "--yes", "--allow-live-workers")
    assert run.code == 0, run.err
    assert str(partial) in run.data["leftovers_removed"]
    assert not partial.exists()


def test_only_this_tools_regular_files_are_ever_removed(cli, demo_db, backup_dir):
    backup_dir.mkdir()
    others = [backup_dir / "notes.partial", backup_dir / "queue.db.partial",
              backup_dir / "queue_backup_x.db.partial.txt", backup_dir / "report.manifest.json"]
    for path in others:
        path.write_bytes(b"not ours")
    folder_named_like_one = backup_dir / "queue_backup_20200101_000000.db.partial"
    folder_named_like_one.mkdir()
    target = backup_dir / "precious.db"
    target.write_bytes(b"precious")
    link = backup_dir / "queue_backup_20200102_000000.db.partial"
    link.symlink_to(target)
    _age(*others, folder_named_like_one, link)
    run = cli("--db", demo_db, "--json", "backup", "--dir", backup_dir)
    assert run.code == 0, run.err
    assert run.data["leftovers_removed"] == []
    assert all(path.exists() for path in [*others, folder_named_like_one, link, target])


def test_a_leftover_listing_needs_no_write_access(cli, demo_db, backup_dir):
    backup_dir.mkdir()
    partial = backup_dir / "queue_backup_20200101_000000.db.partial"
    partial.write_bytes(b"left over")
    _age(partial)
    listed = cli("--db", demo_db, "--json", "list-backups", "--dir", backup_dir)
    assert listed.data["leftover_partials"] == [str(partial)]
    assert partial.exists()
    assert json.loads(cli("--db", demo_db, "--json", "check", "--dir", backup_dir).out)[
        "measurements"]["leftover_partials"] == [str(partial)]
