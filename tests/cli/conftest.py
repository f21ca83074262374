"""Fixtures to run queue-admin-cli in-process and as a real process, on demo queues."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from _cli_helpers import Run, cli_command, cli_env

from queue_admin_gui.cli import main
from queue_admin_gui.core.demo.queue_file import create_demo_queue


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run ``main(argv)`` in this process and capture what it printed."""

    def run(*argv: str | Path) -> Run:
        capsys.readouterr()
        code = main([str(arg) for arg in argv])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def cli_process() -> Callable[..., Run]:
    """Run ``python -m queue_admin_gui.cli`` as a real process and wait for it."""

    def run(*argv: str | Path, timeout: float = 120) -> Run:
        done = subprocess.run(cli_command(*argv), capture_output=True, text=True,
                              env=cli_env(), timeout=timeout, check=False)
        return Run(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    """A demo queue of 300 tasks (a few stale leases among them) in a folder with a space."""
    return create_demo_queue(tmp_path / "queue dir" / "queue.db", tasks=300, seed=1).path


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups here"
