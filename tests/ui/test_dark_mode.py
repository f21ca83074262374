"""Readable in light and dark: the badge and the banner keep WCAG AA contrast (4.5:1)."""

from __future__ import annotations

import re

import pytest
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from queue_admin_gui.core.measurements.health import HealthFinding, HealthLevel, HealthReport
from queue_admin_gui.ui.palette import contrast_ratio, window_is_dark

AA = 4.5


def dark_palette() -> QPalette:
    """A palette like Windows' dark mode: dark windows, light text."""
    palette = QPalette()
    for role, colour in ((QPalette.ColorRole.Window, "#202020"),
                         (QPalette.ColorRole.WindowText, "#f3f3f3"),
                         (QPalette.ColorRole.Base, "#1b1b1b"),
                         (QPalette.ColorRole.Text, "#f3f3f3"),
                         (QPalette.ColorRole.Button, "#2d2d2d"),
                         (QPalette.ColorRole.ButtonText, "#f3f3f3")):
        palette.setColor(role, QColor(colour))
    return palette


@pytest.fixture(params=["light", "dark"])
def theme(request, qapp):
    original = QApplication.palette()
    if request.param == "dark":
        QApplication.setPalette(dark_palette())
    yield request.param
    QApplication.setPalette(original)


def _report(level: HealthLevel) -> HealthReport:
    if level is HealthLevel.OK:
        return HealthReport(level)
    return HealthReport(level, [HealthFinding(level, "The WAL file is big.", "WAL 60 MB", "wal")])


def _painted(widget) -> QColor:
    """The colour actually painted inside ``widget``, near its top-left corner."""
    return widget.grab().toImage().pixelColor(3, 3)


def test_the_badge_is_readable_at_every_level(qtbot, window, theme):
    assert window_is_dark() is (theme == "dark")
    badge = window.status.badge
    for level in HealthLevel:
        badge.show_report(_report(level))
        background = badge.palette().color(badge.backgroundRole())
        text = badge.text_label.palette().color(badge.text_label.foregroundRole())
        assert contrast_ratio(text, background) >= AA, (theme, level)
        assert _painted(badge).name() == background.name(), (theme, level)
    badge.show_damaged("database disk image is malformed")
    text = badge.text_label.palette().color(badge.text_label.foregroundRole())
    assert contrast_ratio(text, badge.palette().color(badge.backgroundRole())) >= AA


def test_the_wal_banner_is_readable_at_both_levels(qtbot, window, theme):
    plot = window.wal_plot
    for level in ("warning", "critical"):
        plot._show_banner("The WAL is 80 MB, above the warning level.",
                          "A TRUNCATE checkpoint shrinks it.", level, details="more")
        background = plot.banner.palette().color(plot.banner.backgroundRole())
        for label in (plot.banner_label, plot.details_label):
            text = label.palette().color(label.foregroundRole())
            assert contrast_ratio(text, background) >= AA, (theme, level)
        link = re.search(r"<a href='details' style='color:(#[0-9a-f]{6})'>",
                         plot.banner_label.text())  # "Details", in the banner's own colour
        assert link is not None
        assert contrast_ratio(QColor(link.group(1)), background) >= AA, (theme, level)
        assert _painted(plot.banner).name() != QApplication.palette().color(
            QPalette.ColorRole.Window).name()


def test_switching_the_theme_repaints_the_badge(qtbot, window, qapp):
    badge = window.status.badge
    badge.show_report(_report(HealthLevel.WARNING))
    light = badge.palette().color(badge.backgroundRole()).name()
    original = QApplication.palette()
    try:
        QApplication.setPalette(dark_palette())
        qtbot.waitUntil(lambda: badge.palette().color(badge.backgroundRole()).name() != light,
                        timeout=5_000)
        text = badge.text_label.palette().color(badge.text_label.foregroundRole())
        assert contrast_ratio(text, badge.palette().color(badge.backgroundRole())) >= AA
    finally:
        QApplication.setPalette(original)


def test_the_contrast_ratio_is_wcags():
    assert round(contrast_ratio(QColor("#000000"), QColor("#ffffff")), 1) == 21.0
    assert round(contrast_ratio(QColor("#777777"), QColor("#ffffff")), 2) == 4.48


def test_result_sentences_stay_readable_on_a_dark_window(qtbot, window, theme):
    from queue_admin_gui.ui.widgets import BAD_COLOUR, GOOD_COLOUR, WARN_COLOUR, set_status

    label = window.tab_widgets["wal"].result_label
    background = QApplication.palette().color(QPalette.ColorRole.Window)
    for colour in (GOOD_COLOUR, WARN_COLOUR, BAD_COLOUR):
        set_status(label, "All 388 frames were copied into the database.", colour)
        label.ensurePolished()
        shown = label.palette().color(label.foregroundRole())
        assert contrast_ratio(shown, background) >= AA, (theme, colour, shown.name())
