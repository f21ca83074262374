"""Every message the window gives the user goes through here.

Widgets call :class:`Messages` (``info``, ``warning``, ``error``, ``report_error``,
``confirm``); a *presenter* shows them. This module holds no widget: the window installs the
presenter made of message boxes (``ui/message_boxes.py``); the tests install
:class:`RecordingPresenter`, which records what the user was told and answers confirmations,
so no test ever waits on a real modal box.
"""

from __future__ import annotations

import enum
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from ..core.errors import QueueAdminError

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget


class Level(enum.Enum):
    """How serious a message is."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    BUG = "bug"


@dataclass
class Message:
    """One thing the user was told: a sentence, and for a bug the details to copy."""

    level: Level
    text: str
    details: str = ""
    title: str = ""


@dataclass
class Confirmation:
    """A question put to the user before something destructive or slow."""

    title: str
    text: str
    confirm_label: str = "OK"
    destructive: bool = False
    answer: bool | None = None


class Presenter:
    """Shows messages and asks questions; subclass to change how."""

    def show(self, message: Message, parent: QWidget | None) -> None:
        """Show one message."""
        raise NotImplementedError

    def ask(self, question: Confirmation, parent: QWidget | None) -> bool:
        """Ask a yes/no question; True means go ahead."""
        raise NotImplementedError


@dataclass
class RecordingPresenter(Presenter):
    """For tests: records messages and questions; answers questions with ``answer``."""

    answer: bool = True
    messages: list[Message] = field(default_factory=list)
    questions: list[Confirmation] = field(default_factory=list)

    def show(self, message: Message, parent: QWidget | None) -> None:
        """Record the message."""
        self.messages.append(message)

    def ask(self, question: Confirmation, parent: QWidget | None) -> bool:
        """Record the question and give the preset answer."""
        question.answer = self.answer
        self.questions.append(question)
        return self.answer

    def texts(self, level: Level | None = None) -> list[str]:
        """The sentences recorded, optionally of one level."""
        return [m.text for m in self.messages if level is None or m.level is level]


class Messages(QObject):
    """The one place widgets tell the user something or ask before acting.

    ``told`` is emitted for every message (the activity log and the status bar listen);
    ``non_modal`` messages (info) go to ``status_callback`` when one is set instead of a box.
    """

    told = Signal(object)

    def __init__(self, presenter: Presenter, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.presenter = presenter
        self.parent_widget: QWidget | None = None
        self.status_callback: Callable[[str], None] | None = None
        #: False once the window has closed: nothing may pop up any more.
        self.shown = True

    def stop_showing(self) -> None:
        """The window is closing: record messages (``told``) but show no box, ask nothing.

        A job cancelled by closing the window often ends in an error; a box then would
        appear with no window behind it and keep the program running until clicked.
        """
        self.shown = False

    def _tell(self, message: Message) -> Message:
        self.told.emit(message)
        if not self.shown:
            return message
        if message.level is Level.INFO and self.status_callback is not None:
            self.status_callback(message.text)
        else:
            self.presenter.show(message, self.parent_widget)
        return message

    def info(self, text: str) -> Message:
        """Tell the user something went well (shown in the status bar when there is one)."""
        return self._tell(Message(Level.INFO, text))

    def warning(self, text: str) -> Message:
        """Tell the user something needs attention."""
        return self._tell(Message(Level.WARNING, text))

    def error(self, text: str, details: str = "") -> Message:
        """Tell the user an operation failed and what to do."""
        return self._tell(Message(Level.ERROR, text, details))

    def report_error(self, error: BaseException, details: str = "") -> Message:
        """Show an engine error as its sentence, or a bug with its traceback to copy."""
        if isinstance(error, QueueAdminError) and error.is_environment:
            return self.error(str(error))
        details = details or "".join(traceback.format_exception(error))
        text = (f"Something went wrong inside Queue Admin ({type(error).__name__}: {error}). "
                "Nothing further was changed; copy the details below into a bug report.")
        return self._tell(Message(Level.BUG, text, details))

    def confirm(self, title: str, text: str, *, confirm_label: str = "OK",
                destructive: bool = False) -> bool:
        """Ask before acting; True means the user chose to go ahead (never once closed)."""
        if not self.shown:
            return False
        return self.presenter.ask(
            Confirmation(title, text, confirm_label, destructive), self.parent_widget
        )
