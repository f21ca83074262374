"""The user guide, the runbook and the CLI reference, read inside the window (F1, Help menu).

The three Markdown files ship in the package (``queue_admin_gui.help``, built from
``docs/``), so they are there offline and match the installed version. A
:class:`QTextBrowser` renders them with ``setMarkdown``; a link to another of the three opens
it in the same viewer (at the heading it names), Back and Forward walk the pages read, and a
link to the web opens in the browser. F1 opens the guide at the section of the tab in front.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QMainWindow,
    QMenu,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)


@dataclass(frozen=True)
class HelpDocument:
    """One document of the built-in help: its file, its title and the menu entry's tip."""

    file_name: str
    title: str
    tip: str


USER_GUIDE = HelpDocument("USER_GUIDE.md", "User guide",
                          "What every tab, button and figure of the window means.")
RUNBOOK = HelpDocument("QUEUE_MAINTENANCE_RUNBOOK.md", "Maintenance runbook",
                       "Step-by-step procedures for incidents and the maintenance schedule.")
CLI_REFERENCE = HelpDocument("cli.md", "Command-line reference",
                             "Every queue-admin-cli command, its options and exit codes.")
DOCUMENTS = (USER_GUIDE, RUNBOOK, CLI_REFERENCE)

#: The guide's section for each tab of the window (F1 opens it there).
TAB_SECTIONS = {"backups": "backups-tab", "wal": "wal--checkpoint-tab",
                "optimize": "optimization-tab", "leases": "leases-tab", "stats": "stats-tab"}


def help_folder() -> Path:
    """Where the help files are: the installed ``queue_admin_gui.help``, else ``docs/``."""
    try:
        guide = importlib.resources.files("queue_admin_gui.help").joinpath(USER_GUIDE.file_name)
        if guide.is_file():  # a namespace package answers with a MultiplexedPath: ask a file
            return Path(str(guide)).parent
    except ModuleNotFoundError:
        pass
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "help", package.parent / "docs"):
        if (candidate / USER_GUIDE.file_name).is_file():
            return candidate
    return package / "help"


def heading_anchor(text: str) -> str:
    """The anchor a Markdown heading gets ("WAL / Checkpoint tab" -> "wal--checkpoint-tab")."""
    lowered = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return lowered.replace(" ", "-")


def document_named(file_name: str) -> HelpDocument | None:
    """The help document stored as ``file_name``, if it is one of the three."""
    return next((document for document in DOCUMENTS if document.file_name == file_name), None)


class HelpViewer(QDialog):
    """A non-modal window showing one help document at a time, with working links."""

    def __init__(self, parent: QWidget | None = None, folder: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Queue Admin help")
        self.folder = folder or help_folder()
        self.current: HelpDocument | None = None
        self._history: list[tuple[HelpDocument, str]] = []
        self._position = -1
        self.browser = QTextBrowser()
        self.browser.setOpenLinks(False)
        self.browser.setSearchPaths([str(self.folder)])
        self.browser.anchorClicked.connect(self._on_link)
        self.back_button = QPushButton("\u2190 Back")
        self.back_button.clicked.connect(self.back)
        self.forward_button = QPushButton("Forward \u2192")
        self.forward_button.clicked.connect(self.forward)
        self.document_buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        row.addWidget(self.back_button)
        row.addWidget(self.forward_button)
        row.addStretch(1)
        for document in DOCUMENTS:
            button = QPushButton(document.title)
            button.setToolTip(document.tip)
            button.setCheckable(True)
            button.clicked.connect(lambda _checked=False, d=document: self.show_document(d))
            self.document_buttons[document.file_name] = button
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.browser, 1)
        self.resize(900, 700)
        self._update_buttons()

    def show_document(self, document: HelpDocument, anchor: str = "",
                      remember: bool = True) -> None:
        """Show ``document`` (at the heading ``anchor``, if given) and bring the viewer up."""
        path = self.folder / document.file_name
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            text = (f"# {document.title}\n\nThe help file '{path}' could not be read "
                    f"({error.strerror or error}); this installation may be incomplete.")
        if document != self.current:
            self.browser.setMarkdown(text)
            self.current = document
        self.show()
        self.scroll_to(anchor)
        if remember:
            del self._history[self._position + 1:]
            self._history.append((document, anchor))
            self._position = len(self._history) - 1
        self.setWindowTitle(f"{document.title} \u2013 Queue Admin help")
        self._update_buttons()
        if QGuiApplication.platformName() != "offscreen":  # offscreen cannot raise windows
            self.raise_()
            self.activateWindow()

    def scroll_to(self, anchor: str) -> bool:
        """Put the heading whose anchor is ``anchor`` at the top; False when there is none."""
        scroll = self.browser.verticalScrollBar()
        if not anchor:
            scroll.setValue(0)
            return False
        block = self.browser.document().begin()
        while block.isValid():
            if block.blockFormat().headingLevel() > 0 and heading_anchor(block.text()) == anchor:
                cursor = QTextCursor(block)
                self.browser.setTextCursor(cursor)
                top = self.browser.document().documentLayout().blockBoundingRect(block).top()
                scroll.setValue(int(top))
                return True
            block = block.next()
        return False

    def back(self) -> None:
        """The page read before this one."""
        if self._position > 0:
            self._position -= 1
            self.show_document(*self._history[self._position], remember=False)

    def forward(self) -> None:
        """The page read after this one (after Back)."""
        if self._position < len(self._history) - 1:
            self._position += 1
            self.show_document(*self._history[self._position], remember=False)

    def _update_buttons(self) -> None:
        self.back_button.setEnabled(self._position > 0)
        self.forward_button.setEnabled(self._position < len(self._history) - 1)
        for name, button in self.document_buttons.items():
            button.setChecked(self.current is not None and self.current.file_name == name)

    def _on_link(self, url: QUrl) -> None:
        if url.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(url)
            return
        target = document_named(Path(url.path()).name) if url.path() else self.current
        if target is None:
            return
        self.show_document(target, url.fragment())


def install_help(window: QMainWindow, current_tab: Callable[[], str]) -> HelpViewer:
    """Add F1 and the three documents to the window's Help menu; returns the viewer.

    ``current_tab()`` names the tab in front ("wal", ...) or "" on the start page; F1 opens
    the guide at its section.
    """
    viewer = HelpViewer(window)
    guide = QAction("User guide", window)
    keys = {QKeySequence("F1").toString(): QKeySequence("F1")}
    for key in QKeySequence.keyBindings(QKeySequence.StandardKey.HelpContents):
        keys.setdefault(key.toString(), key)
    guide.setShortcuts(list(keys.values()))
    guide.setToolTip(f"{USER_GUIDE.tip} (F1)")
    guide.triggered.connect(
        lambda: viewer.show_document(USER_GUIDE, TAB_SECTIONS.get(current_tab(), "")))
    window.addAction(guide)
    actions = [guide]
    for document in (RUNBOOK, CLI_REFERENCE):
        action = QAction(document.title, window)
        action.setToolTip(document.tip)
        action.triggered.connect(lambda _checked=False, d=document: viewer.show_document(d))
        actions.append(action)
    menu = _help_menu(window)
    first = menu.actions()[0] if menu.actions() else None
    for action in actions:
        menu.insertAction(first, action)
    if first is not None:
        menu.insertSeparator(first)
    menu.setToolTipsVisible(True)
    viewer.actions_added = actions  # type: ignore[attr-defined]
    return viewer


def _help_menu(window: QMainWindow) -> QMenu:
    """The menu bar's Help menu (made when the menus have none)."""
    for action in window.menuBar().actions():
        menu = action.menu()
        if isinstance(menu, QMenu) and action.text().replace("&", "") == "Help":
            return menu
    return window.menuBar().addMenu("&Help")
