from __future__ import annotations

from queue_admin_gui.ui.icons import ICON_NAMES, icon, icon_path


def test_every_icon_exists_and_loads(qapp) -> None:
    for name in ICON_NAMES:
        assert icon_path(name).is_file(), name
        assert not icon(name).isNull(), name


def test_a_missing_icon_is_empty_not_an_error(qapp) -> None:
    assert icon("no-such-icon").isNull()
