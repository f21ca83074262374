"""Level files: each page's last image per stretch of a generation, so any instant is near.

The replay image (:mod:`.images`) serves instants after it; an instant before it would
otherwise replay every transaction since the snapshot. While compaction carries the image
on, it cuts the generation's transactions into stretches (every :data:`LEVEL_TRANSACTIONS`
transactions, and at the end of each run) and writes, per stretch, one level file holding
the last image of every page the stretch wrote: the page's bytes in the image right after
the stretch's last transaction, which is what the rebuild's own replay holds there. A
rebuild to an instant before the image copies the snapshot, writes the level files of the
whole stretches before the instant (newest first, each page once, in page order), and
replays only the transactions after the last of them.

Files, in the generation's ``levels`` folder, named by the transactions they stand for::

    level-<first>-<last>.pages   a head (magic, format, page size, page count), the pages
                                 in page order, each compressed, then one entry per page
                                 (its number, compressed length, and the CRC-32 of its
                                 bytes)
    level-<first>-<last>.json    where the stretch starts and stops (as image.json: frame
                                 log, byte offset, the CRC-32 of that frame log up to there,
                                 the sealed frame logs before it, the WAL position the next
                                 record must follow), its transactions, the snapshot and the
                                 generation it belongs to, the .pages file's size and CRC-32,
                                 and the record's own checksum

Nothing in a level file is trusted unread. A rebuild uses a level only when its record
passes its checksum and names this generation and its snapshot, the stretches are
contiguous from the snapshot, the frame logs the level was built from are still those
bytes (sealed sizes and CRCs; the open frame log's CRC up to where it stopped), the whole
.pages file matches its recorded size and CRC-32, and each page's bytes match their own
CRC-32 as they are written. A level that fails any of that ends the run of levels used
there: the rest is replayed from the records, as before, and the result says why; a
failure found while the pages are written (the file changed after it was checked) sends
the rebuild back to the snapshot and every record. A damaged level costs time, never an
instant. Compaction writes a level's .pages file, flushes it, and only then its record, so
a crash leaves a level no rebuild uses; a compaction that starts the image again from the
snapshot removes every level first and writes them again.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files.durable import fsync_directory, retry_on_windows_lock, write_json_atomically
from ..progress import CancelCheck, raise_if_cancelled
from .store import (
    CHECKSUM_KEY,
    LEVELS_FOLDER,
    ArchivedTransaction,
    Generation,
    json_checksum,
)

LEVEL_FORMAT = 1
#: Transactions per stretch: a rebuild replays at most about this many after its last level.
LEVEL_TRANSACTIONS = 20_000
_MAGIC = b"QALV"
_HEAD = struct.Struct(">4sIII")
_ENTRY = struct.Struct(">III")
#: zlib level of a level's pages: its pages are expanded by every rebuild and written once.
_COMPRESSION = 1
_NAME = re.compile(r"^level-(\d+)-(\d+)\.json$")
_CRC_CHUNK = 16 * 1024 * 1024
#: Pages written to the rebuilt file in one call when their numbers follow each other.
_RUN_PAGES = 256
#: Pages expanded before they are written out together.
_EXPAND_PAGES = 2048


class LevelDamage(Exception):
    """A level file failed a check while its pages were being written."""


@dataclass(frozen=True)
class Level:
    """What a level's record says: every page's last image over a stretch of transactions."""

    path: Path
    #: Transactions before the stretch (its first is the one after them).
    first: int
    #: Where the stretch stops, as :class:`.images.ReplayImage` records it.
    segment: str
    offset: int
    segment_crc: int
    sealed: dict[str, Any]
    chain: list[int] | None
    #: Transactions up to the stretch's end (counted from the snapshot).
    transactions: int
    last_stamp: float
    state_seen: float
    database_pages: int
    page_size: int
    pages: int
    size_bytes: int
    crc32: int


def levels_folder(generation: Generation) -> Path:
    """The folder holding a generation's level files."""
    return generation.folder / LEVELS_FOLDER


def _name(first: int, last: int) -> str:
    return f"level-{first:010d}-{last:010d}"


def stop_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Where a record (image.json or a level's) says the replay stopped, typed.

    The fields :class:`Level` and :class:`.images.ReplayImage` share: the frame log and
    offset the next record is read from and that log's CRC up to there, the sealed frame
    logs before it, the WAL position the next transaction must follow, the transactions
    held, when their last was seen, and the database's size then. Raises KeyError,
    TypeError or ValueError for a missing or wrong field.
    """
    return {
        "segment": str(data["segment"]), "offset": int(data["offset"]),
        "segment_crc": int(data["segment_crc"]), "sealed": dict(data["sealed"]),
        "chain": [int(value) for value in data["chain"]] if data["chain"] else None,
        "transactions": int(data["transactions"]), "last_stamp": float(data["last_stamp"]),
        "state_seen": float(data["state_seen"]),
        "database_pages": int(data["database_pages"]), "page_size": int(data["page_size"]),
    }


def changed_frame_log(sealed: dict[str, Any], generation: Generation) -> str | None:
    """The first sealed frame log a record names that is no longer the generation's, or None."""
    recorded = generation.data.get("segments") or {}
    return next((log for log, info in sealed.items() if recorded.get(log) != info), None)


def read_levels(generation: Generation, expected_snapshot: str | None
                ) -> tuple[list[Level], dict[int, str]]:
    """Every level whose record passes its checks, and why others fail (by first transaction).

    The .pages files are not read here.
    """
    folder = levels_folder(generation)
    found: list[Level] = []
    problems: dict[int, str] = {}
    try:
        names = sorted(item.name for item in folder.iterdir())
    except OSError:
        return found, problems
    for name in names:
        matched = _NAME.match(name)
        if matched is None:
            continue
        first = int(matched.group(1))
        record = folder / name
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            problems[first] = f"{name} cannot be read ({error})"
            continue
        if not isinstance(data, dict) or data.get(CHECKSUM_KEY) != json_checksum(data):
            problems[first] = f"{name} fails its checksum"
            continue
        if data.get("format") != LEVEL_FORMAT:
            problems[first] = f"{name} is of format {data.get('format')!r}, not read here"
            continue
        if (data.get("generation") != generation.id
                or data.get("snapshot_sha256") != expected_snapshot):
            problems[first] = f"{name} belongs to another generation or snapshot"
            continue
        try:
            level = Level(path=record.with_suffix(".pages"), first=int(data["first"]),
                          **stop_fields(data), pages=int(data["pages"]),
                          size_bytes=int(data["size_bytes"]), crc32=int(data["crc32"]))
        except (KeyError, TypeError, ValueError) as error:
            problems[first] = f"{name} lacks a field or holds a wrong one ({error})"
            continue
        if level.first != first or name != _name(level.first, level.transactions) + ".json":
            problems[first] = f"{name} does not hold the stretch its name gives"
            continue
        changed = changed_frame_log(level.sealed, generation)
        if changed is not None:
            problems[first] = (f"the frame log {changed} is not the one {name} was made from")
            continue
        found.append(level)
    return found, problems


def contiguous(levels: list[Level], problems: dict[int, str]
               ) -> tuple[list[Level], str | None]:
    """The run of levels from the snapshot on, each starting where the last stopped.

    Returns the run and, when a level after it is missing or failed its record's checks,
    why the run ends there.
    """
    by_first: dict[int, Level] = {}
    for level in levels:
        if level.transactions > level.first:
            by_first.setdefault(level.first, level)
    run: list[Level] = []
    at = 0
    while (level := by_first.get(at)) is not None:
        run.append(level)
        at = level.transactions
    if at in problems:
        return run, problems[at]
    if any(first > at for first in [*by_first, *problems]):
        return run, (f"the level file holding transaction {at + 1:,} on is missing; a later "
                     "one is there")
    return run, None


def usable_levels(generation: Generation, moment: float, limit: int | None,
                  expected_snapshot: str | None) -> tuple[list[Level], str | None]:
    """The levels a rebuild of ``moment`` may start from, oldest first, and why it stops early.

    ``generation`` must have been checked (:func:`.store.check_generation`). Only whole
    stretches whose last transaction was seen at or before ``moment`` (and, with ``limit``,
    within that many transactions) and within the checked stretch are used; the frame logs
    each was built from are proven unchanged (one pass per frame log). The .pages files are
    checked by :func:`check_level_files`.
    """
    levels, problems = read_levels(generation, expected_snapshot)
    covered = generation.covered_until
    eligible = [level for level in levels
                if level.state_seen <= moment and covered is not None
                and level.last_stamp <= covered
                and (limit is None or level.transactions <= limit)]
    run, problem = contiguous(levels, problems)
    wanted = {id(level) for level in eligible}
    kept: list[Level] = []
    for level in run:
        if id(level) not in wanted:
            problem = None  # the run reaches past the instant: nothing further was needed
            break
        kept.append(level)
    if not kept:
        return [], problem if run or problem else None
    proven, why = _prove_frame_logs(generation, kept)
    return proven, why or problem


def _prove_frame_logs(generation: Generation, levels: list[Level]
                      ) -> tuple[list[Level], str | None]:
    """The levels whose frame-log prefix CRCs still hold, up to the first that does not."""
    wanted: dict[str, set[int]] = {}
    for level in levels:
        if level.offset > 0 or level.segment_crc != 0:
            wanted.setdefault(level.segment, set()).add(level.offset)
    crcs: dict[tuple[str, int], int | None] = {}
    for segment, offsets in wanted.items():
        try:
            crcs.update(((segment, offset), crc) for offset, crc in
                        prefix_crcs(generation.folder / segment, sorted(offsets)).items())
        except OSError:
            crcs.update(((segment, offset), None) for offset in offsets)
    for index, level in enumerate(levels):
        if level.offset == 0 and level.segment_crc == 0:
            continue
        if crcs.get((level.segment, level.offset)) != level.segment_crc:
            return levels[:index], (f"the frame log {level.segment} is not the one "
                                    f"{level.path.stem} was made from")
    return levels, None


def prefix_crcs(path: Path, offsets: list[int]) -> dict[int, int | None]:
    """The CRC-32 of a file's first ``offset`` bytes for each (ascending) offset, in one pass.

    None for an offset past the file's end.
    """
    found: dict[int, int | None] = {}
    crc = 0
    done = 0
    with open(path, "rb") as handle:
        for offset in offsets:
            while done < offset:
                chunk = handle.read(min(offset - done, _CRC_CHUNK))
                if not chunk:
                    break
                crc = zlib.crc32(chunk, crc)
                done += len(chunk)
            found[offset] = crc if done == offset else None
    return found


def check_level_files(levels: list[Level], cancelled: CancelCheck | None, action: str
                      ) -> tuple[list[Level], str | None]:
    """The levels whose .pages file matches its size and CRC-32, up to the first that fails."""
    for index, level in enumerate(levels):
        problem = _file_problem(level, cancelled, action)
        if problem is not None:
            return levels[:index], problem
    return levels, None


def _file_problem(level: Level, cancelled: CancelCheck | None, action: str) -> str | None:
    crc = 0
    size = 0
    try:
        with open(level.path, "rb", buffering=0) as handle:
            while chunk := handle.read(_CRC_CHUNK):
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                raise_if_cancelled(cancelled, action)
    except OSError as error:
        return f"{level.path.name} cannot be read ({error.strerror or error})"
    if size != level.size_bytes or crc != level.crc32:
        return f"{level.path.name} fails its checksum"
    return None


def write_levels(fd: int, page_size: int, levels: list[Level],
                 cancelled: CancelCheck | None, action: str) -> None:
    """Write each page's newest image the levels hold into the open file, in page order.

    Raises :class:`LevelDamage` when a level's head or a page fails its check (the file is
    then partly written: the caller starts again from the snapshot).
    """
    maps: list[mmap.mmap] = []
    names: list[str] = []
    try:
        chosen: dict[int, tuple[int, int, int, int]] = {}
        for index in range(len(levels) - 1, -1, -1):
            level = levels[index]
            mapped = _map(level)
            maps.append(mapped)
            names.append(level.path.name)
            if len(mapped) < _HEAD.size:
                raise LevelDamage(f"{level.path.name} has no head")
            magic, version, size, count = _HEAD.unpack_from(mapped, 0)
            index_at = len(mapped) - count * _ENTRY.size
            if (magic != _MAGIC or version != LEVEL_FORMAT or size != page_size
                    or count != level.pages or index_at < _HEAD.size):
                raise LevelDamage(f"{level.path.name} has a wrong head")
            position = _HEAD.size
            for number, length, crc in _ENTRY.iter_unpack(mapped[index_at:]):
                if number not in chosen:
                    chosen[number] = (len(maps) - 1, position, length, crc)
                position += length
            if position != index_at:
                raise LevelDamage(f"{level.path.name} does not hold the pages its index lists")
        # Expanded and written in page order, a chunk at a time. (Two helper threads
        # expanding ahead were measured slower, 2.1 s against 1.5 s for 123,000 pages: zlib
        # releases the GIL, but each page's Python work between the calls needs it back.)
        pages: list[tuple[int, bytes]] = []
        for number in sorted(chosen):
            which, position, length, crc = chosen[number]
            try:
                page = zlib.decompress(maps[which][position:position + length])
            except zlib.error as error:
                raise LevelDamage(f"page {number} of {names[which]} fails its checksum "
                                  f"({error})") from error
            if len(page) != page_size or zlib.crc32(page) != crc:
                raise LevelDamage(f"page {number} of {names[which]} fails its checksum")
            pages.append((number, page))
            if len(pages) >= _EXPAND_PAGES:
                _write_pages(fd, page_size, pages)
                pages = []
                raise_if_cancelled(cancelled, action)
        _write_pages(fd, page_size, pages)
    finally:
        for mapped in maps:
            mapped.close()


def _map(level: Level) -> mmap.mmap:
    try:
        with open(level.path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size != level.size_bytes:
                raise LevelDamage(f"{level.path.name} changed size after it was checked")
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as error:
        raise LevelDamage(f"{level.path.name} cannot be read ({error})") from error


def _write_pages(fd: int, page_size: int, pages: list[tuple[int, bytes]]) -> None:
    """Write pages (in page order), one call per run of consecutive numbers."""
    run: list[bytes] = []
    run_start = 0
    for number, page in pages:
        if run and (number != run_start + len(run) or len(run) >= _RUN_PAGES):
            _write_run(fd, page_size, run_start, run)
            run = []
        if not run:
            run_start = number
        run.append(page)
    if run:
        _write_run(fd, page_size, run_start, run)


def _write_run(fd: int, page_size: int, first: int, pages: list[bytes]) -> None:
    data = b"".join(pages)
    written = os.pwrite(fd, data, (first - 1) * page_size)
    if written != len(data):
        raise OSError(f"a short write of pages {first} to {first + len(pages) - 1}")


# -- writing, by compaction ---------------------------------------------------------------


def remove_levels(generation: Generation) -> None:
    """Remove every level file of a generation (compaction is starting over)."""
    folder = levels_folder(generation)
    if not folder.is_dir():
        return
    for item in sorted(folder.iterdir()):
        if item.suffix == ".json":  # records first: a level without one is never used
            retry_on_windows_lock(lambda item=item: item.unlink(missing_ok=True))
    for item in sorted(folder.iterdir()):
        retry_on_windows_lock(lambda item=item: item.unlink(missing_ok=True))
    fsync_directory(folder)


def remove_unrecorded(generation: Generation) -> None:
    """Remove .pages files without a record and leftovers of an interrupted write."""
    folder = levels_folder(generation)
    if not folder.is_dir():
        return
    for item in folder.iterdir():
        unrecorded = item.suffix == ".pages" and not item.with_suffix(".json").exists()
        if unrecorded or item.name.endswith((".partial", ".tmp")):
            with contextlib.suppress(OSError):
                retry_on_windows_lock(lambda item=item: item.unlink(missing_ok=True))


def level_bytes(generation: Generation) -> tuple[int, int]:
    """How many level files a generation holds, and their bytes on disk (records included)."""
    count = size = 0
    with contextlib.suppress(OSError):
        for item in levels_folder(generation).iterdir():
            with contextlib.suppress(OSError):
                size += item.stat().st_size
            count += item.suffix == ".pages"
    return count, size


class Stretch:
    """The pages written since the current stretch began, for its level file."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.touched: set[int] = set()
        self.ended = False

    def take(self, transactions: Iterator[ArchivedTransaction], count: int
             ) -> Iterable[ArchivedTransaction]:
        """Up to ``count`` transactions, noting their pages; :attr:`ended` once none are left."""
        for _ in range(count):
            transaction = next(transactions, None)
            if transaction is None:
                self.ended = True
                return
            self.touched.update(number for number, _ in transaction.pages)
            yield transaction


def write_level(generation: Generation, fd: int, page_size: int, stretch: Stretch,
                end: dict[str, Any], expected_snapshot: str | None,
                cancelled: CancelCheck | None, action: str) -> int:
    """Write one stretch's level file from the image's pages (read at ``fd``); its bytes.

    ``end`` holds where the stretch stops (segment, offset, segment_crc, sealed, chain,
    transactions, last_stamp, state_seen, database_pages). The .pages file is flushed to
    the disk before its record is written.
    """
    folder = levels_folder(generation)
    folder.mkdir(exist_ok=True)
    stem = _name(stretch.first, int(end["transactions"]))
    pages_path = folder / (stem + ".pages")
    partial = folder / (stem + ".pages.partial")
    numbers = sorted(stretch.touched)
    entries: list[bytes] = []
    crc = 0
    size = 0
    with open(partial, "wb") as handle:

        def put(part: bytes) -> None:
            nonlocal crc, size
            handle.write(part)
            crc = zlib.crc32(part, crc)
            size += len(part)

        put(_HEAD.pack(_MAGIC, LEVEL_FORMAT, page_size, len(numbers)))
        for done, number in enumerate(numbers):  # one page in memory at a time
            page = os.pread(fd, page_size, (number - 1) * page_size).ljust(page_size, b"\0")
            body = zlib.compress(page, _COMPRESSION)
            entries.append(_ENTRY.pack(number, len(body), zlib.crc32(page)))
            put(body)
            if done % 4096 == 0:
                raise_if_cancelled(cancelled, action)
        put(b"".join(entries))
        handle.flush()
        os.fsync(handle.fileno())
    retry_on_windows_lock(lambda: os.replace(partial, pages_path))
    data: dict[str, Any] = {"format": LEVEL_FORMAT, "generation": generation.id,
                            "snapshot_sha256": expected_snapshot, "first": stretch.first,
                            **end, "page_size": page_size, "pages": len(numbers),
                            "size_bytes": size, "crc32": crc}
    data[CHECKSUM_KEY] = json_checksum(data)
    write_json_atomically(folder / (stem + ".json"), data)
    fsync_directory(folder)
    return size


def chain_reaches(generation: Generation, transactions: int, expected_snapshot: str | None,
                  cancelled: CancelCheck | None, action: str) -> bool:
    """True when intact levels stand for every transaction up to ``transactions``."""
    levels, problems = read_levels(generation, expected_snapshot)
    run, _ = contiguous(levels, problems)
    if (run[-1].transactions if run else 0) != transactions:
        return False
    proven, problem = _prove_frame_logs(generation, run)
    if problem is not None:
        return False
    _, problem = check_level_files(proven, cancelled, action)
    return problem is None

