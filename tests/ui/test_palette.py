"""Every colour of the window comes from ui/palette.py: one meaning, one colour."""

from __future__ import annotations

import re
from pathlib import Path

UI = Path(__file__).resolve().parents[2] / "queue_admin_gui" / "ui"
HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}\b")


def test_no_widget_module_writes_a_colour_of_its_own() -> None:
    offenders = {path.name: HEX_COLOUR.findall(path.read_text(encoding="utf-8"))
                 for path in sorted(UI.glob("*.py")) if path.name != "palette.py"}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_palette_names_each_colour_once() -> None:
    from queue_admin_gui.ui import palette

    values = [value for name, value in vars(palette).items()
              if name.isupper() and isinstance(value, str)]
    aliases = {"BAD_TEXT"}  # the same red as RED on purpose: damage reads alike everywhere
    named = [value for name, value in vars(palette).items()
             if name.isupper() and isinstance(value, str) and name not in aliases]
    assert len(named) == len(set(named))
    assert all(HEX_COLOUR.fullmatch(value) for value in values)
