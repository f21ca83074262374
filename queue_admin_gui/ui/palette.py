"""The window's colours, named once: every widget, plot and style sheet takes them from here.

Each meaning has one colour across the tabs, the wizard, the plots, the tray and the status
bar: red for damage, failures and dead tasks; amber for warnings and in-flight work; green
for what went well; blue for the measured curve; purple for backups; grey for figures that
are no longer current.
"""

from __future__ import annotations

#: Curves and markers.
BLUE = "#1f5fbf"
AMBER = "#c98a00"
GREEN = "#2e9d52"
RED = "#b02a37"
PURPLE = "#6f42c1"
GREY = "#8c8c8c"
WHITE = "#ffffff"

#: Text on the window's light background (darker, for contrast).
GOOD_TEXT = "#1e7b34"
WARN_TEXT = "#8a5300"
BAD_TEXT = RED

#: Backgrounds of highlighted rows, banners and the health badge, with their text.
OK_BACKGROUND = "#d6f0dd"
OK_TEXT_ON_BACKGROUND = "#14532d"
WARN_BACKGROUND = "#ffe8b3"
WARN_BORDER = "#c77700"
WARN_TEXT_ON_BACKGROUND = "#5c3b00"
BAD_BACKGROUND = "#f8d7da"
BAD_TEXT_ON_BACKGROUND = "#6b1119"

#: The same three states on a dark window (Windows dark mode): dark backgrounds, light text.
OK_BACKGROUND_DARK = "#12391f"
OK_TEXT_DARK = "#c9f1d4"
WARN_BACKGROUND_DARK = "#3d2a00"
WARN_TEXT_DARK = "#ffdf99"
BAD_BACKGROUND_DARK = "#45141a"
BAD_TEXT_DARK = "#ffd1d6"

#: A desktop in dark mode (as Windows draws it), for the screenshots and the checks.
DARK_WINDOW = "#202020"
DARK_BASE = "#1b1b1b"
DARK_ALTERNATE = "#262626"
DARK_BUTTON = "#2d2d2d"
DARK_WINDOW_TEXT = "#f3f3f3"
DARK_MUTED_TEXT = "#a9a9a9"

#: Text colours that stand out on a dark window, for the light ones above.
GOOD_TEXT_ON_DARK = "#6fd08c"
WARN_TEXT_ON_DARK = "#f2c14e"
BAD_TEXT_ON_DARK = "#ff8a94"
GREY_ON_DARK = "#b0b0b0"

#: (background, text) of each state, on a light and on a dark window.
STATUS_COLOURS = {
    (False, "ok"): (OK_BACKGROUND, OK_TEXT_ON_BACKGROUND),
    (False, "warning"): (WARN_BACKGROUND, WARN_TEXT_ON_BACKGROUND),
    (False, "critical"): (BAD_BACKGROUND, BAD_TEXT_ON_BACKGROUND),
    (True, "ok"): (OK_BACKGROUND_DARK, OK_TEXT_DARK),
    (True, "warning"): (WARN_BACKGROUND_DARK, WARN_TEXT_DARK),
    (True, "critical"): (BAD_BACKGROUND_DARK, BAD_TEXT_DARK),
}


def window_is_dark() -> bool:
    """True when the application's window colour is dark (a dark desktop theme)."""
    from PySide6.QtGui import QGuiApplication, QPalette

    colour = QGuiApplication.palette().color(QPalette.ColorRole.Window)
    return colour.lightnessF() < 0.5


def paint_status(widget: object, level: str) -> None:
    """Give ``widget`` (and the labels in it) the background and text colours of ``level``.

    Set through the widget's palette, not a style sheet, so the labels inside take the text
    colour too and the pair follows the desktop's light or dark theme: the text always
    stands out from its background by WCAG AA's 4.5:1 at least.
    """
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QWidget

    assert isinstance(widget, QWidget)
    background, text = STATUS_COLOURS[(window_is_dark(), level)]
    if widget.property("statusPainted") == f"{level}:{background}":
        return  # already in these colours (a repaint asked by its own palette change)
    widget.setProperty("statusPainted", f"{level}:{background}")
    palette = QPalette(widget.palette())
    for role, colour in ((QPalette.ColorRole.Window, background),
                         (QPalette.ColorRole.Base, background),
                         (QPalette.ColorRole.WindowText, text),
                         (QPalette.ColorRole.Text, text),
                         (QPalette.ColorRole.ButtonText, text),
                         (QPalette.ColorRole.Link, text),
                         (QPalette.ColorRole.LinkVisited, text)):
        palette.setColor(role, QColor(colour))
    widget.setAutoFillBackground(True)
    widget.setPalette(palette)


def contrast_ratio(first: object, second: object) -> float:
    """WCAG's contrast ratio of two QColors (1 to 21; AA asks 4.5 for normal text)."""

    def luminance(colour: object) -> float:
        channels = []
        for value in (colour.redF(), colour.greenF(), colour.blueF()):  # type: ignore[attr-defined]
            channels.append(value / 12.92 if value <= 0.03928
                            else ((value + 0.055) / 1.055) ** 2.4)
        red, green, blue = channels
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def dark_desktop_palette() -> object:
    """A QPalette like Windows' dark mode: dark windows and buttons, light text."""
    from PySide6.QtGui import QColor, QPalette

    palette = QPalette()
    roles = QPalette.ColorRole
    for role, colour in ((roles.Window, DARK_WINDOW), (roles.WindowText, DARK_WINDOW_TEXT),
                         (roles.Base, DARK_BASE), (roles.AlternateBase, DARK_ALTERNATE),
                         (roles.Text, DARK_WINDOW_TEXT), (roles.Button, DARK_BUTTON),
                         (roles.ButtonText, DARK_WINDOW_TEXT),
                         (roles.ToolTipBase, DARK_BUTTON),
                         (roles.ToolTipText, DARK_WINDOW_TEXT),
                         (roles.PlaceholderText, DARK_MUTED_TEXT)):
        palette.setColor(role, QColor(colour))
    return palette


#: Each text colour of a light window and the one that reads as well on a dark window.
_ON_DARK = {GOOD_TEXT: GOOD_TEXT_ON_DARK, GREEN: GOOD_TEXT_ON_DARK,
            WARN_TEXT: WARN_TEXT_ON_DARK, AMBER: WARN_TEXT_ON_DARK,
            RED: BAD_TEXT_ON_DARK, GREY: GREY_ON_DARK}


def readable_text(colour: str) -> str:
    """``colour`` for text on the window as it is now: its lighter twin on a dark desktop."""
    return _ON_DARK.get(colour, colour) if window_is_dark() else colour
