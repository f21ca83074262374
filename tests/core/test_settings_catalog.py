"""Each setting is declared once: the docs' table is made from the declarations."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from queue_admin_gui.core.settings.catalog import (
    ENV_OVERRIDES,
    LEVEL_PAIRS,
    SETTING_RANGES,
    SETTINGS,
    markdown_table,
)
from queue_admin_gui.core.settings.config import MaintenanceConfig

USER_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "USER_GUIDE.md"
TABLE_START = "<!-- settings table:"
TABLE_END = "<!-- end of settings table -->"


def _documented_table() -> str:
    text = USER_GUIDE.read_text(encoding="utf-8")
    start = text.index("\n", text.index(TABLE_START)) + 1
    return text[start:text.index(TABLE_END)]


def test_the_user_guide_settings_table_is_the_declarations() -> None:
    documented = _documented_table()
    made = markdown_table()
    assert documented == made, (
        "docs/USER_GUIDE.md's settings table differs from core/settings/catalog.py; paste "
        "the output of python -m queue_admin_gui.core.settings.catalog")
    for setting in SETTINGS:
        assert f"| `{setting.name}` |" in documented


def test_a_changed_declaration_no_longer_matches_the_table() -> None:
    changed = [dataclasses.replace(SETTINGS[0], help="Something else.")] + list(SETTINGS[1:])
    assert markdown_table(changed) != _documented_table()


def test_the_settings_object_and_the_derived_tables_come_from_the_declarations() -> None:
    fields = dataclasses.fields(MaintenanceConfig)
    assert [item.name for item in fields] == [setting.name for setting in SETTINGS]
    config = MaintenanceConfig()
    for setting in SETTINGS:
        assert getattr(config, setting.name) == setting.default_value()
    assert set(SETTING_RANGES) == {s.name for s in SETTINGS if s.number_range is not None}
    assert set(ENV_OVERRIDES.values()) == {s.name for s in SETTINGS if s.env_var}
    assert LEVEL_PAIRS == MaintenanceConfig.level_pairs()
    assert ("wal_size_warning_mb", "wal_size_threshold_mb") in LEVEL_PAIRS
