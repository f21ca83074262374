"""What is damaged in a database file: SQLite's findings grouped by table, index and page.

SQLite's ``integrity_check`` reports each problem as a line ("On tree page 302 cell 4:
...", "row 17 missing from index ix_task_status"), may pack many lines into one result row,
and stops the statement with "database disk image is malformed" when a page it needs is
unreadable, losing what it had found (it is then asked again for fewer lines). A count of
result rows then says "1 problem" where SQLite named a dozen pages.
:func:`read_damage_report` reads every line up to a limit (keeping those read before
SQLite gave up, falling back to the quick check), finds which table or index owns each page
named by walking the b-trees from their root pages in the raw file, and groups the findings
by object, so the admin sees "task_queue (table): pages 126, 127, 250" rather than a wall of
cell numbers.
"""

from __future__ import annotations

import re
import sqlite3
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..database import open_read_only
from ..errors import ErrorKind, QueueAdminError, QueueMaintenanceError, translate_error
from ..progress import CancelCheck, interruptible

#: Lines of SQLite's report read at most: enough to name every damaged page of a real
#: incident, bounded so a file damaged everywhere does not fill memory.
DEFAULT_LINE_LIMIT = 2000
#: Pages of one object listed by number before "and N more".
PAGES_LISTED = 12

_PAGE_PATTERNS = (
    re.compile(r"(?:On tree page|On page|Page|page) (\d+)"),
    re.compile(r"reference to page (\d+)"),
)
_INDEX_PATTERN = re.compile(r"(?:index|UNIQUE index) (\w+)")
_TABLE_PATTERN = re.compile(r"NULL value in (\w+)\.|CHECK constraint failed in (\w+)")


@dataclass(frozen=True)
class DamagedObject:
    """One table or index the check found damage in, with the pages and lines naming it."""

    name: str
    kind: str
    pages: tuple[int, ...]
    problems: int

    def sentence(self) -> str:
        """``"task_queue (table): pages 126, 127 and 250; 45 problems"``."""
        noun = "problem" if self.problems == 1 else "problems"
        if not self.pages:
            return f"{self.name} ({self.kind}): {self.problems} {noun}"
        listed = [str(page) for page in self.pages[:PAGES_LISTED]]
        more = len(self.pages) - len(listed)
        if more:
            pages = f"{', '.join(listed)} and {more} more"
        elif len(listed) > 1:
            pages = f"{', '.join(listed[:-1])} and {listed[-1]}"
        else:
            pages = listed[0]
        word = "page" if len(self.pages) == 1 else "pages"
        if self.kind == ORPHANED[1]:
            return (f"{word.capitalize()} {pages}: cut off from their table or index by the "
                    "damage (no table or index reaches them)")
        return f"{self.name} ({self.kind}): {word} {pages}; {self.problems} {noun}"


@dataclass(frozen=True)
class DamageReport:
    """SQLite's findings for one file, grouped by the object they hit."""

    quick: bool
    lines: list[str]
    objects: list[DamagedObject] = field(default_factory=list)
    #: True when the check stopped at the line limit, so more may be damaged.
    truncated: bool = False
    #: What SQLite said when it could not finish the check, else "".
    stopped: str = ""

    @property
    def ok(self) -> bool:
        """True when the check found nothing wrong."""
        return not self.lines and not self.stopped

    @property
    def shortfall(self) -> str | None:
        """``"found 62 problems"`` when anything was found, else None (for the activity log)."""
        if self.ok:
            return None
        count = len(self.lines)
        return f"found {count} problem{'' if count == 1 else 's'}"

    @property
    def pages(self) -> list[int]:
        """Every page named, in order."""
        return sorted({page for obj in self.objects for page in obj.pages})

    def summary(self) -> str:
        """One sentence: which objects and how many pages are damaged (or that none is)."""
        if self.ok:
            return "No problems found."
        pages = self.pages
        named = [obj for obj in self.objects if obj.kind in ("table", "index")]
        at_least = "at least " if self.truncated or self.stopped else ""
        if not named:
            what = "the file's page structure"
        elif len(named) <= 3:
            what = " and ".join(f"{obj.kind} {obj.name}" for obj in named)
        else:
            what = f"{len(named)} tables and indexes"
        where = (f" on {at_least}{len(pages)} page{'' if len(pages) == 1 else 's'}"
                 if pages else "")
        count = len(self.lines)
        return (f"Damage found in {what}{where} ({count} finding{'' if count == 1 else 's'} "
                "from SQLite).")


def read_damage_report(db_path: str | Path, *, quick: bool = False,
                       cancelled: CancelCheck | None = None,
                       limit: int = DEFAULT_LINE_LIMIT) -> DamageReport:
    """Run SQLite's integrity (or quick) check of ``db_path`` and group what it found.

    Read-only. The lines read before SQLite gives up on a damaged page are kept; when the
    full check stops at once, the quick check (which reads fewer structures) is tried.
    """
    path = Path(db_path)
    lines: list[str] = []
    stopped = ""
    for pragma_quick in ((quick,) if quick else (False, True)):
        for bound in _smaller_limits(limit):
            found, bound_stopped = _check_lines(path, pragma_quick, cancelled, bound)
            stopped = stopped or bound_stopped
            if found or not bound_stopped:
                break
        lines.extend(line for line in found if line not in lines)
        if not stopped:
            break  # the full check finished: the quick check would find nothing more
    lines = lines[:limit]
    truncated = len(lines) >= limit
    owners = page_owners(path)
    return DamageReport(quick, lines, group_findings(lines, owners), truncated, stopped)


def _smaller_limits(limit: int) -> list[int]:
    """The limit, then halves of it down to about 25.

    SQLite builds its findings before returning any; a check allowed to go on may reach a
    page it cannot read and lose them all.
    """
    bounds = [max(1, int(limit))]
    while bounds[-1] > 25:
        bounds.append(bounds[-1] // 2)
    return bounds


def _check_lines(path: Path, quick: bool, cancelled: CancelCheck | None,
                 limit: int) -> tuple[list[str], str]:
    action = f"Integrity check of '{path}'"
    pragma = "quick_check" if quick else "integrity_check"
    try:
        connection = open_read_only(path, error_class=QueueMaintenanceError)
    except QueueMaintenanceError as error:
        if error.kind is ErrorKind.CORRUPT:
            return [], str(error.__cause__ or error)
        raise
    lines: list[str] = []
    try:
        with interruptible(connection, cancelled):
            cursor = connection.execute(f"PRAGMA {pragma}({int(limit)})")
            try:
                for (text,) in cursor:
                    lines.extend(_split_lines(str(text)))
            except sqlite3.DatabaseError as error:
                translated = translate_error(error, action, QueueMaintenanceError)
                if translated.kind is not ErrorKind.CORRUPT:
                    raise translated from error
                return lines[:limit], str(error)
        return lines[:limit], ""
    except sqlite3.DatabaseError as error:
        translated = translate_error(error, action, QueueMaintenanceError)
        if translated.kind is ErrorKind.CORRUPT:
            return lines[:limit], str(error)
        raise translated from error
    finally:
        connection.close()


def _split_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if line.strip() and line.strip() != "ok" and not line.startswith("*** in database")]


def group_findings(lines: Iterable[str], owners: dict[int, tuple[str, str]]
                   ) -> list[DamagedObject]:
    """Group SQLite's problem lines by the table or index they concern.

    A line naming a page goes to the page's owner (``owners``: page -> (name, kind)); a line
    naming an index or a table goes to it; anything else to "the file".
    """
    pages: dict[tuple[str, str], set[int]] = {}
    counts: dict[tuple[str, str], int] = {}
    for line in lines:
        key, page = _owner_of(line, owners)
        counts[key] = counts.get(key, 0) + 1
        found = pages.setdefault(key, set())
        if page is not None:
            found.add(page)
    objects = [DamagedObject(name, kind, tuple(sorted(pages[(name, kind)])),
                             counts[(name, kind)]) for name, kind in counts]
    objects.sort(key=lambda obj: (obj.kind in ("file", ORPHANED[1]), -obj.problems, obj.name))
    return objects


#: The group of pages SQLite found no table or index pointing to ("Page 33 is never used").
ORPHANED = ("pages no table or index reaches", "orphaned")


def _owner_of(line: str, owners: dict[int, tuple[str, str]]
              ) -> tuple[tuple[str, str], int | None]:
    orphan = re.match(r"Page (\d+) is never used", line)
    if orphan:
        return ORPHANED, int(orphan.group(1))
    for pattern in _PAGE_PATTERNS:
        match = pattern.search(line)
        if match:
            page = int(match.group(1))
            return owners.get(page, ("unknown object", "file")), page
    index = _INDEX_PATTERN.search(line)
    if index:
        return (index.group(1), "index"), None
    table = _TABLE_PATTERN.search(line)
    if table:
        return (table.group(1) or table.group(2), "table"), None
    return ("the file", "file"), None


def page_owners(db_path: str | Path) -> dict[int, tuple[str, str]]:
    """Which table or index each b-tree page belongs to, read from the raw file.

    Walks every object's b-tree from its root page through the interior pages' child
    pointers; a damaged interior page ends its branch (its children stay unowned), a child
    pointer outside the file is skipped. Empty when the schema cannot be read.
    """
    path = Path(db_path)
    try:
        connection = open_read_only(path)
    except QueueAdminError:
        return {}
    try:
        roots = [(str(name), str(kind), int(root)) for name, kind, root in connection.execute(
            "SELECT name, type, rootpage FROM sqlite_master WHERE rootpage > 0")]
        page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
    except sqlite3.DatabaseError:
        return {}
    finally:
        connection.close()
    owners: dict[int, tuple[str, str]] = {1: ("sqlite_master", "table")}
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            page_count = size // page_size
            for name, kind, root in [("sqlite_master", "table", 1), *roots]:
                _walk(handle, page_size, page_count, root, (name, kind), owners)
    except OSError:
        return owners
    return owners


def _walk(handle: object, page_size: int, page_count: int, root: int,
          owner: tuple[str, str], owners: dict[int, tuple[str, str]]) -> None:
    pending = [root]
    seen: set[int] = set()
    while pending:
        page = pending.pop()
        if page in seen or not 1 <= page <= page_count:
            continue
        seen.add(page)
        owners.setdefault(page, owner)
        handle.seek((page - 1) * page_size)  # type: ignore[attr-defined]
        data = handle.read(page_size)  # type: ignore[attr-defined]
        header = 100 if page == 1 else 0
        if len(data) < header + 12 or data[header] not in (2, 5):
            continue  # a leaf, or not a b-tree page at all
        cells = struct.unpack_from(">H", data, header + 3)[0]
        pending.append(struct.unpack_from(">I", data, header + 8)[0])
        for cell in range(min(cells, (page_size - header - 12) // 2)):
            offset = struct.unpack_from(">H", data, header + 12 + 2 * cell)[0]
            if offset + 4 <= len(data):
                pending.append(struct.unpack_from(">I", data, offset)[0])


__all__ = ["DamageReport", "DamagedObject", "group_findings", "page_owners",
           "read_damage_report"]
