"""The point-in-time commands of ``queue-admin-cli``: archive, archive-status, restore --at.

``archive`` runs the archiver in the foreground until Ctrl+C or SIGTERM, printing a line per
generation, gap or error and a heartbeat; with ``--json`` those lines go to stderr and stdout
gets the one JSON result at the end. ``restore --at`` rebuilds the queue as it was at an
instant into a new file (``--output``) and, with ``--yes``, restores that file through the
same path as ``restore PATH --yes``.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.archive import (
    ArchiveError,
    ArchiveEvent,
    Archiver,
    archive_status,
    instant_text,
    parse_instant,
    rebuild_to_time,
)
from ..core.config import SETTING_RANGES
from ..core.errors import ErrorKind
from ..core.manifest import backup_file_name
from .arguments import database_path
from .output import CommandResult

if TYPE_CHECKING:
    from .program import Context

HEARTBEAT_SECONDS = 60.0


def _keep_days(text: str) -> float:
    """``--keep-days``: the range of the setting it stands in for."""
    low, high = SETTING_RANGES["archive_retention_days"]
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be a number of days from {low:g} to "
                                         f"{high:,.0f}, not {text}")
    return value


def add_archive_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """The ``archive`` and ``archive-status`` commands."""
    archive = command("archive", "Archive every committed transaction continuously (runs until "
                                 "Ctrl+C or SIGTERM), so the queue can be restored to any "
                                 "instant.")
    archive.add_argument("--dir", type=Path, required=True, metavar="DIR",
                         help="archive folder (local, mapped drive or UNC share)")
    archive.add_argument("--keep-days", type=_keep_days, metavar="N",
                         help="delete whole generations older than N days (default: the "
                              "setting archive_retention_days, 7)")
    archive.add_argument("--heartbeat", type=float, default=HEARTBEAT_SECONDS, metavar="S",
                         help=f"seconds between heartbeat lines (default {HEARTBEAT_SECONDS:.0f})")
    archive.add_argument("--seconds", type=float, metavar="S",
                         help="stop by itself after S seconds (default: run until stopped)")
    status = command("archive-status", "Generations, gaps and restorable instants of an archive.")
    status.add_argument("--dir", type=Path, required=True, metavar="DIR", help="archive folder")


def add_restore_point_options(restore: argparse.ArgumentParser) -> None:
    """``restore --at TIME --archive DIR [--output FILE]``."""
    restore.add_argument("--at", metavar="TIME",
                         help="rebuild the queue as it was at this ISO 8601 instant (local time "
                              "unless it has an offset or Z) from --archive")
    restore.add_argument("--archive", type=Path, metavar="DIR", help="archive folder for --at")
    restore.add_argument("--output", type=Path, metavar="FILE",
                         help="with --at: write the rebuilt queue to this new file")


def archive(context: Context) -> CommandResult:
    """Run the archiver until Ctrl+C or SIGTERM, then stop cleanly (exit 0)."""
    args = context.args
    database = database_path(context, "Archiving")
    out = context.err if args.json else None

    def show(event: ArchiveEvent) -> None:
        _print_line(out, f"{instant_text(event.at)} {event.kind}: {event.message}")

    keep_days = (args.keep_days if args.keep_days is not None
                 else context.config.archive_retention_days)
    archiver = Archiver(database, args.dir, retention_days=keep_days, on_event=show)
    stop = threading.Event()
    previous = _catch_stop_signals(stop)
    try:
        archiver.start()
        _print_line(out, f"Archiving '{database}' into '{args.dir}'; Ctrl+C or SIGTERM stops "
                         "it cleanly.")
        ends = None if args.seconds is None else time.monotonic() + max(0.0, args.seconds)
        beat = max(0.5, float(args.heartbeat))
        while not stop.wait(beat if ends is None else max(0.0, min(beat, ends - time.monotonic()))):
            status = archiver.status()
            if not status.running or (ends is not None and time.monotonic() >= ends):
                break
            lag = f"{status.lag_seconds * 1000:.0f} ms" if status.lag_seconds is not None else "-"
            _print_line(out, f"{instant_text(time.time())} heartbeat: generation "
                             f"{status.generation or '-'}, {status.transactions} transactions "
                             f"archived, {status.resets_followed} WAL resets followed, "
                             f"behind by {lag}")
    finally:
        archiver.stop()
        _restore_signals(previous)
    status = archiver.status()
    if status.error and not stop.is_set():
        kind = ErrorKind(status.error_kind) if status.error_kind else ErrorKind.IO
        raise ArchiveError(f"The archiver stopped: {status.error}", kind)
    data = {"archive_dir": args.dir, "database": database, "generation": status.generation,
            "generations_started": status.generations_started,
            "transactions": status.transactions, "archived_bytes": status.archived_bytes,
            "resets_followed": status.resets_followed, "last_gap": status.last_gap,
            "clock_steps": status.clock_steps, "keep_days": keep_days}
    return CommandResult("The archiver stopped after writing everything it had seen.", data,
                         ["archive_dir", "generation", "transactions", "resets_followed",
                          "last_gap"])


def archive_status_command(context: Context) -> CommandResult:
    """Describe the archive folder: generations, gaps, earliest and latest instants, size."""
    folder = Path(context.args.dir)
    database = context.db_path
    if not folder.is_dir():
        raise ArchiveError(f"Reading the archive failed: '{folder}' is not a folder; check "
                           "--dir.", ErrorKind.NOT_FOUND)
    status = archive_status(folder)
    data: dict[str, Any] = {
        "archive_dir": folder,
        "earliest_restorable": instant_text(status.earliest) if status.earliest else None,
        "latest_restorable": instant_text(status.latest) if status.latest else None,
        "size_bytes": status.size_bytes,
        "archiver_running": status.archiver is not None,
        "generations": [_generation_row(g) for g in status.generations],
        "gaps": [{"from": instant_text(g.after), "to": instant_text(g.before),
                  "reason": g.reason} for g in status.gaps],
    }
    lines = [f"  {row['id']}: {row['restorable_from'] or 'not restorable'}"
             f" to {row['restorable_until'] or '-'}, {row['transactions']} transactions"
             f" ({row['reason']})" for row in data["generations"]]
    lines += [f"  gap from {gap['from']} to {gap['to']}: {gap['reason']}" for gap in data["gaps"]]
    data["clock_steps"] = [{"generation": g.id, "at": instant_text(step["at"]),
                            "seconds": step["seconds"]}
                           for g in status.generations for step in g.clock_steps]
    lines += [f"  clock stepped {'back' if step['seconds'] < 0 else 'forward'} by "
              f"{abs(step['seconds']):.1f} s at {step['at']} (generation {step['generation']}; "
              "instants stay in order)" for step in data["clock_steps"]]
    sources = {str(row.get("database")) for row in data["generations"] if row.get("database")}
    data["database"] = database
    data["same_database"] = not sources or sources == {str(database)}
    if not data["same_database"]:
        lines.append(f"  note: the archive was made from {', '.join(sorted(sources))}, "
                     f"not from '{database}'.")
    headline = (f"The archive holds {len(status.generations)} generation(s) and "
                f"{len(status.gaps)} gap(s).")
    return CommandResult(headline, data, ["archive_dir", "earliest_restorable",
                                          "latest_restorable", "size_bytes",
                                          "archiver_running"], lines)


def restore_at(context: Context,
               restore: Callable[[Context], CommandResult]) -> CommandResult:
    """Rebuild the state at --at into --output; with --yes, restore it through the safe path.

    ``restore`` is the ``restore`` command, which puts the rebuilt file into the database
    exactly as it does a backup.
    """
    args = context.args
    if args.archive is None:
        raise ArchiveError("restore --at needs --archive DIR, the archive folder.",
                           ErrorKind.INVALID)
    if args.path is not None:
        raise ArchiveError("restore takes either a backup PATH or --at, not both.",
                           ErrorKind.INVALID)
    if args.output is None and not args.yes:
        raise ArchiveError(f"Restore refused: it replaces the contents of '{context.db_path}' "
                           f"with the queue as it was at {args.at}; add --yes to confirm, or "
                           "--output FILE to only rebuild it into a new file.",
                           ErrorKind.INVALID)
    moment = parse_instant(args.at)
    output = args.output
    if output is None:
        folder = context.backup_dir()
        folder.mkdir(parents=True, exist_ok=True)
        output = folder / backup_file_name("at", datetime.now())  # noqa: DTZ005 - local name
    with context.slow_operation() as progress:
        rebuilt = rebuild_to_time(args.archive, moment, output, progress, context.interrupt,
                                  live_path=context.db_path if context.db_path.exists() else None)
    data: dict[str, Any] = {
        "at": moment, "rebuilt": rebuilt.path, "generation": rebuilt.generation,
        "transactions_applied": rebuilt.transactions_applied,
        "state_seen_at": rebuilt.state_seen_at, "size_bytes": rebuilt.size_bytes,
        "verified": rebuilt.check.ok}
    shown = ["rebuilt", "state_seen_at", "transactions_applied", "size_bytes", "verified"]
    if not args.yes:
        return CommandResult(f"The queue as it was at {instant_text(moment.timestamp())} is in "
                             f"'{rebuilt.path}' (verified); the live database was not touched.",
                             data, shown)
    args.path, args.at = rebuilt.path, None
    result = restore(context)
    result.data = {**data, **result.data}
    result.shown = [*shown, *result.shown]
    return result


def _generation_row(generation: Any) -> dict[str, Any]:
    return {"id": generation.id, "reason": generation.reason,
            "restorable_from": instant_text(generation.restorable_from)
            if generation.restorable_from else None,
            "restorable_until": instant_text(generation.restorable_until)
            if generation.restorable_until else None,
            "transactions": generation.transactions, "size_bytes": generation.size_bytes,
            "end_reason": generation.end_reason, "database": generation.database}


def _print_line(stream: Any, text: str) -> None:
    import sys

    target = stream if stream is not None else sys.stdout
    target.write(text + "\n")
    target.flush()


def _catch_stop_signals(stop: threading.Event) -> dict[int, Any]:
    """Ctrl+C, SIGTERM (and Ctrl+Break on Windows) ask the archiver to stop cleanly."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, lambda *_: stop.set())
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)
