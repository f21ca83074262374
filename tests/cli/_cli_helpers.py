"""What the CLI tests share: a captured run, and how to start the CLI as its own process."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    """One CLI run: exit code, stdout, stderr, and stdout parsed as JSON when it is."""

    code: int
    out: str
    err: str

    @property
    def data(self) -> dict[str, Any]:
        parsed = json.loads(self.out)
        assert isinstance(parsed, dict)
        return parsed


def cli_env() -> dict[str, str]:
    """The test's environment (isolated folders) plus the project on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                      env.get("PYTHONPATH")]))
    return env


def cli_command(*argv: str | Path) -> list[str]:
    """The command line that runs the CLI as its own process."""
    return [sys.executable, "-m", "queue_admin_gui.cli", *(str(arg) for arg in argv)]
