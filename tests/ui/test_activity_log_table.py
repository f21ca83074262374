"""The activity log as a table an admin can work with: sort, copy, and Tab moves on."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QLineEdit, QVBoxLayout, QWidget

from queue_admin_gui.core.activity import ActivityEntry
from queue_admin_gui.ui.activity_log import ActivityLogDock


def make_dock(qtbot, session, activity_log):
    host = QWidget()
    layout = QVBoxLayout(host)
    dock = ActivityLogDock(session.runner, session.messages, activity_log)
    after = QLineEdit()
    layout.addWidget(dock)
    layout.addWidget(after)
    qtbot.addWidget(host)
    host.resize(900, 400)
    host.show()
    qtbot.waitExposed(host)
    for action, seconds in (("Vacuum", 12.0), ("Back up", 3.5), ("Checkpoint TRUNCATE", 0.2)):
        dock.add_entry(ActivityEntry.now(action, duration_seconds=seconds), persist=False)
    dock.host = host  # keeps the window alive as long as the dock is used
    return dock, after


def click_header(qtbot, dock: ActivityLogDock, column: int) -> None:
    header = dock.table.horizontalHeader()
    point = QPoint(header.sectionViewportPosition(column) + header.sectionSize(column) // 2,
                   header.height() // 2)
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=point)


def column_texts(dock: ActivityLogDock, column: int) -> list[str]:
    return [dock.cell_text(row, column) for row in range(dock.model.rowCount())]


def test_clicking_a_header_sorts_by_that_column(qtbot, session, activity_log):
    dock, _after = make_dock(qtbot, session, activity_log)
    assert column_texts(dock, 1) == ["Vacuum", "Back up", "Checkpoint TRUNCATE"]  # by time
    click_header(qtbot, dock, 1)
    assert column_texts(dock, 1) == ["Back up", "Checkpoint TRUNCATE", "Vacuum"]
    click_header(qtbot, dock, 4)
    assert column_texts(dock, 4) == ["0.2 s", "3.5 s", "12.0 s"]  # by seconds, not text
    click_header(qtbot, dock, 0)
    assert column_texts(dock, 1) == ["Vacuum", "Back up", "Checkpoint TRUNCATE"]
    # a new entry still lands in the sorted order
    click_header(qtbot, dock, 1)
    dock.add_entry(ActivityEntry.now("Analyze"), persist=False)
    assert column_texts(dock, 1)[0] == "Analyze"


def test_ctrl_c_and_the_context_menu_copy_the_selected_rows(qtbot, session, activity_log):
    dock, _after = make_dock(qtbot, session, activity_log)
    table = dock.table
    first = table.visualRect(dock.model.index(0, 1)).center()
    third = table.visualRect(dock.model.index(2, 1)).center()
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=first)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.ShiftModifier, pos=third)
    QApplication.clipboard().clear()
    qtbot.keyClick(table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    lines = QApplication.clipboard().text().splitlines()
    assert lines[0] == "Time\tAction\tParameters\tResult\tDuration"  # as every list copies
    assert [line.split("\t")[1] for line in lines[1:]] == ["Vacuum", "Back up",
                                                           "Checkpoint TRUNCATE"]
    assert lines[1].split("\t")[4] == "12.0 s"
    assert [action.text() for action in table.actions()] == ["Copy"]
    QApplication.clipboard().clear()
    table.actions()[0].trigger()
    assert QApplication.clipboard().text().splitlines() == lines


def test_tab_leaves_the_activity_log(qtbot, session, activity_log):
    dock, after = make_dock(qtbot, session, activity_log)
    dock.table.setFocus()
    qtbot.waitUntil(dock.table.hasFocus)
    qtbot.keyClick(dock.table, Qt.Key.Key_Tab)
    qtbot.waitUntil(after.hasFocus)


def test_a_new_entry_keeps_the_selection_and_the_oldest_goes_beyond_the_limit(
        qtbot, session, activity_log, monkeypatch):
    from queue_admin_gui.ui import activity_log as dock_module

    dock, _after = make_dock(qtbot, session, activity_log)
    dock.table.selectRow(1)
    dock.add_entry(ActivityEntry.now("Analyze"), persist=False)
    assert column_texts(dock, 1) == ["Vacuum", "Back up", "Checkpoint TRUNCATE", "Analyze"]
    assert [index.row() for index in dock.table.selectionModel().selectedRows()] == [1]
    monkeypatch.setattr(dock_module, "MAX_ROWS", 4)
    dock.add_entry(ActivityEntry.now("Optimize"), persist=False)
    assert column_texts(dock, 1) == ["Back up", "Checkpoint TRUNCATE", "Analyze", "Optimize"]
    assert [index.row() for index in dock.table.selectionModel().selectedRows()] == [0]
    assert dock.cell_text(0, 1) == "Back up"
