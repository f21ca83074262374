"""The window's presenter: messages and questions shown as message boxes."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from ..app.messages import Confirmation, Level, Message, Presenter


class DialogPresenter(Presenter):
    """Message boxes: errors modal with details to copy, confirmations default to No."""

    def show(self, message: Message, parent: QWidget | None) -> None:
        """Show a message box suited to the level."""
        icons = {
            Level.INFO: QMessageBox.Icon.Information,
            Level.WARNING: QMessageBox.Icon.Warning,
            Level.ERROR: QMessageBox.Icon.Warning,
            Level.BUG: QMessageBox.Icon.Critical,
        }
        box = QMessageBox(icons[message.level], message.title or QApplication.applicationName(),
                          message.text, QMessageBox.StandardButton.Ok, parent)
        if message.details:
            box.setDetailedText(message.details)
        box.exec()

    def ask(self, question: Confirmation, parent: QWidget | None) -> bool:
        """Ask with a named confirm button and Cancel as the default."""
        icon = QMessageBox.Icon.Warning if question.destructive else QMessageBox.Icon.Question
        box = QMessageBox(icon, question.title, question.text, QMessageBox.StandardButton.NoButton,
                          parent)
        confirm = box.addButton(question.confirm_label, QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.exec()
        return box.clickedButton() is confirm
