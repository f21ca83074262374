"""Small building blocks shared by the maintenance tabs: display helpers and a key/value grid.

Number, size and age formatting, status labels, group boxes and the key/value grid live here.
The tabs' base class is :mod:`.maintenance_tab` and the record tables :mod:`.tables`.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QGroupBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from .palette import GOOD_TEXT, RED, WARN_TEXT, readable_text

__all__ = [
    "KeyValueGrid",
    "explanation",
    "format_age",
    "format_count",
    "group_box",
    "plot_frame",
    "set_status",
    "status_label",
]

GOOD_COLOUR = GOOD_TEXT
BAD_COLOUR = RED
WARN_COLOUR = WARN_TEXT


def format_count(value: int | float | None) -> str:
    """A whole number with thousands separators, or a dash when unknown."""
    if value is None:
        return "\u2013"
    return f"{int(value):,}"


def format_age(seconds: float | None) -> str:
    """A duration as an admin reads it at a glance: "45 s", "12 min 5 s", "3 h 10 min"."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "\u2013"
    whole = max(0, int(round(seconds)))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def explanation(text: str) -> QLabel:
    """A short, wrapped, muted sentence that explains the controls around it."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: palette(placeholder-text);")
    return label


def status_label() -> QLabel:
    """A wrapped label for a result sentence, selectable so it can be copied."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def set_status(label: QLabel, text: str, colour: str | None = None, bold: bool = False) -> None:
    """Show ``text`` in ``label``, coloured for good or bad news."""
    style = []
    if colour:
        style.append(f"color: {readable_text(colour)};")
    if bold:
        style.append("font-weight: bold;")
    label.setStyleSheet(" ".join(style))
    label.setText(text)


def group_box(title: str) -> QGroupBox:
    """A titled group whose title stands out from the controls inside it."""
    box = QGroupBox(title)
    box.setStyleSheet("QGroupBox { font-weight: bold; } "
                      "QGroupBox QWidget { font-weight: normal; }")
    return box


def plot_frame() -> tuple[QFrame, QVBoxLayout]:
    """An empty frame that takes the remaining space, for live plots added later."""
    frame = QFrame()
    frame.setObjectName("plotArea")
    frame.setFrameShape(QFrame.Shape.NoFrame)
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(0, 0, 0, 0)
    return frame, layout


class KeyValueGrid(QWidget):
    """Labelled values in two columns, numbers right-aligned; rows are added once by key."""

    def __init__(self, rows: Sequence[tuple[str, str]] = (), columns: int = 1,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setHorizontalSpacing(12)
        self._columns = max(1, columns)
        self._values: dict[str, QLabel] = {}
        self._layout.setColumnStretch(self._columns * 3, 1)
        for key, caption in rows:
            self.add_row(key, caption)

    def add_row(self, key: str, caption: str, tooltip: str = "") -> QLabel:
        """Add a caption and an empty value; returns the value label."""
        index = len(self._values)
        row, pair = divmod(index, self._columns)
        name = QLabel(caption + ":")
        value = QLabel("\u2013")
        value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        value.setMinimumWidth(90)
        if tooltip:
            name.setToolTip(tooltip)
            value.setToolTip(tooltip)
        self._layout.addWidget(name, row, pair * 3)
        self._layout.addWidget(value, row, pair * 3 + 1)
        if pair < self._columns - 1:
            self._layout.setColumnMinimumWidth(pair * 3 + 2, 24)
        self._values[key] = value
        return value

    def set_value(self, key: str, text: str, colour: str | None = None) -> None:
        """Show ``text`` as the value of ``key``."""
        label = self._values[key]
        label.setText(text)
        label.setStyleSheet(f"color: {readable_text(colour)};" if colour else "")

    def value(self, key: str) -> str:
        """The text shown for ``key`` (tests read what the user sees)."""
        return self._values[key].text()

    def clear_values(self) -> None:
        """Show every value as unknown."""
        for label in self._values.values():
            label.setText("\u2013")
            label.setStyleSheet("")


def bold_font(widget: QWidget) -> QFont:
    """The widget's font, bold."""
    font = QFont(widget.font())
    font.setBold(True)
    return font


