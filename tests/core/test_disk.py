from __future__ import annotations

import shutil
from pathlib import Path

from queue_admin_gui.core.files.disk import free_bytes, nearest_existing_folder, same_drive


def test_a_folder_not_made_yet_is_measured_at_its_nearest_parent(tmp_path: Path) -> None:
    future = tmp_path / "backups" / "not yet"
    assert nearest_existing_folder(future) == tmp_path
    assert nearest_existing_folder(tmp_path) == tmp_path
    measured = free_bytes(future)
    assert measured is not None and measured > 0
    assert abs(measured - shutil.disk_usage(tmp_path).free) < 512 * 1024 * 1024
    assert not future.exists()


def test_two_folders_on_one_disk_are_one_drive(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert same_drive(tmp_path / "a", tmp_path / "b not made")
