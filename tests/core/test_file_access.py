"""Why a named file cannot be used: missing, a folder, not readable."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from queue_admin_gui.core.errors import ErrorKind
from queue_admin_gui.core.file_access import file_problem, problem_for_os_error


def test_a_readable_file_has_no_problem(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    path.write_bytes(b"x")
    assert file_problem(path) is None


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    kind, what, _advice = file_problem(tmp_path / "nowhere" / "queue.db")
    assert (kind, what) == (ErrorKind.NOT_FOUND, "was not found")


def test_a_folder_is_a_folder(tmp_path: Path) -> None:
    kind, what, advice = file_problem(tmp_path)
    assert (kind, what) == (ErrorKind.INVALID, "is a folder, not a file")
    assert "choose the file" in advice


@pytest.mark.parametrize("error", [
    PermissionError(errno.EACCES, "Permission denied", "q.db"),
    OSError(errno.EACCES, "Access is denied", "q.db"),
], ids=["posix", "windows-errno"])
def test_an_unreadable_file_says_permission_denied(error: OSError) -> None:
    kind, what, advice = problem_for_os_error(error)
    assert kind is ErrorKind.PERMISSION
    assert what == "cannot be read: permission denied"
    assert "read access" in advice


def test_a_windows_access_denied_says_permission_denied() -> None:
    error = OSError(errno.EINVAL, "Access is denied", "q.db")
    error.winerror = 5  # what Windows sets for ERROR_ACCESS_DENIED
    assert problem_for_os_error(error)[:2] == (ErrorKind.PERMISSION,
                                              "cannot be read: permission denied")


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0,
                    reason="needs a file the test user cannot read (root reads everything)")
def test_a_real_unreadable_file_says_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    path.write_bytes(b"x")
    path.chmod(0)
    try:
        assert file_problem(path)[:2] == (ErrorKind.PERMISSION,
                                          "cannot be read: permission denied")
    finally:
        path.chmod(0o600)
