"""The point-in-time timeline: a labelled axis to point at, click, drag, zoom and step."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QDateTime, QPoint, QPointF, Qt
from PySide6.QtGui import QGuiApplication, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from queue_admin_gui.ui.restore_point_picker import (
    ArchiveTimeline,
    InstantEdit,
    RestorePointPicker,
    parse_instant,
    tick_marks,
)

#: An hour of archive starting at a round local time.
START = datetime(2026, 12, 7, 2, 0, 0).timestamp()  # noqa: DTZ001 - local, as shown
END = START + 3600
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def timeline(qtbot) -> ArchiveTimeline:
    widget = ArchiveTimeline()
    widget.spans = [(START, END)]
    widget.resize(602, 70)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def x_for(timeline: ArchiveTimeline, stamp: float) -> int:
    return round(timeline.x_of(stamp))


def test_the_axis_has_round_labelled_ticks_between_its_ends():
    ticks, fmt = tick_marks(START, END, 600)
    assert fmt == "HH:mm" and len(ticks) >= 4
    assert all(START <= tick <= END for tick in ticks)
    steps = {round(b - a) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1 and steps.pop() % 60 == 0
    assert QDateTime.fromSecsSinceEpoch(int(ticks[1])).toString("ss") == "00"
    seconds, fmt = tick_marks(START, START + 40, 600)
    assert fmt == "HH:mm:ss" and len(seconds) >= 4


def test_the_time_under_the_pointer_is_shown_while_hovering(qtbot, timeline):
    middle = START + 1800
    qtbot.mouseMove(timeline, QPoint(x_for(timeline, middle), 8))
    qtbot.waitUntil(lambda: timeline.hover is not None, timeout=5_000)
    assert timeline.hover == pytest.approx(middle, abs=3600 / 600 * 1.5)
    assert timeline.hover_text() == QDateTime.fromMSecsSinceEpoch(
        int(timeline.hover * 1000)).toString("yyyy-MM-dd HH:mm:ss")
    assert timeline.hover_text().startswith("2026-12-07 02:")


def test_a_click_chooses_the_instant_under_the_pointer(qtbot, timeline):
    wanted = START + 900
    with qtbot.waitSignal(timeline.instant_picked) as picked:
        qtbot.mouseClick(timeline, LEFT, pos=QPoint(x_for(timeline, wanted), 8))
    assert picked.args[0] == pytest.approx(wanted, abs=3600 / 600 * 1.5)
    assert timeline.instant == picked.args[0]


def test_dragging_moves_the_choice_along(qtbot, timeline):
    qtbot.mousePress(timeline, LEFT, pos=QPoint(x_for(timeline, START + 600), 8))
    target = QPointF(x_for(timeline, START + 2400), 8)
    move = QMouseEvent(QMouseEvent.Type.MouseMove, target, timeline.mapToGlobal(target),
                       Qt.MouseButton.NoButton, LEFT, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(timeline, move)
    qtbot.mouseRelease(timeline, LEFT, pos=target.toPoint())
    assert timeline.instant == pytest.approx(START + 2400, abs=3600 / 600 * 1.5)


def test_the_wheel_zooms_around_the_pointer_and_back_out(qtbot, timeline):
    anchor = START + 1200
    at = QPointF(x_for(timeline, anchor), 8)
    for _ in range(5):
        wheel = QWheelEvent(at, timeline.mapToGlobal(at), QPoint(0, 0), QPoint(0, 120),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                            Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(timeline, wheel)
    first, last = timeline.shown_range()
    assert last - first == pytest.approx(3600 * 0.8 ** 5, rel=0.01)
    assert timeline.instant_at(at.x()) == pytest.approx(anchor, abs=3)
    for _ in range(20):
        wheel = QWheelEvent(at, timeline.mapToGlobal(at), QPoint(0, 0), QPoint(0, -120),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                            Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(timeline, wheel)
    assert timeline.shown_range() == (START, END)


def test_arrow_keys_step_a_second_and_with_shift_a_minute(qtbot, timeline):
    timeline.set_instant(START + 100)
    timeline.setFocus()
    qtbot.keyClick(timeline, Qt.Key.Key_Right)
    assert timeline.instant == START + 101
    qtbot.keyClick(timeline, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    assert timeline.instant == START + 41
    timeline.set_instant(END - 10)
    qtbot.keyClick(timeline, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert timeline.instant == END  # never past the last restorable instant


def test_a_pasted_timestamp_is_taken_whole(qtbot):
    edit = InstantEdit()
    qtbot.addWidget(edit)
    edit.setDisplayFormat("yyyy-MM-dd HH:mm:ss.zzz")
    edit.setDateTimeRange(QDateTime.fromSecsSinceEpoch(int(START)),
                          QDateTime.fromSecsSinceEpoch(int(END)))
    edit.setDateTime(QDateTime.fromSecsSinceEpoch(int(END)))
    QGuiApplication.clipboard().setText("2026-12-07 02:14:12.290")
    edit.setFocus()
    qtbot.keyClick(edit, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert edit.dateTime().toString("yyyy-MM-dd HH:mm:ss.zzz") == "2026-12-07 02:14:12.290"
    QGuiApplication.clipboard().setText("not a time")
    qtbot.keyClick(edit, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert edit.dateTime().toString("HH:mm:ss.zzz") == "02:14:12.290"


def test_instants_are_read_in_the_forms_people_paste():
    day = datetime(2026, 12, 7, 9, 0, 0)  # noqa: DTZ001
    local = datetime(2026, 12, 7, 2, 14, 12).timestamp()  # noqa: DTZ001
    assert parse_instant("2026-12-07 02:14:12") == local
    assert parse_instant("2026-12-07T02:14:12") == local
    assert parse_instant("  '2026-12-07 02:14:12.5' ") == local + 0.5
    assert parse_instant("02:14:12", day) == local
    assert parse_instant("2026-12-07T01:14:12Z") == datetime.fromisoformat(
        "2026-12-07T01:14:12+00:00").timestamp()
    assert parse_instant("yesterday") is None


def test_clicking_the_strip_sets_the_pickers_instant(qtbot, session):
    picker = RestorePointPicker(session, lambda *args: None, session.backup_dir, None)
    qtbot.addWidget(picker)
    picker.resize(700, 200)
    picker.show()
    status = SimpleNamespace(earliest=START, latest=END, gaps=[], folder="archive",
                             generations=[SimpleNamespace(restorable_from=START,
                                                          restorable_until=END)])
    picker._on_status(status)
    timeline = picker.timeline
    qtbot.waitExposed(timeline)
    qtbot.mouseClick(timeline, LEFT, pos=QPoint(round(timeline.x_of(START + 600)), 8))
    assert picker.chosen_instant() == pytest.approx(START + 600, abs=10)
