"""The window's SVG icons, loaded once by name from ``resources/``.

Each action has a small hand-drawn icon (``backup``, ``restore``, ``verify``, ``delete``,
``checkpoint``, ``vacuum``, ``analyze``, ``integrity``, ``requeue``, ``refresh``, ``folder``,
``open``, ``settings``) and the health badge uses ``ok``, ``warning`` and ``critical``. A
missing file gives an empty icon rather than an error: an icon is decoration, never a reason
for the window not to start.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon


def _resources_dir() -> Path:
    """The icons folder: inside the installed package, else the source tree's ``resources``."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "resources", package.parent / "resources"):
        if (candidate / "app-icon.svg").is_file():
            return candidate
    return package.parent / "resources"


#: Where the SVG files live (``resources/`` in the source tree, inside the package once built).
RESOURCES_DIR = _resources_dir()

ICON_NAMES = (
    "app-icon", "backup", "restore", "verify", "delete", "checkpoint", "vacuum", "analyze",
    "integrity", "requeue", "refresh", "folder", "open", "settings", "warning", "ok",
    "critical",
)


def icon_path(name: str) -> Path:
    """The SVG file of the icon ``name``."""
    return RESOURCES_DIR / f"{name}.svg"


@cache
def icon(name: str) -> QIcon:
    """The icon ``name`` (see :data:`ICON_NAMES`); empty when its file is missing."""
    path = icon_path(name)
    return QIcon(str(path)) if path.is_file() else QIcon()


def app_icon() -> QIcon:
    """The application icon (window title bar, task bar)."""
    return icon("app-icon")
