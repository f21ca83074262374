"""The replay writes the same bytes whether its pages are held in memory or written at once.

A rebuild and compaction both replay through :func:`apply_transactions`; it holds the newest
page images in memory and writes them out in page order. Here the same transactions (whole
pages and deltas of a page rewritten again and again, pages past the end of the file) are
applied with room for one page, with room for all, and without ``os.pread`` (as on
Windows): the files must be identical, and equal to what applying each page at once gives.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from queue_admin_gui.core.archive import replay
from queue_admin_gui.core.archive.page_deltas import compress_delta
from queue_admin_gui.core.archive.store import ArchivedTransaction, CyclePosition
from queue_admin_gui.core.errors import OperationCancelled

PAGE = 512


def transactions(seed: int) -> tuple[bytes, list[ArchivedTransaction], bytes]:
    """A starting file, transactions over it, and the file they must make."""
    rng = random.Random(seed)
    start = bytes(rng.getrandbits(8) for _ in range(PAGE * 6))
    expected = bytearray(start)
    made: list[ArchivedTransaction] = []
    for number in range(60):
        pages: list[tuple[int, bytes]] = []
        deltas: list[bool] = []
        for page in sorted(rng.sample(range(1, 10), 3)):  # pages 7-9 lie past the file's end
            image = bytes(rng.getrandbits(8) for _ in range(16)) * (PAGE // 16)
            offset = (page - 1) * PAGE
            earlier = bytes(expected[offset:offset + PAGE]).ljust(PAGE, b"\0")
            if len(expected) < offset + PAGE:
                expected.extend(bytes(offset + PAGE - len(expected)))
            expected[offset:offset + PAGE] = image
            as_delta = page in (1, 2) or rng.random() < 0.4
            pages.append((page, compress_delta(earlier, image) if as_delta else image))
            deltas.append(as_delta)
        made.append(ArchivedTransaction(float(number), CyclePosition(1, 2, 3, number + 1), 9,
                                        PAGE, pages, tuple(deltas)))
    return start, made, bytes(expected)


@pytest.mark.parametrize("held_pages", [1, 4, 1000])
@pytest.mark.parametrize("positional", [True, False])
def test_the_replay_writes_every_page_as_applying_each_at_once_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_pages: int,
        positional: bool) -> None:
    if not positional:
        monkeypatch.delattr(replay.os, "pread", raising=False)
    start, made, expected = transactions(held_pages)
    target = tmp_path / "replayed.db"
    target.write_bytes(start)
    with open(target, "r+b") as handle:
        applied = replay.apply_transactions(handle, PAGE, made, None, None, "Replaying",
                                            held_bytes=held_pages * PAGE)
        handle.seek(0)
        assert handle.read() == expected  # the caller's handle sees every page at once
    assert applied.transactions == len(made) and applied.page_count == 9
    assert target.read_bytes() == expected


def test_a_held_limit_below_one_page_still_holds_one_page(tmp_path: Path) -> None:
    start, made, expected = transactions(7)
    target = tmp_path / "replayed.db"
    target.write_bytes(start)
    with open(target, "r+b") as handle:
        applied = replay.apply_transactions(handle, PAGE, made, None, None, "Replaying",
                                            held_bytes=1)
    assert applied.transactions == len(made)
    assert target.read_bytes() == expected


def test_the_replay_looks_at_cancel_every_few_transactions_and_stops_there(
        tmp_path: Path) -> None:
    """Beside the archiver, the look at ``cancelled`` is where validation gives way to it."""
    start, made, _ = transactions(3)
    target = tmp_path / "replayed.db"
    target.write_bytes(start)
    looks: list[int] = []

    def cancelled() -> bool:
        looks.append(len(looks))
        return len(looks) == 3

    with open(target, "r+b") as handle, pytest.raises(OperationCancelled):
        replay.apply_transactions(handle, PAGE, made, None, cancelled, "Replaying")
    assert len(made) >= 3 * replay.CANCEL_EVERY  # so the third look is inside the replay
    assert len(looks) == 3
