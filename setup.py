"""The wheel's package list: every package setuptools finds, plus the two mapped folders.

``pyproject.toml`` holds everything else. The packages are found here rather than listed by
hand, so a new sub-package of ``queue_admin_gui`` is always in the wheel; the icons
(``resources/``) and the help files (``docs/``) ship as ``queue_admin_gui.resources`` and
``queue_admin_gui.help`` through ``package-dir`` in ``pyproject.toml``, and a
``[tool.setuptools.packages.find]`` table cannot see mapped folders.
"""

from setuptools import find_packages, setup

MAPPED_PACKAGES = ["queue_admin_gui.resources", "queue_admin_gui.help"]

setup(packages=[*find_packages(include=["queue_admin_gui", "queue_admin_gui.*"]),
                *MAPPED_PACKAGES])
