"""Rebuilding an instant at the end of a long archive, beside Litestream and a plain restore.

Run from the project root::

    python -m tests.bench.bench_rebuild [--tasks 1000000] [--transactions 370000]
        [--rate 400] [--rounds 3] [--dir PATH] [--keep] [--reuse PATH]

One run makes the workload, then measures it:

1. A queue of ``--tasks`` tasks is generated (as ``bench_engine`` does) and copied byte for
   byte: this tool's archiver archives the first copy, Litestream (``litestream replicate``,
   a ``file://`` replica, its default levels) the second.
2. Two writer processes, one per copy, commit the same ``--transactions`` transactions (one
   seed), ``--rate`` a second each, each a worker's step on a random task (claim, complete,
   or a new task enqueued), so the pages touched are spread over the whole table and its
   indexes. A week of a queue at about 0.6 commits a second is about 370,000 transactions;
   they are made here at a rate the archiver keeps up with (a gap would end the run), so the
   archive holds a week's transaction count, not a week's clock time.
3. Half-way the writers stop together: once the archiver holds every commit and Litestream
   has had time to sync (3 s, three of its 1 s intervals), the instant is taken, each copy's
   state is saved with SQLite's backup API (the truth it must rebuild), and
   ``archive-compact`` runs (as a scheduled job would); then the writers go on. At the end
   the same, and ``archive-compact`` carries the replay image on to the newest record;
   each run also writes the level files of what it added (a level per 20,000 transactions
   and one at the run's end), which a rebuild of the middle instant writes over the
   snapshot before replaying the rest.
4. Rounds, interleaved so drift hits all alike: this tool's rebuild of the newest instant and
   of the middle one, ``litestream restore -timestamp`` of the same two instants, and
   ``sqlite3 queue.db ".restore state.db"`` of the same two states into a copy of the queue.

Exactness: every rebuilt or restored file is compared page by page with the saved state of
its own copy (page 1's header fields that differ between a live file and a backup aside; if
pages differ, the tables' rows are compared too). Prints medians with their ratios.

``--keep`` leaves the workload in ``--dir``; ``--reuse PATH`` measures a kept one again
(after a change to the rebuild, say) without making it anew.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from queue_admin_gui.core.archive import Archiver, archive_status, rebuild_to_time
from queue_admin_gui.core.archive.images import compact_archive
from queue_admin_gui.core.archive.validation import compare_pages
from queue_admin_gui.core.backups.manifest import manifest_path_for
from queue_admin_gui.core.database import file_size

from .bench_report import load_average, machine_info
from .bench_writers import generate_queue

#: The share of each second in which the writers commit (the rest they are still).
BURST_SHARE = 0.5
#: Seconds the writers stay still around an instant: Litestream syncs every second.
QUIET_SECONDS = 3.0
NAMES = ("tool-end", "tool-mid", "litestream-end", "litestream-mid", "restore-end",
         "restore-mid")


def write_transactions(db: str, count: int, tasks: int, seed: int, rate: float, pause_at: int,
                       paused: Any, resume: Any) -> None:
    """Commit ``count`` small transactions as a worker would, on random tasks, ``rate`` a second.

    The commits come in bursts: each second holds ``rate`` commits in its first
    :data:`BURST_SHARE`, then the queue is still (as a queue's workers are between batches),
    which is when the archiver proves that a new WAL cycle follows what it archived. After
    ``pause_at`` of them, sets ``paused`` and waits for ``resume``.
    """
    rate = rate / BURST_SHARE
    per_second = max(1, round(rate * BURST_SHARE))
    rng = random.Random(seed)
    connection = sqlite3.connect(db, isolation_level=None, timeout=30)
    for pragma in ("synchronous=NORMAL", "busy_timeout=30000", "wal_autocheckpoint=1000"):
        connection.execute(f"PRAGMA {pragma}")
    started, base = time.monotonic(), 0
    for number in range(count):
        if number == pause_at:
            paused.set()
            resume.wait()
            started, base = time.monotonic(), number
        done = number - base
        ahead = started + done // per_second + (done % per_second) / rate - time.monotonic()
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


def save_state(db: Path, target: Path) -> None:
    """The file's committed state, copied with SQLite's backup API."""
    with sqlite3.connect(db) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    sqlite3.connect(target).close()


class Litestream:
    """``litestream replicate`` of one database to a file replica, as a child process."""

    def __init__(self, db: Path, folder: Path) -> None:
        self.db, self.replica = db, folder / "replica"
        self.config = folder / "litestream.yml"
        self.config.write_text(json.dumps({"dbs": [{"path": str(db), "replicas": [
            {"type": "file", "path": str(self.replica)}]}]}))  # JSON is YAML
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "litestream.log"

    def start(self) -> None:
        """Start replicating; returns once the replica holds its first files."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["litestream", "replicate", "-config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while not any(path.is_file() for path in self.replica.rglob("*")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"litestream did not start; see {self.log}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop it as an admin would (SIGINT: it syncs and closes)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restore(self, at: float, output: Path) -> None:
        """``litestream restore -timestamp`` of ``at`` into ``output``."""
        stamp = datetime.fromtimestamp(at, tz=timezone.utc).isoformat().replace("+00:00", "Z")
        subprocess.run(["litestream", "restore", "-config", str(self.config), "-o",
                        str(output), "-timestamp", stamp, str(self.db)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(condition: Callable[[], bool], what: str, seconds: float = 900) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def make_workload(work: Path, tasks: int, transactions: int, rate: float) -> dict[str, Any]:
    """The two copies, their archives and the saved states; returns what was noted."""
    db, archive = work / "queue.db", work / "archive"
    (work / "ls").mkdir()
    ls_db = work / "ls" / "queue.db"
    started = time.monotonic()
    generate_queue(db, tasks)
    shutil.copyfile(db, ls_db)
    noted: dict[str, Any] = {"tasks": tasks, "transactions": transactions, "rate": rate,
                             "queue_mb": round(file_size(db) / 1e6)}
    print(f"generated {noted['queue_mb']} MB in {time.monotonic() - started:.0f} s", flush=True)
    archiver = Archiver(db, archive, rotate_bytes=1 << 40)
    litestream = Litestream(ls_db, work / "ls")
    archiver.start()
    litestream.start()
    context = multiprocessing.get_context("spawn")
    paused = [context.Event(), context.Event()]
    resume = context.Event()
    writers: list[Any] = []
    try:
        _wait(lambda: archiver.status().generation is not None
              and not archiver.status().snapshot_pending, "the archiver's snapshot")
        first = archiver.status().generation

        def gap() -> bool:
            if archiver.status().generation != first:
                raise SystemExit("the archiver recorded a gap (it fell behind); lower --rate")
            return False

        writers = [context.Process(target=write_transactions, args=(
            str(path), transactions, tasks, 3, rate, transactions // 2, pause, resume))
            for path, pause in ((db, paused[0]), (ls_db, paused[1]))]
        started = time.monotonic()
        for writer in writers:
            writer.start()

        def instant(name: str, count: int) -> None:
            _wait(lambda: gap() or archiver.status().transactions >= count, "the archiver")
            if len(archive_status(archive, check=False).generations) > 1:
                raise SystemExit("the archiver recorded a gap (it fell behind); lower --rate")
            time.sleep(QUIET_SECONDS)
            noted[f"{name}_at"] = time.time()
            time.sleep(1.0)
            for source, suffix in ((db, ""), (ls_db, "-ls")):
                save_state(source, work / f"state-{name}{suffix}.db")
            begun = time.monotonic()
            [compacted] = compact_archive(archive)
            noted[f"compact_{name}_s"] = round(time.monotonic() - begun, 1)
            noted[f"compact_{name}"] = (f"{compacted.outcome}, {compacted.transactions_added} "
                                        f"added, {compacted.levels_written} level files written")
            noted[f"levels_mb_{name}"] = round(compacted.level_bytes / 1e6, 1)
            noted[f"lag_{name}"] = archiver.status().lag_seconds
            print(f"{name}: {count} transactions after {time.monotonic() - started:.0f} s; "
                  f"compaction {noted[f'compact_{name}']} in {noted[f'compact_{name}_s']} s",
                  flush=True)

        for pause in paused:
            _wait(lambda: gap() or pause.is_set()  # noqa: B023
                  or not all(w.is_alive() for w in writers),
                  "the writers to reach the middle", 24 * 3600)
        instant("mid", transactions // 2)
        resume.set()
        _wait(lambda: gap() or not any(w.is_alive() for w in writers), "the writers", 24 * 3600)
        for writer in writers:
            writer.join()
            if writer.exitcode != 0:
                raise SystemExit("a writer failed")
        noted["writing_s"] = round(time.monotonic() - started)
        instant("end", transactions)
    finally:
        for writer in writers:
            if writer.is_alive():
                writer.kill()
        archiver.stop()
        litestream.stop()
    noted["archive_mb"] = round(sum(p.stat().st_size for p in archive.rglob("*")
                                    if p.is_file()) / 1e6)
    noted["replica_mb"] = round(sum(p.stat().st_size for p in litestream.replica.rglob("*")
                                    if p.is_file()) / 1e6)
    (work / "workload.json").write_text(json.dumps(noted, indent=1))
    return noted


def _rows_digest(path: Path) -> str:
    """SHA-256 over every row of every table, in rowid order (the logical contents)."""
    digest = hashlib.sha256()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            digest.update(table.encode())
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                digest.update(repr(row).encode())
    return digest.hexdigest()


def exactness(truth: Path, made: Path) -> str:
    """How ``made`` compares with the saved state ``truth``."""
    pages, differing = compare_pages(truth, made)
    if not differing:
        return f"exact ({pages} pages identical)"
    same_rows = _rows_digest(truth) == _rows_digest(made)
    return (f"{len(differing)} of {pages} pages differ; rows "
            f"{'identical' if same_rows else 'DIFFER'}")


def timed(operation: Callable[[], object]) -> float:
    """Wall-clock seconds of ``operation``, after writing out what earlier steps left dirty."""
    os.sync()
    started = time.perf_counter()
    operation()
    return time.perf_counter() - started


def measure(work: Path, noted: dict[str, Any], rounds: int,
            instants: tuple[str, ...] = ("end", "mid")) -> dict[str, list[float]]:
    """The interleaved rounds; checks every output on the first round."""
    db, archive = work / "queue.db", work / "archive"
    litestream = Litestream(work / "ls" / "queue.db", work / "ls")
    target = work / "target.db"
    seconds: dict[str, list[float]] = {name: [] for name in NAMES
                                       if name.split("-")[1] in instants}

    def clean(path: Path) -> None:
        for suffix in ("", "-wal", "-shm", ".partial"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        manifest_path_for(path).unlink(missing_ok=True)

    for number in range(rounds):
        for which in instants:
            at = noted[f"{which}_at"]
            output = work / f"rebuilt-{which}.db"
            clean(output)
            results = []
            seconds[f"tool-{which}"].append(timed(
                lambda: results.append(rebuild_to_time(archive, at, output))))  # noqa: B023
            if number == 0:
                noted[f"tool_{which}_exact"] = exactness(work / f"state-{which}.db", output)
                noted[f"tool_{which}_from_image"] = results[0].from_image
                noted[f"tool_{which}_from_levels"] = results[0].from_levels
                noted[f"tool_{which}_levels_used"] = results[0].levels_used
                noted[f"tool_{which}_problems"] = [results[0].image_problem,
                                                   results[0].level_problem]
                noted[f"tool_{which}_applied"] = results[0].transactions_applied
            clean(output)
            seconds[f"litestream-{which}"].append(timed(
                lambda: litestream.restore(at, output)))  # noqa: B023
            if number == 0:
                noted[f"litestream_{which}_exact"] = exactness(work / f"state-{which}-ls.db",
                                                               output)
            clean(output)
            clean(target)
            shutil.copyfile(db, target)
            state = work / f"state-{which}.db"
            seconds[f"restore-{which}"].append(timed(lambda: subprocess.run(
                ["sqlite3", str(target), f".restore '{state}'"], check=True)))  # noqa: B023
            clean(target)
        print(f"round {number + 1}: " + ", ".join(
            f"{name} {values[-1]:.2f} s" for name, values in seconds.items()), flush=True)
    return seconds


def report_table(seconds: dict[str, list[float]], noted: dict[str, Any]) -> str:
    """The medians as a Markdown table, with each rebuild's ratios to its yardsticks."""
    median = {name: statistics.median(values) for name, values in seconds.items()}
    labels = {"tool-end": "this tool's rebuild, newest instant",
              "tool-mid": "this tool's rebuild, middle instant",
              "litestream-end": "`litestream restore -timestamp`, newest instant",
              "litestream-mid": "`litestream restore -timestamp`, middle instant",
              "restore-end": "`sqlite3 .restore` of the newest state",
              "restore-mid": "`sqlite3 .restore` of the middle state"}
    lines = ["| step | median s | runs | x `sqlite3 .restore` | x Litestream | exact |",
             "|---|---:|---|---:|---:|---|"]
    for name, label in labels.items():
        if name not in seconds:
            continue
        which = name.split("-")[1]
        runs = " / ".join(f"{value:.1f}" for value in seconds[name])
        plain = median[name] / median[f"restore-{which}"]
        versus = median[name] / median[f"litestream-{which}"]
        exact = noted.get(f"{name.split('-')[0]}_{which}_exact", "-")
        lines.append(f"| {label} | {median[name]:.2f} | {runs} | {plain:.2f}x | "
                     f"{versus:.2f}x | {exact} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Make (or reuse) the workload, run the rounds and print them as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--transactions", type=int, default=370_000)
    parser.add_argument("--rate", type=float, default=400.0,
                        help="commits a second per writer (the archiver must keep up)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="leave the workload in --dir")
    parser.add_argument("--reuse", type=Path, default=None, help="a workload kept before")
    parser.add_argument("--instants", default="end,mid",
                        help="which instants to measure: end, mid or both")
    args = parser.parse_args(argv)

    def stopped(number: int, _frame: object) -> None:
        raise SystemExit(f"stopped by signal {signal.Signals(number).name}")

    for which in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(which, stopped)
    work = args.reuse or Path(tempfile.mkdtemp(prefix="bench-rebuild-", dir=args.dir))
    try:
        if args.reuse:
            noted = json.loads((work / "workload.json").read_text())
        else:
            noted = make_workload(work, args.tasks, args.transactions, args.rate)
        if args.rounds < 1:
            print(json.dumps(noted, indent=1))
            return 0
        seconds = measure(work, noted, args.rounds, tuple(args.instants.split(",")))
        machine = ", ".join(f"{key}: {value}" for key, value in machine_info(work).items())
        print(f"{machine}; load average at end {load_average()}; date "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
        print(json.dumps(noted, indent=1))
        print(report_table(seconds, noted))
    finally:
        if not (args.keep or args.reuse):
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
