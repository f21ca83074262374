"""Pages archived as deltas of the archive's own earlier image, and whole when not known.

Known pages are byte runs (with copies of moved bytes) or, where most of the page changed,
zlib against the earlier image; records of either kind (and archives holding only zlib
deltas, as written before byte runs) expand exactly, and a damaged run is refused.
"""

from __future__ import annotations

import os

from queue_admin_gui.core.archive.page_deltas import (
    LEVEL,
    PageImages,
    decode_delta_transaction,
    encode_delta_transaction,
    expand_delta,
    expand_page,
)
from queue_admin_gui.core.archive.walfile import Frame, Transaction

PAGE = 4096


def page(fill: int, changed: bytes = b"", at: int = 0) -> bytes:
    body = bytearray(bytes([fill]) * PAGE)
    body[at:at + len(changed)] = changed
    return bytes(body)


def transaction(*frames: tuple[int, bytes]) -> Transaction:
    last = len(frames) - 1
    return Transaction(first_frame=1, frames=[
        Frame(number, 10 if index == last else 0, image)
        for index, (number, image) in enumerate(frames)])


def test_a_known_page_is_stored_as_a_small_delta_and_comes_back_exactly() -> None:
    images = PageImages()
    first = page(7, os.urandom(3000), at=1000)  # mostly incompressible content
    second = page(7, first[1000:4000], at=1040)  # the same cells moved by 40 bytes
    whole = encode_delta_transaction(transaction((3, first)), (1, 2, 3), PAGE, images)
    delta = encode_delta_transaction(transaction((3, second)), (1, 2, 3), PAGE, images)
    assert len(delta) < 200 < 3000 < len(whole)
    decoded_whole = decode_delta_transaction(1.0, whole)
    assert decoded_whole.deltas == (False,) and decoded_whole.pages == [(3, first)]
    decoded = decode_delta_transaction(2.0, delta)
    assert decoded.deltas == (True,)
    assert expand_delta(first, decoded.pages[0][1]) == second


def test_a_page_twice_in_one_transaction_is_a_delta_of_the_first() -> None:
    images = PageImages()
    first, second = page(1), page(1, b"again")
    decoded = decode_delta_transaction(0.0, encode_delta_transaction(
        transaction((5, first), (5, second)), (0, 1, 1), PAGE, images))
    assert decoded.deltas == (0, 2)  # whole, then byte runs
    assert len(decoded.pages[1][1]) < 40
    assert expand_page(2, decoded.pages[0][1], decoded.pages[1][1]) == second


def test_forgotten_pages_are_stored_whole() -> None:
    images = PageImages(limit_bytes=2 * PAGE)
    for number in (1, 2, 3):  # page 1 is dropped, least recently used
        images.swap(number, page(number))
    assert len(images) == 2
    assert images.swap(1, page(9))[1] is None  # no earlier image: stored whole
    assert images.swap(3, page(3, b"x"))[1] == page(3)  # a delta against it
    images.clear()
    assert len(images) == 0 and images.swap(3, page(3))[1] is None


def test_records_written_at_any_zlib_level_decode_exactly() -> None:
    """Archives written at level 6 (before) and at today's level decode with the same code."""
    first = page(7, os.urandom(2000), at=500)
    second = page(7, first[500:2500], at=520)
    third = page(7, b"status=done", at=3000)
    for level in (6, 1, LEVEL, 9):
        images = PageImages(level=level, runs_share=0)  # zlib deltas only, as before
        records = [encode_delta_transaction(transaction((3, image)), (1, 2, 3), PAGE, images)
                   for image in (first, second, third)]
        decoded = [decode_delta_transaction(float(index), record)
                   for index, record in enumerate(records)]
        assert [item.deltas for item in decoded] == [(False,), (True,), (True,)]
        rebuilt = decoded[0].pages[0][1]
        assert rebuilt == first
        for item, expected in zip(decoded[1:], (second, third), strict=True):
            rebuilt = expand_delta(rebuilt, item.pages[0][1])
            assert rebuilt == expected, level


def test_a_page_read_as_a_view_is_remembered_as_a_copy_of_its_own() -> None:
    """The log is read into one buffer and frames are views into it: the image the archive
    deltas against must not change when that buffer is reused, nor keep it alive."""
    buffer = bytearray(page(4, b"first version", at=100))
    images = PageImages()
    images.swap(8, memoryview(buffer))
    original = bytes(buffer)
    buffer[100:200] = b"\xff" * 100  # the buffer's next use
    second = page(4, b"second version", at=100)
    _, earlier = images.swap(8, second)
    assert earlier == original  # what the next delta is made against
