"""What archiving a changed page costs: each page kind of the frame log, on a queue's own pages.

Run from the project root::

    python -m tests.bench.bench_page_deltas [--tasks 100000] [--rate 500] [--seconds 20]
        [--rounds 5] [--keep PATH] [--reuse PATH]

A queue of ``--tasks`` tasks is generated and four writer processes commit ``--rate``
transactions a second for ``--seconds`` (the writers of ``bench_archiver_cost``: one new task
and its log row per transaction). A reader keeps a read transaction open on the database
meanwhile, so no checkpoint copies the log back and it is never restarted: at the end the
log holds every committed transaction. They are read back with the archiver's own reader,
and then, in memory, in ``--rounds`` rounds (each encoding in turn in every round; the
median is printed):

* encoded as the archiver encodes them (the transactions of one pass at a time, 75 at 500
  commits a second), with a cache of page images that starts empty (a new generation): once
  as archives were written before byte runs (every known page zlib-compressed against its
  earlier image, ``_DELTA``) and once as they are now (byte runs and copies, ``_DELTA``
  only for a page that mostly changed);
* decoded, and applied in order over the snapshot's pages as a rebuild applies them; the
  result must be every page as the writers left it.

Prints, per encoding: the CPU time to encode, per page (whole pages included, as the
archiver pays them), and to apply, per delta page; the bytes of a transaction record; the
pages of each kind.
"""
from __future__ import annotations

import argparse
import pickle
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from queue_admin_gui.core.archive.page_deltas import (
    RUNS_SHARE,
    PageImages,
    decode_delta_transaction,
    encode_delta_transactions,
    expand_page,
)
from queue_admin_gui.core.archive.store import ArchivedTransaction
from queue_admin_gui.core.archive.walfile import (
    Frame,
    Transaction,
    read_committed,
    read_header,
)

from .bench_archiver_cost import WRITER_SCRIPT, WRITERS
from .bench_report import machine_info
from .bench_writers import generate_queue


def capture(folder: Path, tasks: int, rate: float, seconds: float
            ) -> tuple[int, dict[int, bytes], list[list[tuple[int, int, bytes]]]]:
    """(page size, the snapshot's pages, each transaction's frames) of a writers' run."""
    db = folder / "queue.db"
    generate_queue(db, tasks)
    snapshot = db.read_bytes()
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sqlite_master").fetchone()  # holds the log
    script = folder / "writer.py"
    script.write_text(WRITER_SCRIPT, encoding="utf-8")
    writers = [subprocess.Popen([sys.executable, str(script), str(db), str(rate / WRITERS),
                                 str(seconds), str(folder / f"writer-{number}.out")])
               for number in range(WRITERS)]
    for writer in writers:
        writer.wait()
    commits = sum(int((folder / f"writer-{number}.out").read_text().split()[0])
                  for number in range(WRITERS))
    wal = db.with_name(db.name + "-wal")
    header, _size = read_header(wal)
    assert header is not None
    transactions: list[list[tuple[int, int, bytes]]] = []
    frame, checksum = 0, header.checksum
    while True:
        found = read_committed(wal, header, frame, checksum)
        if not found.transactions:
            break
        for transaction in found.transactions:
            transactions.append([(item.page_number, item.commit_size, bytes(item.page))
                                 for item in transaction.frames])
        frame, checksum = found.end_frame, found.checksum
    reader.execute("ROLLBACK")
    reader.close()
    if len(transactions) != commits:
        raise RuntimeError(f"the log holds {len(transactions)} transactions, the writers "
                           f"committed {commits}: it was checkpointed")
    size = header.page_size
    pages = {index // size + 1: snapshot[index:index + size]
             for index in range(0, len(snapshot), size)}
    return size, pages, transactions


def as_transactions(frames: list[list[tuple[int, int, bytes]]]) -> list[Transaction]:
    """The captured frames as the archiver's reader gives them."""
    return [Transaction(first_frame=1, frames=[Frame(number, commit, page)
                                               for number, commit, page in transaction])
            for transaction in frames]


#: Transactions the archiver encodes together: what one pass finds at 500 commits a second
#: (a pass every 0.15 s).
BATCH = 75


def encode_all(transactions: list[Transaction], page_size: int, runs_share: float
               ) -> tuple[float, list[bytes]]:
    """(CPU seconds, payloads) of encoding every transaction, :data:`BATCH` at a time, with
    a new cache."""
    images = PageImages(runs_share=runs_share)
    payloads: list[bytes] = []
    started = time.process_time()
    for first in range(0, len(transactions), BATCH):
        payloads.extend(encode_delta_transactions(transactions[first:first + BATCH],
                                                  (1, 2, 3), page_size, images))
    return time.process_time() - started, payloads


def apply_all(snapshot: dict[int, bytes], records: list[ArchivedTransaction]
              ) -> tuple[float, dict[int, bytes], Counter[int]]:
    """(CPU seconds, the pages after, pages per kind) of applying in order, as a rebuild does.

    The seconds are those of the whole loop (whole pages only stored), as a rebuild spends
    them apart from its reads and writes.
    """
    pages = dict(snapshot)
    kinds: Counter[int] = Counter()
    blank = b""
    started = time.process_time()
    for record in records:
        for index, (number, image) in enumerate(record.pages):
            kind = record.deltas[index]
            kinds[kind] += 1
            if kind:
                image = expand_page(kind, pages.get(number, blank), image)
            pages[number] = image
    return time.process_time() - started, pages, kinds


ENCODINGS = (("zlib against the earlier image (before)", 0.0),
             ("byte runs and copies (now)", RUNS_SHARE))


def measure(page_size: int, snapshot: dict[int, bytes],
            frames: list[list[tuple[int, int, bytes]]], rounds: int) -> list[dict[str, float]]:
    """Encode and apply with each encoding, in turn, ``rounds`` times; per encoding the
    medians (CPU time a page to encode, a delta page to apply), bytes and page kinds."""
    transactions = as_transactions(frames)
    expected = dict(snapshot)
    for transaction in frames:
        for number, _commit, page in transaction:
            expected[number] = page
    page_count = sum(len(transaction) for transaction in frames)
    encodes: list[list[float]] = [[] for _ in ENCODINGS]
    applies: list[list[float]] = [[] for _ in ENCODINGS]
    kinds: list[Counter[int]] = [Counter() for _ in ENCODINGS]
    sizes = [0] * len(ENCODINGS)
    for _ in range(rounds):
        for index, (name, share) in enumerate(ENCODINGS):
            spent, payloads = encode_all(transactions, page_size, share)
            encodes[index].append(spent)
            records = [decode_delta_transaction(0.0, payload) for payload in payloads]
            spent, pages, kinds[index] = apply_all(snapshot, records)
            if pages != expected:
                raise RuntimeError(f"{name}: the pages applied are not the pages written")
            applies[index].append(spent)
            sizes[index] = sum(len(payload) for payload in payloads)
    rows = []
    for index, (name, _share) in enumerate(ENCODINGS):
        deltas = sum(count for kind, count in kinds[index].items() if kind)
        rows.append({"name": name,
                     "encode_us": 1e6 * statistics.median(encodes[index]) / page_count,
                     "apply_us": 1e6 * statistics.median(applies[index]) / max(1, deltas),
                     "bytes": sizes[index] / len(frames), "whole": kinds[index][0],
                     "delta": kinds[index][1], "runs": kinds[index][2]})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Capture (or reuse) a writers' run, measure both encodings, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None,
                        help="save the captured pages to this file")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="measure pages saved with --keep instead of capturing anew")
    args = parser.parse_args(argv)
    if args.reuse is not None:
        with open(args.reuse, "rb") as handle:
            page_size, snapshot, frames = pickle.load(handle)  # noqa: S301 (our own file)
    else:
        folder = Path(tempfile.mkdtemp(prefix="bench-page-deltas-"))
        try:
            page_size, snapshot, frames = capture(folder, args.tasks, args.rate, args.seconds)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if args.keep is not None:
            with open(args.keep, "wb") as handle:
                pickle.dump((page_size, snapshot, frames), handle)
    print("; ".join(f"{key}: {value}" for key, value in machine_info(Path.cwd()).items()))
    pages = sum(len(transaction) for transaction in frames)
    print(f"{len(frames):,} transactions, {pages:,} pages ({pages / len(frames):.1f} a "
          f"transaction), {page_size}-byte pages; medians of {args.rounds} rounds\n")
    print("| encoding | encode (µs a page) | apply (µs a delta page) | bytes a transaction |"
          " pages whole / zlib delta / runs |")
    print("|---|---:|---:|---:|---|")
    for row in measure(page_size, snapshot, frames, args.rounds):
        print(f"| {row['name']} | {row['encode_us']:.2f} | {row['apply_us']:.2f} |"
              f" {row['bytes']:,.0f} | {row['whole']:,} / {row['delta']:,} /"
              f" {row['runs']:,} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
