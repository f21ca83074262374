"""A script written against the original maintenance API (docs/ARCHITECTURE.md) keeps working.

Everything here uses only the names and signatures that design promised, imported from
``queue_admin_gui.core`` the way deployments' scripts import them.
"""

from __future__ import annotations

import ast
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from queue_admin_gui.core import (
    BackupInfo,
    QueueBackup,
    QueueBackupError,
    QueueDatabase,
    QueueMaintenance,
    QueueMaintenanceError,
)


@pytest.fixture
def db(tmp_path: Path):
    database = QueueDatabase(str(tmp_path / "queue.db"))
    database.initialize_schema()
    with database.transaction() as connection:
        connection.executemany(
            "INSERT INTO task_queue (type, payload) VALUES (?, ?)",
            [("render", '{"format": "mp4"}') for _ in range(50)],
        )
    yield database
    database.close()


def test_queue_database_surface(db: QueueDatabase) -> None:
    row = db.execute("SELECT count(*) AS n, max(format) AS fmt FROM task_queue").fetchone()
    assert row["n"] == 50
    assert row["fmt"] == "mp4"
    connection = db.get_connection()
    assert isinstance(connection, sqlite3.Connection)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(RuntimeError), db.transaction() as inside:
        inside.execute("DELETE FROM task_queue")
        raise RuntimeError("abort")
    assert db.execute("SELECT count(*) FROM task_queue").fetchone()[0] == 50


def test_backup_script(db: QueueDatabase, tmp_path: Path) -> None:
    backup = QueueBackup(db, backup_dir=str(tmp_path / "backups"))
    assert backup.db is db
    assert isinstance(backup.backup_dir, Path) and backup.backup_dir.is_dir()

    first = backup.create_backup()
    second = backup.create_backup()
    named = backup.create_backup(name="nightly")
    assert len({first, second, named}) == 3
    assert first.name.startswith("queue_backup_") and first.suffix == ".db"
    assert named.name.startswith("queue_backup_nightly_")
    assert backup.verify_backup(named) is True

    infos = backup.list_backups()
    assert all(isinstance(info, BackupInfo) for info in infos)
    assert [info.created_at for info in infos] == sorted(
        (info.created_at for info in infos), reverse=True)
    assert isinstance(infos[0].created_at, datetime)
    assert infos[0].size_mb == pytest.approx(infos[0].size_bytes / (1024 * 1024))
    assert backup.get_latest_backup().path == infos[0].path
    assert BackupInfo.from_path(named).size_bytes == named.stat().st_size

    assert backup.cleanup_old_backups(keep_count=1) == 2
    assert len(backup.list_backups()) == 1

    with pytest.raises(QueueBackupError, match="not found"):
        backup.verify_backup(tmp_path / "missing.db")


@pytest.mark.slow
def test_backup_accepts_a_plain_path_and_restores(db: QueueDatabase, tmp_path: Path) -> None:
    backup = QueueBackup(db.path, backup_dir=tmp_path / "backups")
    saved = backup.create_backup()
    with db.transaction() as connection:
        connection.execute("DELETE FROM task_queue")
    db.close()
    backup.restore_backup(saved)
    assert db.execute("SELECT count(*) FROM task_queue").fetchone()[0] == 50

    elsewhere = tmp_path / "copy" / "restored.db"
    backup.restore_backup(saved, target=elsewhere)
    with QueueDatabase(elsewhere) as restored:
        assert restored.execute("SELECT count(*) FROM task_queue").fetchone()[0] == 50


def test_maintenance_script(db: QueueDatabase) -> None:
    maintenance = QueueMaintenance(db)
    assert maintenance.db is db
    for mode in (QueueMaintenance.CHECKPOINT_PASSIVE, QueueMaintenance.CHECKPOINT_FULL,
                 QueueMaintenance.CHECKPOINT_RESTART, QueueMaintenance.CHECKPOINT_TRUNCATE):
        result = maintenance.checkpoint(mode)
        assert {"busy", "log", "checkpointed"} <= set(result)
    with pytest.raises(QueueMaintenanceError, match="Invalid checkpoint mode"):
        maintenance.checkpoint("SOMETIMES")

    maintenance.vacuum()
    maintenance.analyze()
    maintenance.analyze("task_queue")
    assert maintenance.integrity_check() == ["ok"]

    stats = maintenance.get_database_stats()
    for key in ("page_count", "page_size", "total_size_mb", "freelist_count", "wal_mode",
                "wal_size_mb"):
        assert key in stats
    assert stats["wal_mode"] is True

    optimized = maintenance.optimize()
    assert {"analyzed", "vacuumed", "stats_before", "stats_after"} <= set(optimized)
    assert optimized["vacuumed"] is False
    assert maintenance.optimize(full=True)["vacuumed"] is True


def test_stale_lease_cleanup_script(db: QueueDatabase) -> None:
    with db.transaction() as connection:
        connection.execute(
            "UPDATE task_queue SET status = 'leased', locked_by = 'w1', "
            "lease_until_utc = datetime('now', '-600 seconds') WHERE id <= 5")
        connection.execute(
            "UPDATE task_queue SET status = 'processing', locked_by = 'w2', "
            "lease_until_utc = datetime('now', '-60 seconds') WHERE id BETWEEN 6 AND 7")
    assert QueueMaintenance(db).cleanup_stale_leases(timeout_seconds=300) == 5
    statuses = dict(db.execute(
        "SELECT status, count(*) FROM task_queue GROUP BY status").fetchall())
    assert statuses["processing"] == 2
    assert statuses["queued"] == 48


#: The first API's names, each a thin call of the engine defined in core/compat.py only.
FIRST_API_NAMES = {
    "QueueBackup": {"create_backup", "verify_backup", "restore_backup", "get_latest_backup",
                    "cleanup_old_backups", "prune_backups"},
    "QueueMaintenance": {"checkpoint", "vacuum", "analyze", "pragma_optimize", "optimize",
                         "integrity_check", "get_database_stats", "cleanup_stale_leases"},
}
#: Engine methods that share a first-API name but do something else (the archive's
#: checkpoint door), by module.
SAME_NAME_ELSEWHERE = {"archive/controller.py": {"checkpoint"}}


def test_the_first_api_names_are_defined_in_the_compat_module_and_nowhere_else() -> None:
    core = Path(__file__).resolve().parents[2] / "queue_admin_gui" / "core"
    compat = ast.parse((core / "compat.py").read_text(encoding="utf-8"))
    defined = {node.name: {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
               for node in compat.body if isinstance(node, ast.ClassDef)}
    for class_name, names in FIRST_API_NAMES.items():
        assert names <= defined[class_name], names - defined[class_name]
    every_name = set().union(*FIRST_API_NAMES.values())
    elsewhere = {}
    for path in core.rglob("*.py"):
        relative = path.relative_to(core).as_posix()
        if relative == "compat.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = {node.name for node in ast.walk(tree)
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                 and node.name in every_name} - SAME_NAME_ELSEWHERE.get(relative, set())
        if found:
            elsewhere[relative] = sorted(found)
    assert not elsewhere, f"first-API names defined outside core/compat.py: {elsewhere}"
