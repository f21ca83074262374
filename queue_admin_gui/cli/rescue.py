"""``diff`` and ``rescue``: compare the queue with a past state and put chosen tasks back.

The past state is one of ``--backup FILE`` (verified first), ``--at TIME --archive DIR``
(rebuilt from the point-in-time archive) or ``--damaged FILE`` (its readable rows salvaged).
``rescue`` needs ``--dry-run`` (say what it would put back and skip) or ``--yes`` (do it);
``rescue --undo FILE --yes`` puts back the live rows an earlier rescue replaced. Exit 0 when
done (skipped tasks are reported, not failures), 1 when it failed and nothing was changed,
2 for bad usage.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.archive import parse_instant
from ..core.archive.controller import configured_archive_dir
from ..core.archive.rebuild import resolve_instant
from ..core.errors import ErrorKind
from ..core.rescue import (
    QueueDiff,
    RescueError,
    RescueReport,
    RescueSelection,
    diff_queue,
    open_past_state,
    rescue_tasks,
    undo_rescue,
)
from .arguments import database_path
from .declared import command
from .output import MAX_LISTED, CommandResult

if TYPE_CHECKING:
    from .program import Context

#: Largest --ids file read (a list of a million ids is about 8 MB).
MAX_IDS_FILE_BYTES = 64 * 1024 * 1024
#: The largest id SQLite can give a row.
MAX_TASK_ID = 2**63 - 1


def _diff_options(parser: argparse.ArgumentParser) -> None:
    _add_past_options(parser)


def _rescue_options(parser: argparse.ArgumentParser) -> None:
    _add_past_options(parser)
    parser.add_argument("--type", action="append", default=[], metavar="TYPE",
                        help="only tasks of this type (repeat for more types)")
    kinds = parser.add_mutually_exclusive_group()
    kinds.add_argument("--deleted-only", action="store_true",
                       help="only tasks removed since the past state")
    kinds.add_argument("--changed-only", action="store_true",
                       help="only tasks changed since the past state")
    parser.add_argument("--status-now", action="append", default=[], metavar="STATUS",
                        help="only changed tasks whose status is now STATUS (repeatable)")
    parser.add_argument("--changed-after", metavar="TIME",
                        help="only changed tasks whose last change is at or after TIME")
    parser.add_argument("--changed-before", metavar="TIME",
                        help="only changed tasks whose last change is before TIME")
    parser.add_argument("--ids", type=Path, metavar="FILE",
                        help="only these task ids (a file of ids, one per line)")
    parser.add_argument("--undo", type=Path, metavar="FILE",
                        help="put back the live rows an earlier rescue replaced, from the undo "
                             "file it reported")
    parser.add_argument("--dir", type=Path, metavar="DIR",
                        help="backup folder for the safety backup and the undo file "
                             "(default: from the settings)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true",
                      help="show what would be put back and skipped; change nothing")
    mode.add_argument("--yes", action="store_true", help="confirm: put the tasks back")


def _add_past_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backup", type=Path, metavar="FILE",
                        help="the past state is this backup (verified first)")
    parser.add_argument("--at", metavar="TIME",
                        help="the past state is the queue at this ISO 8601 instant (or "
                             "latest, earliest), rebuilt from --archive (local time unless it "
                             "has an offset or Z)")
    parser.add_argument("--archive", type=Path, metavar="DIR", help="archive folder for --at")
    parser.add_argument("--damaged", type=Path, metavar="FILE",
                        help="the past state is the readable rows of this damaged queue file")


def _past_arguments(context: Context, command: str) -> dict[str, Any]:
    """The one past state named, checked for bad usage (exit 2)."""
    args = context.args
    named = [option for option, value in (("--backup", args.backup), ("--at", args.at),
                                          ("--damaged", args.damaged)) if value is not None]
    if len(named) != 1:
        raise RescueError(f"{command} needs exactly one past state: --backup FILE, --at TIME "
                          f"--archive DIR, or --damaged FILE (got {', '.join(named) or 'none'}).",
                          ErrorKind.INVALID)
    if args.at is not None and args.archive is None:
        raise RescueError(f"{command} --at needs --archive DIR, the archive folder.",
                          ErrorKind.INVALID)
    if args.archive is not None and args.at is None:
        raise RescueError(f"{command} --archive needs --at TIME, the instant to compare with.",
                          ErrorKind.INVALID)
    return {"backup": args.backup, "damaged": args.damaged, "archive": args.archive,
            "at": resolve_instant(args.at, args.archive) if args.at is not None else None}


@command("diff", "Compare the queue with a past state, task by task: removed, changed and "
         "added since, by type and status change.", options=_diff_options)
def diff_command(context: Context) -> CommandResult:
    """Compare the live queue with the past state; --json adds the ids of every group."""
    live = database_path(context, "Diff")
    past_options = _past_arguments(context, "diff")
    with context.slow_operation() as progress:
        with open_past_state(live, progress=progress, cancelled=context.interrupt,
                             **past_options) as past:
            diff = diff_queue(live, past, progress, context.interrupt)
            salvage = past.salvage
    data = diff.as_dict(with_ids=True)
    if salvage is not None:
        data["salvage"] = {"rows_read": salvage.rows_read,
                           "rows_unreadable": salvage.rows_unreadable,
                           "counted_from_index": salvage.counted_from_index}
    headline = (f"Since {diff.past}: {diff.removed} task(s) removed, {diff.changed} changed, "
                f"{diff.added} added.")
    shown = ["held_now"] + (["unreadable_ids"] if salvage is not None else [])
    return CommandResult(headline, data, shown, _diff_lines(diff))


def _diff_lines(diff: QueueDiff) -> list[str]:
    lines = ["  By type and status change:"]
    current = None
    for group in diff.groups:
        if group.type != current:
            current = group.type
            counts = diff.by_type[group.type]
            lines.append(f"    {group.type}: " + ", ".join(
                f"{count} {kind}" for kind, count in counts.items() if count))
        ids = ", ".join(str(task_id) for task_id in group.ids[:5])
        more = f", ... ({group.count - 5} more)" if group.count > 5 else ""
        lines.append(f"      {group.kind} {group.status_change}: {group.count}  [{ids}{more}]")
    if diff.by_minute:
        lines.append("  By minute of change (UTC):")
        for minute, counts in list(diff.by_minute.items())[-MAX_LISTED:]:
            lines.append(f"    {minute}  " + ", ".join(f"{count} {kind}"
                                                      for kind, count in counts.items()))
    if diff.changed_columns:
        lines.append("  Changed columns: " + ", ".join(
            f"{name} {count}" for name, count in diff.changed_columns.items()))
    return lines


@command("rescue", "Put chosen tasks back as they were in a past state, while workers keep "
         "running; everything else is left as it is.", options=_rescue_options, logged=True)
def rescue_command(context: Context) -> CommandResult:
    """Put the selected tasks back (--yes) or say what would happen (--dry-run)."""
    args = context.args
    live = database_path(context, "Rescue")
    context.interrupt.hard_stop = False  # the write transaction commits or rolls back whole
    if args.undo is not None:
        return _undo(context, live)
    past_options = _past_arguments(context, "rescue")
    selection = RescueSelection(
        types=frozenset(args.type), removed=not args.changed_only,
        changed=not args.deleted_only, status_now=frozenset(args.status_now),
        changed_after=parse_instant(args.changed_after) if args.changed_after else None,
        changed_before=parse_instant(args.changed_before) if args.changed_before else None,
        ids=read_ids_file(args.ids) if args.ids is not None else None)
    # The archive, when an archiver proves it holds every commit, is the safety copy.
    archive = (Path(args.archive) if args.archive is not None
               else configured_archive_dir(context.config))
    with context.slow_operation() as progress:
        with open_past_state(live, progress=progress, cancelled=context.interrupt,
                             **past_options) as past:
            report = rescue_tasks(live, past, selection, backup_dir=context.backup_dir(),
                                  dry_run=args.dry_run, archive_dir=archive,
                                  progress=progress, cancelled=context.interrupt)
    return CommandResult(report.headline, report.as_dict(),
                         ["put_back", "logs_put_back", "outside_selection", "added_since",
                          "safety_backup", "undo_file"], _skip_lines(report),
                         shortfall=report.shortfall)


def _skip_lines(report: RescueReport) -> list[str]:
    by_reason: dict[str, list[str]] = defaultdict(list)
    for skip in report.skipped:
        by_reason[skip.reason].append(f"{skip.task_id} ({skip.detail})")
    lines = []
    for reason, entries in sorted(by_reason.items()):
        lines.append(f"  Skipped, {reason.replace('_', ' ')}: {len(entries)}")
        lines += [f"    {entry}" for entry in entries[:MAX_LISTED]]
        if len(entries) > MAX_LISTED:
            lines.append(f"    ... and {len(entries) - MAX_LISTED} more (--json lists all)")
    return lines


def _undo(context: Context, live: Path) -> CommandResult:
    args = context.args
    extra = [option for option, given in (
        ("--backup", args.backup), ("--at", args.at), ("--damaged", args.damaged),
        ("--type", args.type), ("--status-now", args.status_now), ("--ids", args.ids),
        ("--deleted-only", args.deleted_only), ("--changed-only", args.changed_only),
        ("--changed-after", args.changed_after), ("--changed-before", args.changed_before))
        if given]
    if extra:
        raise RescueError(f"rescue --undo takes only the undo file and --dry-run or --yes, "
                          f"not {', '.join(extra)}.", ErrorKind.INVALID)
    with context.slow_operation() as progress:
        undone = undo_rescue(live, args.undo, backup_dir=context.backup_dir(),
                             dry_run=args.dry_run, progress=progress,
                             cancelled=context.interrupt)
    lines = [f"  Left alone: {skip.task_id} ({skip.detail})"
             for skip in undone.skipped[:MAX_LISTED]]
    return CommandResult(undone.headline, undone.as_dict(),
                         ["logs_removed", "safety_backup"], lines)


_ID_SEPARATORS = re.compile(r"[\s,;]+")


def read_ids_file(path: Path) -> frozenset[int]:
    """Task ids from a file: whole numbers separated by lines, spaces or commas; ``#`` comments."""
    try:
        if path.stat().st_size > MAX_IDS_FILE_BYTES:
            raise RescueError(f"The ids file '{path}' is larger than "
                              f"{MAX_IDS_FILE_BYTES // (1024 * 1024)} MB; split the rescue.",
                              ErrorKind.INVALID)
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise RescueError(f"The ids file '{path}' cannot be read ({error.strerror or error}); "
                          "check --ids.", ErrorKind.NOT_FOUND) from error
    ids = set()
    for number, line in enumerate(text.splitlines(), start=1):
        for token in _ID_SEPARATORS.split(line.split("#", 1)[0].strip()):
            if not token:
                continue
            if not re.fullmatch(r"[0-9]+", token):
                raise RescueError(f"Line {number} of the ids file '{path}' holds '{token[:40]}', "
                                  "not a task id; write one whole number per line.",
                                  ErrorKind.INVALID)
            if int(token) > MAX_TASK_ID:
                raise RescueError(f"Line {number} of the ids file '{path}' holds '{token[:40]}', "
                                  "larger than any task id can be; write one task id per line.",
                                  ErrorKind.INVALID)
            ids.add(int(token))
    return frozenset(ids)
