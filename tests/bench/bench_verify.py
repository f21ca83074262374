"""What the full integrity check costs a backup, next to ``sqlite3``'s own ``.backup``.

Run from the project root on a queue file (``bench_engine`` can generate one)::

    python -m tests.bench.bench_verify --db /path/queue.db [--rounds 3]

Measured in one run on the same file, alternating so drift hits all alike: the ``sqlite3``
shell's ``.backup`` into a new file followed by an fsync (the yardstick an admin would
otherwise pick), the same followed by the shell's ``PRAGMA integrity_check`` of the copy (the
same work as a verified backup), the tool's backup as it is (the full check of the copied
snapshot on a second connection beside the copy), the same backup checking the closed copy
afterwards (as it did before, and as it still does when writers never leave a quiet moment
to pin the checker), and each reading pass on its own (full check, quick check, SHA-256).
Prints medians and fastest rounds, each with its ratio to both yardsticks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups import snapshot
from queue_admin_gui.core.files.db_files import file_size
from queue_admin_gui.core.files.durable import file_sha256
from queue_admin_gui.core.trust.untrusted import FULL_CHECK, QUICK_CHECK, open_backup_file

from .bench_report import machine_info


def timed(operation: Callable[[], object]) -> float:
    """Wall-clock seconds of ``operation``, after writing out what earlier steps left dirty."""
    os.sync()
    started = time.perf_counter()
    operation()
    return time.perf_counter() - started


def shell_backup(source: Path, target: Path) -> None:
    """``sqlite3 SRC ".backup DST"``, then the fsync a backup needs before it counts."""
    target.unlink(missing_ok=True)
    subprocess.run(["sqlite3", str(source), f".backup '{target}'"], check=True)
    with open(target, "rb+") as handle:
        os.fsync(handle.fileno())


def shell_backup_checked(source: Path, target: Path) -> None:
    """``.backup`` + fsync, then the shell's full check of the copy."""
    shell_backup(source, target)
    done = subprocess.run(["sqlite3", str(target), "PRAGMA integrity_check"], check=True,
                          capture_output=True, text=True)
    if done.stdout.strip() != "ok":
        raise SystemExit(f"integrity_check found {done.stdout.strip()}")


def tool_backup(engine: QueueBackup, check_beside_copy: bool) -> None:
    """One backup by the engine; the file is deleted afterwards.

    ``check_beside_copy`` false: no checker is pinned, so the closed copy is checked after.
    """
    tries = snapshot.PIN_TRIES
    snapshot.PIN_TRIES = tries if check_beside_copy else 0
    try:
        made = engine.backup()
    finally:
        snapshot.PIN_TRIES = tries
    engine.delete_backup(made.path)


def pragma_pass(path: Path, pragma: str) -> None:
    """One check of the closed file on its own."""
    with open_backup_file(path) as connection:
        rows = [row[0] for row in connection.execute(pragma)]
    if rows != ["ok"]:
        raise SystemExit(f"{pragma} found {rows}")


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print them as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("sqlite3") is None:
        raise SystemExit("the sqlite3 shell is needed as the yardstick")
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    engine = QueueBackup(args.db, work / "backups")
    copy = work / "closed-copy.db"
    shell_backup(args.db, copy)
    load_at_start = os.getloadavg()[0]
    steps: dict[str, Callable[[], object]] = {
        "sqlite3 .backup + fsync": lambda: shell_backup(args.db, work / "shell.db"),
        "sqlite3 .backup + fsync + integrity_check": lambda: shell_backup_checked(
            args.db, work / "shell.db"),
        "backup, snapshot checked beside the copy (now)": lambda: tool_backup(engine, True),
        "backup, closed copy checked after (before)": lambda: tool_backup(engine, False),
        "integrity_check alone": lambda: pragma_pass(copy, FULL_CHECK),
        "quick_check alone": lambda: pragma_pass(copy, QUICK_CHECK),
        "SHA-256 alone": lambda: file_sha256(copy),
    }
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    try:
        for _ in range(args.rounds):
            for name, step in steps.items():
                seconds[name].append(timed(step))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    yardstick = statistics.median(seconds["sqlite3 .backup + fsync"])
    checked = statistics.median(seconds["sqlite3 .backup + fsync + integrity_check"])
    fastest = min(seconds["sqlite3 .backup + fsync"])
    machine = ", ".join(f"{key}: {value}" for key, value in machine_info(work.parent).items())
    print(f"{machine}; file {file_size(args.db) / 1e6:.0f} MB; {args.rounds} rounds; "
          f"load average at start {load_at_start:.2f}, at end {os.getloadavg()[0]:.2f}")
    print("| step | median s | vs .backup | vs .backup + check | fastest s | vs .backup |\n"
          "|---|---:|---:|---:|---:|---:|")
    for name, values in seconds.items():
        median, least = statistics.median(values), min(values)
        print(f"| {name} | {median:.2f} | {median / yardstick:.2f}x | {median / checked:.2f}x "
              f"| {least:.2f} | {least / fastest:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
