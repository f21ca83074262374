"""How long rebuilding the newest instant of a long archive takes, next to a plain restore.

Run from the project root::

    python -m tests.bench.bench_rebuild [--tasks 200000] [--transactions 100000]
        [--rate 300] [--rounds 3] [--dir PATH]

A queue of ``--tasks`` tasks is generated (as ``bench_engine`` does) and archived by the real
archiver while a writer process commits ``--transactions`` transactions, ``--rate`` a second,
each one a worker's step on a random task (claim, complete, or a new task enqueued), so the
pages touched are spread over the whole table and its indexes: a long archive's replay in a
few minutes. Then, in one run, alternating so drift hits all alike:

- the rebuild of the newest instant from the snapshot alone (every transaction replayed);
- the same rebuild from the replay image after ``archive-compact`` (its first run is timed
  once: that is the replay the image saves every later rebuild);
- ``sqlite3``'s ``.restore`` of a backup of the same state into a copy of the queue, and
  this tool's own restore of it (safety backup and checks included): the plain restores.

Each rebuild is checked to equal the other byte for byte. Prints medians with their ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.archive import Archiver, archive_status, rebuild_to_time
from queue_admin_gui.core.archive.images import IMAGE_RECORD, compact_archive
from queue_admin_gui.core.database import file_size

from .bench_report import machine_info
from .bench_writers import generate_queue


def write_transactions(db: str, count: int, tasks: int, seed: int, rate: float) -> None:
    """Commit ``count`` small transactions as a worker would, on random tasks, ``rate`` a second."""
    rng = random.Random(seed)
    started = time.monotonic()
    connection = sqlite3.connect(db, isolation_level=None, timeout=30)
    for pragma in ("synchronous=NORMAL", "busy_timeout=30000", "wal_autocheckpoint=1000"):
        connection.execute(f"PRAGMA {pragma}")
    for number in range(count):
        ahead = started + number / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        step = number % 3
        if step == 0:
            connection.execute(
                "INSERT INTO task_queue (type, priority, payload, compatibility, status) "
                "VALUES ('bench', 100, ?, '{}', 'queued')", (f'{{"n": {number}}}',))
        else:
            task = rng.randrange(1, tasks + 1)
            status = "processing" if step == 1 else "completed"
            connection.execute(
                "UPDATE task_queue SET status = ?, locked_by = 'bench-worker', "
                "attempts = attempts + 1 WHERE id = ?", (status, task))
    connection.close()


def make_archive(folder: Path, tasks: int, transactions: int,
                 rate: float) -> tuple[Path, Path]:
    """The queue and its archive holding ``transactions`` transactions after the snapshot."""
    db, archive = folder / "queue.db", folder / "archive"
    started = time.monotonic()
    generate_queue(db, tasks)
    print(f"generated {file_size(db) / 1e6:.0f} MB in {time.monotonic() - started:.0f} s",
          flush=True)
    archiver = Archiver(db, archive)
    archiver.start()
    try:
        while archiver.status().generation is None or archiver.status().snapshot_pending:
            time.sleep(0.2)
        started = time.monotonic()
        writer = multiprocessing.get_context("spawn").Process(
            target=write_transactions, args=(str(db), transactions, tasks, 3, rate))
        writer.start()
        writer.join()
        if writer.exitcode != 0:
            raise SystemExit("the writer failed")
        deadline = time.monotonic() + 600
        while archiver.status().transactions < transactions:
            if len(archive_status(archive, check=False).generations) > 1:
                raise SystemExit("the archiver recorded a gap (it fell behind the writer); "
                                 "lower --rate")
            if time.monotonic() > deadline:
                raise SystemExit("the archiver did not catch up within 10 minutes")
            time.sleep(0.5)
        print(f"archived {archiver.status().transactions} transactions in "
              f"{time.monotonic() - started:.0f} s", flush=True)
    finally:
        archiver.stop()
    return db, archive


def timed(operation: Callable[[], object]) -> float:
    """Wall-clock seconds of ``operation``, after writing out what earlier steps left dirty."""
    os.sync()
    started = time.perf_counter()
    operation()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Make the archive, run the measurements and print them as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=300.0,
                        help="commits a second (the archiver must keep up)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-rebuild-", dir=args.dir))
    try:
        db, archive = make_archive(work, args.tasks, args.transactions, args.rate)
        plain = work / "plain-archive"
        shutil.copytree(archive, plain)
        latest = archive_status(archive).latest
        assert latest is not None
        started = time.monotonic()
        [compacted] = compact_archive(archive)
        first_compaction = time.monotonic() - started
        print(f"first compaction: {compacted.outcome}, {compacted.transactions} transactions "
              f"in {first_compaction:.1f} s", flush=True)
        assert not list(plain.glob(f"*/{IMAGE_RECORD}"))
        backup = work / "state.db"
        rebuild_to_time(archive, latest, backup)
        target = work / "target.db"
        outputs = iter(range(10_000))

        def rebuild(folder: Path) -> Path:
            output = work / f"rebuilt-{next(outputs)}.db"
            result = rebuild_to_time(folder, latest, output)
            assert (result.from_image is not None) == (folder == archive)
            return output

        def fresh_target() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(db, target)

        def shell_restore() -> None:
            subprocess.run(["sqlite3", str(target), f".restore '{backup}'"], check=True)

        def tool_restore() -> None:
            QueueBackup(target, work / "safety").restore_backup(
                backup, accepted_workers=("bench-worker",))

        seconds: dict[str, list[float]] = {name: [] for name in (
            "rebuild, snapshot + every transaction (before)", "rebuild from the replay image",
            "sqlite3 .restore of the same state", "this tool's restore of the same state")}
        names = list(seconds)
        for _ in range(args.rounds):
            made: list[Path] = []
            seconds[names[0]].append(timed(lambda: made.append(rebuild(plain))))  # noqa: B023
            seconds[names[1]].append(timed(lambda: made.append(rebuild(archive))))  # noqa: B023
            assert made[0].read_bytes() == made[1].read_bytes()
            for path in made:
                path.unlink()
                path.with_name(path.name + ".manifest.json").unlink(missing_ok=True)
            fresh_target()
            seconds[names[2]].append(timed(shell_restore))
            fresh_target()
            seconds[names[3]].append(timed(tool_restore))
            shutil.rmtree(work / "safety", ignore_errors=True)
        machine = ", ".join(f"{key}: {value}" for key, value in machine_info(work).items())
        shell = statistics.median(seconds["sqlite3 .restore of the same state"])
        tool = statistics.median(seconds["this tool's restore of the same state"])
        print(f"{machine}; queue {file_size(db) / 1e6:.0f} MB; {args.transactions} transactions "
              f"archived; {args.rounds} rounds; first compaction {first_compaction:.1f} s; "
              f"load average at end {os.getloadavg()[0]:.2f}")
        print("| step | median s | vs sqlite3 .restore | vs this tool's restore |\n"
              "|---|---:|---:|---:|")
        for name, values in seconds.items():
            median = statistics.median(values)
            print(f"| {name} | {median:.2f} | {median / shell:.2f}x | {median / tool:.2f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
