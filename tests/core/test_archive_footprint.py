"""Giving freed memory back to the system is harmless everywhere, and done where glibc is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from queue_admin_gui.core.archive import footprint


def test_giving_memory_back_is_harmless_and_says_whether_it_asked() -> None:
    kept = bytearray(1 << 20)
    asked = footprint.give_back_memory()
    assert asked is footprint.give_back_memory()  # the same answer every time
    assert kept == bytearray(1 << 20)  # live memory untouched
    if not sys.platform.startswith("linux"):
        assert asked is False


def test_after_a_burst_freed_on_a_thread_the_memory_goes_back_to_the_system() -> None:
    """In a process of its own: a thread fills an arena of its own with many blocks, frees
    them, and glibc keeps the pages until asked (only where it is glibc)."""
    script = r"""
import sys, threading
sys.path.insert(0, sys.argv[1])
from queue_admin_gui.core.archive.footprint import give_back_memory

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

def burst():
    blocks = [bytes(bytearray(4100)) for _ in range(20000)]
    keep = blocks[::500]  # a few blocks stay, so the arena cannot simply shrink at its top
    del blocks
    globals()["kept"] = keep

thread = threading.Thread(target=burst)
thread.start()
thread.join()
before = anon()
asked = give_back_memory()
print(asked, before, anon())
"""
    if not sys.platform.startswith("linux"):
        return
    root = Path(footprint.__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True,
                          text=True, check=True, timeout=60)
    asked, before, after = done.stdout.split()
    if asked == "False":  # not glibc (musl): nothing to ask
        return
    assert int(before) - int(after) > 40_000  # KiB: most of the 80 MB burst went back

