"""Settings: the maintenance settings, the settings file, and where the queue database is.

Owns the settings' defaults, the TOML file as Windows editors save it, environment
overrides and the one answer to "which database?" shared by the window and the CLI. May
use ``files`` and the loose core modules; every feature reads its settings from here.
"""
