"""What a restore costs next to ``sqlite3``'s own ``.restore``, and how long workers wait.

Run from the project root::

    python -m tests.bench.bench_restore [--db /path/queue.db | --tasks 1000000] [--rounds 2]

Without ``--db`` a queue of ``--tasks`` tasks is generated (about 1.5 GB for a million). In
one run on the same files, alternating so drift hits both alike: the ``sqlite3`` shell's
``.restore`` of a backup into a copy of the live database (what an admin would otherwise
type; it takes no safety backup, checks nothing and counts nothing), and the tool's restore
of the same backup into another copy, with its safety backup, as an admin runs it. For the
tool it reports where the time went (staging copy, full verification, safety backup, writing,
check of the result) and how long the live write lock was held, which is how long workers
are held off. With ``--archive``, a third restore of the same backup runs into a copy that
``queue-admin-cli archive`` archives as its own process (started and made restorable before
the clock starts), with the archive as the safety copy instead of a safety backup, as the
CLI does when the settings name that archive.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.archive import archive_status
from queue_admin_gui.core.files.db_files import file_size
from queue_admin_gui.core.restore.gate import ALL_WORKERS

from .bench_report import machine_info
from .bench_writers import generate_queue


def shell_restore(backup: Path, target: Path) -> float:
    """``sqlite3 TARGET ".restore BACKUP"``; returns its wall-clock seconds."""
    os.sync()
    started = time.perf_counter()
    subprocess.run(["sqlite3", str(target), f".restore '{backup}'"], check=True)
    return time.perf_counter() - started


class Stages:
    """Seconds spent in each progress stage of one restore."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stage: str | None = None
        self._since = time.perf_counter()

    def __call__(self, done: int, total: int, stage: str) -> None:
        now = time.perf_counter()
        if self._stage is not None:
            self.seconds[self._stage] += now - self._since
        self._stage, self._since = stage, now

    def close(self) -> None:
        """Book the time since the last report to the last stage."""
        self("", 0, "")


def tool_restore(backup: Path, target: Path, folder: Path) -> tuple[float, float, Stages]:
    """The tool's restore with its safety backup; seconds, lock-held seconds, stages."""
    os.sync()
    stages = Stages()
    started = time.perf_counter()
    result = QueueBackup(target, folder).restore_backup(backup, progress=stages,
                                                       accepted_workers=ALL_WORKERS)
    seconds = time.perf_counter() - started
    stages.close()
    shutil.rmtree(folder / "pre-restore", ignore_errors=True)
    return seconds, result.held_seconds, stages


def archived_restore(backup: Path, target: Path, folder: Path,
                     archive: Path) -> tuple[float, float, Stages, str]:
    """The tool's restore while ``queue-admin-cli archive`` archives the target into
    ``archive``; the archive is the safety copy. Seconds, lock-held seconds, stages, and what
    stood as the safety copy."""
    shutil.rmtree(archive, ignore_errors=True)
    archiver = subprocess.Popen([sys.executable, "-m", "queue_admin_gui.cli", "--db",
                                 str(target), "archive", "--dir", str(archive)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while True:
            status = archive_status(archive, check=False)
            if status.generations and status.generations[-1].restorable_from is not None:
                break
            if archiver.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the archiver did not make its first snapshot")
            time.sleep(0.2)
        os.sync()
        stages = Stages()
        started = time.perf_counter()
        result = QueueBackup(target, folder).restore_backup(
            backup, progress=stages, accepted_workers=ALL_WORKERS, archive_safety=archive)
        seconds = time.perf_counter() - started
        stages.close()
    finally:
        archiver.send_signal(signal.SIGTERM)
        archiver.wait(120)
    shutil.rmtree(folder / "pre-restore", ignore_errors=True)
    point = result.safety_point
    copy = (point.describe() if point is not None and point.confirmed
            else f"safety backup ({result.safety_problem or 'archive not proven'})")
    return seconds, result.held_seconds, stages, copy


def fresh_copy(source: Path, target: Path) -> None:
    """A copy of the live database (checkpointed, so the file alone is the database)."""
    remove_copy(target)
    shutil.copyfile(source, target)


def remove_copy(target: Path) -> None:
    """Delete a measured copy and its side files (a 5M-task copy is 7.5 GB)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Measure, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--archive", action="store_true",
                        help="also restore with the point-in-time archive as the safety copy")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-restore-", dir=args.folder))
    try:
        live = args.db
        if live is None:
            live = folder / "queue.db"
            generate_queue(live, args.tasks)
        backups = folder / "backups"
        backup = QueueBackup(live, backups).create_backup("bench")
        shell, tool, held = [], [], []
        archived, archived_held, copies = [], [], []
        archived_stages: dict[str, list[float]] = defaultdict(list)
        stage_totals: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.rounds):
            target = folder / "shell-target.db"
            fresh_copy(live, target)
            shell.append(shell_restore(backup, target))
            remove_copy(target)
            target = folder / "tool-target.db"
            fresh_copy(live, target)
            seconds, lock, stages = tool_restore(backup, target, backups)
            remove_copy(target)
            tool.append(seconds)
            held.append(lock)
            for stage, spent in stages.seconds.items():
                stage_totals[stage].append(spent)
            if args.archive:
                target = folder / "archived-target.db"
                fresh_copy(live, target)
                seconds, lock, stages, copy = archived_restore(backup, target, backups,
                                                               folder / "archive")
                remove_copy(target)
                shutil.rmtree(folder / "archive", ignore_errors=True)
                archived.append(seconds)
                archived_held.append(lock)
                copies.append(copy)
                for stage, spent in stages.seconds.items():
                    archived_stages[stage].append(spent)
        shell_s, tool_s = statistics.median(shell), statistics.median(tool)
        print("; ".join(f"{key}: {value}" for key, value in machine_info(folder).items()))
        print(f"\nDatabase {file_size(live) / 1e9:.2f} GB, backup {file_size(backup) / 1e9:.2f}"
              f" GB, {args.rounds} rounds (medians)\n")
        print("| what | seconds |\n|---|---:|")
        print(f"| sqlite3 `.restore` | {shell_s:.2f} |")
        print(f"| tool restore with safety backup | {tool_s:.2f} ({tool_s / shell_s:.1f}x) |")
        print(f"| of which the live write lock was held | {statistics.median(held):.2f} |")
        for stage, spent in sorted(stage_totals.items(), key=lambda item: -sum(item[1])):
            if stage:
                print(f"| - {stage} | {statistics.median(spent):.2f} |")
        if archived:
            archived_s = statistics.median(archived)
            print(f"| tool restore, the archive as the safety copy | {archived_s:.2f}"
                  f" ({archived_s / shell_s:.1f}x) |")
            print(f"| of which the live write lock was held |"
                  f" {statistics.median(archived_held):.2f} |")
            for stage, spent in sorted(archived_stages.items(), key=lambda item: -sum(item[1])):
                if stage:
                    print(f"| - {stage} | {statistics.median(spent):.2f} |")
            print("\nSafety copies: " + "; ".join(copies))
            rounds = zip(shell, tool, archived, strict=True)
            print("Rounds (shell / tool / archived): " + "; ".join(
                f"{a:.2f} / {b:.2f} / {c:.2f}" for a, b, c in rounds))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
