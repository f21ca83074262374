"""Help inside the window: F1 and the Help menu open the shipped guide, runbook and CLI docs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor

from queue_admin_gui.ui.help_viewer import (
    CLI_REFERENCE,
    RUNBOOK,
    USER_GUIDE,
    HelpViewer,
    heading_anchor,
)


def link_point(viewer: HelpViewer, target: str):
    """Where on screen the first link to ``target`` is drawn (viewport coordinates)."""
    block = viewer.browser.document().begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            fragment = iterator.fragment()
            if fragment.charFormat().isAnchor() and \
                    fragment.charFormat().anchorHref().startswith(target):
                cursor = QTextCursor(viewer.browser.document())
                cursor.setPosition(fragment.position() + 1)
                viewer.browser.setTextCursor(cursor)
                viewer.browser.ensureCursorVisible()
                return viewer.browser.cursorRect(cursor).center()
            iterator += 1
        block = block.next()
    raise AssertionError(f"no link to {target}")


def top_heading(viewer: HelpViewer) -> str:
    cursor = viewer.browser.cursorForPosition(viewer.browser.viewport().rect().topLeft())
    block = cursor.block()
    while block.isValid() and block.blockFormat().headingLevel() == 0:
        block = block.next()
    return block.text()


@pytest.mark.slow
def test_the_help_files_ship_in_the_package(tmp_path: Path):
    """Built from the tree, the package carries the documents and reads them from itself."""
    source = Path(__file__).resolve().parents[2]
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(source / name, tree / name)
    for name in ("queue_admin_gui", "resources", "docs"):
        shutil.copytree(source / name, tree / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    built = tmp_path / "built"
    subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q",
                    "build_py", "-d", str(built)], cwd=tree, check=True, capture_output=True)
    for document in (USER_GUIDE, RUNBOOK, CLI_REFERENCE):
        assert (built / "queue_admin_gui" / "help" / document.file_name).is_file()
    code = ("from queue_admin_gui.ui.help_viewer import help_folder; print(help_folder())")
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                           text=True, check=True, env={**os.environ, "PYTHONPATH": str(built)})
    assert Path(found.stdout.strip()) == built / "queue_admin_gui" / "help"


def test_f1_opens_the_guide_at_the_section_of_the_tab_in_front(qtbot, window, demo_db,
                                                              open_db):
    open_db(demo_db)
    window.show_tab("wal")
    window.activateWindow()
    qtbot.keyClick(window.tabs, Qt.Key.Key_F1)
    viewer = window.help_viewer
    qtbot.waitUntil(viewer.isVisible)
    assert viewer.current == USER_GUIDE
    assert viewer.browser.verticalScrollBar().value() > 0
    assert top_heading(viewer) == "WAL / Checkpoint tab"
    assert heading_anchor("WAL / Checkpoint tab") == "wal--checkpoint-tab"


def test_help_menu_lists_the_three_documents(qtbot, window):
    help_menu = next(a.menu() for a in window.menuBar().actions()
                     if a.text().replace("&", "") == "Help")
    titles = [action.text() for action in help_menu.actions()]
    assert titles[:3] == [USER_GUIDE.title, RUNBOOK.title, CLI_REFERENCE.title]
    help_menu.actions()[2].trigger()
    assert window.help_viewer.current == CLI_REFERENCE
    assert "queue-admin-cli" in window.help_viewer.browser.toPlainText()


def test_links_between_the_documents_work_and_back_returns(qtbot):
    viewer = HelpViewer()
    qtbot.addWidget(viewer)
    viewer.show_document(USER_GUIDE)
    qtbot.waitExposed(viewer)
    point = link_point(viewer, RUNBOOK.file_name)
    qtbot.mouseClick(viewer.browser.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert viewer.current == RUNBOOK
    assert "runbook" in viewer.browser.toPlainText()[:200].lower()
    qtbot.mouseClick(viewer.back_button, Qt.MouseButton.LeftButton)
    assert viewer.current == USER_GUIDE
    qtbot.mouseClick(viewer.forward_button, Qt.MouseButton.LeftButton)
    assert viewer.current == RUNBOOK
    qtbot.mouseClick(viewer.document_buttons[CLI_REFERENCE.file_name],
                     Qt.MouseButton.LeftButton)
    assert viewer.current == CLI_REFERENCE


def test_a_missing_help_file_says_so_instead_of_failing(qtbot, tmp_path: Path):
    viewer = HelpViewer(folder=tmp_path)
    qtbot.addWidget(viewer)
    viewer.show_document(RUNBOOK)
    assert "could not be read" in viewer.browser.toPlainText()
