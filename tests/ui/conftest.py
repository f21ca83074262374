"""Shared GUI fixtures: a session that records messages, a demo queue, a window."""

from __future__ import annotations

import pytest

#: The offscreen platform plugin warns about a feature it lacks whenever a top-level window
#: is shown; that says nothing about our code, every other Qt warning still fails a test.
OFFSCREEN_NOISE = r"This plugin does not support propagateSizeHints\(\)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ui/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))
