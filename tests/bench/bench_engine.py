"""Engine benchmark: backup, restore, integrity, requeue and stats on a ~1.4 GB queue file.

Run from the project root::

    python -m tests.bench.bench_engine --out docs/benchmarks-engine.md [--tasks 1000000]

Everything is measured side by side in one run on the same file, against the targets of the
engine issue: a plain file copy as the yardstick, the backup idle and while four writer
processes enqueue and claim at full speed (their latency idle and during the backup), restore,
integrity_check, requeue of stale leases, and ``stats``. The report says met or not met for
each target, with the machine and its load at the time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from queue_admin_gui.core import QueueBackup, QueueMaintenance
from queue_admin_gui.core.database import connect
from queue_admin_gui.core.files.db_files import file_size, wal_path
from queue_admin_gui.core.leases.manager import LeaseManager

from .bench_report import (
    Figure,
    latency_summary,
    load_average,
    machine_info,
    markdown_report,
    text_table,
)
from .bench_writers import WriterPool, WriterSamples, generate_queue

T = TypeVar("T")


#: Load average (1 minute) above which the run waits before it starts, and how it waits.
QUIET_LOAD = 1.5
QUIET_WAIT_SECONDS = 60.0
QUIET_TRIES = 5


def timed(operation: Callable[[], T]) -> tuple[T, float]:
    """Run ``operation`` and return its result and its wall-clock seconds.

    Dirty pages left by the previous step are written out first (``os.sync()``, outside the
    timing), so no step pays for the write-back of another.
    """
    os.sync()
    began = time.perf_counter()
    result = operation()
    return result, time.perf_counter() - began


def checkpoint_truncate(db_path: Path) -> None:
    """Fold the WAL into the main file and empty it, so a plain copy of the file is complete."""
    connection = connect(db_path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        connection.close()


def plain_copy(db_path: Path, target: Path, fsync: bool = False) -> None:
    """Copy the database and its -wal the way an administrator would with Explorer."""
    shutil.copyfile(db_path, target)
    if wal_path(db_path).exists():
        shutil.copyfile(wal_path(db_path), wal_path(target))
    if fsync:
        with open(target, "rb+") as handle:
            os.fsync(handle.fileno())


def remove_database(path: Path) -> None:
    """Delete a database file with its -wal, -shm and manifest, if present."""
    for suffix in ("", "-wal", "-shm", "-journal", ".manifest.json"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    for manifest in path.parent.glob(f"{path.name}*.json"):
        manifest.unlink(missing_ok=True)


def backup_contents(path: Path) -> dict[str, Any]:
    """Rows, highest id and counts by status inside a backup file (opened read-only)."""
    connection = sqlite3.connect(f"file:{path.as_posix()}?mode=ro", uri=True)
    try:
        rows, highest = connection.execute("SELECT count(*), max(id) FROM task_queue").fetchone()
        counts = dict(connection.execute(
            "SELECT status, count(*) FROM task_queue GROUP BY status").fetchall())
    finally:
        connection.close()
    return {"rows": rows, "max_id": highest, "counts": counts}


def highest_id(connection: sqlite3.Connection) -> int:
    """The newest task id: ids only grow (AUTOINCREMENT, no deletes), so it counts the rows."""
    return int(connection.execute("SELECT max(id) FROM task_queue").fetchone()[0])


class StageClock:
    """A progress callback that notes when each stage of an engine operation began."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.stages: dict[str, float] = {}

    def start(self) -> StageClock:
        """Restart the clock as the timed operation begins (after ``timed`` has synced)."""
        self.began = time.perf_counter()
        return self

    def __call__(self, done: int, total: int, stage: str) -> None:
        """Record the first report of each stage."""
        self.stages.setdefault(stage, time.perf_counter() - self.began)

    def breakdown(self, total_seconds: float) -> list[tuple[str, float]]:
        """Seconds spent in each stage, in order (the last one runs until the call returned)."""
        marks = sorted(self.stages.items(), key=lambda item: item[1])
        ends = [mark[1] for mark in marks[1:]] + [total_seconds]
        return [("before the first stage", marks[0][1]) if marks else ("total", total_seconds)] + [
            (stage, end - start) for (stage, start), end in zip(marks, ends, strict=True)]


@dataclass
class Run:
    """Options of one benchmark run."""

    tasks: int
    folder: Path
    writers: int
    leases: int
    baseline_seconds: float
    stats_runs: int


class EngineBenchmark:
    """Runs every measurement on one generated queue file and collects figures and details."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.db_path = run.folder / "queue.db"
        self.backup_dir = run.folder / "backups"
        self.figures: list[Figure] = []
        self.details: dict[str, Any] = {"load": [], "stages": {}}

    def ratios(self, seconds: float) -> str:
        """How ``seconds`` compares with the plain copy and with the copy made durable."""
        return (f"{seconds / self.details['copy_seconds']:.2f}x the copy, "
                f"{seconds / self.details['copy_fsync_seconds']:.2f}x the copy + fsync")

    def note_load(self, step: str) -> None:
        """Record the load average as a step begins (the machine may be shared)."""
        self.details["load"].append((step, load_average()))
        print(f"[{time.strftime('%H:%M:%S')}] {step} (load {load_average()})", flush=True)

    def execute(self) -> None:
        """Every step in order; each adds its figures."""
        self.note_load("generate")
        _, seconds = timed(lambda: generate_queue(self.db_path, self.run.tasks))
        self.details["generate_seconds"] = seconds
        self.details["db_bytes"] = file_size(self.db_path)
        copy_seconds = self.measure_plain_copy()
        idle_seconds = self.measure_idle_backup(copy_seconds)
        backup_path = self.measure_backup_under_writers(copy_seconds, idle_seconds)
        self.measure_restore(backup_path, copy_seconds)
        self.measure_integrity()
        self.measure_requeue()
        self.measure_stats()
        self.note_load("done")

    def measure_plain_copy(self) -> float:
        """Median of three plain copies (checkpointed first, -wal included), plus one fsynced."""
        self.note_load("plain copy")
        checkpoint_truncate(self.db_path)
        target = self.run.folder / "plain-copy.db"
        runs = []
        for _ in range(3):
            runs.append(timed(lambda: plain_copy(self.db_path, target))[1])
            remove_database(target)
        synced = timed(lambda: plain_copy(self.db_path, target, fsync=True))[1]
        remove_database(target)
        median = statistics.median(runs)
        self.details["copy_runs"] = runs
        self.details["copy_fsync_seconds"] = synced
        self.details["copy_seconds"] = median
        self.figures.append(Figure("Plain file copy (shutil.copyfile, median of 3)", median,
                                   "s", "yardstick", None))
        return median

    def measure_idle_backup(self, copy_seconds: float) -> float:
        """One backup with nobody writing."""
        self.note_load("backup idle")
        clock = StageClock()
        result, seconds = timed(
            lambda: QueueBackup(self.db_path, self.backup_dir).backup(progress=clock.start()))
        self.details["idle_backup"] = {"engine_seconds": result.seconds,
                                       "restarts": result.restarts,
                                       "size_bytes": result.size_bytes}
        self.details["stages"]["Backup, idle"] = clock.breakdown(seconds)
        self.figures.append(Figure(
            "Backup, idle", seconds, "s", "<= 1.5x plain copy", seconds <= 1.5 * copy_seconds,
            self.ratios(seconds) + f"; {result.restarts} restarts"))
        remove_database(Path(result.path))
        return seconds

    def measure_backup_under_writers(self, copy_seconds: float, idle_seconds: float) -> Path:
        """Writers run a baseline window, then a backup runs while they keep writing."""
        self.note_load(f"backup under {self.run.writers} writers")
        baseline = max(self.run.baseline_seconds, idle_seconds)
        reader = connect(self.db_path)
        first_progress: dict[str, int] = {}
        clock = StageClock()

        def progress(done: int, total: int, stage: str) -> None:
            if not first_progress:
                first_progress["max_id"] = highest_id(reader)
            clock(done, total, stage)

        pool = WriterPool(self.db_path, self.run.writers)
        os.sync()
        try:
            pool.start()
            released = pool.go()
            time.sleep(1.0 + baseline)  # a measurement window, not a wait for a condition
            rows_at_call = highest_id(reader)
            backup_start = time.monotonic()
            clock.began = time.perf_counter()
            result = QueueBackup(self.db_path, self.backup_dir).backup(progress=progress)
            backup_end = time.monotonic()
            wal_bytes_after = file_size(wal_path(self.db_path))
            rows_after = highest_id(reader)
            samples = pool.stop()
        finally:
            pool.kill()
            reader.close()
        seconds = backup_end - backup_start
        self.details["stages"]["Backup under writers"] = clock.breakdown(seconds)
        contents = backup_contents(Path(result.path))
        self.record_writer_windows(samples, released + 1.0, backup_start, backup_end)
        manifest_counts = {k: v for k, v in (result.task_counts or {}).items() if v}
        consistent = (contents["rows"] == contents["max_id"]
                      and rows_at_call <= contents["rows"] <= rows_after
                      and manifest_counts == contents["counts"])
        self.details["under_writers"] = {
            "engine_seconds": result.seconds, "restarts": result.restarts,
            "rows_at_call": rows_at_call, "rows_in_backup": contents["rows"],
            "max_id_in_backup": contents["max_id"],
            "rows_at_first_progress": first_progress.get("max_id"),
            "rows_when_done": rows_after, "manifest_counts": manifest_counts,
            "backup_counts": contents["counts"], "consistent": consistent,
            "wal_bytes_after": wal_bytes_after,
            "writer_errors": samples.errors, "writer_last_error": samples.last_error,
            "enqueued": samples.enqueued, "claimed": samples.claimed,
        }
        self.figures.append(Figure(
            f"Backup, {self.run.writers} writers at full speed", seconds, "s",
            "<= 2.5x plain copy", seconds <= 2.5 * copy_seconds, self.ratios(seconds)))
        self.figures.append(Figure(
            "Backup restarts under writers", float(result.restarts), "", "0",
            result.restarts == 0,
            "snapshot = state at its start" if consistent else "ROW CHECK FAILED"))
        idle, busy = self.details["writers_idle"], self.details["writers_backup"]
        ratio = busy["p99_ms"] / idle["p99_ms"] if idle["p99_ms"] else float("inf")
        self.figures.append(Figure(
            "Writer p99 during backup", busy["p99_ms"], "ms", "<= 2x idle p99",
            ratio <= 2.0, f"idle p99 {idle['p99_ms']:.2f} ms; {ratio:.2f}x"))
        return Path(result.path)

    def record_writer_windows(self, samples: WriterSamples, idle_start: float,
                              backup_start: float, backup_end: float) -> None:
        """Latency of the writers before the backup (baseline) and while it ran."""
        self.details["writers_idle"] = latency_summary(
            samples.between(idle_start, backup_start), backup_start - idle_start)
        self.details["writers_backup"] = latency_summary(
            samples.between(backup_start, backup_end), backup_end - backup_start)

    def measure_restore(self, backup_path: Path, copy_seconds: float) -> None:
        """Restore the backup into a copy of the live file, safety backup included."""
        self.note_load("restore")
        checkpoint_truncate(self.db_path)
        target = self.run.folder / "restore-target.db"
        plain_copy(self.db_path, target)
        backup = QueueBackup(target, self.backup_dir)
        clock = StageClock()
        result, seconds = timed(
            lambda: backup.restore_backup(backup_path, target=target,
                                           progress=clock.start()))
        self.details["stages"]["Restore"] = clock.breakdown(seconds)
        restored = backup_contents(target)
        expected = backup_contents(backup_path)
        self.details["restore"] = {"engine_seconds": getattr(result, "seconds", None),
                                   "safety_backup": str(getattr(result, "safety_backup", "")),
                                   "rows_match": restored == expected}
        self.figures.append(Figure(
            "Restore (with its safety backup)", seconds, "s", "<= 3x plain copy",
            seconds <= 3 * copy_seconds,
            self.ratios(seconds) + "; rows "
            + ("match the backup" if restored == expected else "DIFFER from the backup")))
        remove_database(target)
        shutil.rmtree(self.backup_dir, ignore_errors=True)

    def measure_integrity(self) -> None:
        """A full integrity_check of the live file."""
        self.note_load("integrity_check")
        problems, seconds = timed(lambda: QueueMaintenance(self.db_path).integrity_check())
        clean = list(problems) == ["ok"]
        self.figures.append(Figure("integrity_check (full)", seconds, "s", "report only", None,
                                   "ok" if clean else f"PROBLEMS: {list(problems)[:3]}"))

    def measure_requeue(self) -> None:
        """Requeue of N leases that expired an hour ago."""
        self.note_load("requeue stale leases")
        connection = connect(self.db_path)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "UPDATE task_queue SET status = 'completed', finished_at_utc = datetime('now'),"
                " lease_until_utc = NULL, locked_by = NULL WHERE status = 'leased'")
            connection.execute(
                "UPDATE task_queue SET status = 'leased', locked_by = 'bench-dead-worker',"
                " reserved_at_utc = datetime('now', '-2 hours'),"
                " lease_until_utc = datetime('now', '-1 hour') WHERE id IN (SELECT id FROM"
                " task_queue WHERE status IN ('queued', 'completed') ORDER BY id LIMIT ?)",
                (self.run.leases,))
            connection.execute("COMMIT")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            connection.close()
        manager = LeaseManager(self.db_path)
        result, seconds = timed(lambda: manager.requeue_stale_leases(timeout_seconds=300))
        self.figures.append(Figure(
            f"Requeue {self.run.leases:,} stale leases", seconds, "s", "<= 2 s", seconds <= 2.0,
            f"{result.requeued:,} requeued, {result.dead_lettered:,} dead-lettered"))

    def measure_stats(self) -> None:
        """``stats`` without task counts (median of N) and with them (median of 5)."""
        self.note_load("stats")
        maintenance = QueueMaintenance(self.db_path)
        plain = [timed(lambda: maintenance.get_database_stats(include_task_counts=False))[1]
                 for _ in range(self.run.stats_runs)]
        counted = [timed(lambda: maintenance.get_database_stats(include_task_counts=True))[1]
                   for _ in range(5)]
        median = statistics.median(plain) * 1000
        self.figures.append(Figure(
            f"stats without task counts (median of {self.run.stats_runs})", median, "ms",
            "<= 20 ms", median <= 20.0, f"max {max(plain) * 1000:.1f} ms"))
        self.figures.append(Figure(
            "stats with task counts (median of 5)", statistics.median(counted) * 1000, "ms",
            "report only", None, f"max {max(counted) * 1000:.1f} ms"))


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Markdown report to write")
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None,
                        help="folder for the big files (default: a temp folder beside /work)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--leases", type=int, default=100_000,
                        help="stale leases to requeue (at most a tenth of --tasks)")
    parser.add_argument("--baseline-seconds", type=float, default=10.0,
                        help="writer baseline before the backup (at least the idle backup)")
    parser.add_argument("--stats-runs", type=int, default=20)
    return parser.parse_args(argv)


def wait_for_quiet_machine() -> list[str]:
    """Wait (a minute at a time, a few times) while other programs load the machine.

    Returns what was seen, for the report: the load at each look and whether it waited.
    """
    seen = []
    for attempt in range(QUIET_TRIES):
        load = os.getloadavg()[0]
        seen.append(f"{time.strftime('%H:%M:%S')} load {load:.2f}")
        if load <= QUIET_LOAD or attempt == QUIET_TRIES - 1:
            break
        print(f"load {load:.2f} > {QUIET_LOAD}: waiting {QUIET_WAIT_SECONDS:.0f} s", flush=True)
        time.sleep(QUIET_WAIT_SECONDS)  # waiting for other people's programs, not a condition
    return seen


def default_parent() -> Path:
    """A folder on the same disk as the project, so that copies measure that disk."""
    project = Path(__file__).resolve().parents[2]
    return project.parent if project.parent.exists() else Path(tempfile.gettempdir())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write the Markdown report."""
    args = parse_arguments(argv)
    parent = args.dir or default_parent()
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="queue-bench-", dir=parent))
    run = Run(args.tasks, folder, args.writers, min(args.leases, args.tasks // 10),
              args.baseline_seconds, args.stats_runs)
    started = datetime.now(timezone.utc)
    machine = machine_info(folder)
    benchmark = EngineBenchmark(run)
    benchmark.details["quiet_checks"] = wait_for_quiet_machine()
    try:
        benchmark.execute()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    command = "python -m tests.bench.bench_engine " + " ".join(argv or sys.argv[1:])
    print(text_table(benchmark.figures))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown_report(run, machine, benchmark.figures, benchmark.details,
                                        started, command), encoding="utf-8")
    print(f"Report written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
