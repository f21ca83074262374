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
