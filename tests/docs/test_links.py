"""Every relative link and picture in the README and docs/ points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_relative_links_resolve(document: Path) -> None:
    targets = [target for target in LINK.findall(document.read_text(encoding="utf-8"))
               if not re.match(r"[a-z]+:", target) and not target.startswith("#")]
    for target in targets:
        path = (document.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{document.name} links to missing {target}"


def test_the_user_guide_shows_every_tab() -> None:
    guide = (ROOT / "docs" / "USER_GUIDE.md").read_text(encoding="utf-8")
    from queue_admin_gui.ui.main_window import TAB_SPECS

    for key, *_rest in TAB_SPECS:
        assert f"images/tab_{key}.png" in guide
