"""The README's wheel route works: build the wheel, install it in a fresh virtual environment
outside the source tree, and run the command line and the window from that install.

Marked ``wheel`` and skipped unless ``QUEUE_ADMIN_TEST_WHEEL=1`` (``.ci/run`` sets it):
installing the dependencies from the package index takes minutes, too long for the README's
test command. The wheel is built exactly as the README says
(``python -m pip wheel --no-deps -w dist .``); the virtual environment, the data folders and
the working directory are under a temporary folder, and no variable of the test run points
the installed programs back at the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from queue_admin_gui import __version__
from queue_admin_gui.ui.main_window import TAB_SPECS

ROOT = Path(__file__).resolve().parents[2]
WHEEL_NAME = f"queue_admin-{__version__}-py3-none-any.whl"
TIMEOUT_SECONDS = 300
INSTALL_TIMEOUT_SECONDS = 1800

pytestmark = [
    pytest.mark.wheel,
    pytest.mark.skipif(os.environ.get("QUEUE_ADMIN_TEST_WHEEL") != "1",
                       reason="installs from the package index; set QUEUE_ADMIN_TEST_WHEEL=1"),
]


def _scripts(environment: Path) -> Path:
    return environment / ("Scripts" if sys.platform == "win32" else "bin")


def _program(environment: Path, name: str) -> Path:
    return _scripts(environment) / (f"{name}.exe" if sys.platform == "win32" else name)


def _source_packages() -> set[str]:
    """Every package folder of queue_admin_gui in the source tree, as a dotted name."""
    package_root = ROOT / "queue_admin_gui"
    return {".".join(init.parent.relative_to(ROOT).parts)
            for init in package_root.rglob("__init__.py")
            if "__pycache__" not in init.parts}


@pytest.fixture(scope="module")
def wheel() -> Path:
    """The wheel, built as the README says."""
    built = ROOT / "dist" / WHEEL_NAME
    built.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", "dist", "."],
                   cwd=ROOT, check=True, timeout=TIMEOUT_SECONDS)
    assert built.is_file()
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment outside the source tree with the wheel installed."""
    environment = tmp_path_factory.mktemp("wheel install") / "venv"
    assert not environment.resolve().is_relative_to(ROOT)
    subprocess.run([sys.executable, "-m", "venv", str(environment)], check=True,
                   timeout=TIMEOUT_SECONDS)
    python = _program(environment, "python")
    subprocess.run([str(python), "-m", "pip", "install", str(wheel)], check=True,
                   timeout=INSTALL_TIMEOUT_SECONDS, env=_program_env())
    return environment


def _program_env() -> dict[str, str]:
    """The test's environment (data folders under tmp_path) without the test run's Python."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def _run(program: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(program), *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT_SECONDS, env=_program_env(), cwd=cwd, check=False)


def test_the_wheel_holds_every_package_and_the_data_files(wheel: Path) -> None:
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    folders = {name.rsplit("/", 1)[0].replace("/", ".") for name in names
               if name.endswith("/__init__.py")}
    assert _source_packages() <= folders
    assert {"queue_admin_gui.core.restore", "queue_admin_gui.core.measurements"} <= folders
    assert "queue_admin_gui/resources/app-icon.svg" in names
    for document in ("USER_GUIDE.md", "QUEUE_MAINTENANCE_RUNBOOK.md", "cli.md"):
        assert f"queue_admin_gui/help/{document}" in names


def test_the_installed_package_is_the_wheels_not_the_source_tree(installed: Path,
                                                                   tmp_path: Path) -> None:
    where = _run(_program(installed, "python"), "-c",
                 "import importlib.resources, queue_admin_gui; print(queue_admin_gui.__file__);"
                 "print(importlib.resources.files('queue_admin_gui.help')"
                 ".joinpath('USER_GUIDE.md').is_file())", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    location, guide_found = where.stdout.splitlines()
    assert Path(location).resolve().is_relative_to(installed.resolve())
    assert guide_found == "True"


def test_installed_cli_answers_help_for_every_command(installed: Path, tmp_path: Path) -> None:
    from queue_admin_gui.cli.program import build_parser, command_parsers

    cli = _program(installed, "queue-admin-cli")
    main_help = _run(cli, "--help", cwd=tmp_path)
    assert main_help.returncode == 0, main_help.stderr
    for name in command_parsers(build_parser()):
        shown = _run(cli, name, "--help", cwd=tmp_path)
        assert shown.returncode == 0, f"{name} --help: {shown.stderr}"
        assert f"usage: queue-admin-cli {name}" in shown.stdout


def test_installed_cli_makes_backs_up_verifies_restores_and_checks(installed: Path,
                                                                   tmp_path: Path) -> None:
    cli = _program(installed, "queue-admin-cli")
    db = tmp_path / "queue folder" / "queue.db"
    backups = tmp_path / "backup folder"

    made = _run(cli, "--db", db, "demo", "--tasks", "300", "--workers", "0", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert db.is_file()

    backed_up = _run(cli, "--db", db, "--json", "backup", "--dir", backups, cwd=tmp_path)
    assert backed_up.returncode == 0, backed_up.stderr
    backup = Path(json.loads(backed_up.stdout)["path"])
    assert backup.parent == backups and backup.is_file()

    verified = _run(cli, "--json", "verify", backup, cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["problems"] == []

    # The demo queue has heartbeat rows of its simulated workers, dated now; none run here.
    restored = _run(cli, "--db", db, "--json", "restore", backup, "--yes",
                    "--allow-live-workers", cwd=tmp_path)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    report = json.loads(restored.stdout)
    assert Path(report["target"]) == db and report["check_problems"] == []

    checked = _run(cli, "--db", db, "--json", "check", "--dir", backups, cwd=tmp_path)
    verdict = json.loads(checked.stdout)
    assert checked.returncode == verdict["exit_code"], checked.stderr
    assert verdict["state"] in ("OK", "WARNING"), verdict["status_line"]
    assert verdict["measurements"]["task_counts"] is not None
    assert sum(verdict["measurements"]["task_counts"].values()) == 300


def test_installed_window_passes_its_smoke_test(installed: Path, tmp_path: Path) -> None:
    report = tmp_path / "smoke report.txt"
    run = _run(_program(installed, "queue-admin"), "--smoke-test", report, cwd=tmp_path)
    text = report.read_text(encoding="utf-8") if report.is_file() else ""
    assert run.returncode == 0, text + run.stderr
    titles = [line.removeprefix("tab: ") for line in text.splitlines()
              if line.startswith("tab: ")]
    assert titles == [spec[2] for spec in TAB_SPECS]
    assert text.rstrip().endswith("smoke test passed")
