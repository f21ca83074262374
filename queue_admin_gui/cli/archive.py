"""The point-in-time commands of ``queue-admin-cli``: archive, its status and compaction.

``archive`` runs the archiver in the foreground until Ctrl+C or SIGTERM, printing a line per
generation, gap, validation or error and a heartbeat; with ``--json`` those lines go to stderr
and stdout gets the one JSON result at the end. ``archive-status`` checks every archive file
against its checksums (exit 1 when any is damaged), and with ``--validate`` first validates
the archive against the live database. ``restore --at`` rebuilds the queue as it was at an
instant (or ``latest``, ``earliest``) into a new file (``--output``) and, with ``--yes``,
restores that file through the same path as ``restore PATH --yes``. ``archive-compact``
carries each generation's replay image on and writes its level files, so that rebuilding
any instant replays only the transactions archived since the nearest of them (see
:mod:`..core.archive.images` and :mod:`..core.archive.levels`).
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
    rebuild_to_time,
)
from ..core.archive.images import compact_archive
from ..core.archive.rebuild import resolve_instant
from ..core.archive.status import ArchiveStatus
from ..core.archive.validation import ValidationResult, last_validation, validate_archive
from ..core.backups.manifest import backup_file_name
from ..core.errors import ErrorKind
from ..core.settings.catalog import SETTING_RANGES
from .arguments import database_path
from .declared import command
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


def _archive_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, required=True, metavar="DIR",
                        help="archive folder (local, mapped drive or UNC share)")
    parser.add_argument("--keep-days", type=_keep_days, metavar="N",
                        help="delete whole generations older than N days (default: the "
                             "setting archive_retention_days, 7)")
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT_SECONDS, metavar="S",
                        help=f"seconds between heartbeat lines (default {HEARTBEAT_SECONDS:.0f})")
    parser.add_argument("--seconds", type=float, metavar="S",
                        help="stop by itself after S seconds (default: run until stopped)")
    parser.add_argument("--priority", choices=("low", "normal"), metavar="{low,normal}",
                        help="CPU (and on Linux I/O) priority of the archiver: low runs below "
                             "normal, so it never takes a core from the workers (default: "
                             "the setting archive_low_priority, low)")


def _archive_status_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, required=True, metavar="DIR", help="archive folder")
    parser.add_argument("--validate", action="store_true",
                        help="first rebuild the newest archived commit and compare it page by "
                             "page with the live database (--db) at the same commit")


def add_restore_point_options(restore: argparse.ArgumentParser) -> None:
    """``restore --at TIME --archive DIR [--output FILE]``."""
    restore.add_argument("--at", metavar="TIME",
                         help="rebuild the queue as it was at this ISO 8601 instant (local time "
                              "unless it has an offset or Z), or at latest or earliest, from "
                              "--archive")
    restore.add_argument("--archive", type=Path, metavar="DIR", help="archive folder for --at")
    restore.add_argument("--output", type=Path, metavar="FILE",
                         help="with --at: write the rebuilt queue to this new file")


@command("archive", "Archive every committed transaction continuously (runs until Ctrl+C or "
         "SIGTERM), so the queue can be restored to any instant.", options=_archive_options,
         logged=True)
def archive(context: Context) -> CommandResult:
    """Run the archiver until Ctrl+C or SIGTERM, then stop cleanly (exit 0)."""
    args = context.args
    database = database_path(context, "Archiving")
    out = context.err if args.json else None

    def show(event: ArchiveEvent) -> None:
        _print_line(out, f"{instant_text(event.at)} {event.kind}: {event.message}")

    keep_days = (args.keep_days if args.keep_days is not None
                 else context.config.archive_retention_days)
    minutes = context.config.archive_validate_minutes
    low_priority = (args.priority == "low" if args.priority is not None
                    else context.config.archive_low_priority)
    archiver = Archiver(database, args.dir, retention_days=keep_days, on_event=show,
                        validate_seconds=minutes * 60 if minutes else None,
                        low_priority=low_priority)
    stop = threading.Event()
    previous = _catch_stop_signals(stop)
    try:
        archiver.start()
        _print_line(out, f"Archiving '{database}' into '{args.dir}'; Ctrl+C or SIGTERM stops "
                         "it cleanly.")
        if low_priority:
            priority = _wait_for_priority(archiver)
            _print_line(out, f"The archiver runs below normal priority ({priority})."
                        if priority else "The archiver runs at normal priority (this system "
                                         "did not let it lower its own).")
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
            "clock_steps": status.clock_steps, "keep_days": keep_days,
            "priority": status.priority or "normal"}
    return CommandResult("The archiver stopped after writing everything it had seen.", data,
                         ["archive_dir", "generation", "transactions", "resets_followed",
                          "last_gap"])


def _wait_for_priority(archiver: Archiver) -> str | None:
    """The priority the archiver's thread lowered itself to, once it started running."""
    deadline = time.monotonic() + 5.0
    while True:
        status = archiver.status()
        if (status.priority or status.running or status.error
                or time.monotonic() > deadline):
            return status.priority
        time.sleep(0.01)


@command("archive-status", "Generations, gaps and restorable instants of an archive, every "
         "file checked against its checksums.", options=_archive_status_options)
def archive_status_command(context: Context) -> CommandResult:
    """Describe the archive folder: generations, gaps, damage, restorable instants, validation.

    Every file is checked against its checksums; damage found makes the command fail (exit
    1) after printing the whole description, and so does a failed validation.
    """
    args = context.args
    folder = Path(args.dir)
    database = context.db_path
    if not folder.is_dir():
        raise ArchiveError(f"Reading the archive failed: '{folder}' is not a folder; check "
                           "--dir.", ErrorKind.NOT_FOUND)
    validated: ValidationResult | None = None
    if args.validate:
        if not database.exists():
            raise ArchiveError(f"Validating the archive needs the live database, and "
                               f"'{database}' does not exist; give it with --db.",
                               ErrorKind.NOT_FOUND)
        with context.slow_operation() as progress:
            validated = validate_archive(database, folder, progress, context.interrupt,
                                         record_activity=True)
    status = archive_status(folder)
    last = validated or last_validation(folder)
    data: dict[str, Any] = {
        "archive_dir": folder,
        "earliest_restorable": instant_text(status.earliest) if status.earliest else None,
        "latest_restorable": instant_text(status.latest) if status.latest else None,
        "size_bytes": status.size_bytes,
        "archiver_running": status.archiver is not None,
        "checked": status.checked,
        "generations": [_generation_row(g) for g in status.generations],
        "gaps": [{"from": instant_text(g.after), "to": instant_text(g.before),
                  "reason": g.reason, "kind": g.kind, "file": g.file} for g in status.gaps],
        "damage": _damage_rows(status),
        "last_validation": _validation_row(last),
    }
    lines = [f"  {row['id']}: {row['restorable_from'] or 'not restorable'}"
             f" to {row['restorable_until'] or '-'}, {row['transactions']} transactions"
             f" ({row['reason']})" for row in data["generations"]]
    lines += [f"  gap from {gap['from']} to {gap['to']}: {gap['reason']}"
              + (f" ({gap['file']})" if gap["file"] else "") for gap in data["gaps"]]
    lines += [f"  damaged: {row['file']}: {row['reason']}; "
              + (f"instants after {row['restorable_until']} in its generation are lost"
                 if row["restorable_until"] else "its whole generation is lost")
              for row in data["damage"] if row["kind"] == "damaged"]
    validation = data["last_validation"]
    if validation is None:
        lines.append("  last validation: none yet")
    else:
        lines.append(f"  last validation at {validation['checked_at']}: {validation['result']}"
                     f" - {validation['sentence']}")
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
    damaged = [row for row in data["damage"] if row["kind"] == "damaged"]
    headline = (f"The archive holds {len(status.generations)} generation(s) and "
                f"{len(status.gaps)} gap(s); every file was checked against its checksums"
                + (f" and {len(damaged)} damaged." if damaged else ", none is damaged."))
    result = CommandResult(headline, data, ["archive_dir", "earliest_restorable",
                                            "latest_restorable", "size_bytes",
                                            "archiver_running"], lines)
    if damaged:
        result.problem = ArchiveError(
            f"The archive is damaged: {damaged[0]['reason']} in '{damaged[0]['file']}'; the "
            "instants it held cannot be restored (see the gaps), and the others are exact. "
            "Keep the archive running (it starts a new generation) and take a backup.",
            ErrorKind.CORRUPT)
    elif validated is not None and validated.ok is not True:
        result.problem = ArchiveError(
            f"Validation {'failed' if validated.ok is False else 'could not compare'}: "
            f"{validated.sentence}", ErrorKind.CORRUPT if validated.ok is False
            else ErrorKind.IO)
    return result


def _archive_compact_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, required=True, metavar="DIR", help="archive folder")


@command("archive-compact", "Carry each generation's replay image on to its newest archived "
         "transaction and write its level files, so a rebuild of any instant replays little.",
         options=_archive_compact_options, logged=True)
def archive_compact_command(context: Context) -> CommandResult:
    """Carry every restorable generation's replay image on; a skipped generation is named.

    Exit 1 when a generation could not be compacted because it is damaged (the damage is
    the archive's, shown by archive-status); a generation without a snapshot yet is no
    failure.
    """
    folder = Path(context.args.dir)
    if not folder.is_dir():
        raise ArchiveError(f"Compacting the archive failed: '{folder}' is not a folder; check "
                           "--dir.", ErrorKind.NOT_FOUND)
    with context.slow_operation() as progress:
        results = compact_archive(folder, progress, context.interrupt)
    rows = [{"generation": r.generation, "outcome": r.outcome, "transactions": r.transactions,
             "transactions_added": r.transactions_added, "image_bytes": r.image_bytes,
             "levels_written": r.levels_written, "level_files": r.level_files,
             "level_bytes": r.level_bytes,
             "seconds": round(r.seconds, 3), "reason": r.reason} for r in results]
    lines = [f"  {row['generation']}: {row['outcome']}"
             + (f", {row['transactions']} transactions in the image "
                f"({row['transactions_added']} added), {row['level_files']} level files "
                f"({row['level_bytes'] / 1e6:.1f} MB, {row['levels_written']} written)"
                if row["outcome"] != "skipped" else "")
             + (f" ({row['reason']})" if row["reason"] else "") for row in rows]
    damaged = [r for r in results if r.reason == "it is damaged"]
    result = CommandResult(f"Compacted {sum(r.outcome != 'skipped' for r in results)} of "
                           f"{len(results)} generation(s).", {"archive_dir": folder,
                                                              "generations": rows},
                           ["archive_dir"], lines)
    if damaged:
        result.problem = ArchiveError(
            f"The archive's generation {damaged[0].generation} is damaged, so its image was "
            "not carried on; run archive-status to see the damage.", ErrorKind.CORRUPT)
    return result


def _damage_rows(status: ArchiveStatus) -> list[dict[str, Any]]:
    return [{"file": str(damage.file), "reason": damage.reason, "kind": damage.kind,
             "restorable_until": instant_text(damage.lost_after)
             if damage.lost_after is not None else None,
             "lost_until": instant_text(damage.lost_until)
             if damage.lost_until is not None else None} for damage in status.damage]


def _validation_row(result: ValidationResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    word = {True: "passed", False: "failed", None: "not compared"}[result.ok]
    return {"checked_at": instant_text(result.checked_at), "ok": result.ok, "result": word,
            "sentence": result.sentence, "generation": result.generation,
            "instant": instant_text(result.instant) if result.instant is not None else None,
            "pages": result.pages, "differing_pages": result.differing_pages}


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
    moment = resolve_instant(args.at, args.archive)
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
        "verified": rebuilt.check.ok, "from_image": rebuilt.from_image,
        "from_levels": rebuilt.from_levels, "levels_used": rebuilt.levels_used,
        "image_problem": rebuilt.image_problem, "level_problem": rebuilt.level_problem}
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
