"""docs/ARCHITECTURE.md draws the engine as it is: every package it names exists, and every
package and loose module of core/ is named there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "queue_admin_gui" / "core"
ARCHITECTURE = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")


def test_every_package_named_exists_and_every_package_is_named() -> None:
    named = set(re.findall(r"`core/([a-z_]+)/`", ARCHITECTURE))
    existing = {path.parent.name for path in CORE.glob("*/__init__.py")}
    assert named - existing == set(), f"ARCHITECTURE.md names missing packages: {named - existing}"
    assert existing - named == set(), f"packages ARCHITECTURE.md leaves out: {existing - named}"


def test_every_loose_module_of_the_engine_is_named() -> None:
    named = set(re.findall(r"`core/([a-z_]+)\.py`", ARCHITECTURE)) - {"__init__"}
    existing = {path.stem for path in CORE.glob("*.py") if path.name != "__init__.py"}
    assert existing - named == set(), f"loose modules left out: {existing - named}"
    assert named - existing == set(), f"ARCHITECTURE.md names missing modules: {named - existing}"


def test_the_feature_order_drawn_is_the_contract() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    contract = pyproject[pyproject.index('containers = ["queue_admin_gui.core"]'):]
    contract = contract[contract.index("layers = ["):]
    layers = re.findall(r'^\s+"([a-z_ :]+)",$', contract[:contract.index("]\n")], re.M)
    drawn = ARCHITECTURE[ARCHITECTURE.index("```\nrescue"):]
    drawn_layers = drawn[4:drawn.index("```", 4)].strip().splitlines()
    assert layers == drawn_layers
