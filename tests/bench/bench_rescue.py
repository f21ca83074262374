"""What a diff and a selective rescue cost on a large queue, next to a full restore.

Run from the project root::

    python -m tests.bench.bench_rescue [--tasks 1000000] [--changed 10000]

A queue of ``--tasks`` tasks is generated and backed up (the past state). Then a bad script
changes ``--changed`` tasks: half of them failed (status, attempts, error), half deleted; and
1,000 new tasks arrive. Measured once each, on the same files: verifying the backup (what
``diff --backup`` does first), the diff of the live queue against it, the rescue of every
changed task (its plan, its safety backup, its one write transaction, which is how long
workers are held off), the same rescue with an archiver running, whose archive is then the
safety copy (proven under the write lock, checked in full after it), and, as the yardstick,
the full restore of the same backup into a copy of the same live queue (safety backup
included, as an admin runs it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.archive import Archiver
from queue_admin_gui.core.files.db_files import file_size
from queue_admin_gui.core.rescue import (
    RescueSelection,
    diff_queue,
    open_past_state,
    rescue_tasks,
    undo_rescue,
)
from queue_admin_gui.core.restore.gate import ALL_WORKERS

from .bench_report import machine_info
from .bench_restore import Stages, fresh_copy
from .bench_writers import generate_queue


def damage(live: Path, changed: int) -> None:
    """The bad script: half of ``changed`` failed, half deleted, spread over the queue."""
    connection = sqlite3.connect(live, isolation_level=None)
    try:
        top = connection.execute("SELECT max(id) FROM task_queue").fetchone()[0]
        step = max(1, top // changed)
        ids = list(range(1, top + 1, step))[:changed]
        failed, deleted = ids[0::2], ids[1::2]
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "UPDATE task_queue SET status = 'failed', attempts = attempts + 1,"
            " error_message = 'bad deploy', updated_at_utc = datetime('now') WHERE id = ?",
            [(task_id,) for task_id in failed])
        connection.executemany("DELETE FROM task_logs WHERE task_id = ?",
                               [(task_id,) for task_id in deleted])
        connection.executemany("DELETE FROM task_queue WHERE id = ?",
                               [(task_id,) for task_id in deleted])
        connection.executemany(
            "INSERT INTO task_queue (type, payload) VALUES ('new', ?)",
            [(f'{{"n": {n}}}',) for n in range(1000)])
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    """Measure once and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, default=10_000)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-rescue-", dir=args.folder))
    try:
        live = folder / "queue.db"
        generate_queue(live, args.tasks)
        backups = folder / "backups"
        backup = QueueBackup(live, backups).create_backup("past")
        damage(live, args.changed)
        copy = folder / "restore-target.db"
        fresh_copy(live, copy)
        rows: list[tuple[str, float]] = []

        os.sync()
        started = time.perf_counter()
        with open_past_state(live, backup=backup) as past:
            rows.append(("verifying the backup (full check, as before a restore)",
                         time.perf_counter() - started))
            started = time.perf_counter()
            diff = diff_queue(live, past)
            rows.append((f"diff: {diff.removed:,} removed, {diff.changed:,} changed, "
                         f"{diff.added:,} added", time.perf_counter() - started))
            stages = Stages()
            started = time.perf_counter()
            report = rescue_tasks(live, past, RescueSelection(), backup_dir=backups,
                                  progress=stages)
            total = time.perf_counter() - started
            stages.close()
        rows.append((f"rescue of {report.put_back:,} tasks, safety backup included", total))
        for stage, spent in stages.seconds.items():
            if stage:
                rows.append((f"- {stage}", spent))
        rows.append(("- of which the write transaction (workers wait this long)",
                     report.held_seconds))
        undo = report.undo_file
        ids = frozenset(diff.ids_of("removed") + diff.ids_of("changed"))
        for name, selection in (
                ("rescue without the safety backup (the undo file alone)", RescueSelection()),
                ("rescue of the diff's ids without the safety backup (as the Rescue window "
                 "does)", RescueSelection(ids=ids))):
            seconds, held, undo = _rescue_again(live, backup, backups, undo, selection)
            rows.append((name, seconds))
            rows.append(("- of which the write transaction", held))

        rows += _rescue_with_archive(live, backup, backups, undo, folder / "archive", ids)

        os.sync()
        restore_stages = Stages()
        started = time.perf_counter()
        restored = QueueBackup(copy, backups).restore_backup(
            backup, progress=restore_stages, accepted_workers=ALL_WORKERS)
        rows.append(("full restore of the same backup (yardstick), safety backup included",
                     time.perf_counter() - started))
        rows.append(("- of which the live write lock was held", restored.held_seconds))

        print("; ".join(f"{key}: {value}" for key, value in machine_info(folder).items()))
        print(f"\nQueue {file_size(live) / 1e9:.2f} GB ({args.tasks:,} tasks), backup "
              f"{file_size(backup) / 1e9:.2f} GB, {args.changed:,} tasks damaged\n")
        print("| step | seconds |\n|---|---:|")
        for name, seconds in rows:
            print(f"| {name} | {seconds:.2f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def _rescue_with_archive(live: Path, backup: Path, backups: Path, undo_file: Path | None,
                         archive: Path, ids: frozenset[int]) -> list[tuple[str, float]]:
    """Undo the last rescue, start an archiver and rescue with the archive as the safety copy:
    every change, then (undone again) the diff's ids as the Rescue window does; their rows."""
    assert undo_file is not None
    undo_rescue(live, undo_file, backup_dir=backups, safety_backup=False)
    archiver = Archiver(live, archive)
    archiver.start()
    rows: list[tuple[str, float]] = []
    try:
        while archiver.status().generation is None or archiver.status().snapshot_pending:
            time.sleep(0.05)
        for name, selection in (("every change", RescueSelection()),
                                ("the diff's ids, as the Rescue window does",
                                 RescueSelection(ids=ids))):
            if rows:
                assert undo_file is not None
                undo_rescue(live, undo_file, backup_dir=backups, safety_backup=False)
            os.sync()
            stages = Stages()
            with open_past_state(live, backup=backup) as past:
                started = time.perf_counter()
                done = rescue_tasks(live, past, selection, backup_dir=backups,
                                    archive_dir=archive, progress=stages)
                total = time.perf_counter() - started
            stages.close()
            point = done.safety_point
            assert point is not None and point.confirmed, (point, done.archive_problem)
            undo_file = done.undo_file
            rows.append((f"rescue of {done.put_back:,} tasks ({name}), the archive as the "
                         "safety copy", total))
            rows += [(f"- {stage}", spent) for stage, spent in stages.seconds.items() if stage]
            rows.append(("- of which the write transaction (the archive's proof and check "
                         "beside it)", done.held_seconds))
    finally:
        archiver.stop()
    return rows


def _rescue_again(live: Path, backup: Path, backups: Path, undo_file: Path | None,
                  selection: RescueSelection) -> tuple[float, float, Path | None]:
    """Undo the last rescue (the queue is damaged again), then rescue ``selection`` without
    a safety backup; its seconds, its write transaction's seconds and its undo file."""
    assert undo_file is not None
    undo_rescue(live, undo_file, backup_dir=backups, safety_backup=False)
    with open_past_state(live, backup=backup) as past:
        started = time.perf_counter()
        done = rescue_tasks(live, past, selection, backup_dir=backups, safety_backup=False)
        return time.perf_counter() - started, done.held_seconds, done.undo_file


if __name__ == "__main__":
    raise SystemExit(main())
